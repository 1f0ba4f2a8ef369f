-- examples/echo_server.lua: a real luv TCP echo server and clients in spawn/await style.
local compat = require "compat"

describe("the echo server example (make demo)", function()
  it("serves three clients on 127.0.0.1, echoes every line and stops by itself", function()
    -- on the interpreter running the specs, with its build of the core
    local out, ok = compat.run(("LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./%s/?.so;;' "
      .. "timeout 30 %s examples/echo_server.lua"):format(compat.build, compat.lua))
    assert.is_true(ok, out)
    assert.truthy(out:find("server: listening on 127.0.0.1:%d+"), out)
    assert.truthy(out:find("client 1: alice: 2 lines echoed", 1, true), out)
    assert.truthy(out:find("client 2: bob: 3 lines echoed", 1, true), out)
    assert.truthy(out:find("client 3: carol: 4 lines echoed", 1, true), out)
    assert.truthy(out:find("done: 3 connections served, 0 txaio timers pending", 1, true), out)
    assert.falsy(out:find("FAILED", 1, true), out)
    assert.falsy(out:find("deadline reached", 1, true), out)
  end)
end)
