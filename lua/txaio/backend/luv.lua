--- The luv (libuv) backend: one uv timer handle per loop wakes the core's scheduler, however many
-- txaio timers are pending; it is stopped whenever none is, so `uv.run()` returns when work is done.
-- The clock is CLOCK_MONOTONIC read by the core (what uv.hrtime reads), never libuv's cached time.
-- @module txaio.backend.luv
local core = require "txaio.core"
local looplib = require "txaio.loop"

local math_ceil, pcall = math.ceil, pcall

local MAX_WAKE_MS = 2 ^ 31   -- longer waits re-arm; luv needs an integer timeout

local M = {}

--- Loads luv, or raises a usage error that says how to get it.
function M.require_luv(fname)
  local ok, uv = pcall(require, "luv")
  if not ok then
    error(("txaio.%s: cannot load luv (%s); install it (Debian: apt-get install lua-luv) "
      .. "or pass the luv module"):format(fname, tostring(uv):match("^[^\n]*")), 3)
  end
  return uv
end

--- True when `x` looks like the luv module (or vim.loop).
function M.is_luv(x)
  return type(x) == "table" and type(x.new_timer) == "function" and type(x.run) == "function"
end

--- A loop object driven by luv module `uv`.
function M.new(uv)
  local timer, sched
  local report = require "txaio.report"
  local function run()
    -- the core already contains callback errors; this guards luv's handler (which exits) from
    -- anything else, such as an out-of-memory error
    local ok, err = pcall(sched.tick, sched)
    if not ok then report.loop_error(err) end
  end
  local function wake(delay)
    if delay == nil then
      -- closed, not just stopped: an open handle roots its callback and so this scheduler,
      -- which would keep every replaced loop alive for good
      if timer then
        timer:close()
        timer = nil
      end
      return
    end
    if not timer then timer = uv.new_timer() end
    local ms = math_ceil(delay * 1000)
    if ms > MAX_WAKE_MS then ms = MAX_WAKE_MS end
    timer:start(ms, 0, run)
  end
  sched = core.new_scheduler(nil, wake)
  local loop = looplib.new("luv", sched)
  loop.uv = uv
  --- The number of libuv handles txaio holds open on this loop: 1 while timers are pending, else 0.
  function loop.handles() return timer and 1 or 0 end
  return loop
end

return M
