-- Bad input: CONTRACT section 11. Every public function checks its arguments and raises a clear
-- `bad argument` error, and a refused call leaves no future (or timer, or loop) half-changed.
local txaio = require "txaio"
local core = require "txaio.core"
local compat = require "compat"
local helpers = require "helpers"
local pack, unpack = compat.pack, compat.unpack
local error_of, assert_contains = helpers.error_of, helpers.assert_contains

txaio.use_host { now = function() return 0 end }
local MAIN_LOOP = txaio.config.loop

local NAN, HUGE = 0 / 0, math.huge
local FUTURE_T, FAILURE_T = "txaio.Future expected", "txaio.Failure expected"

-- Placeholders in argument lists, replaced in each test by fresh objects:
-- FUT a pending future (with a spy canceller), DONE a resolved future, FAIL a failure, CB a spy.
local function placeholder(name)
  return setmetatable({}, { __tostring = function() return "<" .. name .. ">" end })
end
local FUT, DONE, FAIL, CB = placeholder("FUT"), placeholder("DONE"), placeholder("FAIL"),
  placeholder("CB")
local PLACEHOLDER = { [FUT] = "f", [DONE] = "done", [FAIL] = "fail", [CB] = "cb" }

-- `list(...)` is a list argument whose items may be placeholders (for gather).
local LIST_MT = {}
local function list(...) return setmetatable(pack(...), LIST_MT) end
local A = pack

local function uses_future(args)
  for i = 1, args.n do
    local v = args[i]
    if v == FUT or v == DONE or v == FAIL then return true end
    if getmetatable(v) == LIST_MT and uses_future(v) then return true end
  end
  return false
end

local function materialize(args, env)
  local out = { n = args.n }
  for i = 1, args.n do
    local v = args[i]
    if PLACEHOLDER[v] then
      out[i] = env[PLACEHOLDER[v]]
    elseif getmetatable(v) == LIST_MT then
      out[i] = materialize(v, env)
      out[i].n = nil
    else
      out[i] = v
    end
  end
  return out
end

local function new_env(fut_api)
  local env = { calls = 0 }
  local function spy() env.calls = env.calls + 1 end
  env.cb = spy
  env.f = fut_api.create_future(nil, nil, spy)
  env.done = fut_api.create_future_success(1)
  env.fail = fut_api.create_failure("x")
  return env
end

-- Method forms, reached through a future: the function under test is `env.f.<name>`.
local function method(name)
  return function(_, env) return env.f[name] end
end

local function host_adapter() return { now = function() return 0 end } end

