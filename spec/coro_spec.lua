-- Coroutines over futures: CONTRACT.md section 6 (txaio.spawn and txaio.await).
--
-- The same set of tests runs unchanged on three loops: a testutil.Clock, a host loop whose time is a
-- plain variable that the driver moves (calling txaio.tick() each step), and luv's real loop. Each
-- backend has a small driver whose run_until(pred, max_seconds) advances time until pred() holds.
-- Nothing here raises inside a luv callback (luv's handler would end the process): callbacks only
-- record, and the assertions come afterwards.
local txaio = require "txaio"
local compat = require "compat"
local pack = compat.pack
local helpers = require "helpers"
local error_of, assert_contains = helpers.error_of, helpers.assert_contains
local with_ordinary_gc = helpers.with_ordinary_gc

-- For the specs that await a pending future under pcall: plain Lua 5.1 (not LuaJIT) cannot
-- yield across pcall, so they cannot work there.
local function needs_yield_across_pcall()
  if compat.plain51 then pending("plain Lua 5.1 cannot yield across pcall") end
end

local has_luv, uv = helpers.pinned_luv()

local STEP = 0.001          -- simulated seconds per driver step
local LUV_GUARD = 5         -- real seconds after which a luv run_until gives up

-- Watches future `f`: returns a function that reports ("pending") or ("resolved", value) or
-- ("failed", failure). Adding the errback marks a failure as handled.
local function watch(f)
  return helpers.watch(f, "pending")
end

-- The value `f` resolved with; fails the test if `f` is pending or failed.
local function value_of(f)
  local state, value = watch(f)()
  assert.equal("resolved", state,
    state == "failed" and txaio.failure_format_traceback(value) or "future is still pending")
  return value
end

-- The failure `f` failed with; fails the test if `f` is pending or resolved.
local function failure_of(f)
  local state, value = watch(f)()
  assert.equal("failed", state)
  assert.is_true(txaio.is_failure(value))
  return value
end

local function is_cancelled_error(v)
  return getmetatable(v) == txaio.CancelledError
end

-- Drivers: setup() selects a fresh loop; advance() moves time one step; now() reads the loop's
-- time; budget(max_seconds) says how long run_until may go on.
local drivers = {}

drivers.clock = function()
  local clock
  return {
    setup = function() clock = helpers.use_clock() end,
    advance = function() clock:advance(STEP) end,
    simulated = true,
  }
end

drivers.host = function()
  local t
  return {
    setup = function()
      t = 0
      txaio.use_host{ now = function() return t end }
    end,
    advance = function()
      t = t + STEP
      txaio.tick()
    end,
    simulated = true,
  }
end

drivers.luv = function()
  local ticker
  return {
    setup = function()
      txaio.use_luv(uv)
    end,
    -- One uv.run("once") iteration; a repeating ticker keeps any single iteration short, even
    -- when the next txaio deadline is far away or nothing else is active.
    advance = function()
      if not ticker then
        ticker = uv.new_timer()
        ticker:start(5, 5, function() end)
      end
      uv.run("once")
    end,
    -- Closes the ticker so that no handle of this spec outlives a run_until.
    finish = function()
      if ticker then
        ticker:close()
        ticker = nil
        uv.run("nowait")   -- runs the close callback
      end
    end,
    simulated = false,
  }
end

local function elapsed_since(start) return (uv.hrtime() - start) / 1e9 end

for _, backend in ipairs{ "clock", "host", "luv" } do
  describe("on " .. backend, function()
    local driver = drivers[backend]()

    -- Advances time until pred() is true; fails the test if it is not within `max_seconds` of
    -- simulated time (clock, host) or LUV_GUARD seconds of real time (luv).
    local function run_until(pred, max_seconds)
      max_seconds = max_seconds or 1
      if driver.simulated then
        local steps = math.ceil(max_seconds / STEP)
        for _ = 1, steps do
          if pred() then break end
          driver.advance()
        end
      else
        local start = uv.hrtime()
        while not pred() and elapsed_since(start) < LUV_GUARD do driver.advance() end
        driver.finish()
      end
      assert.is_true(pred() and true or false,
        ("condition not reached within %s s on %s"):format(
          driver.simulated and max_seconds or LUV_GUARD, backend))
    end

    -- Lets `seconds` of (simulated or real) time pass.
    local function run_for(seconds)
      local start = txaio.config.loop:now()
      run_until(function() return txaio.config.loop:now() - start >= seconds end, seconds * 2)
    end

    local reports, restore_handler

    before_each(function()
      math.randomseed(4242)
      if backend == "luv" and not has_luv then
        pending("luv is not installed")
        return
      end
      driver.setup()
      reports, restore_handler = helpers.record_reports()
    end)

    after_each(function()
      if restore_handler then restore_handler() end
      restore_handler = nil
    end)

    describe("txaio.spawn", function()
      it("runs the function at once, in a new coroutine, before spawn returns", function()
        local log = {}
        local outer = coroutine.running()
        local inner, inner_is_main
        local f = txaio.spawn(function()
          log[#log + 1] = "body"
          inner, inner_is_main = coroutine.running()
        end)
        log[#log + 1] = "returned"
        assert.same({ "body", "returned" }, log)
        assert.is_true(txaio.is_future(f))
        assert.is_thread(inner)
        -- 5.1's coroutine.running() returns no "is main" flag (and nil on the main thread)
        if _VERSION ~= "Lua 5.1" then assert.is_false(inner_is_main) end
        assert.are_not.equal(outer, inner)
      end)

      it("passes every argument to the function, nils included", function()
        local got
        txaio.spawn(function(...) got = pack(...) end, "a", nil, 3, nil)
        assert.equal(4, got.n)
        assert.equal("a", got[1])
        assert.is_nil(got[2])
        assert.equal(3, got[3])
        assert.is_nil(got[4])
      end)

      it("returns a future resolved with the function's first return value only", function()
        local got
        local f = txaio.spawn(function(a, b) return a + b, "second" end, 40, 2)
        txaio.add_callbacks(f, function(...) got = pack(...) end, nil)
        assert.equal(1, got.n)
        assert.equal(42, got[1])
      end)

      it("returns a future resolved with nil when the function returns nothing", function()
        local f = txaio.spawn(function() end)
        assert.is_true(txaio.is_called(f))
        assert.is_nil(value_of(f))
      end)

      it("accepts a callable table", function()
        local callable = setmetatable({}, { __call = function(_, x) return x * 2 end })
        assert.equal(10, value_of(txaio.spawn(callable, 5)))
      end)

      it("fails the future with the raised value and the traceback of the raising line", function()
        local line
        local boom = setmetatable({}, { __name = "Boom", __tostring = function() return "boom!" end })
        local f = txaio.spawn(function()
          line = debug.getinfo(1, "l").currentline; error(boom)
        end)
        local fl = failure_of(f)
        assert.is_true(rawequal(boom, fl.value))
        assert_contains(txaio.failure_format_traceback(fl), "coro_spec.lua:" .. line .. ":")
      end)

      it("keeps the traceback of a raise that happens after an await", function()
        local line
        local f = txaio.spawn(function()
          txaio.await(txaio.sleep(0.01))
          line = debug.getinfo(1, "l").currentline; error("late failure")
        end)
        local is = watch(f)
        run_until(function() return is() ~= "pending" end)
        local state, fl = is()
        assert.equal("failed", state)
        assert_contains(tostring(fl.value), "late failure")
        assert_contains(txaio.failure_format_traceback(fl), "coro_spec.lua:" .. line .. ":")
      end)

      it("rejects a first argument that is not callable with 'bad argument #1'", function()
        local err = error_of(txaio.spawn, 42)
        assert_contains(err, "bad argument #1")
        assert_contains(err, "spawn")
        assert_contains(error_of(txaio.spawn), "bad argument #1")
        assert_contains(error_of(txaio.spawn, {}), "bad argument #1")
      end)

      it("fails the future when the function yields outside txaio.await", function()
        local after = false
        local f = txaio.spawn(function()
          coroutine.yield("sneaky")
          after = true
        end)
        local fl = failure_of(f)
        assert_contains(tostring(fl.value), "yielded outside txaio.await")
        assert.is_false(after)
      end)

      it("fails the future when the function yields outside txaio.await after an await", function()
        local f = txaio.spawn(function()
          txaio.await(txaio.sleep(0.01))
          coroutine.yield()
        end)
        local is = watch(f)
        run_until(function() return is() ~= "pending" end)
        local state, fl = is()
        assert.equal("failed", state)
        assert_contains(tostring(fl.value), "yielded outside txaio.await")
      end)

      it("runs spawns nested inside spawns, each at once, and combines their results", function()
        local log = {}
        local f = txaio.spawn(function()
          log[#log + 1] = "outer start"
          local middle = txaio.spawn(function()
            log[#log + 1] = "middle start"
            local inner = txaio.spawn(function(x)
              log[#log + 1] = "inner start"
              txaio.await(txaio.sleep(0.02))
              log[#log + 1] = "inner end"
              return x + 1
            end, 1)
            log[#log + 1] = "middle spawned inner"
            local v = txaio.await(inner)
            txaio.await(txaio.sleep(0.01))
            log[#log + 1] = "middle end"
            return v * 10
          end)
          log[#log + 1] = "outer spawned middle"
          return txaio.await(middle) + 1
        end)
        assert.same({ "outer start", "middle start", "inner start", "middle spawned inner",
          "outer spawned middle" }, log)
        local is = watch(f)
        run_until(function() return is() ~= "pending" end)
        local state, value = is()
        assert.equal("resolved", state)
        assert.equal(21, value)
        assert.same({ "outer start", "middle start", "inner start", "middle spawned inner",
          "outer spawned middle", "inner end", "middle end" }, log)
      end)

      it("starts a coroutine from inside a timer callback", function()
        local f, ran_in_timer
        local in_timer = false
        -- the coroutine waits for a future the test completes, not for a sleep: under the stress
        -- collector a slow timer callback can outlast a short sleep within one loop iteration
        local gate = txaio.create_future()
        txaio.call_later(0.01, function()
          in_timer = true
          f = txaio.spawn(function(tag)
            ran_in_timer = in_timer   -- the body runs at once, still inside the timer callback
            return tag .. " " .. txaio.await(gate)
          end, "timer")
          in_timer = false
        end)
        run_until(function() return f ~= nil end)
        assert.is_true(ran_in_timer)
        local is = watch(f)
        assert.equal("pending", (is()))
        txaio.resolve(gate, "done")
        local state, value = is()
        assert.equal("resolved", state)
        assert.equal("timer done", value)
      end)

      it("runs 10,000 concurrent sleeping coroutines and gathers all their results", function()
        with_ordinary_gc(function()
          local n = 10000
          local loop = txaio.config.loop
          local started, finished, early = 0, 0, 0
          local futures = {}
          for i = 1, n do
            futures[i] = txaio.spawn(function(index, delay)
              started = started + 1
              local t0 = loop:now()
              txaio.await(txaio.sleep(delay))
              if loop:now() - t0 < delay - 1e-6 then early = early + 1 end
              finished = finished + 1
              return index
            end, i, math.random() * 0.05)
          end
          assert.equal(n, started)
          assert.equal(0, finished)   -- all of them are suspended at the same time
          local is = watch(txaio.gather(futures, false))
          run_until(function() return is() ~= "pending" end, 1)
          local state, results = is()
          assert.equal("resolved", state,
            state == "failed" and txaio.failure_format_traceback(results) or nil)
          assert.equal(n, finished)
          assert.equal(0, early)
          assert.equal(n, results.n)
          local wrong = 0
          for i = 1, n do
            if results[i] ~= i then wrong = wrong + 1 end
          end
          assert.equal(0, wrong)
        end)
      end)

      it("gathers spawned futures, a failed one giving its own failure", function()
        local line
        local a = txaio.spawn(function()
          txaio.await(txaio.sleep(0.03))
          return "a"
        end)
        local b = txaio.spawn(function()
          txaio.await(txaio.sleep(0.01))
          line = debug.getinfo(1, "l").currentline; error({ code = "b" })
        end)
        local c = txaio.spawn(function() return "c" end)
        local b_failure
        txaio.add_callbacks(b, nil, function(fl) b_failure = fl end)
        local is = watch(txaio.gather({ a, b, c }))
        run_until(function() return is() ~= "pending" end)
        local state, results = is()
        assert.equal("resolved", state)
        assert.equal(3, results.n)
        assert.equal("a", results[1])
        assert.is_true(txaio.is_failure(results[2]))
        assert.is_true(rawequal(b_failure, results[2]))   -- gather hands on b's own failure
        assert.equal("b", results[2].value.code)
        assert_contains(txaio.failure_format_traceback(results[2]), "coro_spec.lua:" .. line .. ":")
        assert.equal("c", results[3])
      end)

      it("awaits a gather of spawned futures from inside another spawn", function()
        local f = txaio.spawn(function()
          local children = {}
          for i = 1, 5 do
            children[i] = txaio.spawn(function()
              txaio.await(txaio.sleep(0.01 * (6 - i)))
              return i * i
            end)
          end
          local results = txaio.await(txaio.gather(children, false))
          local sum = 0
          for i = 1, results.n do sum = sum + results[i] end
          return sum
        end)
        local is = watch(f)
        run_until(function() return is() ~= "pending" end)
        local state, value = is()
        assert.equal("resolved", state)
        assert.equal(1 + 4 + 9 + 16 + 25, value)
      end)
    end)

    describe("txaio.await", function()
      it("suspends the coroutine until the future is resolved, then returns its value", function()
        local f = txaio.create_future()
        local after = false
        local s = txaio.spawn(function()
          local v = txaio.await(f)
          after = true
          return v * 2
        end)
        assert.is_false(after)
        assert.is_false(txaio.is_called(s))
        txaio.resolve(f, 21)
        assert.is_true(after)
        assert.equal(42, value_of(s))
      end)

      it("resumes after a timer-driven future completes", function()
        local t0, t1
        local loop = txaio.config.loop
        local s = txaio.spawn(function()
          t0 = loop:now()
          txaio.await(txaio.sleep(0.05))
          t1 = loop:now()
          return "slept"
        end)
        local is = watch(s)
        assert.equal("pending", (is()))
        run_until(function() return is() ~= "pending" end)
        assert.equal("slept", select(2, is()))
        assert.is_true(t1 - t0 >= 0.05 - 1e-6, ("woke after %.4f s"):format(t1 - t0))
      end)

      it("raises the failure's value when the awaited future fails", function()
        needs_yield_across_pcall()
        local f = txaio.create_future()
        local err_value = { reason = "nope" }
        local got
        local s = txaio.spawn(function()
          got = pack(pcall(txaio.await, f))
          return "caught"
        end)
        txaio.reject(f, err_value)
        assert.equal(2, got.n)
        assert.is_false(got[1])
        assert.is_true(rawequal(err_value, got[2]))
        assert.equal("caught", value_of(s))
      end)

      it("awaits one future after another in the same coroutine, a failure among them", function()
        needs_yield_across_pcall()
        local fs = { txaio.create_future(), txaio.create_future(), txaio.create_future() }
        local got = {}
        local s = txaio.spawn(function()
          for i = 1, 3 do got[i] = pack(pcall(txaio.await, fs[i])) end
          return "all three"
        end)
        txaio.resolve(fs[1], "one")
        txaio.reject(fs[2], "two failed")
        assert.is_false(txaio.is_called(s))
        txaio.resolve(fs[3], "three")
        assert.same({ n = 2, true, "one" }, got[1])
        assert.same({ n = 2, false, "two failed" }, got[2])
        assert.same({ n = 2, true, "three" }, got[3])
        assert.equal("all three", value_of(s))
      end)

      it("keeps a waiting coroutine while its future is held, and lets it go after", function()
        local held = setmetatable({}, { __mode = "v" })
        local never = txaio.create_future()
        txaio.spawn(function()
          held[1] = coroutine.running()
          txaio.await(never)
        end)
        collectgarbage(); collectgarbage()
        assert.is_not_nil(held[1], "collected while the future it awaits is still held")
        never = nil   -- luacheck: ignore 311 (the point: nothing holds the future any more)
        collectgarbage(); collectgarbage()
        assert.is_nil(held[1])
      end)

      it("lets pcall around an await of a sleeping coroutine catch its error", function()
        needs_yield_across_pcall()
        local caught
        local s = txaio.spawn(function()
          local failing = txaio.spawn(function()
            txaio.await(txaio.sleep(0.02))
            error("inner trouble", 0)
          end)
          local ok, err = pcall(txaio.await, failing)
          caught = { ok = ok, err = err }
          local ok2, v = pcall(txaio.await, txaio.spawn(function()
            txaio.await(txaio.sleep(0.01))
            return "fine"
          end))
          return ok2 and v
        end)
        local is = watch(s)
        run_until(function() return is() ~= "pending" end)
        assert.is_false(caught.ok)
        assert.equal("inner trouble", caught.err)
        assert.equal("fine", select(2, is()))
      end)

      it("hands on the innermost failure through three levels of spawn and await", function()
        local line, middle_line, outer_line
        local boom = { what = "deep" }
        local inner_failure, middle_failure
        local outer = txaio.spawn(function()
          local middle = txaio.spawn(function()
            local inner = txaio.spawn(function()
              txaio.await(txaio.sleep(0.01))
              line = debug.getinfo(1, "l").currentline; error(boom)
            end)
            txaio.add_callbacks(inner, nil, function(fl) inner_failure = fl end)
            middle_line = debug.getinfo(1, "l").currentline; txaio.await(inner)
            return "not reached"
          end)
          txaio.add_callbacks(middle, nil, function(fl) middle_failure = fl end)
          txaio.await(txaio.sleep(0.005))
          outer_line = debug.getinfo(1, "l").currentline; local v = txaio.await(middle)
          return v
        end)
        local is = watch(outer)
        run_until(function() return is() ~= "pending" end)
        local state, outer_failure = is()
        assert.equal("failed", state)
        for _, fl in ipairs { inner_failure, middle_failure, outer_failure } do
          assert.is_true(txaio.is_failure(fl))
          assert.is_true(rawequal(boom, fl.value))
          -- the innermost traceback, the very same frames, at every level
          assert.is_true(rawequal(inner_failure:traceback(), fl:traceback()))
          assert_contains(txaio.failure_format_traceback(fl), "coro_spec.lua:" .. line .. ":")
        end
        -- each coroutine the failure left adds the line of its await, innermost first
        assert.equal(0, #inner_failure:await_chain())
        local chain = outer_failure:await_chain()
        assert.equal(2, #chain)
        assert.equal(middle_line, chain[1].line)
        assert.equal(outer_line, chain[2].line)
        assert_contains(chain[1].source, "coro_spec.lua")
        assert.equal(1, #middle_failure:await_chain())
        assert.equal(middle_line, middle_failure:await_chain()[1].line)
        local text = txaio.failure_format_traceback(outer_failure)
        local at = text:find("\nawaited at:\n", 1, true)
        assert.truthy(at, text)
        local after = text:sub(at)
        local m = after:find("coro_spec.lua:" .. middle_line .. ":", 1, true)
        local o = after:find("coro_spec.lua:" .. outer_line .. ":", 1, true)
        assert.truthy(m and o and m < o, text)
      end)

      it("names the coroutine's function in the chain when it tail-called await", function()
        local defined
        local inner = txaio.spawn(function()
          txaio.await(txaio.sleep(0.01))
          error("tail", 0)
        end)
        local body = function() return txaio.await(inner) end
        defined = debug.getinfo(body, "S").linedefined
        local outer = txaio.spawn(body)
        txaio.add_callbacks(inner, nil, function() end)
        local is = watch(outer)
        run_until(function() return is() ~= "pending" end)
        local state, fl = is()
        assert.equal("failed", state)
        local chain = fl:await_chain()
        assert.equal(1, #chain)
        assert.is_nil(chain[1].line)
        assert.equal(defined, chain[1].linedefined)
        assert_contains(txaio.failure_format_traceback(fl),
          "coro_spec.lua: in function <" .. chain[1].source .. ":" .. defined .. ">")
      end)

      it("names await itself in the chain when spawn runs txaio.await directly", function()
        -- no line of the coroutine's own is on the stack, and txaio's internal body must not
        -- stand in for one (on plain Lua 5.1 it is a Lua frame right above await)
        local f = txaio.create_future()
        local s = txaio.spawn(txaio.await, f)
        txaio.reject(f, "direct")
        local fl = failure_of(s)
        local chain = fl:await_chain()
        assert.equal(1, #chain)
        assert.is_nil(chain[1].line)
        assert.equal(debug.getinfo(txaio.await, "S").linedefined, chain[1].linedefined)
      end)

      it("does not let callers change the chain another failure shares", function()
        local inner = txaio.spawn(function()
          txaio.await(txaio.sleep(0.01))
          error("shared", 0)
        end)
        local mid = txaio.spawn(function() local v = txaio.await(inner) return v end)
        local outer = txaio.spawn(function() local v = txaio.await(mid) return v end)
        local mid_is, outer_is = watch(mid), watch(outer)
        run_until(function() return outer_is() ~= "pending" end)
        local _, mid_failure = mid_is()
        local _, outer_failure = outer_is()
        mid_failure:await_chain()[1] = "scribbled"
        table.insert(mid_failure:await_chain(), "more")
        assert.equal(1, #mid_failure:await_chain())
        assert.is_table(mid_failure:await_chain()[1])
        assert.equal(2, #outer_failure:await_chain())
      end)

      it("keeps the failure's value and traceback when a coroutine catches the error and raises it again", function()
        needs_yield_across_pcall()
        local line, reraise_line
        local inner_failure
        local outer = txaio.spawn(function()
          local inner = txaio.spawn(function()
            txaio.await(txaio.sleep(0.01))
            line = debug.getinfo(1, "l").currentline; error({ rethrown = true })
          end)
          txaio.add_callbacks(inner, nil, function(fl) inner_failure = fl end)
          local ok, err = pcall(txaio.await, inner)
          assert(not ok)
          reraise_line = debug.getinfo(1, "l").currentline; error(err, 0)
        end)
        local is = watch(outer)
        run_until(function() return is() ~= "pending" end)
        local state, fl = is()
        assert.equal("failed", state)
        assert.is_true(rawequal(inner_failure.value, fl.value))
        assert.is_true(rawequal(inner_failure:traceback(), fl:traceback()))
        assert_contains(txaio.failure_format_traceback(fl), "coro_spec.lua:" .. line .. ":")
        -- the chain shows where the value left the coroutine: the line that raised it again
        assert.equal(reraise_line, fl:await_chain()[1].line)
      end)

      it("returns values that are not futures unchanged", function()
        local t = {}
        local got
        local s = txaio.spawn(function()
          got = pack(txaio.await(42), txaio.await("x"), txaio.await(t), txaio.await(nil),
            txaio.await(false))
          return "done"
        end)
        assert.equal("done", value_of(s))
        assert.equal(5, got.n)
        assert.equal(42, got[1])
        assert.equal("x", got[2])
        assert.is_true(rawequal(t, got[3]))
        assert.is_nil(got[4])
        assert.is_false(got[5])
      end)

      it("does not yield when the future has already been resolved", function()
        local counter = 0
        local s = txaio.spawn(function()
          local v = txaio.await(txaio.create_future_success("ready"))
          counter = counter + 1
          return v
        end)
        assert.equal(1, counter)   -- the code after await ran before spawn returned
        assert.equal("ready", value_of(s))
      end)

      it("raises at once when the future has already failed", function()
        local counter = 0
        local got
        local s = txaio.spawn(function()
          got = pack(pcall(txaio.await, txaio.create_future_error("already bad")))
          counter = counter + 1
        end)
        assert.equal(1, counter)
        assert.is_false(got[1])
        assert_contains(tostring(got[2]), "already bad")
        assert.is_true(txaio.is_called(s))
        local s2 = txaio.spawn(function()
          txaio.await(txaio.create_future_error("uncaught"))
        end)
        assert_contains(tostring(failure_of(s2).value), "uncaught")
      end)

      it("raises 'await: not inside txaio.spawn' when called outside a spawned coroutine", function()
        local f = txaio.create_future()
        assert_contains(error_of(txaio.await, f), "await: not inside txaio.spawn")
        assert.is_false(txaio.is_called(f))
      end)

      it("raises 'await: not inside txaio.spawn' inside a plain coroutine.wrap coroutine", function()
        local f = txaio.create_future()
        local ok, err = coroutine.wrap(function() return pcall(txaio.await, f) end)()
        assert.is_false(ok)
        assert_contains(err, "await: not inside txaio.spawn")
        -- also when that plain coroutine runs inside a spawned one
        local inner
        local s = txaio.spawn(function()
          inner = pack(coroutine.wrap(function() return pcall(txaio.await, f) end)())
          return "outer fine"
        end)
        assert.is_false(inner[1])
        assert_contains(inner[2], "await: not inside txaio.spawn")
        assert.equal("outer fine", value_of(s))
      end)
    end)

    describe("cancelling a spawned coroutine", function()
      it("cancels the awaited future and raises a CancelledError inside the coroutine", function()
        needs_yield_across_pcall()
        local awaited = txaio.create_future()
        local awaited_is = watch(awaited)
        local seen, cleaned_up = nil, false
        local s = txaio.spawn(function()
          local ok, err = pcall(txaio.await, awaited)
          seen = { ok = ok, err = err }
          cleaned_up = true
          return "returned normally"
        end)
        txaio.cancel(s)
        local state, fl = awaited_is()
        assert.equal("failed", state)
        assert.is_true(is_cancelled_error(fl.value))
        assert.is_false(seen.ok)
        assert.is_true(is_cancelled_error(seen.err))
        assert.is_true(cleaned_up)
        local sfl = failure_of(s)
        assert.is_true(is_cancelled_error(sfl.value))
        assert.equal(0, #reports)
      end)

      it("keeps the spawn future cancelled while cleanup code awaits more work", function()
        needs_yield_across_pcall()
        local cleanup_done = false
        local s = txaio.spawn(function()
          local ok, err = pcall(txaio.await, txaio.sleep(10))
          assert(not ok and is_cancelled_error(err))
          txaio.await(txaio.sleep(0.01))   -- asynchronous cleanup
          cleanup_done = true
          return "after cleanup"
        end)
        local is = watch(s)
        txaio.cancel(s, "stop now")
        local state, fl = is()
        assert.equal("failed", state)
        assert.is_true(is_cancelled_error(fl.value))
        assert.equal("stop now", fl.value.message)
        run_until(function() return cleanup_done end)
        state, fl = is()
        assert.equal("failed", state)
        assert.is_true(is_cancelled_error(fl.value))
        assert.equal(0, #reports, reports[1] and reports[1].message)
      end)

      it("stops the coroutine at the await when it does not catch the CancelledError", function()
        local after = false
        local sleeping = txaio.sleep(0.05)
        local sleeping_is = watch(sleeping)
        local s = txaio.spawn(function()
          txaio.await(sleeping)
          after = true
        end)
        txaio.cancel(s)
        assert.equal("failed", (sleeping_is()))
        assert.is_true(is_cancelled_error(failure_of(s).value))
        assert.equal(0, txaio.config.loop:pending())   -- the sleep's timer was stopped
        run_for(0.1)
        assert.is_false(after)
      end)

      it("cancels only the innermost awaited future of a chain of spawns", function()
        needs_yield_across_pcall()
        local leaf = txaio.create_future()
        local leaf_is = watch(leaf)
        local inner_saw
        local inner = txaio.spawn(function()
          local ok, err = pcall(txaio.await, leaf)
          inner_saw = not ok and is_cancelled_error(err)
          return "inner recovered"
        end)
        local outer = txaio.spawn(function() return txaio.await(inner) end)
        txaio.cancel(outer)
        -- outer was awaiting inner, so inner is cancelled, which cancels leaf
        assert.equal("failed", (leaf_is()))
        assert.is_true(inner_saw)
        assert.is_true(is_cancelled_error(failure_of(inner).value))
        assert.is_true(is_cancelled_error(failure_of(outer).value))
      end)
    end)

    -- Lua 5.1 and 5.2 have no coroutine.isyieldable, and the core can only tell that one of its
    -- callbacks is running: await inside as_future's function, a canceller or table.sort's
    -- comparator attached its pair to the future and then failed to yield. The pair stayed, and
    -- when that future completed it resumed the task in the middle of a later await, with the
    -- wrong value.
    describe("await under a C call that cannot yield", function()
      local function assert_cannot_wait(failure)
        local message = txaio.failure_message(failure)
        assert.is_truthy(message:find("cannot wait here", 1, true)
          or message:find("yield across", 1, true), message)
      end

      -- `inner(f)` awaits f in a way that cannot yield and returns the failure it caused
      local function check(inner)
        local f, h = txaio.create_future(), txaio.create_future()
        local failure, after
        local task = txaio.spawn(function()
          failure = inner(f)
          after = txaio.await(h)
          return after
        end)
        assert_cannot_wait(failure)
        txaio.resolve(f, "F")
        assert.is_nil(after)               -- f is not what the task waits for
        assert.equal("pending", (watch(task)()))
        txaio.resolve(h, "H")
        assert.equal("H", after)
        assert.equal("H", value_of(task))
      end

      it("as_future's function", function()
        check(function(f)
          local g = txaio.as_future(function() return txaio.await(f) end)
          return failure_of(g)
        end)
      end)

      it("a canceller", function()
        check(function(f)
          local caught
          local c = txaio.create_future(nil, nil, function()
            local ok, err = xpcall(function() return txaio.await(f) end, txaio.create_failure)
            assert(not ok)
            caught = err
          end)
          -- the canceller's own error would be reported, so it records instead; and the
          -- cancellation is handled, or collecting c would report it during a later test
          txaio.add_callbacks(c, nil, function() end)
          txaio.cancel(c)
          return caught
        end)
      end)

      it("leaves the future it failed to wait for alone when its task is cancelled", function()
        local first, f = txaio.create_future(), txaio.create_future()
        local task
        task = txaio.spawn(function()
          txaio.await(first)   -- so that `task` is set when the body goes on
          local g = txaio.as_future(function() return txaio.await(f) end)
          -- a callback of first's runs this: callbacks added now would run after it returns
          local state, failure = require("txaio.core").outcome(g)
          assert.equal("failed", state)
          assert_cannot_wait(failure)
          txaio.cancel(task)
          return "not reached as the result"
        end)
        txaio.resolve(first, true)
        assert.is_true(is_cancelled_error(failure_of(task).value))
        assert.is_false(txaio.is_called(f))
      end)

      it("table.sort's comparator", function()
        check(function(f)
          local ok, err = xpcall(function()
            table.sort({ 2, 1 }, function(a, b) txaio.await(f); return a < b end)
          end, txaio.create_failure)
          assert.is_false(ok)
          return err
        end)
      end)
    end)

    describe("callbacks run from C", function()
      it("report 'cannot wait here' when a callback calls await inside a spawned coroutine", function()
        local trigger = txaio.create_future()
        local never = txaio.create_future()
        local callback_after = false
        txaio.add_callbacks(trigger, function()
          txaio.await(never)
          callback_after = true
        end, nil)
        local s = txaio.spawn(function()
          txaio.resolve(trigger, "go")   -- the callback runs here, from C, inside this coroutine
          return "spawn unaffected"
        end)
        assert.equal("spawn unaffected", value_of(s))
        assert.is_false(callback_after)
        assert.equal(1, #reports)
        assert_contains(reports[1].message, "cannot wait here")
        assert_contains(reports[1].message, "txaio.spawn")
        assert.is_true(txaio.is_failure(reports[1].failure))
        assert.is_false(txaio.is_called(never))
      end)

      it("report 'cannot wait here' when the resolving coroutine was itself resumed by a timer", function()
        -- The coroutine runs inside the core's draining run queue (it was resumed by the sleep's
        -- callback), so the trigger's callback is queued and runs later on the main thread: await
        -- must still explain that callbacks cannot wait.
        local trigger = txaio.create_future()
        txaio.add_callbacks(trigger, function() txaio.await(txaio.create_future()) end, nil)
        local s = txaio.spawn(function()
          txaio.await(txaio.sleep(0.01))
          txaio.resolve(trigger, "go")
          return "ok"
        end)
        local is = watch(s)
        run_until(function() return is() ~= "pending" end)
        assert.equal("ok", select(2, is()))
        assert.equal(1, #reports)
        assert_contains(reports[1].message, "cannot wait here")
        assert_contains(reports[1].message, "txaio.spawn")
      end)

      it("report 'not inside txaio.spawn' when a callback outside any coroutine calls await", function()
        local trigger = txaio.create_future()
        txaio.add_callbacks(trigger, function() txaio.await(txaio.create_future()) end, nil)
        txaio.resolve(trigger, 1)
        assert.equal(1, #reports)
        assert_contains(reports[1].message, "await: not inside txaio.spawn")
      end)
    end)
  end)
end
