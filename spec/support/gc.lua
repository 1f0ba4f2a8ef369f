-- busted helper: runs the whole suite under the GC mode named by TXAIO_GC, so that every userdata
-- of the core is collected (and finalized) as early as the collector can manage.
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
