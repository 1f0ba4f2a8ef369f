--- W4-W6: N timers with random delays in [0, 1 s] on luv, all fired by uv.run() (or cancelled).
-- Variants:
--   txaio          W4: txaio.call_later on the luv backend (one uv_timer for all of them)
--   txaio-cancel   W5: txaio.call_later, then cancel each handle
--   batched        W6: make_batched_timer(1, 100):call_later
--   luv            baseline (b): one luv uv_timer handle per call, closed when it fires
-- Each variant runs its whole workload three times in the process. The first pass meets fresh
-- memory: every page of the million timers is a page fault, which the C baseline (c) takes before
-- it starts its clock (it touches its timer array first). The second pass still meets some: the
-- big arrays (the handle table, ROOTS, the heap) were mmap'd blocks, which glibc gives back to the
-- kernel when they are freed, and only then raises its mmap threshold (up to 32 MiB) so that later
-- blocks of that size stay in the process. The third pass, after full collections, reuses that
-- memory, as a long-running program does, and is the one compared with (c):
--   ns_per_op         CPU (os.clock) per timer of the third pass, scheduling plus uv.run()
--   warm_ns_per_op    the same for the second pass
--   cold_ns_per_op    the same for the first pass
-- and for the txaio variants the memory per pending timer, measured two ways in the first pass,
-- once all are scheduled:
--   bytes_per_timer   collectgarbage("count") delta (after full collections) plus what the core
--                     allocates outside Lua's accounting (sched:c_bytes(): the heap array, 24 bytes
--                     a slot, the tombstone flags and the swept-slot stack)
--   rss_per_timer     the resident-set delta from /proc/self/statm (includes allocator slack)
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local common = require "common"

local variant, N = common.args(1000000)
local uv = require "luv"
local os_clock, random = os.clock, math.random

local function rss_bytes()
  local f = io.open("/proc/self/statm")
  if not f then return 0 end
  local _, resident = f:read("n", "n")
  f:close()
  return resident * 4096
end

math.randomseed(42)
local delays = {}
for i = 1, N do delays[i] = random() end   -- drawn before timing: [0, 1) seconds

local fired = 0
local function on_timer() fired = fired + 1 end
local result = { n = N }

-- The scheduler's own arrays (heap entries, tombstone flags) are allocated outside Lua's
-- accounting: the core reports their size.
local function memory(c_bytes, before_kb, before_rss)
  collectgarbage()
  collectgarbage()
  local lua_bytes = (collectgarbage("count") - before_kb) * 1024
  result.bytes_per_timer = (lua_bytes + c_bytes) / N
  result.lua_bytes_per_timer = lua_bytes / N
  result.rss_per_timer = (rss_bytes() - before_rss) / N
end

local txaio
if variant ~= "luv" then
  txaio = require "txaio"
  txaio.use_luv(uv)
end

-- One pass of the workload: its CPU seconds, less the memory measurement when it takes one.
local function pass(measure_memory)
  collectgarbage()
  collectgarbage()
  local kb0, rss0 = collectgarbage("count"), rss_bytes()
  local t0, paused = os_clock(), 0
  fired = 0
  if variant == "luv" then
    local new_timer = uv.new_timer
    for i = 1, N do
      local t = new_timer()
      t:start((delays[i] * 1000) // 1, 0, function() t:close(); fired = fired + 1 end)
    end
  elseif variant == "txaio" then
    local call_later = txaio.call_later
    for i = 1, N do call_later(delays[i], on_timer) end
  elseif variant == "batched" then
    local bt = txaio.make_batched_timer(1, 100)
    for i = 1, N do bt:call_later(delays[i], on_timer) end
  elseif variant == "txaio-cancel" then
    local call_later, handles = txaio.call_later, {}
    for i = 1, N do handles[i] = call_later(delays[i], on_timer) end
    for i = 1, N do handles[i]:cancel() end
  else
    error("unknown variant " .. variant)
  end
  if measure_memory and txaio and variant ~= "txaio-cancel" then
    local p0 = os_clock()
    memory(txaio.config.loop._sched:c_bytes(), kb0, rss0)   -- not timed: full GCs distort the CPU figure
    paused = os_clock() - p0
  end
  uv.run()
  local cpu = os_clock() - t0 - paused
  local want = variant == "txaio-cancel" and 0 or N
  assert(fired == want, ("%d of %d timers fired"):format(fired, want))
  return cpu
end

result.cold_ns_per_op = pass(true) / N * 1e9
result.warm_ns_per_op = pass(false) / N * 1e9
result.ns_per_op = pass(false) / N * 1e9
common.report(result)
