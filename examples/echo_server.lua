-- A TCP echo server and three clients on 127.0.0.1, written in spawn/await style over luv
-- sockets wrapped in txaio futures, with timeouts from call_later. Everything stops by itself:
-- the clients send a bounded number of lines, and a 5-second deadline closes whatever is left.
-- Run with `make demo`.
local uv = require "luv"
local txaio = require "txaio"

txaio.use_luv(uv)
local spawn, await = txaio.spawn, txaio.await

local function say(fmt, ...) print((fmt):format(...)) end

-- luv callbacks -> futures -------------------------------------------------------------------

-- Fails `f` with a CancelledError("timed out") unless it completes within `seconds`.
local function with_timeout(f, seconds)
  local timer = txaio.call_later(seconds, txaio.cancel, f, "timed out")
  txaio.add_callbacks(f, function() timer:cancel() end, function() timer:cancel() end)
  return f
end

local function connect(host, port)
  local f = txaio.create_future()
  local sock = uv.new_tcp()
  sock:connect(host, port, function(err)
    if err then txaio.reject(f, err) else txaio.resolve(f, sock) end
  end)
  return f
end

local function write(sock, data)
  local f = txaio.create_future()
  sock:write(data, function(err)
    if err then txaio.reject(f, err) else txaio.resolve(f, #data) end
  end)
  return f
end

-- Returns a function that gives a future of the next chunk read from `sock` (nil at end of file).
local function reader(sock)
  local buffered, waiting = {}, nil
  sock:read_start(function(err, data)
    local f = waiting
    if not f then
      buffered[#buffered + 1] = { err, data }
      return
    end
    waiting = nil
    if err then txaio.reject(f, err) else txaio.resolve(f, data) end
  end)
  return function()
    local f = txaio.create_future()
    local chunk = table.remove(buffered, 1)
    if chunk and chunk[1] then txaio.reject(f, chunk[1])
    elseif chunk then txaio.resolve(f, chunk[2])
    else waiting = f end
    return f
  end
end

-- The server ---------------------------------------------------------------------------------

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", 0))
local port = server:getsockname().port
local open = { server }

local function serve(client, id)
  local read = reader(client)
  while true do
    local data = await(with_timeout(read(), 2))
    if data == nil then break end   -- the client closed its side
    await(write(client, data))
  end
  say("server: connection %d closed by the client", id)
  client:close()
end

local connections = 0
assert(server:listen(16, function(err)
  assert(not err, err)
  local client = uv.new_tcp()
  server:accept(client)
  connections = connections + 1
  open[#open + 1] = client
  local id = connections
  txaio.add_callbacks(spawn(serve, client, id), nil, function(failure)
    say("server: connection %d failed: %s", id, txaio.failure_message(failure))
    if not client:is_closing() then client:close() end
  end)
end))
say("server: listening on 127.0.0.1:%d", port)

-- The clients ---------------------------------------------------------------------------------

local function client(name, lines)
  local sock = await(with_timeout(connect("127.0.0.1", port), 1))
  open[#open + 1] = sock
  local read = reader(sock)
  for i = 1, lines do
    local line = ("%s line %d"):format(name, i)
    await(write(sock, line))
    local echoed = ""
    while #echoed < #line do   -- TCP may split or merge: read until the whole line is back
      echoed = echoed .. assert(await(with_timeout(read(), 1)), "server closed early")
    end
    assert(echoed == line, ("echo mismatch: %q"):format(echoed))
    await(txaio.sleep(0.01))
  end
  sock:shutdown()
  sock:close()
  return ("%s: %d lines echoed"):format(name, lines)
end

local clients = {}
for i, name in ipairs({ "alice", "bob", "carol" }) do
  clients[i] = spawn(client, name, i + 1)
end

local deadline = txaio.call_later(5, function()
  say("deadline reached: closing everything")
  for _, h in ipairs(open) do if not h:is_closing() then h:close() end end
end)

txaio.add_callbacks(txaio.gather(clients), function(results)
  for i = 1, results.n do
    local r = results[i]
    say("client %d: %s", i, txaio.is_failure(r) and ("FAILED " .. txaio.failure_message(r)) or r)
  end
  -- let the server see the clients' end of file before it stops listening
  txaio.call_later(0.05, function()
    server:close()
    deadline:cancel()
  end)
end)

uv.run()
say("done: %d connections served, %d txaio timers pending", connections, txaio.config.loop:pending())
