--- The host backend: the application's own loop supplies `now()` and, optionally, a
-- `wake(delay, run)` to be called back; without `wake` the host calls `txaio.tick()` itself.
-- @module txaio.backend.host
local core = require "txaio.core"
local looplib = require "txaio.loop"

local M = {}

local function is_callable(x)
  if type(x) == "function" then return true end
  local mt = getmetatable(x)
  return type(mt) == "table" and mt.__call ~= nil
end

--- Raises a `bad argument` error for `fname` unless `adapter` is a valid host adapter.
function M.check(adapter, fname, level)
  -- level is error()'s level as seen from check's caller
  local function bad(msg) error(("bad argument #1 to '%s' (%s)"):format(fname, msg), level + 2) end
  if type(adapter) ~= "table" then bad("host adapter table expected, got " .. type(adapter)) end
  if not is_callable(adapter.now) then
    bad("adapter.now must be a function returning seconds, got " .. type(adapter.now))
  end
  if adapter.wake ~= nil and not is_callable(adapter.wake) then
    bad("adapter.wake must be a function or nil, got " .. type(adapter.wake))
  end
end

--- True when `x` looks like a host adapter.
function M.is_adapter(x)
  return type(x) == "table" and is_callable(x.now) and not looplib.is_loop(x)
end

--- A loop object driven by the host adapter (checked by the caller).
function M.new(adapter)
  local sched
  local host_wake, now = adapter.wake, adapter.now
  local function run() return sched:tick() end
  local wake = host_wake and function(delay)
    if delay ~= nil then host_wake(delay, run) end
  end
  sched = core.new_scheduler(now, wake)
  local loop = looplib.new("host", sched)
  loop.adapter = adapter
  return loop
end

return M
