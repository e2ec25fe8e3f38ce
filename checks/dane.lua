-- DANE for SMTP (RFC 7672, RFC 7671): what a sender that does DANE
-- (Postfix smtp_tls_security_level = dane, Exim, large providers) does with
-- the TLSA records at _25._tcp.<MX host> and the chain this address sent.
--
-- Senders use the records only when both the MX host's address records and
-- the TLSA answer are DNSSEC-validated (RFC 7672 2.2): otherwise they are
-- ignored (info, never critical).  An MX host that is an alias with a
-- secure CNAME chain has its TLSA looked up at the expanded name first,
-- then at the original (2.2.2); a DANE-TA chain must name the TLSA base
-- domain, the name the records were found at (3.2.2).  That is what
-- Postfix does (tls_dane_resolve, smtp_tls_policy.c): its match list is
-- the base domain and the next-hop domain, never the MX name before
-- expansion; the next-hop domain is left out here, because a probe is
-- shared by every domain whose MX it is.
-- A validating resolver that answers SERVFAIL for the TLSA name while the addresses validate means the records
-- are bogus: DANE senders defer (critical).  Whether the resolver validates
-- at all is asked once per run (net/dns.validates, as Postfix's
-- dnssec_probe): without it every DANE result is inconclusive.
--
-- Usages 3 (DANE-EE: the leaf, no name or expiry check) and 2 (DANE-TA:
-- the chain up to the matched certificate is verified, with the MX host
-- name and the dates); 0 and 1 are unusable for SMTP (RFC 7672 3.1.3);
-- selectors 0 and 1, matching types 0, 1 and 2 (x509:tlsa computes them).
local dns = require "mxprobe.net.dns"
local core_x509 = require("mxprobe.core").x509

local function date(t) return math.type(t) and os.date("!%Y-%m-%d", t) or nil end

