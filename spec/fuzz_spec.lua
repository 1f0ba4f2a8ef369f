-- What `make fuzz` (spec/fuzz/harness.c, libFuzzer) found, as plain specs through the public API.
local txaio = require "txaio"

-- A host loop whose clock returns whatever `t.now` holds.
local function host_with(t)
  local wakes = {}
  local loop = txaio.host_loop {
    now = function() return t.now end,
    wake = function(delay) wakes[#wakes + 1] = delay end,
  }
  return loop, wakes
end

describe("fuzz regressions", function()
  local previous
  before_each(function() previous = txaio.config.loop end)
  after_each(function() txaio.config.loop = previous end)

  -- An infinite clock made every deadline infinite: the timer never became due, the host was never
  -- asked to wake for it again, or was asked to wait inf - inf (NaN); -inf overflowed the batched
  -- timer's bucket number (undefined behaviour).
  it("refuses a host clock that returns inf or -inf, as it refuses NaN", function()
    for _, bad in ipairs { math.huge, -math.huge } do
      local t = { now = 0 }
      local loop, wakes = host_with(t)
      txaio.config.loop = loop
      local fired = 0
      txaio.call_later(1, function() fired = fired + 1 end)
      t.now = bad
      local name = bad > 0 and "inf" or "-inf"
      for _, call in ipairs {
        function() return txaio.tick() end,
        function() return txaio.call_later(1, print) end,
        function() return txaio.sleep(1) end,
        function() return loop:now() end,
      } do
        local ok, err = pcall(call)
        assert.is_false(ok)
        local want = "txaio: the loop clock now() returned " .. name .. ", expected a number of seconds"
        assert.are.equal(want, tostring(err):sub(-#want))
      end
      -- nothing changed: the loop goes on once the clock is finite again
      assert.are.equal(1, loop:pending())
      t.now = 1
      assert.is_nil(txaio.tick())
      assert.are.equal(1, fired)
      for _, delay in ipairs(wakes) do assert.is_true(delay >= 0) end
    end
  end)

  it("refuses a batched deadline too far from the clock's zero instead of overflowing", function()
    for _, start in ipairs { 1e300, -1e300, 2 ^ 53 / 1000 } do
      local t = { now = 0 }
      local loop = host_with(t)
      txaio.config.loop = loop
      local bt = txaio.make_batched_timer(0.5)
      t.now = start
      local ok, err = pcall(function() return bt:call_later(1, print) end)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("bad argument #1 to 'call_later' (deadline out of range", 1, true), err)
      assert.are.equal(0, loop:pending())
      -- plain timers take such clocks as they are
      assert.is_true(txaio.call_later(1, print):active())
    end
    -- the largest clocks that fit still fire, on time
    local t = { now = 2 ^ 52 / 1000 }
    txaio.config.loop = host_with(t)
    local bt = txaio.make_batched_timer(0.5)
    local at
    bt:call_later(1, function() at = t.now end)
    t.now = t.now + 1.5
    txaio.tick()
    assert.are.equal(2 ^ 52 / 1000 + 1.5, at)
  end)
end)
