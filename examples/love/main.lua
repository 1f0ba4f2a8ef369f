-- txaio in a game engine: LÖVE 11 (LuaJIT) drives a host loop with txaio.tick() once a frame.
-- Run from the repository root:  love examples/love   (headless: see conf.lua)
-- Timers, batched timers, futures, gather and coroutines (spawn/await) run for a few hundred
-- frames; the game quits with status 0 when every check passed, non-zero otherwise.

-- txaio's Lua layer and its LuaJIT build live in the repository, two levels up from this game
-- (or wherever TXAIO_ROOT points).
local root = os.getenv("TXAIO_ROOT") or (love.filesystem.getSource() .. "/../..")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/luajit/?.so;" .. package.cpath

local txaio = require "txaio"

local MIN_FRAMES, MAX_FRAMES, MAX_SECONDS = 300, 20000, 10

local frame = 0
local started
local checks, failures = {}, {}
local expected = {}   -- name -> true while outstanding

local function expect(name) expected[name] = true end
local function pass(name)
  expected[name] = nil
  checks[#checks + 1] = name
end
local function fail(name, why)
  expected[name] = nil
  failures[#failures + 1] = name .. ": " .. tostring(why)
end
local function check(name, cond, why)
  if cond then pass(name) else fail(name, why or "check failed") end
end

local function now() return love.timer.getTime() end

-- An error that escapes anywhere in LÖVE ends the game with status 1, printing the error.
function love.errorhandler(msg)
  io.stderr:write("love: error: ", tostring(msg), "\n", debug.traceback("", 2), "\n")
  io.stderr:flush()
  os.exit(1)
end

function love.load()
  -- the engine's frame loop is the host loop: its clock, and a tick() per frame (love.update)
  txaio.use_host { now = love.timer.getTime }
  started = now()

  -- call_later: in deadline order, never early, never before the frame after it was scheduled
  expect("call_later order")
  local fired = {}
  for i, delay in ipairs { 0.15, 0.05, 0.10, 0.05, 0 } do
    local deadline = now() + delay
    txaio.call_later(delay, function()
      if now() < deadline then fail("call_later order", "timer " .. i .. " fired early") end
      fired[#fired + 1] = i
      if #fired == 5 then
        local order = table.concat(fired, ",")
        check("call_later order", order == "5,2,4,3,1", "order " .. order)
      end
    end)
  end

  -- a zero-delay timer scheduled by a timer runs on the next tick (frame), not in the same one
  expect("delay 0 from a timer runs next frame")
  txaio.call_later(0.02, function()
    local at = frame
    txaio.call_later(0, function()
      check("delay 0 from a timer runs next frame", frame > at, ("frames %d -> %d"):format(at, frame))
    end)
  end)

  -- cancelled timers never fire
  local h = txaio.call_later(0.05, function() fail("cancel", "a cancelled timer fired") end)
  check("cancel", h:active() and h:cancel() == true and not h:active() and h:cancel() == false)

  -- batched timer: 300 calls, never early, at most one bucket late (plus a frame or two)
  expect("batched timer")
  local bt = txaio.make_batched_timer(0.05, 20)
  local n, bad, worst = 0, 0, 0
  for i = 1, 300 do
    local delay = (i % 30) / 100
    local deadline = now() + delay
    bt:call_later(delay, function()
      n = n + 1
      local late = now() - deadline
      if late < 0 then bad = bad + 1 end
      if late > worst then worst = late end
      if n == 300 then
        check("batched timer", bad == 0 and worst < 0.05 + 0.05,
          ("%d early, worst %.3f s late"):format(bad, worst))
      end
    end)
  end

  -- futures resolved and rejected by timers, gathered
  expect("gather")
  local function later(delay, value, rejected)
    local f = txaio.create_future()
    txaio.call_later(delay, rejected and txaio.reject or txaio.resolve, f, value)
    return f
  end
  txaio.add_callbacks(txaio.gather { later(0.03, "a"), later(0.01, "b"), later(0.02, "oops", true) },
    function(list)
      check("gather", list.n == 3 and list[1] == "a" and list[2] == "b" and txaio.is_failure(list[3])
        and list[3].value == "oops", "gathered " .. tostring(list[1]) .. "," .. tostring(list[2]))
    end,
    function(f) fail("gather", txaio.failure_message(f)) end)

  -- coroutines: await timers across frames, catch a rejection, nest spawns
  expect("spawn/await")
  local first_frame = frame
  local task = txaio.spawn(function(x)
    txaio.await(txaio.sleep(0.1))
    local v = txaio.await(later(0.02, x * 2))
    local ok, err = pcall(txaio.await, later(0.01, "nope", true))
    local inner = txaio.await(txaio.spawn(function()
      txaio.await(txaio.sleep(0.01))
      return "inner"
    end))
    return { v = v, caught = not ok and err, inner = inner, frames = frame - first_frame }
  end, 21)
  txaio.add_callbacks(task, function(r)
    check("spawn/await", r.v == 42 and r.caught == "nope" and r.inner == "inner" and r.frames > 10,
      ("v=%s caught=%s inner=%s frames=%s"):format(tostring(r.v), tostring(r.caught),
        tostring(r.inner), tostring(r.frames)))
  end, function(f) fail("spawn/await", txaio.failure_format_traceback(f)) end)

  -- a coroutine that raises: its future fails with the error and a traceback into this file
  expect("spawn failure")
  txaio.add_callbacks(txaio.spawn(function()
    txaio.await(txaio.sleep(0.02))
    error("kaboom")
  end), function() fail("spawn failure", "did not fail") end, function(f)
    local top = txaio.failure_traceback(f)[1]
    check("spawn failure", txaio.failure_message(f):find("kaboom", 1, true)
      and top and tostring(top.source):find("main.lua", 1, true), txaio.failure_message(f))
  end)

  -- an error in a callback is contained (reported through the logger), later callbacks still run
  expect("callback errors contained")
  local reported = 0
  local function observer(ev)
    if ev.log_level == "error" then reported = reported + 1 end
  end
  txaio.add_log_observer(observer)
  local f = txaio.create_future()
  local second
  txaio.add_callbacks(f, function() error("callback exploded") end)
  txaio.add_callbacks(f, function(v) second = v end)
  txaio.call_later(0.03, function()
    txaio.resolve(f, "v")
    txaio.remove_log_observer(observer)
    check("callback errors contained", second == "v" and reported == 1,
      ("second=%s reported=%d"):format(tostring(second), reported))
  end)
end

function love.update()
  frame = frame + 1
  -- lets the test suite check that an uncaught error ends the game with status 1
  if frame == 5 and os.getenv("TXAIO_LOVE_RAISE") then error("raised on purpose") end
  txaio.tick()
  local elapsed = now() - started
  if next(expected) == nil and frame >= MIN_FRAMES then
    if #failures == 0 then
      print(("love: %d checks passed in %d frames (%.2f s): %s"):format(#checks, frame, elapsed,
        table.concat(checks, "; ")))
      love.event.quit(0)
    else
      print("love: FAILED: " .. table.concat(failures, "; "))
      love.event.quit(1)
    end
  elseif frame >= MAX_FRAMES or elapsed > MAX_SECONDS then
    local left = {}
    for name in pairs(expected) do left[#left + 1] = name end
    print("love: FAILED: timed out after " .. frame .. " frames; outstanding: "
      .. table.concat(left, ", ") .. (#failures > 0 and "; " .. table.concat(failures, "; ") or ""))
    love.event.quit(2)
  end
end
