--- Test helpers: a loop with manual time, and a way to run code on a given loop.
-- @module txaio.testutil
local core = require "txaio.core"
local looplib = require "txaio.loop"

local type, error, select, pcall, getmetatable = type, error, select, pcall, getmetatable
local unpack = table.unpack or unpack

local M = {}

local Clock = setmetatable({}, { __index = looplib.Loop })
Clock.__index = Clock
Clock.__tostring = looplib.Loop.__tostring

local function check_seconds(x, arg, fname)
  if type(x) ~= "number" or x ~= x or x == math.huge or x == -math.huge then
    error(("bad argument #%d to '%s' (finite number expected, got %s)")
      :format(arg, fname, type(x) == "number" and tostring(x) or type(x)), 3)
  end
end

--- A loop object whose time only moves when `advance` is called (default start 0).
function M.Clock(start)
  if start == nil then start = 0 end
  check_seconds(start, 1, "Clock")
  local clock
  clock = looplib.new("host", core.new_scheduler(function() return clock.seconds end, nil), Clock)
  clock.seconds = start
  return clock
end

--- Moves time forward by `seconds`, running each due timer at its own deadline, in order,
-- including timers that callbacks schedule inside the window.
function Clock:advance(seconds)
  check_seconds(seconds, 1, "advance")
  if seconds < 0 then error("bad argument #1 to 'advance' (time cannot go backwards)", 2) end
  local sched = self._sched
  -- from inside one of this clock's timer callbacks a tick does nothing (the running one goes on),
  -- so waiting here for the due timers to run would never end
  if sched:ticking() then
    error("bad self to 'advance' (called from inside a timer callback of the same clock)", 2)
  end
  local target = self.seconds + seconds
  while true do
    local due = sched:next_due()
    if due == nil or due > target then break end
    if due > self.seconds then self.seconds = due end
    sched:tick()
  end
  self.seconds = target
end

--- Runs `fn(loop)` with `txaio.config.loop` set to `loop`; restores the previous loop afterwards,
-- even when `fn` raises, and returns `fn`'s results.
function M.replace_loop(loop, fn)
  local mt = getmetatable(fn)
  if type(fn) ~= "function" and not (type(mt) == "table" and mt.__call ~= nil) then
    error("bad argument #2 to 'replace_loop' (callable expected, got " .. type(fn) .. ")", 2)
  end
  local txaio = require "txaio"
  local previous = txaio.config.loop
  txaio.config.loop = loop
  local results = { n = 0 }
  local function pack(ok, ...) results = { n = select("#", ...), ... }; return ok end
  local ok = pack(pcall(fn, loop))
  txaio.config.loop = previous
  if not ok then error(results[1], 0) end
  return unpack(results, 1, results.n)
end

return M
