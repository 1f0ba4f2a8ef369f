-- busted helper (named in .busted, so every run uses it): runs the whole suite under the GC mode
-- named by TXAIO_GC, so that every userdata of the core is collected (and finalized) as early as
-- the collector can manage.
-- Debian's luv crashes when it is required again after being unloaded, and busted unloads
-- modules between spec files: keep one instance alive for the whole run.
local ok, luv = pcall(require, "luv")
if ok then debug.getregistry()["txaio spec: pinned luv module"] = luv end

-- collectgarbage("generational") and ("incremental") exist in 5.4 and, as an experiment, in 5.2;
-- 5.1, LuaJIT and 5.3 only have the incremental collector.
local HAS_MODES = _VERSION == "Lua 5.4" or _VERSION == "Lua 5.2"

-- The interpreter's own pacing, before this file changes it: specs that need ordinary collection
-- inside the stress pass go back to these (spec/support/helpers.lua). They differ by version: the
-- step multiplier is 200 up to 5.3 and 100 on 5.4, and 100 on 5.3 lets garbage outrun the collector.
do
  local pause = collectgarbage("setpause", 200)
  collectgarbage("setpause", pause)
  local stepmul = collectgarbage("setstepmul", 200)
  collectgarbage("setstepmul", stepmul)
  debug.getregistry()["txaio spec: ordinary gc pacing"] = { pause = pause, stepmul = stepmul }
end

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
