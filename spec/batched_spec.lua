-- Batched timers: CONTRACT.md section 4, txaio.make_batched_timer, on a manual clock (STYLE.md R14,
-- R21). A call never fires before its deadline, at most one bucket after it, and each non-empty
-- bucket costs one scheduler entry.
local txaio = require "txaio"
local compat = require "compat"
local pack = compat.pack
local helpers = require "helpers"
local error_message_of, assert_contains = helpers.error_message_of, helpers.assert_contains

local clock

before_each(function()
  clock = helpers.use_clock()
end)

local function noop() end

describe("txaio.make_batched_timer", function()
  it("returns an object whose call_later passes arguments through, including nils", function()
    local bt = txaio.make_batched_timer(1)
    local got
    bt:call_later(0.5, function(...) got = pack(...) end, "a", nil, 3)
    clock:advance(2)
    assert.is_table(got)
    assert.are.equal(3, got.n)
    assert.are.same({ "a", nil, 3 }, { got[1], got[2], got[3] })
  end)

  it("returns a handle that is active while pending and inactive after firing", function()
    local bt = txaio.make_batched_timer(1)
    local h = bt:call_later(0.5, noop)
    assert.is_true(h:active())
    clock:advance(2)
    assert.is_false(h:active())
    assert.is_false(h:cancel())
  end)

  -- Discrepancy (see the report): a later chunk whose calls have earlier deadlines than the chunk
  -- before it is placed after that chunk, so it can fire more than one bucket late.

  -- Schedules 500 calls with random delays (0-5 s) at random times on a batched timer of `bucket`
  -- seconds and `chunk` calls, runs them all and returns the list of {deadline, fired_at, runs}.
  local function random_calls(seed, bucket, chunk)
    math.randomseed(seed)
    local bt = txaio.make_batched_timer(bucket, chunk)
    local calls = {}
    for round = 1, 20 do
      clock:advance(math.random() * 2)
      for _ = 1, 25 do
        local delay = math.random() * 5
        local call = { deadline = clock:now() + delay, runs = 0 }
        calls[#calls + 1] = call
        bt:call_later(delay, function()
          call.fired_at = clock:now()
          call.runs = call.runs + 1
        end)
      end
      if round % 4 == 0 then clock:advance(math.random() * 3) end
    end
    clock:advance(10)
    assert.are.equal(0, clock:pending())
    return calls
  end

  local SHAPES = { { 0.25, 3 }, { 1, 100 }, { 0.01, 1 }, { 0.5, 7 } }
  local SEED = 4711

  -- The first call of `calls` for which `bad(call)` is true, described for an assertion message
  -- (nil when there is none). Checking in plain Lua keeps luassert out of the inner loop, which
  -- matters under the stress GC mode.
  local function first_offender(calls, bucket, chunk, bad)
    for i, call in ipairs(calls) do
      if bad(call) then
        return ("seed %d, bucket %g, chunk %d, call %d: deadline %.17g, fired at %s, runs %d")
          :format(SEED, bucket, chunk, i, call.deadline, tostring(call.fired_at), call.runs)
      end
    end
    return nil
  end

  it("never fires a call before its deadline, and fires every call exactly once", function()
    for _, shape in ipairs(SHAPES) do
      local bucket, chunk = shape[1], shape[2]
      local calls = random_calls(SEED, bucket, chunk)
      assert.are.equal(500, #calls)
      assert.is_nil(first_offender(calls, bucket, chunk, function(call)
        return call.runs ~= 1 or call.fired_at < call.deadline
      end))
    end
  end)

  it("never fires a call more than one bucket after its deadline", function()
    for _, shape in ipairs(SHAPES) do
      local bucket, chunk = shape[1], shape[2]
      local calls = random_calls(SEED, bucket, chunk)
      assert.is_nil(first_offender(calls, bucket, chunk, function(call)
        return call.runs ~= 1 or call.fired_at > call.deadline + bucket + 1e-9
      end))
    end
  end)

  it("fires a call scheduled after later-deadline calls of its bucket within one bucket", function()
    local bt = txaio.make_batched_timer(1, 1)
    local late = {}
    for _, delay in ipairs{ 0.9, 0.9, 0.05 } do
      bt:call_later(delay, function() late[#late + 1] = clock:now() - delay end)
    end
    clock:advance(3)
    assert.are.equal(3, #late)
    for i, lateness in ipairs(late) do
      assert.is_true(lateness >= 0 and lateness <= 1, ("call %d was %g s late"):format(i, lateness))
    end
  end)

  it("uses one scheduler entry for every call that falls into the same bucket", function()
    local bt = txaio.make_batched_timer(1)
    local before = clock:pending()
    for i = 1, 100 do bt:call_later(0.001 + i * 0.009, noop) end
    assert.are.equal(before + 1, clock:pending())
    bt:call_later(1.5, noop)
    assert.are.equal(before + 2, clock:pending())
  end)

  it("runs all hundred calls of a bucket", function()
    local bt = txaio.make_batched_timer(1)
    local runs = 0
    for i = 1, 100 do bt:call_later(i * 0.009, function() runs = runs + 1 end) end
    clock:advance(2)
    assert.are.equal(100, runs)
    assert.are.equal(0, clock:pending())
  end)

  it("spreads a bucket's chunks over the span, chunk_size calls at a time", function()
    local bt = txaio.make_batched_timer(1, 2)
    local at = {}
    for _ = 1, 5 do
      bt:call_later(0.5, function() at[#at + 1] = clock:now() end)
    end
    clock:advance(3)
    assert.are.equal(5, #at)
    local per_instant, instants = {}, 0
    for _, t in ipairs(at) do
      if not per_instant[t] then instants = instants + 1 end
      per_instant[t] = (per_instant[t] or 0) + 1
      assert.is_true(t >= 0.5 and t <= 1.5, "fired at " .. t)
    end
    assert.are.equal(3, instants)
    for t, n in pairs(per_instant) do
      assert.is_true(n <= 2, ("%d calls at %g"):format(n, t))
    end
  end)

  it("runs calls of one bucket in the order they were scheduled", function()
    local bt = txaio.make_batched_timer(1, 2)
    local order = {}
    for i = 1, 5 do bt:call_later(0.5, function() order[#order + 1] = i end) end
    clock:advance(3)
    assert.are.same({ 1, 2, 3, 4, 5 }, order)
  end)

  -- A callback's bt:call_later(0, ...) at the very end of a bucket's window lands in that bucket
  -- while it fires. The chunk went on to run it in the same tick: a callback that re-armed
  -- itself ran chunk_size times a tick, and with a large chunk_size the tick never ended.
  it("runs a call added to the bucket that is firing on a later tick, within one bucket", function()
    local now = 0
    local loop = txaio.host_loop { now = function() return now end }
    local bt = txaio.with_config({ loop = loop }).make_batched_timer(1, 1000)
    local runs, at = 0, {}
    local function rearm()
      runs = runs + 1
      at[runs] = now
      if runs < 3 then bt:call_later(0, rearm) end
    end
    bt:call_later(1, rearm)        -- bucket 1, which fires at t = 1
    now = 1
    loop:tick()
    assert.equal(1, runs)
    loop:tick()                    -- a later tick at the same time may run the new call, once
    assert.is_true(runs <= 2)
    for _ = 1, 4 do now = now + 0.5; loop:tick() end
    assert.equal(3, runs)
    for i = 2, 3 do   -- each was due when the run before it added it
      assert.is_true(at[i] <= at[i - 1] + 1, "run " .. i .. " more than one bucket late")
    end
  end)

  it("makes cancel return true once and be harmless the second time", function()
    local bt = txaio.make_batched_timer(1)
    local ran = false
    local h = bt:call_later(0.5, function() ran = true end)
    bt:call_later(0.5, noop)
    assert.is_true(h:cancel())
    assert.is_false(h:cancel())
    assert.is_false(h:active())
    clock:advance(3)
    assert.is_false(ran)
  end)

  it("does not run a call cancelled by an earlier call of the same bucket", function()
    local bt = txaio.make_batched_timer(1)
    local log, victim, cancelled = {}, nil, nil
    bt:call_later(0.5, function()
      log[#log + 1] = "killer"
      cancelled = victim:cancel()
    end)
    victim = bt:call_later(0.6, function() log[#log + 1] = "victim" end)
    bt:call_later(0.7, function() log[#log + 1] = "bystander" end)
    clock:advance(3)
    assert.is_true(cancelled)
    assert.are.same({ "killer", "bystander" }, log)
  end)

  it("does not run a call cancelled while its bucket drains in later chunks", function()
    local bt = txaio.make_batched_timer(1, 1)
    local log, victim = {}, nil
    bt:call_later(0.5, function()
      log[#log + 1] = "killer"
      victim:cancel()
    end)
    bt:call_later(0.5, function() log[#log + 1] = "second" end)
    victim = bt:call_later(0.5, function() log[#log + 1] = "victim" end)
    clock:advance(3)
    assert.are.same({ "killer", "second" }, log)
    assert.are.equal(0, clock:pending())
  end)

  it("gives the scheduler entry back when every call of a bucket is cancelled", function()
    local bt = txaio.make_batched_timer(1)
    local before = clock:pending()
    local handles = {}
    for i = 1, 10 do handles[i] = bt:call_later(i * 0.05, noop) end
    assert.are.equal(before + 1, clock:pending())
    for i = 1, 10 do handles[i]:cancel() end
    assert.are.equal(before, clock:pending())
  end)

  it("accepts new calls into a bucket whose calls were all cancelled", function()
    local bt = txaio.make_batched_timer(1)
    bt:call_later(0.5, noop):cancel()
    local ran = false
    bt:call_later(0.5, function() ran = true end)
    assert.are.equal(1, clock:pending())
    clock:advance(2)
    assert.is_true(ran)
  end)

  it("keeps running a bucket's other calls when one raises, and reports the error", function()
    local bt = txaio.make_batched_timer(1)
    local reports, restore_handler = helpers.record_reports()
    local runs = 0
    local ok, err = pcall(function()
      bt:call_later(0.2, function() runs = runs + 1 end)
      bt:call_later(0.3, function() error("batched boom") end)
      bt:call_later(0.4, function() runs = runs + 1 end)
      clock:advance(2)
    end)
    restore_handler()
    assert.is_true(ok, err)
    assert.are.equal(2, runs)
    assert.are.equal(1, #reports)
    assert.are.equal(1, reports[1].message:find("Unhandled error in callback: ", 1, true))
    assert_contains(reports[1].message, "batched boom")
  end)

  local bad_buckets = {
    { "zero", 0 },
    { "a negative number", -1 },
    { "NaN", 0 / 0 },
    { "inf", math.huge },
    { "a string", "1" },
    { "nil", nil },
  }
  for _, row in ipairs(bad_buckets) do
    it("rejects " .. row[1] .. " as seconds_per_bucket with bad argument #1", function()
      assert_contains(error_message_of(txaio.make_batched_timer, row[2]), "bad argument #1")
    end)
  end

  -- The reason matters as much as the argument number: before 5.3 a NaN or 2^63 converted to an
  -- integer lands (on x86) on the most negative one, which "positive" would refuse by accident.
  local bad_chunks = {
    { "zero", 0, "positive chunk size expected" },
    { "a fraction", 1.5, "number has no integer representation" },
    { "a number past the integer range", 2 ^ 63, "number has no integer representation" },
    { "NaN", 0 / 0, "number has no integer representation" },
    { "a negative number", -3, "positive chunk size expected" },
    { "a string", "x", "number expected, got string" },
  }
  for _, row in ipairs(bad_chunks) do
    it("rejects " .. row[1] .. " as chunk_size with bad argument #2", function()
      local message = error_message_of(txaio.make_batched_timer, 1, row[2])
      assert_contains(message, "bad argument #2")
      assert_contains(message, row[3])
    end)
  end

  it("rejects a NaN delay in call_later with a bad argument error", function()
    local bt = txaio.make_batched_timer(1)
    assert_contains(error_message_of(function() return bt:call_later(0 / 0, noop) end), "bad argument")
    assert.are.equal(0, clock:pending())
  end)

  it("rejects a non-callable callback in call_later with a bad argument error", function()
    local bt = txaio.make_batched_timer(1)
    assert_contains(error_message_of(function() return bt:call_later(1, 42) end), "bad argument")
    assert_contains(error_message_of(function() return bt:call_later(1, {}) end), "bad argument")
    assert.are.equal(0, clock:pending())
  end)
end)

describe("the arguments of a batched call", function()
  local unpack = compat.unpack

  it("are at most 10,000: more is refused with an argument error and nothing is scheduled", function()
    local args = {}
    for i = 1, 10001 do args[i] = i end
    if not pcall(function() return select("#", unpack(args)) end) then
      pending(_VERSION .. " cannot pass 10,001 arguments to a function (LUAI_MAXCSTACK)")
      return
    end
    local bt = txaio.make_batched_timer(1)
    local got
    bt:call_later(0, function(...) got = pack(...) end, unpack(args, 1, 10000))
    clock:advance(2)
    assert.are.equal(10000, got.n)
    local err = error_message_of(function() return bt:call_later(0, noop, unpack(args)) end)
    assert_contains(err, "bad argument #10003 to 'call_later' (too many arguments for the "
      .. "callback (at most 10000))")
    assert.are.equal(0, clock:pending())
  end)

  it("that do not fit on the stack of the tick are reported, and the bucket's other calls run", function()
    local reports, restore = helpers.record_reports()
    local bt = txaio.make_batched_timer(1)
    local args, ran = {}, 0
    for i = 1, helpers.TOO_MANY_FOR_FULL_STACK do args[i] = i end
    local big = bt:call_later(0.5, function() error("must not run") end, unpack(args))
    bt:call_later(0.5, function() ran = ran + 1 end)
    bt:call_later(0.5, function() ran = ran + 1 end)
    clock.seconds = 1   -- the bucket is due; its calls run in one chunk
    local ok, err = helpers.with_full_stack(function() return pcall(clock.tick, clock) end)
    restore()
    assert.is_true(ok, tostring(err))
    assert.are.equal(2, ran)
    assert.is_false(big:active())
    assert.is_false(big:cancel())
    assert.are.equal(1, #helpers.reports_about(reports,
      "stack overflow (no room for the arguments of a batched call)"))
    assert.are.equal(0, clock:pending())
  end)
end)
