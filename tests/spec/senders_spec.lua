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
