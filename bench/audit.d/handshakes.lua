-- bench/audit.d/handshakes.lua OUTPUT: the TLS handshakes an audit's
-- records say were made, for bench/audit (b): one per address whose
-- STARTTLS handshake completed (facts.starttls.handshake: always a full
-- one), and one more per address the STARTTLS injection check probed on a
-- session of its own (a finding of check "starttls_injection" whose facts
-- do not say carried: a carried probe rode on the main STARTTLS and made
-- no handshake); of those, the ones that resumed the main session's TLS
-- session (facts.starttls_injection.resumed) are abbreviated handshakes:
-- no certificate, no signature, counted apart from the full ones.
-- Prints: addresses=N main=M injection=I resumed=R full=F carried=C
-- (F = M + I - R: the full handshakes made; C: probes carried)
local cjson = require "cjson"
local addresses, main, injection, resumed, carried = 0, 0, 0, 0, 0
for line in assert(io.open(arg[1])):lines() do
  local r = cjson.decode(line)
  for _, s in ipairs(r.servers or {}) do
    addresses = addresses + 1
    local facts = type(s.facts) == "table" and s.facts or {}
    local t = facts.starttls
    if type(t) == "table" and t.handshake == true then main = main + 1 end
    for _, f in ipairs(s.findings or {}) do
      if f.check == "starttls_injection" then
        local inj = facts.starttls_injection
        if type(inj) == "table" and inj.carried == true then
          carried = carried + 1
        else
          injection = injection + 1
          if type(inj) == "table" and inj.resumed == true then resumed = resumed + 1 end
        end
        break
      end
    end
  end
end
print(("addresses=%d main=%d injection=%d resumed=%d full=%d carried=%d"):format(addresses, main, injection, resumed,
  main + injection - resumed, carried))
