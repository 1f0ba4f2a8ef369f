--- The benchmark driver behind `make bench` and `make bench-quick`.
-- Runs every workload and its baseline in a fresh interpreter process, several times, takes the
-- median of each figure, and prints one table (plain text, then the same table as markdown) with
-- the ratio to the baseline measured in the same run and whether the target was reached.
-- Usage (from the checkout, LUA_PATH/LUA_CPATH pointing at ./lua and the build):
--   lua5.4 bench/run.lua --lua lua5.4 --c build/bench/libuv_timers [--quick]
-- Progress goes to stderr; only the tables go to stdout.

local LUA, CPROG, QUICK = "lua5.4", "build/bench/libuv_timers", false
do
  local i = 1
  while arg[i] do
    if arg[i] == "--lua" then LUA, i = arg[i + 1], i + 1
    elseif arg[i] == "--c" then CPROG, i = arg[i + 1], i + 1
    elseif arg[i] == "--quick" then QUICK = true
    else error("bench/run.lua: unknown argument " .. arg[i]) end
    i = i + 1
  end
end

local REPS = QUICK and 3 or 5
-- repetition counts per workload: full, then quick
local function n(full, quick) return QUICK and quick or full end
local N_FUT, N_GATHER, N_CHAIN = n(1000000, 200000), n(1000, 100), n(1000000, 200000)
local N_TIMERS, N_LOG, N_CORO = n(1000000, 100000), n(10000000, 2000000), n(1000000, 100000)

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs one command and parses its `result k=v ...` line into a table (numbers where numeric).
local function run_once(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  local line = out:match("result ([^\n]*)\n?$") or out:match("\nresult ([^\n]*)")
    or out:match("^result ([^\n]*)")
  if not ok or not line then
    io.stderr:write("bench: command failed: ", cmd, "\n", out, "\n")
    return nil
  end
  local r = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) or v end
  return r
end

