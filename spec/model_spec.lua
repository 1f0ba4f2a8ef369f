-- Model-based randomized test: the same random sequences of operations (create, resolve, reject,
-- cancel, add_callbacks, gather, call_later, handle cancel, Clock:advance, dropping references)
-- run on the C core and on a plain-Lua reference model (spec/support/model.lua) of CONTRACT.md
-- sections 2 and 4, and every observable event must agree, in order.
--
-- TXAIO_SEED picks the seed (default os.time()), TXAIO_MODEL_N the number of sequences (default
-- 2000, fewer under the stress GC pass) and TXAIO_MODEL_OPS their length (200). A failure prints
-- the seed, the sequence and the shortest failing prefix; `make fuzz-long SEED=... N=...` replays.
local txaio = require "txaio"
local report = require "txaio.report"
local testutil = require "txaio.testutil"
local model = require "model"
local helpers = require "helpers"
local unpack = require("compat").unpack

local NF, NH = 6, 4                                  -- future slots, timer handle slots
local DELAYS = { 0, 0, 0.5, 1, 1, 2, 3, -1 }         -- exact binary fractions: no rounding drift
local STEPS = { 0, 0.5, 1, 1, 2, 3.5 }
local SEED = tonumber(os.getenv("TXAIO_SEED") or "") or os.time()
local STRESS = os.getenv("TXAIO_GC") == "stress"
local N = tonumber(os.getenv("TXAIO_MODEL_N") or "") or (STRESS and 50 or 2000)
local OPS = tonumber(os.getenv("TXAIO_MODEL_OPS") or "") or 200

-- Park-Miller: the same sequence on every Lua (products stay below 2^47, exact in a double).
local function rng(seed)
  local s = seed % 2147483646 + 1
  return function(n) s = s * 48271 % 2147483647; return s % n + 1 end
end

---------------------------------------------------------------- generating operations (data)

local gen_fn

local function value(r, c, prefix)
  c.v = c.v + 1
  if prefix == "v" and r(12) == 1 then return nil end   -- nil results: holes in gather lists
  return prefix .. c.v
end

