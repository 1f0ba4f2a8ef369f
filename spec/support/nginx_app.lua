--- The application that spec/host_nginx_spec.lua runs inside nginx's Lua module (OpenResty-style
-- host, LuaJIT). init_by_lua loads txaio (see M.load), init_worker_by_lua selects the host loop
-- (M.init_worker), and /t/<case> runs one case in a content handler and answers
-- "ok <details>" or "FAIL <why>".
-- luacheck: globals ngx
local M = {}

local txaio
local results = {}       -- what the work started in init_worker left behind
local stats = { wakes = 0, skipped = 0, max_ngx_pending = 0 }

--- Loads txaio. ngx_lua replaces coroutine.create/resume/yield with request-aware versions;
-- txaio.coro uses the plain ones it keeps as coroutine._create, ..., so a plain require works in
-- every phase (the "coro" case checks it).
function M.load()
  txaio = require "txaio"
  return txaio
end

--- The host adapter: nginx's monotonic clock (milliseconds, cached per event-loop pass) and ONE
-- pending ngx.timer as the wake-up, however many txaio timers there are. A wake-up for a later
-- time than the one already pending is not needed (the pending one runs txaio, which asks again);
-- a stale ngx.timer that fires is harmless (nginx cannot cancel it).
function M.adapter()
  local monotonic_time = require("resty.core.time").monotonic_time
  local huge = math.huge
  local armed_at = huge   -- when the earliest pending ngx.timer fires
  local function wake(delay, run)
    -- whole milliseconds, rounded up: nginx's timers and clock tick in ms, and a sub-ms delay
    -- would become a 0 ms ngx.timer that nginx runs at once, in the same timer pass with the same
    -- cached clock: txaio would find nothing due and ask again, forever
    delay = math.ceil(delay * 1000) / 1000
    local at = monotonic_time() + delay
    if at >= armed_at then
      stats.skipped = stats.skipped + 1
      return
    end
    armed_at = at
    local ok, err = ngx.timer.at(delay, function(premature)
      if at <= armed_at then armed_at = huge end   -- this was the earliest one
      if not premature then run() end
    end)
    if not ok then
      armed_at = huge
      ngx.log(ngx.ERR, "txaio wake-up: ngx.timer.at failed: ", err)
    end
    stats.wakes = stats.wakes + 1
    local pending = ngx.timer.pending_count()
    if pending > stats.max_ngx_pending then stats.max_ngx_pending = pending end
  end
  return { now = monotonic_time, wake = wake }
end

function M.init_worker()
  -- a fresh copy of txaio.coro must load in this phase too (see the "coro" case)
  local coro_path = package.searchpath("txaio.coro", package.path)
  local ok, err = pcall(assert(loadfile(coro_path)))
  results.plain_coro_in_init_worker = ok and "loads" or tostring(err):match("[^\n]*")

  txaio.use_host(M.adapter())
  -- route txaio's log (uncaught errors included) into nginx's error log
  txaio.add_log_observer(function(ev)
    local text = ev.log_format or ""
    if ev.log_failure then text = text .. " " .. txaio.failure_message(ev.log_failure) end
    if ev.message then text = text .. " " .. tostring(ev.message) end
    ngx.log(ngx.WARN, "[txaio] ", ev.log_level, ": ", text)
  end)
  -- work started before any request: a timer and a coroutine; /t/worker reads the results
  txaio.call_later(0.05, function() results.timer = "fired" end)
  local f = txaio.spawn(function()
    txaio.await(txaio.sleep(0.02))
    return "slept"
  end)
  txaio.add_callbacks(f, function(v) results.spawn = v end,
    function(fail) results.spawn = "failed: " .. txaio.failure_message(fail) end)
end

-- helpers --------------------------------------------------------------------------------------

local function now() return txaio.config.loop:now() end

--- Polls (ngx.sleep) until cond() is true or `timeout` seconds passed; returns cond().
local function wait_for(cond, timeout)
  local deadline = ngx.now() + (timeout or 5)
  while not cond() do
    if ngx.now() > deadline then return cond() end
    ngx.sleep(0.005)
    ngx.update_time()
  end
  return true
end

local function check(cond, fmt, ...)
  if not cond then error(string.format(fmt, ...), 0) end
