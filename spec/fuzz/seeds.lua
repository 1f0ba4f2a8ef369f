--- Writes the hand-made seeds of the fuzz corpus: `lua5.4 spec/fuzz/seeds.lua spec/fuzz-corpus`.
-- Each seed is a list of operations in the input format of spec/fuzz/ops.lua: an operation name
-- (its opcode byte is its index in ops.OPS, minus one) followed by the argument bytes it reads.
-- Nested tables are flattened, so the helpers below can spell values, callables and actions.
-- The seeds cover every operation; libFuzzer mutates them and `make fuzz` adds what it finds.
package.path = "./spec/fuzz/?.lua;" .. package.path
local ops = require "ops"

local OPCODE = {}
for i, name in ipairs(ops.OPS) do OPCODE[name] = i - 1 end

-- Argument bytes, as ops.lua reads them (slots count from 1 here, from 0 in the input).
local V = {   -- value(): the first byte picks the kind
  none = 0, f = 1, t = 2, nan = 5, inf = 6, ninf = 7, negzero = 8, huge = 9, empty = 11, lines = 13,
  table = 14, raising = 15, odd = 16, named = 18, fn = 24, thread = 25, index_raises = 27,
  int = function(b) return { 3, b } end,        -- b - 128
  float = function(b) return { 4, b } end,      -- b / 4
  str = function(b) return { 10, b } end,       -- "v" .. b
  long = function(b) return { 12, b } end,      -- 8 * b bytes
  failure = function(s) return { 19, s - 1 } end,
  future = function(s) return { 20, s - 1 } end,
  new_failure = function(b) return { 21, b } end,
  cancelled = function(b) return { 22, b } end,
  actor = function(action, recurring) return { 23, action, recurring and 1 or 0 } end,
  impostor = function(s) return { 26, s - 1 } end,
}
local A = {   -- decode_action(): what a callback, canceller or finalizer does
  resolve = function(s, v) return { 0, s - 1, v } end,
  reject = function(s, v) return { 1, s - 1, v } end,
  cancel = function(s) return { 2, s - 1 } end,
  resolve_self = function(v) return { 3, 0, v } end,
  reject_self = function(v) return { 4, 0, v } end,
  cancel_self = function() return { 5, 0 } end,
  add_callbacks = function(s, cb, eb) return { 6, s - 1, cb, eb } end,
  call_later = function(delay, fn) return { 7, 0, delay, fn } end,
  cancel_handle = function(h) return { 8, 0, h - 1 } end,
  tick = { 9, 0 },
  gc = { 10, 0 },
  create = function(s) return { 11, s - 1 } end,
  gather = function(s, s2) return { 12, s - 1, s2 - 1 } end,
  drop = function(s) return { 13, s - 1 } end,
  c_resolve = function(s, v) return { 14, s - 1, v } end,
  batched = function(b, delay, fn) return { 15, b - 1, delay, fn } end,
}
local FN = {  -- decode_fn(): a callable's plan
  none = 0, rec = 1, callable = 2, bad = 7,
  raise = function(k, b) return { 3, k, b } end,   -- 0 string (b), 1 nil, 2 table, 3 failure, 4 cancel
  act = function(action) return { 4, action } end,
}
local D = { zero = 0, ms = 2, half = 3, one = 4, two5 = 6, ten = 7, neg = 8, nan = 9, inf = 10,
            ninf = 11, e300 = 12, big = 13, tiny = 14, str = 15, quarter = 17 }          -- DELAYS
local STEP = { zero = 0, ms = 1, half = 4, one = 5, two5 = 7, ten = 8, thousand = 9, back = 10,
               nan = 11, e300 = 12, inf = 13, ninf = 14, big = 15, quarter = 16 }    -- STEPS
local VIA = { txaio = 0, method = 1, c = 2 }
local ARGS0 = 0   -- args_list(): a count byte, then that many values

local function op(name, ...) return { OPCODE[name] or error("no operation " .. name), ... } end

