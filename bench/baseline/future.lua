--- Baseline (a): the straightforward pure-Lua future that txaio's C core is measured against.
-- A table with a state and a callback list; completing it calls every callback at once, in order,
-- each under pcall (a raising callback must not stop the others). That synchronous dispatch nests:
-- a callback that resolves another future recurses through pcall, a C function, so a chain of
-- futures overflows Lua's C stack (LUAI_MAXCCALLS, 200) after a couple of hundred links.
-- @module baseline.future
local pcall, error = pcall, error

local M = { errors = 0 }

local PENDING, RESOLVED, FAILED = 0, 1, 2

function M.create_future()
  return { state = PENDING, value = nil, n = 0 }
end

-- Calls the callback (or errback) of pair `i` with the future's outcome.
local function dispatch(f, i)
  local fn = f[f.state == RESOLVED and 2 * i - 1 or 2 * i]
  if fn then
    local ok, err = pcall(fn, f.value)
    if not ok then M.errors, M.last_error = M.errors + 1, err end
  end
end

local function settle(f, state, value)
  if f.state ~= PENDING then error("future already completed", 3) end
  f.state, f.value = state, value
  for i = 1, f.n do dispatch(f, i) end
  for i = 1, 2 * f.n do f[i] = nil end
  f.n = 0
end

function M.resolve(f, value) settle(f, RESOLVED, value) end
function M.reject(f, err) settle(f, FAILED, err) end
function M.is_called(f) return f.state ~= PENDING end

function M.add_callbacks(f, callback, errback)
  local n = f.n + 1
  f[2 * n - 1], f[2 * n], f.n = callback or false, errback or false, n
  if f.state ~= PENDING then
    dispatch(f, n)
    f[2 * n - 1], f[2 * n], f.n = nil, nil, 0
  end
  return f
end

--- A future for a list of futures: resolves to their results (failures included) in order.
function M.gather(futures)
  local n = futures.n or #futures
  local done, results, gathered = 0, { n = n }, M.create_future()
  if n == 0 then M.resolve(gathered, results) end
  for i = 1, n do
    local function record(v)
      results[i], done = v, done + 1
      if done == n then M.resolve(gathered, results) end
    end
    M.add_callbacks(futures[i], record, record)
  end
  return gathered
end

return M
