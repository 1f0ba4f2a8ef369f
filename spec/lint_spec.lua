-- luacheck (Debian's lua-check) finds no globals, unused variables or shadowing in the Lua layer
-- and the examples. .luacheckrc holds the settings.
describe("luacheck", function()
  it("finds nothing in lua/ and examples/", function()
    local p = assert(io.popen("luacheck --no-color --formatter=plain lua examples 2>&1"))
    local out = p:read("*a")
    local ok = p:close()
    if out:find("not found", 1, true) and not out:find(":%d+:%d+:") then
      pending("luacheck is not installed (apt-get install lua-check)")
      return
    end
    assert.are.equal("", out)
    assert.truthy(ok)
  end)
end)
