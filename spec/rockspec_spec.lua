-- `luarocks make` builds and installs txaio offline, and the installed tree works on its own.
-- It builds from a copy of the checkout: luarocks compiles in the source directory.
local compat = require "compat"
-- the Lua version of the interpreter running the specs (LuaJIT installs as 5.1)
local LUA_VERSION = _VERSION:match("%d+%.%d+")

describe("rockspecs/txaio-scm-1.rockspec", function()
  local function sh(cmd)
    local out, ok = compat.run(cmd)
    return ok, out
  end

  local work, tree
  setup(function()
    work = assert(io.popen("mktemp -d")):read("*l")
    tree = work .. "/tree"
    local ok, out = sh(("mkdir -p %s/src && cp -r src lua docs rockspecs %s/src/"):format(work, work))
    assert(ok, out)
  end)
  teardown(function()
    if work then sh("rm -rf " .. work) end
  end)

  it("builds and installs with luarocks make, offline", function()
    local ok, out = sh(("cd %s/src && luarocks --lua-version=%s --tree %s make --deps-mode=none "
      .. "rockspecs/txaio-scm-1.rockspec"):format(work, LUA_VERSION, tree))
    assert.is_true(ok, out)
    assert.truthy(out:find("is now installed", 1, true), out)
  end)

  it("gives a fresh interpreter with only that tree a working txaio", function()
    local script = work .. "/check.lua"
    local f = assert(io.open(script, "w"))
    f:write([[
      local txaio = require "txaio"
      local searchpath = package.searchpath or function(name, path)  -- plain 5.1 lacks it
        for c in path:gsub("%?", (name:gsub("%.", "/"))):gmatch("[^;]+") do
          local f = io.open(c)
          if f then f:close() return c end
        end
      end
      assert(searchpath("txaio.core", package.cpath):find(arg[1], 1, true))
      txaio.use_host{ now = function() return 0 end }
      local f = txaio.create_future()
      local got
      txaio.add_callbacks(f, function(v) got = v end)
      txaio.resolve(f, "resolved from the installed tree")
      print(got)
    ]])
    f:close()
    local ok, out = sh(("LUA_PATH='%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua' "
      .. "LUA_CPATH='%s/lib/lua/%s/?.so' %s %s %s"):format(tree, LUA_VERSION, tree, LUA_VERSION,
      tree, LUA_VERSION, compat.lua, script, tree))
    assert.is_true(ok, out)
    assert.are.equal("resolved from the installed tree\n", out)
  end)
end)

describe("the spec run", function()
  it("tests the checkout's build, not an installed txaio", function()
    local core = compat.searchpath("txaio.core", package.cpath)
    -- lua5.4 builds into build/, other interpreters into build/<interpreter>/ (TXAIO_BUILD)
    local build = os.getenv("TXAIO_BUILD") or "build"
    assert.are.equal("./" .. build .. "/txaio/core.so", core)
    assert.are.equal("./lua/txaio/init.lua", compat.searchpath("txaio", package.path))
  end)
end)
