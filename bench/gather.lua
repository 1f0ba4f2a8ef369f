--- W2: gather of 1,000 futures, resolved one by one; the gathered future's callback runs once
-- all are in. Repeated N times. Variants: `txaio` and `baseline` (the pure-Lua gather).
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local common = require "common"

local variant, N = common.args(1000)
local SIZE = 1000
local api = variant == "baseline" and require "baseline.future" or common.txaio_on_clock()

local create_future, add_callbacks, resolve, gather = api.create_future, api.add_callbacks,
  api.resolve, api.gather
local gathered = 0
local function done(results) gathered = gathered + results.n end

local t = common.cpu(N, function(n)
  for _ = 1, n do
    local futures = {}
    for i = 1, SIZE do futures[i] = create_future() end
    add_callbacks(gather(futures), done, nil)
    for i = 1, SIZE do resolve(futures[i], i) end
  end
end)
assert(gathered == (N + N // 10) * SIZE, "a gather did not complete")
common.report{ ns_per_op = t / N * 1e9, ns_per_future = t / N / SIZE * 1e9, n = N }
