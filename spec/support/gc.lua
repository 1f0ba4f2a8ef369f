-- busted helper (named in .busted, so every run uses it): runs the whole suite under the GC mode named by TXAIO_GC, so that every userdata
-- of the core is collected (and finalized) as early as the collector can manage.
-- Debian's luv crashes when it is required again after being unloaded, and busted unloads
-- modules between spec files: keep one instance alive for the whole run.
local ok, luv = pcall(require, "luv")
if ok then debug.getregistry()["txaio spec: pinned luv module"] = luv end

local mode = os.getenv("TXAIO_GC") or "normal"
if mode == "generational" then
  collectgarbage("generational")
elseif mode == "stress" then
  collectgarbage("incremental")
  collectgarbage("setpause", 0)
  collectgarbage("setstepmul", 1000)
elseif mode ~= "normal" then
  error("TXAIO_GC must be normal, generational or stress, got " .. mode)
end
