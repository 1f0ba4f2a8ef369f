-- Futures: CONTRACT.md section 2 (everything but gather, which has its own spec) and the future
-- rows of section 11 (bad input).
local txaio = require "txaio"
local report = require "txaio.report"
local helpers = require "helpers"
local finalizer = require "finalizer"
local watch, error_of, assert_contains = helpers.watch, helpers.error_of, helpers.assert_contains
local with_ordinary_gc = helpers.with_ordinary_gc

setup(function()
  txaio.use_host{ now = function() return 0 end }
end)

-- Every report the handler received during the current test, as {message = ..., failure = ...}.
local reports
local restore_handler

before_each(function()
  reports, restore_handler = helpers.record_reports()
end)

after_each(function()
  restore_handler()
end)

-- The reports whose message contains `marker`.
local function reports_about(marker)
  return helpers.reports_about(reports, marker)
end

-- Runs every pending finalizer and delivers whatever they queued.
local function collect_and_flush()
  collectgarbage()
  collectgarbage()
  report.flush()
end

describe("txaio.create_future", function()
  it("returns a pending future when given nothing", function()
    local f = txaio.create_future()
    assert.is_true(txaio.is_future(f))
    assert.is_false(txaio.is_called(f))
  end)

  it("returns a future already resolved with the result", function()
    local f = txaio.create_future(42)
    assert.is_true(txaio.is_called(f))
    local kind, value = watch(f)()
    assert.equal("resolved", kind)
    assert.equal(42, value)
  end)

  it("treats false as a result, not as a missing one", function()
    local kind, value = watch(txaio.create_future(false))()
    assert.equal("resolved", kind)
    assert.equal(false, value)
  end)

  it("returns a future already failed with the error", function()
    local err = { code = 7 }
    local f = txaio.create_future(nil, err)
    assert.is_true(txaio.is_called(f))
    local kind, fail = watch(f)()
    assert.equal("failed", kind)
    assert.is_true(txaio.is_failure(fail))
    assert.equal(err, fail.value)
  end)

  it("rejects a result and an error given together", function()
    local err = error_of(txaio.create_future, 1, "boom")
    assert_contains(err, "create_future: result and error are exclusive")
  end)

  it("keeps the canceller for cancel to call with the future", function()
    local calls, seen = 0, nil
    local f = txaio.create_future(nil, nil, function(g) calls = calls + 1; seen = g end)
    assert.equal(0, calls)
    txaio.cancel(f)
    assert.equal(1, calls)
    assert.equal(f, seen)
  end)

  -- a settled future keeps its value, not its canceller: whatever the canceller holds is freed
  for _, how in ipairs{ "resolve", "reject" } do
    it("lets go of the canceller once the future is settled by " .. how, function()
      local held = setmetatable({}, { __mode = "v" })
      local f
      do
        local canceller = function() end
        held[1] = canceller
        f = txaio.create_future(nil, nil, canceller)
      end
      txaio.add_callbacks(f, nil, function() end)
      collectgarbage(); collectgarbage()
      assert.is_function(held[1], "collected while the future is pending")
      txaio[how](f, "done")
      collectgarbage(); collectgarbage()
      assert.is_nil(held[1])
      assert.is_true(txaio.is_called(f))
    end)
  end
end)

describe("txaio.create_future_success", function()
  it("returns a future resolved with the value", function()
    local f = txaio.create_future_success("hello")
    assert.is_true(txaio.is_future(f))
    assert.is_true(txaio.is_called(f))
    local kind, value = watch(f)()
    assert.equal("resolved", kind)
    assert.equal("hello", value)
  end)

  it("accepts nil as the value", function()
    local f = txaio.create_future_success(nil)
    assert.is_true(txaio.is_called(f))
    local kind, value = watch(f)()
    assert.equal("resolved", kind)
    assert.is_nil(value)
  end)
end)

describe("txaio.create_future_error", function()
  it("passes a failure through unchanged", function()
    local fail = txaio.create_failure("boom")
    local kind, got = watch(txaio.create_future_error(fail))()
    assert.equal("failed", kind)
    assert.equal(fail, got)
  end)

  it("wraps a string error in a failure", function()
    local kind, got = watch(txaio.create_future_error("boom"))()
    assert.equal("failed", kind)
    assert.is_true(txaio.is_failure(got))
    assert.equal("boom", got.value)
  end)

  it("wraps a table error in a failure that keeps the same table", function()
    local err = { reason = "bad" }
    local kind, got = watch(txaio.create_future_error(err))()
    assert.equal("failed", kind)
    assert.is_true(txaio.is_failure(got))
    assert.equal(err, got.value)
  end)
end)

describe("txaio.as_future", function()
  it("resolves with the function's first return value", function()
    local f = txaio.as_future(function(a, b) return a + b, "ignored" end, 2, 3)
    assert.is_true(txaio.is_future(f))
    local kind, value = watch(f)()
    assert.equal("resolved", kind)
    assert.equal(5, value)
  end)

  it("resolves with nil when the function returns nothing", function()
    local kind, value = watch(txaio.as_future(function() end))()
    assert.equal("resolved", kind)
    assert.is_nil(value)
  end)

  it("passes a returned future through as the same object", function()
    local inner = txaio.create_future()
    local f = txaio.as_future(function() return inner end)
    assert.equal(inner, f)
    assert.is_false(txaio.is_called(f))
  end)

  it("passes a returned failed future through as the same object", function()
    local inner = txaio.create_future_error("nope")
    watch(inner)
    assert.equal(inner, txaio.as_future(function() return inner end))
  end)

  it("turns a raised error into a failed future with the error value", function()
    local err = { code = 99 }
    local kind, fail = watch(txaio.as_future(function() error(err) end))()
    assert.equal("failed", kind)
    assert.is_true(txaio.is_failure(fail))
    assert.equal(err, fail.value)
  end)

  it("keeps the traceback of the raise, including the raising function", function()
    local raise_line
    local function inner_raiser()
      raise_line = debug.getinfo(1, "l").currentline + 1
      error("boom from inner_raiser")
    end
    local function outer() inner_raiser() end
    local kind, fail = watch(txaio.as_future(outer))()
    assert.equal("failed", kind)
    assert_contains(fail.value, "boom from inner_raiser")
    local text = txaio.failure_format_traceback(fail)
    assert_contains(text, "inner_raiser")
    assert_contains(text, "future_spec.lua:" .. raise_line)
    local frames = txaio.failure_traceback(fail)
    local found = false
    for _, frame in ipairs(frames) do
      if frame.line == raise_line and tostring(frame.source):find("future_spec.lua", 1, true) then
        found = true
      end
    end
    assert.is_true(found, "no frame at future_spec.lua:" .. raise_line)
  end)
end)