--[[ Rows: { label, fn, args, fragment, [opts] }
  fn      name of an API function, or function(api, env) returning the callable to test
  args    A(...) of arguments; placeholders are replaced per test
  opts    type = a type name the message must contain; position = an index the message must
          name after "bad argument #1"; main_only = only for `txaio` itself (not with_config
          objects); timers = the loop's pending count must not change; loop = the selected
          loop must not change; later = pending when the API function is missing
]]
local ROWS = {
  -- create_future([result], [error], [canceller])
  { "create_future", "create_future", A(nil, nil, 42), "bad argument #3" },
  { "create_future", "create_future", A(nil, nil, {}), "bad argument #3" },
  { "create_future", "create_future", A(nil, nil, "print"), "bad argument #3" },
  { "create_future", "create_future", A(nil, nil, NAN), "bad argument #3" },
  { "create_future", "create_future", A(1, "e"), "result and error are exclusive" },

  -- create_future_error(error)
  { "create_future_error", "create_future_error", A(nil), "bad argument #1" },
  { "create_future_error", "create_future_error", A(), "bad argument #1" },

  -- as_future(fn, ...)
  { "as_future", "as_future", A(42), "bad argument #1" },
  { "as_future", "as_future", A(nil), "bad argument #1" },
  { "as_future", "as_future", A(), "bad argument #1" },
  { "as_future", "as_future", A({}), "bad argument #1" },
  { "as_future", "as_future", A("print"), "bad argument #1" },
  { "as_future", "as_future", A(HUGE), "bad argument #1" },
  { "as_future", "as_future", A(FUT), "bad argument #1" },

  -- is_called(f)
  { "is_called", "is_called", A({}), "bad argument #1", { type = FUTURE_T } },
  { "is_called", "is_called", A(nil), "bad argument #1", { type = FUTURE_T } },
  { "is_called", "is_called", A(), "bad argument #1", { type = FUTURE_T } },
  { "is_called", "is_called", A(io.stdout), "bad argument #1", { type = FUTURE_T } },
  { "is_called", "is_called", A(FAIL), "bad argument #1", { type = FUTURE_T } },
  { "is_called", "is_called", A(NAN), "bad argument #1", { type = FUTURE_T } },
  { "is_called", "is_called", A("future"), "bad argument #1", { type = FUTURE_T } },

  -- resolve(f, value)
  { "resolve", "resolve", A({}, 1), "bad argument #1", { type = FUTURE_T } },
  { "resolve", "resolve", A(nil, 1), "bad argument #1", { type = FUTURE_T } },
  { "resolve", "resolve", A(), "bad argument #1", { type = FUTURE_T } },
  { "resolve", "resolve", A(io.stdout, 1), "bad argument #1", { type = FUTURE_T } },
  { "resolve", "resolve", A(FAIL, 1), "bad argument #1", { type = FUTURE_T } },
  { "resolve", "resolve", A(HUGE, 1), "bad argument #1", { type = FUTURE_T } },
  { "resolve", "resolve", A(CB, 1), "bad argument #1", { type = FUTURE_T } },

  -- reject(f, error)
  { "reject", "reject", A({}, "e"), "bad argument #1", { type = FUTURE_T } },
  { "reject", "reject", A(nil, "e"), "bad argument #1", { type = FUTURE_T } },
  { "reject", "reject", A(io.stdout, "e"), "bad argument #1", { type = FUTURE_T } },
  { "reject", "reject", A(FAIL, "e"), "bad argument #1", { type = FUTURE_T } },
  { "reject", "reject", A(FUT, nil), "bad argument #2" },
  { "reject", "reject", A(FUT), "bad argument #2" },

  -- cancel(f, [msg])
  { "cancel", "cancel", A({}), "bad argument #1", { type = FUTURE_T } },
  { "cancel", "cancel", A(nil), "bad argument #1", { type = FUTURE_T } },
  { "cancel", "cancel", A(FAIL), "bad argument #1", { type = FUTURE_T } },
  { "cancel", "cancel", A(io.stdout), "bad argument #1", { type = FUTURE_T } },
  { "cancel", "cancel", A(FUT, {}), "bad argument #2" },
  { "cancel", "cancel", A(FUT, true), "bad argument #2" },
  { "cancel", "cancel", A(FUT, CB), "bad argument #2" },

  -- add_callbacks(f, callback, errback)
  { "add_callbacks", "add_callbacks", A({}, CB), "bad argument #1", { type = FUTURE_T } },
  { "add_callbacks", "add_callbacks", A(nil, CB), "bad argument #1", { type = FUTURE_T } },
  { "add_callbacks", "add_callbacks", A(FAIL, CB), "bad argument #1", { type = FUTURE_T } },
  { "add_callbacks", "add_callbacks", A(io.stdout, CB, CB), "bad argument #1",
    { type = FUTURE_T } },
  { "add_callbacks", "add_callbacks", A(FUT, 42, nil), "bad argument #2" },
  { "add_callbacks", "add_callbacks", A(FUT, {}, nil), "bad argument #2" },
  { "add_callbacks", "add_callbacks", A(FUT, "print", CB), "bad argument #2" },
  { "add_callbacks", "add_callbacks", A(FUT, nil, 42), "bad argument #3" },
  { "add_callbacks", "add_callbacks", A(FUT, CB, {}), "bad argument #3" },
  { "add_callbacks", "add_callbacks", A(FUT, CB, true), "bad argument #3" },
  { "add_callbacks", "add_callbacks", A(FUT, nil, nil), "callback and errback cannot both be nil" },
  { "add_callbacks", "add_callbacks", A(FUT), "callback and errback cannot both be nil" },

  -- gather(futures, [consume_exceptions])
  { "gather", "gather", A("futures"), "bad argument #1" },
  { "gather", "gather", A(nil), "bad argument #1" },
  { "gather", "gather", A(), "bad argument #1" },
  { "gather", "gather", A(HUGE), "bad argument #1" },
  { "gather", "gather", A(FUT), "bad argument #1" },
  { "gather", "gather", A(list(FUT, DONE, "x")), "bad argument #1", { position = 3 } },
  { "gather", "gather", A(list(FUT, DONE, FAIL)), "bad argument #1", { position = 3 } },
  { "gather", "gather", A(list(DONE, FUT, {})), "bad argument #1", { position = 3 } },
  { "gather", "gather", A(list(FUT, 42)), "bad argument #1", { position = 2 } },

  -- failure_message / failure_traceback / failure_format_traceback (fail)
  { "failure_message", "failure_message", A({}), "bad argument #1", { type = FAILURE_T } },
  { "failure_message", "failure_message", A(nil), "bad argument #1", { type = FAILURE_T } },
  { "failure_message", "failure_message", A("boom"), "bad argument #1", { type = FAILURE_T } },
  { "failure_message", "failure_message", A(FUT), "bad argument #1", { type = FAILURE_T } },
  { "failure_message", "failure_message", A(io.stdout), "bad argument #1", { type = FAILURE_T } },
  { "failure_traceback", "failure_traceback", A({}), "bad argument #1", { type = FAILURE_T } },
  { "failure_traceback", "failure_traceback", A(), "bad argument #1", { type = FAILURE_T } },
  { "failure_traceback", "failure_traceback", A(FUT), "bad argument #1", { type = FAILURE_T } },
  { "failure_traceback", "failure_traceback", A(NAN), "bad argument #1", { type = FAILURE_T } },
  { "failure_format_traceback", "failure_format_traceback", A({}), "bad argument #1",
    { type = FAILURE_T } },
  { "failure_format_traceback", "failure_format_traceback", A(nil), "bad argument #1",
    { type = FAILURE_T } },
  { "failure_format_traceback", "failure_format_traceback", A(FUT), "bad argument #1",
    { type = FAILURE_T } },
  { "failure_format_traceback", "failure_format_traceback", A(io.stdout), "bad argument #1",
    { type = FAILURE_T } },

  -- Methods reached through a future, called on the wrong self or with bad arguments.
  { "f.resolve", method("resolve"), A({}, 1), "bad argument #1", { type = FUTURE_T } },
  { "f.resolve", method("resolve"), A(FAIL, 1), "bad argument #1", { type = FUTURE_T } },
  { "f.reject", method("reject"), A("x", "e"), "bad argument #1", { type = FUTURE_T } },
  { "f.reject", method("reject"), A(FUT, nil), "bad argument #2" },
  { "f.cancel", method("cancel"), A({}), "bad argument #1", { type = FUTURE_T } },
  { "f.cancel", method("cancel"), A(FUT, {}), "bad argument #2" },
  { "f.is_called", method("is_called"), A(io.stdout), "bad argument #1", { type = FUTURE_T } },
  { "f.add_callbacks", method("add_callbacks"), A({}, CB), "bad argument #1",
    { type = FUTURE_T } },
  { "f.add_callbacks", method("add_callbacks"), A(FUT, 42), "bad argument #2" },
  { "f.add_callbacks", method("add_callbacks"), A(FUT, CB, 42), "bad argument #3" },
  { "f.result", method("result"), A({}), "bad argument #1", { type = FUTURE_T } },
  { "f.result", method("result"), A(FAIL), "bad argument #1", { type = FUTURE_T } },

  -- use_host(adapter) and host_loop(adapter)
  { "use_host", "use_host", A(42), "bad argument #1", { main_only = true, loop = true } },
  { "use_host", "use_host", A(nil), "bad argument #1", { main_only = true, loop = true } },
  { "use_host", "use_host", A({}), "bad argument #1", { main_only = true, loop = true } },
  { "use_host", "use_host", A({ now = 42 }), "bad argument #1",
    { main_only = true, loop = true } },
  { "use_host", "use_host", A({ now = {} }), "bad argument #1",
    { main_only = true, loop = true } },
  { "use_host", "use_host", A({ now = function() return 0 end, wake = 42 }), "bad argument #1",
    { main_only = true, loop = true } },
  { "use_host", "use_host", A({ now = function() return 0 end, wake = {} }), "bad argument #1",
    { main_only = true, loop = true } },
  { "host_loop", "host_loop", A(42), "bad argument #1", { main_only = true } },
  { "host_loop", "host_loop", A({}), "bad argument #1", { main_only = true } },
  { "host_loop", "host_loop", A({ now = "now" }), "bad argument #1", { main_only = true } },

  -- call_later(delay, fn, ...) and sleep(delay): arrive with the scheduler issue.
  { "call_later", "call_later", A(NAN, CB), "bad argument #1", { timers = true, later = true } },
  { "call_later", "call_later", A(HUGE, CB), "bad argument #1", { timers = true, later = true } },
  { "call_later", "call_later", A(-HUGE, CB), "bad argument #1",
    { timers = true, later = true } },
  { "call_later", "call_later", A("1", CB), "bad argument #1", { timers = true, later = true } },
  { "call_later", "call_later", A(nil, CB), "bad argument #1", { timers = true, later = true } },
  { "call_later", "call_later", A({}, CB), "bad argument #1", { timers = true, later = true } },
  { "call_later", "call_later", A(1, 42), "bad argument #2", { timers = true, later = true } },
  { "call_later", "call_later", A(1, nil), "bad argument #2", { timers = true, later = true } },
  { "call_later", "call_later", A(1, {}), "bad argument #2", { timers = true, later = true } },
  { "sleep", "sleep", A(NAN), "bad argument #1", { timers = true, later = true } },
  { "sleep", "sleep", A(HUGE), "bad argument #1", { timers = true, later = true } },
  { "sleep", "sleep", A(-HUGE), "bad argument #1", { timers = true, later = true } },
  { "sleep", "sleep", A("1"), "bad argument #1", { timers = true, later = true } },
  { "sleep", "sleep", A(nil), "bad argument #1", { timers = true, later = true } },

  -- make_batched_timer(seconds_per_bucket, [chunk_size])
  { "make_batched_timer", "make_batched_timer", A(NAN), "bad argument #1", { later = true } },
  { "make_batched_timer", "make_batched_timer", A(-1), "bad argument #1", { later = true } },
  { "make_batched_timer", "make_batched_timer", A("x"), "bad argument #1", { later = true } },
  { "make_batched_timer", "make_batched_timer", A(nil), "bad argument #1", { later = true } },
  { "make_batched_timer", "make_batched_timer", A(1, 0), "bad argument #2", { later = true } },
  { "make_batched_timer", "make_batched_timer", A(1, -5), "bad argument #2", { later = true } },
  { "make_batched_timer", "make_batched_timer", A(1, 1.5), "bad argument #2", { later = true } },
  { "make_batched_timer", "make_batched_timer", A(1, "x"), "bad argument #2", { later = true } },

  -- spawn(fn, ...) and with_config{loop = ...}
  { "spawn", "spawn", A(42), "bad argument #1", { later = true } },
  { "spawn", "spawn", A(nil), "bad argument #1", { later = true } },
  { "with_config", "with_config", A(42), "bad argument #1", { main_only = true, later = true } },
  { "with_config", "with_config", A({ loop = 42 }), "bad argument #1",
    { main_only = true, later = true } },
  { "with_config", "with_config", A({ loop = "loop" }), "bad argument #1",
    { main_only = true, later = true } },
}

