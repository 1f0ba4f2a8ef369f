--- What the specs need from every Lua the core builds for: 5.1, LuaJIT 2.1, 5.2, 5.3 and 5.4.
-- Each spec takes these as locals (`local compat = require "compat"`); nothing here touches a
-- global, so a spec never leans on what busted's own dependencies (Penlight) patch into `table`.
local M = {}

M.unpack = table.unpack or unpack

--- table.pack, which plain 5.1 lacks.
function M.pack(...) return { n = select("#", ...), ... } end

--- Plain Lua 5.1 (not LuaJIT): a coroutine cannot yield across pcall, a metamethod or C.
M.plain51 = _VERSION == "Lua 5.1" and not rawget(_G, "jit")

--- The interpreter running the specs, as a command: lua5.1, luajit, lua5.2, lua5.3 or lua5.4.
M.lua = rawget(_G, "jit") and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")

--- The build directory of that interpreter (the Makefile sets TXAIO_BUILD).
M.build = os.getenv("TXAIO_BUILD") or "build"

--- True for an integer: math.type on 5.3 and later; before 5.3 every number is a float, and
-- an integer is a finite float without a fraction.
function M.is_integer(v)
  if math.type then return math.type(v) == "integer" end
  return type(v) == "number" and v == math.floor(v) and v - v == 0
end

--- True for a number that is a float on 5.3 and later; any number before 5.3.
function M.is_float(v)
  if math.type then return math.type(v) == "float" end
  return type(v) == "number"
end

--- package.searchpath, which plain 5.1 lacks.
function M.searchpath(name, path)
  if package.searchpath then return package.searchpath(name, path) end
  local file = name:gsub("%.", "/")
  for template in path:gmatch("[^;]+") do
    local candidate = template:gsub("%?", file)
    local f = io.open(candidate, "r")
    if f then f:close(); return candidate end
  end
  return nil
end

--- load with a string chunk, which plain 5.1 spells loadstring.
function M.load(chunk, chunkname)
  return (rawget(_G, "loadstring") or load)(chunk, chunkname)
end

--- Runs a shell command; returns its output (stdout and stderr), whether it exited with 0, and
-- the exit status. p:close() cannot tell: 5.1 returns a bare number and LuaJIT returns true even
-- when the command failed, so the shell prints the status after the output.
function M.run(cmd)
  local p = assert(io.popen("( " .. cmd .. "\n) 2>&1; printf '\\n<exit status %d>' $?"))
  local out = p:read("*a")
  p:close()
  local text, code = out:match("^(.*)\n<exit status (%d+)>$")
  assert(text, "no exit status in the output of " .. cmd)
  code = tonumber(code)
  return text, code == 0, code
end

return M
