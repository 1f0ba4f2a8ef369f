--- Helpers that several spec files share. Each spec takes what it uses as locals
-- (`local helpers = require "helpers"`, then `local error_of = helpers.error_of`); nothing here
-- sets a global.
--
-- busted gives `assert`, `pending` and the other spec functions only to the spec files' own
-- environment, not to the modules they require: this module takes luassert (the same instance as
-- the specs' `assert`) from require. It requires txaio's modules only when a helper runs, so it
-- gets the instances the spec file itself loaded (busted unloads modules between spec files).
local assert = require "luassert"

local M = {}

--- Calls `fn(...)` under pcall, asserts that it raised, and returns the error value as raised
-- (a string, or a table such as a CancelledError). For the tests that check what an error says
-- or what it is, without the boilerplate of pcall plus an assertion at every call site.
function M.error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return err
end

--- Like error_of, but returns the error as a string (tostring), for the tests that match on the
-- message text.
function M.error_message_of(fn, ...)
  return tostring(M.error_of(fn, ...))
end

--- Asserts that `haystack` is a string that contains `needle` as plain text (no patterns). The
-- failure message shows both, which plain `assert.truthy(s:find(...))` does not.
function M.assert_contains(haystack, needle)
  assert.is_string(haystack)
  assert.truthy(haystack:find(needle, 1, true),
    ("expected %q to contain %q"):format(haystack, needle))
end

--- Runs `fn` with the collector's ordinary incremental settings, then restores the previous
-- ones, also when `fn` raises (the error goes on unchanged). For the tests that allocate a lot
-- of futures or timers: under the suite's "stress" GC pass (pause 0) they would take hours
-- instead of seconds, and what they pin (stack use, ordering) does not depend on the collector.
function M.with_ordinary_gc(fn)
  local pause, stepmul = M.set_ordinary_gc()
  local ok, err = pcall(fn)
  collectgarbage("setpause", pause)
  collectgarbage("setstepmul", stepmul)
  if not ok then error(err, 0) end
end

--- The bytes the collector counts as allocated while `fn()` runs, with the collector stopped so
-- that nothing is freed in between; it is restarted afterwards, also when `fn` raises. On LuaJIT
-- the JIT is off meanwhile: the traces it records are collectable objects too.
function M.bytes_allocated(fn)
  local luajit = rawget(_G, "jit")
  collectgarbage()
  collectgarbage()
  collectgarbage("stop")
  if luajit then luajit.off() end
  local before = collectgarbage("count")
  local ok, err = pcall(fn)
  local after = collectgarbage("count")
  if luajit then luajit.on() end
  collectgarbage("restart")
  if not ok then error(err, 0) end
  return (after - before) * 1024
end

--- Runs `cycles` (default 2) full collections. On LuaJIT it first flushes the compiled traces: a
-- trace keeps the objects it was specialised on as constants until it is flushed, and those can
-- be a loop's (one of the first hundred or so made), so with the JIT on a dropped loop may
-- otherwise outlive its last Lua reference. The specs that assert what a collection frees use
-- this, so that they test txaio's references and not the JIT's.
function M.full_gc(cycles)
  local luajit = rawget(_G, "jit")
  if luajit then luajit.flush() end
  for _ = 1, cycles or 2 do collectgarbage() end
end

--- Sets the interpreter's own collector pacing (as it was before spec/support/gc.lua applied the
-- pass's mode) and returns the previous pause and step multiplier, for the caller to restore.
function M.set_ordinary_gc()
  local ordinary = debug.getregistry()["txaio spec: ordinary gc pacing"]
    or { pause = 200, stepmul = _VERSION == "Lua 5.4" and 100 or 200 }
  return collectgarbage("setpause", ordinary.pause), collectgarbage("setstepmul", ordinary.stepmul)
end

--- Attaches a callback pair to future `f` that records how it completed, and returns a function
-- giving ("resolved", value) or ("failed", failure), or `pending_state` (nil unless given) while
-- `f` has not completed. Adding the errback marks a failure as handled, so a watched future is
-- never reported as unhandled. For inspecting a future's outcome without reaching into it.
function M.watch(f, pending_state)
  local state, value = pending_state, nil
  require("txaio").add_callbacks(f,
    function(v) state, value = "resolved", v end,
    function(fail) state, value = "failed", fail end)
  return function() return state, value end
end

--- Replaces txaio.report's handler with one that appends `{message = ..., failure = ...}` to a
-- fresh list; returns the list and a function that puts the previous handler back. For the
-- tests that check what txaio reports (errors in callbacks, unhandled failures) instead of
-- letting the default handler log it.
function M.record_reports()
  local report = require "txaio.report"
  local reports = {}
  local previous = report.set_handler(function(message, failure)
    reports[#reports + 1] = { message = message, failure = failure }
  end)
  return reports, function() report.set_handler(previous) end
end

--- The entries of `reports` (a list from record_reports) whose message contains `marker` as
-- plain text. Tests tag their errors with a marker, so that a report some other code (a
-- finalizer run by the collector) makes at the same time does not disturb the count.
function M.reports_about(reports, marker)
  local found = {}
  for _, r in ipairs(reports) do
    if type(r.message) == "string" and r.message:find(marker, 1, true) then
      found[#found + 1] = r
    end
  end
  return found
end

--- Makes a fresh txaio.testutil.Clock (at time `start`, 0 by default), selects it as txaio's loop
-- and returns it. For the specs whose timers run on a manual clock, a new one for each test so
-- that no timer outlives its test.
function M.use_clock(start)
  local clock = require("txaio.testutil").Clock(start)
  require("txaio").config.loop = clock
  return clock
end

-- 5.1 and LuaJIT limit a C function's own stack to 8,000 slots; 5.2 and later limit the whole
-- stack of a thread to a million.
local SMALL_C_STACK = _VERSION == "Lua 5.1"

--- A number of arguments that a timer callback can be given but that do not fit on the stack
-- when a tick runs inside with_full_stack.
M.TOO_MANY_FOR_FULL_STACK = SMALL_C_STACK and 7990 or 9000

--- Runs fn() with most of the Lua stack in use and returns its first two results. On 5.1 and
-- LuaJIT it fills nothing: there, TOO_MANY_FOR_FULL_STACK arguments alone overflow a C function.
function M.with_full_stack(fn)
  if SMALL_C_STACK then return fn() end
  -- made per call, not kept: a table this big alive for the rest of the run would slow every
  -- collection cycle after it, and some specs count on a cycle landing inside a short window
  local filler = {}
  for i = 1, 99500 do filler[i] = true end
  local unpack = table.unpack or unpack
  local function fill(levels)
    if levels == 0 then return fn() end
    -- no tail calls: each level must keep its arguments on the stack
    local function hold(...)   -- luacheck: ignore 212 (the arguments only take up room)
      local a, b = fill(levels - 1)
      return a, b
    end
    local a, b = hold(unpack(filler))
    return a, b
  end
  return fill(10)
end

--- Runs the Lua source `script` in a new process, with this process's interpreter and the build
-- under test; returns its output (stdout and stderr) and whether it exited with 0. For what
-- could crash or exhaust the process that runs it. `shell_prefix` (e.g. "ulimit -v 100000 &&")
-- goes before the command; the process is killed after `timeout` seconds (default 60).
function M.run_lua_script(script, shell_prefix, timeout)
  local compat = require "compat"
  local path = os.tmpname()
  local file = assert(io.open(path, "w"))
  file:write(script)
  file:close()
  local out, ok = compat.run(("%s LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./%s/?.so;;' "
    .. "timeout %d %s %s"):format(shell_prefix or "", compat.build, timeout or 60, compat.lua, path))
  os.remove(path)
  return out, ok
end

--- Requires luv if it is installed and keeps the module alive for the rest of the run; returns
-- what pcall(require, "luv") returns. Debian's lua-luv 1.44 crashes (SIGSEGV in uv_timer_init)
-- when its module is garbage-collected and then required again in the same Lua state, which
-- busted's per-file insulation brings about. (spec/support/gc.lua pins it too, but only when
-- busted runs with the .busted config.)
function M.pinned_luv()
  local ok, uv = pcall(require, "luv")
  if ok then debug.getregistry()["txaio spec: pinned luv module"] = uv end
  return ok, uv
end

return M
