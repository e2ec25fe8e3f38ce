-- bench/audit.d/handshakes.lua OUTPUT: the TLS handshakes an audit's
-- records say were made, for bench/audit (b): one per address whose
-- STARTTLS handshake completed (facts.starttls.handshake), and one more
-- per address the STARTTLS injection check probed (it opens a session of
-- its own: a finding of check "starttls_injection" is its result).
-- Prints: addresses=N main=M injection=I
local cjson = require "cjson"
local addresses, main, injection = 0, 0, 0
for line in assert(io.open(arg[1])):lines() do
  local r = cjson.decode(line)
  for _, s in ipairs(r.servers or {}) do
    addresses = addresses + 1
    local t = s.facts and s.facts.starttls
    if type(t) == "table" and t.handshake == true then main = main + 1 end
    for _, f in ipairs(s.findings or {}) do
      if f.check == "starttls_injection" then injection = injection + 1; break end
    end
  end
end
print(("addresses=%d main=%d injection=%d"):format(addresses, main, injection))
