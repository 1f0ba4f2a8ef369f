-- The examples that `make demo` runs work and print what they promise.
local compat = require "compat"

describe("examples/", function()
  -- on the interpreter running the specs, with its build of the core
  local function run(file)
    return compat.run(("LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./%s/?.so;;' "
      .. "timeout 30 %s %s"):format(compat.build, compat.lua, file))
  end

  it("futures_on_luv.lua shows callbacks, failures, gather, as_future and cancel on luv", function()
    local out, ok = run("examples/futures_on_luv.lua")
    assert.is_true(ok, out)
    for _, expected in ipairs{
      "using_luv = true", "got <index.html, 1000 bytes>", "errback: error: could not fetch secret.txt",
      "gather[1] = <a.css, 500 bytes>", "gather[3] = failure: error: could not fetch c.png",
      "as_future caught a table error, code 404", "slow: CancelledError: not needed any more",
      "uv.run() returned; 0 timers pending",
    } do
      assert.truthy(out:find(expected, 1, true), expected .. "\n" .. out)
    end
  end)

  it("logging.lua routes events to txaio's output, an ngx.log mimic and LuaLogging", function()
    local out, ok = run("examples/logging.lua")
    assert.is_true(ok, out)
    assert.truthy(out:find("%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[+-]%d%d%d%d order 17 placed by ada for 41.50 EUR"), out)
    assert.falsy(out:find("not shown", 1, true), out)
    assert.truthy(out:find("[ngx.log level 5] demo.shop: stock for A-42 is low: 3 left", 1, true), out)
    assert.truthy(out:find("Unhandled error in callback: error: examples/logging.lua:%d+: a bug in a callback"), out)
    assert.truthy(out:find("[LuaLogging ERROR] payment for order 17 failed", 1, true), out)
  end)
end)
