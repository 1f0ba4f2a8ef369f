-- The Lua layer runs on 5.1, LuaJIT, 5.2, 5.3 and 5.4: allow the union of their standard globals,
-- and nothing else (STYLE.md R18: no globals, ever).
std = "max"
max_line_length = 120
files["spec"] = { std = "+busted" }
files["examples/c-host/game.lua"] = { globals = { "engine", "done" } }
files["examples/love"] = { globals = { "love" } }
files["examples/neovim"] = { globals = { "vim" } }
