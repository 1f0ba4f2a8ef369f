-- txaio inside Neovim (LuaJIT), on Neovim's own libuv loop: use_luv(vim.loop).
-- Run from the repository root (Neovim 0.7 has no `-l`; 0.9+ can also run it with `nvim -l`):
--   nvim --headless --clean -c "luafile examples/neovim/txaio_check.lua"
-- Checks a timer, a gather and a spawn/await; exits 0 when all passed, 1 otherwise ("cq").

-- txaio's Lua layer and its LuaJIT build: the repository two levels up, or TXAIO_ROOT
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local root = os.getenv("TXAIO_ROOT") or (here .. "/../..")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/luajit/?.so;" .. package.cpath

local function finish(ok, msg)
  io.stdout:write(msg, "\n")
  io.stdout:flush()
  vim.cmd(ok and "qa!" or "cq")
end

local loaded, txaio = pcall(require, "txaio")
if not loaded then return finish(false, "neovim: FAILED: cannot load txaio: " .. tostring(txaio)) end

-- Neovim's loop is luv's: one uv timer wakes txaio, whatever the number of its timers
txaio.use_luv(vim.loop)

local results, failures = {}, {}
local function fail(why) failures[#failures + 1] = why end

-- a timer: fires once, not early
local t0 = vim.loop.hrtime()
txaio.call_later(0.05, function(tag)
  local waited = (vim.loop.hrtime() - t0) / 1e9
  if tag ~= "tag" or waited < 0.05 then fail(("timer: tag=%s after %.3f s"):format(tag, waited)) end
  results.timer = true
end, "tag")
local cancelled = txaio.call_later(0.01, function() fail("a cancelled timer fired") end)
cancelled:cancel()

-- a gather of futures completed by timers, one of them failed
local function later(delay, value, rejected)
  local f = txaio.create_future()
  txaio.call_later(delay, rejected and txaio.reject or txaio.resolve, f, value)
  return f
end
txaio.add_callbacks(txaio.gather { later(0.03, "a"), later(0.01, "b"), later(0.02, "oops", true) },
  function(list)
    if not (list.n == 3 and list[1] == "a" and list[2] == "b" and txaio.is_failure(list[3])) then
      fail("gather: unexpected result")
    end
    results.gather = true
  end, function(f) fail("gather failed: " .. txaio.failure_message(f)) end)

-- spawn/await: a coroutine awaiting timers and a rejection
txaio.add_callbacks(txaio.spawn(function(x)
  txaio.await(txaio.sleep(0.02))
  local doubled = txaio.await(later(0.01, x * 2))
  local ok, err = pcall(txaio.await, later(0.01, "nope", true))
  return { doubled = doubled, caught = not ok and err }
end, 21), function(r)
  if r.doubled ~= 42 or r.caught ~= "nope" then
    fail(("spawn: doubled=%s caught=%s"):format(tostring(r.doubled), tostring(r.caught)))
  end
  results.spawn = true
end, function(f) fail("spawn failed: " .. txaio.failure_format_traceback(f)) end)

-- let Neovim's loop run (it runs the luv timers) until everything completed, at most 5 s
local done = vim.wait(5000, function()
  return #failures > 0 or (results.timer and results.gather and results.spawn) or false
end, 5)
if not done then fail("timed out") end
if #failures > 0 then return finish(false, "neovim: FAILED: " .. table.concat(failures, "; ")) end
finish(true, ("neovim: timer, gather and spawn/await passed on %s (%s)"):format(
  txaio.using_luv and "vim.loop" or "?", jit and jit.version or _VERSION))
