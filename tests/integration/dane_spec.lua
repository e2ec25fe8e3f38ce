-- DANE and DNSSEC in the lab (tests/lab/dnssec.sh): the signed zone
-- sec.lab.test behind the validating resolver (unbound), each case with its
-- exact codes and verdict, and the same servers through posttls-finger
-- -l dane (Postfix, the reference DANE sender) to confirm what a DANE
-- sender does.  Also: the unsigned zone's TLSA (good.lab.test) and a
-- non-validating resolver (the lab's nsd asked directly).
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local dns = require "mxprobe.net.dns"

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
  for _, s in ipairs(result.servers) do
    for _, f in ipairs(s.findings) do if f.code == code then return f, s end end
  end
end

local function new_run(resolver)
  return engine.new {
    config = {
      resolvers = { resolver }, ca_file = state .. "/ca/ca.pem", allow_reserved = { "documentation" },
      timeouts = { connect = 5, greeting = 10, command = 10, tls = 10, dns = 3 },
      -- the TLS offer grade is not under test here (tls_offer_spec.lua)
      tls = { enumerate = false },
    },
  }
end

local function check_all(run, names)
  local tasks, out = {}, {}
  for _, n in ipairs(names) do tasks[n] = loop.spawn(function() return run:check_domain(n) end) end
  for n, t in pairs(tasks) do out[n] = assert(loop.join(t)) end
  return out
end

-- what every case on a lab Postfix shares: the greeting names the lab host
-- (good.mx.lab.test ...), not the sec.lab.test alias the MX record uses
local BASE = { "ADDRESS_NO_IPV6", "ADDRESS_OK", "BANNER_HOSTNAME_MISMATCH", "BANNER_OK", "CONNECT_OK", "EHLO_OK",
               "MX_OK", "RELAY_DENIED", "STARTTLS_INJECTION_SAFE", "TLS_VERSION_13" }
local function with(...)
  local t = {}
  for _, c in ipairs(BASE) do t[#t + 1] = c end
  for _, c in ipairs({ ... }) do t[#t + 1] = c end
  table.sort(t)
  return t
end

-- TLSRPT_MISSING: the cases use DANE and publish no _smtp._tls record.
-- SENDERS_*: the default verdict from the sender matrix
-- (policy/sender_verdict.lua): DANE senders failing is critical, the
-- strict client alone a warning.
local EXPECTED = {
  ["dane-ee.sec.lab.test"] = { verdict = "ok", codes = with("CERT_OK", "DANE_MATCH", "TLSRPT_MISSING") },
  ["dane-ta.sec.lab.test"] = { verdict = "ok", codes = with("CERT_OK", "DANE_MATCH", "TLSRPT_MISSING") },
  ["dane-mismatch.sec.lab.test"] = { verdict = "critical",
    codes = with("CERT_OK", "DANE_NO_MATCH", "SENDERS_DANE_FAIL", "TLSRPT_MISSING") },
  -- DANE-EE ignores the dates: DANE senders deliver; the certificate check
  -- still says the leaf expired (and names expired.mx.lab.test only), and
  -- only the strict client fails: a warning
  ["dane-expired.sec.lab.test"] = { verdict = "warning",
    codes = with("CERT_EXPIRED", "CERT_NAME_MISMATCH", "DANE_MATCH", "SENDERS_STRICT_FAIL", "TLSRPT_MISSING") },
  ["dane-rollover.sec.lab.test"] = { verdict = "warning",
    codes = with("CERT_EXPIRING", "CERT_NAME_MISMATCH", "DANE_MATCH", "DANE_ROLLOVER_MISSING", "SENDERS_STRICT_FAIL",
                 "TLSRPT_MISSING") },
  ["dane-pkix.sec.lab.test"] = { verdict = "warning", codes = with("CERT_OK", "DANE_RECORDS_UNUSABLE", "TLSRPT_MISSING") },
  ["dane-bogus.sec.lab.test"] = { verdict = "critical", codes = with("CERT_OK", "DANE_BOGUS", "SENDERS_DANE_FAIL", "TLSRPT_MISSING") },
  ["nodane.sec.lab.test"] = { verdict = "ok", codes = with("CERT_OK") },
  -- the MX host is an alias: ADDRESS_CNAME (RFC 2181 10.3) is a warning;
  -- DANE matches at the expanded name (RFC 7672 2.2.2), or at the original
  -- name when the expanded one has no TLSA; a DANE-TA chain that does not
  -- name the base domain fails, as posttls-finger says (hostname mismatch)
  ["dane-cname.sec.lab.test"] = { verdict = "warning", codes = with("ADDRESS_CNAME", "CERT_OK", "DANE_MATCH", "TLSRPT_MISSING") },
  ["dane-cname-fb.sec.lab.test"] = { verdict = "warning", codes = with("ADDRESS_CNAME", "CERT_OK", "DANE_MATCH", "TLSRPT_MISSING") },
  ["dane-cname-name.sec.lab.test"] = { verdict = "critical",
    codes = with("ADDRESS_CNAME", "CERT_OK", "DANE_TA_INVALID", "SENDERS_DANE_FAIL", "TLSRPT_MISSING") },
}

local run = new_run(world.resolver)
local names = {}
for _, d in ipairs(world.dnssec_domains) do names[#names + 1] = d.name end
names[#names + 1] = "good.lab.test"
local results = check_all(run, names)

describe("DANE in the lab, through the validating resolver", function()
  it("the resolver validates: the lab root's ns:. probe has AD", function()
    assert.is_true(dns.validates(run.dns, ".", "NS"))
  end)

  it("has an expectation for every DNSSEC lab domain", function()
    for _, d in ipairs(world.dnssec_domains) do assert.truthy(EXPECTED[d.name], d.name) end
  end)

  for _, d in ipairs(world.dnssec_domains) do
    it(("%s (TLSA %s: %s)"):format(d.name, tostring(d.tlsa), d.dane), function()
      local exp, r = EXPECTED[d.name], results[d.name]
      assert.same(exp.codes, codes_of(r))
      assert.equal(exp.verdict, r.verdict)
    end)
  end

  it("the facts: secure addresses and TLSA answers; what matched", function()
    local f = results["dane-ee.sec.lab.test"].servers[1].facts.dane
    assert.is_true(f.secure); assert.is_true(f.address_secure)
    assert.equal("match", f.result)
    assert.matches("^3 1 1 ", f.matched)
    local ta = find(results["dane-ta.sec.lab.test"], "DANE_MATCH")
    assert.matches("issuer at depth 1, CN=mxlab Test Intermediate CA (DANE-TA)", ta.message, 1, true)
    assert.equal("bogus", results["dane-bogus.sec.lab.test"].servers[1].facts.dane.result)
    assert.equal("none", results["nodane.sec.lab.test"].servers[1].facts.dane.result)
  end)

  it("an MX alias (RFC 7672 2.2.2, 3.2.2): TLSA at the expanded name first, then the original; DANE-TA names the base domain", function()
    -- dane-cname.mx.sec.lab.test is a CNAME to dane-cname-host.mx.sec.lab.test:
    -- the 2 0 1 at the expanded name matches, the stale 3 1 1 at the
    -- original name is never used.  posttls-finger -l dane (below) agrees on
    -- all three cases: "Verified TLS connection" for dane-cname and
    -- dane-cname-fb, and for dane-cname-name "server certificate
    -- verification failed ... num=62:hostname mismatch" then "Untrusted TLS
    -- connection": Postfix matches a DANE-TA chain against the TLSA base
    -- domain and the next-hop domain (smtp_tls_policy.c), not the MX name
    -- before expansion.
    local r = results["dane-cname.sec.lab.test"]
    local f = r.servers[1].facts.dane
    assert.equal("dane-cname-host.mx.sec.lab.test", f.expanded)
    assert.equal("_25._tcp.dane-cname-host.mx.sec.lab.test", f.name)
    assert.matches("^2 0 1 ", f.matched)
    local m = find(r, "DANE_MATCH")
    assert.matches("at _25._tcp.dane-cname-host.mx.sec.lab.test matches the issuer at depth 1", m.message, 1, true)
    assert.equal("authenticated", r.senders.domain.dane.outcome)
    f = results["dane-cname-fb.sec.lab.test"].servers[1].facts.dane
    assert.equal("dane-cname-fb-host.mx.sec.lab.test", f.expanded)
    assert.equal("_25._tcp.dane-cname-fb.mx.sec.lab.test", f.name) -- nothing at the expanded name
    assert.matches("^3 1 1 ", f.matched)
    assert.equal("authenticated", results["dane-cname-fb.sec.lab.test"].senders.domain.dane.outcome)
    r = results["dane-cname-name.sec.lab.test"]
    m = find(r, "DANE_TA_INVALID")
    assert.matches("does not verify for dane-cname-name-host.sec.lab.test (hostname mismatch", m.message, 1, true)
    assert.equal("no_delivery", r.senders.domain.dane.outcome)
  end)

  it("the stale record's hint gives the record of the key in use", function()
    local f = find(results["dane-mismatch.sec.lab.test"], "DANE_NO_MATCH")
    local fgood = io.popen("openssl x509 -in " .. state .. "/certs/good.crt -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum")
    local spki = fgood:read("l"):match("^%x+"); fgood:close()
    assert.matches("3 1 1 " .. spki, f.hint, 1, true)
  end)

  it("the rollover warning names the expiry 10 days out", function()
    local f = find(results["dane-rollover.sec.lab.test"], "DANE_ROLLOVER_MISSING")
    assert.is_true(f.evidence.days >= 8 and f.evidence.days <= 10, tostring(f.evidence.days))
  end)

  it("the sender matrix: what DANE senders and the others do with each case", function()
    local function dom(name, kind) return results[name].senders.domain[kind] end
    assert.equal("authenticated", dom("dane-ee.sec.lab.test", "dane").outcome)
    assert.equal("authenticated", dom("dane-ta.sec.lab.test", "dane").outcome)
    assert.equal("no_delivery", dom("dane-mismatch.sec.lab.test", "dane").outcome)
    assert.equal("encrypted", dom("dane-mismatch.sec.lab.test", "opportunistic").outcome)
    assert.equal("defers", dom("dane-bogus.sec.lab.test", "dane").outcome)
    -- DANE-EE ignores the expired certificate; every PKIX-verifying sender refuses it
    assert.equal("authenticated", dom("dane-expired.sec.lab.test", "dane").outcome)
    assert.equal("no_delivery", dom("dane-expired.sec.lab.test", "strict").outcome)
    assert.equal("encrypted", dom("dane-pkix.sec.lab.test", "dane").outcome)
    assert.equal("opportunistic", dom("nodane.sec.lab.test", "dane").as)
    local b = results["dane-ta.sec.lab.test"].senders.breaks
    local kinds = {}
    for _, x in ipairs(b) do kinds[#kinds + 1] = x.kind end
    assert.same({ "dane", "strict" }, kinds) -- DANE-TA checks dates, DANE-EE does not
    assert.same({ "strict" }, (function()
      local k = {}
      for _, x in ipairs(results["dane-ee.sec.lab.test"].senders.breaks) do k[#k + 1] = x.kind end
      return k
    end)())
  end)

  it("a TLSA record in the unsigned lab.test zone is info: senders ignore it", function()
    local f = find(results["good.lab.test"], "DANE_TLSA_INSECURE")
    assert.equal("info", f.severity)
    assert.matches("the addresses of good.mx.lab.test are not signed", f.message, 1, true)
    assert.equal("ok", results["good.lab.test"].verdict)
  end)
end)

describe("DANE through a resolver that does not validate (the lab's nsd)", function()
  local plain = new_run(world.dns[1])
  local r = check_all(plain, { "good.lab.test" })["good.lab.test"]
  it("says the result is inconclusive, not insecure or a mismatch", function()
    local f = find(r, "DANE_RESOLVER_NOT_VALIDATING")
    assert.equal("inconclusive", f.severity)
    assert.matches("this resolver does not validate DNSSEC", f.message, 1, true)
    assert.is_nil(find(r, "DANE_TLSA_INSECURE"))
  end)
end)

-- posttls-finger reads /etc/resolv.conf: a private mount namespace puts the
-- lab resolver's (with trust-ad, so glibc passes the AD bit on) in its place.
describe("posttls-finger -l dane agrees (Postfix as the reference DANE sender)", function()
  local have = os.execute("command -v posttls-finger >/dev/null 2>&1 && command -v unshare >/dev/null 2>&1")
  local cfg = os.tmpname()
  os.remove(cfg)
  os.execute("mkdir -p " .. cfg .. " && : >" .. cfg .. "/main.cf")
  teardown(function() os.execute("rm -rf " .. cfg) end)
  for _, d in ipairs(world.dnssec_domains) do
    local wants = type(d.posttls) == "table" and d.posttls or { d.posttls }
    it(d.name .. ": " .. table.concat(wants, "; "), function()
      if not have then return pending("posttls-finger or unshare missing") end
      local cmd = ("timeout 30 unshare -m sh -c 'mount --bind %s/unbound/resolv.conf /etc/resolv.conf && "
        .. "MAIL_CONFIG=%s posttls-finger -c -l dane -L summary,dane %s' 2>&1"):format(state, cfg, d.name)
      local p = io.popen(cmd)
      local out = p:read("a"); p:close()
      for _, want in ipairs(wants) do assert.matches(want, out, 1, true) end
    end)
  end
end)
