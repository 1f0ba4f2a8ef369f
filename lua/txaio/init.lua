--- txaio: write async code once, run it on luv or on the host application's own loop.
-- Futures, failures and the timer scheduler live in the C core (`txaio.core`); this module picks
-- the loop, binds the core's functions to it and adds the ergonomic layers.
-- @module txaio
local core = require "txaio.core"
local looplib = require "txaio.loop"
local hostlib = require "txaio.backend.host"
local coro = require "txaio.coro"
local testutil_loop = looplib.is_loop
require "txaio.report"   -- installs the reporter for uncaught callback errors

local type, error, pairs, setmetatable, rawset = type, error, pairs, setmetatable, rawset

local VERSION = "txaio 0.1.0"

local NO_LOOP = "txaio: no event loop selected; call txaio.use_luv() or txaio.use_host(adapter) first"

-- Functions that need a loop; until one is chosen they raise NO_LOOP. (The loop-bound C functions,
-- call_later and friends, raise it themselves.)
local NEEDS_LOOP = {
  "create_future", "create_future_success", "create_future_error", "as_future", "is_called",
  "resolve", "reject", "cancel", "add_callbacks", "gather", "create_failure", "failure_message",
  "failure_traceback", "failure_format_traceback", "spawn", "await",
}

-- Where each of those lives.
local IMPL = setmetatable({ spawn = coro.spawn, await = coro.await }, { __index = core })

local make_api

--- Turns whatever `with_config`/`config.loop` was given into a loop object.
local function to_loop(x, fname, level)
  if x == nil or testutil_loop(x) then return x end
  local luvlib = require "txaio.backend.luv"
  if luvlib.is_luv(x) then return luvlib.new(x) end
  if hostlib.is_adapter(x) then
    hostlib.check(x, fname, level + 1)
    return hostlib.new(x)
  end
  error(("bad argument #1 to '%s' (loop object, luv module or host adapter expected, got %s)")
    :format(fname, type(x)), level + 1)
end

function make_api(initial_loop)
  local api = { _VERSION = VERSION, using_luv = false, using_host = false }
  -- the loop-bound C functions, and the setter of the scheduler they read
  local bound, bind_scheduler = core.bind()
  local current               -- the current loop object

  local guards = {}
  for _, name in ipairs(NEEDS_LOOP) do
    local real = IMPL[name]
    guards[name] = function(...)
      if current == nil then error(NO_LOOP, 0) end   -- level 0: the message must start with "txaio: ..."
      return real(...)
    end
  end

  local function select(loop)
    current = loop
    bind_scheduler(loop and loop._sched)
    api.using_luv = loop ~= nil and loop.kind == "luv"
    api.using_host = loop ~= nil and loop.kind == "host"
    for _, name in ipairs(NEEDS_LOOP) do
      api[name] = loop and IMPL[name] or guards[name]
    end
  end

  api.config = setmetatable({}, {
    __index = function(_, k) if k == "loop" then return current end end,
    __newindex = function(t, k, v)
      if k == "loop" then select(to_loop(v, "config.loop", 2)) else rawset(t, k, v) end
    end,
  })

  -- always available
  api.is_future = core.is_future
  api.is_failure = core.is_failure
  api.CancelledError = core.CancelledError
  api.time_ns = core.time_ns
  api.perf_counter_ns = core.perf_counter_ns

  for name, fn in pairs(bound) do api[name] = fn end

  -- logging is (always): it never depends on a loop
  local ok_log, log = pcall(require, "txaio.log")
  if ok_log then
    for name, fn in pairs(log.api) do api[name] = fn end
  elseif not tostring(log):find("module 'txaio.log' not found", 1, true) then
    error(log, 0)
  end

  --- Makes a luv loop object without selecting it.
  function api.luv_loop(uv)
    local luvlib = require "txaio.backend.luv"
    if uv == nil then uv = luvlib.require_luv("luv_loop") end
    if not luvlib.is_luv(uv) then
      error("bad argument #1 to 'luv_loop' (luv module expected, got " .. type(uv) .. ")", 2)
    end
    return luvlib.new(uv)
  end

  --- Makes a host loop object without selecting it.
  function api.host_loop(adapter)
    hostlib.check(adapter, "host_loop", 2)
    return hostlib.new(adapter)
  end

  --- Selects luv's loop. The application still runs it (`uv.run()`).
  function api.use_luv(uv)
    local luvlib = require "txaio.backend.luv"
    if uv == nil then uv = luvlib.require_luv("use_luv") end
    if not luvlib.is_luv(uv) then
      error("bad argument #1 to 'use_luv' (luv module expected, got " .. type(uv) .. ")", 2)
    end
    select(luvlib.new(uv))
  end

  --- Selects the host application's loop through `adapter` ({now = fn, [wake = fn]}).
  function api.use_host(adapter)
    hostlib.check(adapter, "use_host", 2)
    select(hostlib.new(adapter))
  end

  --- A new API object bound to `opts.loop` (a loop object, luv module or host adapter), or to the
  -- current loop when no loop is given.
  function api.with_config(opts)
    if opts ~= nil and type(opts) ~= "table" then
      error("bad argument #1 to 'with_config' (table or nil expected, got " .. type(opts) .. ")", 2)
    end
    for k in pairs(opts or {}) do
      if k ~= "loop" then
        error(("bad argument #1 to 'with_config' (unknown option '%s')"):format(tostring(k)), 2)
      end
    end
    local loop = opts and opts.loop
    if loop == nil then loop = current end
    if loop == nil then error(NO_LOOP, 0) end   -- level 0: the message must start with "txaio: ..."
    return make_api(to_loop(loop, "with_config", 2))
  end

  select(initial_loop)
  return api
end

return make_api(nil)
