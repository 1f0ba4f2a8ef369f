-- txaio for Lua: one async code base for luv and for a host application's own loop.
local package_name = "txaio"
local package_version = "scm"
local rockspec_revision = "1"

rockspec_format = "3.0"
package = package_name
version = package_version .. "-" .. rockspec_revision
source = {
  url = "git+file://.",
}
description = {
  summary = "Futures, failures and timers in C for any Lua event loop (luv or the host's own)",
  detailed = [[
    The Lua counterpart of Python's txaio: library code written against txaio runs unchanged on
    luv (libuv) or on a host application's loop (a game engine's frame loop, an OpenResty-style
    server, a C program embedding Lua). Futures, failures and the timer scheduler are C.
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1",   -- 5.1, LuaJIT 2.1, 5.2, 5.3, 5.4; luv is optional: loaded lazily by use_luv()
}
test_dependencies = { "busted" }
test = { type = "command", command = "make test" }   -- Debian's busted is not a registered rock
build = {
  type = "builtin",
  modules = {
    ["txaio.core"] = {
      sources = { "src/core.c", "src/future.c", "src/failure.c", "src/gather.c", "src/runqueue.c",
                  "src/heap.c", "src/sched.c", "src/batch.c", "src/host.c" },
      incdirs = { "src" },
    },
    ["txaio"] = "lua/txaio/init.lua",
    ["txaio.loop"] = "lua/txaio/loop.lua",
    ["txaio.report"] = "lua/txaio/report.lua",
    ["txaio.log"] = "lua/txaio/log.lua",
    ["txaio.coro"] = "lua/txaio/coro.lua",
    ["txaio.testutil"] = "lua/txaio/testutil.lua",
    ["txaio.backend.luv"] = "lua/txaio/backend/luv.lua",
    ["txaio.backend.host"] = "lua/txaio/backend/host.lua",
  },
  copy_directories = { "docs" },
}
