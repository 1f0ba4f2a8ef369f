-- What `make fuzz` (spec/fuzz/harness.c, libFuzzer) found, as plain specs through the public API.
local txaio = require "txaio"

-- An object whose finalizer runs `act()` when the collector finalizes it while `window.open` is
-- set, and otherwise re-arms itself for the next cycle: user code that runs at whatever allocation
-- inside a txaio call the collector picks. Tables get __gc from 5.2 on; 5.1 and LuaJIT have
-- newproxy.
local function finalizer_loop(window)
  local mt = {}
  local function arm()
    local newproxy = rawget(_G, "newproxy")
    if _VERSION == "Lua 5.1" and newproxy then
      local p = newproxy(true)
      getmetatable(p).__gc = mt.__gc
      return p
    end
    return setmetatable({}, mt)
  end
  mt.__gc = function()
    if window.done then return end
    if window.open and window.act then
      window.acted = window.acted + 1
      window.act()
      window.act = nil
    end
    arm()
  end
  window.acted = 0
  arm()
end

-- Runs attempt(window) until the finalizer has acted inside it `n` times (or `tries` run out),
-- with a collector that never pauses, so that it steps inside every call that allocates.
local function with_finalizers_inside(n, tries, attempt)
  local window = {}
  local pause = collectgarbage("setpause", 0)
  local ok, err = pcall(function()
    finalizer_loop(window)
    local i = 0
    while window.acted < n and i < tries do
      i = i + 1
      for _ = 1, i % 13 do local _ = { i } end   -- shifts where the collector's steps fall
      attempt(window)
    end
  end)
  window.done = true
  collectgarbage("setpause", pause)
  assert(ok, err)
  return window.acted
end

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

  -- A finalizer that completed a future while cancel() or reject() was allocating the failure
  -- (after they had checked the future was pending): they then settled it a second time, so a
  -- callback saw it resolved and result() said it was cancelled.
  for _, how in ipairs { "cancel", "reject" } do
    it("settles a future once when a finalizer completes it during " .. how .. "()", function()
      txaio.use_host { now = function() return 0 end }
      local wrong = {}
      local acted = with_finalizers_inside(20, 20000, function(window)
        local f = txaio.create_future()
        local ran = {}
        f:add_callbacks(function(v) ran[#ran + 1] = "callback " .. tostring(v) end,
                        function(fail) ran[#ran + 1] = "errback " .. tostring(fail.value) end)
        window.act = function() pcall(txaio.resolve, f, "by a finalizer") end
        window.open = true
        if how == "cancel" then f:cancel("why") else pcall(f.reject, f, "rejected") end
        window.open, window.act = false, nil
        local ok, r = pcall(f.result, f)
        local state = ok and "callback " .. tostring(r) or "errback " .. tostring(r)
        if #ran ~= 1 or ran[1] ~= state then wrong[#wrong + 1] = table.concat(ran, ", ") .. " / " .. state end
      end)
      assert.is_true(acted > 0, "the finalizer never ran inside " .. how .. "()")
      assert.are.same({}, wrong)
    end)
  end

  -- A finalizer that completed a future while add_callbacks() made the list for its second pair:
  -- the pair was stored on a future that had already run its callbacks, and never ran.
  it("runs a second pair even when a finalizer completes the future during add_callbacks()", function()
    txaio.use_host { now = function() return 0 end }
    local lost = 0
    local acted = with_finalizers_inside(20, 100000, function(window)
      local f = txaio.create_future()
      local second = 0
      f:add_callbacks(function() end)
      window.act = function() pcall(txaio.resolve, f, "by a finalizer") end
      window.open = true
      f:add_callbacks(function() second = second + 1 end)
      window.open, window.act = false, nil
      if f:is_called() and second ~= 1 then lost = lost + 1 end
    end)
    assert.is_true(acted > 0, "the finalizer never ran inside add_callbacks()")
    assert.are.equal(0, lost)
  end)
end)