end

local function later(delay, value, fail)
  local f = txaio.create_future()
  txaio.call_later(delay, fail and txaio.reject or txaio.resolve, f, value)
  return f
end

local function track(f)
  local box = { future = f }
  txaio.add_callbacks(f, function(v) box.done, box.value = true, v end,
    function(fl) box.done, box.failure = true, fl end)
  return box
end

local function note_pending()
  local p = ngx.timer.pending_count()
  if p > stats.max_ngx_pending then stats.max_ngx_pending = p end
end

-- cases ----------------------------------------------------------------------------------------

local cases = {}

--- The limit txaio avoids: plain ngx.timer.at refuses a 1,025th pending timer by default.
function cases.limit()
  local base = ngx.timer.pending_count()
  local made, err = 0, nil
  for _ = 1, 1100 do
    local ok, e = ngx.timer.at(0.01, function() end)
    if not ok then
      err = e
      break
    end
    made = made + 1
  end
  check(err ~= nil, "1100 pending ngx.timers were accepted")
  check(wait_for(function() return ngx.timer.pending_count() <= base end, 5), "ngx.timers did not drain")
  return ("limit at %d: %s"):format(base + made, err)
end

--- 2,000 pending call_laters (and 200 cancelled ones) on one ngx.timer.
function cases.call_later()
  local N, C = 2000, 200
  stats.wakes, stats.skipped, stats.max_ngx_pending = 0, 0, 0
  local fired, order, early, bad = 0, {}, 0, 0
  local t0 = now()
  for i = 1, N do
    local delay = math.random(0, 200) / 1000
    local deadline = t0 + delay
    txaio.call_later(delay, function(idx, dl)
      fired = fired + 1
      if now() < dl then early = early + 1 end
      order[#order + 1] = { dl = dl, idx = idx }
    end, i, deadline)
    note_pending()
  end
  local handles = {}
  for i = 1, C do handles[i] = txaio.call_later(0.05 + i / 10000, function() bad = bad + 1 end) end
  check(txaio.config.loop:pending() >= N + C, "pending: %d", txaio.config.loop:pending())
  local pending_peak = txaio.config.loop:pending()
  for i = 1, C do check(handles[i]:cancel() == true, "cancel %d", i) end
  check(wait_for(function() return fired == N end, 5), "only %d of %d fired", fired, N)
  ngx.sleep(0.02)
  check(bad == 0, "%d cancelled timers fired", bad)
  check(early == 0, "%d timers fired early", early)
  for i = 2, #order do
    local a, b = order[i - 1], order[i]
    check(a.dl < b.dl or (a.dl == b.dl and a.idx < b.idx), "out of order at %d", i)
  end
  check(txaio.config.loop:pending() == 0, "left pending: %d", txaio.config.loop:pending())
  -- random deadlines: a wake-up per new earliest deadline (about ln N of them), and nginx cannot
  -- cancel the superseded ones, which fire harmlessly; nowhere near the 1,024 limit
  check(stats.max_ngx_pending <= 32, "up to %d ngx.timers pending", stats.max_ngx_pending)
  return ("fired=%d peak_txaio_pending=%d max_ngx_timers_pending=%d ngx_timers_made=%d")
    :format(fired, pending_peak, stats.max_ngx_pending, stats.wakes)
end

--- 1,500 calls on a batched timer: never early, at most one bucket (plus scheduling slack) late,
-- one scheduler entry per bucket.
function cases.batched()
  local N, bucket = 1500, 0.05
  local bt = txaio.make_batched_timer(bucket, 10)
  local fired, early, worst = 0, 0, 0
  local base = txaio.config.loop:pending()
  local t0 = now()
  for _ = 1, N do
    local delay = math.random(0, 300) / 1000
    local deadline = t0 + delay
    bt:call_later(delay, function()
      fired = fired + 1
      local late = now() - deadline
      if late < -1e-9 then early = early + 1 end
      if late > worst then worst = late end
    end)
  end
  -- the deadlines span 0.3 s plus the time this loop took (the clock is monotonic, and the loop
  -- is slow under the suite's stress collector): one entry for each bucket they can fall in. The
  -- epsilon: 0.3 / 0.05 is 5.999... in floating point.
  local span = 0.3 + (now() - t0)
  local entries = txaio.config.loop:pending() - base
  local buckets = math.floor(span / bucket + 1e-9) + 2
  check(entries <= buckets, "%d scheduler entries for %d calls, whose deadlines span %d buckets",
        entries, N, buckets)
  local h = bt:call_later(0.01, function() fired = fired + 1000 end)
  check(h:active(), "handle not active")
  h:cancel()
  check(not h:active(), "cancelled handle still active")
  check(wait_for(function() return fired >= N end, 5), "only %d of %d fired", fired, N)
  ngx.sleep(0.03)
  check(fired == N, "fired %d, expected %d", fired, N)
  check(early == 0, "%d calls fired early", early)
  check(worst <= bucket + 0.1, "a call fired %.3f s late", worst)
  return ("fired=%d scheduler_entries=%d worst_late=%.3f"):format(fired, entries, worst)
end

function cases.gather()
  local g = track(txaio.gather({ later(0.03, "a"), later(0.01, "b"), later(0.02, "boom", true),
    txaio.create_future_success(nil), later(0, 4) }))
  local g2 = track(txaio.gather({ later(0.02, "late"), later(0.01, "first failure", true) }, false))
  local g3 = track(txaio.gather({}))
  check(g3.done and g3.value.n == 0, "empty gather")
  check(wait_for(function() return g.done and g2.done end, 3), "gather did not complete")
  local v = g.value
  check(v and v.n == 5, "n = %s", v and tostring(v.n))
  check(v[1] == "a" and v[2] == "b" and v[4] == nil and v[5] == 4, "values %s %s %s %s",
    tostring(v[1]), tostring(v[2]), tostring(v[4]), tostring(v[5]))
  check(txaio.is_failure(v[3]) and v[3].value == "boom", "third is not the failure")
  check(g2.failure and g2.failure.value == "first failure", "consume_exceptions=false")
  return ("gathered %s,%s,<%s>,nil,%s"):format(v[1], v[2], txaio.failure_message(v[3]), v[5])
end

function cases.spawn()
  local t0 = now()
  local main = track(txaio.spawn(function(x)
    txaio.await(txaio.sleep(0.03))
    local doubled = txaio.await(later(0.01, x * 2))
    local ok, err = pcall(txaio.await, later(0.01, "nope", true))
    local inner = txaio.await(txaio.spawn(function()
      txaio.await(txaio.sleep(0.01))
      return "inner"
    end))
    local plain = txaio.await(7)
    return { doubled = doubled, caught = not ok and err, inner = inner, plain = plain }
  end, 21))
  local raises = track(txaio.spawn(function()
    txaio.await(txaio.sleep(0.01))
    error("kaboom")
  end))
  local sleeper = txaio.sleep(10)
  local cancelled_seen
  local victim = track(txaio.spawn(function()
    local ok, err = pcall(txaio.await, sleeper)
    cancelled_seen = not ok and getmetatable(err) == txaio.CancelledError
    return "after cancel"
  end))
  local before = txaio.config.loop:pending()
  txaio.cancel(victim.future)
  check(wait_for(function() return main.done and raises.done end, 3), "spawned work did not finish")
  local r = main.value
  check(r, "main failed: %s", main.failure and txaio.failure_message(main.failure))
  check(r.doubled == 42 and r.caught == "nope" and r.inner == "inner" and r.plain == 7,
    "results %s %s %s", tostring(r.doubled), tostring(r.caught), tostring(r.inner))
  check(now() - t0 >= 0.05 - 1e-6, "finished too early")
  check(raises.failure and txaio.failure_message(raises.failure):find("kaboom", 1, true),
    "the raising coroutine")
  local where = txaio.failure_traceback(raises.failure)[1]
  check(where and tostring(where.source):find("nginx_app", 1, true), "traceback starts at %s:%s",
    where and tostring(where.source), where and tostring(where.line))
  check(victim.done, "victim: %s", tostring(victim.done))
  return ("doubled=%d caught=%s inner=%s cancelled=%s pending_before_cancel=%d"):format(
    r.doubled, r.caught, r.inner, tostring(cancelled_seen), before)
end

--- Errors: contained, reported through the logger (routed into the error log), carried by failures.
function cases.failures()
  local seen = {}
  local observer = function(ev)
    if ev.log_level == "error" then seen[#seen + 1] = ev end
  end
  txaio.add_log_observer(observer)
  local ok_all, why = pcall(function()
    local f = txaio.create_future()
    local second
    txaio.add_callbacks(f, function() error("callback exploded") end)
    txaio.add_callbacks(f, function(v) second = v end)
    txaio.resolve(f, "v")   -- must not raise
    check(second == "v", "the second callback did not run")
    local ran = 0
    txaio.call_later(0, function() error("timer exploded") end)
    txaio.call_later(0, function() ran = ran + 1 end)
    check(wait_for(function() return ran == 1 end, 2), "the timer after the raising one")
    check(#seen >= 2, "%d errors logged", #seen)

    local MyError = { __name = "MyError", __tostring = function(e) return "bad " .. e.what end }
    local failed = txaio.create_future()
    local got
    txaio.add_callbacks(failed, nil, function(fail) got = fail end)
    txaio.call_later(0.01, txaio.reject, failed, setmetatable({ what = "thing" }, MyError))
    check(wait_for(function() return got ~= nil end, 2), "errback")
    check(txaio.failure_message(got) == "MyError: bad thing", "message %s", txaio.failure_message(got))

    local ok, fail = xpcall(function() error("deep") end, txaio.create_failure)
    check(not ok and txaio.is_failure(fail), "xpcall handler")
    local frames, found = txaio.failure_traceback(fail), false
    for _, fr in ipairs(frames) do found = found or tostring(fr.source):find("nginx_app", 1, true) end
    check(found, "no frame in nginx_app among %d", #frames)
    check(txaio.failure_format_traceback(fail):find("stack traceback", 1, true), "formatted")

    local af = track(txaio.as_future(function() error("in as_future") end))
    check(af.failure and af.failure.value:find("in as_future", 1, true), "as_future")

    local s = track(txaio.sleep(5))
    local pending = txaio.config.loop:pending()
    txaio.cancel(s.future, "stop")
    check(s.failure and getmetatable(s.failure.value) == txaio.CancelledError, "cancelled sleep")
    check(txaio.config.loop:pending() == pending - 1, "the cancelled sleep left its timer")
    return ("logged=%d message=%q"):format(#seen, txaio.failure_message(got))
  end)
  txaio.remove_log_observer(observer)
  if not ok_all then error(why, 0) end
  return why
end

--- The work init_worker started, before any request came in.
function cases.worker()
  check(wait_for(function() return results.timer and results.spawn end, 3), "not finished")
  return ("timer=%s spawn=%s"):format(results.timer, results.spawn)
end

--- Despite ngx_lua's coroutine API: a fresh copy of txaio.coro, loaded inside a request, spawns a
-- coroutine that awaits a txaio timer and is resumed from the timer's callback.
function cases.coro()
  local errors = {}
  local observer = function(ev)
    if ev.log_level == "error" or ev.log_level == "critical" then
      errors[#errors + 1] = ev.log_failure and txaio.failure_message(ev.log_failure)
        or tostring(ev.message or ev.log_format)
    end
  end
  txaio.add_log_observer(observer)
  local ok, result = pcall(function()
    -- loadfile, not dofile: ngx_lua's coroutine.resume yields, which a C function (dofile) forbids
    local coro = assert(loadfile(package.searchpath("txaio.coro", package.path)))()
    local box = track(coro.spawn(function()
      coro.await(txaio.sleep(0.01))
      return "woke"
    end))
    wait_for(function() return box.done or #errors > 0 end, 1)
    if box.value == "woke" then return "ok" end
    return errors[1] or (box.failure and txaio.failure_message(box.failure)) or "never completed"
  end)
  txaio.remove_log_observer(observer)
  return ("init_worker: %s | request: %s"):format(results.plain_coro_in_init_worker,
    ok and result or ("load/spawn raised: " .. tostring(result)))
end

function M.serve(name)
  local case = cases[name]
  if not case then
    ngx.status = 404
    ngx.say("FAIL no case ", tostring(name))
    return
  end
  local ok, msg = xpcall(case, function(e) return debug.traceback(tostring(e), 2) end)
  ngx.say(ok and "ok " or "FAIL ", tostring(msg))
end

return M
