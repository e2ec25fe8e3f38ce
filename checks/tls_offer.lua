-- TLS depth: what the server offers, not just what it negotiated with us.
-- Each question is one STARTTLS handshake on a session of its own (connect,
-- greeting, EHLO, STARTTLS, handshake, QUIT), one after the other, so the
-- probe never holds more than one connection to the address:
--   versions   one handshake per version, TLS 1.0 to 1.3 (SSL 3 when the
--              linked OpenSSL can still speak it)
--   grades     + one handshake per cipher class (offer only the suites of
--              that class: accepted or not), the key exchange, whether the
--              server enforces its own suite order, a second certificate
--              (ECDSA-only, then RSA-only signature algorithms), and whether
--              a client with OpenSSL 3's defaults completes the handshake
--   suites     + every accepted suite of each class, one handshake each
-- The default is "grades" (about 13 handshakes); the policy sets
-- probe.tls.enumerate = "versions" | "grades" | "suites" | false.
-- A 421, a refused STARTTLS or an overall budget ends the enumeration early;
-- what was learnt is kept and the report says what is missing.
-- The file name sorts after relay and starttls_injection on purpose: the
-- loader keeps file order where dependencies allow, so the main session
-- (and the relay probe inside it) is done before these sessions start.
local iputil = require "mxprobe.net.iputil"
local grades = require "mxprobe.net.tls_grades"
local tls = require "mxprobe.net.tls"
local loop = require "mxprobe.runtime.loop"
local dialog = require "mxprobe.smtp.dialog"
local core = require "mxprobe.core"

local MODES = { versions = 1, grades = 2, suites = 3 }
local ECDSA_SIGALGS = "ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512"
local RSA_SIGALGS = "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:RSA+SHA256:RSA+SHA384:RSA+SHA512"
local BUDGET_S = 120 -- the whole enumeration of one address, at most
-- X509_V_ERR_* codes the certificate check already reports: not yet valid,
-- expired, self-signed, untrusted issuer, unverifiable leaf, hostname
local CERT_CHECK_REPORTS = { [9] = true, [10] = true, [18] = true, [19] = true, [20] = true, [21] = true, [62] = true }

-- Can the linked OpenSSL make a context for this version at all?
local function speakable(version)
  local ok, c = pcall(tls.context, { min = version, max = version, ciphers = "ALL:@SECLEVEL=0" })
  return ok and c ~= nil
end

local Probe = {}
Probe.__index = Probe

-- One session (mxprobe.smtp.dialog.tls_probe: greeting, EHLO, STARTTLS,
-- handshake with opts, QUIT).  Returns the TLS info, or nil, why
-- ("refused": the server would not do it, e.g. an alert or a reset; "stop":
-- a 421 or a refused STARTTLS, no point going on; "error").
local OPT_NAMES = { min = "min_version", max = "max_version", ciphers = "ciphers", security_level = "security_level",
                    sigalgs = "sigalgs" }
