-- Neovim as a host: examples/neovim/txaio_check.lua runs inside headless Neovim (LuaJIT, so the
-- LuaJIT build in build/luajit) with use_luv(vim.loop) and checks a timer, a gather and a
-- spawn/await. Neovim 0.7 (Debian 12) has no `nvim -l`, so the script runs through `luafile`;
-- a trailing `cq` makes Neovim exit 1 if the script raised before deciding itself.
local H = require "hostutil"

describe("txaio in Neovim (examples/neovim)", function()
  local nvim = H.which("nvim")
  local root = H.root()

  local function run(env)
    return H.exec(("cd %s && %s timeout -k 2 30 %s --headless --clean -c %s -c cq </dev/null")
      :format(H.q(root), env or "", H.q(nvim), H.q("luafile examples/neovim/txaio_check.lua")))
  end

  local function available()
    return H.luajit_host_ready(pending, nvim, "Neovim", "neovim")
  end

  it("runs a timer, a gather and a spawn/await on vim.loop and exits 0", function()
    if not available() then return end
    local ok, code, out = run()
    assert.are.equal(0, code, out)
    assert.is_true(ok)
    assert.truthy(out:find("neovim: timer, gather and spawn/await passed on vim.loop", 1, true), out)
    print("    " .. out:match("neovim: [^\n]*"))
  end)

  it("exits non-zero with the reason when txaio cannot be loaded", function()
    if not available() then return end
    local ok, code, out = run("TXAIO_ROOT=/nonexistent")
    assert.is_false(ok)
    assert.are.equal(1, code, out)
    assert.truthy(out:find("cannot load txaio", 1, true), out)
  end)
end)
