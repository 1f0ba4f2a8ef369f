--- The luv (libuv) backend: one uv timer handle per loop wakes the core's scheduler, however many
-- txaio timers are pending; it is stopped whenever none is, so `uv.run()` returns when work is done.
-- The clock is CLOCK_MONOTONIC read by the core (what uv.hrtime reads), never libuv's cached time.
--
-- The handle is stopped when idle, never closed. luv 1.44 (Debian 12's) crashes in lua_close when
-- a handle was closed and uv.run() never ran afterwards to finish the close (luvit/luv#437): a
-- script that cancels its last timer and exits would end in a segfault. A stopped handle is closed
-- by luv itself at exit. Its callback reaches the scheduler only while something is pending, so an
-- idle handle does not keep a replaced loop alive.
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

-- Since handles are never closed, the handle of a loop that is gone goes to the next loop made on
-- the same luv: a test suite that selects a fresh loop before every test keeps one handle, not one
-- per test. [uv] = list of { timer = handle, owner = weak-valued { scheduler } }.
local handles_of = setmetatable({}, { __mode = "k" })
local WEAK_VALUES = { __mode = "v" }

-- The stopped handle of a collected loop, now owned by 'sched', or else a new handle.
local function acquire_timer(uv, sched)
  local list = handles_of[uv]
  if not list then
    list = {}
    handles_of[uv] = list
  end
  local free
  for i = 1, #list do
    local entry = list[i]
    if entry.owner[1] == nil then
      -- closed by the application (uv.walk and close, before exiting, say): never reused
      if not entry.timer:is_closing() then
        entry.owner[1] = sched
        return entry.timer
      end
      free = free or i
    end
  end
  local timer = uv.new_timer()
  list[free or #list + 1] = { timer = timer, owner = setmetatable({ sched }, WEAK_VALUES) }
  return timer
end

--- A loop object driven by luv module `uv`.
function M.new(uv)
  local timer, sched
  -- armed.sched is the scheduler while its timer is armed, nil when idle: the one link from the
  -- handle (which luv roots until it is closed) to the scheduler
  local armed = {}
  local report = require "txaio.report"
  local function run()
    local s = armed.sched
    if not s then return end
    -- the core already contains callback errors; this guards luv's handler (which exits) from
    -- anything else, such as an out-of-memory error
    local ok, err = pcall(s.tick, s)
    if not ok then report.loop_error(err) end
  end
  local function wake(delay)
    if delay == nil then
      if timer then timer:stop() end
      armed.sched = nil
      return
    end
    if not timer or timer:is_closing() then timer = acquire_timer(uv, sched) end
    armed.sched = sched
    local ms = math_ceil(delay * 1000)
    if ms > MAX_WAKE_MS then ms = MAX_WAKE_MS end
    timer:start(ms, 0, run)
  end
  sched = core.new_scheduler(nil, wake)
  local loop = looplib.new("luv", sched)
  loop.uv = uv
  --- The number of libuv handles this loop keeps active: 1 while timers are pending, else 0.
  function loop.handles() return armed.sched and 1 or 0 end
  return loop
end

return M
