--- The fuzz interpreter: turns a byte string into a bounded sequence of operations on txaio's
-- futures, failures, timers, batched timers and loops, runs them, and checks invariants after
-- every operation.
--
-- Two drivers share it: spec/fuzz/harness.c (libFuzzer, one fresh lua_State per input, the C
-- embedding API underneath) and spec/fuzz_spec.lua (replays spec/fuzz-corpus/ in the busted
-- process). Whatever txaio raises is expected and caught; what the contract says must raise (or
-- must not) is checked. run() raises only when an invariant broke: the harness then aborts, which
-- libFuzzer reports as a crash with the input that caused it.
--
-- Input format: a sequence of operations, each an opcode byte (taken modulo the number of
-- operations, see M.OPS) followed by argument bytes read as the operation needs them. Reading past
-- the end yields zeros, so every byte string is a valid program. At most M.MAX_OPS operations run.
--
-- `env` is what the driver supplies:
--   txaio          the txaio module, with env's main loop selected
--   clock()        the fake clock in seconds; set_clock(t) sets it (any number, NaN included)
--   wake_at()      absolute time the main loop last asked to be ticked at, or nil
--   new_loop()     -> loop, wake_at function: another loop on the same clock (the C harness
--                  makes it with txaio_pushhostloop)
--   tick()         ticks the selected loop (txaio_tick); returns seconds or a negative number
--   new_future(), resolve(f, v), reject(f, v), is_future(v)
--                  txaio_newfuture, txaio_resolve, txaio_reject, txaio_isfuture (or Lua stand-ins)
--   gc()           a full collection
--   after_end      "act": values with __gc keep acting after run() returns (the harness, so that
--                  finalizers run inside lua_close); "inert": they do nothing (the spec)
--   trace          optional function(line), called with a description of each operation
local M = {}

local unpack = table.unpack or rawget(_G, "unpack")
local LUA54 = _VERSION == "Lua 5.4"
local HAS_GC_TABLES = _VERSION ~= "Lua 5.1"   -- __gc on tables: 5.2 on (not 5.1, not LuaJIT)

M.MAX_OPS = 256
local NF, NH, NX, NB, NK = 8, 8, 4, 2, 4   -- slots: futures, timer handles, failures, batched, junk
local BUDGET = 300                         -- actions callbacks and finalizers may take, per input
local MAX_DEPTH = 3                        -- callbacks whose action adds callbacks, and so on
local RING = 48                            -- operations kept for the violation report

local function pack(...) return { n = select("#", ...), ... } end

local function same(a, b)
  return rawequal(a, b) or (type(a) == "number" and type(b) == "number" and a ~= a and b ~= b)
end

local function str(v)
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return "<" .. type(v) .. ">"
end

local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__call") ~= nil
end

local function finite(x) return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge end

-- Delays, clock steps and bucket lengths the operations pick from: the edges of every range.
local DELAYS = { 0, 0, 0.001, 0.5, 1, 1, 2.5, 10, -1, 0 / 0, math.huge, -math.huge, 1e300, 2 ^ 53,
                 1e-9, "1", 1e9, 0.25 }
local STEPS = { 0, 0.001, 0.01, 0.1, 0.5, 1, 1, 2.5, 10, 1000, -1, 0 / 0, 1e300, math.huge,
                -math.huge, 2 ^ 53, 0.25, 0.125 }
local BUCKETS = { 0.001, 0.01, 0.1, 0.5, 1, 0, -1, 0 / 0, 1e9, 0.0004, "x", math.huge, 0.25 }
local CHUNKS = { false, 1, 2, 3, 100, 0, 1.5, "2" }

M.OPS = {
  "create_future", "create_variant", "c_new_future", "resolve", "reject", "cancel",
  "add_callbacks", "gather", "as_future", "query_future", "create_failure", "query_failure",
  "call_later", "handle", "sleep", "make_batched_timer", "batched_call_later", "clock", "tick",
  "drop", "gc", "select_loop", "burst", "modes", "gc_actor", "impostor", "chain",
}