local function describe_args(args)
  local parts = {}
  for i = 1, args.n do
    local v = args[i]
    if type(v) == "string" then
      parts[i] = ("%q"):format(v)
    elseif getmetatable(v) == LIST_MT then
      parts[i] = "{" .. describe_args(v) .. "}"
    elseif v ~= v then
      parts[i] = "NaN"
    elseif rawequal(v, io.stdout) then
      parts[i] = "io.stdout"
    elseif type(v) == "table" and not PLACEHOLDER[v] then
      parts[i] = "{...}"
    else
      parts[i] = tostring(v)
    end
  end
  return table.concat(parts, ", ")
end

-- The text after "bad argument #1" names index `pos` as a whole number.
local function names_position(err, pos)
  local _, e = err:find("bad argument #1", 1, true)
  local rest = err:sub(e + 1)
  return rest:find("%f[%d]" .. pos .. "%f[%D]") ~= nil
end

local function check_untouched(ctx, env)
  local fut_api = ctx.fut_api
  assert.is_false(fut_api.is_called(env.f), "the refused call completed the future")
  local got
  fut_api.add_callbacks(env.f, function(v) got = v end, nil)
  fut_api.resolve(env.f, "still fine")
  assert.equal("still fine", got)
  assert.equal(0, env.calls, "a callback, errback or canceller of the refused call ran")
