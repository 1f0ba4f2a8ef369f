--- busted output handler: the usual utfTerminal report, then one machine-readable line
-- `N passed, N failed` (errors count as failures) for CI and the Makefile's aggregate.
return function(options)
  local busted = require "busted"
  local handler = require "busted.outputHandlers.utfTerminal"(options)
  busted.subscribe({ "suite", "end" }, function()
    io.write(("%d passed, %d failed\n"):format(handler.successesCount,
      handler.failuresCount + handler.errorsCount))
    io.flush()
    return nil, true
  end)
  return handler
end
