--- Where errors that nobody can catch end up: a callback or timer callback that raised, a
-- canceller that raised, a failed future collected without an errback.
-- The core hands them here; one replaceable handler decides what to do with them. The default one
-- logs them through the logger of namespace `txaio` once logging is on (`txaio.start_logging` or an
-- observer), and writes them to stderr before that, so that no error is lost silently.
-- @module txaio.report
local core = require "txaio.core"
-- txaio.log never requires this module: no cycle. Like init.lua, tolerate an install without it.
local has_log, loglib = pcall(require, "txaio.log")
if not has_log then
  if not tostring(loglib):find("module 'txaio.log' not found", 1, true) then error(loglib, 0) end
  loglib = nil
end

local pcall, tostring = pcall, tostring

local M = {}

local PREFIX = {
  callback = "Unhandled error in callback: ",
  future = "Unhandled error in future: ",
  canceller = "Unhandled error in canceller: ",
  loop = "Unhandled error in event loop: ",
}

local FUTURE = PREFIX.future

local log = loglib and loglib.make_logger("txaio")

local function default_handler(message, failure)
  if loglib and loglib.is_active() then
    local level = message:sub(1, #FUTURE) == FUTURE and "critical" or "error"
    log:failure("{message}", failure, level, { message = message })
    return
  end
  local trace = core.failure_format_traceback(failure)
  io.stderr:write(message, "\n", trace:match("\n(stack traceback:.*)$") or trace, "\n")
end

local handler = default_handler

--- Replaces the handler; `fn(message, failure)` gets e.g. `"Unhandled error in callback: error: x"`
-- and the failure (with its traceback). `nil` restores the default.
-- @return the previous handler
function M.set_handler(fn)
  if fn ~= nil and type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    error(("bad argument #1 to 'set_handler' (callable or nil expected, got %s)"):format(type(fn)), 2)
  end
  local previous = handler
  handler = fn or default_handler
  return previous
end

--- Reports the failed futures that the collector has finalized since the last report. They are
-- also reported on the next completion of any future or the next timer tick.
function M.flush()
  core.flush_unhandled()
end

local function report(what, failure)
  -- a memory error skips the message handler that makes the failure: the raw value comes instead
  if not core.is_failure(failure) then failure = core.create_failure(failure) end
  local message = (PREFIX[what] or ("Unhandled error in " .. tostring(what) .. ": "))
    .. core.failure_message(failure)
  local ok = pcall(handler, message, failure)
  if not ok and handler ~= default_handler then pcall(default_handler, message, failure) end
end
core.set_reporter(report)

--- Reports an error that escaped the event loop's own plumbing (a backend's wake-up, say).
function M.loop_error(err)
  report("loop", core.create_failure(err))
end

return M
