-- MTA-STS and TLS-RPT in the lab: the domains of zones/sts.lab.test.zone
-- with their policies on a real nginx (tests/lab/mtasts.sh), each case with
-- its exact codes and verdict, and the same policies through mta-sts-query
-- (postfix-mta-sts-resolver, a reference MTA-STS client) to confirm which
-- ones a sender can fetch and what it reads.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"

local world = dofile("tests/lab/world.lua")
local state = os.getenv("MXLAB_STATE") or world.state_dir

local function codes_of(result)
  local set, list = {}, {}
  local function add(fs) for _, f in ipairs(fs) do set[f.code] = true end end
  add(result.dns.findings); add(result.findings)
  for _, s in ipairs(result.servers) do add(s.findings) end
  for c in pairs(set) do list[#list + 1] = c end
  table.sort(list)
  return list
end
local function find(result, code)
  for _, f in ipairs(result.findings) do if f.code == code then return f end end
end

local run = engine.new {
  config = {
    resolvers = { world.resolver }, ca_file = state .. "/ca/ca.pem", allow_reserved = { "documentation" },
    timeouts = { connect = 5, greeting = 10, command = 10, tls = 10, dns = 3 },
    -- the TLS offer grade is not under test here (tls_offer_spec.lua)
    tls = { enumerate = false },
  },
}
local results, t0 = {}, loop.now()
do
  local tasks = {}
  for _, d in ipairs(world.sts_domains) do tasks[d.name] = loop.spawn(function() return run:check_domain(d.name) end) end
  for n, t in pairs(tasks) do results[n] = assert(loop.join(t)) end
end
local elapsed = loop.now() - t0

-- what every case on the good Postfix shares
local GOOD = { "ADDRESS_NO_IPV6", "ADDRESS_OK", "BANNER_OK", "CERT_OK", "CONNECT_OK", "DANE_TLSA_INSECURE", "EHLO_OK",
               "MX_OK", "RELAY_DENIED", "STARTTLS_INJECTION_SAFE", "TLS_VERSION_13" }
local function with(base, ...)
  local t = {}
  for _, c in ipairs(base) do t[#t + 1] = c end
  for _, c in ipairs({ ... }) do t[#t + 1] = c end
  table.sort(t)
  return t
end
local SELF = { "ADDRESS_NO_IPV6", "ADDRESS_OK", "BANNER_OK", "CERT_SELF_SIGNED", "CONNECT_OK", "EHLO_OK", "MX_OK",
               "RELAY_DENIED", "STARTTLS_INJECTION_SAFE", "TLS_VERSION_13" }
local EXPIRED = { "ADDRESS_NO_IPV6", "ADDRESS_OK", "BANNER_OK", "CERT_EXPIRED", "CONNECT_OK", "EHLO_OK", "MX_OK",
                  "RELAY_DENIED", "STARTTLS_INJECTION_SAFE", "TLS_VERSION_13" }

local EXPECTED = {
  ["enforce.sts.lab.test"] = { verdict = "ok", codes = with(GOOD, "MTA_STS_OK", "TLSRPT_OK") },
  -- SENDERS_*: the default verdict from the sender matrix: MTA-STS senders
  -- fail under enforce (critical); under testing only the strict client does
  ["other-mx.sts.lab.test"] = { verdict = "critical", codes = with(GOOD, "MTA_STS_MX_NOT_IN_POLICY", "SENDERS_MTA_STS_FAIL", "TLSRPT_OK") },
  ["testing.sts.lab.test"] = { verdict = "warning",
    codes = with(SELF, "MTA_STS_TESTING_FAILS", "SENDERS_STRICT_FAIL", "TLSRPT_INVALID") },
  ["wildcard.sts.lab.test"] = { verdict = "ok", codes = with(GOOD, "MTA_STS_OK", "TLSRPT_MISSING") },
  ["notfound.sts.lab.test"] = { verdict = "warning", codes = with(GOOD, "MTA_STS_POLICY_HTTP_STATUS", "TLSRPT_MISSING") },
  ["wrongcert.sts.lab.test"] = { verdict = "warning", codes = with(GOOD, "MTA_STS_POLICY_TLS", "TLSRPT_MISSING") },
  -- an expired certificate under enforce: critical (MTA-STS senders do not
  -- deliver); the certificate finding itself is the one severity, warning
  ["expired-mx.sts.lab.test"] = { verdict = "critical", codes = with(EXPIRED, "MTA_STS_MX_FAILS", "SENDERS_MTA_STS_FAIL",
    "SENDERS_STRICT_FAIL", "TLSRPT_MISSING") },
  -- the policy host's certificate ends in 19 days (RFC 8461 max_age)
  ["host-expiring.sts.lab.test"] = { verdict = "warning", codes = with(GOOD, "MTA_STS_OK", "SENDERS_BREAK_SOON", "TLSRPT_MISSING") },
}

describe("MTA-STS and TLS-RPT in the lab (nginx policy host)", function()
  it("has an expectation for every MTA-STS lab domain", function()
    for _, d in ipairs(world.sts_domains) do assert.truthy(EXPECTED[d.name], d.name) end
  end)
  for _, d in ipairs(world.sts_domains) do
    it(("%s (%s)"):format(d.name, d.policy), function()
      local r = results[d.name]
      assert.same(EXPECTED[d.name].codes, codes_of(r))
      assert.equal(EXPECTED[d.name].verdict, r.verdict)
    end)
  end

  it("the evidence names what a sender sees", function()
    local f = find(results["other-mx.sts.lab.test"], "MTA_STS_MX_NOT_IN_POLICY")
    assert.equal("The MX good.mx.lab.test matches no mx pattern of the enforce policy (elsewhere.mx.lab.test): MTA-STS senders will not deliver to it", f.message)
    f = find(results["testing.sts.lab.test"], "MTA_STS_TESTING_FAILS")
    assert.equal("info", f.severity)
    assert.matches("the certificate chain does not verify", f.message, 1, true)
    f = find(results["wrongcert.sts.lab.test"], "MTA_STS_POLICY_TLS")
    assert.matches("mta-sts.wrongcert.sts.lab.test", f.message, 1, true)
    f = find(results["wildcard.sts.lab.test"], "MTA_STS_OK")
    assert.same({ "good.mx.lab.test", "good2.mx.lab.test" }, f.evidence.hosts)
  end)

  it("the sender matrix: MTA-STS senders per policy", function()
    local function dom(name, kind) return results[name].senders.domain[kind] end
    assert.equal("authenticated", dom("enforce.sts.lab.test", "mta_sts").outcome)
    assert.equal("no_delivery", dom("other-mx.sts.lab.test", "mta_sts").outcome)
    assert.equal("good.mx.lab.test: the MX is not in the policy (policy enforce)", dom("other-mx.sts.lab.test", "mta_sts").reason)
    assert.equal("encrypted", dom("testing.sts.lab.test", "mta_sts").outcome) -- testing: reports, delivers
    assert.equal("no_delivery", dom("testing.sts.lab.test", "strict").outcome)
    assert.equal("authenticated", dom("wildcard.sts.lab.test", "mta_sts").outcome)
    assert.equal("opportunistic", dom("notfound.sts.lab.test", "mta_sts").as)
    assert.equal("opportunistic", dom("wrongcert.sts.lab.test", "mta_sts").as)
  end)

  it("an expired MX certificate under enforce: critical, and the certificate finding says who refuses it", function()
    local r = results["expired-mx.sts.lab.test"]
    assert.equal("no_delivery", r.senders.domain.mta_sts.outcome)
    local f = find(r, "SENDERS_MTA_STS_FAIL")
    assert.equal("critical", f.severity)
    local c
    for _, x in ipairs(r.servers[1].findings) do if x.code == "CERT_EXPIRED" then c = x end end
    assert.equal("warning", c.severity)
    assert.matches("MTA-STS senders do not deliver (the certificate expired on", c.override.why, 1, true)
  end)

  it("when it breaks: the policy host's certificate end, and max_age for cached copies (RFC 8461 3.2, 5.1, 10.2)", function()
    local r = results["host-expiring.sts.lab.test"]
    local p = io.popen("date -u +%s -d \"$(openssl x509 -in " .. state .. "/https/certs/hostexpiring.crt -noout -enddate | cut -d= -f2)\"")
    local na = tonumber(p:read("l")); p:close()
    assert.equal(na, r.facts.mta_sts.host_not_after)
    local d1, d2 = os.date("!%Y-%m-%d", na), os.date("!%Y-%m-%d", na + 1209600)
    local b = r.senders.breaks[1]
    assert.equal("mta_sts", b.kind)
    assert.equal(d1, b.date); assert.equal(d2, b.cached_until)
    assert.equal("From " .. d1 .. " MTA-STS senders that have not cached the policy cannot fetch it (the certificate of "
      .. "mta-sts.host-expiring.sts.lab.test expires) and deliver without authentication; cached copies expire by " .. d2
      .. " (max_age 1209600), unless something changes", find(r, "SENDERS_BREAK_SOON").message)
    -- the other policies' host certificate ends in a year: outside the horizon
    assert.is_nil(find(results["enforce.sts.lab.test"], "SENDERS_BREAK_SOON"))
  end)

  it("the fetches overlap the SMTP probes: all eight domains in about one session's time", function()
    assert.is_true(elapsed < 8, ("took %.1f s"):format(elapsed))
  end)
end)

-- mta-sts-query uses the system resolver (the lab nsd, through the
-- namespace's resolv.conf) and Python's default CA store (SSL_CERT_FILE).
describe("mta-sts-query agrees", function()
  local have = os.execute("command -v mta-sts-query >/dev/null 2>&1")
  for _, d in ipairs(world.sts_domains) do
    it(d.name .. ": " .. d.mta_sts_query, function()
      if not have then return pending("mta-sts-query (postfix-mta-sts-resolver) is not installed") end
      local p = io.popen(("SSL_CERT_FILE=%s/ca/ca.pem timeout 20 mta-sts-query %s 2>&1"):format(state, d.name))
      local out = p:read("a"); p:close()
      assert.matches(d.mta_sts_query, out, 1, true)
      local r = results[d.name]
      local fetched = find(r, "MTA_STS_OK") or find(r, "MTA_STS_MX_NOT_IN_POLICY") or find(r, "MTA_STS_TESTING_FAILS")
        or find(r, "MTA_STS_MX_FAILS")
      assert.equal(d.mta_sts_query == "STSFetchResult.VALID", fetched ~= nil, "mxprobe and mta-sts-query disagree")
    end)
  end
end)
