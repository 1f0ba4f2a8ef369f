--- Coroutines over futures: `spawn` runs a function in a coroutine and returns a future of its
-- result; inside it, `await` suspends until a future completes.
-- Callbacks run from C (the core's run queue) cannot yield; a coroutine of ours is resumed from
-- such a callback instead, so user code only ever yields inside its own coroutine.
-- @module txaio.coro
local core = require "txaio.core"

-- OpenResty's ngx_lua replaces coroutine.create/resume/yield/status with versions bound to its
-- request scheduler (unusable in init_worker_by_lua*, and a yield from them goes to nginx, not to
-- our resume); it keeps the plain functions as coroutine._create and so on. Ours are plain.
local lib = coroutine
local function plain(name) return rawget(lib, "_" .. name) or lib[name] end
local coroutine_create, coroutine_resume = plain("create"), plain("resume")
local coroutine_yield = plain("yield")
local coroutine_running, coroutine_status = lib.running, plain("status")
-- Lua 5.1 and 5.2 have no isyieldable; the core knows whether one of its callbacks runs here,
-- but not about other C calls (as_future's function, a canceller, table.sort's comparator)
local exact_isyieldable = lib.isyieldable ~= nil
local coroutine_isyieldable = lib.isyieldable or core.can_yield
local xpcall, error, type, setmetatable, rawequal, getmetatable = xpcall, error, type,
  setmetatable, rawequal, getmetatable
local create_future, resolve, reject, add_callbacks = core.create_future, core.resolve,
  core.reject, core.add_callbacks
local is_future, is_called, outcome, failure_at = core.is_future, core.is_called, core.outcome,
  core.failure_at
local failure_awaited, getinfo = core.failure_awaited, debug.getinfo

local select = select

local M = {}

-- Plain Lua 5.1 cannot yield across pcall/xpcall (LuaJIT and 5.2+ can): there the body runs
-- bare, and a failure is read from the dead coroutine's stack instead of from a message handler.
-- Found out on the first spawn, not at load time: some hosts forbid coroutines while loading.
local yieldable_pcall
local function can_yield_across_pcall()
  if yieldable_pcall == nil then
    yieldable_pcall = select(2, coroutine_resume(coroutine_create(function()
      return pcall(coroutine_yield, true)
    end))) == true
  end
  return yieldable_pcall
end

-- The task of each coroutine started by spawn, while it runs: { co =, fn =, future =,
-- awaiting =, on_value =, on_failure =, raised_value =, raised =, cancelling = }. A coroutine left waiting on a future
-- nobody completes must be collected with its task, yet the task refers to its coroutine. Weak
-- keys alone would do that on Lua 5.2+ (ephemerons) but pin both forever on 5.1 and LuaJIT, so
-- values are weak too: the task stays alive as long as its coroutine, whose body holds it.
-- A finished task leaves at once.
local tasks = setmetatable({}, { __mode = "kv" })

-- A task is its future's canceller, called as canceller(future): a callable table saves each
-- spawn a closure. Cancelling cancels the future the coroutine awaits, which raises inside it.
local Task = {}
function Task.__call(task)
  local awaiting = task.awaiting
  task.cancelling = true
  -- suspended: what an await that failed to yield (5.1, 5.2) left in 'awaiting' is not waited on
  if awaiting and coroutine_status(task.co) == "suspended" then core.cancel(awaiting) end
end

local CANNOT_WAIT = "cannot wait here: this code runs inside a callback called from C, which "
  .. "cannot yield; move the waiting code into txaio.spawn"

-- Yielded by await, so that any other yield inside a task can be told apart.
local AWAIT = {}
-- Returned first by a task's body when it is over, so that step need not ask coroutine.status.
local DONE = {}

local step

-- await raises a failure's value; the task remembers the failure so that, if the value leaves
-- the coroutine, its future fails with that failure (innermost traceback) and not a new one.
local function raise(task, failure)
  local value = failure.value
  task.raised, task.raised_value = failure, value
  error(value, 0)
end

-- The bodies of every task's coroutine, shared (no closure per spawn); resumed first with
-- (task, ...). run_task catches with a message handler; run_bare is for plain Lua 5.1, where a
-- coroutine cannot yield across xpcall, and leaves the error to be read off the dead coroutine.
local run_task, run_bare

-- Where an error re-raised by await left the coroutine's own code: the stack level (counted
-- from the caller of exit_level, or in the dead thread co) of the caller of await, or of the line
-- that raised a caught value again. That line is the coroutine's link in the await chain; nil
-- when no such line is left on the stack (a tail call to await).
local function exit_level(co, level)
  local function info(l)
    if co then return getinfo(co, l, "fS") end
    return getinfo(l + 2, "fS")     -- + info + exit_level
  end
  local frame = info(level)
  while frame and frame.what == "C" do level = level + 1; frame = info(level) end
  if frame and frame.func == raise then
    frame = info(level + 1)
    if not (frame and frame.func == M.await) then return nil end
    level = level + 2
    frame = info(level)
  end
  -- our own body, right above await when the task's function is await itself (plain 5.1)
  if frame and (frame.func == run_task or frame.func == run_bare) then return nil end
  if frame and (frame.what == "Lua" or frame.what == "main") then return level end
  return nil