-- "ns:." (Postfix's dnssec_probe syntax: type:name) -> ".", "NS"
local function probe_of(spec)
  local t, n = tostring(spec):match("^(%a+):(.+)$")
  if not t then error(("dnssec_probe: %q is not TYPE:NAME (e.g. \"ns:.\")"):format(tostring(spec)), 0) end
  return n, t:upper()
end

local function record_text(rr)
  local data = rr.data or ""
  if #data > 16 then data = data:sub(1, 16) .. "..." end
  return ("%d %d %d %s"):format(rr.usage, rr.selector, rr.mtype, data)
end

-- The MX host's fully CNAME-expanded name in its (secure) address answer,
-- or nil when it is no alias.  A secure answer means every CNAME of the
-- chain validated (the resolver sets AD only then).
local function expanded_name(addr, host)
  local cnames = {}
  for _, rr in ipairs(addr.answers or {}) do
    if rr.type == "CNAME" and rr.name and rr.target then cnames[rr.name:lower():gsub("%.$", "")] = rr.target end
  end
  local n, hops = host:lower():gsub("%.$", ""), 0
  while cnames[n] and hops < 16 do n, hops = cnames[n]:lower():gsub("%.$", ""), hops + 1 end
  if hops == 0 then return nil end
  return n
end

-- The TLSA answer a DANE sender uses (RFC 7672 2.2.2): behind a secure
-- CNAME chain, at the expanded name first, then at the original name when
-- the expanded one has none (a lookup error there is not "none": no second
-- try, as Postfix's tls_dane_resolve).  ans, code, detail, the TLSA name.
local function tlsa_lookup(ctx, host, expanded, fact)
  local name = "_25._tcp." .. host
  if expanded then
    fact.expanded = expanded
    local xname = "_25._tcp." .. expanded
    local ans, code, detail = ctx.dns:query(xname, "TLSA", ctx:deadline("dns"))
    local found = false
    for _, rr in ipairs(ans and ans.answers or {}) do if rr.type == "TLSA" then found = true end end
    if not ans or found or ans.rcode == "SERVFAIL" then
      fact.name, fact.base = xname, expanded
      return ans, code, detail, xname
    end
  end
  fact.name, fact.base = name, host
  local ans, code, detail = ctx.dns:query(name, "TLSA", ctx:deadline("dns"))
  return ans, code, detail, name
end

return {
  id = "dane",
  description = "DANE for SMTP: TLSA records at _25._tcp.<MX> (DNSSEC-validated) against the chain presented, as a DANE sender judges them (RFC 7672)",
  categories = { "tls", "dns" },
  scope = "session",
  requires = { "starttls" },
  -- dnssec_probe: a signed name asked once per run to learn whether the
  -- resolver validates (TYPE:NAME, as Postfix); the run's config may set
  -- dnssec_probe too (test worlds whose trust anchor is not the root)
  options = { dnssec_probe = "ns:." },
  findings = {
    DANE_MATCH = { severity = "ok",
      message = "TLSA {record} at {name} matches the {what}: DANE senders deliver, encrypted and authenticated" },
    DANE_NO_MATCH = { severity = "critical",
      message = "None of the {count} usable TLSA record(s) at {name} matches the chain this server presents: DANE senders will not deliver",
      hint = "Publish a TLSA record for the key in use (\"3 1 1 {spki}\") before removing the old one; after a key change, keep both records until every cache has the new one." },
    DANE_TA_INVALID = { severity = "critical",
      message = "TLSA {record} at {name} matches {what}, but the chain to it does not verify for {host} ({reason}): DANE senders will not deliver",
      hint = "With DANE-TA (usage 2) senders check the chain up to the matched certificate, its dates and the MX host name: serve the full chain and a certificate naming {host}." },
    DANE_NO_TLS = { severity = "critical",
      message = "TLSA records are published at {name}, but {why}: DANE senders will not deliver in plaintext",
      hint = "Fix STARTTLS on this server, or withdraw the TLSA records until it works." },
    DANE_RECORDS_UNUSABLE = { severity = "warning",
      message = "The TLSA records at {name} are all unusable for SMTP ({records}): DANE senders still insist on TLS, but authenticate nothing",
      hint = "Usages 0 and 1 (PKIX) are unusable with SMTP (RFC 7672 3.1.3); publish \"3 1 1\" (the server's key) or \"2 1 1\" (the issuing CA's key)." },
    DANE_TLSA_INSECURE = { severity = "info",
      message = "TLSA records at {name} are not DNSSEC-validated ({why}): senders ignore them and deliver as if there were none",
      hint = "Sign the zone of {host} and of {name} with DNSSEC (and publish the DS at the parent) for DANE to protect this MX." },
    DANE_BOGUS = { severity = "critical",
      message = "The validating resolver answers SERVFAIL for {name} while the addresses of {host} are signed: DNSSEC validation fails (bogus) and DANE senders defer mail",
      hint = "Check the signatures of the zone holding {name} (expired RRSIGs, a DS that matches no DNSKEY), e.g. with delv or dnsviz." },
    DANE_TLSA_MALFORMED = { severity = "critical",
      message = "The TLSA answer for {name} is malformed ({detail}): DANE senders cannot read it and defer mail",
      hint = "Each TLSA record is usage, selector, matching type and hex data (e.g. \"3 1 1 <64 hex digits>\")." },
    DANE_RESOLVER_NOT_VALIDATING = { severity = "inconclusive",
      message = "TLSA records exist at {name}, but {why}: the DANE result is inconclusive",
      hint = "Run mxprobe with a validating resolver (--resolver, e.g. a local unbound) to judge DANE." },
    DANE_DNS_FAILED = { severity = "inconclusive", message = "The TLSA query for {name} failed ({reason})" },
    DANE_ROLLOVER_MISSING = { severity = "warning",
      message = "The TLSA records at {name} pin only the current key, and the certificate expires in {days} days ({not_after}): a renewal with a new key breaks DANE delivery",
      hint = "Before renewing, publish the next key's \"3 1 1\" record next to the current one (or renew with the same key: certbot --reuse-key), wait two TTLs, then switch." },
  },

  applies = function(ctx)
    if ctx.facts.starttls == nil then return false, "STARTTLS was not tested" end
    return true
  end,

  run = function(ctx)
    local host = ctx.host
    local fact = { name = "_25._tcp." .. host, records = {}, result = "none" }
    ctx:fact(fact)
    -- is this resolver one whose AD bits mean anything?  (once per run)
    local probe_name, probe_type = probe_of(ctx.config.dnssec_probe or ctx:option("dnssec_probe"))
    local function validating()
      return dns.validates(ctx.dns, probe_name, probe_type, ctx:deadline("dns"))
    end
    local addr = ctx.dns:query(host, ctx.family == 6 and "AAAA" or "A", ctx:deadline("dns"))
    local addr_secure = addr ~= nil and addr.secure == true
    fact.address_secure = addr_secure
    -- a validating resolver says the MX host is not signed: senders never
    -- ask for its TLSA records, so a failure to get them changes nothing
    local function ignored_by_senders() return not addr_secure and (validating()) end

    local ans, code, detail, name = tlsa_lookup(ctx, host, addr_secure and expanded_name(addr, host) or nil, fact)
    if not ans then
      if ignored_by_senders() then fact.result = "insecure"; return end
      if code == "dns" and tostring(detail):find("^malformed answer") then
        fact.result = "bogus"
        return ctx:finding("DANE_TLSA_MALFORMED", { name = name, detail = detail })
      end
      fact.result = "inconclusive"
      return ctx:finding("DANE_DNS_FAILED", { name = name, reason = ("%s %s"):format(code, detail or "") })
    end

    if ans.rcode == "SERVFAIL" then
      if ignored_by_senders() then fact.result = "insecure"; return end
      local ok, why = validating()
      if ok and addr_secure then
        fact.result = "bogus"
        return ctx:finding("DANE_BOGUS", { name = name, host = host })
      end
      fact.result = "inconclusive"
      return ctx:finding("DANE_DNS_FAILED", { name = name, reason = "SERVFAIL" .. (ok and "" or ("; " .. why)) })
    end

    local records = {}
    for _, rr in ipairs(ans.answers or {}) do
      if rr.type == "TLSA" then
        records[#records + 1] = rr
        fact.records[#fact.records + 1] = ("%d %d %d %s"):format(rr.usage, rr.selector, rr.mtype, rr.data)
      end
    end
    fact.secure = ans.secure == true
    if #records == 0 then return end -- no TLSA: DANE senders fall back to their other rules

    local ok, why = validating()
    if not ok then
      fact.result = "inconclusive"
      return ctx:finding("DANE_RESOLVER_NOT_VALIDATING", { name = name, why = why })
    end
    if not ans.secure or not addr_secure then
      fact.result = "insecure"
      local what = not addr_secure and ("the addresses of " .. host .. " are not signed")
                   or "the TLSA answer is not signed"
      return ctx:finding("DANE_TLSA_INSECURE", { name = name, host = host, why = what })
    end

    -- from here on, DANE senders apply these records to this server
    local usable, unusable = {}, {}
    for _, rr in ipairs(records) do
      if (rr.usage == 2 or rr.usage == 3) and (rr.selector == 0 or rr.selector == 1)
         and rr.mtype >= 0 and rr.mtype <= 2 then
        usable[#usable + 1] = rr
      else
        unusable[#unusable + 1] = ("%d %d %d"):format(rr.usage, rr.selector, rr.mtype)
      end
    end
    fact.usable = #usable
    if #usable == 0 then
      fact.result = "unusable"
      return ctx:finding("DANE_RECORDS_UNUSABLE", { name = name, records = unusable })
    end

    local info = ctx:tls() -- the live chain (the one place this check reads it)
    local chain = info and info.chain
    if not chain or not chain[1] then
      fact.result = "no_tls"
      local st = ctx.facts.starttls or {}
      local w = not st.offered and "the server does not offer STARTTLS"
                or ("the TLS handshake did not complete" .. (st.throttled and " (421)" or ""))
      return ctx:finding("DANE_NO_TLS", { name = name, why = w })
    end

    local leaf = chain[1]
    local matched, ta_failure, ee_matches, others = nil, nil, 0, 0
    for _, rr in ipairs(usable) do
      local want = tostring(rr.data):lower()
      if rr.usage == 3 then
        if leaf:tlsa(rr.selector, rr.mtype) == want then
          ee_matches = ee_matches + 1
          matched = matched or { rr = rr, what = "server's certificate (DANE-EE)" }
        else
          others = others + 1
        end
      else
        others = others + 1
        for i = 2, #chain do
          if chain[i]:tlsa(rr.selector, rr.mtype) == want then
            local what = ("issuer at depth %d, %s (DANE-TA)"):format(i - 1, chain[i]:subject() or "?")
            -- the name a DANE-TA chain must carry: the TLSA base domain
            local vok, _, vwhy = core_x509.verify_to_anchor(chain, i, fact.base or host)
            if vok then
              matched = matched or { rr = rr, what = what, anchor = chain[i] }
            else
              ta_failure = ta_failure or { rr = rr, what = what, reason = vwhy }
            end
            break
          end
        end
      end
    end

    if matched then
      fact.result = "match"
      fact.matched = record_text(matched.rr)
      if matched.anchor then fact.anchor_not_after = matched.anchor:not_after() end -- DANE-TA: the anchor's dates count
      ctx:finding("DANE_MATCH", { name = name, record = record_text(matched.rr), what = matched.what })
      -- rollover foresight: only the current key is pinned and it expires soon
      local na = leaf:not_after()
      local horizon = ctx:threshold("expiry_warning_days") or 30
      if ee_matches > 0 and others == 0 and math.type(na) then
        local days = math.floor((na - os.time()) / 86400)
        if days >= 0 and days < horizon then -- an expired one: the certificate check says so
          ctx:finding("DANE_ROLLOVER_MISSING", { name = name, days = days, not_after = date(na),
                                                 spki = leaf:tlsa(1, 1) })
        end
      end
      return
    end
    if ta_failure then
      fact.result = "mismatch"
      return ctx:finding("DANE_TA_INVALID", { name = name, host = fact.base or host, record = record_text(ta_failure.rr),
                                              what = ta_failure.what, reason = ta_failure.reason })
    end
    fact.result = "mismatch"
    ctx:finding("DANE_NO_MATCH", { name = name, count = #usable, spki = leaf:tlsa(1, 1) })
  end,
}
