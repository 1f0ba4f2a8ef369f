--- Logging: loggers with six levels, PEP 3101-style formats, line output and observers.
-- Works before any loop is chosen and never touches a backend. All loggers share one method table:
-- changing the level swaps the disabled level methods for one shared empty function, so a
-- disabled `log:debug(...)` costs a table lookup and an empty call.
-- Dependencies: `txaio.core` (clock, failures). It must not require `txaio.report` (which requires
-- this module).
-- @module txaio.log
local core = require "txaio.core"

local type, error, pcall, next, tostring, tonumber = type, error, pcall, next, tostring, tonumber
local getmetatable, setmetatable, rawget = getmetatable, setmetatable, rawget
local concat, sformat, floor = table.concat, string.format, math.floor
local time_ns, is_failure, create_failure = core.time_ns, core.is_failure, core.create_failure

local M = {}

-- Levels from quietest to most verbose; RANK[name] is the position (none = 0).
local LEVELS = { "critical", "error", "warn", "info", "debug", "trace" }
local RANK = { none = 0 }
for i, name in ipairs(LEVELS) do RANK[name] = i end
local VALID = "none, " .. concat(LEVELS, ", ")
local VALID_EMIT = concat(LEVELS, ", ")

local current_level, current_rank = "info", RANK.info
local output                  -- nil until start_logging: a function taking one line
local observers = {}          -- replaced, never mutated, so a dispatch can iterate its own copy
local categories = {}
local depth = 0               -- observers that log: bounded recursion

local function stderr(msg)
  pcall(function() io.stderr:write("txaio.log: ", msg, "\n") end)
end

--- `tostring` that never raises (a `__tostring` or `__name` can).
local function safe_tostring(v)
  local tv = type(v)
  if tv == "string" then return v end
  if (tv == "table" or tv == "userdata") and getmetatable(v) ~= nil then
    local ok, s = pcall(tostring, v)
    if ok and type(s) == "string" then return s end
    return "<" .. tv .. ": tostring failed: " .. (type(s) == "string" and s or type(s)) .. ">"
  end
  return tostring(v)
end

local function raw_index(v, k) return v[k] end

--- `v[k]`, or nil when `v` cannot be indexed or its `__index` raises.
local function index(v, k)
  local tv = type(v)
  if tv == "table" and getmetatable(v) == nil then return v[k] end
  if tv == "table" or tv == "userdata" or tv == "string" then
    local ok, r = pcall(raw_index, v, k)
    if ok then return r end
  end
  return nil
end

---------------------------------------------------------------------------------------------------
-- Formats: compiled once into a list of parts (literal strings and field tables), cached.

local cache, cache_size, CACHE_MAX = {}, 0, 512
local parses = 0

--- A `:spec` as a string.format pattern, plus manual padding for PEP 3101 fill and alignment.
-- Returns false for a spec string.format cannot take (the value is then shown without it).
local function compile_spec(spec)
  local fill, align, rest = spec:match("^(.)([<>%^])(.*)$")
  if not fill then
    align, rest = spec:match("^([<>%^])(.*)$")
    fill = " "
    if not align then rest = spec end
  end
  local flags, width, prec, conv = rest:match("^([-+ #0]*)(%d*)(%.?%d*)(%a?)$")
  if not flags or #width > 2 or #prec > 3 then return false end
  if conv == "" then conv = "s" end
  if not conv:find("^[cdioxXaAfFeEgGpqs]$") then return false end
  if align then
    return { fmt = "%" .. flags .. prec .. conv, align = align, fill = fill, width = tonumber(width) }
  end
  return { fmt = "%" .. flags .. width .. prec .. conv }
end

