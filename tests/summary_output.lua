-- busted output handler: one line per failure or error with its message,
-- then the summary line CI looks for: "N passed, N failed".
return function(options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.base")()
  local pretty = require "pl.pretty"

  local function describe(element)
    return handler.getFullName(element)
  end

  local function report(kind, element, message, trace)
    local where = trace and trace.short_src and (trace.short_src .. ":" .. tostring(trace.currentline)) or ""
    if type(message) ~= "string" then message = pretty.write(message) end
    io.stdout:write(("%s: %s\n  %s\n  %s\n"):format(kind, describe(element), where, tostring(message)))
  end

  handler.testEnd = function(element, parent, status)
    if status == "success" then io.stdout:write(".")
    elseif status == "pending" then io.stdout:write("-")
    else io.stdout:write(status == "error" and "E" or "F") end
    io.stdout:flush()
    return nil, true
  end

  handler.failureTest = function(element, parent, message, trace)
    io.stdout:write("\n")
    report("FAIL", element, message, trace)
    return nil, true
  end

  handler.errorTest = function(element, parent, message, trace)
    io.stdout:write("\n")
    report("ERROR", element, message, trace)
    return nil, true
  end

  handler.suiteEnd = function()
    local failed = handler.failuresCount + handler.errorsCount
    io.stdout:write(("\n%d passed, %d failed"):format(handler.successesCount, failed))
    if handler.pendingsCount > 0 then io.stdout:write((", %d skipped"):format(handler.pendingsCount)) end
    io.stdout:write(("  (%.2f s)\n"):format(handler.getDuration()))
    for _, p in ipairs(handler.pendings) do
      io.stdout:write(("  skipped: %s: %s\n"):format(p.name, tostring(p.message)))
    end
    return nil, true
  end

  busted.subscribe({ "test", "end" }, handler.testEnd, { predicate = handler.cancelOnPending })
  -- "failure"/"error" also receive the ("failure", "it") sub-channels
  busted.subscribe({ "failure" }, handler.failureTest)
  busted.subscribe({ "error" }, handler.errorTest)
  busted.subscribe({ "suite", "end" }, handler.suiteEnd)
  return handler
end
