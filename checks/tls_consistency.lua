-- The seed's warning about secondaries: "a misconfigured secondary MX is
-- still reachable and may accept mail without TLS".  Mixed TLS support
-- across the MX of one domain lets an attacker steer mail to the weak one.
return {
  id = "tls_consistency",
  description = "Whether every MX address of the domain offers working STARTTLS, not just some",
  categories = { "tls" },
  scope = "domain",
  requires = { "starttls" },
  findings = {
    TLS_INCONSISTENT = { severity = "warning", message = "STARTTLS works on {good} of {total} addresses; without it: {weak}",
      hint = "Configure TLS on every MX, backups included: senders fall back to them and an attacker can force that." },
  },
  run = function() end, -- all the work happens once every address is done
  summarize = function(dctx)
    local good, weak, total = 0, {}, 0
    for _, srv in ipairs(dctx:servers()) do
      local t = srv.facts.starttls
      if t and not t.throttled then -- a 421 tells nothing about TLS
        total = total + 1
        if t.handshake then good = good + 1 else weak[#weak + 1] = ("%s (%s)"):format(srv.host, srv.address) end
      end
    end
    if good > 0 and #weak > 0 then
      dctx:finding("TLS_INCONSISTENT", { good = good, total = total, weak = weak })
    end
  end,
}
