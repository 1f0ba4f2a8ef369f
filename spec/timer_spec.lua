-- Timers: CONTRACT.md section 4 (call_later, sleep, tick) with libuv's edge-case list, all on a
-- manual clock (STYLE.md R14, R21), plus the scale item: a million timers, half of them cancelled.
local txaio = require "txaio"
local testutil = require "txaio.testutil"
local compat = require "compat"
local pack = compat.pack
local helpers = require "helpers"
local error_message_of, assert_contains = helpers.error_message_of, helpers.assert_contains

local clock

before_each(function()
  clock = helpers.use_clock()
end)

-- A callback that appends `name` and the clock's time to `log` each time it runs.
local function recorder(log, name)
  return function()
    log[#log + 1] = { name = name, at = clock:now() }
  end
end

-- The names in `log`, in order, as one string ("a b c").
local function names(log)
  local out = {}
  for i, entry in ipairs(log) do out[i] = entry.name end
  return table.concat(out, " ")
end

local function noop() end

describe("txaio.call_later", function()
  it("passes its extra arguments through to the callback, including nils", function()
    local got
    txaio.call_later(1, function(...) got = pack(...) end, "a", nil, 3, nil)
    clock:advance(1)
    assert.is_table(got)
    assert.are.equal(4, got.n)
    assert.are.equal("a", got[1])
    assert.is_nil(got[2])
    assert.are.equal(3, got[3])
    assert.is_nil(got[4])
  end)

  it("passes sixteen arguments through to the callback", function()
    local count, got
    txaio.call_later(0, function(...)
      count = select("#", ...)
      got = { ... }
    end, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
    clock:advance(0)
    assert.are.equal(16, count)
    for i = 1, 16 do assert.are.equal(i, got[i]) end
  end)

  it("calls the callback with no arguments when none were given", function()
    local count
    txaio.call_later(0, function(...) count = select("#", ...) end)
    clock:tick()
    assert.are.equal(0, count)
  end)

  it("runs callbacks with equal deadlines in scheduling order", function()
    local log = {}
    for _, name in ipairs{ "a", "b", "c", "d", "e" } do
      txaio.call_later(2, recorder(log, name))
    end
    clock:advance(2)
    assert.are.equal("a b c d e", names(log))
  end)

  it("runs callbacks in deadline order, each at its own deadline", function()
    local log = {}
    txaio.call_later(3, recorder(log, "three"))
    txaio.call_later(1, recorder(log, "one"))
    txaio.call_later(2.5, recorder(log, "two-and-a-half"))
    txaio.call_later(0.5, recorder(log, "half"))
    clock:advance(10)
    assert.are.equal("half one two-and-a-half three", names(log))
    assert.are.same({ 0.5, 1, 2.5, 3 }, { log[1].at, log[2].at, log[3].at, log[4].at })
    assert.are.equal(10, clock:now())
  end)

  it("does not run a callback before its deadline", function()
    local log = {}
    txaio.call_later(1, recorder(log, "late"))
    clock:advance(0.999)
    assert.are.equal(0, #log)
    clock:advance(0.001)
    assert.are.equal(1, #log)
  end)

  it("runs a zero-delay timer scheduled from inside a timer callback on the next tick", function()
    local log = {}
    txaio.call_later(0, function()
      log[#log + 1] = "outer"
      txaio.call_later(0, function() log[#log + 1] = "inner" end)
    end)
    clock:tick()
    assert.are.same({ "outer" }, log)
    assert.are.equal(1, clock:pending())
    clock:tick()
    assert.are.same({ "outer", "inner" }, log)
    assert.are.equal(0, clock:pending())
  end)

  it("does not busy-loop on a callback that re-arms itself with delay 0", function()
    local runs = 0
    local function again()
      runs = runs + 1
      txaio.call_later(0, again)
    end
    txaio.call_later(0, again)
    clock:tick()
    assert.are.equal(1, runs)
    clock:tick()
    assert.are.equal(2, runs)
  end)

  it("treats a negative delay as zero", function()
    local log = {}
    txaio.call_later(0, recorder(log, "zero"))
    txaio.call_later(-5, recorder(log, "negative"))
    assert.are.equal(2, clock:pending())
    clock:tick()
    assert.are.equal("zero negative", names(log))
    assert.are.same({ 0, 0 }, { log[1].at, log[2].at })
  end)

  local bad_delays = {
    { "NaN", 0 / 0 },
    { "inf", math.huge },
    { "-inf", -math.huge },
    { "nil", nil },
    { "the string \"1\"", "1" },
    { "a table", {} },
    { "a boolean", true },
  }
  for _, row in ipairs(bad_delays) do
    it("rejects " .. row[1] .. " as a delay with bad argument #1", function()
      local err = error_message_of(txaio.call_later, row[2], noop)
      assert_contains(err, "bad argument #1")
      assert.are.equal(0, clock:pending())
    end)
  end

  local bad_callables = {
    { "nil", nil },
    { "a number", 42 },
    { "a string", "noop" },
    { "a table without __call", {} },
    { "a boolean", false },
  }
  for _, row in ipairs(bad_callables) do
    it("rejects " .. row[1] .. " as the callback with bad argument #2", function()
      local err = error_message_of(txaio.call_later, 1, row[2])
      assert_contains(err, "bad argument #2")
      assert.are.equal(0, clock:pending())
    end)
  end

  it("accepts a table with a __call metamethod as the callback", function()
    local got_self, got_arg
    local callable = setmetatable({}, {
      __call = function(self, arg) got_self, got_arg = self, arg end,
    })
    txaio.call_later(1, callable, "x")
    clock:advance(1)
    assert.are.equal(callable, got_self)
    assert.are.equal("x", got_arg)
  end)

  it("returns a handle whose cancel returns true once and false afterwards", function()
    local ran = false
    local h = txaio.call_later(1, function() ran = true end)
    assert.is_true(h:cancel())
    assert.is_false(h:cancel())
    assert.is_false(h:cancel())
    clock:advance(5)
    assert.is_false(ran)
    assert.are.equal(0, clock:pending())
  end)

  it("reports a handle active while pending and inactive after firing", function()
    local h = txaio.call_later(1, noop)
    assert.is_true(h:active())
    clock:advance(0.5)
    assert.is_true(h:active())
    clock:advance(0.5)
    assert.is_false(h:active())
    assert.is_false(h:cancel())
  end)

  it("reports a handle inactive after cancel", function()
    local h = txaio.call_later(1, noop)
    h:cancel()
    assert.is_false(h:active())
  end)

  it("lets a callback cancel its own handle harmlessly", function()
    local h, result
    local runs = 0
    h = txaio.call_later(1, function()
      runs = runs + 1
      result = h:cancel()
    end)
    clock:advance(5)
    assert.are.equal(1, runs)
    assert.is_false(result)
    assert.is_false(h:active())
    assert.are.equal(0, clock:pending())
  end)

  it("lets a callback cancel another timer due at the same instant", function()
    local log, victim = {}, nil
    local cancelled
    txaio.call_later(1, function()
      log[#log + 1] = "killer"
      cancelled = victim:cancel()
    end)
    victim = txaio.call_later(1, recorder(log, "victim"))
    txaio.call_later(1, recorder(log, "bystander"))
    clock:advance(1)
    assert.is_true(cancelled)
    assert.are.same({ "killer", "bystander" }, { log[1], log[2].name })
    assert.are.equal(2, #log)
    assert.is_false(victim:active())
  end)

  it("never calls a callback twice", function()
    local runs = 0
    txaio.call_later(1, function() runs = runs + 1 end)
    clock:advance(1)
    clock:tick()
    clock:advance(100)
    clock:tick()
    assert.are.equal(1, runs)
  end)

  it("lets a callback re-arm itself", function()
    local times = {}
    local function rearm()
      times[#times + 1] = clock:now()
      if #times < 3 then txaio.call_later(1, rearm) end
    end
    txaio.call_later(1, rearm)
    clock:advance(10)
    assert.are.same({ 1, 2, 3 }, times)
    assert.are.equal(0, clock:pending())
  end)

  it("keeps a huge finite delay pending without firing it", function()
    local ran = false
    local h = txaio.call_later(1e12, function() ran = true end)
    clock:advance(1e6)
    assert.is_false(ran)
    assert.is_true(h:active())
    assert.are.equal(1, clock:pending())
  end)

  it("computes the deadline from the clock at scheduling time", function()
    local log = {}
    clock:advance(7)
    txaio.call_later(2, recorder(log, "t"))
    clock:advance(1.5)
    assert.are.equal(0, #log)
    clock:advance(0.5)
    assert.are.equal(1, #log)
    assert.are.equal(9, log[1].at)
  end)

  it("keeps running later timers when a callback raises, and reports the error", function()
    local reports, restore_handler = helpers.record_reports()
    local log = {}
    local ok, err = pcall(function()
      txaio.call_later(1, function() error("timer boom") end)
      txaio.call_later(1, recorder(log, "same instant"))
      txaio.call_later(2, recorder(log, "later"))
      clock:advance(3)
    end)
    restore_handler()
    assert.is_true(ok, err)
    assert.are.equal("same instant later", names(log))
    assert.are.equal(1, #reports)
    local message = reports[1].message
    assert.is_string(message)
    assert.are.equal(1, message:find("Unhandled error in callback: ", 1, true))
    assert_contains(message, "timer boom")
    assert.is_true(txaio.is_failure(reports[1].failure))
  end)
end)

describe("the number of arguments a timer keeps", function()
  local unpack = compat.unpack
  local args = {}
  for i = 1, 10001 do args[i] = i end

  it("is at most 10,000: more is refused with an argument error and nothing is scheduled", function()
    if not pcall(function() return select("#", unpack(args)) end) then
      pending(_VERSION .. " cannot pass 10,001 arguments to a function (LUAI_MAXCSTACK)")
      return
    end
    local got
    txaio.call_later(0, function(...) got = pack(...) end, unpack(args, 1, 10000))
    clock:advance(1)
    assert.are.equal(10000, got.n)
    assert.are.equal(10000, got[10000])
    local err = error_message_of(txaio.call_later, 0, noop, unpack(args))
    assert_contains(err, "bad argument #10003 to '")
    assert_contains(err, "' (too many arguments for the callback (at most 10000))")
    assert.are.equal(0, clock:pending())
  end)
end)

describe("a timer whose arguments do not fit on the stack of the tick", function()
  it("is reported as a callback error, and the tick runs the other due timers", function()
    local reports, restore = helpers.record_reports()
    local args, ran, ran_later = {}, false, false
    for i = 1, helpers.TOO_MANY_FOR_FULL_STACK do args[i] = i end
    local big = txaio.call_later(0, function() error("must not run") end, compat.unpack(args))
    txaio.call_later(0, function() ran = true end)
    txaio.call_later(2, function() ran_later = true end)
    local ok, err = helpers.with_full_stack(function() return pcall(clock.tick, clock) end)
    restore()
    assert.is_true(ok, tostring(err))
    assert.is_true(ran)
    assert.is_false(big:active())
    assert.is_false(big:cancel())
    local found = helpers.reports_about(reports,
      "stack overflow (no room for the arguments of a timer callback)")
    assert.are.equal(1, #found)
    assert.are.equal(1, clock:pending())
    clock:advance(2)
    assert.is_true(ran_later)
  end)
end)

describe("a finalizer that schedules while a cancel empties a large heap", function()
  local finalizer = require "finalizer"
  after_each(function() finalizer.disarm() end)

  -- The last cancel frees the heap's array and starts a fresh ROOTS table. Making that table may
  -- run a finalizer; a timer it schedules went into the heap and ROOTS that were then thrown
  -- away, and the next tick read a freed timer.
  it("keeps that timer: it fires when due", function()
    local hs = {}
    for i = 1, 1100 do hs[i] = txaio.call_later(1, noop) end   -- more than 1024: shrinks when empty
    for i = 1, 1099 do hs[i]:cancel() end
    local cancelling, fired = false, false
    finalizer.arm(function()
      if not (cancelling and clock:pending() == 0) then return false end   -- not there yet
      txaio.call_later(2, function() fired = true end)
    end)
    -- nothing else between arming and the cancel: evaluating assert.is_true allocates
    cancelling = true
    local cancelled = hs[1100]:cancel()
    cancelling = false
    local placed = finalizer.disarm()
    if not placed and _VERSION == "Lua 5.2" then
      -- 5.2 checks its collector before allocating: the cancel's only allocation runs no step
      pending("Lua 5.2 cannot run a finalizer inside the last cancel: nothing was tested")
      return
    end
    assert.is_true(placed, "no finalizer ran inside the last cancel")
    assert.is_true(cancelled)
    assert.are.equal(1, clock:pending())
    collectgarbage()
    collectgarbage()
    clock:advance(5)
    assert.is_true(fired)
    assert.are.equal(0, clock:pending())
  end)
end)

describe("cancelled timers in the scheduler's heap", function()
  -- A cancel leaves the timer's heap entry behind as a tombstone (src/sched.c); these pin that the
  -- tombstones are invisible and bounded.
  local function sched() return clock._sched end

  it("are not counted as pending, and the next deadline skips them", function()
    local log = {}
    local first = txaio.call_later(1, recorder(log, "first"))
    txaio.call_later(3, recorder(log, "second"))
    assert.is_true(first:cancel())
    assert.are.equal(1, clock:pending())
    assert.are.equal(3, sched():next_due())
    clock:advance(5)
    assert.are.equal("second", names(log))
    assert.are.equal(0, sched():entries())
  end)

  it("stay at most as many as the pending timers plus 64, however many are cancelled", function()
    local log = {}
    txaio.call_later(100, recorder(log, "kept"))
    local worst = 0
    for i = 1, 20000 do
      -- deadlines after the kept timer's, so that none of the tombstones reaches the top
      txaio.call_later(100 + i % 7, noop):cancel()
      worst = math.max(worst, sched():entries() - clock:pending())
    end
    assert.are.equal(1, clock:pending())
    assert.is_true(worst > 0, "no tombstone was ever left: the test no longer tests them")
    -- a sweep runs once the tombstones pass the pending timers plus 64: at most 65 are left here
    assert.are.equal(1 + 64, worst)
    clock:advance(200)
    assert.are.equal("kept", names(log))
  end)

  it("are swept out when they outnumber the pending timers, and order is kept", function()
    local log, handles = {}, {}
    for i = 1, 1000 do handles[i] = txaio.call_later(i % 10, recorder(log, tostring(i))) end
    for i = 1, 1000 do
      if i % 4 ~= 0 then assert.is_true(handles[i]:cancel()) end
    end
    assert.are.equal(250, clock:pending())
    assert.is_true(sched():entries() <= 2 * 250 + 64, tostring(sched():entries()))
    clock:advance(10)
    -- the survivors, by deadline and then in scheduling order
    local want = {}
    for due = 0, 9 do
      for i = 4, 1000, 4 do if i % 10 == due then want[#want + 1] = tostring(i) end end
    end
    assert.are.equal(table.concat(want, " "), names(log))
  end)

  it("reuse the slots of swept tombstones for new timers", function()
    local log, handles = {}, {}
    for i = 1, 300 do handles[i] = txaio.call_later(50, noop) end
    txaio.call_later(1, recorder(log, "early"))
    for i = 1, 300 do handles[i]:cancel() end   -- the sweep stacks 300 slots
    local again = {}
    for i = 1, 300 do again[i] = txaio.call_later(2, recorder(log, "again" .. i)) end
    assert.are.equal(301, clock:pending())
    clock:advance(3)
    assert.are.equal(301, #log)
    assert.are.equal("early", log[1].name)
    assert.are.equal("again300", log[301].name)
    assert.are.equal(0, clock:pending())
    for i = 1, 300 do assert.is_false(again[i]:active()) end
  end)

  it("do not keep a cancelled handle, its callback or its arguments alive", function()
    txaio.call_later(1, noop)   -- pending, so the cancelled entry stays in the heap
    local weak = setmetatable({}, { __mode = "k" })
    -- in a function of its own: Lua 5.1 and LuaJIT would still see the locals of a do-block
    assert.is_true((function()
      local fn, arg = function() end, {}
      local h = txaio.call_later(5, fn, arg)
      weak[h], weak[fn], weak[arg] = true, true, true
      return h:cancel()
    end)())
    assert.are.equal(2, sched():entries())
    helpers.full_gc()
    assert.is_nil(next(weak), "a cancelled timer's handle, callback or argument outlived it")
  end)
end)

describe("txaio.tick", function()
  it("returns nil when no timer is pending", function()
    assert.is_nil(txaio.tick())
  end)

  it("returns the seconds until the next deadline", function()
    txaio.call_later(5, noop)
    txaio.call_later(8, noop)
    assert.are.equal(5, txaio.tick())
    clock:advance(2)
    assert.are.equal(3, txaio.tick())
  end)

  it("runs the timers that are due and then returns nil when none remain", function()
    local ran = false
    txaio.call_later(0, function() ran = true end)
    assert.is_nil(txaio.tick())
    assert.is_true(ran)
  end)

  -- a tick's message handler is made once, not per tick, on 5.1 and LuaJIT too (a closure there
  -- is 32 bytes or more); the timers are made before the count starts
  it("allocates nothing to fire a timer", function()
    local N, ran = 1000, 0
    local function count() ran = ran + 1 end
    for i = 1, N do txaio.call_later(i, count) end
    local bytes = helpers.bytes_allocated(function()
      for _ = 1, N do clock:advance(1) end
    end)
    assert.is_true(bytes < 8 * N, ("%d bytes for %d ticks"):format(bytes, N))
    assert.equal(N, ran)
  end)
end)

describe("txaio.sleep", function()
  it("returns a future resolved with nil once the delay has passed", function()
    local f = txaio.sleep(2)
    assert.is_true(txaio.is_future(f))
    local called, value, count = false, "untouched", nil
    txaio.add_callbacks(f, function(...)
      called, value, count = true, ..., select("#", ...)
    end, nil)
    clock:advance(1.999)
    assert.is_false(called)
    assert.is_false(txaio.is_called(f))
    clock:advance(0.001)
    assert.is_true(called)
    assert.is_nil(value)
    assert.are.equal(1, count)
    assert.are.equal(2, clock:now())
  end)

  it("stops its timer when the future is cancelled", function()
    local f = txaio.sleep(5)
    local before = clock:pending()
    local failure
    txaio.add_callbacks(f, nil, function(fail) failure = fail end)
    txaio.cancel(f)
    assert.are.equal(before - 1, clock:pending())
    assert.is_true(txaio.is_failure(failure))
    assert.are.equal(txaio.CancelledError, getmetatable(failure.value))
    clock:advance(10)
    assert.are.equal(0, clock:pending())
  end)

  it("rejects a NaN delay with bad argument #1", function()
    assert_contains(error_message_of(txaio.sleep, 0 / 0), "bad argument #1")
  end)
end)

describe("timer handles and the collector", function()
  -- A loop object of its own, with API functions bound to it, that nothing else references.
  local function private_loop()
    local loop = testutil.Clock()
    return loop, txaio.with_config { loop = loop }
  end

  local function collected(weak)
    helpers.full_gc(4)
    return next(weak) == nil
  end

  it("does not keep a dropped loop alive through a handle; the handle then reports done", function()
    local weak = setmetatable({}, { __mode = "k" })
    local ran = false
    -- in a function of its own: LuaJIT would still see the locals of a do-block
    local handle = (function()
      local loop, api = private_loop()
      weak[loop] = true
      return api.call_later(10, function() ran = true end)
    end)()
    assert.is_true(handle:active())
    assert.is_true(collected(weak), "the loop outlived its last reference")
    assert.is_false(handle:active())
    assert.is_false(handle:cancel())
    assert.is_false(handle:cancel())
    assert.matches("%(done%)$", tostring(handle))
    assert.is_false(ran)
  end)

  -- cancel keeps the last loop it found (weakly): the next one must neither be mistaken for it nor
  -- be kept alive by it
  it("cancels on the right loop when loops take turns, and keeps none of them alive", function()
    local weak = setmetatable({}, { __mode = "k" })
    local ran = {}
    local a_loop, a = private_loop()
    local b_loop, b = private_loop()
    local ha, hb = {}, {}
    for i = 1, 4 do
      ha[i] = a.call_later(i, function() ran[#ran + 1] = "a" .. i end)
      hb[i] = b.call_later(i, function() ran[#ran + 1] = "b" .. i end)
    end
    assert.is_true(ha[1]:cancel())
    assert.is_true(hb[1]:cancel())
    assert.is_true(hb[2]:cancel())
    assert.is_true(ha[3]:cancel())
    assert.is_false(ha[1]:cancel())
    assert.equal(2, a_loop:pending())
    assert.equal(2, b_loop:pending())
    a_loop:advance(5)
    b_loop:advance(5)
    assert.same({ "a2", "a4", "b3", "b4" }, ran)
    -- the last cancel is on a third loop's, which the cache then holds; that loop still has a
    -- timer pending when all three are dropped
    local late = (function()
      local c_loop, c = private_loop()
      weak[c_loop] = true
      local h = c.call_later(1, noop)
      assert.is_true(c.call_later(2, noop):cancel())
      return h
    end)()
    weak[a_loop], weak[b_loop] = true, true
    a_loop, b_loop, a, b = nil, nil, nil, nil   -- luacheck: ignore 311 (drops the references)
    assert.is_true(collected(weak), "a loop outlived its last reference")
    assert.is_false(late:cancel())
  end)

  it("collects a dropped loop whose pending callbacks and sleeps reference the loop", function()
    local weak = setmetatable({}, { __mode = "k" })
    local sleeper = (function()
      local loop, api = private_loop()
      weak[loop] = true
      for i = 1, 100 do api.call_later(i, function() return loop, api end, loop) end
      return api.sleep(5)
    end)()
    assert.is_true(collected(weak), "the loop outlived its last reference")
    -- the sleep's future is still a future; cancelling it cannot reach the dead scheduler
    assert.is_false(txaio.is_called(sleeper))
    assert.is_true(txaio.cancel(sleeper))
    assert.is_true(txaio.is_called(sleeper))
  end)

  it("reuses the slots of finished timers: memory stays flat over many schedule/cancel rounds", function()
    helpers.with_ordinary_gc(function()
      local keep = {}
      for i = 1, 100 do keep[i] = txaio.call_later(1e6, noop) end   -- these stay pending
      local function round()
        local hs = {}
        for i = 1, 500 do hs[i] = txaio.call_later(i % 7, noop, i) end
        for i = 1, 500, 2 do hs[i]:cancel() end
        clock:advance(10)
      end
      -- warm up first: LuaJIT's compiled traces are collectable objects and count as memory
      for _ = 1, 50 do round() end
      collectgarbage(); collectgarbage()
      local before = collectgarbage("count")
      for _ = 1, 200 do round() end
      collectgarbage(); collectgarbage()
      local grown = (collectgarbage("count") - before) * 1024
      -- a leak of a single byte a timer would be 100,000; LuaJIT's late traces are a few kilobytes
      assert.is_true(grown < 32 * 1024, ("grew by %d bytes over 100,000 timers"):format(grown))
      assert.are.equal(100, clock:pending())
      for _, h in ipairs(keep) do assert.is_true(h:cancel()) end
      assert.are.equal(0, clock:pending())
    end)
  end)

  it("keeps arguments and order right when slots are reused", function()
    local log = {}
    local hs = {}
    for i = 1, 20 do hs[i] = txaio.call_later(1, function(v) log[#log + 1] = v end, "first" .. i) end
    for i = 1, 20, 3 do hs[i]:cancel() end
    for i = 1, 7 do txaio.call_later(1, function(v) log[#log + 1] = v end, "second" .. i) end
    clock:advance(1)
    local want = {}
    for i = 1, 20 do if (i - 1) % 3 ~= 0 then want[#want + 1] = "first" .. i end end
    for i = 1, 7 do want[#want + 1] = "second" .. i end
    assert.are.same(want, log)
  end)
end)

describe("a million timers", function()
  -- Ordinary GC pacing for both: under the pause-0 pass a million live timers make every
  -- collection cycle a million objects long, quadratic in all (hours on Lua 5.2 and 5.3), and what
  -- these pin (order, cancellation, memory given back after full collections) does not depend on it.
  it("fire in deadline order, cancelled ones never, and their memory comes back #scale", function()
    helpers.with_ordinary_gc(function()
      local N = 1000000
      local seed = 20240611
      math.randomseed(seed)
      print(("\n[timer_spec] scale test: math.randomseed(%d), %d timers"):format(seed, N))

      collectgarbage()
      collectgarbage()
      local kb_before = collectgarbage("count")

      local big = testutil.Clock()
      txaio.config.loop = big
      -- handles[i] is timer i's handle until it fires, then false; a second fire or a fire of a
      -- cancelled (even) timer counts as a wrong one. Reusing this table keeps the test from
      -- allocating another million-entry one, which the stress GC mode pays for on every cycle.
      local handles = {}
      local count, last, out_of_order, off_deadline, wrong = 0, -math.huge, 0, 0, 0
      local now = big.now
      local function on_fire(deadline, i)
        count = count + 1
        if deadline < last then out_of_order = out_of_order + 1 end
        last = deadline
        if now(big) ~= deadline then off_deadline = off_deadline + 1 end
        if i % 2 == 0 or not handles[i] then wrong = wrong + 1 end
        handles[i] = false
      end

      local call_later, random = txaio.call_later, math.random
      for i = 1, N do
        local deadline = random() * 1000
        handles[i] = call_later(deadline, on_fire, deadline, i)
      end
      assert.are.equal(N, big:pending())
      for i = 2, N, 2 do
        if not handles[i]:cancel() then wrong = wrong + 1 end
      end
      assert.are.equal(N / 2, big:pending())

      big:advance(1001)

      assert.are.equal(N / 2, count)
      assert.are.equal(0, out_of_order)
      assert.are.equal(0, off_deadline)
      for i = 1, N do
        local h = handles[i]
        if i % 2 == 1 then
          if h ~= false then wrong = wrong + 1 end
        elseif not h or h:active() then
          wrong = wrong + 1
        end
      end
      assert.are.equal(0, wrong)
      assert.are.equal(0, big:pending())

      txaio.config.loop = clock
      handles, on_fire, big, now = nil, nil, nil, nil   -- luacheck: ignore 311 (drops them)
      collectgarbage()
      collectgarbage()
      local kb_after = collectgarbage("count")
      assert.is_true(kb_after - kb_before < 2048,
        ("%.0f KB before, %.0f KB after"):format(kb_before, kb_after))
    end)
  end)

  it("gives the memory of fired and cancelled timers back while their loop lives on #scale", function()
    helpers.with_ordinary_gc(function()
      local live = testutil.Clock()
      collectgarbage()
      collectgarbage()
      local kb_before = collectgarbage("count")
      local fired = 0
      local function count() fired = fired + 1 end
      local handles = {}
      for i = 1, 200000 do handles[i] = txaio.call_later((i % 1000) / 1000, count) end
      for i = 1, 200000, 2 do handles[i]:cancel() end
      handles = nil   -- luacheck: ignore 311 (drops the last reference)
      live:advance(2)   -- wrong loop: nothing of ours is on it
      clock:advance(2)
      assert.are.equal(100000, fired)
      assert.are.equal(0, clock:pending())
      collectgarbage()
      collectgarbage()
      local kb_after = collectgarbage("count")
      assert.is_true(kb_after - kb_before < 512,
        ("%.0f KB before, %.0f KB after, with the loop still alive"):format(kb_before, kb_after))
      assert.is_truthy(live and clock)
    end)
  end)
end)