end

local function run_row(ctx, row)
  local fn, args, fragment, opts = row[2], row[3], row[4], row[5] or {}
  local api = ctx.api
  local env = new_env(ctx.fut_api)
  local callee
  if type(fn) == "string" then callee = api[fn] else callee = fn(api, env) end
  if opts.later and callee == nil then
    pending(row[1] .. " arrives with a later issue")
  end
  assert.is_not_nil(callee, row[1] .. " is missing")
  local timers_before = opts.timers and ctx.loop:pending()
  local a = materialize(args, env)
  local ok, err = pcall(callee, unpack(a, 1, a.n))
  assert.is_false(ok, "the call did not raise")
  err = tostring(err)
  assert.is_truthy(err:find(fragment, 1, true), ("expected %q in: %s"):format(fragment, err))
  if opts.type then
    assert.is_truthy(err:find(opts.type, 1, true), ("expected %q in: %s"):format(opts.type, err))
  end
  if opts.position then
    assert.is_true(names_position(err, opts.position),
      ("expected position %d in: %s"):format(opts.position, err))
  end
  if opts.timers then
    assert.equal(timers_before, ctx.loop:pending(), "a refused call left a timer scheduled")
  end
  if opts.loop then
    assert.is_true(rawequal(MAIN_LOOP, txaio.config.loop), "a refused use_host changed the loop")
    assert.is_true(txaio.using_host)
    assert.equal(0, txaio.config.loop:now())
  end
  if uses_future(args) then check_untouched(ctx, env) end
