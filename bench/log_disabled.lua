-- Benchmark: a disabled `log:debug(...)` against a call of an empty local function (issue 4, item 4).
-- Both loops pass the same three arguments, so the difference is the method lookup on the logger.
-- Run from the checkout after `make all`:
--   LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/?.so;;" lua5.4 bench/log_disabled.lua
local txaio = require "txaio"

local N = tonumber(arg and arg[1]) or 10000000
local clock = os.clock

local log = txaio.make_logger("bench")
txaio.set_global_log_level("info")            -- debug is disabled
local kw = { a = 1 }

local function empty() end

-- Runs `body` once to warm up, then `rounds` times, and keeps the fastest time (least noise).
local function best_of(rounds, body)
  body(N // 10)
  local best = math.huge
  for _ = 1, rounds do
    local t0 = clock()
    body(N)
    local dt = clock() - t0
    if dt < best then best = dt end
  end
  return best
end

local t_empty = best_of(3, function(n)
  local f, l, k = empty, log, kw
  for _ = 1, n do f(l, "x {a}", k) end
end)

local t_bare = best_of(3, function(n)
  local f = empty
  for _ = 1, n do f() end
end)

local t_log = best_of(3, function(n)
  local l, k = log, kw
  for _ = 1, n do l:debug("x {a}", k) end
end)

local function ns(t) return t / N * 1e9 end
print(("empty local function call, no arguments:    %6.2f ns/op"):format(ns(t_bare)))
print(("empty local function call, same arguments:  %6.2f ns/op"):format(ns(t_empty)))
print(("disabled log:debug(\"x {a}\", kw):           %6.2f ns/op"):format(ns(t_log)))
print(("ratio to the call with the same arguments: %.2f (target <= 1.5)"):format(t_log / t_empty))
print(("ratio to the call without arguments:       %.2f"):format(t_log / t_bare))
