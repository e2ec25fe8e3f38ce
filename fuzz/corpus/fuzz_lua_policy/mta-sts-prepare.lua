-- Preparing MTA-STS enforcement (RFC 8461).  Once a domain publishes
-- "mode: enforce", a sending MTA that knows the policy delivers only to an
-- MX that (1) matches one of the policy's "mx:" patterns, (2) offers
-- STARTTLS with TLS 1.2 or later, and (3) presents a certificate that
-- chains to a public CA, is within its dates and names the MX host.  Any
-- MX that fails one of these receives no mail from those senders.  This
-- policy says, MX by MX and address by address, which would fail and why,
-- before you switch from "mode: testing" to "mode: enforce".
--
--   mxprobe --policy examples/policies/mta-sts-prepare.lua example.org
--
-- params.mx_patterns: the "mx:" lines of the policy you plan to publish
-- (nil: every current MX is taken as listed).

local TLS_RANK = { SSLv3 = 0, TLSv1 = 1, ["TLSv1.1"] = 2, ["TLSv1.2"] = 3, ["TLSv1.3"] = 4 }

-- Why one server would fail enforcement ({} when it would pass).
local function problems(srv)
  local out = {}
  local t, c = srv.facts.starttls, srv.facts.certificate
  local connect = srv.facts.connect
  if connect and connect.state ~= "connected" then
    return out -- unreachable: the stock findings say so; MTA-STS changes nothing
  end
  if not t then
    out[#out + 1] = "not tested (no EHLO)"
  elseif not t.offered then
    out[#out + 1] = "no STARTTLS"
  elseif not t.handshake then
    out[#out + 1] = "the TLS handshake fails"
  elseif (TLS_RANK[t.version] or 0) < TLS_RANK["TLSv1.2"] then
    out[#out + 1] = t.version .. " (TLS 1.2 or later is required)"
  end
  if t and t.handshake then
    if not c then
      out[#out + 1] = "no certificate"
    else
      if c.days_left and c.days_left < 0 then out[#out + 1] = "the certificate has expired" end
      if not c.verified then out[#out + 1] = "the certificate does not chain to a trusted CA" end
      if not c.name_match then out[#out + 1] = ("the certificate does not name %s"):format(srv.host) end
    end
  end
  return out
end

return {
  name = "mta-sts-prepare",
  description = "Would every MX pass MTA-STS enforce? (RFC 8461: STARTTLS, TLS >= 1.2, valid chain, matching name)",

  params = {
    mx_patterns = nil,   -- e.g. { "mx1.example.org", "*.mail.example.net" }
  },

  thresholds = { min_tls = "TLSv1.2" },

  rules = {
    {
      name = "every MX would pass MTA-STS enforce",
      check = function(result, api)
        local failing, total = 0, 0
        for _, srv in ipairs(result.servers) do
          local why = problems(srv)
          total = total + 1
          if #why > 0 then
            failing = failing + 1
            api.fail(("%s (%s, preference %d) would refuse MTA-STS senders: %s"):format(
              srv.host, srv.address, srv.preference, table.concat(why, "; ")),
              { server = srv, evidence = { reasons = why },
                hint = "Fix this MX before publishing mode: enforce, or leave it out of the policy's mx: lines (and the MX records)." })
          end
        end
        if total > 0 and failing == 0 then
          api.pass(("all %d MX address(es) meet MTA-STS enforce requirements"):format(total))
        end
      end,
    },
    {
      name = "MX records match the planned mx: lines",
      check = function(result, api)
        local patterns = api.params.mx_patterns
        if not patterns then return end
        for _, mx in ipairs(api.mx()) do
          if not api.match(mx.host, patterns) then
            api.fail(("MX %s matches no mx: line of the planned policy (%s): enforcing senders skip it"):format(
              mx.host, table.concat(patterns, ", ")))
          end
        end
      end,
    },
    {
      name = "MTA-STS and TLS-RPT records",
      check = function(result, api)
        if result.mode == "host" or #result.servers == 0 then return end
        local function txt(name, prefix)
          local ans = api.query(name, "TXT")
          if not ans then return nil end
          for _, rr in ipairs(ans.answers or {}) do
            if rr.type == "TXT" and (rr.text or ""):find(prefix, 1, true) == 1 then return rr.text end
          end
          return false
        end
        local sts = txt("_mta-sts." .. result.domain, "v=STSv1")
        if sts == false then
          api.info(("no _mta-sts.%s TXT record yet: publish the policy file at https://mta-sts.%s/.well-known/mta-sts.txt first, then the record"):format(
            result.domain, result.domain))
        elseif sts and not sts:find("id=", 1, true) then
          api.warn(("_mta-sts.%s has no id= (%s): senders cannot tell when the policy changes"):format(result.domain, sts))
        end
        local rpt = txt("_smtp._tls." .. result.domain, "v=TLSRPTv1")
        if rpt == false then
          api.info(("no _smtp._tls.%s TXT record (TLS-RPT): publish one to hear about failures while in testing mode"):format(result.domain))
        end
      end,
    },
  },
}
