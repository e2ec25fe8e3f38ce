-- busted --helper: keep the name of the running spec in the file named by
-- $MXPROBE_CURRENT_TEST_FILE, so that tests/helpers/dns_tripwire.py can say
-- which spec asked the "system resolver" (tests/resolver_guard).
local busted = require "busted"
local path = os.getenv("MXPROBE_CURRENT_TEST_FILE")
if path then
  busted.subscribe({ "test", "start" }, function(element, parent)
    local names, e = {}, element
    while e and e.name do
      table.insert(names, 1, e.name)
      e = busted.parent(e)
    end
    local f = io.open(path, "w")
    if f then
      local info = element.trace and element.trace.short_src
      f:write(table.concat(names, " "), info and (" (" .. info .. ")") or "", "\n")
      f:close()
    end
    return nil, true
  end)
end