local SEEDS = {
  -- every way to make, complete and observe a future
  futures = {
    op("create_future", 0, 0),
    op("add_callbacks", 0, FN.rec, FN.rec, 0),
    op("add_callbacks", 0, FN.callable, FN.none, 1),
    op("resolve", 0, VIA.txaio, V.str(1)),
    op("resolve", 0, VIA.method, V.str(2)),                   -- already resolved: raises
    op("add_callbacks", 0, FN.rec, FN.rec, 0),                -- on a completed future
    op("create_future", 1, 2, V.float(6)),
    op("create_future", 2, 3, V.str(3)),
    op("create_future", 3, 4, V.str(4), V.str(5)),            -- both: raises
    op("create_variant", 4, 0, V.none),
    op("create_variant", 5, 1, V.table),
    op("create_variant", 6, 2, V.none),
    op("add_callbacks", 5, FN.none, FN.rec, 1),
    op("reject", 6, VIA.method, V.new_failure(7)),
    op("reject", 0, VIA.txaio, V.none),                       -- nil: raises
    op("query_future", 0), op("query_future", 5), op("query_future", 6), op("query_future", 7),
  },
  -- cancellers that complete, raise, or cancel again; cancel messages of every type
  cancel = {
    op("create_future", 0, 1, FN.rec),
    op("add_callbacks", 0, FN.rec, FN.rec, 0),
    op("cancel", 0, 1, 9, 0),
    op("cancel", 0, 0, 1),                                    -- again: false
    op("resolve", 0, VIA.txaio, V.str(1)),                    -- ignored
    op("create_future", 1, 1, FN.act(A.resolve_self(V.str(2)))),
    op("add_callbacks", 1, FN.rec, FN.rec, 1),
    op("cancel", 1, 2, 42, 1),
    op("create_future", 2, 1, FN.raise(1)),
    op("add_callbacks", 2, FN.rec, FN.rec, 0),
    op("cancel", 2, 0, 0),
    op("create_future", 3, 1, FN.act(A.cancel_self())),
    op("cancel", 3, 3, 0),                                    -- a table message: raises
    op("cancel", 3, 0, 0),
    op("create_future", 4, 5, V.int(130)),                    -- a canceller that is not callable
    op("query_future", 0), op("query_future", 1),
  },
  -- gather with and without consume_exceptions, duplicates, non-futures, the empty list
  gather = {
    op("create_future", 0, 0), op("create_future", 1, 0), op("create_future", 2, 0),
    op("gather", 3, 7, 0, 0),
    op("gather", 4, 7, 1, 2),
    op("add_callbacks", 3, FN.rec, FN.rec, 0),
    op("resolve", 0, VIA.txaio, V.str(1)),
    op("reject", 1, VIA.txaio, V.str(2)),
    op("resolve", 2, VIA.c, V.none),
    op("gather", 5, 7, 2, 1, V.int(1)),
    op("gather", 6, 0, 3, 0),
    op("create_future", 7, 0),
    op("gather", 5, 128, 0, 2),
    op("cancel", 5, 0, 0),
    op("resolve", 7, VIA.txaio, V.str(3)),
  },
  -- callbacks that complete, cancel and subscribe to other futures and to their own
  reentrancy = {
    op("create_future", 0, 0), op("create_future", 1, 0), op("create_future", 2, 0),
    op("add_callbacks", 0, FN.act(A.resolve(2, V.str(1))), FN.act(A.cancel(3)), 0),
    op("add_callbacks", 1, FN.act(A.add_callbacks(3, FN.rec, FN.act(A.reject(1, V.str(2))))), FN.rec, 0),
    op("add_callbacks", 2, FN.act(A.gather(4, 1)), FN.raise(3), 0),
    op("add_callbacks", 0, FN.act(A.resolve_self(V.str(3))), FN.act(A.cancel_self()), 1),
    op("add_callbacks", 0, FN.act(A.create(6)), FN.act(A.drop(2)), 0),
    op("add_callbacks", 1, FN.act(A.c_resolve(3, V.none)), FN.act(A.tick), 0),
    op("resolve", 0, VIA.txaio, V.str(4)),
    op("add_callbacks", 3, FN.act(A.gc), FN.raise(0, 5), 0),
    op("query_future", 1), op("query_future", 2), op("query_future", 3),
  },
  -- as_future and failures: values of every kind, messages that cannot be made
  failures = {
    op("as_future", 0, 0, V.str(1), ARGS0),
    op("as_future", 1, 1, V.none, 2, V.none, V.nan, 0),
    op("as_future", 2, 2, V.raising, ARGS0),
    op("as_future", 3, 3, V.none, ARGS0),
    op("as_future", 4, 4, V.none, 3, V.t, V.none, V.lines),
    op("create_failure", 0, 0, V.raising),
    op("create_failure", 1, 0, V.odd),
    op("create_failure", 2, 0, V.named),
    op("create_failure", 3, 2, V.lines, V.none),
    op("create_failure", 0, 1),
    op("query_failure", 0, 0), op("query_failure", 1, 1), op("query_failure", 0, 2),
    op("query_failure", 1, 3), op("query_failure", 2, V.table), op("query_failure", 2, V.failure(1)),
    op("reject", 0, VIA.c, V.failure(2)),
    op("create_future", 5, 3, V.cancelled(1)),
    op("create_variant", 6, 1, V.failure(3)),
    op("add_callbacks", 6, FN.none, FN.rec, 0),
    op("reject", 7, VIA.txaio, V.long(200)),
    op("query_future", 6), op("query_future", 2),
  },
  -- timers: deadlines, ticks, cancel, arguments with nils and NaN, delays that must be refused
  timers = {
    op("call_later", 0, D.one, FN.rec, 3, V.none, V.nan, V.str(1)),
    op("call_later", 1, D.zero, FN.raise(1), ARGS0),
    op("call_later", 2, D.half, FN.act(A.call_later(D.zero, FN.rec)), ARGS0),
    op("call_later", 3, D.nan, FN.rec, ARGS0),
    op("call_later", 4, D.str, FN.rec, ARGS0),
    op("call_later", 5, D.neg, FN.bad, ARGS0),
    op("call_later", 6, D.two5, FN.act(A.cancel_handle(1)), ARGS0),
    op("handle", 0, 1),
    op("tick", 0),
    op("clock", STEP.half), op("tick", 0),
    op("tick", 3, 7),
    op("handle", 0, 0), op("handle", 6, 2), op("handle", 3, 1),
    op("sleep", 0, D.one), op("sleep", 1, D.ten), op("sleep", 2, D.inf),
    op("cancel", 1, 0, 0),
    op("clock", STEP.two5), op("tick", 2),
    op("query_future", 0), op("query_future", 1),
  },
  -- batched timers: chunking, cancel of the last pending call, bad bucket sizes and chunks
  batched = {
    op("make_batched_timer", 0, 3, 1),
    op("make_batched_timer", 1, 0, 5),
    op("make_batched_timer", 1, 6, 0),
    op("make_batched_timer", 1, 9, 0),
    op("make_batched_timer", 1, 2, 6),
    op("batched_call_later", 0, D.one, 0, FN.rec, 1, V.str(1)),
    op("batched_call_later", 0, D.one, 1, FN.raise(2), ARGS0),
    op("batched_call_later", 0, D.quarter, 2, FN.act(A.batched(1, D.zero, FN.rec)), ARGS0),
    op("batched_call_later", 0, D.ten, 3, FN.rec, ARGS0),
    op("handle", 3, 0),
    op("burst", 3, 1, 2, 0, 4),                               -- on batched timer 1, handle in slot 5
    op("tick", 3, 200),
    op("clock", STEP.ten), op("tick", 0), op("tick", 3, 200),
    op("handle", 0, 2), op("handle", 1, 0),
  },
  -- several loops (C and Lua adapters), none at all, clocks that go back, NaN and infinities
  loops = {
    op("call_later", 0, D.one, FN.rec, ARGS0),
    op("select_loop", 1, 0),
    op("call_later", 1, D.half, FN.rec, ARGS0),
    op("sleep", 0, D.two5),
    op("select_loop", 2, 0),
    op("call_later", 2, D.ms, FN.rec, ARGS0),
    op("make_batched_timer", 0, 0, 0),
    op("batched_call_later", 0, D.one, 3, FN.rec, ARGS0),
    op("select_loop", 3),
    op("create_future", 1, 0), op("call_later", 3, D.one, FN.rec, ARGS0), op("tick", 0),
    op("clock", STEP.nan), op("tick", 1, 0), op("select_loop", 0), op("call_later", 4, D.zero, FN.rec, 0),
    op("clock", STEP.inf), op("tick", 1, 1),
    op("clock", STEP.back), op("clock", STEP.two5), op("tick", 2), op("tick", 1, 2),
    op("select_loop", 1, 0), op("select_loop", 2, 1),
    op("clock", STEP.e300), op("batched_call_later", 0, D.zero, 5, FN.rec, ARGS0),
    op("call_later", 6, D.big, FN.rec, ARGS0), op("tick", 2),
  },
  -- a Lua adapter whose wake() raises, runs the loop from inside (refused), or both
  wake = {
    op("select_loop", 2, 0), op("clock", STEP.one),
    op("call_later", 0, D.ten, FN.rec, ARGS0),
    op("modes", 2), op("call_later", 1, D.one, FN.rec, ARGS0), op("sleep", 0, D.half),
    op("modes", 4), op("call_later", 2, D.zero, FN.rec, ARGS0),
    op("make_batched_timer", 0, 3, 0), op("batched_call_later", 0, D.zero, 3, FN.rec, ARGS0),
    op("modes", 6), op("call_later", 3, D.ms, FN.rec, ARGS0), op("handle", 0, 0),
    op("modes", 0), op("call_later", 4, D.half, FN.rec, ARGS0), op("tick", 3, 4), op("tick", 2),
    op("modes", 2), op("tick", 1, 2), op("modes", 0), op("tick", 3, 4),
  },
  -- finalizers left for lua_close (in the harness), where a loop made after them is finalized first
  closing = {
    op("gc_actor", 0, 1, A.call_later(D.one, FN.rec), 0),
    op("gc_actor", 1, 1, A.batched(1, D.zero, FN.rec), 1),
    op("select_loop", 2, 0), op("make_batched_timer", 0, 3, 0),
    op("gc_actor", 2, 1, A.tick, 0),
    op("select_loop", 1, 0),
    op("call_later", 0, D.one, FN.rec, ARGS0),
  },
  -- what the core pushes on the stack: 100 gathers nested, 240 timer arguments, a coroutine ticks
  nested = (function()
    local prog = { op("create_future", 0, 0), op("gather", 1, 1, 0, 0) }
    for _ = 1, 100 do prog[#prog + 1] = op("gather", 1, 2, 0, 0) end   -- slot 2 = gather{slot 2}
    prog[#prog + 1] = op("add_callbacks", 1, FN.rec, FN.rec, 0)
    prog[#prog + 1] = op("resolve", 0, VIA.txaio, V.str(1))
    prog[#prog + 1] = op("call_later", 0, D.zero, FN.rec, 255)
    prog[#prog + 1] = op("make_batched_timer", 0, 0, 0)
    prog[#prog + 1] = op("batched_call_later", 0, D.zero, 1, FN.rec, 254)
    prog[#prog + 1] = op("tick", 4)
    prog[#prog + 1] = op("tick", 7, 2)
    return prog
  end)(),
  -- the C embedding API: txaio_newfuture, txaio_resolve, txaio_reject
  c_api = {
    op("c_new_future", 0), op("c_new_future", 1), op("c_new_future", 2),
    op("add_callbacks", 0, FN.rec, FN.rec, 0),
    op("add_callbacks", 1, FN.rec, FN.rec, 1),
    op("resolve", 0, VIA.c, V.none),
    op("reject", 1, VIA.c, V.str(1)),
    op("reject", 2, VIA.c, V.none),
    op("resolve", 1, VIA.c, V.str(2)),
    op("cancel", 2, 0, 0), op("resolve", 2, VIA.c, V.t),
    op("select_loop", 3), op("c_new_future", 3), op("resolve", 3, VIA.c, V.future(1)), op("tick", 0),
  },
  -- the collector: dropped futures that failed unobserved, finalizers that call txaio, GC modes
  gc = {
    op("create_variant", 0, 1, V.str(1)),
    op("create_future", 1, 3, V.table),
    op("drop", 0, 0), op("drop", 0, 1), op("gc", 0, 0),
    op("gc_actor", 0, 0, A.resolve(3, V.str(2)), 1),
    op("gc_actor", 1, 1, A.call_later(D.zero, FN.rec), 1),
    op("create_future", 2, 0),
    op("resolve", 3, VIA.txaio, V.actor(A.reject(3, V.str(3)), false)),
    op("gc", 4, 0), op("gc", 2, 0), op("gc", 3, 0), op("gc", 1, 200),
    op("call_later", 0, D.zero, FN.rec, 1, V.actor(A.cancel(3), true)),
    op("drop", 1, 0), op("gc", 4, 0), op("gc", 2, 1), op("gc", 3, 100),
    op("select_loop", 1, 0), op("gc_actor", 2, 1, A.call_later(D.one, FN.rec), 0), op("select_loop", 1, 0),
    op("drop", 4, 2), op("gc", 4, 0), op("tick", 3, 3),
    op("drop", 5, 0), op("gc", 0, 0),
  },
  -- everything at once: bursts past the heap's shrink threshold, chains, impostors, the reporter
  mixed = {
    op("modes", 1),
    op("burst", 31, 0, 1, 0),
    op("create_future", 0, 0),
    op("impostor", 0, 0),
    op("create_variant", 1, 1, V.str(1)),
    op("impostor", 1, 1),
    op("drop", 0, 1), op("gc", 0, 0),
    op("chain", 40, 2, 7),
    op("add_callbacks", 0, FN.raise(0, 1), FN.raise(2), 0),
    op("resolve", 0, VIA.txaio, V.impostor(2)),
    op("modes", 0),
    op("tick", 3, 7), op("clock", STEP.thousand), op("tick", 0),
    op("burst", 0, 0, 0, 3),
    op("gather", 4, 255, 0, 0),
  },
}

local dir = arg[1] or "spec/fuzz-corpus"
local function flatten(t, out)
  for _, x in ipairs(t) do
    if type(x) == "table" then flatten(x, out) else out[#out + 1] = string.char(x) end
  end
  return out
end
local names = {}
for name in pairs(SEEDS) do names[#names + 1] = name end
table.sort(names)
for _, name in ipairs(names) do
  local bytes = table.concat(flatten(SEEDS[name], {}))
  local f = assert(io.open(dir .. "/seed-" .. name, "wb"))
  f:write(bytes)
  f:close()
  print(("%s/seed-%s: %d bytes"):format(dir, name, #bytes))
end