describe("txaio.is_future", function()
  it("is true for a future", function()
    assert.is_true(txaio.is_future(txaio.create_future()))
    assert.is_true(txaio.is_future(txaio.create_future_success(1)))
  end)

  it("is false for everything that is not a future", function()
    local fail = txaio.create_failure("x")
    for _, v in ipairs{ {}, "future", 1, true, fail, print, io.stdout } do
      assert.is_false(txaio.is_future(v), "for " .. tostring(v))
    end
    assert.is_false(txaio.is_future(nil))
    assert.is_false(txaio.is_future())
  end)
end)

describe("txaio.is_called", function()
  it("is false while pending and true once resolved", function()
    local f = txaio.create_future()
    assert.is_false(txaio.is_called(f))
    txaio.resolve(f, 1)
    assert.is_true(txaio.is_called(f))
  end)

  it("is true once failed", function()
    local f = txaio.create_future()
    watch(f)
    txaio.reject(f, "x")
    assert.is_true(txaio.is_called(f))
  end)

  it("is true once cancelled", function()
    local f = txaio.create_future()
    txaio.cancel(f)
    assert.is_true(txaio.is_called(f))
  end)

  it("is true after resolving with nil", function()
    local f = txaio.create_future()
    txaio.resolve(f, nil)
    assert.is_true(txaio.is_called(f))
  end)
end)

describe("txaio.resolve", function()
  it("runs the callbacks with the value", function()
    local f = txaio.create_future()
    local result = watch(f)
    assert.is_nil(result())
    txaio.resolve(f, "v")
    local kind, value = result()
    assert.equal("resolved", kind)
    assert.equal("v", value)
  end)

  it("does not call errbacks", function()
    local f = txaio.create_future()
    local errbacks = 0
    txaio.add_callbacks(f, nil, function() errbacks = errbacks + 1 end)
    txaio.resolve(f, 1)
    assert.equal(0, errbacks)
  end)
end)

describe("txaio.reject", function()
  it("gives errbacks a failure whose value is the original error", function()
    local err = { why = "because" }
    local f = txaio.create_future()
    local result = watch(f)
    txaio.reject(f, err)
    local kind, fail = result()
    assert.equal("failed", kind)
    assert.is_true(txaio.is_failure(fail))
    assert.equal(err, fail.value)
  end)

  it("keeps a string error exactly as given", function()
    local f = txaio.create_future()
    local result = watch(f)
    txaio.reject(f, "plain message")
    local _, fail = result()
    assert.equal("plain message", fail.value)
  end)

  it("wraps the error with the current traceback", function()
    local f = txaio.create_future()
    local result = watch(f)
    txaio.reject(f, "traced")
    local _, fail = result()
    assert_contains(txaio.failure_format_traceback(fail), "future_spec.lua")
  end)

  it("passes a failure through as the same object", function()
    local given = txaio.create_failure("already a failure")
    local f = txaio.create_future()
    local result = watch(f)
    txaio.reject(f, given)
    local _, fail = result()
    assert.equal(given, fail)
  end)

  it("does not call callbacks", function()
    local f = txaio.create_future()
    local callbacks, errbacks = 0, 0
    txaio.add_callbacks(f, function() callbacks = callbacks + 1 end,
      function() errbacks = errbacks + 1 end)
    txaio.reject(f, "x")
    assert.equal(0, callbacks)
    assert.equal(1, errbacks)
  end)
end)

