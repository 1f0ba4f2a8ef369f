-- busted helper (named in .busted, so every run uses it): runs the whole suite under the GC mode named by TXAIO_GC, so that every userdata
-- of the core is collected (and finalized) as early as the collector can manage.
-- Debian's luv crashes when it is required again after being unloaded, and busted unloads
-- modules between spec files: keep one instance alive for the whole run.
local ok, luv = pcall(require, "luv")
if ok then debug.getregistry()["txaio spec: pinned luv module"] = luv end

-- collectgarbage("generational") and ("incremental") exist in 5.4 and, as an experiment, in 5.2;
-- 5.1, LuaJIT and 5.3 only have the incremental collector.
local HAS_MODES = _VERSION == "Lua 5.4" or _VERSION == "Lua 5.2"

local mode = os.getenv("TXAIO_GC") or "normal"
if mode == "generational" then
  if HAS_MODES then
    collectgarbage("generational")
  else
    io.stderr:write(("spec/support/gc.lua: %s has no generational collector; "
      .. "this pass runs in normal mode\n"):format(_VERSION))
  end
elseif mode == "stress" then
  if HAS_MODES then collectgarbage("incremental") end
  collectgarbage("setpause", 0)
  collectgarbage("setstepmul", 1000)
elseif mode ~= "normal" then
  error("TXAIO_GC must be normal, generational or stress, got " .. mode)
end
