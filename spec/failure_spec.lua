-- Failures: CONTRACT section 3.
local txaio = require "txaio"
local compat = require "compat"
local error_message_of = require("helpers").error_message_of

-- create_failure and the failure_* functions need a loop; is_failure and CancelledError do not.
txaio.use_host { now = function() return 0 end }

local THIS = debug.getinfo(1, "S").short_src

-- Each raising function sits on one line, so its `linedefined` is the line of its `error` call.
local function raiser() error("boom", 0) end
local RAISE_LINE = debug.getinfo(raiser, "S").linedefined

local errs = {}
function errs.field_raiser() error({ code = 7 }) end
local FIELD_RAISE_LINE = debug.getinfo(errs.field_raiser, "S").linedefined

local function middle()
  raiser()  -- a statement, not a tail call: 'middle' keeps its frame
  return 1
end
local MIDDLE_CALL_LINE = debug.getinfo(middle, "S").linedefined + 1

local function make_direct()
  local fail = txaio.create_failure("direct")  -- not a tail call: this frame must be recorded
  return fail
end
local DIRECT_LINE = debug.getinfo(make_direct, "S").linedefined + 1

local function capture(fn)
  local ok, fail = xpcall(fn, txaio.create_failure)
  assert.is_false(ok)
  return fail
end

local function raise_value(v)
  return capture(function() error(v, 0) end)
end

-- Index of the first frame whose fields match every key of `want`, or nil.
local function find_frame(frames, want)
  for i, fr in ipairs(frames) do
    local match = true
    for k, v in pairs(want) do
      if fr[k] ~= v then match = false end
    end
    if match then return i end
  end
  return nil
end

local function has_newline(s)
  return s:find("\n", 1, true) ~= nil
end

-- What fn(fail) returns, asserting that it did not raise and that it is a string: for the
-- functions that must cope with an error value whose __tostring misbehaves.
local function string_of(fn, fail)
  local ok, s = pcall(fn, fail)
  assert.is_true(ok, tostring(s))
  assert.is_string(s)
  return s
end

