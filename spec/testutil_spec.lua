-- Test helpers: CONTRACT.md section 8, txaio.testutil's Clock and replace_loop.
local txaio = require "txaio"
local testutil = require "txaio.testutil"
local compat = require "compat"
local pack = compat.pack
local helpers = require "helpers"
local error_of, assert_contains = helpers.error_of, helpers.assert_contains

describe("testutil.Clock", function()
  local previous

  before_each(function()
    previous = txaio.config.loop
  end)

  after_each(function()
    txaio.config.loop = previous
  end)

  it("starts at time 0 by default", function()
    local clock = testutil.Clock()
    assert.are.equal(0, clock:now())
    assert.are.equal(0, clock:pending())
  end)

  it("starts at the time it is given", function()
    local clock = testutil.Clock(42.5)
    assert.are.equal(42.5, clock:now())
  end)

  it("moves time only when advanced", function()
    local clock = testutil.Clock(3)
    assert.are.equal(3, clock:now())
    assert.are.equal(3, clock:now())
    clock:advance(1.5)
    assert.are.equal(4.5, clock:now())
    clock:advance(0)
    assert.are.equal(4.5, clock:now())
  end)

  it("is a loop object that txaio.config.loop accepts", function()
    local clock = testutil.Clock()
    txaio.config.loop = clock
    assert.are.equal(clock, txaio.config.loop)
    txaio.call_later(1, function() end)
    assert.are.equal(1, clock:pending())
  end)

  it("runs each due timer at its own deadline while advancing", function()
    local clock = testutil.Clock()
    txaio.config.loop = clock
    local at = {}
    txaio.call_later(3, function() at[#at + 1] = clock:now() end)
    txaio.call_later(1, function() at[#at + 1] = clock:now() end)
    txaio.call_later(7, function() at[#at + 1] = clock:now() end)
    clock:advance(10)
    assert.are.same({ 1, 3, 7 }, at)
    assert.are.equal(10, clock:now())
    assert.are.equal(0, clock:pending())
  end)

  it("runs timers that callbacks schedule inside the advanced window", function()
    local clock = testutil.Clock()
    txaio.config.loop = clock
    local at = {}
    txaio.call_later(1, function()
      at[#at + 1] = clock:now()
      txaio.call_later(1, function() at[#at + 1] = clock:now() end)
    end)
    clock:advance(10)
    assert.are.same({ 1, 2 }, at)
  end)

  it("leaves timers beyond the advanced window pending", function()
    local clock = testutil.Clock()
    txaio.config.loop = clock
    local ran = false
    txaio.call_later(5, function() ran = true end)
    clock:advance(4.5)
    assert.is_false(ran)
    assert.are.equal(1, clock:pending())
    clock:advance(0.5)
    assert.is_true(ran)
  end)

  it("runs the timers that are due now on tick", function()
    local clock = testutil.Clock()
    txaio.config.loop = clock
    local ran = false
    txaio.call_later(0, function() ran = true end)
    clock:tick()
    assert.is_true(ran)
    assert.are.equal(0, clock:now())
  end)

  it("refuses to advance by a negative amount", function()
    local clock = testutil.Clock(1)
    assert_contains(error_of(clock.advance, clock, -1), "bad argument #1")
    assert.are.equal(1, clock:now())
  end)

  it("refuses to advance by NaN", function()
    local clock = testutil.Clock(1)
    assert_contains(error_of(clock.advance, clock, 0 / 0), "bad argument #1")
    assert.are.equal(1, clock:now())
  end)

  it("refuses to advance from inside one of its own timer callbacks, which would never end", function()
    local clock = testutil.Clock()
    txaio.config.loop = clock
    local err, later_ran = nil, false
    txaio.call_later(1, function() err = error_of(clock.advance, clock, 5) end)
    txaio.call_later(3, function() later_ran = true end)
    clock:advance(1)
    assert_contains(tostring(err),
      "bad self to 'advance' (called from inside a timer callback of the same clock)")
    assert.are.equal(1, clock:now())
    assert.is_false(later_ran)
    clock:advance(2)
    assert.is_true(later_ran)
  end)

  it("refuses to advance by a non-number", function()
    local clock = testutil.Clock()
    assert_contains(error_of(clock.advance, clock, "1"), "bad argument #1")
  end)
end)

describe("testutil.replace_loop", function()
  local outer

  before_each(function()
    outer = testutil.Clock()
    txaio.config.loop = outer
  end)

  it("runs fn with the loop as its argument and as txaio.config.loop", function()
    local inner = testutil.Clock()
    local got_arg, got_loop
    testutil.replace_loop(inner, function(loop)
      got_arg = loop
      got_loop = txaio.config.loop
    end)
    assert.are.equal(inner, got_arg)
    assert.are.equal(inner, got_loop)
  end)

  it("schedules txaio timers on the replacement loop while fn runs", function()
    local inner = testutil.Clock()
    testutil.replace_loop(inner, function()
      txaio.call_later(1, function() end)
    end)
    assert.are.equal(1, inner:pending())
    assert.are.equal(0, outer:pending())
  end)

  it("returns all of fn's results, including nil holes", function()
    local results = pack(testutil.replace_loop(testutil.Clock(), function()
      return 1, nil, "three", nil
    end))
    assert.are.equal(4, results.n)
    assert.are.equal(1, results[1])
    assert.is_nil(results[2])
    assert.are.equal("three", results[3])
    assert.is_nil(results[4])
  end)

  it("returns nothing when fn returns nothing", function()
    assert.are.equal(0, select("#", testutil.replace_loop(testutil.Clock(), function() end)))
  end)

  it("restores the previous loop afterwards", function()
    testutil.replace_loop(testutil.Clock(), function() end)
    assert.are.equal(outer, txaio.config.loop)
  end)

  it("restores the previous loop and lets the error through when fn raises", function()
    local err = error_of(testutil.replace_loop, testutil.Clock(), function()
      error("replace_loop boom")
    end)
    assert_contains(tostring(err), "replace_loop boom")
    assert.are.equal(outer, txaio.config.loop)
  end)

  it("propagates a table error value unchanged", function()
    local value = { code = 7 }
    local err = error_of(testutil.replace_loop, testutil.Clock(), function() error(value) end)
    assert.are.equal(value, err)
    assert.are.equal(outer, txaio.config.loop)
  end)

  it("accepts a callable table as fn", function()
    local clock = testutil.Clock()
    local callable = setmetatable({}, { __call = function(self, loop) return self, loop end })
    local got_self, got_loop = testutil.replace_loop(clock, callable)
    assert.are.equal(callable, got_self)
    assert.are.equal(clock, got_loop)
    assert.are.equal(outer, txaio.config.loop)
  end)

  it("refuses a fn that cannot be called, before touching the loop", function()
    for _, bad in ipairs({ 42, "f", {}, setmetatable({}, { __index = {} }) }) do
      local err = error_of(testutil.replace_loop, testutil.Clock(), bad)
      assert_contains(tostring(err),
        "bad argument #2 to 'replace_loop' (callable expected, got " .. type(bad) .. ")")
      assert.are.equal(outer, txaio.config.loop)
    end
  end)

  it("restores the previous loop after nested replacements", function()
    local a, b = testutil.Clock(), testutil.Clock()
    local seen = {}
    testutil.replace_loop(a, function()
      testutil.replace_loop(b, function() seen[#seen + 1] = txaio.config.loop end)
      seen[#seen + 1] = txaio.config.loop
    end)
    assert.are.same({ b, a }, seen)
    assert.are.equal(outer, txaio.config.loop)
  end)
end)