function M.run(input, env)
  local txaio = env.txaio
  local report = require "txaio.report"
  local loglib = require "txaio.log"
  local CancelledError = txaio.CancelledError

  -- Everything the operations touch. Slots hold what the program works on; META/TM hold what the
  -- checker knows about every future and timer still alive (weak keys: dropping a slot lets the
  -- object go, which is part of what is being fuzzed).
  local F, H, X, B, K = {}, {}, {}, {}, {}
  local META = setmetatable({}, { __mode = "k" })
  local TM = setmetatable({}, { __mode = "k" })
  local S = {
    pos = 0, budget = BUDGET, acts = 0, in_api = 0, live = true, clock_bad = false, wake_mode = 0,
    raised = { callback = 0, canceller = 0 }, reports = { callback = 0, canceller = 0, future = 0 },
    handler_raises = false, opcount = {}, nops = 0, ring = {}, violations = {},
    callbacks = 0, timers_fired = 0, errors = 0, calls = 0, burst_fired = 0,
  }
  local nfuture = 0

  local function bad(fmt, ...)
    S.violations[#S.violations + 1] = select("#", ...) > 0 and fmt:format(...) or fmt
  end

  local function note(line)
    S.ring[#S.ring + 1] = line
    if #S.ring > RING then table.remove(S.ring, 1) end
    if env.trace then env.trace(line) end
  end

  ------------------------------------------------------------------ reading the input
  local len = #input
  local function byte()
    S.pos = S.pos + 1
    if S.pos > len then return 0 end
    return input:byte(S.pos)
  end
  local function pick(list) return list[byte() % #list + 1] end
  local function slot(n) return byte() % n + 1 end

  ------------------------------------------------------------------ loops
  -- A loop with a Lua adapter. Its wake() misbehaves as S.wake_mode says: it raises, it runs
  -- the loop before returning (which txaio refuses), or both; the loop must stay consistent.
  local function adapter_loop()
    local rec = { kind = "lua" }
    rec.loop = txaio.host_loop {
      now = function() return env.clock() end,
      wake = function(delay, run)
        if type(delay) ~= "number" or delay ~= delay or delay < 0 then
          bad("adapter.wake got %s (a number >= 0 expected)", str(delay))
        else
          rec.at = env.clock() + delay
        end
        local mode = S.wake_mode
        if mode ~= 0 then rec.misbehaved = true end
        if mode == 2 then run()
        elseif mode == 3 then pcall(run) end
        if mode == 1 or mode == 3 then error("wake failed", 0) end
      end,
    }
    rec.wake_at = function() return rec.at end
    return rec
  end

  local LOOPS = { { loop = txaio.config.loop, wake_at = env.wake_at, kind = "main" } }
  assert(LOOPS[1].loop, "fuzz ops: env must select its main loop first")
  S.cur = LOOPS[1]

  local function loop_of(rec) return rec and rec.loop end
  local function loop_now(loop)
    local ok, t = pcall(loop.now, loop)
    if ok then return t end
    return nil
  end

  ------------------------------------------------------------------ calling the API
  -- Calls fn(...) under pcall. want: true (the contract says it must succeed), false (it must
  -- raise) or nil (either). `epoch` is S.acts when the caller started deciding what to expect: a
  -- finalizer that acted since then may have changed the state the expectation was based on.
  local function try(what, want, epoch, fn, ...)
    S.calls = S.calls + 1
    S.in_api = S.in_api + 1
    local res = pack(pcall(fn, ...))
    S.in_api = S.in_api - 1
    local disturbed = S.acts ~= epoch
    if not res[1] then S.errors = S.errors + 1 end
    if disturbed then return res, true end
    if want == true and not res[1] then
      local msg = str(res[2])
      local excused = S.clock_bad and (msg:find("clock", 1, true) or msg:find("now()", 1, true))
        or S.wake_mode ~= 0 and msg:find("wake()", 1, true)
      if not excused then bad("%s raised: %s", what, msg) end
    elseif want == false and res[1] then
      bad("%s did not raise", what)
    end
    return res, false
  end

  local function is_cancelled(f)
    return str(f):match("^txaio%.Future: %S+ %(cancelled%)$") ~= nil
  end

  local function meta(f)
    local m = META[f]
    if not m then
      nfuture = nfuture + 1
      m = { id = nfuture, pairs = {}, last = 0 }
      META[f] = m
    end
    return m
  end

  local function loop_ok() return S.cur ~= nil end

  ------------------------------------------------------------------ values
  local value, decode_action, run_action, build_fn

  -- A table whose finalizer performs an action: user code running wherever the collector
  -- happens to run finalizers, including in the middle of the core's own functions. It acts only
  -- while a txaio call is under way (in_api > 0): elsewhere it would race the checker's own
  -- bookkeeping, so it re-arms itself (a new table with the same finalizer) for the next cycle.
  -- A recurring one re-arms after acting too, until the budget is spent.
  local function gc_actor(action, recurring)
    if not HAS_GC_TABLES then return {} end
    local mt = {}
    mt.__gc = function()
      if S.budget <= 0 then return end
      if S.live and S.in_api > 0 or not S.live and env.after_end == "act" then
        S.acts = S.acts + 1
        run_action(action, nil, 0)
        if recurring then setmetatable({}, mt) end
      elseif S.live then
        setmetatable({}, mt)
      end
    end
    return setmetatable({}, mt)
  end

  local RAISING_MT = { __tostring = function() error("tostring raised") end }
  local ODD_MT = { __name = 42, __tostring = function() return {} end }
  local LINES_MT = { __name = "My\nErr", __tostring = function() return "a\rb\r\nc" end }
  local INDEX_MT = { __index = function() error("index raised") end }

  function value(depth)
    local k = byte() % 28
    if k == 0 then return nil
    elseif k == 1 then return false
    elseif k == 2 then return true
    elseif k == 3 then return byte() - 128
    elseif k == 4 then return byte() / 4
    elseif k == 5 then return 0 / 0
    elseif k == 6 then return math.huge
    elseif k == 7 then return -math.huge
    elseif k == 8 then return -0.0
    elseif k == 9 then return math.maxinteger or 2 ^ 63
    elseif k == 10 then return "v" .. byte()
    elseif k == 11 then return ""
    elseif k == 12 then return string.rep("x", byte() * 8)
    elseif k == 13 then return "line1\r\nline2\n\0tail"
    elseif k == 14 then return {}
    elseif k == 15 then return setmetatable({}, RAISING_MT)
    elseif k == 16 then return setmetatable({}, ODD_MT)
    elseif k == 17 then return setmetatable({}, LINES_MT)
    elseif k == 18 then return { name = "Named" }
    elseif k == 19 then return X[slot(NX)]
    elseif k == 20 then return F[slot(NF)]
    elseif k == 21 then
      local ok, fl = pcall(txaio.create_failure, "made " .. byte())
      return ok and fl or "no loop"
    elseif k == 22 then return setmetatable({ message = "m" .. byte() }, CancelledError)
    elseif k == 23 then
      if (depth or 0) >= MAX_DEPTH then return "deep" end
      return gc_actor(decode_action((depth or 0) + 1), byte() % 2 == 1)
    elseif k == 24 then return function() return 1 end
    elseif k == 25 then return coroutine.create(function() end)
    elseif k == 26 then
      local f = F[slot(NF)]
      return f and setmetatable({}, getmetatable(f)) or {}
    else
      local junk = K[slot(NK)]   -- an impostor or a finalizer-bearing table kept earlier
      if junk ~= nil then return junk end
      return setmetatable({}, INDEX_MT)
    end
  end

  -- What a raising callback raises: a string, nil, a table, a failure, a cancellation error.
  local function raise_value()
    local k = byte() % 5
    if k == 0 then return "boom " .. byte()
    elseif k == 1 then return nil
    elseif k == 2 then return setmetatable({}, RAISING_MT)
    elseif k == 3 then
      local ok, fl = pcall(txaio.create_failure, "boom")
      return ok and fl or "boom"
    else return setmetatable({ message = "raised" }, CancelledError)
    end
  end

  ------------------------------------------------------------------ callables
  -- A callable's plan, decoded from the input: nil (no function), "bad" (not callable), or
  -- { wrap = callable table?, raise = true/false, err = value, action = ... }.
  local function decode_fn(depth)
    local mode = byte() % 8
    if mode == 0 then return nil end
    if mode == 7 then return "bad" end
    local plan = { wrap = mode == 2 }
    if mode == 3 then plan.raise, plan.err = true, raise_value()
    elseif mode >= 4 and depth < MAX_DEPTH then plan.action = decode_action(depth + 1) end
    return plan
  end

  -- Makes the callable of `plan`. on_run(...) does what the caller checks; `self` is the future
  -- the callable belongs to (for actions on "self"); `what` is "callback" or "canceller".
  function build_fn(plan, on_run, self, depth, what)
    if plan == nil then return nil end
    if plan == "bad" then return 42 end
    local function fn(...)
      S.callbacks = S.callbacks + 1
      on_run(...)
      if plan.action then
        local target = self
        if type(self) == "table" and self.box then target = self.f end
        run_action(plan.action, target, depth)
      end
      if plan.raise then
        S.raised[what or "callback"] = S.raised[what or "callback"] + 1
        error(plan.err, 0)
      end
    end
    if plan.wrap then
      return setmetatable({}, { __call = function(_, ...) return fn(...) end })
    end
    return fn
  end

  ------------------------------------------------------------------ futures
  local function record_outcome(f, state, v)
    meta(f).outcome = { state = state, value = v }
  end

  -- Attaches a checked pair of callbacks to f: each side records that it ran, with what.
  local function attach(f, cbplan, ebplan, depth, via, extra)
    local m = meta(f)
    local p = { i = #m.pairs + 1, has_cb = type(cbplan) == "table", has_eb = type(ebplan) == "table",
                cb_ran = 0, eb_ran = 0 }
    local function ran(side, arg)
      if p.cb_ran + p.eb_ran > 0 then bad("future #%d: pair %d ran twice (%s after %s)", m.id, p.i,
        side, p.cb_ran > 0 and "callback" or "errback") end
      if not p.attached then bad("future #%d: pair %d ran though add_callbacks raised", m.id, p.i) end
      -- judged at the next check: a finalizer may have attached a pair between this one's
      -- numbering and its add_callbacks call, which then legitimately comes later
      if p.i <= m.last then
        m.order_bad = m.order_bad or ("future #%d: pair %d ran after pair %d"):format(m.id, p.i, m.last)
      end
      m.last = p.i
      if not f:is_called() then bad("future #%d: a callback ran while it is pending", m.id) end
      if side == "callback" then p.cb_ran, p.cb_arg = p.cb_ran + 1, arg
      else
        p.eb_ran, p.eb_arg = p.eb_ran + 1, arg
        if not txaio.is_failure(arg) then bad("future #%d: errback got %s, not a failure", m.id, str(arg)) end
      end
      if extra and not m.by_op then extra(side, arg) end
    end
    local cb = build_fn(cbplan, function(v) ran("callback", v) end, f, depth)
    local eb = build_fn(ebplan, function(v) ran("errback", v) end, f, depth)
    local want = cbplan ~= "bad" and ebplan ~= "bad" and (cbplan ~= nil or ebplan ~= nil)
    if via == "txaio" then want = want and loop_ok() end
    p.attached = true
    m.pairs[#m.pairs + 1] = p
    local epoch = S.acts
    local res, disturbed
    if via == "method" then
      res, disturbed = try("f:add_callbacks", want, epoch, function() return f:add_callbacks(cb, eb) end)
    else
      res, disturbed = try("add_callbacks", want, epoch, txaio.add_callbacks, f, cb, eb)
    end
    if disturbed then m.unordered = true end
    if res[1] then
      if not rawequal(res[2], f) then bad("add_callbacks returned %s, not the future", str(res[2])) end
    else
      if p.cb_ran + p.eb_ran > 0 then bad("future #%d: callbacks ran though add_callbacks raised", m.id) end
      p.attached = false
      m.pairs[#m.pairs] = nil
    end
    return res[1]
  end

  local function do_resolve(f, v, via)
    local epoch = S.acts
    if f == nil then
      try("resolve(nil)", false, epoch, txaio.resolve, nil, v)
      return
    end
    local m = meta(f)
    local was, canc = f:is_called(), is_cancelled(f)
    local want = not was or canc
    if via == "txaio" then want = want and loop_ok() end
    m.by_op = true
    local res, disturbed
    if via == "c" then res, disturbed = try("txaio_resolve", want, epoch, env.resolve, f, v)
    elseif via == "method" then res, disturbed = try("f:resolve", want, epoch, function() return f:resolve(v) end)
    else res, disturbed = try("resolve", want, epoch, txaio.resolve, f, v) end
    if res[1] and not disturbed then
      if not was then record_outcome(f, "resolved", v)
      elseif not is_cancelled(f) then bad("future #%d: resolve of a cancelled future changed it", m.id) end
    end
    if res[1] and not f:is_called() then bad("future #%d: pending after resolve", m.id) end
  end

  local function do_reject(f, v, via)
    local epoch = S.acts
    if f == nil then
      try("reject(nil)", false, epoch, txaio.reject, nil, v)
      return
    end
    local m = meta(f)
    local was, canc = f:is_called(), is_cancelled(f)
    local want = (not was or canc) and v ~= nil
    if v == nil then want = false end
    if via == "txaio" and v ~= nil then want = want and loop_ok() end
    m.by_op = true
    local res, disturbed
    if via == "c" then res, disturbed = try("txaio_reject", want, epoch, env.reject, f, v)
    elseif via == "method" then res, disturbed = try("f:reject", want, epoch, function() return f:reject(v) end)
    else res, disturbed = try("reject", want, epoch, txaio.reject, f, v) end
    if res[1] and not disturbed then
      if not was then
        local ev = v
        if txaio.is_failure(v) then ev = v.value end
        record_outcome(f, "failed", ev)
      elseif not is_cancelled(f) then bad("future #%d: reject of a cancelled future changed it", m.id) end
    end
    if res[1] and not f:is_called() then bad("future #%d: pending after reject", m.id) end
  end

  local function do_cancel(f, msg, via)
    local epoch = S.acts
    if f == nil then
      try("cancel(nil)", false, epoch, txaio.cancel, nil, msg)
      return
    end
    local m = meta(f)
    local was = f:is_called()
    local want = msg == nil or type(msg) == "string" or type(msg) == "number"
    if via == "txaio" then want = want and loop_ok() end
    m.by_op = true
    local res, disturbed
    if via == "method" then res, disturbed = try("f:cancel", want, epoch, function() return f:cancel(msg) end)
    else res, disturbed = try("cancel", want, epoch, txaio.cancel, f, msg) end
    if not res[1] or disturbed then return end
    if type(res[2]) ~= "boolean" then bad("cancel returned %s", str(res[2])) end
    if was and res[2] then bad("future #%d: cancel of a completed future returned true", m.id) end
    if res[2] and not f:is_called() then bad("future #%d: pending after a cancel that returned true", m.id) end
    if res[2] and is_cancelled(f) then
      local ok, err = pcall(f.result, f)
      if ok or getmetatable(err) ~= CancelledError then
        bad("future #%d: cancelled but result() gives %s", m.id, str(err))
      elseif type(msg) == "string" and err.message ~= msg then
        bad("future #%d: cancelled with %q but the error says %s", m.id, msg, str(err.message))
      end
    end
  end

  -- A new future in F[s], checked: `made` is the future (or nil when the call raised).
  local function put_future(s, f, state, v)
    if f == nil then return end
    if not txaio.is_future(f) or not env.is_future(f) then bad("not a future: %s", str(f)); return end
    F[s] = f
    local m = meta(f)
    if state then m.outcome = { state = state, value = v } end
    local called = f:is_called()
    if called ~= (state ~= nil) then bad("future #%d: is_called is %s, expected %s", m.id, str(called),
      str(state ~= nil)) end
  end

  -- A canceller for a future not made yet: `box.f` is filled in once it exists.
  local function make_canceller(plan, depth)
    local box = { box = true }
    local count = 0
    local fn = build_fn(plan, function(arg)
      count = count + 1
      if count > 1 then bad("a canceller ran twice") end
      if box.f ~= nil and not rawequal(arg, box.f) then bad("canceller got %s, not its future", str(arg)) end
      if box.f ~= nil and box.f:is_called() then bad("canceller ran on a completed future") end
    end, box, depth, "canceller")
    return fn, box
  end

  ------------------------------------------------------------------ timers
  -- Checks made when a timer callback runs: once, not cancelled, never before its deadline.
  local function timer_fn(plan, tm, depth)
    return build_fn(plan, function(...)
      tm.ran = tm.ran + 1
      S.timers_fired = S.timers_fired + 1
      if tm.ran > 1 then bad("timer %d ran twice", tm.id) end
      if tm.cancelled then bad("timer %d ran after cancel() returned true", tm.id) end
      local now = loop_now(tm.loop)
      if now and now < tm.due then bad("timer %d ran at %s, before its deadline %s", tm.id, str(now), str(tm.due)) end
      if tm.h ~= nil and tm.h:active() then bad("timer %d: active() is true inside its own callback", tm.id) end
      local got = pack(...)
      if got.n ~= tm.args.n then bad("timer %d got %d arguments, not %d", tm.id, got.n, tm.args.n) end
      for i = 1, tm.args.n do
        if not same(got[i], tm.args[i]) then bad("timer %d: argument %d is %s, not %s", tm.id, i,
          str(got[i]), str(tm.args[i])) end
      end
    end, F[1], depth)
  end

  local ntimers = 0
  local function schedule(s, delay, plan, args, bt, depth)
    local epoch = S.acts
    local loop = bt and bt.loop or loop_of(S.cur)
    ntimers = ntimers + 1
    local tm = { id = ntimers, ran = 0, args = args, loop = loop, batched = bt ~= nil }
    local fn = timer_fn(plan, tm, depth)
    local want = finite(delay) and callable(fn)
    local now = loop and loop_now(loop)
    if now and finite(delay) then tm.due = now + (delay > 0 and delay or 0) end
    local res
    if bt then
      -- bucket numbers are milliseconds: deadlines 2^53 ms from zero are refused
      if tm.due and math.abs(tm.due) * 1000 >= 2 ^ 53 then want = false end
      res = try("bt:call_later", want, epoch, bt.bt.call_later, bt.bt, delay, fn, unpack(args, 1, args.n))
    else
      want = want and loop ~= nil
      res = try("call_later", want, epoch, txaio.call_later, delay, fn, unpack(args, 1, args.n))
    end
    if not res[1] then return end
    local h = res[2]
    if tm.due == nil then bad("call_later(%s) succeeded without a loop or with a bad delay", str(delay)) return end
    tm.h = h
    TM[h] = tm
    if s then H[s] = h end
    if not h:active() and tm.ran == 0 then
      bad("timer %d not active right after call_later (%s, loop %s)", tm.id, str(h), str(loop))
    end
  end

  -- Arguments for a timer: 0 to 3 values, or now and then 60 to 240 numbers (what the core
  -- pushes when the timer fires must fit the stack of whatever ticks).
  local function args_list(depth)
    local b = byte()
    if b >= 252 then
      local a = { n = (b - 251) * 60 }
      for i = 1, a.n do a[i] = i end
      return a
    end
    local n = b % 4
    local a = { n = n }
    for i = 1, n do a[i] = value(depth) end
    return a
  end

  -- fn(...) run in a new coroutine, whose stack starts small; errors come back out as errors.
  local function in_coroutine(fn)
    return function(...)
      local res = pack(coroutine.resume(coroutine.create(fn), ...))
      if not res[1] then error(res[2], 0) end
      return unpack(res, 2, res.n)
    end
  end

  ------------------------------------------------------------------ actions (from callbacks)
  function decode_action(depth)
    local k = byte() % 16
    local a = { k = k, s = slot(NF) }
    if k == 0 or k == 3 or k == 14 then a.v = value(depth)
    elseif k == 1 or k == 4 then a.v = value(depth); if a.v == nil then a.v = "err" end
    elseif k == 6 then a.cb, a.eb = decode_fn(depth), decode_fn(depth)
    elseif k == 7 or k == 15 then a.delay = pick(DELAYS); a.fn = decode_fn(depth)
    elseif k == 8 then a.h = slot(NH)
    elseif k == 12 then a.s2 = slot(NF)
    end
    return a
  end

  function run_action(a, self, depth)
    if S.budget <= 0 then return end
    S.budget = S.budget - 1
    local k = a.k
    if k == 0 then do_resolve(F[a.s], a.v, "txaio")
    elseif k == 1 then do_reject(F[a.s], a.v, "txaio")
    elseif k == 2 then do_cancel(F[a.s], nil, "txaio")
    elseif k == 3 then do_resolve(self or F[a.s], a.v, "method")
    elseif k == 4 then do_reject(self or F[a.s], a.v, "method")
    elseif k == 5 then do_cancel(self or F[a.s], "self", "method")
    elseif k == 6 then
      if F[a.s] then attach(F[a.s], a.cb, a.eb, depth + 1, "txaio") end
    elseif k == 7 then schedule(nil, a.delay, a.fn, { n = 0 }, nil, depth + 1)
    elseif k == 8 then
      local h = H[a.h]
      if h ~= nil then
        local tm = TM[h]
        local was = h:active()
        local res, disturbed = try("handle:cancel (nested)", true, S.acts, h.cancel, h)
        local r = res[2]
        if res[1] and r == true and tm then tm.cancelled = true end
        if res[1] and not disturbed and r ~= was then
          bad("handle cancel returned %s while active() was %s", str(r), str(was))
        end
      end
    elseif k == 9 then try("tick (nested)", nil, S.acts, env.tick)
    elseif k == 10 then env.gc()
    elseif k == 11 then
      local res = try("create_future (nested)", nil, S.acts, txaio.create_future)
      if res[1] then put_future(a.s, res[2]) end
    elseif k == 12 then
      local list = {}
      if F[a.s] then list[#list + 1] = F[a.s] end
      if F[a.s2] then list[#list + 1] = F[a.s2] end
      local res = try("gather (nested)", nil, S.acts, txaio.gather, list)
      if res[1] then F[a.s] = res[2]; meta(res[2]) end
    elseif k == 13 then F[a.s] = nil
    elseif k == 14 then do_resolve(F[a.s], a.v, "c")
    else
      local bt = B[a.s % NB + 1]
      if bt then schedule(nil, a.delay, a.fn, { n = 0 }, bt, depth + 1) end
    end
  end

  ------------------------------------------------------------------ operations
  local OP = {}

  function OP.create_future()
    local s, kind = slot(NF), byte() % 6
    local epoch = S.acts
    if kind == 0 then
      local res = try("create_future()", loop_ok(), epoch, txaio.create_future)
      if res[1] then put_future(s, res[2]) end
    elseif kind == 1 then
      local fn, box = make_canceller(decode_fn(0), 0)
      local res = try("create_future(canceller)", loop_ok() and fn ~= 42, epoch, txaio.create_future, nil, nil, fn)
      if res[1] then box.f = res[2]; put_future(s, res[2]) end
    elseif kind == 2 then
      local v = value()
      local res = try("create_future(v)", loop_ok(), epoch, txaio.create_future, v)
      if res[1] then put_future(s, res[2], v ~= nil and "resolved" or nil, v) end
    elseif kind == 3 then
      local e = value()
      local res = try("create_future(nil, e)", loop_ok(), epoch, txaio.create_future, nil, e)
      if res[1] then
        local ev = e
        if txaio.is_failure(e) then ev = e.value end
        put_future(s, res[2], e ~= nil and "failed" or nil, ev)
      end
    elseif kind == 4 then
      local v, e = value(), value()
      local want = loop_ok() and not (v ~= nil and e ~= nil)
      if v ~= nil and e ~= nil then want = false end
      local res = try("create_future(v, e)", want, epoch, txaio.create_future, v, e)
      if res[1] then
        local state = v ~= nil and "resolved" or e ~= nil and "failed" or nil
        local ev = e
        if txaio.is_failure(e) then ev = e.value end
        if v ~= nil then ev = v end
        put_future(s, res[2], state, ev)
      end
    else
      local c = value()   -- a canceller that is usually not callable
      local want = false
      if c == nil or callable(c) then want = loop_ok() end
      local res = try("create_future(nil, nil, c)", want, epoch, txaio.create_future, nil, nil, c)
      if res[1] then put_future(s, res[2]) end
    end
  end

  function OP.create_variant()
    local s, kind = slot(NF), byte() % 3
    local v = value()
    local epoch = S.acts
    if kind == 0 then
      local res = try("create_future_success", loop_ok(), epoch, txaio.create_future_success, v)
      if res[1] then put_future(s, res[2], "resolved", v) end
    elseif kind == 1 then
      local res = try("create_future_error", loop_ok() and v ~= nil, epoch, txaio.create_future_error, v)
      if v == nil and res[1] then bad("create_future_error(nil) did not raise") end
      if res[1] then
        local ev = v
        if txaio.is_failure(v) then ev = v.value end
        put_future(s, res[2], "failed", ev)
      end
    else
      -- a future that can only be observed through is_called and result: no callbacks at all
      local res = try("create_future", loop_ok(), epoch, txaio.create_future)
      if res[1] then put_future(s, res[2]) end
    end
  end

  function OP.c_new_future()
    local s = slot(NF)
    local res = try("txaio_newfuture", true, S.acts, env.new_future)
    if res[1] then put_future(s, res[2]) end
  end

  local VIA = { "txaio", "method", "c" }
  function OP.resolve() local s, via = slot(NF), pick(VIA); do_resolve(F[s], value(), via) end
  function OP.reject() local s, via = slot(NF), pick(VIA); do_reject(F[s], value(), via) end

  function OP.cancel()
    local s, k = slot(NF), byte() % 5
    local msg
    if k == 1 then msg = "why " .. byte() elseif k == 2 then msg = byte() elseif k == 3 then msg = {} end
    do_cancel(F[s], msg, byte() % 2 == 0 and "txaio" or "method")
  end

  function OP.add_callbacks()
    local s = slot(NF)
    local cb, eb = decode_fn(0), decode_fn(0)
    local via = byte() % 2 == 0 and "txaio" or "method"
    local f = F[s]
    if f == nil then
      try("add_callbacks(nil)", false, S.acts, txaio.add_callbacks, nil, function() end)
      return
    end
    attach(f, cb, eb, 0, via)
  end

  -- What a gather's result must be, given its items' outcomes; run from the result's callbacks.
  local function gather_checker(id, items, consume)
    local n = #items
    return function(side, arg)
      if side == "callback" then
        if type(arg) ~= "table" or arg.n ~= n then bad("gather #%d: results %s", id, str(arg)) return end
        for i = 1, n do
          local item = items[i]
          if not item:is_called() then bad("gather #%d resolved with item %d pending", id, i) end
          local ok, r = pcall(item.result, item)
          if ok and not same(arg[i], r) then
            bad("gather #%d: entry %d is %s, the item resolved with %s", id, i, str(arg[i]), str(r))
          elseif not ok and not (consume and txaio.is_failure(arg[i]) and same(arg[i].value, r)) then
            bad("gather #%d: entry %d is %s, the item failed with %s", id, i, str(arg[i]), str(r))
          end
        end
      elseif txaio.is_failure(arg) and getmetatable(arg.value) ~= CancelledError then
        if consume then bad("gather #%d (consume_exceptions) failed: %s", id, str(arg)) end
        local found = false
        for i = 1, n do
          local item = items[i]
          local ok, r = pcall(item.result, item)
          if not ok and same(r, arg.value) then found = true end
        end
        if not found then bad("gather #%d failed with %s, which no item failed with", id, str(arg)) end
      end
    end
  end

  function OP.gather()
    local s, mask, kind, c = slot(NF), byte(), byte() % 4, byte() % 3
    local consume
    if c == 1 then consume = true elseif c == 2 then consume = false end
    local items = {}
    for i = 1, NF do
      if mask % 2 == 1 and F[i] then items[#items + 1] = F[i] end
      mask = math.floor(mask / 2)
    end
    local want = loop_ok()
    if kind == 1 and #items > 0 then items[#items + 1] = items[1]   -- the same future twice
    elseif kind == 2 then                                             -- not a future: raises
      local extra = value()
      if extra ~= nil then
        items[#items + 1] = extra
        if txaio.is_future(extra) then want = nil else want = false end
      end
    elseif kind == 3 then items = {} end
    local res = try("gather", want, S.acts, txaio.gather, items, consume)
    if not res[1] then return end
    local g = res[2]
    F[s] = g
    local m = meta(g)
    attach(g, {}, {}, 0, "method", gather_checker(m.id, items, consume == nil or consume))
  end

  function OP.as_future()
    local s, kind = slot(NF), byte() % 5
    local v = value()
    local args = args_list()
    local fn, state
    if kind == 0 then
      fn, state = function() return v end, "resolved"
      if txaio.is_future(v) then state = "same" end
    elseif kind == 1 then
      local g = F[slot(NF)]
      fn = function() return g end
      state = txaio.is_future(g) and "same" or "resolved"
      v = g
    elseif kind == 2 then fn, state = function() error(v, 0) end, "failed"
    elseif kind == 3 then fn = 42
    else
      fn = setmetatable({}, { __call = function(_, ...) return select("#", ...) end })
      state, v = "resolved", args.n   -- the callable table itself is not passed
    end
    local res = try("as_future", loop_ok() and fn ~= 42, S.acts, txaio.as_future, fn, unpack(args, 1, args.n))
    if not res[1] then return end
    local f = res[2]
    if state == "same" then
      if not rawequal(f, v) then bad("as_future did not return the future fn returned") end
      F[s] = f
      return
    end
    local ev = v
    if state == "failed" and txaio.is_failure(v) then ev = v.value end
    put_future(s, f, state, ev)
  end

  function OP.query_future()
    local f = F[slot(NF)]
    if f == nil then
      try("is_called(nil)", false, S.acts, txaio.is_called, nil)
      return
    end
    local m = meta(f)
    local r, disturbed = try("is_called", loop_ok(), S.acts, txaio.is_called, f)
    local called = f:is_called()   -- after the call: finalizers may have acted during it
    if r[1] and not disturbed and r[2] ~= called then
      bad("future #%d: txaio.is_called and f:is_called disagree", m.id)
    end
    local s = str(f)
    local st = s:match("^txaio%.Future: %S+ %((%a+)")
    if st == nil then bad("future #%d: tostring gave %q", m.id, s)
    elseif (st == "pending") == called then bad("future #%d: tostring %q but is_called %s", m.id, s, str(called)) end
    local ok = pcall(f.result, f)
    if not called and ok then bad("future #%d: result() of a pending future did not raise", m.id) end
    if not txaio.is_future(f) then bad("future #%d: is_future false", m.id) end
  end

  function OP.create_failure()
    local s, kind = slot(NX), byte() % 3
    local v = value()
    local epoch = S.acts
    local res
    if kind == 0 then res = try("create_failure", loop_ok(), epoch, txaio.create_failure, v)
    elseif kind == 1 then res = try("create_failure()", false, epoch, txaio.create_failure)
    else res = try("create_failure(v, extra)", loop_ok(), epoch, txaio.create_failure, v, value()) end
    if not res[1] or kind == 1 then return end
    local fl = res[2]
    if not txaio.is_failure(fl) then bad("create_failure returned %s", str(fl)) return end
    if txaio.is_failure(v) then
      if not rawequal(fl, v) then bad("create_failure(failure) made a new failure") end
    elseif not same(fl.value, v) then bad("failure.value is %s, not %s", str(fl.value), str(v)) end
    X[s] = fl
  end

  function OP.query_failure()
    local kind = byte() % 3
    local fl = kind == 2 and value() or X[slot(NX)]
    local epoch = S.acts
    if not txaio.is_failure(fl) then
      try("failure_message(non-failure)", false, epoch, txaio.failure_message, fl)
      try("failure_traceback(non-failure)", false, epoch, txaio.failure_traceback, fl)
      return
    end
    local msg = try("failure_message", loop_ok(), epoch, txaio.failure_message, fl)
    local ok, m2 = pcall(fl.message, fl)
    if not ok or type(m2) ~= "string" then bad("fail:message() gave %s", str(m2)) return end
    if msg[1] and msg[2] ~= m2 then bad("failure_message and fail:message() disagree") end
    local ok2, s = pcall(tostring, fl)
    if not ok2 or s ~= m2 then bad("tostring(failure) is not its message") end
    local ok3, tb = pcall(fl.format_traceback, fl)
    if not ok3 or type(tb) ~= "string" then bad("format_traceback raised: %s", str(tb))
    elseif tb:sub(1, #m2) ~= m2 then bad("format_traceback does not start with the message") end
    local ok4, frames = pcall(fl.traceback, fl)
    if not ok4 or type(frames) ~= "table" then bad("traceback gave %s", str(frames)) end
    if kind == 1 then try("failure_format_traceback", loop_ok(), epoch, txaio.failure_format_traceback, fl) end
  end

  function OP.call_later()
    local s, delay = slot(NH), pick(DELAYS)
    local plan = decode_fn(0)
    if plan == nil then plan = {} end
    schedule(s, delay, plan, args_list(), nil, 0)
  end

  function OP.handle()
    local h, kind = H[slot(NH)], byte() % 3
    if h == nil then return end
    local tm = TM[h]
    local was = h:active()
    if kind == 0 then
      local res, disturbed = try("handle:cancel", true, S.acts, h.cancel, h)
      local r = res[2]
      if not res[1] or disturbed then
        if r == true and tm then tm.cancelled = true end
      elseif r ~= was then bad("cancel returned %s, active() was %s", str(r), str(was))
      elseif r and tm then tm.cancelled = true end
      if h:active() then bad("handle active after cancel") end
      local ok2, again = pcall(h.cancel, h)
      if not ok2 or again ~= false then bad("a second cancel returned %s", str(again)) end
    elseif kind == 1 then
      local s = str(h)
      if tm and not tm.batched then
        local st = s:match("%((%a+)%)$")
        if (st == "pending") ~= was then bad("timer %d: tostring %q but active() %s", tm.id, s, str(was)) end
      end
    else
      if tm and was and (tm.ran > 0 or tm.cancelled) then bad("timer %d active after running", tm.id) end
    end
  end

  function OP.sleep()
    local s, delay = slot(NF), pick(DELAYS)
    local loop = loop_of(S.cur)
    local now = loop and loop_now(loop)
    local res, disturbed = try("sleep", loop_ok() and finite(delay), S.acts, txaio.sleep, delay)
    if not res[1] then return end
    local f = res[2]
    -- a finalizer that ticked the loop during sleep() may have resolved a sleep(0) already
    put_future(s, f, disturbed and f:is_called() and "resolved" or nil, nil)
    if now == nil or not finite(delay) then return end
    local due = now + (delay > 0 and delay or 0)
    local id = meta(f).id
    attach(f, {}, {}, 0, "method", function(side)
      local t = loop_now(loop)
      if side == "callback" and t and t < due then bad("sleep #%d resolved at %s, before %s", id, str(t), str(due)) end
    end)
  end

  function OP.make_batched_timer()
    local s, secs, chunk = slot(NB), pick(BUCKETS), pick(CHUNKS)
    if chunk == false then chunk = nil end
    local valid = finite(secs) and secs > 0 and secs < 1e9 and math.floor(secs * 1000 + 0.5) >= 1
      and (chunk == nil or (type(chunk) == "number" and chunk >= 1 and chunk == math.floor(chunk)))
    local loop = loop_of(S.cur)
    local want = valid and loop ~= nil
    if chunk == 1.5 or chunk == "2" then want = nil end   -- string coercion; 5.1/5.2 truncate
    local res = try("make_batched_timer", want, S.acts, txaio.make_batched_timer, secs, chunk)
    if res[1] then B[s] = { bt = res[2], loop = loop } end
  end

  function OP.batched_call_later()
    local bt, delay = B[slot(NB)], pick(DELAYS)
    local s = slot(NH)
    local plan = decode_fn(0)
    if plan == nil then plan = {} end
    if bt == nil then return end
    schedule(s, delay, plan, args_list(), bt, 0)
  end

  function OP.clock()
    local step = pick(STEPS)
    local now = env.clock()
    local t
    if step ~= step or step == math.huge or step == -math.huge or step == 1e300 then t = step
    else t = (S.clock_bad and 0 or now) + step end
    env.set_clock(t)
    S.clock_bad = not finite(t)
  end

  -- Bit 2 of the kind byte: tick from inside a new coroutine.
  function OP.tick()
    local b = byte()
    local kind = b % 4
    local wrap = math.floor(b / 4) % 2 == 1 and in_coroutine or function(fn) return fn end
    if kind == 0 then
      local loop = loop_of(S.cur)
      local res = try("txaio_tick", loop ~= nil, S.acts, wrap(env.tick))
      if res[1] and loop then
        local r, pending = res[2], loop:pending()
        if type(r) ~= "number" or r ~= r then bad("tick returned %s", str(r))
        elseif (r >= 0) ~= (pending > 0) then bad("tick returned %s with %d pending", str(r), pending) end
      end
    elseif kind == 1 then
      local rec = LOOPS[byte() % #LOOPS + 1]
      local res = try("loop:tick", true, S.acts, wrap(rec.loop.tick), rec.loop)
      if res[1] then
        local r = res[2]
        if r ~= nil and (type(r) ~= "number" or r ~= r or r < 0) then bad("loop:tick returned %s", str(r)) end
        if (r ~= nil) ~= (rec.loop:pending() > 0) then bad("loop:tick returned %s with %d pending", str(r),
          rec.loop:pending()) end
      end
    elseif kind == 2 then   -- what a host does: tick each loop whose wake-up time has come
      for _, rec in ipairs(LOOPS) do
        local at = rec.wake_at()
        if at and not S.clock_bad and at <= env.clock() then
          try("due tick", true, S.acts, wrap(rec.loop.tick), rec.loop)
        end
      end
    else                    -- jump the clock to the next deadline and tick, a few times
      local rec = S.cur or LOOPS[1]
      for _ = 1, byte() % 8 + 1 do
        local due = rec.loop._sched:next_due()
        if due == nil or not finite(due) or S.clock_bad then break end
        if due > env.clock() then env.set_clock(due) end
        try("tick at deadline", true, S.acts, wrap(rec.loop.tick), rec.loop)
      end
    end
  end

  function OP.drop()
    local kind, s = byte() % 6, byte()
    if kind == 0 then F[s % NF + 1] = nil
    elseif kind == 1 then H[s % NH + 1] = nil
    elseif kind == 2 then X[s % NX + 1] = nil
    elseif kind == 3 then B[s % NB + 1] = nil
    elseif kind == 4 then K[s % NK + 1] = nil
    else F, H = {}, {} end
  end

  local gc_restore = {}
  function OP.gc()
    local kind, n = byte() % 5, byte()
    if kind == 0 then env.gc()
    elseif kind == 1 then collectgarbage("step", n)
    elseif kind == 2 and LUA54 then
      local prev = collectgarbage(n % 2 == 0 and "generational" or "incremental")
      if gc_restore.mode == nil then gc_restore.mode = prev end
    elseif kind == 3 then
      local prev = collectgarbage("setpause", n % 120)
      if gc_restore.pause == nil then gc_restore.pause = prev end
    else
      S.in_api = S.in_api + 1   -- finalizers may act during this collection
      env.gc()
      S.in_api = S.in_api - 1
    end
  end

  -- The main loop, one made by env.new_loop (txaio_pushhostloop in the harness), one with a Lua
  -- adapter, or none. Replacing a loop lets the old one be collected with its timers pending.
  function OP.select_loop()
    local k = byte() % 4
    local fresh = (k == 1 or k == 2) and byte() % 4 == 0
    if k == 0 then S.cur = LOOPS[1]
    elseif k == 3 then S.cur = nil
    else
      local rec = k == 1 and S.extra_c or S.extra_lua
      if rec == nil or fresh then
        if k == 1 then
          local ok, loop, wake_at = pcall(env.new_loop)
          if not ok then return end   -- the harness has room for a fixed number of loops
          rec = { loop = loop, wake_at = wake_at, kind = "c" }
          S.extra_c = rec
        else
          rec = adapter_loop()
          S.extra_lua = rec
        end
      end
      S.cur = rec
    end
    LOOPS = { LOOPS[1] }
    if S.extra_c then LOOPS[#LOOPS + 1] = S.extra_c end
    if S.extra_lua then LOOPS[#LOOPS + 1] = S.extra_lua end
    txaio.config.loop = loop_of(S.cur)
    if txaio.config.loop ~= loop_of(S.cur) then bad("config.loop did not take the loop") end
  end

  -- Many timers at once: enough to fill buckets past their chunk size and to grow the heap past
  -- the size at which an idle scheduler gives its memory back.
  function OP.burst()
    local n, kind, cancel_every = (byte() % 32 + 1) * 40, byte() % 2, byte() % 4
    local bt = kind == 1 and B[slot(NB)] or nil
    local hs = slot(NH)
    local loop = bt and bt.loop or loop_of(S.cur)
    if loop == nil or S.clock_bad then return end
    if kind == 1 and bt == nil then return end
    local fired = {}
    local function fn(id, due)
      S.burst_fired = S.burst_fired + 1
      if fired[id] then bad("burst timer %d ran twice", id) end
      fired[id] = true
      local now = loop_now(loop)
      if now and now < due then bad("burst timer %d ran at %s, before %s", id, str(now), str(due)) end
    end
    local now = loop_now(loop)
    if now == nil or (bt and math.abs(now) * 1000 >= 2 ^ 52) then return end
    local handles = {}
    for i = 1, n do
      local delay = (i % 7) * 0.25
      local res
      if bt then res = try("burst bt:call_later", true, S.acts, bt.bt.call_later, bt.bt, delay, fn, i, now + delay)
      else res = try("burst call_later", true, S.acts, txaio.call_later, delay, fn, i, now + delay) end
      if not res[1] then return end
      handles[i] = res[2]
    end
    if cancel_every > 0 then
      for i = 1, n, cancel_every + 1 do
        if fired[i] then break end
        local ok, r = pcall(handles[i].cancel, handles[i])
        if not ok or r ~= true then bad("burst: cancel of pending timer %d returned %s", i, str(r)) end
      end
    end
    H[hs] = handles[n]
  end

  -- Bit 0: the report handler raises too. Bits 1-2: how the Lua adapter loop's wake() behaves.
  function OP.modes()
    local b = byte()
    S.handler_raises = b % 2 == 1
    S.wake_mode = math.floor(b / 2) % 4
  end

  function OP.gc_actor()
    local s, keep = slot(NK), byte() % 2
    local a = gc_actor(decode_action(0), byte() % 2 == 1)
    if keep == 1 then K[s] = a end
  end

  -- A table that borrowed a future's metatable must be refused everywhere, and collected safely.
  function OP.impostor()
    local f, k = F[slot(NF)], slot(NK)
    if f == nil then return end
    local t = setmetatable({}, getmetatable(f))
    local epoch = S.acts
    try("resolve(impostor)", false, epoch, txaio.resolve, t, 1)
    try("cancel(impostor)", false, epoch, txaio.cancel, t)
    try("add_callbacks(impostor)", false, epoch, txaio.add_callbacks, t, function() end)
    try("gather{impostor}", false, epoch, txaio.gather, { t })
    try("tostring(impostor)", false, epoch, tostring, t)
    if txaio.is_future(t) or env.is_future(t) then bad("is_future(impostor) is true") end
    K[k] = t
  end

  -- A chain of futures, each resolving the next from its callback: the run queue's trampoline.
  function OP.chain()
    local n, s, keep = byte() % 64 + 2, slot(NF), byte()
    if not loop_ok() then return end
    local futures = {}
    for i = 1, n do futures[i] = txaio.create_future() end
    for i = 1, n - 1 do
      txaio.add_callbacks(futures[i], function(v) txaio.resolve(futures[i + 1], v + 1) end)
    end
    local last
    txaio.add_callbacks(futures[n], function(v) last = v end)
    try("resolve(chain)", true, S.acts, txaio.resolve, futures[1], 1)
    if S.acts == 0 and last ~= n then bad("chain of %d ended with %s", n, str(last)) end
    F[s] = futures[keep % n + 1]
  end

  ------------------------------------------------------------------ invariants
  local function check_pair(m, p, state, r)
    if state == nil then
      if p.cb_ran + p.eb_ran > 0 then bad("future #%d: pair %d ran while the future is pending", m.id, p.i) end
      return
    end
    if state == "resolved" then
      if p.eb_ran > 0 then bad("future #%d: errback %d ran but the future is resolved", m.id, p.i) end
      if p.has_cb and p.cb_ran == 0 then bad("future #%d: callback %d never ran", m.id, p.i) end
      if p.cb_ran > 0 and not same(p.cb_arg, r) then
        bad("future #%d: callback %d got %s, result() is %s", m.id, p.i, str(p.cb_arg), str(r))
      end
    else
      if p.cb_ran > 0 then bad("future #%d: callback %d ran but the future failed", m.id, p.i) end
      if p.has_eb and p.eb_ran == 0 then bad("future #%d: errback %d never ran", m.id, p.i) end
      if p.eb_ran > 0 and txaio.is_failure(p.eb_arg) and not same(p.eb_arg.value, r) then
        bad("future #%d: errback %d got %s, result() raises %s", m.id, p.i, str(p.eb_arg.value), str(r))
      end
    end
  end

  local function check_future(f, m)
    if m.order_bad and not m.unordered then bad(m.order_bad) end
    m.order_bad = nil
    local called = f:is_called()
    local ok, r = pcall(f.result, f)
    local state = called and (ok and "resolved" or "failed") or nil
    if not called and ok then bad("future #%d: result() of a pending future returned", m.id) end
    for _, p in ipairs(m.pairs) do
      check_pair(m, p, state, r)
    end
    if m.outcome and state ~= m.outcome.state then
      bad("future #%d: %s, but it was %s by the program", m.id, str(state), m.outcome.state)
    elseif m.outcome and not same(m.outcome.value, r) then
      bad("future #%d: result %s, but it was %s with %s", m.id, str(r), m.outcome.state, str(m.outcome.value))
    end
  end

  -- `held`: the program still holds h in a slot, so tm.loop keeps its loop alive. A handle the
  -- program dropped may belong to a loop collected in the same cycle, whose finalizer marks it
  -- done; Lua 5.4 removes such a key from a weak table only one collection later.
  local function check_timer(h, tm, held)
    local active = h:active()
    if active and (tm.ran > 0 or tm.cancelled) then bad("timer %d active after it ran or was cancelled", tm.id) end
    if held and not active and tm.ran == 0 and not tm.cancelled then
      bad("timer %d is done but neither ran nor was cancelled (%s; its loop has %s pending)", tm.id, str(h),
        tm.loop and str(tm.loop:pending()) or "no loop")
    end
  end

  local function check_loop(rec)
    local loop = rec.loop
    local pending = loop:pending()
    local due = loop._sched:next_due()
    if (pending > 0) ~= (due ~= nil) then bad("%s loop: %d pending, next_due %s", rec.kind, pending, str(due)) end
    if due and finite(due) and not rec.misbehaved then   -- a wake() that raised told the host nothing
      local at = rec.wake_at()
      if at == nil then
        bad("%s loop: %d pending (next at %s) but no wake-up was asked for", rec.kind, pending, str(due))
      elseif at > due + 1e-9 * math.max(1, math.abs(due)) then
        bad("%s loop: asked to wake at %s, after the next deadline %s", rec.kind, str(at), str(due))
      end
    end
  end

  local function check()
    collectgarbage("stop")   -- no finalizer may act mid-check (the collector is never left stopped)
    for f, m in pairs(META) do check_future(f, m) end
    local held = {}
    for _, h in pairs(H) do held[h] = true end
    for h, tm in pairs(TM) do check_timer(h, tm, held[h]) end
    for _, rec in ipairs(LOOPS) do check_loop(rec) end
    if S.reports.callback ~= S.raised.callback then
      bad("%d callbacks raised, %d were reported", S.raised.callback, S.reports.callback)
    end
    if S.reports.canceller ~= S.raised.canceller then
      bad("%d cancellers raised, %d were reported", S.raised.canceller, S.reports.canceller)
    end
    collectgarbage("restart")
    if #S.violations > 0 then
      error(("fuzz invariant violated after operation %d (byte %d):\n  %s\nlast operations:\n  %s")
        :format(S.nops, S.pos, table.concat(S.violations, "\n  "), table.concat(S.ring, "\n  ")), 0)
    end
  end

  ------------------------------------------------------------------ the run
  local PREFIX = "Unhandled error in "
  local previous_handler = report.set_handler(function(message, failure)
    local what = message:match("^Unhandled error in (%a+): ")
    if S.live then
      if what == nil or S.reports[what] == nil then bad("unexpected report: %s", message)
      else S.reports[what] = S.reports[what] + 1 end
      if not txaio.is_failure(failure) then bad("the reporter got %s, not a failure", str(failure))
      elseif message ~= PREFIX .. what .. ": " .. failure:message() then
        -- a value whose tostring contains itself (reject(f, f)) recurses until Lua's C stack
        -- limit, so the text depends on how deep the stack was: compare the prefix only
        local overflow = message:find("stack overflow", 1, true)
        if not (overflow and message:sub(1, #PREFIX + #what + 2) == PREFIX .. what .. ": ") then
          bad("report %q does not match its failure", message)
        end
      end
    end
    if S.handler_raises then error("the handler raises too", 0) end
  end)
  -- the default handler, used when ours raises, logs instead of writing to stderr
  loglib.api.start_logging { out = function() end, level = "trace" }

  local function finish()
    S.live = false
    if gc_restore.mode then collectgarbage(gc_restore.mode) end
    if gc_restore.pause then collectgarbage("setpause", gc_restore.pause) end
    -- The harness closes the state next: everything the program holds, its loop selection
    -- included, is left for lua_close, whose finalizers (newest first) may use a loop whose
    -- scheduler was finalized just before. The spec's process goes on: it cleans up.
    if env.after_end == "act" then return end
    F, H, X, B, K = {}, {}, {}, {}, {}
    txaio.config.loop = LOOPS[1].loop
    env.gc()
    report.flush()
    report.set_handler(previous_handler)
    loglib.reset()
  end

  local ok, err = pcall(function()
    while S.nops < M.MAX_OPS and S.pos < len do
      local name = M.OPS[byte() % #M.OPS + 1]
      S.nops = S.nops + 1
      S.opcount[name] = (S.opcount[name] or 0) + 1
      note(("%d @%d %s"):format(S.nops, S.pos, name))
      OP[name]()
      check()
    end
  end)
  finish()
  if not ok then error(err, 0) end
  return {
    ops = S.nops, opcount = S.opcount, callbacks = S.callbacks, timers_fired = S.timers_fired,
    burst_fired = S.burst_fired, raised = S.raised, reports = S.reports, errors = S.errors,
    calls = S.calls, futures = nfuture, timers = ntimers, budget_left = S.budget,
  }
end

return M
