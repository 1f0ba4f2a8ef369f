-- txaio.gather: CONTRACT.md section 2 (the gather row) and its section 11 rows (bad input).
local txaio = require "txaio"
local report = require "txaio.report"
local helpers = require "helpers"
local finalizer = require "finalizer"
local watch, assert_contains = helpers.watch, helpers.assert_contains
local with_ordinary_gc = helpers.with_ordinary_gc

setup(function()
  txaio.use_host{ now = function() return 0 end }
end)

local function pending_futures(n)
  local list = {}
  for i = 1, n do list[i] = txaio.create_future() end
  return list
end

-- Every report the handler received during the current test.
local reports
local restore_handler

before_each(function()
  reports, restore_handler = helpers.record_reports()
end)

after_each(function()
  restore_handler()
end)

local function reports_about(marker)
  return helpers.reports_about(reports, marker)
end

describe("txaio.gather", function()
  it("returns a future", function()
    local g = txaio.gather(pending_futures(2))
    assert.is_true(txaio.is_future(g))
    assert.equal("userdata", type(g))
  end)

  it("stays pending until every future has completed", function()
    local fs = pending_futures(3)
    local g = txaio.gather(fs)
    txaio.resolve(fs[1], 1)
    txaio.resolve(fs[3], 3)
    assert.is_false(txaio.is_called(g))
    txaio.resolve(fs[2], 2)
    assert.is_true(txaio.is_called(g))
  end)

  it("lists results in list order regardless of completion order", function()
    local fs = pending_futures(3)
    local result = watch(txaio.gather(fs))
    txaio.resolve(fs[3], "c")
    txaio.resolve(fs[1], "a")
    assert.is_nil(result())
    txaio.resolve(fs[2], "b")
    local kind, values = result()
    assert.equal("resolved", kind)
    assert.same({ "a", "b", "c", n = 3 }, values)
  end)

  it("keeps a failure in place when consume_exceptions is not given", function()
    local fs = pending_futures(3)
    local result = watch(txaio.gather(fs))
    local err = { code = 2 }
    txaio.resolve(fs[1], "a")
    txaio.reject(fs[2], err)
    txaio.resolve(fs[3], "c")
    local kind, values = result()
    assert.equal("resolved", kind)
    assert.equal(3, values.n)
    assert.equal("a", values[1])
    assert.is_true(txaio.is_failure(values[2]))
    assert.equal(err, values[2].value)
    assert.equal("c", values[3])
  end)

  it("keeps a failure in place when consume_exceptions is true", function()
    local fs = pending_futures(2)
    local result = watch(txaio.gather(fs, true))
    txaio.reject(fs[1], "first broke")
    txaio.resolve(fs[2], "b")
    local kind, values = result()
    assert.equal("resolved", kind)
    assert.is_true(txaio.is_failure(values[1]))
    assert.equal("first broke", values[1].value)
    assert.equal("b", values[2])
    assert.equal(2, values.n)
  end)

  it("keeps the very failure the future failed with", function()
    local fs = pending_futures(1)
    local result = watch(txaio.gather(fs))
    local fail = txaio.create_failure("same object")
    txaio.reject(fs[1], fail)
    local _, values = result()
    assert.equal(fail, values[1])
  end)

  it("keeps a cancelled future's failure in place", function()
    local fs = pending_futures(2)
    local result = watch(txaio.gather(fs))
    txaio.cancel(fs[2], "stop")
    txaio.resolve(fs[1], 1)
    local kind, values = result()
    assert.equal("resolved", kind)
    assert.equal(1, values[1])
    assert.is_true(txaio.is_failure(values[2]))
    assert.equal(txaio.CancelledError, getmetatable(values[2].value))
    assert.equal("stop", values[2].value.message)
  end)

  it("leaves holes for nil results and sets n to the list length", function()
    local fs = pending_futures(4)
    local result = watch(txaio.gather(fs))
    txaio.resolve(fs[1], nil)
    txaio.resolve(fs[2], 2)
    txaio.resolve(fs[3], nil)
    txaio.resolve(fs[4], nil)
    local kind, values = result()
    assert.equal("resolved", kind)
    assert.equal(4, values.n)
    assert.is_nil(values[1])
    assert.equal(2, values[2])
    assert.is_nil(values[3])
    assert.is_nil(values[4])
  end)

  it("keeps false results as false", function()
    local fs = pending_futures(2)
    local result = watch(txaio.gather(fs))
    txaio.resolve(fs[1], false)
    txaio.resolve(fs[2], true)
    local _, values = result()
    assert.same({ false, true, n = 2 }, values)
  end)

  it("resolves at once to a table with n == 0 for an empty list", function()
    local g = txaio.gather({})
    assert.is_true(txaio.is_future(g))
    assert.is_true(txaio.is_called(g))
    local kind, values = watch(g)()
    assert.equal("resolved", kind)
    assert.is_table(values)
    assert.equal(0, values.n)
    assert.same({ n = 0 }, values)
  end)

  it("resolves an empty list at once when consume_exceptions is false", function()
    local kind, values = watch(txaio.gather({}, false))()
    assert.equal("resolved", kind)
    assert.same({ n = 0 }, values)
  end)

  it("fails with the first failure when consume_exceptions is false", function()
    local fs = pending_futures(4)
    local result = watch(txaio.gather(fs, false))
    local first, second = { name = "first" }, { name = "second" }
    txaio.resolve(fs[1], "ok")
    txaio.reject(fs[2], first)
    txaio.reject(fs[3], second)
    txaio.resolve(fs[4], "ok too")
    local kind, fail = result()
    assert.equal("failed", kind)
    assert.is_true(txaio.is_failure(fail))
    assert.equal(first, fail.value)
  end)

  it("resolves normally with consume_exceptions false when nothing fails", function()
    local fs = pending_futures(2)
    local result = watch(txaio.gather(fs, false))
    txaio.resolve(fs[2], 2)
    txaio.resolve(fs[1], 1)
    local kind, values = result()
    assert.equal("resolved", kind)
    assert.same({ 1, 2, n = 2 }, values)
  end)

  it("accepts futures that have already completed", function()
    local pending = txaio.create_future()
    local fs = {
      txaio.create_future_success("done"),
      txaio.create_future_error("already broken"),
      pending,
    }
    local result = watch(txaio.gather(fs))
    assert.is_nil(result())
    txaio.resolve(pending, "late")
    local kind, values = result()
    assert.equal("resolved", kind)
    assert.equal(3, values.n)
    assert.equal("done", values[1])
    assert.is_true(txaio.is_failure(values[2]))
    assert.equal("already broken", values[2].value)
    assert.equal("late", values[3])
  end)

  it("resolves at once when every future has already completed", function()
    local g = txaio.gather{ txaio.create_future_success(1), txaio.create_future_success(2) }
    assert.is_true(txaio.is_called(g))
    local kind, values = watch(g)()
    assert.equal("resolved", kind)
    assert.same({ 1, 2, n = 2 }, values)
  end)

  it("fails at once with consume_exceptions false when a future has already failed", function()
    local g = txaio.gather({ txaio.create_future_success(1), txaio.create_future_error("pre") }, false)
    assert.is_true(txaio.is_called(g))
    local kind, fail = watch(g)()
    assert.equal("failed", kind)
    assert.equal("pre", fail.value)
  end)

  it("gathers 1,000 futures resolved one by one", function()
    local n = 1000
    local early, kind, values = nil, nil, nil
    with_ordinary_gc(function()
      local fs = pending_futures(n)
      local g = txaio.gather(fs)
      local result = watch(g)
      for i = 1, n do
        if txaio.is_called(g) then early = early or i end
        txaio.resolve(fs[i], i * 2)
      end
      kind, values = result()
    end)
    assert.is_nil(early, "gathered future completed before all futures did")
    assert.equal("resolved", kind)
    assert.equal(n, values.n)
    local expected = { n = n }
    for i = 1, n do expected[i] = i * 2 end
    assert.same(expected, values)
  end)

  it("gathers 1,000 futures resolved in reverse order", function()
    local n = 1000
    local kind, values
    with_ordinary_gc(function()
      local fs = pending_futures(n)
      local result = watch(txaio.gather(fs))
      for i = n, 1, -1 do
        txaio.resolve(fs[i], -i)
      end
      kind, values = result()
    end)
    assert.equal("resolved", kind)
    local expected = { n = n }
    for i = 1, n do expected[i] = -i end
    assert.same(expected, values)
  end)

  it("gives the same result twice when a future is listed twice", function()
    local f = txaio.create_future()
    local result = watch(txaio.gather({ f, f }))
    txaio.resolve(f, "twice")
    local kind, values = result()
    assert.equal("resolved", kind)
    assert.same({ "twice", "twice", n = 2 }, values)
  end)

  it("runs callbacks of the gathered future before the completing resolve returns", function()
    local fs = pending_futures(2)
    local order = {}
    txaio.add_callbacks(txaio.gather(fs), function() order[#order + 1] = "gathered" end, nil)
    txaio.resolve(fs[1], 1)
    order[#order + 1] = "first resolved"
    txaio.resolve(fs[2], 2)
    order[#order + 1] = "second resolved"
    assert.same({ "first resolved", "gathered", "second resolved" }, order)
  end)

  it("does not change the futures it gathers", function()
    local fs = pending_futures(2)
    txaio.gather(fs)
    local seen
    txaio.add_callbacks(fs[1], function(v) seen = v end, nil)
    txaio.resolve(fs[1], "own callback")
    txaio.resolve(fs[2], 2)
    assert.equal("own callback", seen)
    assert.equal("own callback", fs[1]:result())
  end)

  it("consumes the failures it keeps in place, so they are not reported when collected", function()
    collectgarbage(); collectgarbage(); report.flush()
    local function gather_one_failure()
      local fs = pending_futures(1)
      local g = txaio.gather(fs)
      txaio.reject(fs[1], "gather-gc-marker")
      return g
    end
    local g = gather_one_failure()
    watch(g)
    g = nil   -- luacheck: ignore 311 (drops the last reference)
    collectgarbage(); collectgarbage(); report.flush()
    assert.equal(0, #reports_about("gather-gc-marker"))
  end)
end)

describe("bad input to txaio.gather", function()
  it("rejects a list that is not a table", function()
    local ok, err = pcall(txaio.gather, "not a list")
    assert.is_false(ok)
    assert_contains(err, "bad argument #1")
  end)

  it("rejects a missing list", function()
    local ok, err = pcall(txaio.gather)
    assert.is_false(ok)
    assert_contains(err, "bad argument #1")
  end)

  it("rejects a list holding something that is not a future", function()
    local ok, err = pcall(txaio.gather, { txaio.create_future(), 42 })
    assert.is_false(ok)
    assert_contains(err, "bad argument #1")
  end)
end)

-- gather checks the list, then allocates (its future, the results table): an allocation may run a
-- finalizer, and a finalizer may change the list. gather must then use the futures it checked or
-- refuse the list; the finalizer here runs at gather's first allocation, before anything is
-- attached, so gather refuses the list, and leaves every future of it as it was.
describe("txaio.gather when a finalizer changes the list during the call", function()
  -- whatever a test did, the next one starts with the collector running and nothing armed
  after_each(function()
    finalizer.disarm()
    collectgarbage("restart")
  end)

  -- Whether `fn` is on the stack of the running code (the finalizer's): that it ran inside gather.
  local function on_stack(fn)
    for level = 2, 200 do
      local info = debug.getinfo(level, "f")
      if info == nil then return false end
      if info.func == fn then return true end
    end
    return false
  end

  local CASES = {
    { "nil", "nil", function() return nil end },
    { "a failure", "userdata", function() return txaio.create_failure("not a future") end },
    { "a file handle", "userdata", function() return io.stdout end },
  }

  for _, case in ipairs(CASES) do
    local what, typename, replacement = case[1], case[2], case[3]
    it("refuses the list, attaching nothing, when item 2 becomes " .. what, function()
      collectgarbage(); collectgarbage(); report.flush()
      local marker = "gather-finalizer-" .. typename .. "-" .. what:gsub(" ", "-")
      -- Every reference to the futures is dropped when this returns: if gather had attached a
      -- callback (and so observed them), their failures would not be reported when collected.
      local function attempt()
        local first, second = txaio.create_future(), txaio.create_future()
        local list = { first, second }
        local other = replacement()
        -- looked up before arming: a lookup through busted's environment may allocate
        local gather, protected = txaio.gather, pcall
        local inside
        finalizer.arm(function()
          list[2] = other
          inside = on_stack(gather)
        end)
        local ok, err = protected(gather, list)
        local ran = finalizer.disarm()
        txaio.reject(first, marker .. "-item-1")
        txaio.reject(second, marker .. "-item-2")
        return ran, inside, ok, err
      end
      local ran, inside, ok, err = attempt()
      assert.is_true(ran, "the finalizer did not run: nothing was tested")
      assert.is_true(inside, "the finalizer ran, but not inside gather: nothing was tested")
      assert.is_false(ok, "gather did not raise")
      assert_contains(tostring(err), "bad argument #1 to")
      assert_contains(tostring(err), "(list of futures expected, item 2 is " .. typename .. ")")
      collectgarbage(); collectgarbage(); report.flush()
      for i = 1, 2 do
        local found = reports_about(marker .. "-item-" .. i)
        assert.equal(1, #found, "future " .. i .. " was observed by the refused gather")
        assert.equal(1, found[1].message:find("Unhandled error in future: ", 1, true))
      end
    end)
  end
end)
