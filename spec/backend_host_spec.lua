-- The host backend: CONTRACT.md sections 1 and 4 with the host's own loop (STYLE R15, R21).
--
-- The hosts here are simulated: a game's frame loop that calls txaio.tick() every frame, and an
-- OpenResty-style server whose wake(delay, run) only records the request, with the test playing
-- the server's event loop. Time is a plain variable `t` that the test moves; nothing sleeps.
local txaio = require "txaio"

local helpers = require "helpers"
local error_of, assert_contains = helpers.error_of, helpers.assert_contains

local has_luv, uv = helpers.pinned_luv()

local DT = 1 / 60
local EPS = 1e-9

-- Keeps the record of a run of random timers that timer_problems checks. Returns the timers in
-- scheduling order ({ due =, seq =, fired_at =, fire_count = }), the timers in firing order, and
-- schedule(delay, on_fire), which schedules one with txaio.call_later, its deadline and firing
-- time read from `now`, and calls on_fire (when given) after recording each firing.
local function random_timers(now)
  local timers, fired = {}, {}
  local function schedule(delay, on_fire)
    local timer = { due = now() + delay, seq = #timers + 1 }
    timers[#timers + 1] = timer
    txaio.call_later(delay, function()
      timer.fired_at = now()
      timer.fire_count = (timer.fire_count or 0) + 1
      fired[#fired + 1] = timer
      if on_fire then on_fire() end
    end)
  end
  return timers, fired, schedule
end

-- Checks a run of random timers, each { due =, seq =, fired_at =, fire_count = }: every timer
-- fired exactly once, never before its deadline, no more than one frame late when `frame` (the
-- allowed lateness in seconds) is given, and `order` (the timers in firing order) is sorted by
-- deadline, ties in scheduling order. Appends a line to `problems` for each breach, with times
-- formatted by `time_format`, and returns `problems`; the caller asserts once (luassert per
-- timer is slow under GC stress).
local function timer_problems(problems, timers, order, time_format, frame)
  local function at(x) return time_format:format(x) end
  for _, timer in ipairs(timers) do
    if timer.fire_count ~= 1 then
      problems[#problems + 1] = ("timer #%d fired %s times"):format(timer.seq, tostring(timer.fire_count))
    elseif timer.fired_at < timer.due then
      problems[#problems + 1] = ("timer #%d fired early at %s, due at %s")
        :format(timer.seq, at(timer.fired_at), at(timer.due))
    elseif frame and timer.fired_at - timer.due > frame then
      problems[#problems + 1] = ("timer #%d fired at %s, more than one frame after %s")
        :format(timer.seq, at(timer.fired_at), at(timer.due))
    end
  end
  for i = 2, #order do
    local a, b = order[i - 1], order[i]
    if not (a.due < b.due or (a.due == b.due and a.seq < b.seq)) then
      problems[#problems + 1] = ("timer #%d (due %s) fired before timer #%d (due %s)")
        :format(a.seq, at(a.due), b.seq, at(b.due))
    end
  end
  return problems
end

describe("txaio.use_host with a frame loop that calls txaio.tick()", function()
  local t

  before_each(function()
    math.randomseed(4242)
    t = 0
    txaio.use_host{ now = function() return t end }
  end)

  it("returns nil from tick() when no timer is pending", function()
    assert.is_nil(txaio.tick())
    t = 3
    assert.is_nil(txaio.tick())
  end)

  it("returns the seconds until the next deadline from tick()", function()
    t = 2
    txaio.call_later(1.5, function() end)
    txaio.call_later(4, function() end)
    assert.is_near(1.5, txaio.tick(), EPS)
    t = 3
    assert.is_near(0.5, txaio.tick(), EPS)
    t = 3.5           -- the first one fires; the next is due at 6
    assert.is_near(2.5, txaio.tick(), EPS)
    t = 6
    assert.is_nil(txaio.tick())
  end)

  it("fires timers with random delays over 600 frames in deadline order, never early, at most one frame late",
    function()
      local timers, fired, schedule = random_timers(function() return t end)
      -- the earliest deadline among timers that have not fired, or nil
      local function next_due()
        local best
        for _, timer in ipairs(timers) do
          if not timer.fired_at and (best == nil or timer.due < best) then best = timer.due end
        end
        return best
      end

      -- problems are collected and asserted once: luassert per frame is slow under GC stress
      local problems = {}
      for _ = 1, 200 do schedule(math.random() * 5) end
      for frame = 1, 600 do
        t = t + DT
        -- during the first 300 frames, the host schedules more work now and then
        if frame <= 300 and frame % 3 == 0 then schedule(math.random() * 4) end
        if frame <= 300 and frame % 50 == 0 then schedule(0) end
        local remaining = txaio.tick()
        local due = next_due()
        if due == nil then
          if remaining ~= nil then
            problems[#problems + 1] = ("frame %d: tick() returned %s with nothing pending")
              :format(frame, tostring(remaining))
          end
        elseif type(remaining) ~= "number" or math.abs(remaining - (due - t)) > EPS then
          problems[#problems + 1] = ("frame %d: tick() returned %s, next deadline in %.9f")
            :format(frame, tostring(remaining), due - t)
        end
      end

      assert.are.equal(#timers, #fired, "not every timer fired exactly once within 600 frames")
      timer_problems(problems, timers, fired, "%.6f", DT + EPS)
      assert.are.same({}, problems)
    end)

  it("runs a timer scheduled from a callback with delay 0 on the next frame", function()
    local log = {}
    txaio.call_later(DT / 2, function()
      log[#log + 1] = "outer " .. t
      txaio.call_later(0, function() log[#log + 1] = "inner " .. t end)
    end)
    t = DT
    assert.is_near(0, txaio.tick(), EPS)
    assert.are.same({ "outer " .. DT }, log)
    t = 2 * DT
    assert.is_nil(txaio.tick())
    assert.are.same({ "outer " .. DT, "inner " .. 2 * DT }, log)
  end)

  it("fires nothing and returns a positive delay when the host clock goes backwards", function()
    t = 10
    local fired = {}
    txaio.call_later(1, function() fired[#fired + 1] = t end)
    t = 5
    local remaining = txaio.tick()
    assert.are.same({}, fired)
    assert.is_number(remaining)
    assert.is_true(remaining > 0 and remaining <= 1,
      "tick() returned " .. tostring(remaining) .. " with the clock behind")
    t = 10.5
    txaio.tick()
    assert.are.same({}, fired)
    t = 11
    assert.is_nil(txaio.tick())
    assert.are.same({ 11 }, fired)
  end)

  it("never fires early a timer scheduled while the host clock is behind", function()
    t = 10
    txaio.call_later(5, function() end)   -- the clock has been seen at 10
    t = 5
    local fired_at
    txaio.call_later(1, function() fired_at = t end)
    for _, now in ipairs({ 5, 5.5, 6, 7, 9, 10, 10.5 }) do
      t = now
      txaio.tick()
      assert.is_nil(fired_at, "fired when the host clock read " .. now)
    end
    t = 11
    txaio.tick()
    assert.are.equal(11, fired_at)
  end)

  it("does not hang when the clock jumps back and forth over many frames", function()
    t = 100
    local count = 0
    for i = 1, 50 do txaio.call_later(i * 0.1, function() count = count + 1 end) end
    local frames = 0
    -- Park-Miller: its products stay below 2^53, exact in a float, so every Lua draws the same
    -- sequence (an LCG with products past 2^53 degenerates where numbers are floats, before 5.3)
    local rng = 1
    while txaio.config.loop:pending() > 0 and frames < 10000 do
      frames = frames + 1
      rng = rng * 16807 % 2147483647
      if rng % 4 == 0 then t = t - 0.02 else t = t + DT end   -- now and then a step back
      txaio.tick()
    end
    assert.is_true(frames < 10000, "the frame loop did not finish")
    assert.are.equal(50, count)
  end)
end)

describe("txaio.use_host with wake(delay, run), like OpenResty", function()
  local t, wakes, fired

  -- The host's "event loop": repeatedly takes the earliest recorded wake-up, moves the clock to
  -- its time (never backwards) and calls run(). Returns the number of wake-ups served.
  local function serve(limit)
    local served = 0
    while #wakes > 0 do
      served = served + 1
      if served > (limit or 100000) then error("the host loop did not run dry", 2) end
      local best = 1
      for i = 2, #wakes do
        if wakes[i].at < wakes[best].at then best = i end
      end
      local w = table.remove(wakes, best)
      if w.at > t then t = w.at end
      w.run()
    end
    return served
  end

  local function record(name)
    return function() fired[#fired + 1] = { name = name, at = t } end
  end

  before_each(function()
    math.randomseed(777)
    t, wakes, fired = 0, {}, {}
    txaio.use_host{
      now = function() return t end,
      wake = function(delay, run)
        wakes[#wakes + 1] = { delay = delay, at = t + delay, run = run }
      end,
    }
  end)

  it("calls wake whenever the earliest deadline moves earlier, and only then", function()
    txaio.call_later(5, record("five"))
    assert.are.equal(1, #wakes)
    assert.is_near(5, wakes[1].delay, EPS)
    assert.is_function(wakes[1].run)
    txaio.call_later(1, record("one"))
    assert.are.equal(2, #wakes)
    assert.is_near(1, wakes[2].delay, EPS)
    txaio.call_later(3, record("three"))
    assert.are.equal(2, #wakes, "wake was called although the earliest deadline did not move")
    txaio.call_later(7, record("seven"))
    assert.are.equal(2, #wakes)
    t = 0.5
    txaio.call_later(0.25, record("three quarters"))   -- due 0.75, earlier than 1
    assert.are.equal(3, #wakes)
    assert.is_near(0.25, wakes[3].delay, EPS)
  end)

  it("fires every timer in deadline order and never early when the host serves its wake-ups",
    function()
      txaio.call_later(5, record("five"))
      txaio.call_later(1, record("one"))
      txaio.call_later(3, record("three"))
      serve()
      assert.are.same({ "one", "three", "five" },
        { fired[1] and fired[1].name, fired[2] and fired[2].name, fired[3] and fired[3].name })
      assert.is_true(fired[1].at >= 1)
      assert.is_true(fired[2].at >= 3)
      assert.is_true(fired[3].at >= 5)
      assert.are.equal(0, txaio.config.loop:pending())
    end)

  it("serves many random timers, including ones scheduled from callbacks, in order and never early",
    function()
      local timers, order, schedule_one = random_timers(function() return t end)
      local schedule
      function schedule(delay, depth)
        schedule_one(delay, function()
          if depth > 0 then schedule(math.random() * 2, depth - 1) end
        end)
      end
      for _ = 1, 300 do schedule(math.random() * 10, math.random(0, 2)) end
      serve()
      assert.are.equal(#timers, #order, "not every timer fired exactly once")
      assert.are.same({}, timer_problems({}, timers, order, "%.9f"))
    end)

  it("treats an early run() as harmless: nothing fires and the wake-up is asked for again", function()
    txaio.call_later(2, record("two"))
    local run = wakes[1].run
    t = 1
    run()
    assert.are.same({}, fired)
    assert.are.equal(1, txaio.config.loop:pending())
    -- the host is told again when to come back (1 s from now)
    assert.is_near(1, wakes[#wakes].delay, EPS)
    t = 2
    run()
    assert.are.equal(1, #fired)
    assert.are.equal("two", fired[1].name)
  end)

  it("treats extra and late run() calls as harmless: nothing fires twice", function()
    txaio.call_later(1, record("one"))
    txaio.call_later(2, record("two"))
    local run = wakes[#wakes].run
    t = 50             -- very late: everything due fires, in order, once
    run()
    assert.are.same({ "one", "two" }, { fired[1] and fired[1].name, fired[2] and fired[2].name })
    run()
    run()
    assert.are.equal(2, #fired)
    serve()            -- stale recorded wake-ups are served too
    assert.are.equal(2, #fired)
    assert.are.equal(0, txaio.config.loop:pending())
  end)

  it("serves its wake-ups without firing early when the host clock goes backwards", function()
    t = 10
    txaio.call_later(1, record("eleven"))
    t = 5
    local recorded = wakes
    wakes = {}
    for _ = 1, 3 do
      for _, w in ipairs(recorded) do w.run() end
      assert.are.same({}, fired)
    end
    assert.is_true(#wakes > 0, "run() with the clock behind did not ask to be woken again")
    -- the host loop, whose clock starts behind, must neither fire early nor spin forever
    local served = serve(1000)
    assert.is_true(served < 1000)
    assert.are.equal(1, #fired)
    assert.is_true(fired[1].at >= 11, "fired at " .. fired[1].at)
  end)

  it("fires nothing for a cancelled timer and still serves later ones", function()
    local h = txaio.call_later(1, record("one"))
    assert.are.equal(1, #wakes)
    assert.is_true(h:cancel())
    serve()
    assert.are.same({}, fired)
    txaio.call_later(1, record("again"))
    serve()
    assert.are.equal(1, #fired)
  end)

  it("resolves txaio.sleep when the host serves the wake-up", function()
    local done = false
    txaio.add_callbacks(txaio.sleep(0.5), function() done = t end, nil)
    assert.is_false(done)
    serve()
    assert.is_true(done >= 0.5)
  end)
end)

describe("txaio.use_host selection", function()
  local function now() return 0 end

  it("sets using_host, clears using_luv and makes a loop of kind host", function()
    txaio.use_host{ now = now }
    assert.is_true(txaio.using_host)
    assert.is_false(txaio.using_luv)
    assert.are.equal("host", txaio.config.loop.kind)
    txaio.use_host{ now = now, wake = function() end }
    assert.is_true(txaio.using_host)
    assert.is_false(txaio.using_luv)
    assert.are.equal("host", txaio.config.loop.kind)
  end)

  it("clears using_luv when switching from luv to a host loop", function()
    if not has_luv then
      pending("luv is not installed")
      return
    end
    txaio.use_luv(uv)
    assert.is_true(txaio.using_luv)
    txaio.use_host{ now = now }
    assert.is_true(txaio.using_host)
    assert.is_false(txaio.using_luv)
    assert.are.equal("host", txaio.config.loop.kind)
  end)

  it("accepts a callable table as now and as wake", function()
    local calls = 0
    local clock = setmetatable({}, { __call = function() return 7 end })
    local waker = setmetatable({}, { __call = function() calls = calls + 1 end })
    txaio.use_host{ now = clock, wake = waker }
    assert.are.equal(7, txaio.config.loop:now())
    txaio.call_later(1, function() end)
    assert.are.equal(1, calls)
  end)

  -- {what, adapter}: each must be rejected with a bad-argument error
  local BAD = {
    { "a number", 42 },
    { "a string", "host" },
    { "nil", nil },
    { "a function", function() return 0 end },
    { "a table without now", {} },
    { "a table without now but with wake", { wake = function() end } },
    { "now that is a number", { now = 5 } },
    { "now that is a string", { now = "now" } },
    { "now that is a non-callable table", { now = {} } },
    { "wake that is a number", { now = now, wake = 1 } },
    { "wake that is a string", { now = now, wake = "wake" } },
    { "wake that is a non-callable table", { now = now, wake = {} } },
  }
  for _, row in ipairs(BAD) do
    local what, adapter = row[1], row[2]
    it("rejects an adapter that is " .. what .. " with a bad-argument error naming use_host", function()
      txaio.use_host{ now = now }
      local before = txaio.config.loop
      local err = error_of(txaio.use_host, adapter)
      assert_contains(err, "bad argument #1")
      assert_contains(err, "use_host")
      assert.are.equal(before, txaio.config.loop, "a rejected adapter changed the loop")
      assert.is_true(txaio.using_host)
    end)
  end

  it("rejects a bad adapter in host_loop too, naming host_loop", function()
    local err = error_of(txaio.host_loop, { now = 5 })
    assert_contains(err, "bad argument #1")
    assert_contains(err, "host_loop")
  end)
end)

describe("a host adapter whose now() does not return a number", function()
  for _, row in ipairs({
    { "a string", function() return "soon" end },
    { "nil", function() end },
    { "a table", function() return {} end },
    { "a boolean", function() return true end },
  }) do
    it("makes call_later raise an error about now and number when now returns " .. row[1], function()
      txaio.use_host{ now = row[2] }
      local err = error_of(txaio.call_later, 1, function() end)
      assert_contains(err, "now")
      assert_contains(err, "number")
      assert.are.equal(0, txaio.config.loop:pending(), "the failed call left a timer scheduled")
    end)
  end

  it("makes tick raise an error about now and number", function()
    txaio.use_host{ now = function() return "later" end }
    local err = error_of(txaio.tick)
    assert_contains(err, "now")
    assert_contains(err, "number")
  end)
end)

describe("a host clock that returns NaN", function()
  it("is refused with a clear error instead of making every timer due", function()
    txaio.use_host{ now = function() return 0 / 0 end }
    local fired = false
    local ok, err = pcall(txaio.call_later, 1, function() fired = true end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("NaN", 1, true))
    assert.is_false(fired)
  end)
end)
