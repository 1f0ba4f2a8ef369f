-- `luarocks make` builds and installs txaio offline, and the installed tree works on its own.
-- It builds from a copy of the checkout: luarocks compiles in the source directory.
describe("rockspecs/txaio-scm-1.rockspec", function()
  local function sh(cmd)
    local p = assert(io.popen(cmd .. " 2>&1"))
    local out = p:read("a")
    local ok = p:close()
    return ok, out
  end

  local work, tree
  setup(function()
    work = assert(io.popen("mktemp -d")):read("l")
    tree = work .. "/tree"
    local ok, out = sh(("mkdir -p %s/src && cp -r src lua docs rockspecs %s/src/"):format(work, work))
    assert(ok, out)
  end)
  teardown(function()
    if work then sh("rm -rf " .. work) end
  end)

  it("builds and installs with luarocks make, offline", function()
    local ok, out = sh(("cd %s/src && luarocks --lua-version=5.4 --tree %s make --deps-mode=none "
      .. "rockspecs/txaio-scm-1.rockspec"):format(work, tree))
    assert.is_true(ok, out)
    assert.truthy(out:find("is now installed", 1, true), out)
  end)

  it("gives a fresh lua5.4 with only that tree a working txaio", function()
    local script = work .. "/check.lua"
    local f = assert(io.open(script, "w"))
    f:write([[
      local txaio = require "txaio"
      assert(package.searchpath("txaio.core", package.cpath):find(arg[1], 1, true))
      txaio.use_host{ now = function() return 0 end }
      local f = txaio.create_future()
      local got
      txaio.add_callbacks(f, function(v) got = v end)
      txaio.resolve(f, "resolved from the installed tree")
      print(got)
    ]])
    f:close()
    local ok, out = sh(("LUA_PATH='%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua' "
      .. "LUA_CPATH='%s/lib/lua/5.4/?.so' lua5.4 %s %s"):format(tree, tree, tree, script, tree))
    assert.is_true(ok, out)
    assert.are.equal("resolved from the installed tree\n", out)
  end)
end)

describe("the spec run", function()
  it("tests the checkout's build, not an installed txaio", function()
    local core = package.searchpath("txaio.core", package.cpath)
    -- lua5.4 builds into build/, other interpreters into build/<interpreter>/ (TXAIO_BUILD)
    local build = os.getenv("TXAIO_BUILD") or "build"
    assert.are.equal("./" .. build .. "/txaio/core.so", core)
    assert.are.equal("./lua/txaio/init.lua", package.searchpath("txaio", package.path))
  end)
end)
