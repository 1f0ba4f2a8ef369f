--- Loop objects: what `txaio.config.loop` holds. Each wraps one C scheduler (all of the loop's
-- timers) and says which kind of backend feeds it the clock and the wake-up.
-- @module txaio.loop
local core = require "txaio.core"

local M = {}

local Loop = {}
Loop.__index = Loop
M.Loop = Loop

--- A loop object of `kind` ("luv" or "host") over the core scheduler `sched`.
function M.new(kind, sched, class)
  return setmetatable({ kind = kind, _sched = sched }, class or Loop)
end

--- True for loop objects made by txaio (including subclasses such as testutil's Clock).
function M.is_loop(x)
  return type(x) == "table" and core.is_scheduler(rawget(x, "_sched"))
end

--- The loop's monotonic time in seconds.
function Loop:now() return self._sched:now() end

--- Runs the timers due now; returns the seconds until the next one, or nil.
function Loop:tick() return self._sched:tick() end

--- The number of timer entries scheduled on this loop.
function Loop:pending() return self._sched:pending() end

function Loop:__tostring()
  return ("txaio.Loop (%s, %d pending)"):format(self.kind, self:pending())
end

return M
