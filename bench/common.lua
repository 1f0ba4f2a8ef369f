--- What every workload shares: the command line, CPU timing and the one line it reports.
-- A workload runs as `lua5.4 bench/<workload>.lua VARIANT N` from the checkout, in a fresh process,
-- and prints exactly one line `result key=value key=value ...` that bench/run.lua parses.
-- @module common
local os_clock, collectgarbage = os.clock, collectgarbage

local M = {}

--- The variant name and the repetition count from the command line.
function M.args(default_n)
  return arg[1] or "txaio", math.tointeger(tonumber(arg[2])) or default_n
end

--- CPU seconds `body(n)` takes, after a warm-up of n // 10, with a full collection before.
function M.cpu(n, body)
  body(n // 10)
  collectgarbage()
  collectgarbage()
  local t0 = os_clock()
  body(n)
  return os_clock() - t0
end

--- CPU seconds of an empty numeric for loop of n iterations (subtracted from microbenchmarks).
function M.empty_loop(n)
  return M.cpu(n, function(k) for _ = 1, k do end end)
end

--- Prints the result line: `fields` is a table of key = number or string (no spaces in strings).
function M.report(fields)
  local keys = {}
  for k in pairs(fields) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local v = fields[k]
    if math.type(v) == "integer" then v = ("%d"):format(v)
    elseif type(v) == "number" then v = ("%.6g"):format(v)
    else v = tostring(v):gsub("%s", "_") end
    out[#out + 1] = k .. "=" .. v
  end
  io.write("result ", table.concat(out, " "), "\n")
end

--- Selects a manual-time test loop, so future workloads need neither luv nor a host.
function M.txaio_on_clock()
  local txaio = require "txaio"
  txaio.config.loop = require("txaio.testutil").Clock()
  return txaio
end

return M
