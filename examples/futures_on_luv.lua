-- Futures, callbacks, gather and failures on the luv backend.
-- Run with `make demo` (or: LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/?.so;;"
-- lua5.4 examples/futures_on_luv.lua).
local uv = require "luv"
local txaio = require "txaio"

txaio.use_luv(uv)
local t0 = uv.hrtime()
local function say(fmt, ...)
  print(("[%6.1f ms] " .. fmt):format((uv.hrtime() - t0) / 1e6, ...))
end

-- A "library" function written once against txaio: it works on any loop.
local function fetch(name, delay, fail)
  local f = txaio.create_future()
  txaio.call_later(delay, function()
    if fail then txaio.reject(f, ("could not fetch %s"):format(name))
    else txaio.resolve(f, ("<%s, %d bytes>"):format(name, #name * 100)) end
  end)
  return f
end

say("using_luv = %s", tostring(txaio.using_luv))

-- 1. A callback and an errback.
txaio.add_callbacks(fetch("index.html", 0.03), function(page) say("got %s", page) end,
  function(failure) say("unexpected: %s", txaio.failure_message(failure)) end)

-- 2. A failure: the errback gets a failure object with the error and where it was raised.
txaio.add_callbacks(fetch("secret.txt", 0.02, true), nil, function(failure)
  say("errback: %s", txaio.failure_message(failure))
  say("  raised at %s:%s", failure:traceback()[1].source, failure:traceback()[1].line)
end)

-- 3. gather: wait for several, results in order, failures kept in place.
local all = txaio.gather({ fetch("a.css", 0.05), fetch("b.js", 0.01), fetch("c.png", 0.04, true) })
txaio.add_callbacks(all, function(results)
  for i = 1, results.n do
    local r = results[i]
    say("gather[%d] = %s", i, txaio.is_failure(r) and ("failure: " .. txaio.failure_message(r)) or r)
  end
end)

-- 4. as_future turns a raising function into a failed future.
txaio.add_callbacks(txaio.as_future(function() error({ code = 404 }) end), nil, function(failure)
  say("as_future caught a table error, code %d", failure.value.code)
end)

-- 5. Cancelling a pending future calls its canceller and fails it with CancelledError.
local slow = txaio.sleep(10)
txaio.add_callbacks(slow, nil, function(failure) say("slow: %s", txaio.failure_message(failure)) end)
txaio.call_later(0.06, function() txaio.cancel(slow, "not needed any more") end)

uv.run()   -- returns when no txaio timer is pending: the single luv timer handle is stopped
say("uv.run() returned; %d timers pending", txaio.config.loop:pending())
