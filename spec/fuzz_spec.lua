-- The fuzz corpus as a regression suite, and what `make fuzz` found as plain specs.
--
-- Every input in spec/fuzz-corpus/ runs through the interpreter the libFuzzer harness uses
-- (spec/fuzz/ops.lua), in this process and against the ordinary build, with Lua stand-ins for the
-- C embedding API: each must complete with every invariant holding. No clang needed.
local txaio = require "txaio"
local core = require "txaio.core"
local compat = require "compat"
local helpers = require "helpers"
local finalizer = require "finalizer"

local CORPUS = "spec/fuzz-corpus"
local ops = dofile("spec/fuzz/ops.lua")

-- What the harness gives ops.lua, in Lua: a fake clock, the main loop on it (selected), loops with
-- a Lua adapter for env.new_loop, and the core's functions where the harness calls txaio.h.
local function make_env(txaio_api)
  local clock, wake_at = 0, nil
  local env = { txaio = txaio_api or txaio, after_end = "inert" }
  env.clock = function() return clock end
  env.set_clock = function(t) clock = t end
  txaio.use_host { now = function() return clock end, wake = function(d) wake_at = clock + d end }
  env.wake_at = function() return wake_at end
  env.new_loop = function()
    local at
    local loop = txaio.host_loop { now = function() return clock end, wake = function(d) at = clock + d end }
    return loop, function() return at end
  end
  env.tick = function() return txaio.tick() or -1 end
  env.new_future, env.resolve, env.reject = core.create_future, core.resolve, core.reject
  env.is_future = core.is_future
  env.gc = function() collectgarbage() end
  return env
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