function Probe:handshake(what, opts)
  if self.stopped then return nil, "stop", self.stopped end
  if loop.now() > self.t_end then
    self.stopped = "the enumeration's time budget ran out"
    return nil, "stop", self.stopped
  end
  local attempt = { what = what }
  self.fact.attempts[#self.fact.attempts + 1] = attempt
  self.fact.handshakes = self.fact.handshakes + 1
  local o = {}
  for k, v in pairs(opts) do o[OPT_NAMES[k] or k] = v end
  local info, code, detail, probe = dialog.tls_probe(self.ctx, o)
  if info then
    attempt.result, attempt.version, attempt.cipher = "accepted", info.protocol, info.cipher
    return info
  end
  local stage = probe and probe.stage
  if code == "throttled" then
    self.stopped = ("421 to the %s"):format(stage == "greeting" and "greeting" or stage or "session")
    attempt.result = "421 " .. tostring(stage)
    return nil, "stop", self.stopped
  end
  if stage == "starttls" and probe.starttls then
    self.stopped = ("STARTTLS answered %d"):format(probe.starttls.code)
    attempt.result = "STARTTLS " .. probe.starttls.code
    return nil, "stop", self.stopped
  end
  if stage == "handshake" then
    attempt.result, attempt.detail = "refused", detail
    return nil, code == "timeout" and "error" or "refused"
  end
  attempt.result = stage == "greeting" and "no greeting" or (tostring(stage) .. " failed")
  attempt.detail = detail
  return nil, "error"
end

-- Versions: one handshake each.
local function probe_versions(p)
  local offered, tested = {}, {}
  for _, v in ipairs(grades.VERSIONS) do
    if not speakable(v.name) then
      p.fact.untestable[#p.fact.untestable + 1] = v.name
    else
      local info, why = p:handshake("version " .. v.name, { min = v.name, max = v.name, ciphers = "ALL:COMPLEMENTOFALL:@SECLEVEL=0" })
      if why == "stop" then break end
      if why ~= "error" then tested[#tested + 1] = v.name end
      if info then offered[#offered + 1] = v.name end
      if info and info.protocol then p.infos[#p.infos + 1] = info end
    end
  end
  p.fact.versions, p.fact.versions_tested = offered, tested
end

-- Cipher classes (TLS 1.2 and older): one handshake each; "suites" mode
-- repeats each accepted class without the suites already seen.
local function probe_classes(p, deep)
  local max = "TLSv1.2"
  local accepted = {}
  for _, class in ipairs(grades.PROBE_CLASSES) do
    local seen = {}
    for _ = 1, deep and 40 or 1 do
      local info, why = p:handshake("ciphers " .. class, { max = max, ciphers = grades.cipher_string(class, seen) })
      if why == "stop" then return accepted end
      if not info then
        -- the library may have no suite of a class at all (3DES, RC4 in OpenSSL 3)
        break
      end
      seen[#seen + 1] = info.cipher
      local sub = (class == "broken" or class == "anonymous") and class or (class == "insufficient" and "unlisted") or nil
      accepted[#accepted + 1] = { class = sub and "insufficient" or class, part = sub, cipher = info.cipher, version = info.protocol,
                                  kx_type = info.kx_type, kx_bits = info.kx_bits, group = info.group }
      p.infos[#p.infos + 1] = info
    end
  end
  return accepted
end

-- Server preference: offer two accepted suites in both orders.
local function probe_preference(p, accepted)
  local a, b
  for _, s in ipairs(accepted) do
    if not a then a = s.cipher elseif s.cipher ~= a then b = s.cipher break end
  end
  if not (a and b) then return nil end
  local i1 = p:handshake("preference " .. a .. " first", { max = "TLSv1.2", ciphers = a .. ":" .. b .. ":@SECLEVEL=0" })
  local i2 = i1 and p:handshake("preference " .. b .. " first", { max = "TLSv1.2", ciphers = b .. ":" .. a .. ":@SECLEVEL=0" })
  if not (i1 and i2) then return nil end
  return i1.cipher == i2.cipher
end

local function cert_summary(info)
  local leaf = info and info.chain and info.chain[1]
  if not leaf then return nil end
  local ktype, bits, curve = leaf:key()
  return info.chain, {
    key_type = ktype, key_bits = bits, curve = curve, fingerprint_sha256 = leaf:fingerprint(),
    subject = leaf:subject(), not_after = leaf:not_after(), days_left = leaf:not_after() and (leaf:not_after() - os.time()) / 86400,
    verified = info.verify and info.verify.ok or false, name_match = info.hostname_match and true or false,
    signature = info.peer_signature_type,
  }
end

-- A further certificate against the TLSA records the dane check found
-- secure and usable: DANE senders that are given this certificate (they
-- prefer its key type) and find no match do not deliver.  nil: no problem.
local function dane_problem(ctx, chain)
  local d = ctx.facts.dane
  if not (d and d.secure and (d.usable or 0) > 0 and chain and chain[1]) then return nil end
  for _, text in ipairs(d.records or {}) do
    local u, sel, mt, data = text:match("^(%d+) (%d+) (%d+) (%x+)$")
    u, sel, mt = tonumber(u), tonumber(sel), tonumber(mt)
    if u and (sel == 0 or sel == 1) and mt and mt <= 2 then
      data = data:lower()
      if u == 3 and chain[1]:tlsa(sel, mt) == data then return nil end
      if u == 2 then
        for i = 2, #chain do
          if chain[i]:tlsa(sel, mt) == data and core.x509.verify_to_anchor(chain, i, ctx.host) then return nil end
        end
      end
    end
  end
  return "matches none of the domain's secure TLSA records (DANE senders given it do not deliver)"
end

-- Certificates: ECDSA-only, then RSA-only signature algorithms.
local function probe_certificates(p)
  local found = {}
  for _, try in ipairs { { "ECDSA", ECDSA_SIGALGS }, { "RSA", RSA_SIGALGS } } do
    local info = p:handshake("certificate " .. try[1], { sigalgs = try[2] })
    local chain, c = cert_summary(info)
    if c then
      p.chains[c.fingerprint_sha256] = chain
      c.offered_for = try[1]
      local dup = false
      for _, f in ipairs(found) do if f.fingerprint_sha256 == c.fingerprint_sha256 then dup = true end end
      if not dup then found[#found + 1] = c end
    end
  end
  return found
end

-- What OpenSSL 3's defaults do: TLS 1.2+, security level 2, chain and name
-- verified.  Returns { ok, reason, version, cipher }.
local function probe_strict(p)
  local info, why = p:handshake("strict client", { min = "TLSv1.2", security_level = 2 })
  if why == "stop" then return nil end
  if not info then
    local last = p.fact.attempts[#p.fact.attempts]
    return { ok = false, reason = last and last.detail or "the handshake failed" }
  end
  local v = info.verify or {}
  if not v.ok then
    -- errors the certificate check reports already (expiry, trust, name)
    -- are not news; those only security level 2 finds (small keys, weak
    -- digests) are
    local new
    for _, e in ipairs(v.errors or {}) do
      if not CERT_CHECK_REPORTS[e.code] then new = new or e end
    end
    local e = new or (v.errors or {})[1]
    return { ok = false, handshake = true, known = new == nil, version = info.protocol, cipher = info.cipher,
             reason = e and ("certificate at depth %d: %s"):format(e.depth, e.reason) or (v.result or "the certificate is not trusted") }
  end
  if info.hostname_match == false then
    return { ok = false, handshake = true, known = true, version = info.protocol, cipher = info.cipher,
             reason = "the certificate does not name " .. p.ctx.host }
  end
  return { ok = true, version = info.protocol, cipher = info.cipher }
end

local function names(list, field)
  local out = {}
  for _, x in ipairs(list) do out[#out + 1] = field and x[field] or x end
  return out
end

local function report_grades(ctx, fact, accepted)
  local by_class, best, parts = {}, nil, { broken = {}, anonymous = {}, unlisted = {} }
  for _, a in ipairs(accepted) do
    by_class[a.class] = by_class[a.class] or {}
    table.insert(by_class[a.class], a.cipher)
    if a.part then table.insert(parts[a.part], a.cipher) end
    if not best or grades.RANK[a.class] < grades.RANK[best.class] then best = a end
  end
  fact.suites = by_class
  local tls13 = false
  for _, v in ipairs(fact.versions or {}) do if v == "TLSv1.3" then tls13 = true end end
  if #parts.broken > 0 then ctx:finding("TLS_SUITES_INSUFFICIENT", { suites = parts.broken }) end
  if #parts.anonymous > 0 then ctx:finding("TLS_SUITES_ANONYMOUS", { suites = parts.anonymous }) end
  if #parts.unlisted > 0 then ctx:finding("TLS_SUITES_UNLISTED", { suites = parts.unlisted }) end
  if by_class.phase_out then ctx:finding("TLS_SUITES_PHASE_OUT", { suites = by_class.phase_out }) end
  if not tls13 and not by_class.good and not by_class.sufficient and best then
    ctx:finding("TLS_SUITES_NO_FORWARD_SECRECY", { cipher = best.cipher, grade = grades.LABEL[best.class] })
  end
  -- key exchange, over every handshake that completed
  local kx = {}
  for _, info in ipairs(ctx._tls_offer_infos or {}) do
    local g = grades.kx_grade(info.kx_type, info.kx_bits, info.group)
    if g then
      local label = (info.kx_type == "DH" or info.kx_type == "DHX") and ("FFDHE %d bits"):format(info.kx_bits)
                    or (info.group or info.kx_type)
      kx[label] = g
    end
  end
  local kx_list, worst = {}, nil
  for label, g in pairs(kx) do kx_list[#kx_list + 1] = label; worst = grades.worse(worst, g) end
  table.sort(kx_list)
  fact.key_exchange = kx
  if worst == "insufficient" then ctx:finding("TLS_KX_INSUFFICIENT", { groups = kx_list })
  elseif worst == "phase_out" then ctx:finding("TLS_KX_PHASE_OUT", { groups = kx_list }) end
  -- one grade for the offer: the worst of versions and suites accepted
  local grade = nil
  for _, v in ipairs(fact.versions or {}) do grade = grades.worse(grade, grades.VERSION_GRADE[v]) end
  for class in pairs(by_class) do grade = grades.worse(grade, class) end
  grade = grades.worse(grade, worst)
  fact.grade = grade
end

return {
  id = "tls_offer",
  description = "TLS offer: versions, cipher classes, key exchange, server preference, every certificate, modern-client compatibility",
  categories = { "tls" },
  scope = "session",
  requires = { "starttls" },
  findings = {
    TLS_OFFER_VERSIONS = { severity = "ok", message = "TLS versions offered: {versions}" },
    TLS_OFFER_PHASE_OUT = { severity = "warning", message = "{versions} still offered: to be phased out (RFC 8996)",
      hint = "Allow TLS 1.2 and 1.3 only (Postfix: smtpd_tls_protocols = >=TLSv1.2); senders that still need TLS 1.0 are rare." },
    TLS_OFFER_NO_TLS12 = { severity = "warning", message = "Neither TLS 1.2 nor TLS 1.3 is offered (only {versions}): modern senders cannot use TLS with this server",
      hint = "Enable TLS 1.2 and 1.3 in the MTA." },
    TLS_OFFER_UNTESTABLE = { severity = "info", message = "{versions} could not be tested: the linked OpenSSL cannot speak it" },
    TLS_OFFER_INCOMPLETE = { severity = "inconclusive", message = "The TLS offer was only partly tested ({done} handshakes): {reason}",
      hint = "Test again later; a 421 or a refused STARTTLS on a further session means the server limits repeated connections." },
    TLS_SUITES_INSUFFICIENT = { severity = "warning", message = "Broken cipher suites are accepted (no or breakable encryption): {suites}",
      hint = "Remove NULL, export, RC4, DES and MD5 suites (Postfix: smtpd_tls_exclude_ciphers = eNULL, EXPORT, RC4, DES, MD5)." },
    TLS_SUITES_ANONYMOUS = { severity = "info", message = "Anonymous cipher suites are accepted when a client asks for them: {suites}",
      hint = "Harmless for opportunistic SMTP (only a client that does not authenticate asks; Postfix allows them by design), but graded insufficient; exclude aNULL to reach a 'good' grade." },
    TLS_SUITES_UNLISTED = { severity = "info", message = "Cipher suites outside the NCSC-NL lists are accepted (graded insufficient): {suites}",
      hint = "CCM8, CAMELLIA, ARIA and similar suites are not broken but not recommended; exclude them to reach a 'good' grade (Postfix: smtpd_tls_exclude_ciphers)." },
    TLS_SUITES_PHASE_OUT = { severity = "info", message = "Cipher suites to phase out are accepted: {suites}",
      hint = "Static RSA key exchange and 3DES give no forward secrecy; prefer ECDHE suites." },
    TLS_SUITES_NO_FORWARD_SECRECY = { severity = "warning", message = "No good or sufficient cipher suite is offered: the best accepted is {cipher} ({grade})",
      hint = "Offer ECDHE with AES-GCM or ChaCha20-Poly1305, and TLS 1.3." },
    TLS_KX_INSUFFICIENT = { severity = "warning", message = "Key exchange too weak: {groups}",
      hint = "Use ECDHE (x25519, P-256) or FFDHE groups of 3072 bits or more." },
    TLS_KX_PHASE_OUT = { severity = "info", message = "Key exchange to phase out: {groups}",
      hint = "FFDHE 2048 is to be phased out; prefer ECDHE or 3072-bit groups." },
    TLS_NO_SERVER_PREFERENCE = { severity = "info", message = "The server follows the client's suite order ({first} or {second}, whichever the client lists first)",
      hint = "Let the server choose (Postfix: tls_preempt_cipherlist = yes) when it accepts suites of different grades." },
    TLS_CERTIFICATES = { severity = "ok", message = "{count} certificates: {list}" },
    TLS_SECOND_CERT_PROBLEM = { severity = "warning", message = "The {type} certificate {problem}: senders that pick it see the problem",
      hint = "Every certificate the server holds must be valid: a sender that prefers that key type gets this one." },
    TLS_STRICT_CLIENT_OK = { severity = "ok", message = "A client with OpenSSL 3 defaults (TLS 1.2+, security level 2, verified) completes the handshake ({version} {cipher})" },
    TLS_STRICT_CLIENT_FAILS = { severity = "warning", message = "A client with OpenSSL 3 defaults (TLS 1.2+, security level 2, verified) fails: {reason}",
      hint = "Senders that verify certificates or use current defaults cannot deliver over TLS; fix what the reason names." },
    TLS_STRICT_CLIENT_CERT = { severity = "info", message = "A client with OpenSSL 3 defaults completes the handshake but refuses the certificate ({reason}): see the certificate findings" },
    TLS_ADDRESSES_DIFFER = { severity = "warning", message = "The addresses of {host} differ: {differences}",
      hint = "Senders reach any of the addresses: configure them alike." },
  },

  applies = function(ctx)
    local t, b = ctx.facts.starttls, ctx.facts.banner
    local mode = ((ctx.config.tls or {}).enumerate)
    if mode == nil then mode = "grades" end
    if not (mode and MODES[mode]) then return false, "probe.tls.enumerate is false" end
    if not (t and t.handshake == true) then return false, "no TLS handshake on the main session" end
    if t.implicit then return false, "implicit TLS: the offer is graded through STARTTLS sessions only" end
    -- a slow greeting would be waited for on every further session
    local slow = ctx:threshold("greeting_slow_s") or 30
    if not (b and b.seconds and b.seconds < slow) then
      return false, ("the greeting was slow (%s s; greeting_slow_s = %s): every further session would wait for it"):format(b and b.seconds or "?", slow)
    end
    return true
  end,

  run = function(ctx)
    local mode = (ctx.config.tls or {}).enumerate or "grades"
    local fact = { mode = mode, attempts = {}, handshakes = 0, untestable = {} }
    ctx:fact(fact)
    local p = setmetatable({ ctx = ctx, fact = fact, infos = {}, chains = {}, t_end = loop.now() + BUDGET_S,
                             sni = not iputil.is_literal(ctx.host) and ctx.host or nil }, Probe)
    local t0 = loop.now()
    probe_versions(p)
    if #fact.untestable > 0 then ctx:finding("TLS_OFFER_UNTESTABLE", { versions = fact.untestable }) end
    if #fact.versions > 0 then ctx:finding("TLS_OFFER_VERSIONS", { versions = fact.versions }) end
    local old, modern = {}, false
    for _, v in ipairs(fact.versions) do
      if grades.VERSION_GRADE[v] == "phase_out" or grades.VERSION_GRADE[v] == "insufficient" then old[#old + 1] = v end
      if v == "TLSv1.2" or v == "TLSv1.3" then modern = true end
    end
    if #old > 0 and modern then ctx:finding("TLS_OFFER_PHASE_OUT", { versions = old }) end
    if #fact.versions > 0 and not modern then ctx:finding("TLS_OFFER_NO_TLS12", { versions = fact.versions }) end

    if MODES[mode] >= 2 then
      local accepted = probe_classes(p, MODES[mode] >= 3)
      ctx._tls_offer_infos = p.infos
      report_grades(ctx, fact, accepted)
      ctx._tls_offer_infos = nil
      local pref = probe_preference(p, accepted)
      fact.server_preference = pref
      if pref == false then
        local a, b
        for _, s in ipairs(accepted) do if not a then a = s elseif s.cipher ~= a.cipher and not b then b = s end end
        if a and b and a.class ~= b.class then
          ctx:finding("TLS_NO_SERVER_PREFERENCE", { first = a.cipher, second = b.cipher })
        end
      end
      local certs = probe_certificates(p)
      fact.certificates = certs
      if #certs > 1 then
        local list = {}
        for _, c in ipairs(certs) do
          list[#list + 1] = ("%s %s (%s)"):format(c.key_type or "?", c.curve or tostring(c.key_bits or "?"), c.fingerprint_sha256:sub(1, 11))
        end
        ctx:finding("TLS_CERTIFICATES", { count = #certs, list = list })
        local main = ctx.facts.certificate and ctx.facts.certificate.fingerprint_sha256
        for _, c in ipairs(certs) do
          if c.fingerprint_sha256 ~= main then
            local problem
            if c.days_left and c.days_left < 0 then problem = "has expired"
            elseif not c.name_match then problem = "does not name " .. ctx.host
            elseif not c.verified then problem = "does not chain to a trusted root"
            elseif c.key_type == "RSA" and c.key_bits and c.key_bits < (ctx:threshold("min_rsa_bits") or 2048) then
              problem = ("has an RSA key of %d bits"):format(c.key_bits)
            elseif c.key_type == "EC" and c.key_bits and c.key_bits < (ctx:threshold("min_ec_bits") or 256) then
              problem = ("has an EC key of %d bits"):format(c.key_bits)
            elseif c.days_left and c.days_left < (ctx:threshold("expiry_warning_days") or 14) then
              problem = ("expires in %d days"):format(math.floor(c.days_left)) end
            if problem then ctx:finding("TLS_SECOND_CERT_PROBLEM", { type = c.key_type or "other", problem = problem }) end
            -- DANE senders judge by the TLSA records alone, whatever the name or dates
            local dp = dane_problem(ctx, p.chains[c.fingerprint_sha256])
            if dp then ctx:finding("TLS_SECOND_CERT_PROBLEM", { type = c.key_type or "other", problem = dp }) end
          end
        end
      end
      local strict = probe_strict(p)
      fact.strict_client = strict
      if strict then
        if strict.ok then ctx:finding("TLS_STRICT_CLIENT_OK", strict)
        elseif strict.known then ctx:finding("TLS_STRICT_CLIENT_CERT", { reason = strict.reason })
        else ctx:finding("TLS_STRICT_CLIENT_FAILS", { reason = strict.reason }) end
      end
    end
    -- the server's signature algorithms seen over every handshake
    local sigs, seen = {}, {}
    for _, info in ipairs(p.infos) do
      local sname = info.peer_signature_type and (info.peer_signature_type .. (info.peer_signature_digest and ("+" .. info.peer_signature_digest) or ""))
      if sname and not seen[sname] then seen[sname] = true; sigs[#sigs + 1] = sname end
    end
    table.sort(sigs)
    fact.signatures = sigs
    fact.seconds = math.floor((loop.now() - t0) * 1000 + 0.5) / 1000
    if p.stopped then ctx:finding("TLS_OFFER_INCOMPLETE", { done = fact.handshakes, reason = p.stopped }) end
  end,

  -- Every address of one MX name should look the same to a sender.
  summarize = function(dctx)
    local by_host = {}
    for _, srv in ipairs(dctx:servers()) do
      by_host[srv.host] = by_host[srv.host] or {}
      table.insert(by_host[srv.host], srv)
    end
    for host, list in pairs(by_host) do
      if #list > 1 then
        local diffs = {}
        local function compare(label, get)
          local seen, order = {}, {}
          for _, srv in ipairs(list) do
            local v = get(srv.facts)
            if v ~= nil then
              v = tostring(v)
              if not seen[v] then seen[v] = {}; order[#order + 1] = v end
              table.insert(seen[v], srv.address)
            end
          end
          if #order > 1 then
            local parts = {}
            for _, v in ipairs(order) do parts[#parts + 1] = ("%s %s"):format(table.concat(seen[v], ", "), v) end
            diffs[#diffs + 1] = ("%s: %s"):format(label, table.concat(parts, "; "))
          end
        end
        -- versions: say which address offers what the others do not
        local offers, all = {}, {}
        for _, srv in ipairs(list) do
          local o = srv.facts.tls_offer
          if o and o.versions_tested then
            offers[srv.address] = {}
            for _, v in ipairs(o.versions) do offers[srv.address][v] = true; all[v] = true end
          end
        end
        -- grouped: "192.0.2.10 offers TLSv1, TLSv1.1; 192.0.2.11 does not"
        local groups, gorder = {}, {}
        for _, v in ipairs(grades.VERSIONS) do
          if all[v.name] then
            local with, without = {}, {}
            for _, srv in ipairs(list) do
              if offers[srv.address] then
                table.insert(offers[srv.address][v.name] and with or without, srv.address)
              end
            end
            if #without > 0 then
              local key = table.concat(with, ", ") .. "|" .. table.concat(without, ", ")
              if not groups[key] then groups[key] = { with = with, without = without, versions = {} }; gorder[#gorder + 1] = key end
              table.insert(groups[key].versions, v.name)
            end
          end
        end
        for _, key in ipairs(gorder) do
          local g = groups[key]
          diffs[#diffs + 1] = ("%s offers %s; %s does not"):format(table.concat(g.with, ", "),
            table.concat(g.versions, ", "), table.concat(g.without, ", "))
        end
        compare("grade", function(f) return f.tls_offer and f.tls_offer.grade and grades.LABEL[f.tls_offer.grade] end)
        compare("certificate", function(f) return f.certificate and f.certificate.fingerprint_sha256 and f.certificate.fingerprint_sha256:sub(1, 11) end)
        compare("greeting host", function(f) return f.banner and f.banner.hostname end)
        compare("EHLO extensions", function(f)
          local e = f.ehlo and f.ehlo.extensions
          if type(e) ~= "table" then return nil end
          local k = {}
          for name in pairs(e) do if type(name) == "string" then k[#k + 1] = name end end
          for _, name in ipairs(e) do k[#k + 1] = tostring(name) end
          table.sort(k)
          return table.concat(k, " ")
        end)
        compare("relay answer", function(f) return f.relay and f.relay.verdict end)
        if #diffs > 0 then dctx:finding("TLS_ADDRESSES_DIFFER", { host = host, differences = diffs }) end
      end
    end
  end,
}
