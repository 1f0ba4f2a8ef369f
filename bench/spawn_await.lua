--- W8: spawn + await. Variants:
--   txaio-resolved     txaio.spawn(fn) where fn awaits an already-resolved future
--   txaio-other        one coroutine awaits a pending future, a second coroutine resolves it
--   baseline-resolved / baseline-other
--                      the same over a minimal pure-Lua spawn/await (below) built on the
--                      baseline future: coroutine.create + resume, no error capture, no cancel
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local common = require "common"

local variant, N = common.args(1000000)
local kind, case = variant:match("^(%a+)-(%a+)$")

local api
if kind == "baseline" then
  local B = require "baseline.future"
  local create, resume, yield, running = coroutine.create, coroutine.resume, coroutine.yield,
    coroutine.running
  api = { create_future = B.create_future, resolve = B.resolve }
  function api.spawn(fn, ...)
    local result = B.create_future()
    local co = create(function(...) B.resolve(result, fn(...)) end)
    assert(resume(co, ...))
    return result
  end
  function api.await(f)
    if f.state == 1 then return f.value end
    local co = running()
    B.add_callbacks(f, function(v) assert(resume(co, v)) end, nil)
    return yield()
  end
  api.create_future_success = function(v)
    local f = B.create_future()
    B.resolve(f, v)
    return f
  end
else
  api = common.txaio_on_clock()
end

local spawn, await, create_future, resolve = api.spawn, api.await, api.create_future, api.resolve
local done = api.create_future_success(1)
local sum = 0

local bodies = {
  resolved = function(n)
    local function task() return await(done) end
    for _ = 1, n do spawn(task) end
  end,
  other = function(n)
    local function waiter(f) sum = sum + await(f) end
    local function producer(f) resolve(f, 1) end
    for _ = 1, n do
      local f = create_future()
      spawn(waiter, f)
      spawn(producer, f)
    end
  end,
}
local t = common.cpu(N, assert(bodies[case], "unknown variant " .. variant))
assert(case ~= "other" or sum == N + N // 10, "an await did not return")
common.report{ ns_per_op = (t - common.empty_loop(N)) / N * 1e9, n = N }
