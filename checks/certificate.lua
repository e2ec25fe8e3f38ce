-- Step 6 of the seed: the certificate presented after STARTTLS: chain,
-- expiry (leaf and intermediates), name match against the MX host name
-- (never the mail domain), self-signed, key size, SHA-1 signatures.
-- Opportunistic SMTP TLS still encrypts with an untrusted certificate: the
-- messages say so instead of calling it "no TLS".

-- OpenSSL X509_V_ERR_* codes that say what kind of chain problem it is.
-- Only 18 (DEPTH_ZERO_SELF_SIGNED_CERT) means the server's own certificate
-- is self-signed; 19 (SELF_SIGNED_CERT_IN_CHAIN) is a CA-issued leaf whose
-- root the tester does not trust: untrusted, not self-signed.
local EXPIRED, NOT_YET_VALID = 10, 9
local SELF_SIGNED = { [18] = true }

-- nil when the time field is unreadable (x509 returns nil, "x509", detail):
-- a hostile certificate must not crash the check
local function days(t, now) return math.type(t) and math.floor((t - now) / 86400) or nil end
local function date(t) return math.type(t) and os.date("!%Y-%m-%d", t) or nil end

return {
  id = "certificate",
  description = "The TLS certificate: chain verification, expiry of leaf and intermediates, name match with the MX host, self-signed, key size, SHA-1",
  categories = { "tls" },
  scope = "session",
  requires = { "starttls" },
  findings = {
    CERT_OK = { severity = "ok", message = "Certificate for {subject} verified (issuer {issuer}); expires in {days} days" },
    CERT_UNTRUSTED = { severity = "warning", message = "The chain does not verify ({reason} at depth {depth}); opportunistic TLS still encrypts, but senders that verify certificates (MTA-STS, strict clients) will refuse it; DANE senders judge by the TLSA records",
      hint = "Serve the full chain (leaf + intermediates) from a CA that senders trust; with --ca-file, check it is the right CA." },
    CERT_SELF_SIGNED = { severity = "warning", message = "The certificate is self-signed ({subject}); TLS still encrypts, but senders that verify certificates (MTA-STS, strict clients) will refuse it; only DANE-EE (TLSA 3 1 1) authenticates it",
      hint = "Get a certificate from a public CA (e.g. Let's Encrypt: certbot certonly --standalone -d {host})." },
    CERT_EXPIRED = { severity = "critical", message = "The certificate {which} expired {ago} days ago ({not_after}); opportunistic TLS still encrypts, but senders that verify certificates (MTA-STS, strict clients, DANE-TA) will refuse it; DANE-EE ignores dates",
      hint = "Renew the certificate (Let's Encrypt: certbot renew) and reload the MTA (postfix reload)." },
    CERT_NOT_YET_VALID = { severity = "critical", message = "The certificate {which} is not valid before {not_before}; opportunistic TLS still encrypts, but senders that verify certificates (MTA-STS, strict clients, DANE-TA) will refuse it; DANE-EE ignores dates",
      hint = "Check the server's clock and the certificate's dates." },
    CERT_EXPIRING = { severity = "warning", message = "The certificate {which} expires in {days} days ({not_after})",
      hint = "Renew it before it expires (certbot renew), and check that automatic renewal runs." },
    CERT_NAME_MISMATCH = { severity = "warning", message = "The certificate names ({names}) do not match the MX host {host}; opportunistic TLS still encrypts, but senders that verify certificates (MTA-STS, strict clients, DANE-TA) will refuse it",
      hint = "Get a certificate whose SAN includes {host}; senders verify the MX host name, not the mail domain." },
    CERT_WEAK_KEY = { severity = "warning", message = "Weak key: {key_type} {bits} bits (minimum {min})",
      hint = "Use RSA of at least 2048 bits or an EC key (P-256)." },
    CERT_SHA1 = { severity = "warning", message = "The certificate {which} is signed with SHA-1 ({algorithm})",
      hint = "Reissue the certificate with a SHA-256 signature." },
    CERT_MISSING = { severity = "critical", message = "The server presented no certificate" },
  },

  applies = function(ctx)
    if ctx:tls() == nil then return false, "no TLS session" end
    return true
  end,

  run = function(ctx)
    local info = ctx:tls()
    local chain = info.chain or {}
    local leaf = chain[1]
    if not leaf then return ctx:finding("CERT_MISSING", {}) end
    local now = os.time()
    local key_type, bits = leaf:key()
    local fact = {
      subject = leaf:subject(), issuer = leaf:issuer(), serial = leaf:serial(),
      not_before = leaf:not_before(), not_after = leaf:not_after(), days_left = days(leaf:not_after(), now),
      sans = leaf:sans(), key_type = key_type, key_bits = bits, signature = leaf:signature_algorithm(),
      fingerprint_sha256 = leaf:fingerprint(), verified = info.verify and info.verify.ok or false,
      name_match = info.hostname_match and true or false, chain = {},
    }
    ctx:fact(fact)
    for i, c in ipairs(chain) do
      fact.chain[i] = { subject = c:subject(), issuer = c:issuer(), not_after = c:not_after() }
    end

    -- chain verification: errors recorded by the TLS layer, with depth
    local errors = info.verify and info.verify.errors or {}
    local reported_self, first_other = false, nil
    for _, e in ipairs(errors) do
      if SELF_SIGNED[e.code] then
        if not reported_self then
          ctx:finding("CERT_SELF_SIGNED", { subject = fact.subject, host = ctx.host, depth = e.depth })
          reported_self = true
        end
      elseif e.code ~= EXPIRED and e.code ~= NOT_YET_VALID and not first_other then
        first_other = e
      end
    end
    if first_other and not reported_self then
      ctx:finding("CERT_UNTRUSTED", { reason = first_other.reason, depth = first_other.depth, code = first_other.code })
    end

    -- validity of every certificate presented (leaf and intermediates)
    local horizon = ctx:threshold("expiry_warning_days") or 30
    local any_date_problem = false
    for i, c in ipairs(chain) do
      local which = i == 1 and ("for " .. fact.subject) or ("of intermediate " .. c:subject())
      local na, nb = c:not_after(), c:not_before()
      local left = days(na, now)
      local ev = { which = which, depth = i - 1, not_after = date(na),
                   not_before = date(nb), days = left, ago = left and -left }
      if not math.type(na) or not math.type(nb) then
        -- unreadable dates: the chain verification reports the format error
        any_date_problem = true
      elseif na < now then
        ctx:finding("CERT_EXPIRED", ev); any_date_problem = true
      elseif nb > now then
        ctx:finding("CERT_NOT_YET_VALID", ev); any_date_problem = true
      elseif left < horizon and not (c:self_signed() and i > 1) then
        ctx:finding("CERT_EXPIRING", ev); any_date_problem = true
      end
      if i == 1 or not c:self_signed() then
        local alg = c:signature_algorithm() or ""
        if alg:lower():find("sha1") then ctx:finding("CERT_SHA1", { which = which, algorithm = alg }) end
      end
    end

    if not fact.name_match then
      local names = fact.sans and #fact.sans > 0 and fact.sans or { fact.subject }
      ctx:finding("CERT_NAME_MISMATCH", { names = names, host = ctx.host })
    end

    local min = key_type == "RSA" and (ctx:threshold("min_rsa_bits") or 2048)
             or key_type == "EC" and (ctx:threshold("min_ec_bits") or 224) or nil
    if min and bits and bits < min then
      ctx:finding("CERT_WEAK_KEY", { key_type = key_type, bits = bits, min = min })
    end

    if fact.verified and fact.name_match and not any_date_problem then
      ctx:finding("CERT_OK", { subject = fact.subject, issuer = fact.issuer, days = fact.days_left })
    end
  end,
}
