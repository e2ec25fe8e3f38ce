-- Step 1 of the seed: resolve the MX records, sorted by preference.
-- Every MX is tested later, not just the primary.
local iputil = require "mxprobe.net.iputil"
local dns = require "mxprobe.net.dns"

local function strip(name)
  name = (name or ""):lower()
  return name:byte(-1) == 46 and name:sub(1, -2) or name -- without its final dot
end

local function has_address(ctx, name)
  -- implicit MX: does the domain itself have A or AAAA? (RFC 5321 5.1)
  local addrs, info, detail = dns.addresses(ctx.dns, name, "both", ctx:deadline("dns"))
  if not addrs then return false, info .. ": " .. tostring(detail) end
  if #addrs > 0 then return true, nil end
  local _, e = next(info.errors or {})
  return false, e and (e.code .. ": " .. tostring(e.detail)) or nil
end

return {
  id = "mx",
  description = "MX records of the domain: existence, null MX, implicit MX, aliases, IP literals, duplicates",
  categories = { "dns" },
  scope = "domain",
  findings = {
    MX_OK = { severity = "ok", message = "{count} MX record(s): {hosts}" },
    MX_NXDOMAIN = { severity = "critical", message = "The domain {domain} does not exist (NXDOMAIN)",
      hint = "Check the spelling; if the domain is yours, check its delegation at the registrar." },
    MX_NONE_IMPLICIT = { severity = "warning",
      message = "No MX record: senders deliver to the domain's own address (implicit MX, RFC 5321 section 5.1)",
      hint = "Publish an MX record naming the mail server, e.g. \"{domain}. IN MX 10 mail.{domain}.\"" },
    MX_NONE = { severity = "critical", message = "No MX record and no A/AAAA record: {domain} cannot receive mail",
      hint = "Publish an MX record; if the domain must not receive mail, publish a null MX (\"IN MX 0 .\", RFC 7505)." },
    MX_NULL = { severity = "info", message = "Null MX (RFC 7505): {domain} declares that it accepts no mail" },
    MX_NULL_MIXED = { severity = "critical", message = "A null MX is published together with other MX records",
      hint = "RFC 7505 section 3: a null MX must be the only MX record; remove either the null MX or the others." },
    MX_IP_LITERAL = { severity = "critical", message = "MX target {host} is an IP address, not a host name; senders look it up as a name and fail",
      hint = "MX records name hosts (RFC 5321 5.1): point the MX at a name with an A/AAAA record for {host}." },
    MX_DUPLICATE = { severity = "info", message = "MX target {host} is listed {count} times" },
    MX_TOO_MANY = { severity = "warning", message = "{untested} of {count} MX not tested (max_mx = {max}): {hosts}",
      hint = "Senders use every MX: raise thresholds.max_mx in a policy to test them all, or publish fewer MX records." },
    MX_DNS_FAIL = { severity = "inconclusive", message = "The MX query for {domain} failed ({reason}): the tester could not tell",
      hint = "Retry; if it persists, check the domain's name servers (SERVFAIL often means broken DNSSEC or lame delegation)." },
  },

  run = function(ctx)
    -- the targets were given (--mx HOST): nothing to look up
    if ctx:targets() then return ctx:fact { given = true } end
    local d = ctx.domain
    ctx:set_targets {}
    local records, ans, detail = dns.mx(ctx.dns, d, ctx:deadline("dns"))
    if not records then
      local code = ans
      return ctx:finding("MX_DNS_FAIL", { domain = d, reason = ("%s: %s"):format(code, detail or "") })
    end
    if ans.rcode == "NXDOMAIN" then return ctx:finding("MX_NXDOMAIN", { domain = d }) end
    if ans.rcode ~= "NOERROR" then return ctx:finding("MX_DNS_FAIL", { domain = d, reason = ans.rcode }) end

    local mx, null = {}, false
    for _, rr in ipairs(records) do
      local host = strip(rr.host)
      if host == "" then null = true else mx[#mx + 1] = { preference = rr.preference, host = host } end
    end

    if #mx == 0 and null then return ctx:finding("MX_NULL", { domain = d }) end
    if null then ctx:finding("MX_NULL_MIXED", { domain = d }) end
    if #mx == 0 then
      local found, failed = has_address(ctx, d)
      if found then
        ctx:finding("MX_NONE_IMPLICIT", { domain = d })
        ctx:set_targets { { host = d, preference = 0, implicit = true } }
      elseif failed then
        ctx:finding("MX_DNS_FAIL", { domain = d, reason = "no MX, and the A/AAAA query failed: " .. failed })
      else
        ctx:finding("MX_NONE", { domain = d })
      end
      return
    end

    table.sort(mx, function(a, b)
      if a.preference ~= b.preference then return a.preference < b.preference end
      return a.host < b.host
    end)
    local seen, list = {}, {}
    for _, m in ipairs(mx) do
      if seen[m.host] then
        seen[m.host].count = seen[m.host].count + 1
      else
        seen[m.host] = { count = 1 }
        list[#list + 1] = m
      end
    end
    for host, s in pairs(seen) do
      if s.count > 1 then ctx:finding("MX_DUPLICATE", { host = host, count = s.count }) end
    end
    local max = ctx:threshold("max_mx") or 10
    if #list > max then
      local left = {}
      for i = max + 1, #list do left[#left + 1] = ("%d %s"):format(list[i].preference, list[i].host) end
      ctx:finding("MX_TOO_MANY", { count = #list, max = max, untested = #list - max, hosts = left })
      for i = #list, max + 1, -1 do list[i] = nil end
    end
    -- MX_OK names the MX that are host names; an IP literal is not a valid
    -- MX (MX_IP_LITERAL), so it is not counted as one
    local hosts = {}
    for _, m in ipairs(list) do
      if iputil.is_literal(m.host) then
        ctx:finding("MX_IP_LITERAL", { host = m.host })
        m.skip = true
      else
        hosts[#hosts + 1] = ("%d %s"):format(m.preference, m.host)
      end
    end
    if #hosts > 0 then ctx:finding("MX_OK", { count = #hosts, hosts = hosts }) end
    ctx:fact { count = #list, hosts = hosts }
    ctx:set_targets(list)
  end,
}