describe("txaio.create_failure as an xpcall message handler", function()
  it("returns a failure", function()
    local fail = capture(function() raiser() end)
    assert.is_true(txaio.is_failure(fail))
  end)

  it("records a frame for the raising local function at the line of its error call", function()
    local frames = txaio.failure_traceback(capture(function() raiser() end))
    assert.is_table(frames)
    assert.is_truthy(find_frame(frames, { source = THIS, line = RAISE_LINE, name = "raiser" }),
      "no frame {source=" .. THIS .. ", line=" .. RAISE_LINE .. ", name=raiser}")
  end)

  it("records a frame for a raising function stored in a table field", function()
    local frames = txaio.failure_traceback(capture(function() errs.field_raiser() end))
    assert.is_truthy(find_frame(frames,
      { source = THIS, line = FIELD_RAISE_LINE, name = "field_raiser" }))
  end)

  it("lists frames innermost first", function()
    local frames = txaio.failure_traceback(capture(function() middle() end))
    local inner = find_frame(frames, { source = THIS, line = RAISE_LINE, name = "raiser" })
    local outer = find_frame(frames, { source = THIS, line = MIDDLE_CALL_LINE, name = "middle" })
    assert.is_truthy(inner)
    assert.is_truthy(outer)
    assert.is_true(inner < outer)
  end)

  it("starts the traceback at the raise, with no Lua frame of txaio's own before it", function()
    local frames = txaio.failure_traceback(capture(function() raiser() end))
    local inner = find_frame(frames, { source = THIS, line = RAISE_LINE, name = "raiser" })
    assert.is_truthy(inner)
    for i = 1, inner - 1 do
      assert.is_falsy(tostring(frames[i].source):find("%.lua$"),
        "frame " .. i .. " before the raise is Lua code: " .. tostring(frames[i].source))
    end
  end)

  it("gives every frame a short string source and every Lua frame an integer line", function()
    local frames = txaio.failure_traceback(capture(function() middle() end))
    assert.is_true(#frames >= 2)
    for _, fr in ipairs(frames) do
      assert.is_string(fr.source)
      assert.are_not.equal("@", fr.source:sub(1, 1))
      if fr.source:find("%.lua$") then
        assert.is_true(compat.is_integer(fr.line), "not an integer line: " .. tostring(fr.line))
      elseif fr.line ~= nil then
        assert.is_true(compat.is_integer(fr.line), "not an integer line: " .. tostring(fr.line))
      end
    end
  end)

  it("uses the short source of this spec file", function()
    assert.is_truthy(THIS:find("failure_spec.lua", 1, true))
    local frames = txaio.failure_traceback(capture(function() raiser() end))
    local i = find_frame(frames, { line = RAISE_LINE, name = "raiser" })
    assert.is_truthy(i)
    assert.equal(THIS, frames[i].source)
  end)

  it("keeps a string error value unchanged", function()
    assert.equal("boom", capture(function() raiser() end).value)
  end)

  it("keeps a table error value as the same table", function()
    local t = { reason = "x" }
    assert.is_true(rawequal(t, raise_value(t).value))
  end)

  it("keeps a userdata error value as the same userdata", function()
    assert.is_true(rawequal(io.stdout, raise_value(io.stdout).value))
  end)

  it("keeps a number error value", function()
    local v = raise_value(42).value
    assert.equal(42, v)
    assert.is_true(compat.is_integer(v))
    assert.equal(1.5, raise_value(1.5).value)
  end)

  it("keeps boolean error values, including false", function()
    assert.is_true(raise_value(true).value)
    assert.is_false(raise_value(false).value)
  end)

  it("returns a failure that is raised again unchanged", function()
    local first = capture(function() raiser() end)
    local again = capture(function() error(first) end)
    assert.is_true(rawequal(first, again))
  end)
end)

describe("txaio.create_failure called directly", function()
  it("returns a failure passed in unchanged", function()
    local fail = txaio.create_failure("x")
    assert.is_true(rawequal(fail, txaio.create_failure(fail)))
  end)

  it("wraps any value and keeps it as the failure's value", function()
    local t = {}
    assert.is_true(rawequal(t, txaio.create_failure(t).value))
    assert.equal("plain", txaio.create_failure("plain").value)
  end)

  it("records the caller's frame", function()
    local frames = txaio.failure_traceback(make_direct())
    local want = { source = THIS, line = DIRECT_LINE, name = "make_direct" }
    assert.is_truthy(find_frame(frames, want),
      "no frame {source=" .. THIS .. ", line=" .. DIRECT_LINE .. ", name=make_direct}")
  end)

  it("puts the caller's frame before any other Lua frame", function()
    local frames = txaio.failure_traceback(make_direct())
    local i = find_frame(frames, { source = THIS, line = DIRECT_LINE })
    assert.is_truthy(i)
    for j = 1, i - 1 do
      assert.is_falsy(tostring(frames[j].source):find("%.lua$"))
    end
  end)
end)

describe("txaio.failure_message", function()
  it("formats a string error as 'error: <message>'", function()
    assert.equal("error: boom", txaio.failure_message(raise_value("boom")))
  end)

  it("formats a number error as 'error: <number>'", function()
    assert.equal("error: 42", txaio.failure_message(raise_value(42)))
    assert.equal("error: 1.5", txaio.failure_message(raise_value(1.5)))
  end)

  it("formats a boolean error as 'error: <boolean>'", function()
    assert.equal("error: true", txaio.failure_message(raise_value(true)))
  end)

  it("uses the metatable's __name as the kind of a table error", function()
    local e = setmetatable({},
      { __name = "MyError", __tostring = function() return "it broke" end })
    assert.equal("MyError: it broke", txaio.failure_message(raise_value(e)))
  end)

  it("uses a string field 'name' as the kind of a table error", function()
    local e = setmetatable({ name = "ValueError" },
      { __tostring = function() return "bad value" end })
    assert.equal("ValueError: bad value", txaio.failure_message(raise_value(e)))
  end)

  it("uses the 'name' field of a plain table and tostring of the table", function()
    local e = { name = "KeyError" }
    assert.equal("KeyError: " .. tostring(e), txaio.failure_message(raise_value(e)))
  end)

  it("prefers the metatable's __name over a 'name' field", function()
    local e = setmetatable({ name = "FieldName" },
      { __name = "MetaName", __tostring = function() return "msg" end })
    assert.equal("MetaName: msg", txaio.failure_message(raise_value(e)))
  end)

  it("uses the metatable's __name of a userdata error", function()
    -- before 5.3 luaL_newmetatable sets no __name: give the file metatable one for this test
    local mt = getmetatable(io.stdout)
    local saved = rawget(mt, "__name")
    if saved == nil then rawset(mt, "__name", "FILE*") end
    local ok, msg = pcall(txaio.failure_message, raise_value(io.stdout))
    rawset(mt, "__name", saved)
    assert(ok, msg)
    assert.equal("FILE*: " .. tostring(io.stdout), msg)
  end)

  it("names a CancelledError value 'CancelledError'", function()
    local e = setmetatable({ message = "stop" }, txaio.CancelledError)
    local msg = txaio.failure_message(txaio.create_failure(e))
    assert.equal("CancelledError", msg:sub(1, #"CancelledError"))
  end)

  it("returns a single line for a multi-line error message", function()
    local msg = txaio.failure_message(raise_value("line one\nline two"))
    assert.is_string(msg)
    assert.is_false(has_newline(msg))
    assert.equal("error: line one", msg:sub(1, #"error: line one"))
  end)

  -- tostring keeps a NUL and what follows it; the message was cut at the first NUL
  it("keeps NUL bytes in the message and in the kind", function()
    assert.equal("error: bad\0byte here", txaio.failure_message(raise_value("bad\0byte here")))
    local e = setmetatable({}, { __name = "My\0Error", __tostring = function() return "x\0y" end })
    assert.equal("My\0Error: x\0y", txaio.failure_message(raise_value(e)))
  end)

  it("never raises when the error value's __tostring raises", function()
    local e = setmetatable({}, { __tostring = function() error("tostring exploded") end })
    local msg = string_of(txaio.failure_message, raise_value(e))
    assert.is_false(has_newline(msg))
  end)

  it("never raises when __tostring raises on a value with __name", function()
    local e = setmetatable({}, { __name = "Grumpy", __tostring = function() error({}) end })
    string_of(txaio.failure_message, raise_value(e))
  end)

  it("never raises when __tostring returns a non-string", function()
    local e = setmetatable({}, { __tostring = function() return {} end })
    string_of(txaio.failure_message, raise_value(e))
  end)
end)

describe("txaio.failure_format_traceback", function()
  it("starts with the failure message", function()
    local fail = capture(function() raiser() end)
    local text = txaio.failure_format_traceback(fail)
    local msg = txaio.failure_message(fail)
    assert.equal(msg, text:sub(1, #msg))
  end)

  it("spans several lines and contains 'stack traceback:'", function()
    local text = txaio.failure_format_traceback(capture(function() middle() end))
    assert.is_true(has_newline(text))
    assert.is_truthy(text:find("stack traceback:", 1, true))
  end)

  it("names the raising function's source and line", function()
    local text = txaio.failure_format_traceback(capture(function() middle() end))
    assert.is_truthy(text:find(THIS .. ":" .. RAISE_LINE, 1, true), text)
    assert.is_truthy(text:find("raiser", 1, true), text)
    assert.is_truthy(text:find(THIS .. ":" .. MIDDLE_CALL_LINE, 1, true), text)
  end)

  it("never raises when the error value's __tostring raises", function()
    local e = setmetatable({}, { __tostring = function() error("nope") end })
    string_of(txaio.failure_format_traceback, raise_value(e))
  end)
end)

describe("tostring of a failure", function()
  it("is a non-empty string", function()
    local s = tostring(capture(function() raiser() end))
    assert.is_string(s)
    assert.is_true(#s > 0)
  end)

  it("is a string even when the error value's __tostring raises", function()
    local e = setmetatable({}, { __tostring = function() error("nope") end })
    string_of(tostring, raise_value(e))
  end)
end)

describe("txaio.is_failure", function()
  it("is true for a failure", function()
    assert.is_true(txaio.is_failure(txaio.create_failure("x")))
    assert.is_true(txaio.is_failure(capture(function() raiser() end)))
  end)

  it("is false for a future", function()
    assert.is_false(txaio.is_failure(txaio.create_future()))
    assert.is_false(txaio.is_failure(txaio.create_future_error("x")))
  end)

  it("is false for tables, strings, numbers, nil and foreign userdata", function()
    assert.is_false(txaio.is_failure({}))
    assert.is_false(txaio.is_failure({ value = "x", traceback = {} }))
    assert.is_false(txaio.is_failure("failure"))
    assert.is_false(txaio.is_failure(1))
    assert.is_false(txaio.is_failure(nil))
    assert.is_false(txaio.is_failure())
    assert.is_false(txaio.is_failure(io.stdout))
  end)
end)

describe("txaio.CancelledError", function()
  it("is a metatable named 'CancelledError'", function()
    assert.is_table(txaio.CancelledError)
    assert.equal("CancelledError", txaio.CancelledError.__name)
  end)
end)

describe("the await chain", function()
  local core = require "txaio.core"

  it("is empty for a failure that never crossed an await, and a fresh list each time", function()
    local fl = txaio.create_failure("x")
    assert.same({}, fl:await_chain())
    assert.is_false(rawequal(fl:await_chain(), fl:await_chain()))
    assert.is_nil(txaio.failure_format_traceback(fl):find("awaited at:", 1, true))
  end)

  it("grows on a new failure that shares the value and frames, leaving the original alone", function()
    local fl = txaio.create_failure({ "v" })
    local here = debug.getinfo(1, "l").currentline; local up = core.failure_awaited(fl, 1)
    assert.is_true(txaio.is_failure(up))
    assert.is_false(rawequal(fl, up))
    assert.is_true(rawequal(fl.value, up.value))
    assert.is_true(rawequal(fl:traceback(), up:traceback()))
    assert.equal(0, #fl:await_chain())
    assert.equal(here, up:await_chain()[1].line)
    local again = core.failure_awaited(up, raiser)
    assert.equal(2, #again:await_chain())
    assert.is_nil(again:await_chain()[2].line)
    assert.equal(debug.getinfo(raiser, "S").linedefined, again:await_chain()[2].linedefined)
    assert.equal(1, #up:await_chain())
  end)

  it("takes its frame from another thread's stack", function()
    local co = coroutine.create(function() coroutine.yield() end)
    coroutine.resume(co)
    local up = core.failure_awaited(txaio.create_failure("x"), co, 1)
    assert.equal(1, #up:await_chain())
    assert.equal("Lua", up:await_chain()[1].what)
  end)

  it("adds nothing for a level past the top of the stack", function()
    assert.equal(0, #core.failure_awaited(txaio.create_failure("x"), 1000):await_chain())
  end)

  it("rejects what is not a failure, a level or a function", function()
    local fl = txaio.create_failure("x")
    assert.matches("bad argument #1 to '[%w._?]*' %(txaio.Failure expected, got string%)",
      error_message_of(core.failure_awaited, "x", 1))
    assert.matches("bad argument #2 .*level must not be negative", error_message_of(core.failure_awaited, fl, -1))
    assert.matches("bad argument #2 .*number expected, got table", error_message_of(core.failure_awaited, fl, {}))
    -- 5.1 and 5.2 would truncate it to level 1; every version refuses it as 5.3 does
    assert.matches("bad argument #2 .*number has no integer representation",
      error_message_of(core.failure_awaited, fl, 1.5))
    assert.matches("bad argument #2 .*number has no integer representation",
      error_message_of(core.failure_awaited, fl, 0 / 0))
    assert.matches("bad argument #3 .*number expected, got no value",
      error_message_of(core.failure_awaited, fl, coroutine.create(function() end)))
    assert.matches("bad argument #1 .*txaio.Failure expected, got table", error_message_of(fl.await_chain, {}))
  end)
end)