describe("txaio.cancel", function()
  it("calls the canceller once, with the future, before failing it", function()
    local calls, seen, called_during = 0, nil, nil
    local f
    f = txaio.create_future(nil, nil, function(g)
      calls = calls + 1
      seen = g
      called_during = txaio.is_called(f)
    end)
    txaio.cancel(f)
    assert.equal(1, calls)
    assert.equal(f, seen)
    assert.is_false(called_during)
    assert.is_true(txaio.is_called(f))
  end)

  it("fails the future with a CancelledError carrying the message", function()
    local f = txaio.create_future()
    local result = watch(f)
    txaio.cancel(f, "user gave up")
    local kind, fail = result()
    assert.equal("failed", kind)
    assert.is_true(txaio.is_failure(fail))
    local v = fail.value
    assert.equal(txaio.CancelledError, getmetatable(v))
    assert.equal("user gave up", v.message)
    local line = txaio.failure_message(fail)
    assert.equal(1, line:find("CancelledError", 1, true))
    assert_contains(line, "user gave up")
  end)

  it("fails the future with a CancelledError without a message", function()
    local f = txaio.create_future()
    local result = watch(f)
    txaio.cancel(f)
    local _, fail = result()
    assert.equal(txaio.CancelledError, getmetatable(fail.value))
    assert.is_nil(fail.value.message)
    assert.equal(1, txaio.failure_message(fail):find("CancelledError", 1, true))
  end)

  it("works on a future without a canceller", function()
    local f = txaio.create_future()
    local result = watch(f)
    txaio.cancel(f)
    local kind = result()
    assert.equal("failed", kind)
  end)

  for _, late in ipairs { "resolve", "reject" } do
    it("ignores a later " .. late .. " without raising", function()
      local f = txaio.create_future()
      local calls = 0
      txaio.add_callbacks(f, function() calls = calls + 1 end, function() calls = calls + 1 end)
      txaio.cancel(f)
      local ok = pcall(txaio[late], f, "late")
      assert.is_true(ok)
      assert.equal(1, calls)
      local err = error_of(f.result, f)
      assert.equal(txaio.CancelledError, getmetatable(err))
    end)
  end

  it("has no effect on a resolved future", function()
    local cancellers = 0
    local f = txaio.create_future(nil, nil, function() cancellers = cancellers + 1 end)
    local calls = 0
    txaio.add_callbacks(f, function() calls = calls + 1 end, function() calls = calls + 1 end)
    txaio.resolve(f, "done")
    txaio.cancel(f, "too late")
    assert.equal(0, cancellers)
    assert.equal(1, calls)
    assert.equal("done", f:result())
  end)

  it("has no effect on a failed future", function()
    local cancellers = 0
    local f = txaio.create_future(nil, nil, function() cancellers = cancellers + 1 end)
    local result = watch(f)
    txaio.reject(f, "original")
    txaio.cancel(f)
    assert.equal(0, cancellers)
    local _, fail = result()
    assert.equal("original", fail.value)
  end)

  it("calls the canceller only once when cancelled twice", function()
    local cancellers, errbacks = 0, 0
    local f = txaio.create_future(nil, nil, function() cancellers = cancellers + 1 end)
    txaio.add_callbacks(f, nil, function() errbacks = errbacks + 1 end)
    txaio.cancel(f)
    txaio.cancel(f)
    assert.equal(1, cancellers)
    assert.equal(1, errbacks)
  end)

  it("calls the canceller only once when it cancels the future again", function()
    local cancellers, errbacks = 0, 0
    local f
    f = txaio.create_future(nil, nil, function(g)
      cancellers = cancellers + 1
      txaio.cancel(g)
    end)
    txaio.add_callbacks(f, nil, function() errbacks = errbacks + 1 end)
    txaio.cancel(f)
    assert.equal(1, cancellers)
    assert.equal(1, errbacks)
    assert.is_true(txaio.is_called(f))
  end)
end)

describe("completing a future twice", function()
  local first = {
    resolve = function(f) txaio.resolve(f, "first") end,
    reject = function(f) txaio.reject(f, "first") end,
  }
  local second = {
    resolve = function(f) txaio.resolve(f, "second") end,
    reject = function(f) txaio.reject(f, "second") end,
  }
  for _, a in ipairs{ "resolve", "reject" } do
    for _, b in ipairs{ "resolve", "reject" } do
      it(("raises an error containing 'already' on %s after %s"):format(b, a), function()
        local f = txaio.create_future()
        local result = watch(f)
        first[a](f)
        local err = error_of(second[b], f)
        assert_contains(tostring(err), "already")
        -- the future keeps its first outcome
        local kind, got = result()
        if a == "resolve" then
          assert.equal("resolved", kind)
          assert.equal("first", got)
          assert.equal("first", f:result())
        else
          assert.equal("failed", kind)
          assert.equal("first", got.value)
        end
      end)
    end
  end

  it("raises an error containing 'already' on a future created resolved", function()
    local err = error_of(txaio.resolve, txaio.create_future_success(1), 2)
    assert_contains(err, "already")
  end)
end)

