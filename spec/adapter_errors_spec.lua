-- Errors raised by a host adapter's now() or wake() name the function and leave the scheduler
-- consistent: a call_later that raises leaves no timer behind.
local txaio = require "txaio"

local error_message_of = require("helpers").error_message_of

describe("a host adapter whose wake() raises", function()
  local calls, fail_on
  before_each(function()
    calls, fail_on = 0, {}
    txaio.use_host{
      now = function() return 0 end,
      wake = function() calls = calls + 1; if fail_on[calls] then error("wake broke") end end,
    }
  end)

  it("makes call_later raise an error naming wake() and schedules nothing", function()
    fail_on[1] = true
    local fired = false
    local err = error_message_of(txaio.call_later, 1, function() fired = true end)
    assert.truthy(err:find("wake()", 1, true), err)
    assert.truthy(err:find("wake broke", 1, true), err)
    assert.are.equal(0, txaio.config.loop:pending())
    txaio.tick()
    assert.is_false(fired)
  end)

  it("leaves the loop usable: the next call_later asks for a wake-up again and fires", function()
    fail_on[1] = true
    pcall(txaio.call_later, 1, print)
    local fired = false
    txaio.call_later(0, function() fired = true end)
    assert.are.equal(2, calls)
    txaio.tick()
    assert.is_true(fired)
  end)

  it("makes sleep raise and leaves no timer behind", function()
    fail_on[1] = true
    local err = error_message_of(txaio.sleep, 1)
    assert.truthy(err:find("wake()", 1, true), err)
    assert.are.equal(0, txaio.config.loop:pending())
  end)

  it("makes tick raise after running the due timers, and the next call_later re-arms", function()
    local ran = false
    txaio.call_later(0, function() ran = true end)
    txaio.call_later(5, print)
    fail_on[calls + 1] = true   -- the re-arm after the tick
    local err = error_message_of(txaio.tick)
    assert.truthy(err:find("wake()", 1, true), err)
    assert.is_true(ran)
    assert.are.equal(1, txaio.config.loop:pending())
    local before = calls
    txaio.call_later(10, print)
    assert.are.equal(before + 1, calls, "the scheduler should ask for a wake-up again")
  end)
end)

describe("a host adapter whose now() raises", function()
  it("makes call_later raise an error naming now() and schedules nothing", function()
    local broken = false
    txaio.use_host{ now = function() if broken then error("clock broke") end return 0 end }
    broken = true
    local err = error_message_of(txaio.call_later, 1, print)
    assert.truthy(err:find("now()", 1, true), err)
    assert.truthy(err:find("clock broke", 1, true), err)
    broken = false
    assert.are.equal(0, txaio.config.loop:pending())
  end)

  it("makes tick raise the same error without running anything", function()
    local broken, ran = false, false
    txaio.use_host{ now = function() if broken then error("clock broke") end return 0 end }
    txaio.call_later(0, function() ran = true end)
    broken = true
    local err = error_message_of(txaio.tick)
    assert.truthy(err:find("now()", 1, true), err)
    assert.is_false(ran)
    broken = false
    txaio.tick()
    assert.is_true(ran)
  end)

  it("reports a non-number clock value as such", function()
    txaio.use_host{ now = function() return "noon" end }
    local err = error_message_of(txaio.call_later, 1, print)
    assert.truthy(err:find("now() returned string", 1, true), err)
  end)
end)

describe("a host adapter whose wake() schedules a timer itself", function()
  -- wake() runs inside call_later, which has pushed its timer and would take it back if wake()
  -- raised. A call_later inside wake() runs wake() again; that inner wake-up used to mark the
  -- loop as no longer waking, so a tick from the outer wake() ran and fired the half-scheduled
  -- timer, and undoing it then crashed.
  it("still refuses a tick from the outer wake(), and undoing the outer call_later works", function()
    local depth, tick_error, fired, now = 0, nil, {}, 0
    local run_tick
    txaio.use_host{
      now = function() return now end,
      wake = function(_, run)
        depth = depth + 1
        if depth == 1 then
          txaio.call_later(0, function() fired[#fired + 1] = "inner" end)
          now = 100   -- both timers due: a tick now would fire the outer one too
          local ok, err = pcall(run)
          if not ok then tick_error = err end
          error("outer wake broke")
        end
        run_tick = run
      end,
    }
    local err = error_message_of(txaio.call_later, 1, function() fired[#fired + 1] = "outer" end)
    assert.truthy(err:find("outer wake broke", 1, true), err)
    assert.truthy(tostring(tick_error):find("tick() called from inside the loop's wake()", 1, true),
      tostring(tick_error))
    assert.are.equal(1, txaio.config.loop:pending())   -- the inner timer only
    assert.is_function(run_tick)
    txaio.tick()
    assert.are.same({ "inner" }, fired)
    assert.are.equal(0, txaio.config.loop:pending())
  end)
end)
