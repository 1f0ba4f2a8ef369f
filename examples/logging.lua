-- txaio's logger, routed three ways: txaio's own line output, LuaLogging (Debian's lua-logging),
-- and a function shaped like OpenResty's ngx.log. Run with `make demo`.
local txaio = require "txaio"

local log = txaio.make_logger("demo.shop")

-- 1. txaio's own output: timestamped lines on stdout, level info and above.
txaio.start_logging{ out = io.stdout, level = "info" }
log:info("order {id} placed by {user.name} for {total:.2f} EUR",
  { id = 17, user = { name = "ada" }, total = 41.5 })
log:debug("not shown: debug is above the chosen level")

-- 2. Into a host's own log: an observer gets every event as a table. Here, something shaped
-- like ngx.log(level, ...) from OpenResty.
local ngx = { ERR = 4, WARN = 5, INFO = 7, DEBUG = 8 }
function ngx.log(level, ...) print(("[ngx.log level %d] %s"):format(level, table.concat({ ... }))) end
local ngx_levels = { critical = ngx.ERR, error = ngx.ERR, warn = ngx.WARN, info = ngx.INFO,
                     debug = ngx.DEBUG, trace = ngx.DEBUG }
local function to_ngx(event)
  ngx.log(ngx_levels[event.log_level], event.log_namespace, ": ", require("txaio.log").format_event(event))
end
txaio.add_log_observer(to_ngx)
log:warn("stock for {sku} is low: {left} left", { sku = "A-42", left = 3 })
txaio.remove_log_observer(to_ngx)

-- 3. Into LuaLogging, when it is installed. Debian packages it for Lua 5.1 and 5.2 only, where
-- require finds it; its code runs on 5.3 and 5.4 as well, so there the demo loads the 5.2 copy.
local function load_lualogging()
  local found, module = pcall(require, "logging")
  if found then return module end
  local chunk = loadfile("/usr/share/lua/5.2/logging.lua")
  return chunk and chunk("logging")
end
local ok, logging = pcall(load_lualogging)
if ok and logging then
  local lualog = logging.new(function(_, level, message)
    print(("[LuaLogging %s] %s"):format(level, message))
    return true
  end)
  local function to_lualogging(event)
    local level = ({ critical = "FATAL", error = "ERROR", warn = "WARN", info = "INFO" })[event.log_level]
    if level then lualog:log(logging[level], require("txaio.log").format_event(event)) end
  end
  txaio.add_log_observer(to_lualogging)
  log:error("payment for order {id} failed", { id = 17 })
  txaio.remove_log_observer(to_lualogging)
else
  print("(LuaLogging not installed: apt-get install lua-logging)")
end

-- 4. Errors nobody caught go through the same logger, namespace "txaio", with tracebacks.
txaio.use_host{ now = os.clock }
txaio.add_callbacks(txaio.create_future_success(1), function() error("a bug in a callback") end)
