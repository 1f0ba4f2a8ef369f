-- Logging: CONTRACT.md section 7 and issue 4 (make_logger, levels, PEP 3101 formats, start_logging,
-- observers, categories, errors caught by txaio), plus routes into LuaLogging and an ngx.log mimic.
local txaio = require "txaio"
local loglib = require "txaio.log"
local report = require "txaio.report"
local testutil = require "txaio.testutil"
local compat = require "compat"
local helpers = require "helpers"
local error_message_of, assert_contains = helpers.error_message_of, helpers.assert_contains

local format_event = loglib.format_event

local VALID = "valid levels: none, critical, error, warn, info, debug, trace"
local LINE = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[%+%-]%d%d%d%d "

local saved_loop, saved_handler

before_each(function()
  saved_loop = txaio.config.loop
  saved_handler = report.set_handler(nil)     -- the default handler, which logs
  loglib.reset()
end)

after_each(function()
  loglib.reset()
  report.set_handler(saved_handler)
  txaio.config.loop = saved_loop
end)

-- Registers an observer that keeps every event; returns the list.
local function capture()
  local events = {}
  txaio.add_log_observer(function(event) events[#events + 1] = event end)
  return events
end

-- Runs `fn` with io.stderr replaced by a temporary file; returns what was written to it.
local function stderr_of(fn)
  local real, tmp = io.stderr, io.tmpfile()
  io.stderr = tmp   -- luacheck: ignore 122 (put back below)
  local ok, err = pcall(fn)
  io.stderr = real   -- luacheck: ignore 122
  tmp:seek("set")
  local text = tmp:read("*a")
  tmp:close()
  assert(ok, err)
  return text
end

-- The text of `fmt` formatted with `kw`, through a real log call and an observer.
local function text_of(fmt, kw)
  local events = capture()
  txaio.make_logger("t"):info(fmt, kw)
  assert.are.equal(1, #events)
  return format_event(events[1])
end

describe("txaio.make_logger", function()
  it("has the six level methods plus emit and failure", function()
    local log = txaio.make_logger("x")
    for _, name in ipairs { "critical", "error", "warn", "info", "debug", "trace", "emit", "failure" } do
      assert.is_function(log[name], name)
    end
    assert.are.equal("x", log.namespace)
    assert.are.equal("txaio.Logger (x)", tostring(log))
  end)

  it("rejects a namespace that is not a string", function()
    assert.are.equal("bad argument #1 to 'make_logger' (string or nil expected, got number)",
      error_message_of(txaio.make_logger, 5):gsub("^.-:%d+: ", ""))
  end)

  describe("derives the namespace from the caller's module", function()
    local dir, saved_path
    setup(function()
      dir = os.tmpname()
      os.remove(dir)
      local out, ok = compat.run("mkdir -p '" .. dir .. "/lua/mylib'")  -- 5.1's os.execute: a number
      assert(ok, out)
      for name, text in pairs {
        ["lua/mylib/session.lua"] = "local log = require('txaio').make_logger()\nreturn log",
        ["lua/mylib/init.lua"] = "local log = require('txaio').make_logger()\nreturn log",
      } do
        local f = assert(io.open(dir .. "/" .. name, "w"))
        f:write(text)
        f:close()
      end
    end)

    teardown(function()
      os.execute("rm -rf '" .. dir .. "'")
    end)

    before_each(function() saved_path = package.path end)
    after_each(function()
      package.path = saved_path
      package.loaded["mylib.session"], package.loaded["mylib"] = nil, nil
    end)

    it("by searching the package.path templates", function()
      package.path = dir .. "/?.lua;" .. dir .. "/lua/?.lua;" .. dir .. "/lua/?/init.lua;" .. saved_path
      assert.are.equal("mylib.session", require("mylib.session").namespace)
      assert.are.equal("mylib", require("mylib").namespace)
    end)

    it("for relative sources and templates", function()
      package.path = "./lua/?.lua;./lua/?/init.lua;./?.lua"
      assert.are.equal("mylib.session", loglib._namespace_of("@./lua/mylib/session.lua"))
      assert.are.equal("mylib.session", loglib._namespace_of("@lua/mylib/session.lua"))
      assert.are.equal("mylib", loglib._namespace_of("@lua/mylib/init.lua"))
      assert.are.equal("mylib.session", loglib._namespace_of("@/srv/app/lua/mylib/session.lua"))
    end)

    it("falls back to the path without its extension", function()
      package.path = "/nowhere/?.lua"
      assert.are.equal("some.dir.file", loglib._namespace_of("@some/dir/file.lua"))
      assert.are.equal("some.pkg", loglib._namespace_of("@some/pkg/init.lua"))
    end)

    it("uses the chunk name for chunks that are not files", function()
      assert.are.equal("stdin", loglib._namespace_of("=stdin"))
      assert.are.equal("?", loglib._namespace_of("return 1"))
      assert.are.equal("?", compat.load("local log = require('txaio').make_logger() return log")().namespace)
      -- a tail call leaves no trace of the caller: no guess. LuaJIT's debug.getinfo cannot tell
      -- a tail call apart, so there the frame below (this spec) names the logger.
      local expected = rawget(_G, "jit") and "spec.log_spec" or "?"
      assert.are.equal(expected, compat.load("return require('txaio').make_logger()")().namespace)
    end)

    it("for this spec file", function()
      assert.are.equal("spec.log_spec", txaio.make_logger().namespace)
    end)
  end)
end)

describe("the formatter", function()
  local mt_tostring = setmetatable({}, { __tostring = function() return "T!" end })
  local mt_raising = setmetatable({}, { __tostring = function() error("no string") end })
  local index_raising = setmetatable({}, { __index = function() error("no index") end })
  local co = coroutine.create(function() end)

  -- { format, kw, expected text (a string) or { pattern } }
  local ROWS = {
    { "plain text", {}, "plain text" },
    { "{name}", { name = "x" }, "x" },
    { "a {name} b {name}", { name = "x" }, "a x b x" },
    { "{a.b}", { a = { b = 1 } }, "1" },
    { "{a[key]}", { a = { key = "v" } }, "v" },
    { "{a[1]}", { a = { "first" } }, "first" },
    { "{a.b[2].c[d]}", { a = { b = { 0, { c = { d = "deep" } } } } }, "deep" },
    { "{1} {2}", { "one", "two" }, "one two" },
    { "{} and {}", { "one", "two" }, "one and two" },
    { "{{literal}} }} {{", {}, "{literal} } {" },
    { "{{{x}}}", { x = 1 }, "{1}" },
    { "{x:.2f}", { x = 3.14159 }, "3.14" },
    { "{n:5d}", { n = 42 }, "   42" },
    { "{n:-5d}|", { n = 42 }, "42   |" },
    { "{n:05d}", { n = 42 }, "00042" },
    { "{n:x}", { n = 255 }, "ff" },
    { "{x:.3e}", { x = 1234.4 }, "1.234e+03" },     -- no tie: LuaJIT rounds 1234.5 up, glibc to even
    { "{s:>6}", { s = "ab" }, "    ab" },
    { "{s:*<5}", { s = "ab" }, "ab***" },
    { "{s:^6}", { s = "ab" }, "  ab  " },
    { "{s:q}", { s = "a\"b" }, '"a\\"b"' },
    { "{s!r}", { s = "q" }, '"q"' },
    { "{n!r}", { n = 3 }, "3" },
    { "{x:d}", { x = 1.5 }, "1.5" },                  -- spec does not fit: the value as is
    { "{s:d}", { s = "abc" }, "abc" },
    { "{x:zz}", { x = 1 }, "1" },                     -- unknown spec: the value as is
    { "{missing}", {}, "{missing}" },
    { "{a.missing.deeper}", { a = {} }, "{a.missing.deeper}" },
    { "{n.x}", { n = 5 }, "{n.x}" },                  -- indexing a number
    { "{s.len}", { s = "abc" }, { "^function" } },      -- strings index their methods
    { "{t.x}", { t = index_raising }, "{t.x}" },
    { "{3}", { "one" }, "{3}" },
    { "{v}", { v = true }, "true" },
    { "{v}", { v = false }, "false" },
    { "{v}", { v = 3 }, "3" },
    { "{v}", { v = 3.0 }, "3.0" },
    { "{v}", { v = -0.5 }, "-0.5" },
    { "{v}", { v = math.huge }, "inf" },
    { "{v}", { v = "" }, "" },
    { "{v}", { v = {} }, { "^table: " } },
    { "{v}", { v = print }, { "^builtin: " } },
    { "{v}", { v = function() end }, { "^function: " } },
    { "{v}", { v = io.stdout }, { "^file %(" } },
    { "{v}", { v = co }, { "^thread: " } },
    { "{v}", { v = mt_tostring }, "T!" },
    { "{v:>4}", { v = mt_tostring }, "  T!" },
    { "{v}", { v = mt_raising }, { "^<table: tostring failed: .*no string>$" } },
    { "{unclosed", {}, "{unclosed" },
    { "closed}", {}, "closed}" },
    { "{a{b}", { b = 1 }, "{a1" },
    { "}{", {}, "}{" },
    { "{", {}, "{" },
    { "}", {}, "}" },
    { "{a.}", { a = {} }, "{a.}" },
    { "{a[x}", { a = {} }, "{a[x}" },
    { "{.x}", {}, "{.x}" },
    { "{a!z}", { a = 1 }, "{a!z}" },
    { "{a:{w}}", { a = 1, w = 3 }, "{a:3}" },
    { "", {}, "" },
  }
  -- print is a C function whose tostring is "builtin: ..." in Lua 5.4 and "function: ..." elsewhere
  if not tostring(print):find("^builtin") then ROWS[41][3] = { "^function: " } end
  -- Before 5.3 string.format("%d") takes a float and truncates it, so the spec does fit there
  assert(ROWS[24][1] == "{x:d}" and ROWS[24][2].x == 1.5)
  if pcall(string.format, "%d", 1.5) then ROWS[24][3] = string.format("%d", 1.5) end
  -- ... and a float without a fraction prints as an integer ("3", not "3.0"): the value as is
  assert(ROWS[36][1] == "{v}" and ROWS[36][2].v == 3.0)
  ROWS[36][3] = tostring(3.0)

  for i, row in ipairs(ROWS) do
    local fmt, kw, want = row[1], row[2], row[3]
    it(("row %d: %q"):format(i, fmt), function()
      local text = text_of(fmt, kw)
      if type(want) == "table" then
        assert.truthy(text:find(want[1]), ("%q does not match %q"):format(text, want[1]))
      else
        assert.are.equal(want, text)
      end
    end)
  end

  it("renders the event's own fields", function()
    assert.are.equal("info t", text_of("{log_level} {log_namespace}"))
  end)

  it("never raises, whatever the arguments of the log call", function()
    local events = capture()
    local log = txaio.make_logger("t")
    local weird = setmetatable({}, { __pairs = function() error("no pairs") end,
      __index = function() error("no index") end })
    log:info(nil)
    log:info(42)
    log:info("x {a}", "not a table")
    log:info({}, 5)
    log:info(mt_raising, weird)
    log:info("{a}", weird)
    log:info("{v}", { v = mt_raising })
    log.info("called without self")
    log:failure(nil, nil)
    assert.are.equal(9, #events)
    assert.are.equal("", format_event(events[1]))
    assert.are.equal("42", format_event(events[2]))
    assert.are.equal("x {a}", format_event(events[3]))
    assert.are.equal("{a}", format_event(events[6]))
  end)

  it("parses a format once and then takes it from the cache", function()
    local log = txaio.make_logger("t")
    txaio.start_logging(function() end)
    local fmt = "cache test {x} " .. tostring({})   -- a format no other test uses
    local before = loglib.parse_count()
    log:info(fmt, { x = 1 })
    assert.are.equal(before + 1, loglib.parse_count())
    for _ = 1, 100 do log:info(fmt, { x = 2 }) end
    assert.are.equal(before + 1, loglib.parse_count())
  end)
end)

describe("events", function()
  it("carry log_format, log_level, log_time, log_namespace and the caller's keys", function()
    local events = capture()
    local kw = { who = "bob", n = 3 }
    local t0 = txaio.time_ns() / 1e9
    txaio.make_logger("ns"):warn("hi {who}", kw)
    local t1 = txaio.time_ns() / 1e9
    assert.are.equal(1, #events)
    local e = events[1]
    assert.are.equal("hi {who}", e.log_format)
    assert.are.equal("warn", e.log_level)
    assert.are.equal("ns", e.log_namespace)
    assert.is_true(compat.is_float(e.log_time) and e.log_time >= t0 - 1e-6 and e.log_time <= t1 + 1e-6)
    assert.are.equal("bob", e.who)
    assert.are.equal(3, e.n)
    assert.are.same({ who = "bob", n = 3 }, kw)          -- the caller's table is not changed
    assert.are_not.equal(kw, e)
  end)

  it("from log:failure carry log_failure, and lines carry the traceback", function()
    txaio.config.loop = testutil.Clock()
    local events, lines = capture(), {}
    txaio.start_logging(function(line) lines[#lines + 1] = line end, "info")
    local fail = txaio.create_failure("kaput")
    local log = txaio.make_logger("f")
    log:failure("while doing {what}", fail, "error", { what = "work" })
    log:failure(nil, "plain value")
    log:failure("with kw only", fail, { k = 1 })
    assert.are.equal(3, #events)
    assert.are.equal(fail, events[1].log_failure)
    assert.are.equal("error", events[1].log_level)
    assert.are.equal("while doing work", format_event(events[1]))
    assert.is_true(txaio.is_failure(events[2].log_failure))
    assert.are.equal("plain value", events[2].log_failure.value)
    assert.are.equal("critical", events[2].log_level)
    assert.are.equal("error: plain value", format_event(events[2]))
    assert.are.equal(1, events[3].k)
    assert.are.equal("critical", events[3].log_level)
    assert.truthy(lines[1]:find(LINE .. "while doing work\nerror: [^\n]*kaput\nstack traceback:\n\t"))
    -- the message is already in the text: only the stack traceback follows
    assert.truthy(lines[2]:find(LINE .. "error: plain value\nstack traceback:\n\t"))
  end)

  it("log:emit is the level's method, and raises on an unknown level", function()
    local events = capture()
    local log = txaio.make_logger("e")
    log:emit("warn", "w {x}", { x = 1 })
    log:emit("debug", "not at info")
    assert.are.equal(1, #events)
    assert.are.equal("warn", events[1].log_level)
    assert.are.equal("bad argument #1 to 'emit' (unknown log level 'loud'; valid levels: critical, "
      .. "error, warn, info, debug, trace)", error_message_of(log.emit, log, "loud", "x"):gsub("^.-:%d+: ", ""))
    assert_contains(error_message_of(log.emit, log, "none", "x"), "unknown log level 'none'")
    assert_contains(error_message_of(log.failure, log, "x", "f", "loud"), "bad argument #1 to 'failure'")
  end)
end)

describe("txaio.start_logging", function()
  it("writes lines to a function", function()
    local lines = {}
    txaio.start_logging(function(line) lines[#lines + 1] = line end)
    txaio.make_logger("x"):info("hello {who}", { who = "world" })
    assert.are.equal(1, #lines)
    assert.truthy(lines[1]:find(LINE .. "hello world$"), lines[1])
  end)

  it("writes lines to a file handle, in the options form", function()
    local f = io.tmpfile()
    txaio.start_logging { out = f, level = "debug" }
    local log = txaio.make_logger("x")
    log:debug("one")
    log:trace("not at debug")
    log:error("two {n:3d}", { n = 7 })
    f:seek("set")
    local text = f:read("*a")
    f:close()
    local got = {}
    for line in text:gmatch("[^\n]+") do got[#got + 1] = line end
    assert.are.equal(2, #got)
    assert.truthy(got[1]:find(LINE .. "one$"), got[1])
    assert.truthy(got[2]:find(LINE .. "two   7$"), got[2])
    assert.are.equal(os.date("%Y-%m-%dT%H"), got[1]:sub(1, 13))
  end)

  it("rejects unknown options, unknown levels and bad outputs", function()
    local function msg(...) return error_message_of(txaio.start_logging, ...):gsub("^.-:%d+: ", "") end
    assert.are.equal("bad argument #1 to 'start_logging' (unknown option 'levle')",
      msg { out = print, levle = "debug" })
    assert.are.equal("bad argument #2 to 'start_logging' (unknown log level 'loud'; " .. VALID .. ")",
      msg(print, "loud"))
    assert.are.equal("bad argument #2 to 'start_logging' (unknown log level 'loud'; " .. VALID .. ")",
      msg { out = print, level = "loud" })
    assert.are.equal("bad argument #1 to 'start_logging' (file handle or callable expected, got number)",
      msg(42))
    assert.is_false(loglib.is_active())
  end)

  it("makes levels above the chosen one no-ops on existing and future loggers", function()
    local lines = {}
    local old = txaio.make_logger("old")
    txaio.start_logging(function(line) lines[#lines + 1] = line end, "warn")
    local new = txaio.make_logger("new")
    old:info("no"); new:info("no"); old:debug("no"); new:trace("no")
    old:warn("old warn"); new:critical("new critical")
    assert.are.equal(2, #lines)
    -- one shared empty function, copied onto each logger so that a call is a single lookup
    assert.are.equal(old.info, new.info)
    assert.are.equal(old.info, old.trace)
    assert.are.equal(old.info, rawget(old, "info"))
    assert.are_not.equal(old.info, old.warn)
    txaio.set_global_log_level("none")
    old:critical("no"); new:critical("no")
    assert.are.equal(2, #lines)
    assert.are.equal(old.critical, old.info)
    txaio.set_global_log_level("trace")
    old:trace("old trace")
    assert.are.equal(3, #lines)
    assert.truthy(lines[3]:find("old trace$"))
  end)

  it("is needed for line output; observers get events before it", function()
    assert.is_false(loglib.is_active())
    local events = capture()
    assert.is_true(loglib.is_active())
    txaio.make_logger("x"):info("early")
    assert.are.equal(1, #events)
  end)
end)

describe("txaio.set_global_log_level and get_global_log_level", function()
  it("change the level at run time", function()
    assert.are.equal("info", txaio.get_global_log_level())
    local events = capture()
    local log = txaio.make_logger("x")
    log:debug("no")
    txaio.set_global_log_level("debug")
    assert.are.equal("debug", txaio.get_global_log_level())
    log:debug("yes")
    txaio.set_global_log_level("error")
    log:warn("no")
    log:error("yes")
    assert.are.equal(2, #events)
  end)

  it("raise an error listing the valid levels", function()
    assert.are.equal("bad argument #1 to 'set_global_log_level' (unknown log level 'loud'; " .. VALID .. ")",
      error_message_of(txaio.set_global_log_level, "loud"):gsub("^.-:%d+: ", ""))
    assert.are.equal("bad argument #1 to 'set_global_log_level' (unknown log level 'nil'; " .. VALID .. ")",
      error_message_of(txaio.set_global_log_level):gsub("^.-:%d+: ", ""))
    assert.are.equal("info", txaio.get_global_log_level())
  end)
end)

describe("observers", function()
  it("are added once and removed", function()
    local n = 0
    local function obs() n = n + 1 end
    txaio.add_log_observer(obs)
    txaio.add_log_observer(obs)
    txaio.make_logger("x"):info("one")
    assert.are.equal(1, n)
    assert.is_true(txaio.remove_log_observer(obs))
    assert.is_false(txaio.remove_log_observer(obs))
    txaio.make_logger("x"):info("two")
    assert.are.equal(1, n)
    assert.are.equal("bad argument #1 to 'add_log_observer' (callable expected, got string)",
      error_message_of(txaio.add_log_observer, "f"):gsub("^.-:%d+: ", ""))
  end)

  it("accept callable tables", function()
    local got = {}
    txaio.add_log_observer(setmetatable({}, { __call = function(_, e) got[#got + 1] = e end }))
    txaio.make_logger("x"):info("hi")
    assert.are.equal(1, #got)
  end)

  it("that raise are skipped for that event only, reported on stderr, and never break the caller", function()
    local before, after, bad_calls = {}, {}, 0
    txaio.add_log_observer(function(e) before[#before + 1] = e end)
    txaio.add_log_observer(function() bad_calls = bad_calls + 1; error("observer boom") end)
    txaio.add_log_observer(function(e) after[#after + 1] = e end)
    local log = txaio.make_logger("x")
    local err = stderr_of(function()
      log:info("first")
      log:info("second")
    end)
    assert.are.equal(2, #before)
    assert.are.equal(2, #after)
    assert.are.equal(2, bad_calls)
    assert_contains(err, "observer boom")
    assert_contains(err, "txaio.log: observer")
  end)

  it("route events into LuaLogging (Debian's lua-logging)", function()
    local path = compat.searchpath("logging", package.path)
      or compat.searchpath("logging", "/usr/share/lua/5.4/?.lua;/usr/share/lua/5.3/?.lua;"
        .. "/usr/share/lua/5.2/?.lua;/usr/share/lua/5.1/?.lua")
    if not path then
      pending("lua-logging is not installed (apt-get install lua-logging)")
      return
    end
    -- LuaLogging 1.3 sets a global `logging` outside Lua 5.2: load it with a private _G
    local env = setmetatable({ _G = {} }, { __index = _G })
    local chunk = assert(loadfile(path, "t", env))
    if rawget(_G, "setfenv") then setfenv(chunk, env) end    -- 5.1's loadfile takes no env
    local logging = chunk()
    local captured = {}
    local logger = logging.new(function(_, level, message)
      captured[#captured + 1] = { level = level, message = message }
      return true
    end)
    local LEVEL = { critical = logging.FATAL, error = logging.ERROR, warn = logging.WARN,
      info = logging.INFO, debug = logging.DEBUG, trace = logging.DEBUG }
    txaio.add_log_observer(function(event)
      logger:log(LEVEL[event.log_level], "%s: %s", event.log_namespace, format_event(event))
    end)
    local log = txaio.make_logger("app.db")
    log:info("connected to {host}:{port}", { host = "db", port = 5432 })
    log:error("100% {what}", { what = "full" })
    assert.are.same({
      { level = "INFO", message = "app.db: connected to db:5432" },
      { level = "ERROR", message = "app.db: 100% full" },
    }, captured)
  end)

  it("route events into a function that mimics ngx.log", function()
    local ngx = { STDERR = 0, EMERG = 1, ALERT = 2, CRIT = 3, ERR = 4, WARN = 5, NOTICE = 6,
      INFO = 7, DEBUG = 8 }
    local written = {}
    function ngx.log(level, ...) written[#written + 1] = { level, table.concat({ ... }) } end
    local LEVEL = { critical = ngx.CRIT, error = ngx.ERR, warn = ngx.WARN, info = ngx.INFO,
      debug = ngx.DEBUG, trace = ngx.DEBUG }
    txaio.add_log_observer(function(event)
      ngx.log(LEVEL[event.log_level], "[", event.log_namespace, "] ", format_event(event))
    end)
    txaio.set_global_log_level("debug")
    local log = txaio.make_logger("api")
    log:warn("slow request {id} ({ms:.1f} ms)", { id = 7, ms = 1234.56 })
    log:debug("detail")
    assert.are.same({ { 5, "[api] slow request 7 (1234.6 ms)" }, { 8, "[api] detail" } }, written)
  end)
end)

describe("txaio.add_log_categories", function()
  it("replaces the format of events whose log_category is registered", function()
    local events = capture()
    txaio.add_log_categories { greet = "hello {who}" }
    txaio.add_log_categories { greet = "hi {who}", bye = "bye {who}" }   -- later calls override
    local log = txaio.make_logger("x")
    log:info("ignored", { log_category = "greet", who = "bob" })
    log:info("kept {who}", { log_category = "unknown", who = "ann" })
    assert.are.equal("hi {who}", events[1].log_format)
    assert.are.equal("hi bob", format_event(events[1]))
    assert.are.equal("kept ann", format_event(events[2]))
  end)

  it("checks its argument", function()
    assert.are.equal("bad argument #1 to 'add_log_categories' (table expected, got number)",
      error_message_of(txaio.add_log_categories, 1):gsub("^.-:%d+: ", ""))
    assert.are.equal("bad argument #1 to 'add_log_categories' (format string expected for 'c', got number)",
      error_message_of(txaio.add_log_categories, { c = 1 }):gsub("^.-:%d+: ", ""))
  end)
end)

describe("errors caught by txaio", function()
  local clock, events

  before_each(function()
    clock = helpers.use_clock()
    events = capture()
  end)

  -- The one txaio event whose text contains `marker`.
  local function event_about(marker)
    local found = {}
    for _, e in ipairs(events) do
      if e.log_namespace == "txaio" and format_event(e):find(marker, 1, true) then
        found[#found + 1] = e
      end
    end
    assert.are.equal(1, #found, "events about " .. marker)
    return found[1]
  end

  local function check(e, level, text)
    assert.are.equal(level, e.log_level)
    assert.are.equal("txaio", e.log_namespace)
    assert.are.equal(text, format_event(e))
    assert.is_true(txaio.is_failure(e.log_failure))
    assert_contains(e.log_failure:format_traceback(), "stack traceback:")
  end

  it("in a callback are logged at error", function()
    local f = txaio.create_future()
    f:add_callbacks(function() error("cb boom", 0) end)
    f:resolve(1)
    check(event_about("cb boom"), "error", "Unhandled error in callback: error: cb boom")
  end)

  it("in an errback are logged at error", function()
    local f = txaio.create_future()
    f:add_callbacks(nil, function() error("eb boom", 0) end)
    f:reject("x")
    check(event_about("eb boom"), "error", "Unhandled error in callback: error: eb boom")
  end)

  it("in a timer callback are logged at error", function()
    txaio.call_later(1, function() error("timer boom", 0) end)
    clock:advance(2)
    check(event_about("timer boom"), "error", "Unhandled error in callback: error: timer boom")
  end)

  it("in a batched timer call are logged at error", function()
    local bt = txaio.make_batched_timer(1)
    bt:call_later(0.5, function() error("batch boom", 0) end)
    clock:advance(3)
    check(event_about("batch boom"), "error", "Unhandled error in callback: error: batch boom")
  end)

  it("in a failed future collected without an errback are logged at critical", function()
    do txaio.create_future_error("lost future") end
    collectgarbage()
    collectgarbage()
    report.flush()
    check(event_about("lost future"), "critical", "Unhandled error in future: error: lost future")
  end)

  it("are written as lines with their tracebacks once logging is started", function()
    local lines = {}
    txaio.start_logging(function(line) lines[#lines + 1] = line end)
    local f = txaio.create_future()
    f:add_callbacks(function() error("line boom", 0) end)
    f:resolve()
    assert.are.equal(1, #lines)
    assert.truthy(lines[1]:find(LINE .. "Unhandled error in callback: error: line boom\nstack traceback:\n\t"),
      lines[1])
  end)

  it("go to stderr while logging is off", function()
    loglib.reset()                                      -- drops the capture observer too
    local err = stderr_of(function()
      local f = txaio.create_future()
      f:add_callbacks(function() error("quiet boom", 0) end)
      f:resolve()
    end)
    assert.truthy(err:find("^Unhandled error in callback: error: quiet boom\nstack traceback:\n"), err)
  end)
end)

describe("logging before any loop is chosen", function()
  it("works", function()
    txaio.config.loop = nil
    assert.is_nil(txaio.config.loop)
    local lines = {}
    local events = capture()
    txaio.start_logging(function(line) lines[#lines + 1] = line end, "debug")
    local log = txaio.make_logger("early")
    log:debug("before a loop {n}", { n = 1 })
    log:failure("failed", "early failure")
    assert.are.equal(2, #events)
    assert.are.equal(2, #lines)
    assert.truthy(lines[1]:find(LINE .. "before a loop 1$"))
    assert.is_nil(txaio.config.loop)
  end)
end)
