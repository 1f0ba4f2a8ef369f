-- The game script the C host runs: timers, a future from the engine, gather and a failure.
local txaio = require "txaio"

local function say(fmt, ...)
  print(("[lua]    t=%.3f " .. fmt):format(txaio.config.loop:now(), ...))
end

say("using_host=%s", tostring(txaio.using_host))

txaio.call_later(0.5, function() say("half a second passed") end)
txaio.call_later(0.1, function() say("a tenth of a second passed") end)

local asset = engine.load_asset("hero.png")
local ready = txaio.sleep(0.25)
txaio.add_callbacks(asset, function(size) say("hero.png is %d bytes", size) end)

local bad = txaio.create_future()
txaio.call_later(0.3, function() txaio.reject(bad, "level2.map is corrupt") end)

txaio.add_callbacks(txaio.gather({ asset, ready, bad }), function(results)
  say("gather: asset=%d, sleep=%s, map=%s", results[1], tostring(results[2]),
    txaio.failure_message(results[3]))
  txaio.call_later(0.3, function()
    say("all done")
    done = true   -- read by the engine's frame loop
  end)
end)
