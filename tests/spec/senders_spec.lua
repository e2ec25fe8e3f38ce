-- The sender matrix (lua/mxprobe/policy/senders.lua) from facts as the
-- checks leave them, and its text table (report/text.lua senders_block).
local senders = require "mxprobe.policy.senders"
local text = require "mxprobe.report.text"

local NOW = 1800000000
local function srv(host, pref, address, f)
  local facts = {
    connect = { state = "connected" }, banner = { ok = true, code = 220 }, ehlo = { starttls = true },
    starttls = { offered = true, handshake = true, version = "TLSv1.3" },
    certificate = { verified = true, name_match = true, not_after = NOW + 20 * 86400 },
  }
  for k, v in pairs(f or {}) do facts[k] = v end
  return { host = host, preference = pref, address = address, facts = facts, findings = {} }
end
local function outcomes(m, host)
  for _, x in ipairs(m.mx) do
    if x.host == host then
      local a = x.addresses[1]
      return { a.opportunistic.outcome, a.mta_sts.outcome, a.dane.outcome, a.strict.outcome }
    end
  end
end

describe("the sender matrix", function()
  it("a healthy MX: every kind delivers; strict authenticated; without MTA-STS or DANE those act opportunistic", function()
    local m = senders.compute({ servers = { srv("mx1.test", 10, "192.0.2.1") } }, {}, NOW)
    assert.same({ "encrypted", "encrypted", "encrypted", "authenticated" }, outcomes(m, "mx1.test"))
    assert.equal("opportunistic", m.mx[1].addresses[1].mta_sts.as)
    assert.equal("mx1.test", m.domain.strict.via)
    assert.equal("opportunistic", m.domain.dane.as)
    assert.same({ kind = "strict", host = "mx1.test", date = os.date("!%Y-%m-%d", NOW + 20 * 86400), reason = "certificate expiry" }, m.breaks[1])
  end)

  it("no STARTTLS: plaintext for opportunistic senders, no delivery for the strict client", function()
    local m = senders.compute({ servers = { srv("mx1.test", 10, "192.0.2.1", { starttls = { offered = false } }) } }, {}, NOW)
    assert.same({ "plaintext", "plaintext", "plaintext", "no_delivery" }, outcomes(m, "mx1.test"))
    assert.equal("mx1.test: no STARTTLS", m.domain.strict.reason)
  end)

  it("an expired or self-signed certificate: the same for every verifying sender", function()
    local exp = srv("mx1.test", 10, "192.0.2.1", { certificate = { verified = false, name_match = true, not_after = NOW - 86400 } })
    local self = srv("mx2.test", 20, "192.0.2.2", { certificate = { verified = false, name_match = true, not_after = NOW + 86400 * 300 } })
    local sts = { usable = true, policy = { mode = "enforce", mx = { "*.test" }, max_age = 86400 } }
    local m = senders.compute({ servers = { exp, self } }, { mta_sts = sts }, NOW)
    assert.same({ "encrypted", "no_delivery", "encrypted", "no_delivery" }, outcomes(m, "mx1.test"))
    assert.same({ "encrypted", "no_delivery", "encrypted", "no_delivery" }, outcomes(m, "mx2.test"))
    assert.matches("^the certificate expired on ", m.mx[1].addresses[1].strict.reason)
    assert.equal("no_delivery", m.domain.mta_sts.outcome)
    assert.equal("encrypted", m.domain.opportunistic.outcome)
  end)

  it("MTA-STS enforce: only policy-matching MX; testing mode delivers as opportunistic", function()
    local a, b = srv("mx1.test", 10, "192.0.2.1"), srv("backup.other", 20, "192.0.2.2")
    local m = senders.compute({ servers = { a, b } }, { mta_sts = { usable = true, policy = { mode = "enforce", mx = { "mx1.test" } } } }, NOW)
    assert.equal("authenticated", m.mx[1].addresses[1].mta_sts.outcome)
    assert.equal("no_delivery", m.mx[2].addresses[1].mta_sts.outcome)
    assert.equal("the MX is not in the policy (policy enforce)", m.mx[2].addresses[1].mta_sts.reason)
    m = senders.compute({ servers = { b } }, { mta_sts = { usable = true, policy = { mode = "testing", mx = { "mx1.test" } } } }, NOW)
    assert.equal("encrypted", m.mx[1].addresses[1].mta_sts.outcome)
    assert.matches("testing mode: would fail (the MX is not in the policy)", m.mx[1].addresses[1].mta_sts.reason, 1, true)
  end)

  it("DANE: match authenticates, mismatch stops delivery, bogus defers; the domain falls back in preference order", function()
    local bad = srv("mx1.test", 10, "192.0.2.1", { dane = { result = "mismatch" } })
    local good = srv("mx2.test", 20, "192.0.2.2", { dane = { result = "match", matched = "3 1 1 ab" } })
    local m = senders.compute({ servers = { good, bad } }, {}, NOW)
    assert.equal("mx1.test", m.mx[1].host) -- preference order, not probe order
    assert.equal("no_delivery", m.mx[1].addresses[1].dane.outcome)
    assert.equal("authenticated", m.domain.dane.outcome)
    assert.equal("mx2.test", m.domain.dane.via)
    local bogus = srv("mx1.test", 10, "192.0.2.1", { dane = { result = "bogus" } })
    m = senders.compute({ servers = { bogus } }, {}, NOW)
    assert.equal("defers", m.domain.dane.outcome)
    assert.equal("mx1.test: DNSSEC bogus: TLSA lookup fails", m.domain.dane.reason)
  end)

  it("when it breaks: DANE-TA senders at the earlier of the leaf's and the anchor's expiry; DANE-EE never", function()
    local ta = srv("mx1.test", 10, "192.0.2.1", { dane = { result = "match", matched = "2 0 1 ab", anchor_not_after = NOW + 5 * 86400 } })
    local m = senders.compute({ servers = { ta } }, {}, NOW)
    local by = {}
    for _, b in ipairs(m.breaks) do by[b.kind] = b end
    assert.equal("expiry of the DANE-TA trust anchor", by.dane.reason)
    assert.equal(os.date("!%Y-%m-%d", NOW + 5 * 86400), by.dane.date)
    assert.equal("dane", m.breaks[1].kind) -- earliest first
    local ee = srv("mx1.test", 10, "192.0.2.1", { dane = { result = "match", matched = "3 1 1 ab" } })
    m = senders.compute({ servers = { ee } }, {}, NOW)
    for _, b in ipairs(m.breaks) do assert.is_not.equal("dane", b.kind) end
  end)

  it("unreachable and throttling servers defer; a 554 greeting does not deliver", function()
    local m = senders.compute({ servers = {
      srv("mx1.test", 10, "192.0.2.1", { connect = { state = "timeout" } }),
      srv("mx2.test", 20, "192.0.2.2", { banner = { ok = false, code = 554 } }),
    } }, {}, NOW)
    assert.equal("defers", m.mx[1].addresses[1].opportunistic.outcome)
    assert.equal("no_delivery", m.mx[2].addresses[1].opportunistic.outcome)
    assert.equal("defers", m.domain.opportunistic.outcome)
  end)

  it("the text report shows the table and the dates", function()
    local r = { domain = "site.test", verdict = "ok", dns = { mx = {}, findings = {} }, findings = {},
                servers = { srv("mx1.test", 10, "192.0.2.1", { starttls = { offered = false } }) } }
    r.senders = senders.compute(r, {}, NOW)
    local out = text.render(r, {})
    assert.matches("Senders\n", out, 1, true)
    assert.matches("OPPORTUNISTIC  MTA-STS      DANE         STRICT CLIENT", out, 1, true)
    assert.matches("mx1.test 192.0.2.1  plaintext      plaintext *  plaintext *  no delivery", out, 1, true)
    assert.matches("strict client: no delivery (mx1.test: no STARTTLS)", out, 1, true)
  end)
end)