end

-- The message handler of run_task: it runs on the failing coroutine, whose task is still listed.
-- An error re-raised by await is its failure's value: keep that failure's value and innermost
-- traceback, adding this coroutine to its await chain, instead of capturing anew.
local function task_handler(err)
  local task = tasks[coroutine_running()]
  if task.raised and rawequal(err, task.raised_value) then
    return failure_awaited(task.raised, exit_level(nil, 2) or task.fn)
  end
  return failure_at(err, 2)   -- frames from the raise point, not from this handler
end

run_task = function(task, ...)
  return DONE, xpcall(task.fn, task_handler, ...)
end

run_bare = function(task, ...)
  return DONE, true, task.fn(...)
end

local function finish(task, ok, value)
  tasks[task.co] = nil
  -- cancelled: whatever the coroutine did after seeing its CancelledError, the future stays cancelled
  if task.cancelling or is_called(task.future) then return end
  if ok then resolve(task.future, value) else reject(task.future, value) end
end

-- Resumes the task's coroutine: first with its arguments, then with the outcome of the future
-- it awaited (true, value or false, failure).
step = function(task, ...)
  local co = task.co
  local ok, a, b, c = coroutine_resume(co, ...)
  if a == DONE then return finish(task, b, c) end
  if not ok then   -- the body raised outside any xpcall (plain Lua 5.1)
    if not (task.raised and rawequal(a, task.raised_value)) then a = core.failure_of_thread(co, a)
    else a = failure_awaited(task.raised, co, exit_level(co, 0) or task.fn) end
    return finish(task, false, a)
  end
  if a ~= AWAIT then
    return finish(task, false, "spawn: the coroutine yielded outside txaio.await; "
      .. "inside txaio.spawn, wait for things with txaio.await(future)")
  end
end

--- Runs `fn(...)` at once in a new coroutine; returns a future of its first return value, failed
-- with the error's failure (and its traceback) if it raises. Cancelling the future cancels the
-- future the coroutine is waiting on, which raises a CancelledError inside it.
-- @usage local f = txaio.spawn(function(url) return txaio.await(fetch(url)) end, url)
function M.spawn(fn, ...)
  local ftype = type(fn)
  if ftype ~= "function" and not (ftype == "table" and (getmetatable(fn) or {}).__call) then
    error(("bad argument #1 to 'spawn' (callable expected, got %s)"):format(ftype), 2)
  end
  local co = coroutine_create(can_yield_across_pcall() and run_task or run_bare)
  -- the future's field is in the constructor so that setting it does not resize the table
  local task = setmetatable({ co = co, fn = fn, future = false }, Task)
  task.future = create_future(nil, nil, task)
  tasks[co] = task
  step(task, task, ...)
  return task.future
end

-- The pair await attaches, made once per task: a task that awaits in a loop reuses them.
local function attach(task, f)
  local on_value, on_failure = task.on_value, task.on_failure
  if not on_value then
    on_value = function(v) step(task, true, v) end
    on_failure = function(fl) step(task, false, fl) end
    task.on_value, task.on_failure = on_value, on_failure
  end
  add_callbacks(f, on_value, on_failure)
end

-- Where coroutine_isyieldable may answer yes wrongly (5.1, 5.2), the yield after attaching can
-- fail, and a pair cannot be taken off a future: each await gets a pair of its own that resumes
-- the task only if it is still suspended waiting for f.
local function attach_guarded(task, f)
  local function waiting() return task.awaiting == f and coroutine_status(task.co) == "suspended" end
  add_callbacks(f, function(v) if waiting() then step(task, true, v) end end,
                   function(fl) if waiting() then step(task, false, fl) end end)
end
if not exact_isyieldable then attach = attach_guarded end

--- Inside a coroutine started by `spawn`: waits for future `f` and returns its value, or raises
-- its failure's value. A value that is not a future is returned at once; so is the outcome of a
-- future that has already completed (without yielding).
function M.await(f)
  if not is_future(f) then return f end
  local running = coroutine_running()
  local task = running and tasks[running]
  if not task then
    if core.in_callback() then error("await: not inside txaio.spawn (" .. CANNOT_WAIT .. ")", 2) end
    error("await: not inside txaio.spawn", 2)
  end
  local state, value = outcome(f)
  if state == "resolved" then return value end
  -- not tail calls: the await frame marks where the coroutine's own code begins (exit_level)
  if state == "failed" then raise(task, value) end
  if not coroutine_isyieldable() then error("await: " .. CANNOT_WAIT, 2) end
  task.awaiting = f
  attach(task, f)
  local ok, outcome_value = coroutine_yield(AWAIT)
  task.awaiting = nil
  if ok then return outcome_value end
  raise(task, outcome_value)
end

return M
