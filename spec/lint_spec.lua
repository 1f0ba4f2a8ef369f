-- luacheck (Debian's lua-check) finds no globals, unused variables or shadowing in the Lua layer,
-- the examples, the specs and the benchmarks. .luacheckrc holds the settings.
local compat = require "compat"

describe("luacheck", function()
  it("finds nothing in lua/, examples/, spec/ and bench/", function()
    local out, ok = compat.run("luacheck --no-color --formatter=plain lua examples spec bench")
    if out:find("not found", 1, true) and not out:find(":%d+:%d+:") then
      pending("luacheck is not installed (apt-get install lua-check)")
      return
    end
    assert.are.equal("", out)
    assert.truthy(ok)
  end)
end)
