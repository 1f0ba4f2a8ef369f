-- Several loops: CONTRACT.md section 5, txaio.with_config, and switching loops through
-- txaio.config.loop (section 1).
local txaio = require "txaio"
local testutil = require "txaio.testutil"
local helpers = require "helpers"
local error_message_of, assert_contains = helpers.error_message_of, helpers.assert_contains

-- The keys of table `t`, as strings, sorted.
local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  return keys
end

local c1, c2

before_each(function()
  c1, c2 = testutil.Clock(), testutil.Clock()
  txaio.config.loop = c1
end)

describe("txaio.with_config", function()
  it("returns an API object with exactly the keys of txaio", function()
    local api = txaio.with_config{ loop = c2 }
    assert.is_table(api)
    assert.are.same(sorted_keys(txaio), sorted_keys(api))
  end)

  it("returns an API object whose functions are functions wherever txaio's are", function()
    local api = txaio.with_config{ loop = c2 }
    for k, v in pairs(txaio) do
      assert.are.equal(type(v), type(api[k]), "key " .. tostring(k))
    end
  end)

  it("binds the API object to the loop it was given", function()
    local api = txaio.with_config{ loop = c2 }
    assert.are.equal(c2, api.config.loop)
    assert.are.equal(c1, txaio.config.loop)
  end)

  it("never fires one API object's timers when another's loop is advanced", function()
    local a = txaio.with_config{ loop = c1 }
    local b = txaio.with_config{ loop = c2 }
    local log = {}
    a.call_later(1, function() log[#log + 1] = "a" end)
    b.call_later(1, function() log[#log + 1] = "b" end)
    assert.are.equal(1, c1:pending())
    assert.are.equal(1, c2:pending())
    c2:advance(5)
    assert.are.same({ "b" }, log)
    assert.are.equal(1, c1:pending())
    c1:advance(5)
    assert.are.same({ "b", "a" }, log)
  end)

  it("keeps sleep futures on their own API object's loop", function()
    local a = txaio.with_config{ loop = c1 }
    local b = txaio.with_config{ loop = c2 }
    local fa, fb = a.sleep(1), b.sleep(1)
    c2:advance(2)
    assert.is_false(a.is_called(fa))
    assert.is_true(b.is_called(fb))
  end)

  it("lets a future made by one API object be used with another's gather and add_callbacks", function()
    local a = txaio.with_config{ loop = c1 }
    local b = txaio.with_config{ loop = c2 }
    local fa = a.create_future()
    local seen
    b.add_callbacks(fa, function(v) seen = v end, nil)
    local gathered = b.gather({ fa, b.create_future_success(2) })
    local result
    a.add_callbacks(gathered, function(list) result = list end, nil)
    assert.is_nil(result)
    a.resolve(fa, 1)
    assert.are.equal(1, seen)
    assert.is_table(result)
    assert.are.equal(2, result.n)
    assert.are.same({ 1, 2 }, { result[1], result[2] })
  end)

  it("lets another API object gather a sleep future of the first one's loop", function()
    local a = txaio.with_config{ loop = c1 }
    local b = txaio.with_config{ loop = c2 }
    local gathered = b.gather({ a.sleep(1) })
    assert.is_false(b.is_called(gathered))
    c1:advance(1)
    assert.is_true(b.is_called(gathered))
  end)

  it("is bound to the current txaio.config.loop when given no loop", function()
    local api = txaio.with_config()
    assert.are.equal(c1, api.config.loop)
    local ran = false
    api.call_later(1, function() ran = true end)
    assert.are.equal(1, c1:pending())
    c1:advance(1)
    assert.is_true(ran)
  end)

  it("is bound to the current loop when given an empty table", function()
    local api = txaio.with_config{}
    api.call_later(1, function() end)
    assert.are.equal(1, c1:pending())
    assert.are.equal(0, c2:pending())
  end)

  it("stays on the loop it was bound to when txaio.config.loop changes later", function()
    local api = txaio.with_config()
    txaio.config.loop = c2
    api.call_later(1, function() end)
    assert.are.equal(1, c1:pending())
    assert.are.equal(0, c2:pending())
  end)

  it("rejects an unknown option with bad argument #1", function()
    assert_contains(error_message_of(txaio.with_config, { loop = c2, lop = c2 }), "bad argument #1")
    assert_contains(error_message_of(txaio.with_config, { colour = "blue" }), "bad argument #1")
  end)

  it("rejects a loop that is neither a loop object, luv nor a host adapter", function()
    assert_contains(error_message_of(txaio.with_config, { loop = 42 }), "bad argument #1")
    assert_contains(error_message_of(txaio.with_config, { loop = {} }), "bad argument #1")
  end)

  it("accepts a host adapter table as the loop", function()
    local now = 0
    local api = txaio.with_config{ loop = { now = function() return now end } }
    assert.is_true(api.using_host)
    assert.is_false(api.using_luv)
    local ran = false
    api.call_later(1, function() ran = true end)
    assert.are.equal(1, api.tick())
    assert.is_false(ran)
    now = 1
    assert.is_nil(api.tick())
    assert.is_true(ran)
    assert.are.equal(0, c1:pending())
  end)

  it("accepts a host adapter that returns a constant time", function()
    local api = txaio.with_config{ loop = { now = function() return 0 end } }
    local ran = false
    api.call_later(0, function() ran = true end)
    api.tick()
    assert.is_true(ran)
    local f = api.create_future()
    api.resolve(f, "ok")
    assert.are.equal("ok", f:result())
  end)
end)

describe("txaio.config.loop", function()
  it("switches loops when assigned another loop object", function()
    txaio.config.loop = c2
    assert.are.equal(c2, txaio.config.loop)
    local ran = false
    txaio.call_later(1, function() ran = true end)
    assert.are.equal(1, c2:pending())
    assert.are.equal(0, c1:pending())
    c1:advance(5)
    assert.is_false(ran)
    c2:advance(1)
    assert.is_true(ran)
  end)

  it("leaves timers already scheduled on the old loop there", function()
    local ran = false
    txaio.call_later(1, function() ran = true end)
    txaio.config.loop = c2
    c2:advance(5)
    assert.is_false(ran)
    c1:advance(1)
    assert.is_true(ran)
  end)
end)
