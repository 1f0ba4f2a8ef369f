-- The luv backend: CONTRACT.md sections 1 and 4 on a real libuv loop (STYLE R15, R21).
--
-- This is the one spec that runs a real event loop. Every uv.run() is bounded: delays stay at or
-- under 100 ms and a guard timer (unref'ed, so it never keeps the loop alive by itself) stops the
-- loop after 2 s and makes the test fail. Nothing here raises inside a luv callback: luv's own
-- handler would end the process, so callbacks only record, and the assertions come afterwards.
local txaio = require "txaio"
local helpers = require "helpers"
local compat = require "compat"

-- This spec needs luv: a missing luv is an error here, not a reason to skip.
local has_luv, uv = helpers.pinned_luv()
if not has_luv then error(uv, 0) end

local GUARD_MS = 2000

-- Counts the handles of luv's default loop: (active, total walked).
local function count_handles()
  local active, total = 0, 0
  uv.walk(function(h)
    total = total + 1
    if h:is_active() then active = active + 1 end
  end)
  return active, total
end

-- Runs uv.run(mode) under a guard timer that stops the loop after GUARD_MS. The guard is closed
-- (and its close callback run) before returning, so handle counts afterwards do not include it.
-- Returns whether the guard had to stop the loop, and the run time in seconds.
local function run_guarded(mode)
  local tripped = false
  local guard = uv.new_timer()
  uv.update_time()   -- the loop's cached time may be old: the guard counts from now
  guard:start(GUARD_MS, 0, function()
    tripped = true
    uv.stop()
  end)
  guard:unref()
  local t0 = uv.hrtime()
  uv.run(mode)
  local elapsed = (uv.hrtime() - t0) / 1e9
  guard:stop()
  guard:close()
  uv.run("nowait")   -- runs the guard's close callback
  return tripped, elapsed
end

-- Runs the loop until it returns by itself; fails the test if the guard had to stop it.
local function run_to_completion()
  local tripped, elapsed = run_guarded()
  assert.is_false(tripped, "uv.run() did not return by itself within " .. GUARD_MS .. " ms")
  return elapsed
end

-- Fisher-Yates shuffle in place.
local function shuffle(list)
  for i = #list, 2, -1 do
    local j = math.random(i)
    list[i], list[j] = list[j], list[i]
  end
  return list
end

describe("txaio.use_luv", function()
  before_each(function()
    math.randomseed(20240601)
    txaio.use_luv()
  end)

  after_each(function()
    -- every test must leave its loop with nothing pending, so the next test starts clean
    assert.are.equal(0, txaio.config.loop:pending(), "a test left txaio timers pending")
  end)

  it("selects luv: using_luv is true, using_host is false and the loop kind is luv", function()
    assert.is_true(txaio.using_luv)
    assert.is_false(txaio.using_host)
    assert.is_not_nil(txaio.config.loop)
    assert.are.equal("luv", txaio.config.loop.kind)
  end)

  it("accepts the luv module passed explicitly", function()
    txaio.use_luv(uv)
    assert.is_true(txaio.using_luv)
    assert.are.equal("luv", txaio.config.loop.kind)
    local fired = false
    txaio.call_later(0.001, function() fired = true end)
    run_to_completion()
    assert.is_true(fired)
  end)

  it("gives a fresh loop object on each call", function()
    local first = txaio.config.loop
    txaio.use_luv()
    assert.are_not.equal(first, txaio.config.loop)
    assert.are.equal("luv", txaio.config.loop.kind)
  end)

  it("reports loop:now() in seconds, close to uv.hrtime() / 1e9", function()
    local before = uv.hrtime() / 1e9
    local now = txaio.config.loop:now()
    local after = uv.hrtime() / 1e9
    assert.is_number(now)
    assert.is_true(now >= before - 0.01 and now <= after + 0.01,
      ("loop:now() = %.6f, uv.hrtime()/1e9 between %.6f and %.6f"):format(now, before, after))
  end)

  it("fires timers from uv.run() in deadline order, not scheduling order", function()
    local loop = txaio.config.loop
    local delays = {}
    for i = 1, 20 do delays[i] = (i - 1) * 0.004 end   -- 0 .. 76 ms, 4 ms apart
    shuffle(delays)
    -- A deadline is the clock at scheduling plus the delay; the clock moves while scheduling (a
    -- lot under the GC stress mode), so each deadline is known to lie within [lo, hi].
    local order, lo, hi = {}, {}, {}
    for i, d in ipairs(delays) do
      lo[i] = loop:now() + d
      txaio.call_later(d, function() order[#order + 1] = i end)
      hi[i] = loop:now() + d
    end
    assert.are.equal(0, #order, "a timer fired before uv.run()")
    run_to_completion()
    assert.are.equal(20, #order)
    for k = 2, #order do
      local a, b = order[k - 1], order[k]
      -- a fired before b: a's deadline cannot be known to be later than b's
      assert.is_true(lo[a] <= hi[b],
        ("the timer due in [%.6f, %.6f] fired before the one due in [%.6f, %.6f]")
          :format(lo[a], hi[a], lo[b], hi[b]))
    end
  end)

  it("fires zero-delay timers in the order they were scheduled", function()
    local order = {}
    local loop = txaio.config.loop
    for i = 1, 50 do txaio.call_later(0, function() order[#order + 1] = i end) end
    assert.are.equal(50, loop:pending())
    run_to_completion()
    assert.are.equal(50, #order)
    for i = 1, 50 do assert.are.equal(i, order[i]) end
  end)

  it("uses the same single handle for call_later, sleep and batched timers together", function()
    local active0, total0 = count_handles()
    local fired = 0
    local function cb() fired = fired + 1 end
    for i = 1, 100 do txaio.call_later(i * 0.0005, cb) end
    local sleeps = {}
    for i = 1, 10 do
      sleeps[i] = txaio.sleep(0.002 * i)
      txaio.add_callbacks(sleeps[i], cb, nil)
    end
    local bt = txaio.make_batched_timer(0.01)
    for i = 1, 100 do bt:call_later((i % 5) * 0.003, cb) end
    local active, total = count_handles()
    assert.are.equal(active0 + 1, active)
    assert.is_true(total <= total0 + 1)
    run_to_completion()
    assert.are.equal(210, fired)
    assert.are.equal(active0, (count_handles()))
  end)

  it("stops its handle when nothing is pending, so uv.run() returns by itself", function()
    local active0 = count_handles()
    local fired = {}
    for i = 1, 5 do txaio.call_later(i * 0.002, function() fired[#fired + 1] = i end) end
    assert.are.equal(active0 + 1, (count_handles()))
    run_to_completion()
    assert.are.same({ 1, 2, 3, 4, 5 }, fired)
    assert.are.equal(active0, (count_handles()))
    assert.are.equal(0, txaio.config.loop:pending())
  end)

  it("makes the handle inactive once every pending timer is cancelled, and uv.run() returns at once",
    function()
      local active0 = count_handles()
      local fired = 0
      local handles = {}
      for i = 1, 200 do
        handles[i] = txaio.call_later(0.05 + (i % 50) * 0.001, function() fired = fired + 1 end)
      end
      assert.are.equal(active0 + 1, (count_handles()))
      for i = 1, #handles do
        assert.is_true(handles[i]:cancel(), "cancel() of a pending timer returned false")
      end
      assert.are.equal(0, txaio.config.loop:pending())
      assert.are.equal(active0, (count_handles()), "the luv handle is still active")
      local elapsed = run_to_completion()
      assert.is_true(elapsed < 0.04,
        ("uv.run() took %.3f s with every timer cancelled"):format(elapsed))
      assert.are.equal(0, fired)
    end)

  it("keeps the handle armed when only some timers are cancelled", function()
    local active0 = count_handles()
    local fired = {}
    local a = txaio.call_later(0.001, function() fired[#fired + 1] = "a" end)
    txaio.call_later(0.003, function() fired[#fired + 1] = "b" end)
    assert.is_true(a:cancel())
    assert.is_false(a:cancel(), "a second cancel() returned true")
    assert.are.equal(active0 + 1, (count_handles()))
    run_to_completion()
    assert.are.same({ "b" }, fired)
  end)

  it("reports an error raised in a timer callback instead of letting it reach luv", function()
    local seen, restore_handler = helpers.record_reports()
    local after = {}
    local ok, err = pcall(function()
      txaio.call_later(0.001, function() error("boom in a luv timer") end)
      txaio.call_later(0.002, function() after[#after + 1] = 1 end)
      txaio.call_later(0.010, function() after[#after + 1] = 2 end)
      run_to_completion()
    end)
    restore_handler()
    assert(ok, err)
    assert.are.equal(1, #seen, "the handler was not called exactly once")
    local message = seen[1].message
    assert.is_string(message)
    assert.are.equal(1, message:find("Unhandled error in callback: ", 1, true), message)
    assert.is_truthy(message:find("boom in a luv timer", 1, true), message)
    assert.is_true(txaio.is_failure(seen[1].failure))
    assert.are.same({ 1, 2 }, after, "timers after the failing one did not all fire")
  end)

  it("resolves txaio.sleep(0.01) inside uv.run()", function()
    local resolved, failed = false, nil
    local t0 = uv.hrtime()
    local f = txaio.sleep(0.01)
    local resolved_at
    txaio.add_callbacks(f,
      function() resolved, resolved_at = true, uv.hrtime() end,
      function(fail) failed = fail end)
    assert.is_false(resolved, "sleep resolved before uv.run()")
    run_to_completion()
    assert.is_nil(failed)
    assert.is_true(resolved)
    assert.is_true(resolved_at - t0 >= 0.01 * 1e9,
      ("sleep(0.01) resolved after %.0f ns"):format(resolved_at - t0))
  end)

  it("stops the timer of a cancelled sleep", function()
    local active0 = count_handles()
    local f = txaio.sleep(0.05)
    local failure
    txaio.add_callbacks(f, nil, function(fail) failure = fail end)
    txaio.cancel(f)
    assert.is_true(txaio.is_failure(failure))
    assert.are.equal(0, txaio.config.loop:pending())
    assert.are.equal(active0, (count_handles()))
    local elapsed = run_to_completion()
    assert.is_true(elapsed < 0.04, ("uv.run() took %.3f s after cancelling sleep"):format(elapsed))
  end)

  it("never fires a timer before its delay has passed, measured with uv.hrtime()", function()
    local n = 200
    local delay, scheduled, fired = {}, {}, {}
    for i = 1, n do
      delay[i] = math.random() * 0.05
      scheduled[i] = uv.hrtime()
      txaio.call_later(delay[i], function() fired[i] = uv.hrtime() end)
    end
    run_to_completion()
    local early = {}
    for i = 1, n do
      assert.is_number(fired[i], "timer " .. i .. " never fired")
      local waited = fired[i] - scheduled[i]
      if waited < delay[i] * 1e9 then
        early[#early + 1] = ("#%d: delay %.0f ns, fired after %.0f ns"):format(i, delay[i] * 1e9, waited)
      end
    end
    assert.are.same({}, early)
  end)

  it("runs a timer scheduled from a callback with delay 0 on a later tick, and returns after it",
    function()
      local order = {}
      txaio.call_later(0.001, function()
        order[#order + 1] = "outer"
        txaio.call_later(0, function() order[#order + 1] = "inner" end)
        order[#order + 1] = "outer done"
      end)
      run_to_completion()
      assert.are.same({ "outer", "outer done", "inner" }, order)
    end)

  it("lets uv.run('nowait') return while timers stay pending, then finishes them later", function()
    local fired = {}
    txaio.call_later(0, function() fired[#fired + 1] = 0 end)
    txaio.call_later(0.1, function() fired[#fired + 1] = 100 end)
    local tripped = run_guarded("nowait")
    assert.is_false(tripped)
    assert.are.same({ 0 }, fired)
    assert.are.equal(1, txaio.config.loop:pending())
    run_to_completion()
    assert.are.same({ 0, 100 }, fired)
  end)

  -- Last on purpose: the core's heap array and ROOTS table grown to 100,000 slots stay with this
  -- loop until it is replaced and collected, and under GC stress later tests would re-traverse them.
  it("holds exactly one luv handle for 100,000 pending timers #scale", function()
    local active0, total0 = count_handles()
    local fired = 0
    local function cb() fired = fired + 1 end
    -- Under the suite's GC stress mode (pause 0) a live heap growing by 100,000 timers costs
    -- quadratic collector time; this test is about handles, so the collector paces normally while
    -- the timers are created and goes back to the suite's setting before they fire.
    local pause = collectgarbage("setpause", 200)
    for i = 1, 100000 do txaio.call_later((i % 20) * 0.001, cb) end
    collectgarbage("setpause", pause)
    local active, total = count_handles()
    assert.are.equal(active0 + 1, active, "active luv handles with 100,000 pending timers")
    assert.is_true(total <= total0 + 1,
      ("walked %d handles with 100,000 timers pending, %d before"):format(total, total0))
    assert.are.equal(100000, txaio.config.loop:pending())
    run_to_completion()
    assert.are.equal(100000, fired)
    local active1, total1 = count_handles()
    assert.are.equal(active0, active1, "the luv handle is still active with nothing pending")
    assert.is_true(total1 <= total0 + 1)
  end)
end)

describe("a luv loop that is replaced", function()
  -- the luv timers that are not closing: txaio's handles, whatever other specs left aside
  local function open_timers()
    local n = 0
    uv.walk(function(h)
      if h:get_type() == "timer" and not h:is_closing() then n = n + 1 end
    end)
    return n
  end

  -- Replaces the selected loop; neither it nor its scheduler may outlive two full collections.
  local function assert_collected_once_replaced()
    local weak = setmetatable({ txaio.config.loop, txaio.config.loop._sched }, { __mode = "v" })
    txaio.use_luv(uv)
    helpers.full_gc()
    assert.is_nil(weak[1], "the replaced loop object is still reachable")
    assert.is_nil(weak[2], "the replaced loop's scheduler is still reachable")
  end

  it("is collectable once its timers are done: its stopped handle no longer reaches it", function()
    txaio.use_luv(uv)
    local fired = false
    txaio.call_later(0.001, function() fired = true end)
    uv.run()
    assert.is_true(fired)
    assert.are.equal(0, txaio.config.loop.handles())
    assert_collected_once_replaced()
  end)

  it("is collectable once every timer is cancelled, without uv.run()", function()
    txaio.use_luv(uv)
    local handles = {}
    for i = 1, 10 do handles[i] = txaio.call_later(0.01 * i, function() end) end
    assert.are.equal(1, txaio.config.loop.handles())
    for i = 1, 10 do assert.is_true(handles[i]:cancel()) end
    assert.are.equal(0, txaio.config.loop.handles())
    assert_collected_once_replaced()
  end)

  it("still fires the timers that were pending when it was replaced", function()
    txaio.use_luv(uv)
    local fired = {}
    txaio.call_later(0.002, function() fired.old = true end)
    txaio.use_luv(uv)
    collectgarbage()
    collectgarbage()
    txaio.call_later(0.001, function() fired.new = true end)
    uv.run()
    -- in either order: under ASan the collections alone may outlast the first delay
    assert.are.same({ old = true, new = true }, fired)
  end)

  it("hands its handle to the next loop: replacing loops 50 times leaves one more open timer",
    function()
      txaio.use_luv(uv)
      txaio.call_later(1, function() end):cancel()
      collectgarbage()
      collectgarbage()
      local before = open_timers()
      for _ = 1, 50 do
        txaio.use_luv(uv)
        local h = txaio.call_later(1, function() end)
        assert.is_true(h:cancel())
        helpers.full_gc()
      end
      -- one for the loop still selected, whose predecessor may still have been alive at `before`
      assert.is_true(open_timers() <= before + 1,
        ("%d open luv timers after 50 loops, %d before"):format(open_timers(), before))
    end)

  it("makes a new handle when the application closed txaio's (uv.walk and close)", function()
    txaio.use_luv(uv)
    txaio.call_later(1, function() end):cancel()
    uv.walk(function(h)
      if h:get_type() == "timer" and not h:is_closing() and not h:is_active() then h:close() end
    end)
    uv.run("nowait")   -- finishes the closes
    local fired = 0
    txaio.call_later(0.001, function() fired = fired + 1 end)
    uv.run()
    assert.are.equal(1, fired)
    -- and a later loop does not take a closed handle from the ones left by collected loops
    txaio.use_luv(uv)
    collectgarbage()
    collectgarbage()
    txaio.call_later(0.001, function() fired = fired + 1 end)
    uv.run()
    assert.are.equal(2, fired)
  end)
end)

-- luv 1.44 (Debian 12's) crashes in lua_close when a handle was closed and uv.run() never ran
-- afterwards (luvit/luv#437). txaio never closes its handle, so a script that cancels its last
-- timer, or finishes its loop and cancels a new one, exits cleanly. Each runs in its own process.
describe("a script on luv that exits without running the loop again", function()
  local PRELUDE = "local uv = require 'luv'; local txaio = require 'txaio'; txaio.use_luv(uv); "
  local SCRIPTS = {
    { "cancels its only timer", "txaio.call_later(1, print):cancel()" },
    { "cancels a sleep", "txaio.cancel(txaio.sleep(1))" },
    { "ran the loop, then cancels a new timer",
      "txaio.call_later(0, function() end); uv.run(); txaio.call_later(1, print):cancel()" },
    { "replaced an idle loop", "txaio.call_later(1, print):cancel(); txaio.use_luv(uv); "
      .. "collectgarbage(); collectgarbage(); txaio.call_later(1, print):cancel()" },
  }
  for _, script in ipairs(SCRIPTS) do
    local what, body = script[1], script[2]
    it(what .. " exits with status 0", function()
      local out, ok, code = compat.run(("LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' "
        .. "LUA_CPATH='./%s/?.so;;' %s -e %q"):format(compat.build, compat.lua,
          PRELUDE .. body .. "; print('done')"))
      assert.are.equal("done\n", out, "exit status " .. code)
      assert.is_true(ok, "exit status " .. code)
    end)
  end
end)
