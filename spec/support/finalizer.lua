--- Runs code from a finalizer in the middle of a txaio operation. The C core allocates inside many
-- operations; an allocation may run the collector, and the collector may run any __gc metamethod,
-- which may call txaio again while the operation is half done. `arm(action)` makes the next
-- allocation that checks the collector run `action()` from a finalizer; if the action returns
-- false (the moment is not the right one yet), the next finalizer calls it again. `disarm()` says
-- whether it ran to completion and puts the collector back as it was.
local M = {}

local IS_54 = _VERSION == "Lua 5.4"

local pending, ran, finalized = nil, false, 0
local saved

local function on_gc()
  finalized = finalized + 1
  local action = pending
  if action then
    pending = nil
    if action() == false then
      pending = action
    else
      ran = true
    end
  end
end

-- Plain 5.1 and LuaJIT only finalize userdata.
local function make_finalizable()
  if _VERSION == "Lua 5.1" then
    local proxy = newproxy(true)
    getmetatable(proxy).__gc = on_gc
    return proxy
  end
  return setmetatable({}, { __gc = on_gc })
end

function M.arm(action)
  assert(saved == nil, "finalizer.arm: already armed")
  saved = {
    pause = collectgarbage("setpause", 100),
    stepmul = collectgarbage("setstepmul", 200),
  }
  if IS_54 then
    saved.mode = collectgarbage("incremental")
  elseif _VERSION == "Lua 5.2" then
    collectgarbage("incremental")
    saved.mode = os.getenv("TXAIO_GC") == "generational" and "generational" or "incremental"
  end
  collectgarbage("collect")
  collectgarbage("stop")
  -- Garbage that needs finalizing, then steps until the collector has started running those
  -- finalizers: the rest wait for the collector's next step, which the next allocation triggers.
  pending, ran = nil, false
  -- 5.2 runs every waiting finalizer in a step that ends a cycle: then try again with more, so
  -- that some are still waiting
  local made = 250
  repeat
    made = made * 2
    for _ = 1, made do make_finalizable() end
    finalized = 0
    local steps = 0
    repeat
      collectgarbage("step", 0)
      steps = steps + 1
    until finalized > 0 or steps > 1000000
    assert(finalized > 0, "finalizer.arm: the collector ran no finalizer")
  until finalized < made or made > 100000
  assert(finalized < made, "finalizer.arm: the collector ran every finalizer at once")
  if os.getenv("TXAIO_FINALIZER_DEBUG") then
    io.stderr:write(("finalizer.arm: %d of %d finalized while arming\n"):format(finalized, made))
  end
  -- the smallest step size: the very next allocation then runs a step of a few finalizers
  if IS_54 then collectgarbage("incremental", 0, 0, 1) end
  pending = action
  collectgarbage("restart")
  -- (5.2's C API checks the collector before allocating rather than after: there the step comes
  -- at the second allocation inside a C function, not the first)
end

--- True when the action ran. Also clears an action that has not run yet.
function M.disarm()
  local did = ran
  pending, ran = nil, false
  if saved then
    collectgarbage("setpause", saved.pause)
    collectgarbage("setstepmul", saved.stepmul)
    if IS_54 then collectgarbage("incremental", 0, 0, 13) end   -- 13: 5.4's default step size
    if saved.mode then collectgarbage(saved.mode) end
    saved = nil
  end
  return did
end

return M