describe("txaio.add_callbacks", function()
  it("returns the same future", function()
    local f = txaio.create_future()
    assert.equal(f, txaio.add_callbacks(f, function() end, nil))
    assert.equal(f, txaio.add_callbacks(f, nil, function() end))
  end)

  it("runs callbacks in the order they were added", function()
    local f = txaio.create_future()
    local order = {}
    for i = 1, 6 do
      txaio.add_callbacks(f, function(v) order[#order + 1] = i .. v end, nil)
    end
    txaio.resolve(f, "x")
    assert.same({ "1x", "2x", "3x", "4x", "5x", "6x" }, order)
  end)

  it("runs errbacks in the order they were added, skipping pairs without one", function()
    local f = txaio.create_future()
    local order = {}
    txaio.add_callbacks(f, nil, function() order[#order + 1] = "e1" end)
    txaio.add_callbacks(f, function() order[#order + 1] = "c2" end, nil)
    txaio.add_callbacks(f, function() order[#order + 1] = "c3" end,
      function() order[#order + 1] = "e3" end)
    txaio.add_callbacks(f, nil, function() order[#order + 1] = "e4" end)
    txaio.reject(f, "x")
    assert.same({ "e1", "e3", "e4" }, order)
  end)

  it("skips pairs without a callback on resolve", function()
    local f = txaio.create_future()
    local order = {}
    txaio.add_callbacks(f, nil, function() order[#order + 1] = "e1" end)
    txaio.add_callbacks(f, function() order[#order + 1] = "c2" end, nil)
    txaio.resolve(f, 1)
    assert.same({ "c2" }, order)
  end)

  it("calls back at once on an already resolved future", function()
    local f = txaio.create_future_success("ready")
    local got
    txaio.add_callbacks(f, function(v) got = v end, nil)
    assert.equal("ready", got)
  end)

  it("calls the errback at once on an already failed future", function()
    local f = txaio.create_future_error("broken")
    local got
    txaio.add_callbacks(f, nil, function(fail) got = fail end)
    assert.is_true(txaio.is_failure(got))
    assert.equal("broken", got.value)
  end)

  it("calls each callback exactly once", function()
    local f = txaio.create_future()
    local calls = 0
    txaio.add_callbacks(f, function() calls = calls + 1 end, nil)
    txaio.resolve(f, 1)
    txaio.add_callbacks(f, function() calls = calls + 10 end, nil)
    assert.equal(11, calls)
  end)

  it("rejects a pair where both are nil", function()
    local f = txaio.create_future()
    local err = error_of(txaio.add_callbacks, f, nil, nil)
    assert_contains(err, "add_callbacks: callback and errback cannot both be nil")
  end)
end)

describe("the order in which callbacks run", function()
  it("queues callbacks of a future completed from inside a callback after the current ones", function()
    local order = {}
    local a, b = txaio.create_future(), txaio.create_future()
    txaio.add_callbacks(a, function()
      order[#order + 1] = "a1"
      txaio.resolve(b, "b")
      order[#order + 1] = "a1 after resolve(b)"
    end, nil)
    txaio.add_callbacks(a, function() order[#order + 1] = "a2" end, nil)
    txaio.add_callbacks(b, function() order[#order + 1] = "b1" end, nil)
    txaio.resolve(a, "a")
    order[#order + 1] = "resolve(a) returned"
    assert.same({ "a1", "a1 after resolve(b)", "a2", "b1", "resolve(a) returned" }, order)
  end)

  it("runs queued callbacks first in, first out, across several futures", function()
    local order = {}
    local a, b, c, d = txaio.create_future(), txaio.create_future(),
      txaio.create_future(), txaio.create_future()
    local function log(name) return function() order[#order + 1] = name end end
    txaio.add_callbacks(a, function() log("a1")(); txaio.resolve(b, 1) end, nil)
    txaio.add_callbacks(a, function() log("a2")(); txaio.resolve(c, 1) end, nil)
    txaio.add_callbacks(b, function() log("b1")(); txaio.resolve(d, 1) end, nil)
    txaio.add_callbacks(b, log("b2"), nil)
    txaio.add_callbacks(c, log("c1"), nil)
    txaio.add_callbacks(d, log("d1"), nil)
    txaio.resolve(a, 1)
    assert.same({ "a1", "a2", "b1", "b2", "c1", "d1" }, order)
    assert.is_true(txaio.is_called(d))
  end)

  it("has run errbacks of a future rejected from inside a callback when reject returns", function()
    local order = {}
    local a, b = txaio.create_future(), txaio.create_future()
    txaio.add_callbacks(a, function() order[#order + 1] = "a1"; txaio.reject(b, "e") end, nil)
    txaio.add_callbacks(b, nil, function() order[#order + 1] = "b1" end)
    txaio.add_callbacks(a, function() order[#order + 1] = "a2" end, nil)
    txaio.resolve(a, 1)
    assert.same({ "a1", "a2", "b1" }, order)
  end)

  it("completes a chain of 1,000,000 futures without overflowing the stack #scale", function()
    local n = 1000000
    local count, last = 0, nil
    local function step(v)
      count = count + 1
      last = v
      if count < n then
        local nxt = txaio.create_future()
        txaio.add_callbacks(nxt, step, nil)
        txaio.resolve(nxt, v + 1)
      end
    end
    local ok, err
    with_ordinary_gc(function()
      local head = txaio.create_future()
      txaio.add_callbacks(head, step, nil)
      ok, err = pcall(txaio.resolve, head, 1)
    end)
    assert.is_true(ok, tostring(err))
    assert.equal(n, count)
    assert.equal(n, last)
    assert.equal(0, #reports_about("stack overflow"))
  end)

  it("completes a prebuilt chain where each callback resolves the next future #scale", function()
    local n = 100000
    local count, ok, err = 0, nil, nil
    local last
    with_ordinary_gc(function()
      local futures = {}
      for i = 1, n do futures[i] = txaio.create_future() end
      for i = 1, n do
        txaio.add_callbacks(futures[i], function(v)
          count = count + 1
          if i < n then txaio.resolve(futures[i + 1], v + 1) end
        end, nil)
      end
      ok, err = pcall(txaio.resolve, futures[1], 1)
      last = futures[n]:result()
    end)
    assert.is_true(ok, tostring(err))
    assert.equal(n, count)
    assert.equal(n, last)
  end)

  it("completes a chain of 100,000 cancellations without overflowing the stack #scale", function()
    local n = 100000
    local count = 0
    local function step()
      count = count + 1
      if count < n then
        local nxt = txaio.create_future()
        txaio.add_callbacks(nxt, nil, step)
        txaio.cancel(nxt)
      end
    end
    local ok, err
    with_ordinary_gc(function()
      local head = txaio.create_future()
      txaio.add_callbacks(head, nil, step)
      ok, err = pcall(txaio.cancel, head)
    end)
    assert.is_true(ok, tostring(err))
    assert.equal(n, count)
  end)
end)

-- resolve and reject call a lone callback at once when the queue is idle (no round trip through the
-- queue table); these pin down that the shortcut keeps the queue's order and error handling.
describe("a future with a single callback pair", function()
  it("runs callbacks its callback queues after it returns, first in, first out", function()
    local order = {}
    local a, b, c = txaio.create_future(), txaio.create_future(), txaio.create_future()
    txaio.add_callbacks(b, function() order[#order + 1] = "b" end, nil)
    txaio.add_callbacks(c, function() order[#order + 1] = "c" end, nil)
    txaio.add_callbacks(a, function()
      txaio.resolve(b, 1)
      txaio.reject(c, "no")
      order[#order + 1] = "a"
    end, function() order[#order + 1] = "c failed" end)
    txaio.add_callbacks(c, nil, function() order[#order + 1] = "c errback" end)
    txaio.resolve(a, 1)
    assert.same({ "a", "b", "c errback" }, order)
  end)

  it("reports a raising lone callback and still runs the next resolve's callback", function()
    local f, g = txaio.create_future(), txaio.create_future()
    local got
    txaio.add_callbacks(f, function() error("lone-callback-marker") end, nil)
    txaio.add_callbacks(g, function(v) got = v end, nil)
    assert.is_true(pcall(txaio.resolve, f, 1))
    assert.equal(1, #reports_about("lone-callback-marker"))
    txaio.resolve(g, "after")
    assert.equal("after", got)
  end)

  it("reports a raising lone errback and leaves the future failed", function()
    local f = txaio.create_future()
    txaio.add_callbacks(f, nil, function() error("lone-errback-marker") end)
    assert.is_true(pcall(txaio.reject, f, "why"))
    assert.equal(1, #reports_about("lone-errback-marker"))
    local value
    txaio.add_callbacks(f, nil, function(fail) value = fail.value end)
    assert.equal("why", value)
  end)

  it("drops the pair once it has run, so the future does not keep it alive", function()
    local f = txaio.create_future()
    local callback = function() end
    local weak = setmetatable({ callback }, { __mode = "v" })
    txaio.add_callbacks(f, callback, function() end)
    callback = nil   -- luacheck: ignore 311 (drops the last reference)
    txaio.resolve(f, 1)
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak[1])
    assert.is_true(txaio.is_called(f))
  end)
end)

-- On Lua 5.1 and LuaJIT, pushing a C function allocates a closure: the message handler every
-- protected callback call needs is made once instead (txaio__pushmsgh). A closure is 32 bytes or
-- more, so "under 8 bytes a resolve" fails if one is made per resolve.
describe("resolving futures whose callbacks are Lua functions", function()
  local N = 1000
  local value = {}
  local function noop() end

  it("allocates nothing for a lone pair (the callback is called at once)", function()
    local fs = {}
    for i = 1, N do
      fs[i] = txaio.create_future()
      txaio.add_callbacks(fs[i], noop, noop)
    end
    local bytes = helpers.bytes_allocated(function()
      for i = 1, N do txaio.resolve(fs[i], value) end
    end)
    assert.is_true(bytes < 8 * N, ("%d bytes for %d resolves"):format(bytes, N))
    for i = 1, N do assert.is_true(txaio.is_called(fs[i])) end
  end)

  it("allocates nothing for two pairs (queued, then drained)", function()
    local fs, ran = {}, 0
    local function count() ran = ran + 1 end
    for i = 1, N + 1 do
      fs[i] = txaio.create_future()
      txaio.add_callbacks(fs[i], count, noop)
      txaio.add_callbacks(fs[i], count, noop)
    end
    txaio.resolve(fs[N + 1], value)   -- the run queue's table reaches its size here
    local bytes = helpers.bytes_allocated(function()
      for i = 1, N do txaio.resolve(fs[i], value) end
    end)
    assert.is_true(bytes < 8 * N, ("%d bytes for %d resolves"):format(bytes, N))
    assert.equal(2 * (N + 1), ran)
  end)

  it("allocates nothing for a rejection whose lone errback is a Lua function", function()
    local fs, seen = {}, 0
    local failure = txaio.create_failure("why")
    for i = 1, N do
      fs[i] = txaio.create_future()
      txaio.add_callbacks(fs[i], nil, function() seen = seen + 1 end)
    end
    local bytes = helpers.bytes_allocated(function()
      for i = 1, N do txaio.reject(fs[i], failure) end
    end)
    assert.is_true(bytes < 8 * N, ("%d bytes for %d rejects"):format(bytes, N))
    assert.equal(N, seen)
  end)
end)

describe("errors raised in callbacks", function()
  it("do not escape resolve and do not stop the other callbacks", function()
    local f = txaio.create_future()
    local seen = {}
    txaio.add_callbacks(f, function() error("callback-marker-1") end, nil)
    txaio.add_callbacks(f, function(v) seen[#seen + 1] = v end, nil)
    local ok, err = pcall(txaio.resolve, f, "value")
    assert.is_true(ok, tostring(err))
    assert.same({ "value" }, seen)
  end)

  it("do not escape reject and do not stop the other errbacks", function()
    local f = txaio.create_future()
    local seen = {}
    txaio.add_callbacks(f, nil, function() error("errback-marker-1") end)
    txaio.add_callbacks(f, nil, function(fail) seen[#seen + 1] = fail.value end)
    local ok, err = pcall(txaio.reject, f, "why")
    assert.is_true(ok, tostring(err))
    assert.same({ "why" }, seen)
  end)

  it("are reported through the handler with a failure and its traceback", function()
    local f = txaio.create_future()
    local function raising_callback() error("callback-marker-2") end
    txaio.add_callbacks(f, raising_callback, nil)
    txaio.resolve(f, 1)
    local found = reports_about("callback-marker-2")
    assert.equal(1, #found)
    local r = found[1]
    assert.equal(1, r.message:find("Unhandled error in callback: ", 1, true))
    assert.is_true(txaio.is_failure(r.failure))
    assert_contains(r.failure.value, "callback-marker-2")
    assert_contains(txaio.failure_format_traceback(r.failure), "future_spec.lua")
  end)

  it("are reported from errbacks too", function()
    local f = txaio.create_future()
    txaio.add_callbacks(f, nil, function() error("errback-marker-2") end)
    txaio.reject(f, "x")
    local found = reports_about("errback-marker-2")
    assert.equal(1, #found)
    assert.equal(1, found[1].message:find("Unhandled error in callback: ", 1, true))
    assert.is_true(txaio.is_failure(found[1].failure))
  end)

  it("report a raised table as the failure's value", function()
    local f = txaio.create_future()
    local err = setmetatable({}, { __tostring = function() return "table-marker-3" end })
    txaio.add_callbacks(f, function() error(err) end, nil)
    txaio.resolve(f, 1)
    local found = reports_about("table-marker-3")
    assert.equal(1, #found)
    assert.equal(err, found[1].failure.value)
  end)

  it("are each reported once when several callbacks raise", function()
    local f = txaio.create_future()
    txaio.add_callbacks(f, function() error("multi-marker-a") end, nil)
    txaio.add_callbacks(f, function() error("multi-marker-b") end, nil)
    txaio.resolve(f, 1)
    assert.equal(1, #reports_about("multi-marker-a"))
    assert.equal(1, #reports_about("multi-marker-b"))
  end)

  it("go back to the previous handler when it is restored", function()
    local mine = {}
    local function handler(message) mine[#mine + 1] = message end
    local before = report.set_handler(handler)
    local ok, err = pcall(function()
      local f = txaio.create_future()
      txaio.add_callbacks(f, function() error("restore-marker") end, nil)
      txaio.resolve(f, 1)
    end)
    local replaced = report.set_handler(before)
    assert.is_true(ok, tostring(err))
    assert.equal(handler, replaced)
    assert.equal(1, #mine)
    assert_contains(mine[1], "restore-marker")
    assert.equal(0, #reports_about("restore-marker"))
  end)
end)

-- A memory error skips the message handler that turns an error into a failure: the raw value
-- ("not enough memory") comes back. A real one needs a memory limit, so a short script runs in
-- another process (the interpreter running the specs, with its build of the core) under ulimit -v.
describe("running out of memory", function()
  local SCRIPT = [[
local txaio = require "txaio"
local report = require "txaio.report"
local clock = require("txaio.testutil").Clock()
txaio.config.loop = clock
-- a concatenation that outgrows the limit raises a memory error on every Lua version
local function hog() local s = ("x"):rep(1024) while true do s = s .. s end end
local function show(key, fn)
  local ok, a, b = pcall(fn)
  print(key .. "=" .. tostring(ok) .. " " .. tostring(a) .. (b ~= nil and " " .. tostring(b) or ""))
end
local reports = {}
report.set_handler(function(message, failure)
  reports[#reports + 1] = message .. " (a failure: " .. tostring(txaio.is_failure(failure)) .. ")"
end)
local f = txaio.as_future(hog)
show("called", function() return txaio.is_called(f) end)
show("outcome", function()
  local state, value = require("txaio.core").outcome(f)
  return state, txaio.is_failure(value)
end)
show("tostring", function() return tostring(f) end)
show("result", function() return f:result() end)
local fail
txaio.add_callbacks(f, nil, function(x) fail = x end)
show("is_failure", function() return txaio.is_failure(fail) end)
show("message", function() return txaio.failure_message(fail) end)
show("traceback", function() return type(txaio.failure_traceback(fail)) end)
txaio.call_later(0, hog)
clock:advance(1)
local g = txaio.create_future()
txaio.add_callbacks(g, hog, nil)
txaio.resolve(g, "go")
print("reports=" .. #reports)
for i, r in ipairs(reports) do print("report " .. i .. "=" .. r) end
print("done")
]]

  local output
  -- The script's output; runs it once, for the first test that needs it.
  local function run_script()
    if output then return output end
    local out, ok = helpers.run_lua_script(SCRIPT, "ulimit -v 100000 &&")
    assert.is_true(ok, out)
    assert_contains(out, "done\n")
    output = out
    return out
  end

  -- make asan preloads the ASan runtime into the lua5.x processes that specs start, and it reserves
  -- far more address space than the limit allows; make valgrind runs the specs with valgrind's
  -- preload (the subprocess itself would run outside valgrind). Both show as LD_PRELOAD.
  local function skip_under_preload()
    local preload = os.getenv("LD_PRELOAD")
    if preload and preload ~= "" then
      pending("needs ulimit -v in a subprocess, not usable under ASan or valgrind (LD_PRELOAD is set)")
      return true
    end
    return false
  end

  it("in as_future's function fails the future with a failure saying 'not enough memory'", function()
    if skip_under_preload() then return end
    local out = run_script()
    assert_contains(out, "called=true true\n")
    assert_contains(out, "outcome=true failed true\n")
    assert_contains(out, "tostring=true txaio.Future: ")
    assert_contains(out, " (failed: error: not enough memory)\n")
    assert_contains(out, "result=false not enough memory\n")
    assert_contains(out, "is_failure=true true\n")
    assert_contains(out, "message=true error: not enough memory\n")
    assert_contains(out, "traceback=true table\n")
  end)

  it("in a timer callback or a future's callback is reported with its message", function()
    if skip_under_preload() then return end
    local out = run_script()
    assert_contains(out, "reports=2\n")
    assert_contains(out, "report 1=Unhandled error in callback: error: not enough memory (a failure: true)\n")
    assert_contains(out, "report 2=Unhandled error in callback: error: not enough memory (a failure: true)\n")
  end)
end)

describe("a failed future that is garbage-collected", function()
  -- Each helper drops every reference to the future it makes before returning.
  local function drop_unhandled(marker)
    local f = txaio.create_future_error(marker)
    assert.is_true(txaio.is_called(f))
  end

  local function drop_rejected_without_errback(marker)
    local f = txaio.create_future()
    txaio.add_callbacks(f, function() end, nil)
    txaio.reject(f, marker)
  end

  local function drop_handled(marker)
    local f = txaio.create_future()
    txaio.add_callbacks(f, nil, function() end)
    txaio.reject(f, marker)
    local g = txaio.create_future_error(marker .. "-late")
    txaio.add_callbacks(g, nil, function() end)
  end

  local function drop_cancelled(marker)
    local f = txaio.create_future()
    txaio.cancel(f, marker)
  end

  local function drop_resolved(marker)
    local f = txaio.create_future()
    txaio.resolve(f, marker)
  end

  it("is reported when nothing ever handled its failure", function()
    drop_unhandled("gc-marker-unhandled")
    collect_and_flush()
    local found = reports_about("gc-marker-unhandled")
    assert.equal(1, #found)
    assert.equal(1, found[1].message:find("Unhandled error in future: ", 1, true))
    assert.is_true(txaio.is_failure(found[1].failure))
    assert.equal("gc-marker-unhandled", found[1].failure.value)
  end)

  it("is reported when it was rejected without an errback", function()
    drop_rejected_without_errback("gc-marker-rejected")
    collect_and_flush()
    local found = reports_about("gc-marker-rejected")
    assert.equal(1, #found)
    assert.equal(1, found[1].message:find("Unhandled error in future: ", 1, true))
  end)

  it("is reported on the next future completion, without a flush", function()
    drop_unhandled("gc-marker-next-completion")
    collectgarbage()
    collectgarbage()
    txaio.resolve(txaio.create_future(), 1)
    assert.equal(1, #reports_about("gc-marker-next-completion"))
  end)

  it("is not reported when it had an errback", function()
    collect_and_flush()
    drop_handled("gc-marker-handled")
    collect_and_flush()
    assert.equal(0, #reports_about("gc-marker-handled"))
  end)

  -- The contract: cancel fails the future, and a failed future collected without ever having had
  -- an errback is reported; a cancellation is no exception.
  it("is reported when it was cancelled and nothing handled the cancellation", function()
    collect_and_flush()
    drop_cancelled("gc-marker-cancelled")
    collect_and_flush()
    local found = reports_about("gc-marker-cancelled")
    assert.equal(1, #found)
    assert.equal("Unhandled error in future: CancelledError: gc-marker-cancelled", found[1].message)
    assert.equal(txaio.CancelledError, getmetatable(found[1].failure.value))
  end)

  it("is not reported when it was cancelled and had an errback", function()
    collect_and_flush()
    do
      local f = txaio.create_future()
      txaio.add_callbacks(f, nil, function() end)
      txaio.cancel(f, "gc-marker-cancelled-handled")
    end
    collect_and_flush()
    assert.equal(0, #reports_about("gc-marker-cancelled-handled"))
  end)

  it("is not reported when it was resolved", function()
    collect_and_flush()
    local before = #reports
    drop_resolved("gc-marker-resolved")
    collect_and_flush()
    assert.equal(before, #reports)
  end)
end)

-- The core's reporter (core.set_reporter; txaio.report installs one that catches its handler's
-- errors, but not a memory error) may raise. The core drops the error. It used to drop a value
-- of its own instead, the run queue it had pushed, and keep the error: each raising report left
-- one stack slot behind, and a flush of a million failures wrote past the end of the Lua stack
-- ("corrupted size vs. prev_size", then abort). In a process of its own, so that a regression
-- cannot take busted down with it.
describe("a reporter that raises", function()
  local SCRIPT = [[
local core = require "txaio.core"
local N = 1100000   -- more than the million slots a Lua stack may have (LUAI_MAXSTACK)
local called = 0
core.set_reporter(function() called = called + 1; error("the reporter broke") end)
local failure = core.create_failure("lost")
for _ = 1, N do core.create_future_error(failure) end
collectgarbage()
collectgarbage()
core.flush_unhandled()
print(("reported %d of %d"):format(called, N))
]]

  it("gets every failure of a flush, however many there are", function()
    local out, ok = helpers.run_lua_script(SCRIPT, nil, 120)
    assert.is_true(ok, out)
    assert_contains(out, "reported 1100000 of 1100000\n")
  end)
end)

-- A flush swaps the list of queued failures for a new one; making the new list may run
-- finalizers, and a failed future's finalizer queues its failure on the list in place.
describe("a failed future finalized while a flush makes its new list", function()
  -- whatever a test did, the next one starts with the collector running and nothing armed
  after_each(function()
    finalizer.disarm()
    collectgarbage("restart")
  end)

  -- drops every reference to the future it makes before returning
  local function drop_unhandled(marker)
    local f = txaio.create_future_error(marker)
    assert.is_true(txaio.is_called(f))
  end

  it("is reported, once", function()
    collect_and_flush()
    drop_unhandled("gc-marker-before-flush")   -- queued by finalizer.arm's full collection
    local late = txaio.create_future_error("gc-marker-during-flush")
    -- the future's own finalizer, which the collector would run when `late` is collected
    local finalize = getmetatable(late).__gc
    local flush, flush_unhandled = report.flush, require("txaio.core").flush_unhandled
    local inside = false
    finalizer.arm(function()
      finalize(late)
      for level = 2, 200 do   -- whether it runs inside the flush
        local info = debug.getinfo(level, "f")
        if info == nil then break end
        if info.func == flush_unhandled then inside = true end
      end
    end)
    flush()
    local ran = finalizer.disarm()
    -- observed from now on: its real finalizer queues nothing when it is collected
    txaio.add_callbacks(late, nil, function() end)
    assert.is_true(ran, "the finalizer did not run: nothing was tested")
    assert.is_true(inside, "the finalizer ran, but not inside the flush: nothing was tested")
    assert.equal(1, #reports_about("gc-marker-before-flush"))
    collect_and_flush()
    assert.equal(1, #reports_about("gc-marker-before-flush"))
    local found = reports_about("gc-marker-during-flush")
    assert.equal(1, #found)
    assert.equal(1, found[1].message:find("Unhandled error in future: ", 1, true))
    assert.is_true(txaio.is_failure(found[1].failure))
  end)
end)

describe("future methods", function()
  it("add_callbacks adds a pair and returns the future", function()
    local f = txaio.create_future()
    local got
    assert.equal(f, f:add_callbacks(function(v) got = v end, nil))
    f:resolve(3)
    assert.equal(3, got)
  end)

  it("resolve completes the future", function()
    local f = txaio.create_future()
    f:resolve("m")
    assert.is_true(f:is_called())
    assert.equal("m", f:result())
  end)

  it("reject fails the future", function()
    local f = txaio.create_future()
    local got
    f:add_callbacks(nil, function(fail) got = fail end)
    f:reject("m-err")
    assert.is_true(f:is_called())
    assert.is_true(txaio.is_failure(got))
    assert.equal("m-err", got.value)
  end)

  it("cancel cancels the future", function()
    local cancellers = 0
    local f = txaio.create_future(nil, nil, function() cancellers = cancellers + 1 end)
    f:cancel()
    assert.equal(1, cancellers)
    assert.is_true(f:is_called())
    local err = error_of(f.result, f)
    assert.equal(txaio.CancelledError, getmetatable(err))
  end)

  it("is_called reports whether the future completed", function()
    local f = txaio.create_future()
    assert.is_false(f:is_called())
    f:resolve(nil)
    assert.is_true(f:is_called())
  end)

  it("result returns the value of a resolved future", function()
    assert.equal(5, txaio.create_future_success(5):result())
    assert.is_nil(txaio.create_future_success(nil):result())
  end)

  it("result raises the failure's value for a failed future", function()
    local err = { code = 1 }
    local f = txaio.create_future_error(err)
    local got = error_of(f.result, f)
    assert.equal(err, got)
    local g = txaio.create_future_error("string error")
    assert.equal("string error", error_of(g.result, g))
  end)

  it("result raises an error for a pending future", function()
    local f = txaio.create_future()
    local err = error_of(f.result, f)
    assert.is_not_nil(err)
    assert.is_false(f:is_called())
  end)

  it("tostring shows the state", function()
    local pending = txaio.create_future()
    local resolved = txaio.create_future_success(1)
    local failed = txaio.create_future_error("x\0y")   -- the message whole, NUL and all
    watch(failed)
    local cancelled = txaio.create_future()
    watch(cancelled)
    cancelled:cancel()
    assert_contains(tostring(pending), "pending")
    assert_contains(tostring(resolved), "resolved")
    assert.equal(" (failed: error: x\0y)", tostring(failed):match(" %(.*$"))
    assert_contains(tostring(cancelled), "cancelled")
  end)

  it("a future is a userdata", function()
    assert.equal("userdata", type(txaio.create_future()))
    assert.equal("userdata", type(txaio.create_future_success(1)))
  end)
end)

describe("bad input to future functions", function()
  local f = function() end
  local cases = {
    -- name, function, arguments, expected fragments
    { "resolve with a table", function() txaio.resolve({}, 1) end,
      { "bad argument #1", "txaio.Future expected, got table" } },
    { "resolve with nothing", function() txaio.resolve() end,
      { "bad argument #1", "txaio.Future expected" } },
    { "reject with a string", function() txaio.reject("x", "e") end,
      { "bad argument #1", "txaio.Future expected, got string" } },
    { "reject with a nil error", function() txaio.reject(txaio.create_future(), nil) end,
      { "bad argument #2" } },
    { "cancel with a number", function() txaio.cancel(42) end,
      { "bad argument #1", "txaio.Future expected, got number" } },
    { "cancel with a failure", function() txaio.cancel(txaio.create_failure("x")) end,
      { "bad argument #1", "txaio.Future expected" } },
    { "is_called with a table", function() txaio.is_called({}) end,
      { "bad argument #1", "txaio.Future expected, got table" } },
    { "add_callbacks with a table", function() txaio.add_callbacks({}, f, f) end,
      { "bad argument #1" } },
    { "add_callbacks with a non-callable callback",
      function() txaio.add_callbacks(txaio.create_future(), 42, nil) end,
      { "bad argument #2" } },
    { "add_callbacks with a non-callable errback",
      function() txaio.add_callbacks(txaio.create_future(), nil, "nope") end,
      { "bad argument #3" } },
    { "create_future with a non-callable canceller",
      function() txaio.create_future(nil, nil, 42) end,
      { "bad argument #3" } },
    { "as_future with a non-callable", function() txaio.as_future(42) end,
      { "bad argument #1" } },
  }
  for _, case in ipairs(cases) do
    local name, fn, fragments = case[1], case[2], case[3]
    it("rejects " .. name, function()
      local err = error_of(fn)
      for _, fragment in ipairs(fragments) do
        assert_contains(tostring(err), fragment)
      end
    end)
  end

  it("does not crash when a table borrows the future metatable", function()
    local mt = getmetatable(txaio.create_future())
    if type(mt) == "table" then
      local impostor = setmetatable({}, mt)
      assert.is_false(txaio.is_future(impostor))
      assert.is_false(pcall(txaio.resolve, impostor, 1))
      impostor = nil   -- luacheck: ignore 311 (drops the last reference)
      collectgarbage()
      collectgarbage()
    end
    assert.is_true(txaio.is_future(txaio.create_future()))
  end)

  it("accepts a callable table as a callback", function()
    local fut = txaio.create_future()
    local got
    local callable = setmetatable({}, { __call = function(_, v) got = v end })
    txaio.add_callbacks(fut, callable, nil)
    txaio.resolve(fut, "via __call")
    assert.equal("via __call", got)
  end)

  it("leaves the future unchanged when add_callbacks rejects its arguments", function()
    local fut = txaio.create_future()
    local calls = 0
    local ok = pcall(txaio.add_callbacks, fut, function() calls = calls + 1 end, 42)
    assert.is_false(ok)
    txaio.resolve(fut, 1)
    assert.equal(0, calls)
  end)

  it("leaves the future pending when reject is given no error", function()
    local fut = txaio.create_future()
    local ok = pcall(txaio.reject, fut, nil)
    assert.is_false(ok)
    assert.is_false(txaio.is_called(fut))
  end)
end)
