-- STYLE.md R25: every public name is documented. Collects the names the code actually exports
-- (module keys, the methods of live objects, the TXAIO_API functions of src/txaio.h) and fails
-- when one of them does not appear as code in docs/reference.md or docs/embedding.md.
local DOCS = { "docs/reference.md", "docs/embedding.md" }
local HEADER = "src/txaio.h"
local compat = require "compat"

local function read(path)
  local f = assert(io.open(path, "r"), "cannot open " .. path .. " (run busted from the repository root)")
  local text = f:read("*a")
  f:close()
  return text
end

-- Every code span and fenced code block of the docs, joined: a name counts as documented only when
-- it is written as code (`name`, `txaio.name(...)`, `f:name(...)`), not merely mentioned in prose.
local function doc_code()
  local parts = {}
  for _, path in ipairs(DOCS) do
    local text = read(path):gsub("```[^\n]*\n(.-)```", function(block)
      parts[#parts + 1] = block
      return ""
    end)
    for span in text:gmatch("`([^`\n]+)`") do parts[#parts + 1] = span end
  end
  return table.concat(parts, "\n")
end

local function mentions(code, name)
  return code:find("%f[%w_]" .. name:gsub("%p", "%%%0") .. "%f[^%w_]") ~= nil
end

-- The names in `names` (a set) that the docs' code does not mention, sorted.
local function undocumented(names)
  local code, missing = doc_code(), {}
  for name in pairs(names) do
    if not mentions(code, name) then missing[#missing + 1] = name end
  end
  table.sort(missing)
  return missing
end

local function add_keys(set, t, filter)
  for k, v in pairs(t) do
    if type(k) == "string" and not k:match("^__") and (filter == nil or filter(v)) then
      set[k] = true
    end
  end
  return set
end

local function is_function(v) return type(v) == "function" end

-- The method table behind a userdata's metatable: `__index` when it is a table, else the table
-- that a function `__index` reads its methods from (the failure keeps them in `methods`).
local function methods_of(object)
  local mt = getmetatable(object)
  assert.is_table(mt)
  if type(mt.__index) == "table" then return mt.__index end
  assert.is_table(mt.methods, "cannot find the methods of " .. tostring(object))
  return mt.methods
end

local function assert_documented(names, what)
  assert.is_not_nil(next(names), "found no names for " .. what .. ": the collector is broken")
  local missing = undocumented(names)
  assert.are.same({}, missing, what .. " missing from " .. table.concat(DOCS, " and ") .. ": "
    .. table.concat(missing, ", "))
end

describe("the documentation (STYLE.md R25)", function()
  -- A private copy of the txaio module, so that selecting a loop here changes nothing elsewhere.
  local fresh

  setup(function()
    fresh = dofile(assert(compat.searchpath("txaio", package.path)))
  end)

  it("exists", function()
    for _, path in ipairs(DOCS) do assert.truthy(io.open(path, "r"), path .. " is missing") end
  end)

  it("documents every key of require 'txaio', before and after a loop is selected", function()
    local names = add_keys({}, fresh)
    assert.is_nil(fresh.config.loop)
    fresh.use_host{ now = function() return 0 end }
    add_keys(names, fresh)
    assert.is_true(names.create_future and names.call_later and names.use_luv or false)
    assert_documented(names, "txaio functions")
  end)

  it("documents the future methods", function()
    local f = fresh.create_future()
    assert_documented(add_keys({}, methods_of(f)), "future methods")
  end)

  it("documents the failure fields and methods", function()
    local fail = fresh.create_failure("boom")
    local names = add_keys({}, methods_of(fail))
    for name in pairs(names) do assert.is_function(fail[name], "fail." .. name) end
    assert.are.equal("boom", fail.value)
    names.value = true
    assert_documented(names, "failure methods")
  end)

  it("documents the timer handle methods", function()
    local h = fresh.call_later(1, function() end)
    local names = add_keys({}, methods_of(h))
    h:cancel()
    assert_documented(names, "timer handle methods")
  end)

  it("documents the batched timer and its handles", function()
    local bt = fresh.make_batched_timer(1)
    local h = bt:call_later(1, function() end)
    local names = add_keys({}, methods_of(bt))
    add_keys(names, methods_of(h))
    h:cancel()
    assert_documented(names, "batched timer methods")
  end)

  it("documents the loop objects' methods and fields", function()
    local loop = fresh.host_loop{ now = function() return 0 end }
    local names = add_keys({}, loop, function(v) return type(v) ~= "userdata" end)   -- not _sched
    names._sched = nil
    local class = getmetatable(loop)
    while type(class) == "table" do
      add_keys(names, class, is_function)
      class = getmetatable(class) and getmetatable(class).__index
    end
    local has_luv, uv = pcall(require, "luv")
    if has_luv then
      add_keys(names, fresh.luv_loop(uv), function(v) return type(v) ~= "userdata" end)
      names._sched = nil
    end
    assert_documented(names, "loop object methods and fields")
  end)

  it("documents txaio.testutil, including the Clock's own methods and fields", function()
    local testutil = require "txaio.testutil"
    local names = add_keys({}, testutil)
    local clock = testutil.Clock()
    add_keys(names, clock, function(v) return type(v) ~= "userdata" end)
    add_keys(names, getmetatable(clock), is_function)
    names._sched = nil
    assert_documented(names, "txaio.testutil names")
  end)

  it("documents txaio.report", function()
    assert_documented(add_keys({}, require "txaio.report"), "txaio.report functions")
  end)

  it("documents every function of the C core (txaio.core) and its scheduler", function()
    local core = require "txaio.core"
    local names = add_keys({}, core)
    local sched = core.new_scheduler(function() return 0 end, nil)
    add_keys(names, methods_of(sched))
    assert_documented(names, "txaio.core names")
  end)

  it("documents every TXAIO_API function, callback type and macro of src/txaio.h", function()
    local names = {}
    for line in read(HEADER):gmatch("[^\n]+") do
      if line:match("^%s*TXAIO_API%s") then
        local name = line:match("%(%s*([%a_][%w_]*)%s*%)%s*%(") or line:match("([%a_][%w_]*)%s*%(")
        assert.is_string(name, "cannot parse: " .. line)
        names[name] = true
      end
      local typedef = line:match("^%s*typedef%s.-%(%s*%*%s*([%a_][%w_]*)%s*%)")
      if typedef then names[typedef] = true end
      local macro = line:match("^%s*#%s*define%s+(TXAIO_[%w_]+)")
      if macro and macro ~= "TXAIO_API" and macro ~= "TXAIO_H" then names[macro] = true end
    end
    assert.is_true(names.txaio_tick and names.luaopen_txaio_core or false,
      "the header parser found no TXAIO_API functions")
    assert_documented(names, HEADER .. " names")
  end)
end)