-- An operation that a callback, timer or canceller performs from inside the loop.
local function gen_nested(r, c, depth)
  local k = r(9)
  if k == 1 then return { op = "resolve", slot = r(NF), val = value(r, c, "v") }
  elseif k == 2 then return { op = "reject", slot = r(NF), val = value(r, c, "e") }
  elseif k == 3 then return { op = "cancel", slot = r(NF) }
  elseif k == 4 then return { op = "add_callbacks", slot = r(NF), cb = gen_fn(r, c, depth), eb = gen_fn(r, c, depth) }
  elseif k == 5 then return { op = "call_later", slot = r(NH), delay = DELAYS[r(#DELAYS)], fn = gen_fn(r, c, depth) }
  elseif k == 6 then return { op = "handle_cancel", slot = r(NH) }
  elseif k == 7 then return { op = "create", slot = r(NF), init = "pending" }
  elseif k == 8 then return { op = "resolve", self = true, val = value(r, c, "v") }
  else return { op = "cancel", self = true } end
end

-- A callable: records that it ran (with its argument), then maybe raises or acts.
function gen_fn(r, c, depth)
  c.fn = c.fn + 1
  local fn, k = { id = c.fn }, r(10)
  if k == 1 then fn.raise = true
  elseif k <= 5 and depth < 3 then fn.act = gen_nested(r, c, depth + 1) end
  return fn
end

local function gen_op(r, c)
  local k = r(100)
  if k <= 14 then
    local inits = { "pending", "pending", "pending", "resolved", "success", "failed", "error" }
    local op = { op = "create", slot = r(NF), init = inits[r(#inits)] }
    op.val = value(r, c, (op.init == "failed" or op.init == "error") and "e" or "v")
    if op.init == "pending" and r(2) == 1 then op.canceller = gen_fn(r, c, 0) end
    return op
  elseif k <= 26 then return { op = "resolve", slot = r(NF), val = value(r, c, "v") }
  elseif k <= 33 then return { op = "reject", slot = r(NF), val = value(r, c, "e") }
  elseif k <= 39 then return { op = "cancel", slot = r(NF), msg = r(2) == 1 and "m" .. r(99) or nil }
  elseif k <= 56 then
    local op = { op = "add_callbacks", slot = r(NF) }
    local which = r(20)
    if which ~= 1 and which ~= 3 then op.cb = gen_fn(r, c, 0) end   -- which == 1: both nil
    if which ~= 1 and which ~= 2 then op.eb = gen_fn(r, c, 0) end
    return op
  elseif k <= 61 then
    local items = {}
    for i = 1, r(5) - 1 do items[i] = r(NF) end
    local consume = ({ nil, true, false })[r(3)]
    return { op = "gather", slot = r(NF), items = items, consume = consume, cb = gen_fn(r, c, 0), eb = gen_fn(r, c, 0) }
  elseif k <= 64 then return { op = "is_called", slot = r(NF) }
  elseif k <= 66 then return { op = "result", slot = r(NF) }
  elseif k <= 76 then return { op = "call_later", slot = r(NH), delay = DELAYS[r(#DELAYS)], fn = gen_fn(r, c, 0) }
  elseif k <= 80 then return { op = "handle_cancel", slot = r(NH) }
  elseif k <= 82 then return { op = "handle_active", slot = r(NH) }
  elseif k <= 91 then return { op = "advance", dt = STEPS[r(#STEPS)] }
  elseif k <= 94 then return { op = "tick" }
  else return { op = "drop", slot = r(NF + NH), full = r(4) == 1 } end
end

local function generate(seed)
  local r, c, ops = rng(seed), { v = 0, fn = 0 }, {}
  for i = 1, OPS do ops[i] = gen_op(r, c) end
  return ops
end

---------------------------------------------------------------- running them on one world

-- One line per value, the same for the core's objects and the model's stand-ins.
local function desc(v)
  if txaio.is_failure(v) or (type(v) == "table" and v.failure) then return "F(" .. desc(v.value) .. ")" end
  if type(v) == "number" then return ("%.17g"):format(v) end
  if type(v) ~= "table" then return tostring(v) end
  if getmetatable(v) == txaio.CancelledError or v.cancelled then return "Cancelled(" .. tostring(v.message) .. ")" end
  local out = {}
  for i = 1, v.n or #v do out[i] = desc(v[i]) end
  return "[" .. table.concat(out, ",") .. "]"
end

-- The message of an error raised by an operation, without the core's "bad argument" dressing.
local function errdesc(e)
  if type(e) ~= "string" then return desc(e) end
  return e:match("future already %a+") or e:match("future is still pending")
    or e:match("add_callbacks: .*") or e
end

local run_op

local function make_fn(W, spec, kind)
  return function(arg)
    W.log[#W.log + 1] = kind .. spec.id .. " " .. (kind == "canceller" and "" or desc(arg))
    if spec.raise then error("boom" .. spec.id, 0) end
    if spec.act then run_op(W, spec.act, kind == "canceller" and arg or nil) end
  end
end

local function fn_of(W, spec, kind) return spec and make_fn(W, spec, kind) end

local exec = {}
function exec.create(W, A, op)
  local canceller = fn_of(W, op.canceller, "canceller")
  local f
  if op.init == "pending" then f = A.create_future(nil, nil, canceller)
  elseif op.init == "resolved" then f = A.create_future(op.val)
  elseif op.init == "success" then f = A.create_future_success(op.val)
  elseif op.init == "failed" then f = A.create_future(nil, op.val)
  else f = A.create_future_error(op.val) end
  W.F[op.slot] = f
end
function exec.resolve(_, A, _, f, op) A.resolve(f, op.val) end
function exec.reject(_, A, _, f, op) A.reject(f, op.val) end
function exec.cancel(_, A, _, f, op) return A.cancel(f, op.msg) end
function exec.is_called(_, A, _, f) return A.is_called(f) end
function exec.result(_, A, _, f) return desc(A.result(f)) end
function exec.add_callbacks(W, A, op, f)
  A.add_callbacks(f, fn_of(W, op.cb, "cb"), fn_of(W, op.eb, "eb"))
end
function exec.gather(W, A, op)
  local list = {}
  for _, slot in ipairs(op.items) do list[#list + 1] = W.F[slot] end
  local g = A.gather(list, op.consume)
  W.F[op.slot] = g
  A.add_callbacks(g, make_fn(W, op.cb, "gcb"), make_fn(W, op.eb, "geb"))
end
function exec.call_later(W, A, op) W.H[op.slot] = A.call_later(op.delay, make_fn(W, op.fn, "timer")) end
function exec.handle_cancel(W, A, op) return W.H[op.slot] and A.handle_cancel(W.H[op.slot]) end
function exec.handle_active(W, A, op) return W.H[op.slot] and A.handle_active(W.H[op.slot]) end
function exec.advance(_, A, op) A.advance(op.dt) end
function exec.tick(_, A) return A.tick() end
function exec.drop(W, _, op)
  if op.slot > NF then W.H[op.slot - NF] = nil else W.F[op.slot] = nil end
  collectgarbage(op.full and "collect" or "step")
end

-- Runs one operation and logs what it returned or raised; ops on an empty slot are no-ops.
local NEEDS_FUTURE = { resolve = true, reject = true, cancel = true, is_called = true, result = true,
                       add_callbacks = true }
function run_op(W, op, self_f)
  local f = op.self and self_f or (op.slot and W.F[op.slot])
  if NEEDS_FUTURE[op.op] and not f then W.log[#W.log + 1] = op.op .. " skip"; return end
  local ok, ret = pcall(exec[op.op], W, W.api, op, f, op)
  W.log[#W.log + 1] = op.op .. (ok and " -> " .. desc(ret) or " error " .. errdesc(ret))
end

local current   -- the world whose reports the handler records

local function real_world()
  local clock = testutil.Clock()
  local api = txaio.with_config { loop = clock }
  return { log = {}, F = {}, H = {}, api = setmetatable({
    result = function(f) return f:result() end,
    handle_cancel = function(h) return h:cancel() end,
    handle_active = function(h) return h:active() end,
    pending = function() return clock:pending() end,
    advance = function(dt) clock:advance(dt) end,
    tick = function() return clock:tick() end,
  }, { __index = api }) }
end

local function model_world()
  local W = { log = {}, F = {}, H = {} }
  W.api = model.new(function(what, err)
    W.log[#W.log + 1] = "report " .. what .. " error: " .. tostring(err)
  end)
  return W
end

local function run(W, ops, n)
  current = W
  for i = 1, n do
    W.log[#W.log + 1] = ("op#%d %s"):format(i, ops[i].op)
    run_op(W, ops[i])
    W.log[#W.log + 1] = "pending " .. W.api.pending()
  end
  current = nil
  return W.log
end

-- Index of the first differing event, or nil when both logs agree.
local function mismatch(a, b)
  for i = 1, math.max(#a, #b) do if a[i] ~= b[i] then return i end end
end

-- Under the stress GC pass only the core runs with the collector at every allocation: the model,
-- the generator and the comparison run with ordinary settings, which makes each sequence cheaper.
local function ordinary(fn, ...)
  if not STRESS then return fn(...) end
  local pause, stepmul = helpers.set_ordinary_gc()
  local a, b = fn(...)
  collectgarbage("setpause", pause)
  collectgarbage("setstepmul", stepmul)
  return a, b
end

local function check(ops, n)
  local real = run(real_world(), ops, n)
  local mod = ordinary(run, model_world(), ops, n)
  return ordinary(mismatch, real, mod), real, mod
end

---------------------------------------------------------------- reporting a failure

local function ser(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) ~= "table" then return tostring(v) end
  local keys, out = {}, {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do out[#out + 1] = (type(k) == "number" and "" or k .. "=") .. ser(v[k]) end
  return "{" .. table.concat(out, ", ") .. "}"
end

local function explain(seed, k, ops)
  local first, real, mod = check(ops, #ops)
  -- the op during which the logs diverged, then the shortest prefix that still fails
  local upto = 0
  for i = 1, first do upto = tonumber((mod[i] or real[i]):match("^op#(%d+)")) or upto end
  local n = math.max(upto, 1)
  for len = 1, n do
    if check(ops, len) then n = len; break end
  end
  local prefix = { unpack(ops, 1, n) }
  -- then, as a reading aid, drop every op whose removal keeps the failure
  local small = prefix
  for i = n, 1, -1 do
    local try = { unpack(small, 1, i - 1) }
    for j = i + 1, #small do try[#try + 1] = small[j] end
    if check(try, #try) then small = try end
  end
  first, real, mod = check(small, #small)
  local lines = { ("model: seed %d, sequence %d: core and model disagree; shortest failing prefix: %d ops")
    :format(seed, k, n), "ops:" }
  for i = 1, n do lines[#lines + 1] = ("  %d %s"):format(i, ser(ops[i])) end
  lines[#lines + 1] = ("the same failure with %d of those ops:"):format(#small)
  for i = 1, #small do lines[#lines + 1] = ("  %d %s"):format(i, ser(small[i])) end
  lines[#lines + 1] = "events of the reduced ops (core | model), from the last few that agreed:"
  for i = math.max(1, (first or 1) - 8), math.max(#real, #mod) do
    lines[#lines + 1] = ("  %s %-40s | %s"):format(i == first and ">>" or "  ", tostring(real[i]), tostring(mod[i]))
  end
  return table.concat(lines, "\n")
end

describe("the core against the reference model", function()
  local previous

  setup(function()
    previous = report.set_handler(function(message)
      local what, msg = message:match("^Unhandled error in (%a+): (.*)$")
      if current and what ~= "future" then   -- finalizer reports come whenever the GC runs
        current.log[#current.log + 1] = "report " .. tostring(what) .. " " .. tostring(msg or message)
      end
    end)
  end)

  teardown(function() report.set_handler(previous) end)

  it(("agrees on %d random sequences of %d operations"):format(N, OPS), function()
    io.write(("\nmodel: seed %d (TXAIO_SEED=%d replays), %d sequences of %d operations%s\n")
      :format(SEED, SEED, N, OPS, STRESS and " (fewer under the stress GC)" or ""))
    io.flush()
    for k = 1, N do
      local seed = (SEED * 7919 + k) % 2147483646
      local ops = ordinary(generate, seed)
      if check(ops, #ops) then
        error(explain(SEED, k, ops), 0)
      end
    end
  end)

  it("logs a known sequence identically on both sides, callbacks in the order added", function()
    local ops = {
      { op = "create", slot = 1, init = "pending" },
      { op = "add_callbacks", slot = 1, cb = { id = 1 } },
      { op = "add_callbacks", slot = 1, cb = { id = 2 } },
      { op = "resolve", slot = 1, val = "v" },
    }
    local real = run(real_world(), ops, #ops)
    assert.are.same({ "op#1 create", "create -> nil", "pending 0", "op#2 add_callbacks",
      "add_callbacks -> nil", "pending 0", "op#3 add_callbacks", "add_callbacks -> nil", "pending 0",
      "op#4 resolve", "cb1 v", "cb2 v", "resolve -> nil", "pending 0" }, real)
    assert.is_nil(mismatch(real, run(model_world(), ops, #ops)))
  end)
end)
