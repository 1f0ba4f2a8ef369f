-- A game engine host: LÖVE 11 (LuaJIT), headless, runs examples/love, whose love.update drives
-- txaio.tick() on a host loop clocked by love.timer.getTime. The game checks timers, batched
-- timers, futures, gather and spawn/await over a few hundred frames and exits 0 when all passed.
-- `make hosts-prep` (run by `make test`) builds the LuaJIT core and installs love.
local H = require "hostutil"

describe("txaio in LÖVE (examples/love)", function()
  local love = H.which("love")
  local root = H.root()
  local tmp

  setup(function() tmp = H.tmpdir() end)
  teardown(function() H.rmtree(tmp) end)

  -- runs the game, bounded; LÖVE needs XDG_RUNTIME_DIR (no display: conf.lua disables the window)
  local function run(env)
    local cmd = ("cd %s && XDG_RUNTIME_DIR=%s TXAIO_ROOT=%s %s timeout -k 2 30 %s examples/love")
      :format(H.q(root), H.q(tmp), H.q(root), env or "", H.q(love))
    local ok, code, out = H.exec(cmd)
    if not ok and out:find("Could not initialize", 1, true) and H.which("xvfb-run") then
      ok, code, out = H.exec(("cd %s && XDG_RUNTIME_DIR=%s TXAIO_ROOT=%s %s timeout -k 2 30 "
        .. "xvfb-run -a %s examples/love"):format(H.q(root), H.q(tmp), H.q(root), env or "", H.q(love)))
    end
    return ok, code, out
  end

  local function available()
    return H.luajit_host_ready(pending, love, "LÖVE", "love")
  end

  it("runs timers, futures and coroutines for a few hundred frames and exits 0", function()
    if not available() then return end
    local ok, code, out = run()
    assert.are.equal(0, code, out)
    assert.is_true(ok)
    local checks, frames = out:match("love: (%d+) checks passed in (%d+) frames")
    assert.truthy(checks, out)
    assert.are.equal(8, tonumber(checks), out)
    assert.is_true(tonumber(frames) >= 300, out)
    assert.falsy(out:find("FAILED", 1, true), out)
    print("    " .. out:match("love: [^\n]*"))
  end)

  it("exits with status 1 and the error when the game raises (love.errorhandler)", function()
    if not available() then return end
    local ok, code, out = run("TXAIO_LOVE_RAISE=1")
    assert.is_false(ok)
    assert.are.equal(1, code, out)
    assert.truthy(out:find("raised on purpose", 1, true), out)
  end)
end)