-- The default policy's judgement of the matrix (policy/sender_verdict.lua):
-- hand-made results through judge.judge, no network.
describe("the default verdict from the sender matrix", function()
  local engine = require "mxprobe.engine"
  local checks = require "mxprobe.engine.checks"
  local policy = require "mxprobe.policy"
  local judge = require "mxprobe.policy.judge"
  local ALL = checks.load(checks.dirs { installed_checks = false })
  local CATALOG = engine.catalog({ all_checks = ALL })

  -- servers: srv() tables; findings: { code, severity } per server index;
  -- mta_sts: the domain fact; pol: a policy table over the default
  local function judged(servers, opts)
    opts = opts or {}
    local r = { domain = "site.test", dns = { mx = {}, findings = {} }, findings = {}, servers = servers }
    for _, s in ipairs(servers) do
      r.dns.mx[#r.dns.mx + 1] = { host = s.host, preference = s.preference, addresses = { s.address } }
      s.transcript = {}
    end
    local run = { policy = policy.load(opts.policy, CATALOG, ALL), catalog = CATALOG, config = {} }
    judge.judge(run, r, { facts = { mta_sts = opts.mta_sts } })
    return r
  end
  local function F(code, severity, check) return { code = code, check = check or "certificate", severity = severity, message = code, evidence = {} } end
  local function codes(r)
    local out = {}
    for _, f in ipairs(r.findings) do out[#out + 1] = f.code .. ":" .. f.severity end
    table.sort(out)
    return out
  end
  local EXPIRED = { verified = false, name_match = true, not_after = os.time() - 86400 }
  local FAR = os.time() + 300 * 86400
  local ENFORCE = { usable = true, policy = { mode = "enforce", mx = { "*.test" }, max_age = 86400 } }

  it("an expired certificate without MTA-STS or DANE: one warning severity, the strict client's failure decides", function()
    local s = srv("mx1.test", 10, "192.0.2.1", { certificate = EXPIRED })
    s.findings = { F("CERT_EXPIRED", "critical") }
    local r = judged({ s })
    assert.equal("warning", r.verdict)
    assert.equal(1, r.exit_code)
    assert.same({ "SENDERS_STRICT_FAIL:warning" }, codes(r))
    assert.equal("SENDERS_STRICT_FAIL", r.decided_by.code)
    assert.matches("^Senders that always verify certificates do not deliver to site.test %(mx1.test: the certificate expired on ",
      r.findings[1].message)
    assert.matches("opportunistic senders still deliver encrypted, not authenticated$", r.findings[1].message)
    local c = s.findings[1]
    assert.equal("warning", c.severity)
    assert.equal("critical", c.override.from)
    assert.equal("default", c.override.policy)
    assert.matches("every verifying sender refuses this certificate alike: strict clients do not deliver (the certificate expired on",
      c.override.why, 1, true)
    assert.matches("; opportunistic senders deliver encrypted, not authenticated", c.override.why, 1, true)
  end)

  it("a shared probe's certificate finding (frozen, issue 15): each domain re-judges its own copy", function()
    local frozen = require "mxprobe.runtime.frozen"
    local list = { F("CERT_EXPIRED", "critical") }
    frozen.mark(list[1]); frozen.mark(list)
    local a = srv("mx1.test", 10, "192.0.2.1", { certificate = EXPIRED })
    local b = srv("mx1.test", 10, "192.0.2.1", { certificate = EXPIRED })
    a.findings, b.findings = list, list
    local ra = judged({ a })
    local rb = judged({ b }, { mta_sts = ENFORCE })
    assert.equal("warning", ra.verdict)
    assert.equal("critical", rb.verdict)
    assert.are_not.equal(list, a.findings)
    assert.are_not.equal(a.findings, b.findings)
    assert.equal("warning", a.findings[1].severity)
    assert.equal("warning", b.findings[1].severity)
    assert.matches("MTA-STS senders do not deliver", b.findings[1].override.why, 1, true)
    assert.is_nil(a.findings[1].override.why:find("MTA-STS senders", 1, true))
    -- the probe's list, every other domain's: as the probe left it
    assert.equal("critical", list[1].severity)
    assert.is_nil(list[1].override)
    assert.equal(list[1].evidence, a.findings[1].evidence)
  end)

  it("the same certificate under an MTA-STS enforce policy: critical, and the reason names MTA-STS", function()
    local s = srv("mx1.test", 10, "192.0.2.1", { certificate = EXPIRED })
    s.findings = { F("CERT_EXPIRED", "critical") }
    local r = judged({ s }, { mta_sts = ENFORCE })
    assert.equal("critical", r.verdict)
    assert.same({ "SENDERS_MTA_STS_FAIL:critical", "SENDERS_STRICT_FAIL:warning" }, codes(r))
    assert.equal("SENDERS_MTA_STS_FAIL", r.decided_by.code)
    assert.matches("^MTA%-STS senders do not deliver to site.test %(mx1.test: the certificate expired on %d+%-%d+%-%d+ %(policy enforce%)%)",
      r.findings[1].message)
    assert.equal("warning", s.findings[1].severity) -- the certificate finding itself: the one severity
    assert.matches("MTA-STS senders do not deliver", s.findings[1].override.why, 1, true)
  end)

  it("self-signed, untrusted, wrong name and expired: one severity, whatever the check said", function()
    local list = {}
    for i, code in ipairs({ "CERT_EXPIRED", "CERT_NOT_YET_VALID", "CERT_SELF_SIGNED", "CERT_UNTRUSTED", "CERT_NAME_MISMATCH" }) do
      local s = srv("mx" .. i .. ".test", 10, "192.0.2." .. i, { certificate = { verified = false, name_match = true, not_after = FAR } })
      s.findings = { F(code, code == "CERT_EXPIRED" and "critical" or "warning") }
      list[#list + 1] = s
    end
    judged(list)
    for _, s in ipairs(list) do assert.equal("warning", s.findings[1].severity, s.findings[1].code) end
  end)

  it("DANE mismatch is critical; DANE-EE over an expired certificate is only the strict client's warning", function()
    local r = judged({ srv("mx1.test", 10, "192.0.2.1", { dane = { result = "mismatch" } }) })
    assert.same({ "SENDERS_DANE_FAIL:critical" }, codes(r))
    assert.equal("critical", r.verdict)
    local s = srv("mx1.test", 10, "192.0.2.1", { certificate = EXPIRED, dane = { result = "match", matched = "3 1 1 ab" } })
    r = judged({ s })
    assert.same({ "SENDERS_STRICT_FAIL:warning" }, codes(r))
    assert.equal("warning", r.verdict)
  end)

  it("opportunistic senders failing is critical, said once; a 421 greeting (inconclusive) is no sender's failure", function()
    local s = srv("mx1.test", 10, "192.0.2.1", { connect = { state = "refused" } })
    s.findings = { F("CONNECT_REFUSED", "critical", "connect") }
    local r = judged({ s })
    assert.same({ "SENDERS_OPPORTUNISTIC_FAIL:critical" }, codes(r))
    assert.equal("Opportunistic senders (most MTAs) defer mail to site.test (mx1.test: connection refused): no sender gets mail through",
      r.findings[1].message)
    s = srv("mx1.test", 10, "192.0.2.1", { banner = { ok = false, code = 421 } })
    s.findings = { F("BANNER_421", "inconclusive", "banner") }
    r = judged({ s })
    assert.same({}, codes(r))
    assert.equal("inconclusive", r.verdict)
  end)

  it("a failing backup MX is no failure of the domain: mail goes to the primary", function()
    local r = judged({ srv("mx1.test", 10, "192.0.2.1"), srv("mx2.test", 20, "192.0.2.2", { starttls = { offered = false } }) })
    assert.same({}, codes(r))
    assert.equal("ok", r.verdict)
  end)

  it("when it breaks inside the horizon: a warning naming the date; outside it nothing", function()
    local soon = os.time() + 10 * 86400
    local r = judged({ srv("mx1.test", 10, "192.0.2.1", { certificate = { verified = true, name_match = true, not_after = soon } }) })
    assert.same({ "SENDERS_BREAK_SOON:warning" }, codes(r))
    assert.equal("Strict clients stop delivering to mx1.test on " .. os.date("!%Y-%m-%d", soon)
      .. " (certificate expiry), unless something changes", r.findings[1].message)
    r = judged({ srv("mx1.test", 10, "192.0.2.1", { certificate = { verified = true, name_match = true, not_after = FAR } }) })
    assert.same({}, codes(r))
  end)

  it("a site policy changes it: severities through findings, senders.judge = false, the checks' own severities", function()
    local s = srv("mx1.test", 10, "192.0.2.1", { certificate = EXPIRED })
    s.findings = { F("CERT_EXPIRED", "critical") }
    local r = judged({ s }, { policy = { findings = { SENDERS_STRICT_FAIL = { severity = "critical" } } } })
    assert.equal("critical", r.verdict)
    assert.equal("SENDERS_STRICT_FAIL", r.decided_by.code)
    assert.equal("warning", r.decided_by.override.from)
    s = srv("mx1.test", 10, "192.0.2.1", { certificate = EXPIRED })
    s.findings = { F("CERT_EXPIRED", "critical") }
    r = judged({ s }, { policy = { senders = { judge = false } } })
    assert.same({}, codes(r))
    assert.equal("critical", r.verdict) -- the check's own severity
    s = srv("mx1.test", 10, "192.0.2.1", { certificate = EXPIRED })
    s.findings = { F("CERT_EXPIRED", "critical") }
    r = judged({ s }, { policy = { senders = { certificate_defects = false } } })
    assert.equal("critical", s.findings[1].severity)
    assert.equal("CERT_EXPIRED", r.decided_by.code)
  end)

  it("a misspelt senders field or a bad severity is refused with the field's name", function()
    local ok, err = pcall(policy.load, { senders = { certificate_defect = "warning" } }, CATALOG, ALL)
    assert.is_false(ok)
    assert.matches("senders.certificate_defect: unknown field", err, 1, true)
    ok, err = pcall(policy.load, { senders = { certificate_defects = "fatal" } }, CATALOG, ALL)
    assert.is_false(ok)
    assert.matches('senders.certificate_defects: a severity (ok, info, warning, critical, inconclusive, error) or false expected, got "fatal"', err, 1, true)
  end)
end)

-- RFC 8461 3.3, 5.1, 10.2: the policy host's certificate in "when it breaks"
describe("when it breaks: the MTA-STS policy host", function()
  local judge_mod = require "mxprobe.policy.sender_verdict"
  local function sts(mode, host_days, max_age)
    return { usable = true, url = "https://mta-sts.site.test/.well-known/mta-sts.txt", host_not_after = NOW + host_days * 86400,
             fetched_at = NOW, policy = { mode = mode, mx = { "mx1.test" }, max_age = max_age } }
  end
  local good = function() return srv("mx1.test", 10, "192.0.2.1", { certificate = { verified = true, name_match = true, not_after = NOW + 300 * 86400 } }) end

  it("senders without a cached policy cannot fetch it from the certificate's end; cached copies last max_age longer", function()
    local m = senders.compute({ servers = { good() } }, { mta_sts = sts("enforce", 19, 1209600) }, NOW)
    local b
    for _, x in ipairs(m.breaks) do if x.reason == "policy host certificate expiry" then b = x end end
    local d1, d2 = os.date("!%Y-%m-%d", NOW + 19 * 86400), os.date("!%Y-%m-%d", NOW + 19 * 86400 + 1209600)
    assert.same({ kind = "mta_sts", host = "mta-sts.site.test", date = d1, reason = "policy host certificate expiry",
                  cached_until = d2,
                  text = "from " .. d1 .. " MTA-STS senders that have not cached the policy cannot fetch it (the certificate of "
                    .. "mta-sts.site.test expires) and deliver without authentication; cached copies expire by " .. d2
                    .. " (max_age 1209600)" }, b)
    assert.equal("mta_sts", m.breaks[1].kind) -- earliest first: before the MX certificate's end
    assert.equal(b.text, senders.break_text(b))
  end)

  it("only for an enforce policy that authenticates today; the report shows the sentence", function()
    local function kinds(m)
      local k = {}
      for _, x in ipairs(m.breaks) do k[#k + 1] = x.kind end
      return table.concat(k, " ")
    end
    -- the MX certificate (300 days) for MTA-STS senders and strict clients, then the policy host's (400)
    assert.equal("mta_sts strict mta_sts", kinds(senders.compute({ servers = { good() } }, { mta_sts = sts("enforce", 400, 86400) }, NOW)))
    assert.equal("strict", kinds(senders.compute({ servers = { good() } }, { mta_sts = sts("testing", 19, 86400) }, NOW)))
    local bad = srv("mx1.test", 10, "192.0.2.1", { starttls = { offered = false } })
    assert.equal("", kinds(senders.compute({ servers = { bad } }, { mta_sts = sts("enforce", 19, 86400) }, NOW)))
    local r = { domain = "site.test", verdict = "ok", dns = { mx = {}, findings = {} }, findings = {}, servers = { good() } }
    r.senders = senders.compute(r, { mta_sts = sts("enforce", 19, 1209600) }, NOW)
    assert.matches("From " .. os.date("!%Y-%m-%d", NOW + 19 * 86400) .. " MTA-STS senders that have not cached the policy",
      text.render(r, {}), 1, true)
  end)

  it("inside the horizon it is the default policy's warning, naming both dates", function()
    local now = os.time()
    local s = { usable = true, url = "https://mta-sts.site.test/.well-known/mta-sts.txt", host_not_after = now + 19 * 86400,
                policy = { mode = "enforce", mx = { "mx1.test" }, max_age = 1209600 } }
    local x = srv("mx1.test", 10, "192.0.2.1", { certificate = { verified = true, name_match = true, not_after = now + 300 * 86400 } })
    local r = { domain = "site.test", findings = {}, servers = { x } }
    r.senders = senders.compute(r, { mta_sts = s }, now)
    judge_mod.apply({ name = "default", thresholds = { expiry_warning_days = 30 }, senders = { judge = true } }, r, now)
    assert.equal(1, #r.findings)
    assert.equal("SENDERS_BREAK_SOON", r.findings[1].code)
    assert.equal("warning", r.findings[1].severity)
    assert.equal("From " .. os.date("!%Y-%m-%d", now + 19 * 86400) .. " MTA-STS senders that have not cached the policy cannot fetch it"
      .. " (the certificate of mta-sts.site.test expires) and deliver without authentication; cached copies expire by "
      .. os.date("!%Y-%m-%d", now + 19 * 86400 + 1209600) .. " (max_age 1209600), unless something changes", r.findings[1].message)
  end)
end)

describe("where the one severity of certificate defects comes from", function()
  local engine = require "mxprobe.engine"
  local checks = require "mxprobe.engine.checks"
  local policy = require "mxprobe.policy"
  local judge = require "mxprobe.policy.judge"
  local ALL = checks.load(checks.dirs { installed_checks = false })
  local CATALOG = engine.catalog({ all_checks = ALL })
  local function expired_under(pol_src)
    local s = srv("mx1.test", 10, "192.0.2.1", { certificate = { verified = false, name_match = true, not_after = os.time() - 86400 } })
    s.findings = { { code = "CERT_EXPIRED", check = "certificate", severity = "critical", message = "x", evidence = {} } }
    s.transcript = {}
    local r = { domain = "site.test", dns = { mx = {}, findings = {} }, findings = {}, servers = { s } }
    judge.judge({ policy = policy.load(pol_src, CATALOG, ALL), catalog = CATALOG, config = {} }, r)
    return s.findings[1]
  end
  local dir
  setup(function() dir = os.tmpname(); os.remove(dir); os.execute("mkdir -m 700 " .. dir) end)
  teardown(function() os.execute("rm -rf " .. dir) end)
  local function file(name, text)
    local path = dir .. "/" .. name
    local f = assert(io.open(path, "w")); f:write(text); f:close()
    os.execute("chmod 600 " .. path)
    return path
  end

  it("the stock default's line, also under a site policy that does not set it", function()
    local f = expired_under(nil)
    assert.equal("default", f.override.policy)
    assert.matches("checks/policy/default%.lua:%d+$", f.override.source)
    f = expired_under(file("site.lua", 'return { name = "site", senders = { judge = true } }\n'))
    assert.equal("default", f.override.policy)
    assert.matches("checks/policy/default%.lua:%d+$", f.override.source)
  end)

  it("the site's file and line when it sets it", function()
    local f = expired_under(file("strict.lua", 'return {\n  name = "strict",\n  senders = {\n    certificate_defects = "critical",\n  },\n}\n'))
    -- critical is the check's own severity here: nothing changed, no override
    assert.equal("critical", f.severity); assert.is_nil(f.override)
    f = expired_under(file("info.lua", 'return {\n  name = "lenient",\n  senders = {\n    certificate_defects = "info",\n  },\n}\n'))
    assert.equal("info", f.severity)
    assert.equal("lenient", f.override.policy)
    assert.matches("/info%.lua:4$", f.override.source)
  end)
end)

describe("a provider's domains share one frozen matrix (issue 15)", function()
  local frozen = require "mxprobe.runtime.frozen"
  local RAN = { banner = true, ehlo = true, starttls = true, certificate = true, dane = true, mta_sts = true }
  local RAN_NO_CERT = { banner = true, ehlo = true, starttls = true, dane = true, mta_sts = true }
  local function shared(host, pref, address, f)
    local s = srv(host, pref, address, f)
    frozen.mark(s.facts)
    return s
  end

  it("the same servers in the same order: the same frozen table, equal to the matrix made afresh", function()
    local a, b = shared("mx1.test", 10, "192.0.2.1"), shared("mx2.test", 20, "192.0.2.2")
    local m1 = senders.compute({ servers = { a, b } }, {}, NOW, RAN, true)
    local m2 = senders.compute({ servers = { a, b } }, {}, NOW, RAN, true)
    assert.equal(m1, m2)
    assert.is_true(frozen.is(m1) and frozen.is(m1.domain.strict) and frozen.is(m1.mx[2].addresses[1]))
    assert.same(senders.compute({ servers = { a, b } }, {}, NOW, RAN), m1)
    assert.has_error(function() m1.extra = true end)
    assert.has_error(function() m1.breaks[#m1.breaks + 1] = {} end)
  end)

  it("not shared: unshared facts, a usable MTA-STS policy, or a run that may change it (share false)", function()
    local a = shared("mx1.test", 10, "192.0.2.1")
    local own = srv("mx1.test", 10, "192.0.2.1")
    assert.is_false(frozen.is(senders.compute({ servers = { own } }, {}, NOW, RAN, true)))
    local sts = { mta_sts = { usable = true, policy = { mode = "enforce", mx = { "mx1.test" } } } }
    local m = senders.compute({ servers = { a } }, sts, NOW, RAN, true)
    assert.is_false(frozen.is(m))
    assert.equal("authenticated", m.domain.mta_sts.outcome)
    assert.is_false(frozen.is(senders.compute({ servers = { a } }, {}, NOW, RAN, false)))
  end)

  it("another probe of the same server, a passed certificate end, other checks run: another matrix", function()
    local a = shared("mx1.test", 10, "192.0.2.1")
    local m = senders.compute({ servers = { a } }, {}, NOW, RAN, true)
    -- the probe made again (its cache entry went): new facts, the same
    -- certificate, but STARTTLS no longer offered
    local again = shared("mx1.test", 10, "192.0.2.1", { starttls = { offered = false } })
    local m2 = senders.compute({ servers = { again } }, {}, NOW, RAN, true)
    assert.are_not.equal(m, m2)
    assert.equal("no_delivery", m2.domain.strict.outcome)
    assert.equal("plaintext", m2.domain.opportunistic.outcome)
    -- the same facts under another MX name (the certificate names only one)
    local named = shared("mx1.test", 10, "192.0.2.9", { certificate = { verified = true, name_match = false, not_after = NOW + 86400 } })
    local as_mx1 = senders.compute({ servers = { named } }, {}, NOW, RAN, true)
    local as_mx9 = senders.compute({ servers = { { host = "mx9.test", preference = 10, address = "192.0.2.9", facts = named.facts, findings = {} } } },
      {}, NOW, RAN, true)
    assert.equal("mx1.test: the certificate does not name mx1.test", as_mx1.domain.strict.reason)
    assert.equal("mx9.test: the certificate does not name mx9.test", as_mx9.domain.strict.reason)
    -- the same facts judged after the certificate's end
    local later = senders.compute({ servers = { a } }, {}, NOW + 21 * 86400, RAN, true)
    assert.equal("no_delivery", later.domain.strict.outcome)
    assert.equal("authenticated", m.domain.strict.outcome)
    local nocert = senders.compute({ servers = { a } }, {}, NOW, RAN_NO_CERT, true)
    assert.equal("inconclusive", nocert.domain.strict.outcome)
  end)

  it("equals the matrix made afresh on 3,000 random provider pairings", function()
    math.randomseed(15)
    local variants = {
      {}, { starttls = { offered = false } }, { connect = { state = "timeout" } },
      { certificate = { verified = false, name_match = true, not_after = NOW + 5 * 86400 } },
      { certificate = { verified = true, name_match = true, not_after = NOW + 2 } },
      { dane = { result = "match", matched = "3 1 1" } }, { starttls = { offered = true, handshake = false } },
      -- the certificate names another host: the reasons name the MX
      { certificate = { verified = true, name_match = false, not_after = NOW + 86400 } },
    }
    local pool = {}
    -- hosts, addresses and facts recur in other combinations: a key that
    -- left one out would hand a domain another's matrix
    for i = 1, 12 do
      pool[i] = shared(("mx%d.p%d.test"):format(i % 3, i % 2), (i % 2) * 10, "192.0.2." .. (i % 4), variants[i % #variants + 1])
    end
    for i = 1, 8 do -- the same facts as another host, address or preference
      local o = pool[i]
      pool[#pool + 1] = { host = o.host .. ".alias", preference = o.preference, address = o.address, facts = o.facts, findings = {} }
      pool[#pool + 1] = { host = o.host, preference = o.preference, address = "198.51.100." .. i, facts = o.facts, findings = {} }
      pool[#pool + 1] = { host = o.host, preference = o.preference + 5, address = o.address, facts = o.facts, findings = {} }
    end
    local stss = { nil, { usable = false }, { usable = true, policy = { mode = "none" } },
                   { usable = true, policy = { mode = "enforce", mx = { "*.p1.test" } } } }
    for _ = 1, 3000 do
      local servers = {}
      for j = 1, math.random(1, 3) do servers[j] = pool[math.random(#pool)] end
      local facts = { mta_sts = stss[math.random(1, #stss + 1)] }
      local now = NOW + math.random(0, 4)
      local ran = math.random(4) == 1 and RAN_NO_CERT or RAN
      local got = senders.compute({ servers = servers }, facts, now, ran, true)
      assert.same(senders.compute({ servers = servers }, facts, now, ran), got)
    end
  end)
end)