end

local function with_config_api()
  if txaio.with_config == nil then return nil end
  local loop = txaio.host_loop(host_adapter())
  return txaio.with_config { loop = loop }, loop
end

local CONTEXTS = {
  { title = "txaio", rows = function() return true end,
    make = function() return { api = txaio, fut_api = txaio, loop = MAIN_LOOP } end },
  { title = "a with_config object", rows = function(row) return not (row[5] or {}).main_only end,
    make = function()
      local api, loop = with_config_api()
      return api and { api = api, fut_api = api, loop = loop }
    end },
  { title = "txaio given futures of a with_config object", rows = function(row)
      return uses_future(row[3]) and not (row[5] or {}).main_only
    end,
    make = function()
      local api, loop = with_config_api()
      return api and { api = txaio, fut_api = api, loop = loop }
    end },
}

for _, context in ipairs(CONTEXTS) do
  describe("bad input to " .. context.title, function()
    for _, row in ipairs(ROWS) do
      if context.rows(row) then
        local title = ("%s(%s) raises '%s'"):format(row[1], describe_args(row[3]), row[4])
        it(title, function()
          local ctx = context.make()
          if ctx == nil then pending("with_config arrives with a later issue") end
          run_row(ctx, row)
        end)
      end
    end
  end)
end

describe("good input at the edges", function()
  it("add_callbacks accepts a table with a __call metamethod as callback", function()
    local f = txaio.create_future()
    local got
    local cb = setmetatable({}, { __call = function(_, v) got = v end })
    assert.is_true(rawequal(f, txaio.add_callbacks(f, cb, nil)))
    txaio.resolve(f, "called")
    assert.equal("called", got)
  end)

  it("add_callbacks accepts a table with a __call metamethod as errback", function()
    local f = txaio.create_future()
    local got
    local eb = setmetatable({}, { __call = function(_, fail) got = fail end })
    txaio.add_callbacks(f, nil, eb)
    txaio.reject(f, "oops")
    assert.is_true(txaio.is_failure(got))
  end)

  it("create_future accepts a table with a __call metamethod as canceller", function()
    local called = 0
    local f = txaio.create_future(nil, nil, setmetatable({}, {
      __call = function() called = called + 1 end }))
    txaio.add_callbacks(f, nil, function() end)
    txaio.cancel(f)
    assert.equal(1, called)
  end)

  it("as_future accepts a table with a __call metamethod", function()
    local fn = setmetatable({}, { __call = function(_, x) return x * 2 end })
    local f = txaio.as_future(fn, 21)
    local got
    txaio.add_callbacks(f, function(v) got = v end, nil)
    assert.equal(42, got)
  end)

  it("cancel accepts a string message", function()
    local f = txaio.create_future()
    local fail
    txaio.add_callbacks(f, nil, function(x) fail = x end)
    txaio.cancel(f, "enough")
    assert.is_true(txaio.is_failure(fail))
    assert.equal("enough", fail.value.message)
  end)

  it("create_future_success accepts nil", function()
    local f = txaio.create_future_success(nil)
    assert.is_true(txaio.is_called(f))
  end)

  it("is_future and is_failure answer false for odd values without raising", function()
    for _, v in ipairs { NAN, HUGE, io.stdout, {}, "x", true } do
      assert.is_false(txaio.is_future(v))
      assert.is_false(txaio.is_failure(v))
    end
    assert.is_false(txaio.is_future())
    assert.is_false(txaio.is_failure())
  end)

  it("a userdata dressed in a future's metatable is still not a future", function()
    -- a metatable check would take it for one, and then read a FILE handle as a future
    local fh = assert(io.tmpfile())
    local file_mt = debug.getmetatable(fh)
    debug.setmetatable(fh, debug.getmetatable(txaio.create_future()))
    local is_future = txaio.is_future(fh)
    local ok_resolve, resolve_err = pcall(txaio.resolve, fh, 1)
    local ok_add, add_err = pcall(txaio.add_callbacks, fh, function() end, nil)
    debug.setmetatable(fh, file_mt)
    fh:close()
    assert.is_false(is_future)
    assert.is_false(ok_resolve)
    -- (plain 5.1 names a function that pcall calls directly '?')
    local why = "' %(" .. FUTURE_T .. ", got a userdata that only has its metatable%)"
    assert.matches("bad argument #1 to '[%w_.?]*" .. why, resolve_err)
    assert.is_false(ok_add)
    assert.matches("bad argument #1 to '[%w_.?]*" .. why, add_err)
  end)

  it("a userdata dressed in an unobserved failed future's metatable is named a future too", function()
    -- a failed future nobody has observed has a second metatable (with a finalizer)
    local failed = txaio.create_future_error("for its metatable")
    local unobserved_mt = debug.getmetatable(failed)
    txaio.add_callbacks(failed, nil, function() end)   -- observed: nothing to report
    assert.are_not.equal(debug.getmetatable(txaio.create_future()), unobserved_mt)
    local fh = assert(io.tmpfile())
    local file_mt = debug.getmetatable(fh)
    debug.setmetatable(fh, unobserved_mt)
    local ok, err = pcall(txaio.resolve, fh, 1)
    debug.setmetatable(fh, file_mt)
    fh:close()
    assert.is_false(ok)
    assert.matches("bad argument #1 to '[%w_.?]*' %(" .. FUTURE_T
      .. ", got a userdata that only has its metatable%)", err)
  end)

  it("host_loop accepts tables with a __call metamethod as now and wake", function()
    local now = setmetatable({}, { __call = function() return 3 end })
    local wake = setmetatable({}, { __call = function() end })
    local loop = txaio.host_loop { now = now, wake = wake }
    assert.equal(3, loop:now())
  end)

  it("call_later accepts a negative finite delay", function()
    if txaio.call_later == nil then
      pending("call_later arrives with the scheduler issue")
    end
    local h = txaio.call_later(-1, function() end)
    assert.is_not_nil(h)
    assert.is_true(h:active())
    h:cancel()
    assert.is_false(h:active())
    h = txaio.call_later(-0.5, function() end)
    assert.is_true(h:cancel())
  end)

  it("sleep accepts a negative finite delay", function()
    if txaio.sleep == nil then
      pending("sleep arrives with the scheduler issue")
    end
    local f = txaio.sleep(-1)
    assert.is_true(txaio.is_future(f))
    txaio.cancel(f)
  end)
end)

