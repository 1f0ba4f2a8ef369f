--- W3: a chain of N futures, each one's callback resolving the next; resolving the first runs
-- the whole chain. Timed: building it (a future, a closure and add_callbacks per link) and running
-- it. The pure-Lua baseline dispatches synchronously and overflows the C stack after a few hundred
-- links: it reports the depth it reached and the error instead of a time.
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local common = require "common"

local variant, N = common.args(1000000)
local api = variant == "baseline" and require "baseline.future" or common.txaio_on_clock()
local create_future, add_callbacks, resolve = api.create_future, api.add_callbacks, api.resolve
local os_clock = os.clock

local function run(n)
  local depth = 0
  local first = create_future()
  local prev = first
  local t0 = os_clock()
  for _ = 2, n do
    local nxt = create_future()
    add_callbacks(prev, function(v) depth = depth + 1; resolve(nxt, v + 1) end, nil)
    prev = nxt
  end
  local last = 0
  add_callbacks(prev, function(v) depth = depth + 1; last = v end, nil)
  local t1 = os_clock()
  resolve(first, 1)
  local t2 = os_clock()
  return t1 - t0, t2 - t1, depth, last
end

run(N // 10)
collectgarbage()
collectgarbage()
local build, fire, depth, last = run(N)
if depth == N and last == N then
  common.report{ ns_per_op = (build + fire) / N * 1e9, build_ns = build / N * 1e9,
                 run_ns = fire / N * 1e9, n = N }
else
  local err = tostring(api.last_error or "the chain stopped"):match("[^\n]*$")
  common.report{ ns_per_op = "n/a", depth = depth, n = N, error = err:gsub("^.-:%d+: ", "") }
end
