-- W7: a disabled `log:debug(...)` against a call of an empty local function (baseline d).
-- Both loops pass the same three arguments, so the difference is the method lookup on the logger
-- and the level check. The empty loop's own time is subtracted from both. Run from the checkout
-- after `make all` (bench/run.lua runs it as workload W7 and reads the last line):
--   LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/?.so;;" lua5.4 bench/log_disabled.lua
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local common = require "common"
local txaio = require "txaio"

local N = math.tointeger(tonumber(arg[1])) or 10000000

local log = txaio.make_logger("bench")
txaio.set_global_log_level("info")            -- debug is disabled
local kw = { a = 1 }

local function empty() end

-- The fastest of three runs (least noise), each after the warm-up common.cpu does.
local function best_of(body)
  local best = math.huge
  for _ = 1, 3 do best = math.min(best, common.cpu(N, body)) end
  return best
end

local t_loop = best_of(function(n) for _ = 1, n do end end)

local t_empty = best_of(function(n)
  local f, l, k = empty, log, kw
  for _ = 1, n do f(l, "x {a}", k) end
end)

local t_bare = best_of(function(n)
  local f = empty
  for _ = 1, n do f() end
end)

local t_log = best_of(function(n)
  local l, k = log, kw
  for _ = 1, n do l:debug("x {a}", k) end
end)

local function ns(t) return (t - t_loop) / N * 1e9 end
print(("empty loop (subtracted below):              %6.2f ns/op"):format(t_loop / N * 1e9))
print(("empty local function call, no arguments:    %6.2f ns/op"):format(ns(t_bare)))
print(("empty local function call, same arguments:  %6.2f ns/op"):format(ns(t_empty)))
print(("disabled log:debug(\"x {a}\", kw):           %6.2f ns/op"):format(ns(t_log)))
print(("ratio to the call with the same arguments: %.2f (target <= 1.5)"):format(ns(t_log) / ns(t_empty)))
common.report{ ns_per_op = ns(t_log), baseline_ns = ns(t_empty), bare_call_ns = ns(t_bare),
               loop_ns = t_loop / N * 1e9, n = N }
