-- The example embedder (examples/c-host) drives txaio through src/txaio.h from its own frame loop.
-- `make test` builds it before the specs run.
describe("the C embedding API (examples/c-host)", function()
  local binary = "./build/c-host"

  local function run(script)
    local cmd = ("LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' %s %s 2>&1"):format(binary, script)
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    local ok, _, code = p:close()
    return out, ok, code
  end

  it("is built by make", function()
    assert.truthy(io.open(binary, "r"), "run `make c-host` first")
  end)

  it("runs the game script, resolving a future from C, with the expected output", function()
    local out, ok = run("examples/c-host/game.lua")
    local expected = assert(io.open("examples/c-host/expected.txt")):read("a")
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