local function median(xs)
  table.sort(xs)
  local m = #xs
  if m == 0 then return nil end
  if m % 2 == 1 then return xs[(m + 1) // 2] end
  return (xs[m // 2] + xs[m // 2 + 1]) / 2
end

-- Every command is run REPS times; each numeric field becomes its median, others the last value.
-- A workload and its baseline take turns (txaio, baseline, txaio, ...) rather than running in two
-- blocks: these machines are shared, and a slow minute then slows both sides of a ratio alike.
local cache = {}
local function summarize(runs)
  local res = {}
  for _, r in ipairs(runs) do
    for k, v in pairs(r) do
      if type(v) == "number" then res[k] = res[k] or {}; table.insert(res[k], v)
      else res[k] = v end
    end
  end
  for k, v in pairs(res) do if type(v) == "table" then res[k] = median(v) end end
  return res
end

local function measure(...)
  local todo, seen = {}, {}
  for _, m in ipairs({ ... }) do
    if not cache[m.cmd] and not seen[m.cmd] then
      seen[m.cmd] = true
      todo[#todo + 1] = { m = m, runs = {} }
      io.stderr:write(("bench: %s, %d runs\n"):format(m.label, REPS))
    end
  end
  for _ = 1, REPS do
    for _, t in ipairs(todo) do
      local r = run_once(t.m.cmd)
      if r then t.runs[#t.runs + 1] = r end
    end
  end
  for _, t in ipairs(todo) do cache[t.m.cmd] = summarize(t.runs) end
end

local function lua_cmd(script, variant, count)
  return ("%s bench/%s %s %d"):format(shell_quote(LUA), script, variant, count)
end
local function lua(script, variant, count)
  return { label = script .. " " .. variant, cmd = lua_cmd(script, variant, count) }
end
local function lua_args(script, count)   -- log_disabled.lua takes only N
  return { label = script, cmd = ("%s bench/%s %d"):format(shell_quote(LUA), script, count) }
end
local function cprog(mode, count)
  return { label = "libuv_timers " .. mode,
           cmd = ("%s %s %d"):format(shell_quote(CPROG), mode, count) }
end

local A = "(a) pure-Lua future"
local C = "(c) C + libuv uv_timer_t"
local function k(x) return x >= 1000000 and (x // 1000000) .. "M" or x >= 1000 and (x // 1000) .. "k"
  or tostring(x) end

-- Each row: txaio figure, baseline figure, and the target (a ratio, or an absolute bound).
local rows = {
  { "W1 future lifecycle, " .. k(N_FUT) .. "x", lua("future_lifecycle.lua", "txaio", N_FUT),
    A, lua("future_lifecycle.lua", "baseline", N_FUT), ratio = 0.30 },
  { "W2 gather of 1,000 futures, " .. k(N_GATHER) .. "x (ns per gather)",
    lua("gather.lua", "txaio", N_GATHER), A, lua("gather.lua", "baseline", N_GATHER), ratio = 0.5 },
  -- the target is for completing the chain (resolving its first future runs every link); building
  -- it (a future, a closure and add_callbacks per link, all alive at once) is shown on its own
  { "W3 chain of " .. k(N_CHAIN) .. " futures, completing it (ns per link)",
    lua("chain.lua", "txaio", N_CHAIN), A, lua("chain.lua", "baseline", N_CHAIN), max = 150,
    unit = "ns", field = "run_ns", base_field = "run_ns" },
  { "W3 same, building and completing it (ns per link)", lua("chain.lua", "txaio", N_CHAIN),
    A, lua("chain.lua", "baseline", N_CHAIN) },
  { "W4 " .. k(N_TIMERS) .. " call_later on luv, fired (CPU/timer)",
    lua("timers.lua", "txaio", N_TIMERS), C, cprog("fire", N_TIMERS), ratio = 0.5 },
  -- the timer rows above and below compare a second pass with (c), which touches its memory before
  -- timing; the first pass of the same process, which meets fresh memory, is shown on its own
  { "W4 same, first pass (fresh memory)", lua("timers.lua", "txaio", N_TIMERS), C,
    cprog("fire", N_TIMERS), field = "cold_ns_per_op" },
  { "W4 same, vs a luv handle per timer", lua("timers.lua", "txaio", N_TIMERS),
    "(b) luv, one uv_timer each", lua("timers.lua", "luv", N_TIMERS) },
  { "W4 memory per pending timer (bytes)", lua("timers.lua", "txaio", N_TIMERS),
    "(c) sizeof(uv_timer_t)", cprog("fire", N_TIMERS), max = 120, unit = "B",
    field = "bytes_per_timer", base_field = "bytes_per_timer" },
  { "W4 memory per pending timer, RSS (bytes)", lua("timers.lua", "txaio", N_TIMERS),
    "(c) sizeof(uv_timer_t)", cprog("fire", N_TIMERS), field = "rss_per_timer",
    base_field = "bytes_per_timer" },
  { "W5 " .. k(N_TIMERS) .. " call_later, then cancel each", lua("timers.lua", "txaio-cancel", N_TIMERS),
    C .. ", uv_timer_stop", cprog("cancel", N_TIMERS), ratio = 0.5 },
  { "W5 same, first pass (fresh memory)", lua("timers.lua", "txaio-cancel", N_TIMERS),
    C .. ", uv_timer_stop", cprog("cancel", N_TIMERS), field = "cold_ns_per_op" },
  { "W6 " .. k(N_TIMERS) .. " via make_batched_timer(1, 100)", lua("timers.lua", "batched", N_TIMERS),
    C, cprog("fire", N_TIMERS), ratio = 0.3 },
  { "W6 same, first pass (fresh memory)", lua("timers.lua", "batched", N_TIMERS), C,
    cprog("fire", N_TIMERS), field = "cold_ns_per_op" },
  { "W6 memory per pending call (bytes)", lua("timers.lua", "batched", N_TIMERS),
    "(c) sizeof(uv_timer_t)", cprog("fire", N_TIMERS), field = "bytes_per_timer",
    base_field = "bytes_per_timer" },
  { "W7 disabled log:debug(\"x {a}\", kw)", lua_args("log_disabled.lua", N_LOG),
    "(d) empty Lua function call", lua_args("log_disabled.lua", N_LOG), ratio = 1.5,
    base_field = "baseline_ns" },
  { "W8 spawn + await, already resolved", lua("spawn_await.lua", "txaio-resolved", N_CORO),
    "pure-Lua spawn/await over (a)", lua("spawn_await.lua", "baseline-resolved", N_CORO) },
  { "W8 spawn + await, resolved by another coroutine", lua("spawn_await.lua", "txaio-other", N_CORO),
    "pure-Lua spawn/await over (a)", lua("spawn_await.lua", "baseline-other", N_CORO) },
}

local function fmt(x)
  if type(x) ~= "number" then return tostring(x or "n/a") end
  if x >= 100 then return ("%.0f"):format(x) end
  return ("%.1f"):format(x)
end

local header = { "workload", "txaio", "baseline", "baseline", "ratio", "target", "MISSED" }
local out = {}
for _, row in ipairs(rows) do
  measure(row[2], row[4])
  local t = cache[row[2].cmd][row.field or "ns_per_op"]
  local braw = cache[row[4].cmd]
  local b = braw[row.base_field or "ns_per_op"]
  if type(b) ~= "number" and braw.depth then
    b = ("n/a: %s at depth %d"):format((tostring(braw.error):gsub("_", " ")), braw.depth)
  end
  local ratio = type(t) == "number" and type(b) == "number" and t / b or nil
  local target, missed = "-", ""
  if row.ratio then
    target = ("ratio <= %.2f"):format(row.ratio)
    missed = (ratio == nil or ratio > row.ratio) and "MISSED" or "met"
  elseif row.max then
    target = ("<= %d %s"):format(row.max, row.unit)
    missed = (type(t) ~= "number" or t > row.max) and "MISSED" or "met"
  end
  out[#out + 1] = { row[1], fmt(t), row[3], fmt(b), ratio and ("%.2f"):format(ratio) or "n/a",
                    target, missed }
end

local function cpu_model()
  local f = io.open("/proc/cpuinfo")
  local s = f and f:read("a") or ""
  if f then f:close() end
  return (s:match("model name%s*:%s*([^\n]+)") or "unknown CPU")
end

-- Plain text, aligned.
local widths = {}
for _, r in ipairs({ header, table.unpack(out) }) do
  for i, c in ipairs(r) do widths[i] = math.max(widths[i] or 0, #c) end
end
local function line(r)
  local cells = {}
  for i, c in ipairs(r) do
    cells[i] = (i == 1 or i == 3 or i == 6 or i == 7) and c .. (" "):rep(widths[i] - #c)
      or (" "):rep(widths[i] - #c) .. c
  end
  return table.concat(cells, "  ")
end
local head = { "workload", "txaio ns/op", "baseline", "baseline ns/op", "ratio", "target", "MISSED" }
for i, c in ipairs(head) do widths[i] = math.max(widths[i], #c) end
-- The targets are set for the full counts (a million timers, say): with fewer, caches flatter
-- both sides, so a quick run can only hint at them.
local quick_note = " (quick: smaller counts; the targets are set for the full counts, which "
  .. "`make bench` runs)"
local info = ("%s, %s, medians of %d runs%s; ns are CPU time per operation, B are bytes")
  :format(LUA, cpu_model(), REPS, QUICK and quick_note or "")
print(info)
print(line(head))
for _, r in ipairs(out) do print(line(r)) end

-- The same as markdown.
print()
print("| " .. table.concat(head, " | ") .. " |")
print("|" .. ("---|"):rep(#head))
for _, r in ipairs(out) do
  local cells = {}
  for i, c in ipairs(r) do cells[i] = (c:gsub("|", "\\|")) end
  print("| " .. table.concat(cells, " | ") .. " |")
end
print()
print("_" .. info .. "._")