--- Parses the inside of `{...}`: field name with `.attr` and `[key]` accessors, optional `!r`/`!s`
-- and optional `:spec`. Returns the field, or nil when malformed (shown literally then).
local function parse_field(body, raw, auto)
  local first, pos = body:match("^([^%.%[!:]*)()")
  local keys = {}
  if first == "" then
    if body:find("^[%.%[]") then return nil end
    auto = auto + 1
    keys[1] = auto
  else
    keys[1] = first:find("^%d+$") and tonumber(first) or first
  end
  while true do
    local c = body:sub(pos, pos)
    if c == "." then
      local name, nxt = body:match("^([^%.%[!:]+)()", pos + 1)
      if not name then return nil end
      keys[#keys + 1], pos = name, nxt
    elseif c == "[" then
      local key, nxt = body:match("^([^%]]+)%]()", pos + 1)
      if not key then return nil end
      keys[#keys + 1], pos = key:find("^%d+$") and tonumber(key) or key, nxt
    else
      break
    end
  end
  local conv
  if body:sub(pos, pos) == "!" then
    conv = body:sub(pos + 1, pos + 1)
    if conv ~= "r" and conv ~= "s" and conv ~= "a" then return nil end
    pos = pos + 2
  end
  local spec
  if body:sub(pos, pos) == ":" then
    local s = body:sub(pos + 1)
    if s ~= "" then spec = compile_spec(s) end
    pos = #body + 1
  end
  if pos <= #body then return nil end
  return { raw = raw, keys = keys, conv = conv, spec = spec }, auto
end

local function compile(fmt)
  parses = parses + 1
  local parts, lit = {}, {}
  local function flush()
    if #lit > 0 then parts[#parts + 1] = concat(lit); lit = {} end
  end
  local i, len, auto = 1, #fmt, 0
  while i <= len do
    local a = fmt:find("[{}]", i)
    if not a then lit[#lit + 1] = fmt:sub(i); break end
    lit[#lit + 1] = fmt:sub(i, a - 1)
    local c, d = fmt:sub(a, a), fmt:sub(a + 1, a + 1)
    if c == d then                                   -- "{{" or "}}"
      lit[#lit + 1] = c; i = a + 2
    elseif c == "}" then                             -- a lone "}": kept as it is
      lit[#lit + 1] = c; i = a + 1
    else
      local b = fmt:find("[{}]", a + 1)
      if not b or fmt:sub(b, b) == "{" then          -- unbalanced "{": kept as it is
        lit[#lit + 1] = c; i = a + 1
      else
        local raw = fmt:sub(a, b)
        local field, n = parse_field(fmt:sub(a + 1, b - 1), raw, auto)
        if field then
          auto = n
          flush()
          parts[#parts + 1] = field
        else
          lit[#lit + 1] = raw
        end
        i = b + 1
      end
    end
  end
  flush()
  return parts
end

local function compiled(fmt)
  local parts = cache[fmt]
  if parts == nil then
    parts = compile(fmt)
    if cache_size >= CACHE_MAX then cache, cache_size = {}, 0 end
    cache[fmt], cache_size = parts, cache_size + 1
  end
  return parts
end

local function pad(s, spec)
  local width = spec.width
  if width == nil or #s >= width then return s end
  local n = width - #s
  if spec.align == "<" then return s .. spec.fill:rep(n) end
  if spec.align == ">" then return spec.fill:rep(n) .. s end
  local left = math.floor(n / 2)
  return spec.fill:rep(left) .. s .. spec.fill:rep(n - left)
end

local function render(field, event)
  local keys = field.keys
  local v = event[keys[1]]
  for j = 2, #keys do
    if v == nil then break end
    v = index(v, keys[j])
  end
  if v == nil then return field.raw end
  if field.conv == "r" or field.conv == "a" then
    v = type(v) == "string" and sformat("%q", v) or safe_tostring(v)
  end
  local spec = field.spec
  if not spec then return safe_tostring(v) end
  local ok, s = pcall(sformat, spec.fmt, v)
  if not ok then s = safe_tostring(v) end
  return spec.align and pad(s, spec) or s
end

local function format_event(event)
  local fmt = event.log_format
  if type(fmt) ~= "string" then return fmt == nil and "" or safe_tostring(fmt) end
  local parts = compiled(fmt)
  local out = {}
  for j = 1, #parts do
    local p = parts[j]
    if type(p) == "string" then out[j] = p else out[j] = render(p, event) end
  end
  return concat(out)
end

---------------------------------------------------------------------------------------------------
-- Emitting.

local function line_of(event)
  local text = format_event(event)
  local f = event.log_failure
  if f ~= nil then
    local ok, trace = pcall(core.failure_format_traceback, f)
    if ok then
      local msg = core.failure_message(f)
      if msg ~= "" and text:find(msg, 1, true) then
        trace = trace:match("\n(stack traceback:.*)$") or trace
      end
      text = text .. "\n" .. trace
    end
  end
  return os.date("%Y-%m-%dT%H:%M:%S%z", floor(event.log_time)) .. " " .. text
end

local function dispatch(self, level, fmt, kw, with_failure, failure)
  local obs, out = observers, output
  if out == nil and #obs == 0 then return end
  if depth >= 8 then return stderr("an observer logs recursively; event dropped") end
  local event = {}
  if type(kw) == "table" then
    for k, v in next, kw do event[k] = v end
  end
  if type(fmt) ~= "string" then fmt = fmt == nil and "" or safe_tostring(fmt) end
  local cat = event.log_category
  if cat ~= nil and categories[cat] ~= nil then fmt = categories[cat] end
  event.log_format = fmt
  event.log_level = level
  event.log_time = time_ns() / 1e9
  event.log_namespace = type(self) == "table" and rawget(self, "namespace") or "?"
  if with_failure then
    if not is_failure(failure) then failure = create_failure(failure) end
    event.log_failure = failure
  end
  depth = depth + 1
  if out ~= nil then
    local ok, err = pcall(function() out(line_of(event)) end)
    if not ok then stderr("writing a log line failed: " .. safe_tostring(err)) end
  end
  for j = 1, #obs do
    local ok, err = pcall(obs[j], event)
    if not ok then
      stderr(("observer %s raised (skipped for this event): %s"):format(safe_tostring(obs[j]),
        safe_tostring(err)))
    end
  end
  depth = depth - 1
end

local function safe_dispatch(...)
  local saved = depth
  local ok, err = pcall(dispatch, ...)
  if not ok then
    depth = saved
    stderr("a log call failed: " .. safe_tostring(err))
  end
end

local function noop() end

local methods = {}
local Logger = { __index = methods, __name = "txaio.Logger" }
function Logger.__tostring(self) return "txaio.Logger (" .. safe_tostring(rawget(self, "namespace")) .. ")" end

local ENABLED = {}
for _, name in ipairs(LEVELS) do
  ENABLED[name] = function(self, fmt, kw) safe_dispatch(self, name, fmt, kw, false) end
end

local function check_emit_level(level, fname)
  if type(level) ~= "string" or RANK[level] == nil or level == "none" then
    error(("bad argument #1 to '%s' (unknown log level '%s'; valid levels: %s)")
      :format(fname, safe_tostring(level), VALID_EMIT), 3)
  end
end

--- `log:emit(level, fmt, [kw])`: the same as `log[level](log, fmt, kw)`; raises on an unknown level.
function methods.emit(self, level, fmt, kw)
  check_emit_level(level, "emit")
  if RANK[level] <= current_rank then safe_dispatch(self, level, fmt, kw, false) end
end

--- `log:failure(fmt, failure, [level], [kw])`: an event with `log_failure`; lines get the traceback.
function methods.failure(self, fmt, failure, level, kw)
  if type(level) == "table" and kw == nil then level, kw = nil, level end
  if level == nil then level = "critical" end
  check_emit_level(level, "failure")
  if RANK[level] <= current_rank then
    safe_dispatch(self, level, fmt == nil and "{log_failure}" or fmt, kw, true, failure)
  end
end

-- The level methods also live in each logger itself, so that a call finds them in one lookup
-- instead of going through the metatable's __index: a disabled log:debug(...) then costs about
-- what an empty function call does. Changing the level rewrites every live logger.
local loggers = setmetatable({}, { __mode = "k" })

local function install_levels(logger)
  for _, name in ipairs(LEVELS) do rawset(logger, name, methods[name]) end
end

local function apply_level()
  for i, name in ipairs(LEVELS) do
    methods[name] = i <= current_rank and ENABLED[name] or noop
  end
  for logger in pairs(loggers) do install_levels(logger) end
end
apply_level()

local function check_level(level, arg, fname)
  if type(level) ~= "string" or RANK[level] == nil then
    error(("bad argument #%d to '%s' (unknown log level '%s'; valid levels: %s)")
      :format(arg, fname, safe_tostring(level), VALID), 3)
  end
end

local function is_callable(x)
  if type(x) == "function" then return true end
  local mt = getmetatable(x)
  return type(mt) == "table" and mt.__call ~= nil
end

---------------------------------------------------------------------------------------------------
-- Namespaces.

local ns_cache = setmetatable({}, { __mode = "k" })   -- keyed by package.path, then source

local function module_name(path)
  local ppath = package.path
  local by_source = ns_cache[ppath]
  if by_source == nil then
    by_source = {}
    if type(ppath) == "string" then ns_cache[ppath] = by_source end
  end
  local name = by_source[path]
  if name then return name end
  local dirsep = package.config:sub(1, 1)
  local best
  for template in (type(ppath) == "string" and ppath or ""):gmatch("[^;]+") do
    template = template:gsub("^%./", "")
    local q = template:find("?", 1, true)
    if q then
      local pat = template:sub(1, q - 1):gsub("%p", "%%%0") .. "(.+)"
        .. template:sub(q + 1):gsub("%p", "%%%0") .. "$"
      local capture = path:match("^" .. pat)
      if not capture and template:sub(1, 1) ~= "/" then capture = path:match("/" .. pat) end
      if capture and (best == nil or #capture < #best) then best = capture end
    end
  end
  if best == nil then
    best = path:gsub("%.[^%./\\]*$", ""):gsub("[/\\]init$", "")
  end
  name = best:gsub("[" .. dirsep:gsub("%p", "%%%0") .. "/]", ".")
  by_source[path] = name
  return name
end

--- The module name of the chunk whose `debug.getinfo` source is `source`.
local function namespace_of(source)
  if type(source) ~= "string" then return "?" end
  local c = source:sub(1, 1)
  if c == "@" then return module_name((source:sub(2):gsub("^%./", ""))) end
  if c == "=" and source ~= "=[C]" then return source:sub(2) end
  return "?"
end
M._namespace_of = namespace_of

---------------------------------------------------------------------------------------------------
-- The API, copied into every txaio API object.

local api = {}
M.api = api

--- A logger. `namespace` defaults to the calling module's name.
function api.make_logger(namespace)
  if namespace == nil then
    -- after a tail call (`return make_logger()`) level 2 is not the caller: do not guess
    -- (5.2+ flag it with istailcall; 5.1 and LuaJIT show a "tail" frame instead, and have no "t")
    local has_t, self_info = pcall(debug.getinfo, 2, "t")   -- 1 is pcall, 2 is make_logger
    local info = not (has_t and self_info.istailcall) and debug.getinfo(2, "S")
    if info and info.what == "tail" then info = nil end
    namespace = info and namespace_of(info.source) or "?"
  elseif type(namespace) ~= "string" then
    error(("bad argument #1 to 'make_logger' (string or nil expected, got %s)"):format(type(namespace)), 2)
  end
  local logger = setmetatable({ namespace = namespace }, Logger)
  install_levels(logger)
  loggers[logger] = true
  return logger
end

--- Sets the level of every logger, existing and future.
function api.set_global_log_level(level)
  check_level(level, 1, "set_global_log_level")
  current_level, current_rank = level, RANK[level]
  apply_level()
end

function api.get_global_log_level()
  return current_level
end

local function to_writer(out, arg, fname)
  if out == nil then out = io.stdout end
  if io.type(out) == "file" then
    return function(line)
      out:write(line, "\n")
      out:flush()
    end
  end
  if is_callable(out) then return function(line) out(line) end end
  error(("bad argument #%d to '%s' (file handle or callable expected, got %s)")
    :format(arg, fname, io.type(out) or type(out)), 3)
end

--- Starts writing lines (`YYYY-MM-DDTHH:MM:SS+hhmm text`) to `out` and sets the level.
-- `start_logging{out = ..., level = ...}` or `start_logging(out, level)`.
function api.start_logging(out, level)
  if type(out) == "table" and not is_callable(out) then
    if level ~= nil then
      error("bad argument #2 to 'start_logging' (no second argument with an options table)", 2)
    end
    for k in pairs(out) do
      if k ~= "out" and k ~= "level" then
        error(("bad argument #1 to 'start_logging' (unknown option '%s')"):format(safe_tostring(k)), 2)
      end
    end
    out, level = out.out, out.level
  end
  if level == nil then level = "info" end
  check_level(level, 2, "start_logging")
  local writer = to_writer(out, 1, "start_logging")
  output = writer
  current_level, current_rank = level, RANK[level]
  apply_level()
end

--- `map[category] = format`: an event whose `log_category` is a key uses that format.
function api.add_log_categories(map)
  if type(map) ~= "table" then
    error(("bad argument #1 to 'add_log_categories' (table expected, got %s)"):format(type(map)), 2)
  end
  for k, v in pairs(map) do
    if type(v) ~= "string" then
      error(("bad argument #1 to 'add_log_categories' (format string expected for '%s', got %s)")
        :format(safe_tostring(k), type(v)), 2)
    end
  end
  for k, v in pairs(map) do categories[k] = v end
end

--- Adds `fn(event)`; adding the same observer twice has no effect.
function api.add_log_observer(fn)
  if not is_callable(fn) then
    error(("bad argument #1 to 'add_log_observer' (callable expected, got %s)"):format(type(fn)), 2)
  end
  local copy = {}
  for j = 1, #observers do
    if observers[j] == fn then return end
    copy[j] = observers[j]
  end
  copy[#copy + 1] = fn
  observers = copy
end

--- Removes `fn`; returns true if it was an observer.
function api.remove_log_observer(fn)
  local copy, found = {}, false
  for j = 1, #observers do
    if observers[j] == fn then found = true else copy[#copy + 1] = observers[j] end
  end
  observers = copy
  return found
end

---------------------------------------------------------------------------------------------------
-- Module-only functions.

--- The text of an event: its `log_format` with the fields filled in from the event.
function M.format_event(event)
  if type(event) ~= "table" then
    error(("bad argument #1 to 'format_event' (table expected, got %s)"):format(type(event)), 2)
  end
  local ok, text = pcall(format_event, event)
  if ok then return text end
  return safe_tostring(event.log_format)
end

--- True once `start_logging` was called or while an observer is registered: events go somewhere.
function M.is_active()
  return output ~= nil or #observers > 0
end

--- Back to the state at load time (no output, no observers, no categories, level info). For specs.
function M.reset()
  output, observers, categories = nil, {}, {}
  current_level, current_rank = "info", RANK.info
  apply_level()
end

--- The number of formats parsed so far (the cache makes repeated formats free). For specs.
function M.parse_count()
  return parses
end

M.make_logger = api.make_logger
M.LEVELS = { "none", (table.unpack or unpack)(LEVELS) }

return M
