-- The timer heap (src/heap.c) on its own: spec/support/heap_test.c drives it against a brute-force
-- model. `make test` builds that program, with the heap's debug check of its whole order after
-- every change.
local compat = require "compat"

describe("the timer heap", function()
  local binary = "./" .. compat.build .. "/heap-test"

  it("is built by make", function()
    assert.truthy(io.open(binary, "r"), "run `make heap-test` first")
  end)

  for _, seed in ipairs{ 1, 42, 20261123 } do
    it("pops in (deadline, scheduling order) order through pushes, sweeps and pops, seed " .. seed, function()
      local out, ok = compat.run(("%s random %d 100000"):format(binary, seed))
      assert.is_true(ok, out)
      assert.truthy(out:find("^ok seed=" .. seed), out)
      -- the run did all three kinds of operation, many times
      for _, kind in ipairs{ "pushes", "kills", "filtered", "pops" } do
        assert.is_true(tonumber(out:match(kind .. "=(%d+)")) > 10000, out)
      end
      assert.is_true(tonumber(out:match("filters=(%d+)")) > 1000, out)
      assert.is_true(tonumber(out:match("peak=(%d+)")) > 1000, out)   -- a heap many levels deep
    end)
  end

  it("leaves the heap unchanged when the allocator fails", function()
    local out, ok = compat.run(binary .. " nomem")
    assert.is_true(ok, out)
    assert.truthy(out:find("ok nomem", 1, true), out)
  end)

  it("has a debug check that notices a broken order", function()
    -- `|| exit`: the shell that reaps the aborted program prints "Aborted"; this keeps that shell
    -- inside compat.run's redirection instead of letting it write to the suite's output
    local out, ok = compat.run(binary .. " corrupt || exit $?")
    assert.is_false(ok)
    assert.truthy(out:find("timer heap order broken", 1, true), out)
  end)
end)
