--- W1: the lifecycle of one future: create it, add a callback/errback pair, resolve it, and the
-- callback runs. Variants: `txaio` (the C core) and `baseline` (bench/baseline/future.lua).
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local common = require "common"

local variant, N = common.args(1000000)
local api = variant == "baseline" and require "baseline.future" or common.txaio_on_clock()

local create_future, add_callbacks, resolve = api.create_future, api.add_callbacks, api.resolve
local ran = 0
local function callback() ran = ran + 1 end
local function errback(fail) error(fail) end

local t = common.cpu(N, function(n)
  for i = 1, n do
    local f = create_future()
    add_callbacks(f, callback, errback)
    resolve(f, i)
  end
end)
assert(ran == N + N // 10, "not every callback ran")
local loop = common.empty_loop(N)
common.report{ ns_per_op = (t - loop) / N * 1e9, n = N }
