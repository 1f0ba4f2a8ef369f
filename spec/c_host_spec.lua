-- The example embedder (examples/c-host) drives txaio through src/txaio.h from its own frame loop.
-- `make test` builds it before the specs run.
local compat = require "compat"

describe("the C embedding API (examples/c-host)", function()
  -- built for the interpreter running the specs: build/c-host for 5.4, build/<lua>/c-host else
  local binary = "./" .. compat.build .. "/c-host"

  local function run(script)
    return compat.run(("LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' %s %s"):format(binary, script))
  end

  it("is built by make", function()
    assert.truthy(io.open(binary, "r"), "run `make c-host` first")
  end)

  it("runs the game script, resolving a future from C, with the expected output", function()
    local out, ok = run("examples/c-host/game.lua")
    local expected = assert(io.open("examples/c-host/expected.txt")):read("*a")
    assert.are.equal(expected, out)
    assert.is_true(ok)
  end)

  it("fails with the script's error and a non-zero status when the script raises", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write('error("script exploded")\n')
    f:close()
    local out, ok = run(path)
    os.remove(path)
    assert.falsy(ok)
    assert.truthy(out:find("script exploded", 1, true))
  end)
end)
