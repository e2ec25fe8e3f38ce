-- DANE for SMTP (RFC 7672): does the certificate the server presents match
-- the TLSA records published at _25._tcp.<MX host>?  A sender that does
-- DANE (Postfix with smtp_tls_security_level = dane, Exim, many large
-- providers) refuses to deliver when no TLSA record matches, so a stale
-- record after a certificate renewal stops mail from exactly the careful
-- senders.  Uses the DNS API (ctx.dns:query) and the certificate chain the
-- starttls check recorded (ctx:tls()).
--
-- Supported: usages 3 (DANE-EE) and 2 (DANE-TA), selectors 0 (full
-- certificate) and 1 (SubjectPublicKeyInfo), matching type 1 (SHA-256);
-- other records are reported as unusable.  TLSA records count only when
-- the answer is DNSSEC-validated (AD flag from a validating resolver).
--
-- Options: require_dnssec (default true): without a validated answer,
-- report DANE_INSECURE and compare anyway.

local function hex(s) return (s or ""):gsub("[^%x]", ""):lower() end

-- The SHA-256 a TLSA record (selector, mtype 1) would carry for a certificate.
local function digest(cert, selector)
  if selector == 1 then return hex(cert:spki_sha256()) end
  return hex(cert:fingerprint()) -- SHA-256 of the DER certificate
end

return {
  id = "dane_tlsa",
  description = "DANE: the TLSA records of _25._tcp.<MX> against the certificate presented (RFC 7672)",
  categories = { "tls", "dns" },
  scope = "session",
  requires = { "certificate" },
  options = { require_dnssec = true },
  findings = {
    DANE_OK = { severity = "ok", message = "TLSA {usage} {selector} {mtype} at {name} matches the {what}" },
    DANE_NONE = { severity = "info", message = "No TLSA record at {name}: senders do not use DANE for this MX" },
    DANE_MISMATCH = { severity = "critical",
      message = "No TLSA record at {name} matches the certificate ({count} record(s)); DANE senders will not deliver",
      hint = "Publish a TLSA record for the current key (e.g. \"3 1 1 {spki}\") before removing the old one; renew keys with a TLSA rollover." },
    DANE_UNUSABLE = { severity = "warning", message = "The TLSA records at {name} are all of kinds this check does not evaluate ({kinds})" },
    DANE_INSECURE = { severity = "info", message = "The TLSA answer for {name} is not DNSSEC-validated: senders ignore it unless the zone is signed" },
    DANE_DNS_FAIL = { severity = "inconclusive", message = "The TLSA query for {name} failed ({reason})" },
  },

  applies = function(ctx)
    local tls = ctx:tls()
    if not (tls and tls.chain and tls.chain[1]) then return false, "no certificate from the TLS session" end
    return true
  end,

  run = function(ctx)
    local name = "_25._tcp." .. ctx.host
    local ans, code, detail = ctx.dns:query(name, "TLSA", ctx:deadline("dns"))
    if not ans then
      return ctx:finding("DANE_DNS_FAIL", { name = name, reason = ("%s %s"):format(code, detail or "") })
    end
    local records = {}
    for _, rr in ipairs(ans.answers or {}) do
      if rr.type == "TLSA" then records[#records + 1] = rr end
    end
    local fact = { name = name, records = #records, validated = ans.ad == true }
    ctx:fact(fact)
    if #records == 0 then return ctx:finding("DANE_NONE", { name = name }) end
    if not ans.ad and ctx:option("require_dnssec") then ctx:finding("DANE_INSECURE", { name = name }) end

    local chain = ctx:tls().chain
    local usable, kinds = 0, {}
    for _, rr in ipairs(records) do
      local kind = ("%d %d %d"):format(rr.usage, rr.selector, rr.mtype)
      if (rr.usage == 3 or rr.usage == 2) and (rr.selector == 0 or rr.selector == 1) and rr.mtype == 1 then
        usable = usable + 1
        -- DANE-EE: the leaf; DANE-TA: any issuer the server sent
        local from, to = 1, 1
        if rr.usage == 2 then from, to = 2, #chain end
        for i = from, to do
          if digest(chain[i], rr.selector) == hex(rr.data) then
            fact.matched = kind
            return ctx:finding("DANE_OK", { name = name, usage = rr.usage, selector = rr.selector, mtype = rr.mtype,
              what = i == 1 and "server's certificate" or ("issuer at depth " .. (i - 1)) })
          end
        end
      else
        kinds[#kinds + 1] = kind
      end
    end
    if usable == 0 then return ctx:finding("DANE_UNUSABLE", { name = name, kinds = kinds }) end
    ctx:finding("DANE_MISMATCH", { name = name, count = #records, spki = hex(chain[1]:spki_sha256()) })
  end,
}