local function corpus_files()
  local out, ok = compat.run("ls -1 " .. CORPUS)
  assert(ok, out)
  local files = {}
  for name in out:gmatch("[^\n]+") do files[#files + 1] = name end
  table.sort(files)
  return files
end

-- An object whose finalizer runs `act()` when the collector finalizes it while `window.open` is
-- set, and otherwise re-arms itself for the next cycle: user code that runs at whatever allocation
-- inside a txaio call the collector picks. Tables get __gc from 5.2 on; 5.1 and LuaJIT have
-- newproxy.
local function finalizer_loop(window)
  local mt = {}
  local function arm()
    local newproxy = rawget(_G, "newproxy")
    if _VERSION == "Lua 5.1" and newproxy then
      local p = newproxy(true)
      getmetatable(p).__gc = mt.__gc
      return p
    end
    return setmetatable({}, mt)
  end
  mt.__gc = function()
    if window.done then return end
    if window.open and window.act then
      window.acted = window.acted + 1
      window.act()
      window.act = nil
    end
    arm()
  end
  window.acted = 0
  arm()
end

-- The finalizer of spec/support/finalizer.lua, armed as attempt(window) opens its window, so that
-- the first allocation of the call inside it runs window.act. Returns how often it acted (0 or 1;
-- 0 on Lua 5.2, whose C API checks the collector before allocating, when the call allocates once).
local function with_finalizer_at_open(attempt)
  local state = { acted = 0 }
  local window = setmetatable({}, {
    __index = state,
    __newindex = function(_, key, value)
      state[key] = value
      if key == "open" and value then
        finalizer.arm(function()
          local act = state.act
          if not (state.open and act) then return false end
          state.act = nil
          state.acted = state.acted + 1
          act()
        end)
      end
    end,
  })
  local ok, err = pcall(attempt, window)
  finalizer.disarm()
  assert(ok, err)
  return state.acted
end

-- Runs attempt(window) until the finalizer has acted inside it `n` times (or `tries` run out),
-- with a collector that never pauses, so that it steps inside every call that allocates. Where it
-- lands is up to the collector, and it may never land inside the call (LuaJIT's now and then, 5.4's
-- often inside call_later): then the attempt runs once more with a finalizer armed as its window
-- opens (with_finalizer_at_open). Returns how often a finalizer acted inside the window.
local function with_finalizers_inside(n, tries, attempt)
  local window = {}
  local pause = collectgarbage("setpause", 0)
  local ok, err = pcall(function()
    finalizer_loop(window)
    local i = 0
    while window.acted < n and i < tries do
      i = i + 1
      for _ = 1, i % 13 do local _ = { i } end   -- shifts where the collector's steps fall
      attempt(window)
    end
  end)
  window.done = true
  collectgarbage("setpause", pause)
  assert(ok, err)
  if window.acted > 0 then return window.acted end
  return with_finalizer_at_open(attempt)
end

-- A host loop whose clock returns whatever `t.now` holds.
local function host_with(t)
  local wakes = {}
  local loop = txaio.host_loop {
    now = function() return t.now end,
    wake = function(delay) wakes[#wakes + 1] = delay end,
  }
  return loop, wakes
end

-- Ordinary collector pacing for this file, also in the suite's pause-0 pass: there replaying the
-- corpus alone took over a quarter of an hour. The specs below that need the collector to run
-- at a given allocation set pause 0 themselves, for just that window.
local saved_pause, saved_stepmul
setup(function()
  saved_pause, saved_stepmul = helpers.set_ordinary_gc()
end)
teardown(function()
  collectgarbage("setpause", saved_pause)
  collectgarbage("setstepmul", saved_stepmul)
end)

describe("fuzz regressions", function()
  local previous
  before_each(function() previous = txaio.config.loop end)
  after_each(function() txaio.config.loop = previous end)

  -- An infinite clock made every deadline infinite: the timer never became due, the host was never
  -- asked to wake for it again, or was asked to wait inf - inf (NaN); -inf overflowed the batched
  -- timer's bucket number (undefined behaviour).
  it("refuses a host clock that returns inf or -inf, as it refuses NaN", function()
    for _, bad in ipairs { math.huge, -math.huge } do
      local t = { now = 0 }
      local loop, wakes = host_with(t)
      txaio.config.loop = loop
      local fired = 0
      txaio.call_later(1, function() fired = fired + 1 end)
      t.now = bad
      local name = bad > 0 and "inf" or "-inf"
      for _, call in ipairs {
        function() return txaio.tick() end,
        function() return txaio.call_later(1, print) end,
        function() return txaio.sleep(1) end,
        function() return loop:now() end,
      } do
        local ok, err = pcall(call)
        assert.is_false(ok)
        local want = "txaio: the loop clock now() returned " .. name .. ", expected a number of seconds"
        assert.are.equal(want, tostring(err):sub(-#want))
      end
      -- nothing changed: the loop goes on once the clock is finite again
      assert.are.equal(1, loop:pending())
      t.now = 1
      assert.is_nil(txaio.tick())
      assert.are.equal(1, fired)
      for _, delay in ipairs(wakes) do assert.is_true(delay >= 0) end
    end
  end)

  it("refuses a batched deadline too far from the clock's zero instead of overflowing", function()
    for _, start in ipairs { 1e300, -1e300, 2 ^ 53 / 1000 } do
      local t = { now = 0 }
      local loop = host_with(t)
      txaio.config.loop = loop
      local bt = txaio.make_batched_timer(0.5)
      t.now = start
      local ok, err = pcall(function() return bt:call_later(1, print) end)
      assert.is_false(ok)
      -- (LuaJIT words a method's argument error as 'bad argument #2 to '?'')
      assert.truthy(tostring(err):find("(deadline out of range (2^53 milliseconds or more", 1, true), err)
      assert.are.equal(0, loop:pending())
      -- plain timers take such clocks as they are
      assert.is_true(txaio.call_later(1, print):active())
    end
    -- the largest clocks that fit still fire, on time
    local t = { now = 2 ^ 52 / 1000 }
    txaio.config.loop = host_with(t)
    local bt = txaio.make_batched_timer(0.5)
    local at
    bt:call_later(1, function() at = t.now end)
    t.now = t.now + 1.5
    txaio.tick()
    assert.are.equal(2 ^ 52 / 1000 + 1.5, at)
  end)

  -- A finalizer that completed a future while cancel() or reject() was allocating the failure
  -- (after they had checked the future was pending): they then settled it a second time, so a
  -- callback saw it resolved and result() said it was cancelled. resolve() allocates too on Lua 5.1
  -- and LuaJIT, where its message handler is a new closure: once, that came after the check.
  for _, how in ipairs { "cancel", "reject", "resolve" } do
    it("settles a future once when a finalizer completes it during " .. how .. "()", function()
      txaio.use_host { now = function() return 0 end }
      local wrong = {}
      local acted = with_finalizers_inside(20, 20000, function(window)
        local f = txaio.create_future()
        local ran = {}
        f:add_callbacks(function(v) ran[#ran + 1] = "callback " .. tostring(v) end,
                        function(fail) ran[#ran + 1] = "errback " .. tostring(fail.value) end)
        window.act = function() pcall(txaio.resolve, f, "by a finalizer") end
        window.open = true
        if how == "cancel" then f:cancel("why")
        elseif how == "reject" then pcall(f.reject, f, "rejected")
        else pcall(f.resolve, f, "resolved") end
        window.open, window.act = false, nil
        local ok, r = pcall(f.result, f)
        local state = ok and "callback " .. tostring(r) or "errback " .. tostring(r)
        if #ran ~= 1 or ran[1] ~= state then wrong[#wrong + 1] = table.concat(ran, ", ") .. " / " .. state end
      end)
      if acted == 0 then
        pending("this collector never ran the finalizer inside " .. how .. "(): nothing was tested")
        return
      end
      assert.are.same({}, wrong)
    end)
  end

  -- A finalizer that completed a future while add_callbacks() made the list for its second pair:
  -- the pair was stored on a future that had already run its callbacks, and never ran.
  it("runs a second pair even when a finalizer completes the future during add_callbacks()", function()
    txaio.use_host { now = function() return 0 end }
    local lost = 0
    local acted = with_finalizers_inside(20, 100000, function(window)
      local f = txaio.create_future()
      local second = 0
      f:add_callbacks(function() end)
      window.act = function() pcall(txaio.resolve, f, "by a finalizer") end
      window.open = true
      f:add_callbacks(function() second = second + 1 end)
      window.open, window.act = false, nil
      if f:is_called() and second ~= 1 then lost = lost + 1 end
    end)
    if acted == 0 then
      pending("this collector never ran the finalizer inside add_callbacks(): nothing was tested")
      return
    end
    assert.are.equal(0, lost)
  end)
end)

describe("a finalizer that schedules on a loop during call_later", function()
  local previous
  before_each(function() previous = txaio.config.loop end)
  after_each(function() txaio.config.loop = previous end)

  -- call_later made room for one more timer in the heap, then allocated the timer: a finalizer
  -- run by that allocation scheduled on the same loop and took the room, and the outer call
  -- wrote one pointer past the heap's array. glibc leaves just that much slack after it, so only
  -- a memory checker sees it: make asan and make valgrind run this file too.
  it("keeps the heap within its allocation", function()
    local wrong = {}
    local acted = with_finalizers_inside(20, 20000, function(window)
      local t = 0
      local loop = txaio.host_loop { now = function() return t end }
      txaio.config.loop = loop
      local fired, wanted = 0, 16   -- 15 + the call_later the finalizer runs inside
      local function count() fired = fired + 1 end
      for _ = 1, 15 do txaio.call_later(1, count) end   -- 15 timers: the heap has room for 16
      window.act = function() if pcall(txaio.call_later, 1, count) then wanted = wanted + 1 end end
      window.open = true
      txaio.call_later(1, count)
      window.open, window.act = false, nil
      txaio.call_later(1, count)   -- the heap grows: an entry past its array would be lost now
      wanted = wanted + 1
      t = 2
      loop:tick()
      if fired ~= wanted or loop:pending() ~= 0 then wrong[#wrong + 1] = fired .. " of " .. wanted end
    end)
    if acted == 0 then
      pending("this collector never ran the finalizer inside call_later(): nothing was tested")
      return
    end
    assert.are.same({}, wrong)
  end)
end)

describe("a finalizer that ticks the loop during bt:call_later", function()
  local previous
  before_each(function() previous = txaio.config.loop end)
  after_each(function() txaio.config.loop = previous end)

  -- bt:call_later looked up the bucket, then allocated the call: a finalizer run by that
  -- allocation could tick the loop, fire the bucket (due now) and forget it, and the call went
  -- into a bucket that would never fire again.
  it("never puts a call into a bucket that has fired", function()
    local lost = 0
    local acted = with_finalizers_inside(20, 20000, function(window)
      local t = 1
      txaio.use_host { now = function() return t end }
      local bt = txaio.make_batched_timer(0.5)
      local ran = 0
      bt:call_later(0, function() ran = ran + 1 end)   -- the bucket ending at 1.0: due now
      window.act = function() pcall(txaio.tick) end
      window.open = true
      bt:call_later(0, function() ran = ran + 1 end)   -- the same bucket
      window.open, window.act = false, nil
      t = 3
      txaio.tick()
      txaio.tick()
      if ran ~= 2 then lost = lost + 1 end
    end)
    if acted == 0 then
      pending("this collector never ran the finalizer inside bt:call_later(): nothing was tested")
      return
    end
    assert.are.equal(0, lost)
  end)
end)

describe("a finalizer that ticks the loop during sleep()", function()
  local previous
  before_each(function() previous = txaio.config.loop end)
  after_each(function() txaio.config.loop = previous end)

  -- sleep() scheduled its timer, then made the canceller closure: a finalizer run by that
  -- allocation could tick the loop and resolve a sleep(0), and storing the canceller then
  -- overwrote the resolved value (the two share a slot): result() gave the canceller.
  it("returns a future whose value stays nil", function()
    local wrong = {}
    local acted = with_finalizers_inside(20, 20000, function(window)
      txaio.use_host { now = function() return 0 end }
      window.act = function() pcall(txaio.tick) end
      window.open = true
      local f = txaio.sleep(0)
      window.open, window.act = false, nil
      txaio.tick()
      local ok, v = pcall(f.result, f)
      if not ok or v ~= nil then wrong[#wrong + 1] = tostring(ok) .. ", " .. tostring(v) end
    end)
    if acted == 0 then
      pending("this collector never ran the finalizer inside sleep(): nothing was tested")
      return
    end
    assert.are.same({}, wrong)
  end)
end)

describe("gathers nested in gathers", function()
  local previous
  before_each(function() previous = txaio.config.loop end)
  after_each(function() txaio.config.loop = previous end)

  -- Completing the innermost future settles every enclosing gather recursively, within one C
  -- call, a few more stack slots per level: nothing made room for them, so from a few levels deep
  -- the core wrote past the Lua stack (valgrind: invalid write in lua_getiuservalue; an ASan
  -- CHECK failure in the harness) and at 100 levels the process crashed. Deeper still, the C
  -- stack ran out.
  local function nest(depth, consume)
    local base = txaio.create_future()
    local g = base
    for _ = 1, depth do g = txaio.gather({ g }, consume) end
    return base, g
  end

  for _, depth in ipairs { 10, 100, 20000 } do
    it("resolve " .. depth .. " levels deep", function()
      txaio.use_host { now = function() return 0 end }
      local base, g = nest(depth)
      local got
      g:add_callbacks(function(r) got = r end)
      txaio.resolve(base, "x")
      for _ = 1, depth do
        assert.are.equal(1, got.n)
        got = got[1]
      end
      assert.are.equal("x", got)
    end)

    it("fail " .. depth .. " levels deep when failures are not consumed", function()
      txaio.use_host { now = function() return 0 end }
      local base, g = nest(depth, false)
      local failure
      g:add_callbacks(nil, function(f) failure = f end)
      txaio.reject(base, "boom")
      assert.is_true(txaio.is_failure(failure))
      assert.are.equal("boom", failure.value)
    end)
  end
end)

describe("timer callbacks with many arguments", function()
  local previous
  before_each(function() previous = txaio.config.loop end)
  after_each(function() txaio.config.loop = previous end)

  -- A timer's arguments are pushed on the stack of whatever ticks the loop, without making room
  -- for them: ticked from a coroutine (whose stack starts small), 60 arguments wrote past the Lua
  -- stack (valgrind) and 100 crashed. Same for batched calls.
  it("reach the callback when a coroutine ticks the loop", function()
    txaio.use_host { now = function() return 0 end }
    local args = {}
    for i = 1, 200 do args[i] = i end
    local got = {}
    local function record(...) got[#got + 1] = compat.pack(...) end
    txaio.call_later(0, record, compat.unpack(args))
    local bt = txaio.make_batched_timer(0.001)
    bt:call_later(0, record, compat.unpack(args))
    coroutine.wrap(function() txaio.tick() end)()
    coroutine.wrap(function() txaio.tick() end)()
    assert.are.equal(2, #got)
    for _, call in ipairs(got) do
      assert.are.equal(200, call.n)
      assert.are.equal(200, call[200])
    end
  end)
end)

describe("a host whose wake() runs the loop before returning", function()
  local previous
  before_each(function() previous = txaio.config.loop end)
  after_each(function() txaio.config.loop = previous end)

  -- The wake-up ran the loop (firing the new timer) and then raised: call_later's undo took out
  -- of the heap a timer that was no longer in it, which dropped another pending timer, put
  -- LUA_NOREF on the free list of ROOTS and made a later cancel read past the heap
  -- (heap-buffer-overflow under ASan; a crash at exit without it).
  it("makes call_later raise and leaves the other timers intact", function()
    local clock, mode = 0, "record"
    txaio.use_host { now = function() return clock end,
      wake = function(_, run) if mode == "run, then raise" then run(); error("wake failed") end end }
    local fired, handles = {}, {}
    for i = 1, 5 do handles[i] = txaio.call_later(1 + i, function() fired[#fired + 1] = i end) end
    mode = "run, then raise"
    local ok, err = pcall(txaio.call_later, 0, function() fired[#fired + 1] = "zero" end)
    mode = "record"
    assert.is_false(ok)
    assert.truthy(tostring(err):find("tick() called from inside the loop's wake()", 1, true), err)
    assert.are.equal(5, txaio.config.loop:pending())
    clock = 100
    txaio.tick()
    assert.are.same({ 1, 2, 3, 4, 5 }, fired)
    for i = 1, 5 do assert.is_false(handles[i]:cancel()) end
    assert.are.equal(0, txaio.config.loop:pending())
  end)

  -- bt:call_later made the bucket's timer before adding the call to the bucket; a wake-up that
  -- ran the loop fired the still empty bucket, which forgot itself, and the call never ran.
  it("makes bt:call_later raise instead of losing the call", function()
    local clock = 1
    txaio.use_host { now = function() return clock end,
      wake = function(delay, run) if delay == 0 then run() end end }
    local bt = txaio.make_batched_timer(0.5)
    local ok, err = pcall(function() return bt:call_later(0, print) end)   -- bucket due at 1.0 = now
    assert.is_false(ok)
    assert.truthy(tostring(err):find("tick() called from inside the loop's wake()", 1, true), err)
    assert.are.equal(0, txaio.config.loop:pending())
    local ran = false
    local h = bt:call_later(0.2, function() ran = true end)   -- a later bucket: wake(0.5), no run
    clock = 2
    txaio.tick()
    assert.is_true(ran)
    assert.is_false(h:active())
  end)
end)

-- Plain 5.1 and LuaJIT finalize no tables; the specs below also rely on the order of 5.2 and
-- later, in which finalizers run newest first.
local function needs_table_finalizers()
  if _VERSION ~= "Lua 5.1" then return false end
  pending("needs __gc on tables and the finalization order of Lua 5.2 and later")
  return true
end

describe("a loop collected before a finalizer that still uses it", function()
  -- Finalizers run newest first: an object made before a loop is finalized after it, and may
  -- still reach it. It used to find a scheduler whose heap was freed (and, for a C host, whose
  -- clock data txaio_Free had released: its now() was called after that) and re-grow the heap,
  -- which nothing freed again.
  it("makes every call on that loop raise", function()
    if needs_table_finalizers() then return end
    local results = {}
    do
      local user = setmetatable({}, { __gc = function(self)
        for _, name in ipairs { "call_later", "sleep", "tick" } do
          local ok, err = pcall(self.api[name], 1, print)
          results[name] = ok and "no error" or tostring(err)
        end
        local ok, err = pcall(self.bt.call_later, self.bt, 1, print)
        results.batched = ok and "no error" or tostring(err)
      end })
      local loop = txaio.host_loop { now = function() return 0 end }   -- newer: finalized first
      user.api = txaio.with_config { loop = loop }
      user.bt = user.api.make_batched_timer(1)
    end
    collectgarbage()
    collectgarbage()
    for _, name in ipairs { "call_later", "sleep", "tick", "batched" } do
      assert.truthy(tostring(results[name]):find("this loop was garbage-collected", 1, true),
        name .. ": " .. tostring(results[name]))
    end
  end)
end)

describe("a finalizer that runs before its loop's own", function()
  -- An object made after a loop is finalized before it, and the loop's entry in the weak table
  -- through which cancel finds a timer's loop is gone by then. Cancel took that to mean the loop
  -- was finalized: it returned false and left the timer pending but without its loop, and a tick
  -- of the loop from the same finalizer fired it and read through a NULL pointer (a crash).
  it("cancels a pending timer of that loop, and can tick the loop afterwards", function()
    if needs_table_finalizers() then return end
    local results
    do
      local now = 0
      local loop = txaio.host_loop { now = function() return now end }
      local api = txaio.with_config { loop = loop }
      local fired = {}
      local h = api.call_later(1, function() fired.h = true end)
      local other = api.sleep(2)
      other:add_callbacks(function() fired.other = true end)
      setmetatable({}, { __gc = function()   -- newer than the loop: finalized first
        results = { pending_before = loop:pending(), cancel = h:cancel(), again = h:cancel(),
                    active = h:active(), pending_after = loop:pending() }
        now = 5
        results.tick = pcall(loop.tick, loop)
        results.fired_h, results.fired_other = fired.h or false, fired.other or false
      end })
    end
    collectgarbage()
    collectgarbage()
    assert.are.same({ pending_before = 2, cancel = true, again = false, active = false,
                      pending_after = 1, tick = true, fired_h = false, fired_other = true }, results)
  end)
end)

describe("the fuzz corpus", function()
  local previous
  before_each(function() previous = txaio.config.loop end)
  after_each(function() txaio.config.loop = previous end)

  local files = corpus_files()
  local totals = { ops = 0, callbacks = 0, timers_fired = 0, errors = 0, raised = 0, opcount = {} }

  it("has the hand-made seeds and stays small", function()
    local seeds = 0
    for _, name in ipairs(files) do if name:match("^seed%-") then seeds = seeds + 1 end end
    assert.is_true(seeds >= 10, "seeds: " .. seeds)
    assert.is_true(#files <= 200, #files .. " files in " .. CORPUS)
  end)

  for _, name in ipairs(files) do
    it("replays " .. name .. " with every invariant holding", function()
      local input = read(CORPUS .. "/" .. name)
      local ok, stats = pcall(ops.run, input, make_env())
      assert(ok, stats)
      -- the interpreter's own accounting agrees with itself
      assert.is_true(stats.ops >= 1 and stats.ops <= ops.MAX_OPS)
      assert.is_true(stats.errors <= stats.calls)
      assert.are.equal(stats.raised.callback, stats.reports.callback)
      assert.are.equal(stats.raised.canceller, stats.reports.canceller)
      assert.is_true(stats.budget_left >= 0)
      totals.ops = totals.ops + stats.ops
      totals.callbacks = totals.callbacks + stats.callbacks
      totals.timers_fired = totals.timers_fired + stats.timers_fired
      totals.errors = totals.errors + stats.errors
      totals.raised = totals.raised + stats.raised.callback + stats.raised.canceller
      for op, n in pairs(stats.opcount) do totals.opcount[op] = (totals.opcount[op] or 0) + n end
    end)
  end

  it("exercises every operation, and callbacks, timers and errors, across the corpus", function()
    local missing = {}
    for _, op in ipairs(ops.OPS) do
      if not totals.opcount[op] then missing[#missing + 1] = op end
    end
    assert.are.same({}, missing)
    assert.is_true(totals.callbacks > 0 and totals.timers_fired > 0 and totals.errors > 0 and totals.raised > 0)
  end)

  -- The checker must catch a broken library, or the replays above prove nothing.
  describe("catches a library that", function()
    local function broken(overrides)
      return setmetatable(overrides, { __index = txaio })
    end
    local function violation(api, seed)
      local ok, err = pcall(ops.run, read(CORPUS .. "/seed-" .. seed), make_env(api))
      assert.is_false(ok)
      return tostring(err)
    end

    it("runs a callback twice", function()
      local err = violation(broken {
        add_callbacks = function(f, cb, eb)
          local r = txaio.add_callbacks(f, cb, eb)
          if cb ~= nil then txaio.add_callbacks(f, cb) end
          return r
        end,
      }, "futures")
      assert.truthy(err:find("ran twice", 1, true), err)
    end)

    it("runs a timer before its deadline", function()
      local err = violation(broken {
        call_later = function(delay, fn, ...)
          if type(delay) == "number" then delay = delay / 2 end
          return txaio.call_later(delay, fn, ...)
        end,
      }, "timers")
      assert.truthy(err:find("before its deadline", 1, true), err)
    end)

    it("accepts a delay it must refuse", function()
      local err = violation(broken {
        call_later = function(delay, fn, ...)
          if delay ~= delay then delay = 0 end
          return txaio.call_later(delay, fn, ...)
        end,
      }, "timers")
      assert.truthy(err:find("did not raise", 1, true), err)
    end)

    it("gathers the wrong results", function()
      local err = violation(broken {
        gather = function(list, consume)
          local g = txaio.gather(list, consume)
          local wrong = txaio.create_future()
          g:add_callbacks(function(r) r[1] = "wrong"; txaio.resolve(wrong, r) end,
                          function(e) txaio.reject(wrong, e) end)
          return wrong
        end,
      }, "gather")
      assert.truthy(err:find("gather", 1, true), err)
    end)
  end)
end)