-- An argument error points at the caller's line (Lua's error(msg, 2)) or at nothing (C's
-- luaL_argerror), never into txaio's own files; a refused selection keeps the current loop.
describe("argument errors of the loop functions", function()
  local CASES = {
    { "use_host", function() txaio.use_host(42) end },
    { "host_loop", function() txaio.host_loop(42) end },
    { "use_luv", function() txaio.use_luv(42) end },
    { "luv_loop", function() txaio.luv_loop(42) end },
    { "with_config", function() txaio.with_config(42) end },
    { "config.loop", function() txaio.config.loop = 42 end },
    { "resolve", function() txaio.resolve({}, 1) end },
    { "call_later", function() txaio.call_later(NAN, print) end },
  }
  for _, case in ipairs(CASES) do
    it(case[1] .. " blames the caller, not txaio's own files", function()
      if txaio[case[1]] == nil and case[1] ~= "config.loop" then
        pending(case[1] .. " arrives with a later issue")
      end
      local ok, err = pcall(case[2])
      assert.is_false(ok)
      err = tostring(err)
      assert.is_truthy(err:find("bad argument", 1, true), err)
      assert.is_falsy(err:find("txaio/", 1, true), "the error points into txaio: " .. err)
    end)

    it(case[1] .. " leaves the selected loop unchanged when refused", function()
      pcall(case[2])
      assert.is_true(rawequal(MAIN_LOOP, txaio.config.loop))
      assert.is_true(txaio.using_host)
      assert.is_false(txaio.using_luv)
    end)
  end
end)

