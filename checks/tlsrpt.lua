-- SMTP TLS Reporting (RFC 8460): the _smtp._tls TXT record, where senders
-- that do MTA-STS or DANE report the TLS failures they meet.  Exactly one
-- "v=TLSRPTv1" record with valid rua URIs (mailto: or https:); without it
-- while the domain uses MTA-STS or DANE, failures are not reported to the
-- domain (info).  No record and neither mechanism: no finding.
local domain = require "mxprobe.net.domain"

-- DANE results (checks/dane.lua facts) that mean senders apply DANE
local DANE_USED = { match = true, mismatch = true, no_tls = true, unusable = true, bogus = true }

-- "mailto:tlsrpt@example.org" | "https://reports.example.org/v1" -> nil | why
local function uri_problem(u)
  local addr = u:match("^mailto:(.+)$")
  if addr then
    local loc, dom = addr:match("^([^@%s]+)@([^@%s]+)$")
    if not loc then return ("%q is not mailto:local@domain"):format(u) end
    dom = dom:gsub("!%d+[kmgt]?$", "") -- RFC 8460 3: an optional size limit
    local why = domain.problem(dom:lower())
    return why and ("%q: the domain %s"):format(u, why) or nil
  end
  local host = u:match("^https://([^/:?#]+)")
  if host then
    local why = domain.problem(host:lower())
    return why and ("%q: the host %s"):format(u, why) or nil
  end
  return ("%q is neither a mailto: nor an https: URI"):format(u)
end

local function parse(text)
  if not text:match("^v=TLSRPTv1;") then return nil, "does not begin with \"v=TLSRPTv1;\"" end
  local rua
  for part in (text .. ";"):gmatch("([^;]*);") do
    local k, v = part:match("^%s*([%w_]+)=(.-)%s*$")
    if k == "rua" then
      if rua then return nil, "rua appears twice" end
      rua = {}
      for u in (v .. ","):gmatch("%s*([^,]-)%s*,") do
        if u == "" then return nil, "an empty rua URI" end
        local why = uri_problem(u)
        if why then return nil, why end
        rua[#rua + 1] = u
      end
    elseif not k and not part:match("^%s*$") then
      return nil, ("field %q is not name=value"):format(part)
    end
  end
  if not rua then return nil, "no rua field" end
  return rua
end

return {
  id = "tlsrpt",
  description = "SMTP TLS Reporting (RFC 8460): the _smtp._tls TXT record and its rua URIs",
  categories = { "tls", "policy" },
  scope = "domain",
  requires = { "mx" },
  findings = {
    TLSRPT_OK = { severity = "ok", message = "TLS-RPT: senders report TLS failures to {rua}" },
    TLSRPT_INVALID = { severity = "warning",
      message = "The TXT record at _smtp._tls.{domain} is invalid ({reason}): senders send no TLS reports",
      hint = "Publish \"v=TLSRPTv1; rua=mailto:tlsrpt@{domain}\" (mailto: or https: URIs, comma-separated)." },
    TLSRPT_MULTIPLE = { severity = "warning",
      message = "{count} \"v=TLSRPTv1\" TXT records at _smtp._tls.{domain}: senders send no TLS reports",
      hint = "Publish exactly one \"v=TLSRPTv1; rua=...\" record." },
    TLSRPT_MISSING = { severity = "info",
      message = "{domain} uses {what} but publishes no TLS-RPT record: senders' TLS failures will not be reported to you",
      hint = "Publish \"_smtp._tls.{domain}. IN TXT \\\"v=TLSRPTv1; rua=mailto:tlsrpt@{domain}\\\"\" (RFC 8460)." },
    TLSRPT_DNS_FAIL = { severity = "inconclusive", message = "The TXT query for _smtp._tls.{domain} failed ({reason})" },
  },

  applies = function(ctx) -- not with --mx HOST
    if ctx:mode() == "host" then return false, "a host, not a domain, is tested" end
    return true
  end,

  run = function(ctx)
    local d = ctx.domain
    local fact = { record = "none" }
    ctx:fact(fact)
    local ans, code, detail = ctx.dns:query("_smtp._tls." .. d, "TXT", ctx:deadline("dns"))
    if not ans then
      fact.record = "failed"
      return ctx:finding("TLSRPT_DNS_FAIL", { domain = d, reason = ("%s %s"):format(code, detail or "") })
    end
    local recs = {}
    for _, rr in ipairs(ans.answers or {}) do
      if rr.type == "TXT" and (rr.text or ""):match("^v=TLSRPTv1") then recs[#recs + 1] = rr.text end
    end
    if #recs == 0 then return end
    if #recs > 1 then
      fact.record = "multiple"
      return ctx:finding("TLSRPT_MULTIPLE", { domain = d, count = #recs })
    end
    local rua, why = parse(recs[1])
    if not rua then
      fact.record = "invalid"
      return ctx:finding("TLSRPT_INVALID", { domain = d, reason = why, record = recs[1] })
    end
    fact.record, fact.rua = "ok", rua
    ctx:finding("TLSRPT_OK", { domain = d, rua = rua })
  end,

  -- after the probes: does the domain use MTA-STS or DANE?
  summarize = function(dctx)
    local fact = dctx.facts.tlsrpt
    if not fact or fact.record ~= "none" then return end
    local what = {}
    local sts = dctx.facts.mta_sts
    if sts and sts.txt == "ok" then what[#what + 1] = "MTA-STS" end
    for _, srv in ipairs(dctx:servers() or {}) do
      local dn = (srv.facts or {}).dane
      if dn and DANE_USED[dn.result] then what[#what + 1] = "DANE"; break end
    end
    if #what > 0 then
      dctx:finding("TLSRPT_MISSING", { domain = dctx.domain, what = table.concat(what, " and ") })
    end
  end,
}
