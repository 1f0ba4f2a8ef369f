-- An OpenResty-style host: nginx with Debian's Lua module (LuaJIT) runs txaio, built for LuaJIT
-- (build/luajit), on a host loop whose clock is resty.core.time.monotonic_time and whose wake-up
-- is one ngx.timer. The application is spec/support/nginx_app.lua; curl asks it to run each case.
-- nginx runs on 127.0.0.1 under a private prefix in /tmp and is killed by pid in teardown.
-- `make hosts-prep` (run by `make test`) builds the LuaJIT core and installs nginx and friends.
local H = require "hostutil"

local NGINX = "/usr/sbin/nginx"
local MODULES = "/usr/share/nginx/modules"

local function unavailable()
  if not H.which("curl") then return "curl is not installed (apt-get install curl)" end
  if not (H.which("nginx") or io.open(NGINX, "r")) then
    return "nginx is not installed (apt-get install nginx-light libnginx-mod-http-lua lua-resty-core)"
  end
  if not io.open(MODULES .. "/ngx_http_lua_module.so", "r") then
    return "nginx's Lua module is not installed (apt-get install libnginx-mod-http-lua)"
  end
  if not io.open("/usr/share/lua/5.1/resty/core/time.lua", "r") then
    return "lua-resty-core is not installed (apt-get install lua-resty-core)"
  end
  return nil
end

local CONF = [[
load_module @MODULES@/ndk_http_module.so;
load_module @MODULES@/ngx_http_lua_module.so;
master_process off;
daemon off;
worker_processes 1;
pid @PREFIX@/logs/nginx.pid;
error_log @PREFIX@/logs/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  default_type text/plain;
  client_body_temp_path @PREFIX@/tmp/body;
  proxy_temp_path @PREFIX@/tmp/proxy;
  fastcgi_temp_path @PREFIX@/tmp/fastcgi;
  uwsgi_temp_path @PREFIX@/tmp/uwsgi;
  scgi_temp_path @PREFIX@/tmp/scgi;
  lua_package_path "@ROOT@/lua/?.lua;@ROOT@/lua/?/init.lua;@ROOT@/spec/support/?.lua;;";
  lua_package_cpath "@ROOT@/build/luajit/?.so;;";
  init_by_lua_block { require("nginx_app").load() }
  init_worker_by_lua_block { require("nginx_app").init_worker() }
  server {
    listen 127.0.0.1:@PORT@;
    location = /ping { return 200 "pong\n"; }
    location ~ ^/t/(\w+)$ {
      content_by_lua_block { require("nginx_app").serve(ngx.var[1]) }
    }
  }
}
]]

describe("txaio inside nginx's Lua module (OpenResty-style host)", function()
  local skip = unavailable()
  local root = H.root()
  local prefix, port, pid, startup_error

  local function errlog() return prefix and H.readfile(prefix .. "/logs/error.log") or "" end

  local function kill_nginx()
    if not prefix then return end
    local ngx_pid = tonumber(H.readfile(prefix .. "/logs/nginx.pid"):match("%d+"))
    H.stop(pid, 3)
    if ngx_pid and H.alive(ngx_pid) then H.stop(ngx_pid, 3) end
    pid = nil
  end

  local function start()
    if not io.open(root .. "/build/luajit/txaio/core.so", "r") then
      return "build/luajit/txaio/core.so is missing: run `make all LUA=luajit` (or `make hosts-prep`)"
    end
    prefix = H.tmpdir()
    os.execute("mkdir -p " .. H.q(prefix .. "/logs") .. " " .. H.q(prefix .. "/conf") .. " "
      .. H.q(prefix .. "/tmp"))
    for attempt = 1, 5 do
      port = H.free_port()
      local conf = CONF:gsub("@(%u+)@", { MODULES = MODULES, PREFIX = prefix, ROOT = root,
        PORT = tostring(port) })
      H.writefile(prefix .. "/conf/nginx.conf", conf)
      H.writefile(prefix .. "/logs/error.log", "")
      -- `timeout` is a safety net: nginx dies within 2 minutes even if this process is killed
      pid = H.start(("timeout -k 5 120 %s -p %s -e %s -c %s"):format(H.which("nginx") or NGINX,
        H.q(prefix), H.q(prefix .. "/logs/error.log"), H.q(prefix .. "/conf/nginx.conf")),
        prefix .. "/logs/stdout")
      for _ = 1, 100 do   -- up to ~5 s
        local status = H.http_get(port, "/ping", 1)
        if status == 200 then return nil end
        if not H.alive(pid) then break end
        H.sleep(0.05)
      end
      local log = errlog() .. H.readfile(prefix .. "/logs/stdout")
      kill_nginx()
      if not log:find("Address already in use", 1, true) or attempt == 5 then
        return "nginx did not answer on 127.0.0.1:" .. port .. "\n" .. log
      end
    end
  end

  setup(function()
    if skip then return end
    local ok, err = pcall(start)
    if not ok then
      kill_nginx()
      startup_error = tostring(err)
    else
      startup_error = err
    end
  end)

  teardown(function()
    kill_nginx()
    if pid then H.stop(pid, 1) end
    if prefix and not os.getenv("TXAIO_KEEP_NGINX") then H.rmtree(prefix) end
  end)

  local function case(name)
    if skip then
      pending("skipped: " .. skip)
      return nil
    end
    if startup_error and not startup_error:lower():find("lua", 1, true) then
      -- nginx itself could not start (no permission, no free port...): nothing about txaio
      pending("skipped: nginx could not be started: " .. startup_error)
      return nil
    end
    assert(not startup_error, startup_error)
    local status, body = H.http_get(port, "/t/" .. name, 15)
    assert.are.equal(200, status, tostring(body) .. "\n" .. errlog())
    assert.truthy(body:find("^ok "), body .. "\n--- error.log:\n" .. errlog())
    return body
  end

  it("starts nginx and loads the LuaJIT build of txaio (the plain ngx.timer limit is 1,024)", function()
    local body = case("limit")
    if body then assert.truthy(body:find("too many pending timers", 1, true), body) end
  end)

  it("runs 2,000 pending call_laters (past lua_max_pending_timers) on one ngx.timer", function()
    local body = case("call_later")
    if body then print("    nginx call_later: " .. body) end
  end)

  it("runs 1,500 batched-timer calls, one scheduler entry per bucket", function()
    local body = case("batched")
    if body then print("    nginx batched: " .. body) end
  end)

  it("gathers futures completed by timers", function()
    case("gather")
  end)

  it("runs spawn/await coroutines resumed from the ngx.timer wake-up", function()
    case("spawn")
  end)

  it("contains callback errors, logs them (into nginx's error log) and keeps tracebacks", function()
    local body = case("failures")
    if body then
      assert.truthy(errlog():find("[txaio] error", 1, true), "the observer did not reach error.log")
    end
  end)

  it("runs work started in init_worker_by_lua before any request", function()
    local body = case("worker")
    if body then assert.truthy(body:find("timer=fired spawn=slept", 1, true), body) end
  end)

  it("loads txaio.coro in init_worker_by_lua and resumes its coroutines despite ngx_lua's coroutine API", function()
    -- ngx_lua's request-aware coroutine.* cannot be used in init_worker_by_lua nor resumed from a
    -- txaio callback; txaio.coro uses the plain functions ngx_lua keeps as coroutine._create, ...
    local body = case("coro")
    if body then assert.are.equal("ok init_worker: loads | request: ok", (body:gsub("%s+$", ""))) end
  end)
end)