-- A loop object is a table, so Lua code can make one up: `config.loop`, `with_config` and the
-- functions of core.bind must never take a userdata that the core did not make as a scheduler.
describe("a loop whose _sched is not a scheduler", function()
  local NOT_A_LOOP = "(loop object, luv module or host adapter expected, got table)"

  -- userdata that are not schedulers: the core's other objects and a file handle
  local function impostors()
    local clock = require("txaio.testutil").Clock()
    return {
      { "a failure", txaio.create_failure("x") },
      { "io.stdout", io.stdout },
      { "a future", txaio.create_future() },
      { "a timer handle", clock._sched:call_later(5, function() end) },
      { "a batched timer", txaio.with_config({ loop = clock }).make_batched_timer(1) },
    }
  end

  for _, case in ipairs(impostors()) do
    it("is refused by config.loop when _sched is " .. case[1], function()
      local err = error_of(function() txaio.config.loop = { _sched = case[2] } end)
      assert_contains(tostring(err), "bad argument #1 to 'config.loop' " .. NOT_A_LOOP)
      assert.is_true(rawequal(MAIN_LOOP, txaio.config.loop))
      -- and the loop still selected still schedules
      local h = txaio.call_later(1, function() end)
      assert.is_true(h:cancel())
    end)

    it("is refused by with_config when _sched is " .. case[1], function()
      local err = error_of(txaio.with_config, { loop = { _sched = case[2] } })
      assert_contains(tostring(err), "bad argument #1 to 'with_config' " .. NOT_A_LOOP)
    end)
  end

  it("is refused by core.bind's setter, and the bound functions still have no loop", function()
    local values = { "a string", 42, {}, true, print }
    for _, case in ipairs(impostors()) do values[#values + 1] = case[2] end
    for _, v in ipairs(values) do
      local api, set = core.bind()
      local err = tostring(error_of(set, v))
      assert_contains(err, "bad argument #1 to '")
      assert_contains(err, "(scheduler or nil expected, got ")
      for name, call in pairs {
        call_later = function() return api.call_later(0, function() end) end,
        sleep = function() return api.sleep(0) end,
        tick = function() return api.tick() end,
        make_batched_timer = function() return api.make_batched_timer(1) end,
      } do
        local why = tostring(error_of(call))
        assert.is_truthy(why:find("txaio: no event loop selected", 1, true), name .. ": " .. why)
      end
    end
  end)

  it("is replaced by core.bind's setter with a real scheduler, and nil takes it away", function()
    local api, set = core.bind()
    local clock = require("txaio.testutil").Clock()
    set(clock._sched)
    local ran = false
    api.call_later(1, function() ran = true end)
    clock:advance(1)
    assert.is_true(ran)
    set(nil)
    assert_contains(tostring(error_of(api.tick)), "txaio: no event loop selected")
  end)

  it("is told apart by core.is_scheduler, true only for a scheduler the core made", function()
    assert.is_true(core.is_scheduler(MAIN_LOOP._sched))
    assert.is_true(core.is_scheduler(require("txaio.testutil").Clock()._sched))
    assert.is_true(core.is_scheduler(txaio.host_loop(host_adapter())._sched))
    assert.is_true(core.is_scheduler(core.new_scheduler()))
    for _, case in ipairs(impostors()) do
      assert.is_false(core.is_scheduler(case[2]), case[1])
    end
    for _, v in ipairs { 42, "sched", {}, MAIN_LOOP, { _sched = MAIN_LOOP._sched }, print } do
      assert.is_false(core.is_scheduler(v), tostring(v))
    end
    assert.is_false(core.is_scheduler(nil))
    assert.is_false(core.is_scheduler())
  end)
end)

-- The Failure metatable is reachable from Lua (getmetatable), and so is its `methods` field:
-- replacing that field must not change what a failure's fields and methods are.
describe("a failure whose metatable's methods field was replaced", function()
  for _, replacement in ipairs { 42, "methods", {}, false } do
    it("keeps its fields and methods when methods is set to " .. type(replacement), function()
      local fl = txaio.create_failure("boom")
      local mt = getmetatable(fl)
      local message, text = fl:message(), tostring(fl)
      local original = mt.methods
      mt.methods = replacement
      local ok, err = pcall(function()
        assert.are.equal("boom", fl.value)
        assert.is_function(fl.message)
        assert.are.equal(message, fl:message())
        assert.are.equal(message, txaio.failure_message(fl))
        assert.is_table(fl:traceback())
        assert.is_string(fl:format_traceback())
        assert.are.equal(text, tostring(fl))
        assert.is_nil(fl.no_such_field)
      end)
      mt.methods = original
      if not ok then error(err, 0) end
    end)
  end
end)

-- debug.setmetatable can give one of the core's metatables to any userdata. The core must not
-- read such a lookalike as its own object (it is smaller, and has none of the user values): its
-- methods refuse it with "X expected, got a userdata that only has its metatable".
describe("a userdata that only borrows a core metatable", function()
  -- (called as a method, luaL_argerror says "calling 'm' on bad self" instead of "bad argument #1")
  local function is_lookalike_error(err, tname)
    local why = "(" .. tname .. " expected, got a userdata that only has its metatable)"
    return err:find(why, 1, true) ~= nil
      and (err:find("bad argument #1 to '[%w_.?]*' %(") ~= nil or err:find("on bad self (", 1, true) ~= nil)
  end

  -- Runs fn(ud) with `ud` dressed in metatable `mt`, then gives `ud` its own metatable back (also
  -- when fn raises, whose error goes on unchanged).
  local function dressed(ud, mt, fn)
    local own = debug.getmetatable(ud)
    debug.setmetatable(ud, mt)
    local ok, err = pcall(fn, ud)
    debug.setmetatable(ud, own)
    if not ok then error(err, 0) end
  end

  -- A file handle: a userdata of a few bytes (a luaL_Stream, or a FILE* on 5.1).
  local function with_file(mt, fn)
    local fh = assert(io.tmpfile())
    local ok, err = pcall(dressed, fh, mt, fn)
    fh:close()
    if not ok then error(err, 0) end
  end

  -- A failure: a small userdata of the core's own.
  local function with_failure(mt, fn)
    dressed(txaio.create_failure("a small userdata"), mt, fn)
  end

  local function refused(tname, fn, ...)
    local err = tostring(error_of(fn, ...))
    assert.is_true(is_lookalike_error(err, tname), err)
  end

  it("is refused by the methods of a Timer", function()
    local clock = require("txaio.testutil").Clock()
    local h = clock._sched:call_later(5, function() end)
    local mt = debug.getmetatable(h)
    with_file(mt, function(fake)
      refused("txaio.Timer", mt.__index.active, fake)
      refused("txaio.Timer", mt.__index.cancel, fake)
      refused("txaio.Timer", function() return fake:cancel() end)
    end)
    assert.are.equal(1, clock:pending())
    assert.is_true(h:cancel())
  end)

  it("is refused by the methods of a Scheduler and is no scheduler", function()
    local clock = require("txaio.testutil").Clock()
    local mt = debug.getmetatable(clock._sched)
    with_file(mt, function(fake)
      for _, name in ipairs { "now", "tick", "pending", "next_due" } do
        refused("txaio.Scheduler", mt.__index[name], fake)
      end
      refused("txaio.Scheduler", mt.__index.call_later, fake, 0, function() end)
      assert.is_false(core.is_scheduler(fake))
      local err = error_of(function() txaio.config.loop = { _sched = fake } end)
      assert_contains(tostring(err), "bad argument #1 to 'config.loop'")
      assert.is_true(rawequal(MAIN_LOOP, txaio.config.loop))
      local _, set = core.bind()
      assert_contains(tostring(error_of(set, fake)), "(scheduler or nil expected, got ")
    end)
    assert.are.equal(0, clock:pending())
  end)

  it("is no failure, and is refused by the failure functions and methods", function()
    local fl = txaio.create_failure("real")
    local mt = debug.getmetatable(fl)
    with_file(mt, function(fake)
      assert.is_false(txaio.is_failure(fake))
      assert.is_false(core.is_failure(fake))
      refused("txaio.Failure", txaio.failure_message, fake)
      refused("txaio.Failure", txaio.failure_traceback, fake)
      refused("txaio.Failure", txaio.failure_format_traceback, fake)
      for _, name in ipairs { "message", "traceback", "format_traceback" } do
        refused("txaio.Failure", mt.methods[name], fake)
      end
      refused("txaio.Failure", function() return fake.value end)
      refused("txaio.Failure", tostring, fake)
    end)
    assert.is_true(txaio.is_failure(fl))
    assert.are.equal("real", fl.value)
  end)

  it("is refused by the methods of a BatchedTimer", function()
    local clock = require("txaio.testutil").Clock()
    local bt = txaio.with_config({ loop = clock }).make_batched_timer(1)
    local mt = debug.getmetatable(bt)
    -- a file handle too: on 64-bit systems it used to have the very size of a batched timer
    for _, with in ipairs { with_failure, with_file } do
      with(mt, function(fake)
        refused("txaio.BatchedTimer", mt.__index.call_later, fake, 0, function() end)
        refused("txaio.BatchedTimer", function() return fake:call_later(1, print) end)
      end)
    end
    assert.are.equal(0, clock:pending())
    local ran = false
    bt:call_later(0, function() ran = true end)
    clock:advance(2)
    assert.is_true(ran)
  end)

  it("is refused by the methods of a batched call handle", function()
    local clock = require("txaio.testutil").Clock()
    local bt = txaio.with_config({ loop = clock }).make_batched_timer(1)
    local call = bt:call_later(5, function() end)
    local mt = debug.getmetatable(call)
    for _, with in ipairs { with_failure, with_file } do
      with(mt, function(fake)
        refused("txaio.BatchedCall", mt.__index.active, fake)
        refused("txaio.BatchedCall", mt.__index.cancel, fake)
      end)
    end
    assert.is_true(call:active())
    assert.are.equal(1, clock:pending())
    assert.is_true(call:cancel())
    assert.are.equal(0, clock:pending())
  end)
end)
