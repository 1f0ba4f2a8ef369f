--- A reference model of the core's futures and timers in plain Lua, for spec/model_spec.lua.
-- Futures are tables {state, value, cbs, canceller, cancelled}; callbacks go through one FIFO run
-- queue (resolving inside a callback only appends); timers sit in a list ordered by (due, seq) and
-- a tick runs only the timers scheduled before it began. Failures are {failure = true, value = v}
-- and cancellation errors {cancelled = true, message = msg}. `report(what, err)` receives the
-- errors the core would hand to its reporter ("callback", "canceller").
local M = {}

function M.new(report)
  local m = { queue = {}, head = 1, tail = 1, draining = false,
              timers = {}, seq = 0, now = 0, firing = false }
  local api = {}

  local function protect(what, fn, ...)
    local ok, err = pcall(fn, ...)
    if not ok then report(what, err) end
  end

  local function drain()
    if m.draining then return end
    m.draining = true
    while m.head < m.tail do
      local fn, arg = m.queue[m.head], m.queue[m.head + 1]
      m.queue[m.head], m.queue[m.head + 1], m.head = nil, nil, m.head + 2
      protect("callback", fn, arg)
    end
    m.draining = false
  end

  local settle
  -- Like the core, a gather's pair records its item at settle time, without a queued call.
  local function dispatch(pair, state, value)
    local g = pair.gather
    if not g then
      local fn = pair[state == "resolved" and 1 or 2]
      if fn then m.queue[m.tail], m.queue[m.tail + 1], m.tail = fn, value, m.tail + 2 end
    elseif not g.done then
      if g.result.state ~= "pending" then g.done = true
      elseif state == "failed" and not g.consume then
        g.done = true
        settle(g.result, "failed", value)
      else
        g.results[pair.slot], g.remaining = value, g.remaining - 1
        if g.remaining == 0 then g.done = true; settle(g.result, "resolved", g.results) end
      end
    end
  end

  function settle(f, state, value)
    local cbs = f.cbs
    f.state, f.value, f.canceller, f.cbs = state, value, nil, {}
    for i = 1, #cbs do dispatch(cbs[i], state, value) end
  end

  local function attach(f, pair)
    if f.state == "pending" then f.cbs[#f.cbs + 1] = pair else dispatch(pair, f.state, f.value) end
  end

  local function fail(e) return { failure = true, value = e } end
  local function completable(f)
    if f.state == "pending" then return true end
    if not f.cancelled then error("future already " .. f.state, 0) end
  end

  function api.create_future(result, err, canceller)
    local f = { state = "pending", cbs = {}, canceller = canceller }
    if result ~= nil then f.state, f.value = "resolved", result
    elseif err ~= nil then f.state, f.value = "failed", fail(err) end
    return f
  end
  function api.create_future_success(v) return { state = "resolved", value = v, cbs = {} } end
  function api.create_future_error(e) return { state = "failed", value = fail(e), cbs = {} } end
  function api.is_called(f) return f.state ~= "pending" end
  function api.resolve(f, v) if completable(f) then settle(f, "resolved", v); drain() end end
  function api.reject(f, e) if completable(f) then settle(f, "failed", fail(e)); drain() end end
  function api.result(f)
    if f.state == "pending" then error("future is still pending", 0) end
    if f.state == "failed" then error(f.value.value, 0) end
    return f.value
  end

  function api.cancel(f, msg)
    if f.state ~= "pending" or f.settling then return false end
    if f.canceller then
      f.settling = true
      protect("canceller", f.canceller, f)
      f.settling = false
      if f.state ~= "pending" then drain(); return true end
    end
    f.cancelled = true
    settle(f, "failed", fail({ cancelled = true, message = msg }))
    drain()
    return true
  end

  function api.add_callbacks(f, cb, eb)
    if cb == nil and eb == nil then error("add_callbacks: callback and errback cannot both be nil", 0) end
    attach(f, { cb, eb })
    drain()
    return f
  end

  function api.gather(list, consume)
    local result, n = api.create_future(), list.n or #list
    local g = { result = result, results = { n = n }, remaining = n, done = false,
                consume = consume == nil or not not consume }
    if n == 0 then settle(result, "resolved", g.results); return result end
    for i = 1, n do attach(list[i], { gather = g, slot = i }) end
    drain()
    return result
  end

  -- Timers: handles are the timer records themselves; 'active' means still in the list.
  function api.call_later(delay, fn)
    local t = { due = m.now + (delay > 0 and delay or 0), seq = m.seq, fn = fn, active = true }
    m.seq = m.seq + 1
    m.timers[#m.timers + 1] = t
    return t
  end
  local function first()   -- the earliest timer by (due, seq), and its index
    local best, at = nil, nil
    for i, t in ipairs(m.timers) do
      if not best or t.due < best.due or (t.due == best.due and t.seq < best.seq) then best, at = t, i end
    end
    return best, at
  end
  function api.handle_cancel(t)
    if not t.active then return false end
    for i, x in ipairs(m.timers) do if x == t then table.remove(m.timers, i); break end end
    t.active = false
    return true
  end
  function api.handle_active(t) return t.active end
  function api.pending() return #m.timers end

  function api.tick()
    if m.firing then return end
    local limit = m.seq
    m.firing = true
    while true do
      local t, at = first()
      if not t or t.due > m.now or t.seq >= limit then break end
      table.remove(m.timers, at)
      t.active = false
      protect("callback", t.fn)
    end
    m.firing = false
    drain()
    local t = first()   -- like loop:tick(), the seconds until the next deadline, or nil
    return t and (t.due > m.now and t.due - m.now or 0)
  end

  -- testutil.Clock:advance: each due timer runs at its own deadline, in order.
  function api.advance(dt)
    local target = m.now + dt
    while true do
      local t = first()
      if not t or t.due > target then break end
      if t.due > m.now then m.now = t.due end
      api.tick()
    end
    m.now = target
  end
  function api.now() return m.now end

  return api
end

return M
