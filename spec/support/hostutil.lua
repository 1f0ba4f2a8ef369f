--- Shared plumbing for the real-host specs (spec/host_*_spec.lua): run commands with a bound,
-- start and stop background processes by pid, find a free port on 127.0.0.1.
-- Portable across Lua 5.1–5.4 (os.execute and io.popen:close differ between them).
local M = {}

--- Quotes `s` for /bin/sh.
function M.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs `cmd` through /bin/sh with stderr merged into stdout; returns ok, exit code, output.
function M.exec(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"__txaio_rc=$?\""))
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("__txaio_rc=(%d+)%s*$")) or -1
  out = out:gsub("__txaio_rc=%d+%s*$", "")
  return rc == 0, rc, out
end

--- The path of executable `name`, or nil.
function M.which(name)
  local ok, _, out = M.exec("command -v " .. M.q(name))
  return ok and out:match("[^\n]+") or nil
end

--- True when Debian package `pkg` is installed.
function M.installed(pkg)
  local _, _, out = M.exec("dpkg-query -W -f='${Status}' " .. M.q(pkg))
  return out:find("install ok installed", 1, true) ~= nil
end

function M.sleep(seconds)
  os.execute("sleep " .. tostring(seconds))
end

local cwd
--- The absolute path of the checkout (specs run from its root).
function M.root()
  if not cwd then
    local _, _, out = M.exec("pwd -P")
    cwd = out:match("[^\n]+")
  end
  return cwd
end

--- A fresh private directory under /tmp.
function M.tmpdir()
  local ok, _, out = M.exec("mktemp -d /tmp/txaio-host.XXXXXX")
  assert(ok, out)
  return out:match("[^\n]+")
end

--- Removes a directory made by tmpdir (and nothing else).
function M.rmtree(dir)
  if dir and dir:match("^/tmp/txaio%-host%.[%w]+$") then os.execute("rm -rf " .. M.q(dir)) end
end

function M.readfile(path)
  local f = io.open(path, "r")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

function M.writefile(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

--- Whether a spec can run `program` (its path from M.which, or nil), a host that loads the LuaJIT
-- build of txaio (LÖVE, Neovim). When the program is not installed, calls `skip` (the spec's
-- `pending`, which busted gives only to spec code) with "skipped: <name> is not installed
-- (apt-get install <package>)" and returns false. Raises when build/luajit is missing: that is a
-- setup step left out (`make hosts-prep`), not a reason to skip.
function M.luajit_host_ready(skip, program, name, package)
  if not program then
    skip(("skipped: %s is not installed (apt-get install %s)"):format(name, package))
    return false
  end
  if not io.open(M.root() .. "/build/luajit/txaio/core.so", "r") then
    error("build/luajit/txaio/core.so is missing: run `make all LUA=luajit` (or `make hosts-prep`)")
  end
  return true
end

--- Starts `cmd` in the background (stdin from /dev/null, output to `logfile`); returns its pid.
function M.start(cmd, logfile)
  local ok, _, out = M.exec(("%s >%s 2>&1 </dev/null & echo $!"):format(cmd, M.q(logfile)))
  local pid = tonumber(out:match("(%d+)%s*$"))
  assert(ok and pid, "could not start: " .. cmd .. "\n" .. out)
  return pid
end

--- True while process `pid` exists (and is not a zombie).
function M.alive(pid)
  if not pid then return false end
  local _, _, out = M.exec("ps -o stat= -p " .. tonumber(pid))
  local stat = out:match("%S+")
  return stat ~= nil and not stat:find("^Z")
end

--- Stops process `pid`: SIGTERM, then SIGKILL after `grace` seconds. True once it is gone.
function M.stop(pid, grace)
  if not pid then return true end
  pid = tonumber(pid)
  os.execute("kill -TERM " .. pid .. " 2>/dev/null")
  local steps = math.floor((grace or 3) / 0.05)
  for _ = 1, steps do
    if not M.alive(pid) then return true end
    M.sleep(0.05)
  end
  os.execute("kill -KILL " .. pid .. " 2>/dev/null")
  M.sleep(0.1)
  return not M.alive(pid)
end

--- A port on 127.0.0.1 that was free a moment ago (luv when available, else a random guess; the
-- caller retries when the port turns out to be taken).
function M.free_port()
  local ok, uv = pcall(require, "luv")
  if ok and type(uv) == "table" and uv.new_tcp then
    local tcp = uv.new_tcp()
    if tcp and tcp:bind("127.0.0.1", 0) then
      local name = tcp:getsockname()
      tcp:close()
      uv.run("nowait")   -- lets the close complete
      if name and name.port then return name.port end
    end
  end
  math.randomseed(os.time() + math.floor((os.clock() * 1e6) % 1e6))
  return math.random(20000, 60000)
end

--- GETs http://127.0.0.1:port/path with curl, bounded by `timeout` seconds; returns status, body.
function M.http_get(port, path, timeout)
  local ok, _, out = M.exec(("curl -sS -m %d -w '\\n__status=%%{http_code}' %s")
    :format(timeout or 10, M.q(("http://127.0.0.1:%d%s"):format(port, path))))
  local status = tonumber(out:match("__status=(%d+)%s*$"))
  local body = out:gsub("\n?__status=%d+%s*$", "")
  if not ok and not status then return nil, out end
  return status, body
end

return M
