-- The stock DANE check (checks/dane.lua) and the x509 primitives it uses
-- (x509:tlsa, x509.verify_to_anchor), against a scripted TLS server on
-- loopback with certificates made at test time.  The DNS side is a stand-in
-- whose answers say what a validating resolver would (ad/secure); the real
-- resolver and signed zones are the lab's (tests/integration/dane_spec.lua).
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local x509 = require "mxprobe.net.x509"
local core = require "mxprobe.core"
local fake = require "tests.helpers.fake_smtp"
local make_certs = require("tests.helpers.certs").make

local function pem(path) local f = assert(io.open(path)); local s = f:read("a"); f:close(); return s end
local function cert(path) return assert(x509.load_pem(pem(path)))[1] end
local function chain(path) return assert(x509.load_pem(pem(path))) end
local function sh(cmd) local p = assert(io.popen(cmd)); local s = p:read("a"); p:close(); return s end

describe("x509 TLSA primitives", function()
  local certs
  setup(function() certs = make_certs() end)
  teardown(function() if certs then certs.cleanup() end end)

  it("x509:tlsa gives the association data of every selector and matching type, as openssl computes it", function()
    local c = cert(certs.leaf.valid.cert)
    local f = certs.leaf.valid.cert
    local spki = "openssl x509 -in " .. f .. " -noout -pubkey | openssl pkey -pubin -outform DER"
    local der = "openssl x509 -in " .. f .. " -outform DER"
    assert.equal(sh(spki .. " | sha256sum"):match("^%x+"), c:tlsa(1, 1))
    assert.equal(sh(spki .. " | sha512sum"):match("^%x+"), c:tlsa(1, 2))
    assert.equal(sh(der .. " | sha256sum"):match("^%x+"), c:tlsa(0, 1))
    assert.equal(sh(der .. " | sha512sum"):match("^%x+"), c:tlsa(0, 2))
    assert.equal(sh(der .. " | od -An -v -tx1 | tr -d ' \\n'"), c:tlsa(0, 0))
    assert.equal(sh(spki .. " | od -An -v -tx1 | tr -d ' \\n'"), c:tlsa(1, 0))
    assert.equal(c:spki_sha256(), c:tlsa(1, 1))
    assert.has_error(function() c:tlsa(2, 1) end, "bad argument #1 to 'tlsa' (selector 0 or 1 expected)")
    assert.has_error(function() c:tlsa(1, 3) end, "bad argument #2 to 'tlsa' (matching type 0, 1 or 2 expected)")
  end)

  it("verify_to_anchor verifies the chain up to the matched certificate, its dates and the host name", function()
    local ch = chain(certs.leaf.valid.chain)
    assert.is_true(#ch >= 2)
    assert.is_true(core.x509.verify_to_anchor(ch, 2, "mx.test"))
    local ok, code, why = core.x509.verify_to_anchor(ch, 2, "elsewhere.test")
    assert.is_nil(ok); assert.equal("verify", code)
    assert.equal("hostname mismatch (at depth 0)", why)
    ok, code, why = core.x509.verify_to_anchor(chain(certs.leaf.expired.chain), 2, "mx.test")
    assert.equal("certificate has expired (at depth 0)", why)
    -- an anchor that did not issue the leaf: no chain to it
    local other = { ch[1], cert(certs.leaf.self.cert) }
    ok, code, why = core.x509.verify_to_anchor(other, 2, "mx.test")
    assert.is_nil(ok)
    assert.matches("unable to get local issuer certificate", why, 1, true)
    assert.has_error(function() core.x509.verify_to_anchor(ch, 5, "mx.test") end,
      "bad argument #2 to 'verify_to_anchor' (index into the chain expected)")
  end)
end)

describe("the dane check", function()
  local certs
  setup(function() certs = make_certs() end)
  teardown(function() if certs then certs.cleanup() end end)

  local function tls_script(leaf, starttls)
    local caps = starttls == false and "250-mx.test\r\n250 8BITMIME\r\n" or "250-mx.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
    local s = { "220 mx.test ESMTP\r\n", { expect = "^EHLO" }, caps }
    if starttls ~= false then
      for _, step in ipairs({
        { expect = "^STARTTLS" }, "220 2.0.0 ready\r\n",
        function(c)
          local info, code, detail = c:tls_handshake({ server = true, cert = certs.leaf[leaf].chain, key = certs.leaf[leaf].key }, loop.now() + 3)
          if not info then return nil, code, detail end
          return true
        end,
        { expect = "^EHLO" }, "250-mx.test\r\n250 8BITMIME\r\n",
      }) do s[#s + 1] = step end
    end
    s[#s + 1] = { expect = "^QUIT" }
    s[#s + 1] = "221 bye\r\n"
    return s
  end

  -- o.tlsa: list of {usage, selector, mtype, data} | function returning the
  -- query's outcome; o.secure (TLSA answer), o.addr_secure, o.validating
  local function dane(o)
    local asked = {}
    local dns = {
      query = function(_, name, qtype)
        asked[#asked + 1] = qtype .. " " .. name
        if qtype == "MX" then
          return { rcode = "NOERROR", answers = { { type = "MX", preference = 10, host = "mx.test." } } }
        elseif qtype == "A" and name == "mx.test" then
          local s = o.addr_secure ~= false
          if o.cname then -- the MX host is an alias: the chain and the target's address in one answer
            return { rcode = "NOERROR", ad = s, secure = s, answers = {
              { type = "CNAME", name = "mx.test", target = o.cname }, { type = "A", name = o.cname, address = "127.0.0.1" } } }
          end
          return { rcode = "NOERROR", ad = s, secure = s, answers = { { type = "A", address = "127.0.0.1" } } }
        elseif qtype == "SOA" and name == "signed.test" then
          local v = o.validating ~= false
          return { rcode = "NOERROR", ad = v, secure = v, answers = {} }
        elseif qtype == "TLSA" then
          if not o.cname then assert.equal("_25._tcp.mx.test", name) end
          if type(o.tlsa) == "function" then return o.tlsa(name) end
          local answers = {}
          for _, r in ipairs(o.tlsa or {}) do
            answers[#answers + 1] = { type = "TLSA", usage = r[1], selector = r[2], mtype = r[3], data = r[4] }
          end
          local s = o.secure ~= false
          return { rcode = "NOERROR", ad = s, secure = s, answers = answers }
        end
        return { rcode = "NOERROR", answers = {} }
      end,
    }
    local srv = fake.start(tls_script(o.leaf or "valid", o.starttls), { lifetime = 10 })
    local run = engine.new { dns = dns, installed_checks = false, policy = o.policy, config = {
      allow_reserved = { "loopback" }, helo = "tester.test", port = srv.port, families = { 4 },
      timeouts = { connect = 2, greeting = 3, command = 3, tls = 3 }, ca_file = certs.ca,
      only = { "dane" }, dnssec_probe = o.probe or "soa:signed.test" } }
    local r = run:check_domain("site.test")
    srv:wait()
    local out = {}
    for _, f in ipairs(r.servers[1].findings) do
      if f.check == "dane" then out[#out + 1] = f end
    end
    return out, r, asked
  end
  local function codes(fs)
    local out = {}
    for _, f in ipairs(fs) do out[#out + 1] = f.code end
    return table.concat(out, " ")
  end

  it("DANE-EE 3 1 1 of the leaf's key matches: ok, and the fact says so", function()
    local leaf = cert(certs.leaf.valid.cert)
    local fs, r = dane { tlsa = { { 3, 1, 1, leaf:tlsa(1, 1) } } }
    assert.equal("DANE_MATCH", codes(fs))
    assert.equal("ok", fs[1].severity)
    assert.matches("server's certificate (DANE-EE)", fs[1].message, 1, true)
    assert.equal("match", r.servers[1].facts.dane.result)
    assert.is_true(r.servers[1].facts.dane.secure)
  end)

  it("DANE-EE ignores names and dates: an expired leaf for another name still matches", function()
    local leaf = cert(certs.leaf.expired.cert)
    local fs = dane { leaf = "expired", tlsa = { { 3, 0, 2, leaf:tlsa(0, 2) } } }
    assert.equal("DANE_MATCH", codes(fs))
    fs = dane { leaf = "wrong", tlsa = { { 3, 1, 0, cert(certs.leaf.wrong.cert):tlsa(1, 0) } } }
    assert.equal("DANE_MATCH", codes(fs))
  end)

  it("DANE-TA 2 0 1 of the intermediate: the chain to it and the MX name are verified", function()
    local int = cert(certs.intermediate)
    local fs = dane { tlsa = { { 2, 0, 1, int:tlsa(0, 1) } } }
    assert.equal("DANE_MATCH", codes(fs))
    assert.matches("issuer at depth 1", fs[1].message, 1, true)
    -- the same anchor, but the leaf names other.test only: senders refuse it
    fs = dane { leaf = "wrong", tlsa = { { 2, 1, 1, int:tlsa(1, 1) } } }
    assert.equal("DANE_TA_INVALID", codes(fs))
    assert.equal("critical", fs[1].severity)
    assert.matches("hostname mismatch (at depth 0)", fs[1].message, 1, true)
    -- and an expired leaf under DANE-TA fails on its dates
    fs = dane { leaf = "expired", tlsa = { { 2, 1, 1, int:tlsa(1, 1) } } }
    assert.equal("DANE_TA_INVALID", codes(fs))
    assert.matches("certificate has expired", fs[1].message, 1, true)
  end)

  it("a stale record is critical and the hint gives the 3 1 1 record to publish", function()
    local leaf = cert(certs.leaf.valid.cert)
    local fs, r = dane { tlsa = { { 3, 1, 1, ("ab"):rep(32) }, { 2, 0, 1, ("cd"):rep(32) } } }
    assert.equal("DANE_NO_MATCH", codes(fs))
    assert.equal("critical", r.verdict)
    assert.equal("None of the 2 usable TLSA record(s) at _25._tcp.mx.test matches the chain this server presents: DANE senders will not deliver", fs[1].message)
    assert.matches("3 1 1 " .. leaf:tlsa(1, 1), fs[1].hint, 1, true)
  end)

  it("usages 0 and 1 and unknown selectors or matching types are unusable for SMTP", function()
    local fs = dane { tlsa = { { 1, 1, 1, ("ab"):rep(32) }, { 0, 0, 1, ("ab"):rep(32) }, { 3, 2, 1, "ab" }, { 3, 1, 9, "ab" } } }
    assert.equal("DANE_RECORDS_UNUSABLE", codes(fs))
    assert.equal("The TLSA records at _25._tcp.mx.test are all unusable for SMTP (1 1 1, 0 0 1, 3 2 1, 3 1 9): DANE senders still insist on TLS, but authenticate nothing", fs[1].message)
  end)

  it("records in an unsigned zone, or for an unsigned MX host, are info: senders ignore them", function()
    local bad = { { 3, 1, 1, ("ab"):rep(32) } }
    local fs = dane { tlsa = bad, secure = false }
    assert.equal("DANE_TLSA_INSECURE", codes(fs))
    assert.equal("info", fs[1].severity)
    assert.matches("the TLSA answer is not signed", fs[1].message, 1, true)
    fs = dane { tlsa = bad, addr_secure = false }
    assert.equal("DANE_TLSA_INSECURE", codes(fs))
    assert.matches("the addresses of mx.test are not signed", fs[1].message, 1, true)
  end)

  it("a resolver that does not validate makes the result inconclusive, never a mismatch", function()
    local fs, r, asked = dane { tlsa = { { 3, 1, 1, ("ab"):rep(32) } }, validating = false }
    assert.equal("DANE_RESOLVER_NOT_VALIDATING", codes(fs))
    assert.equal("inconclusive", fs[1].severity)
    assert.equal("inconclusive", r.servers[1].facts.dane.result)
    assert.matches("this resolver does not validate DNSSEC", fs[1].message, 1, true)
    local probes = 0
    for _, q in ipairs(asked) do if q == "SOA signed.test" then probes = probes + 1 end end
    assert.equal(1, probes)
  end)

  -- RFC 7672 2.2.2 and 3.2.2; what Postfix's tls_dane_resolve and
  -- posttls-finger do (tests/integration/dane_spec.lua: dane-cname)
  describe("an MX host that is an alias (CNAME to host.other.test)", function()
    local function at(map)
      return function(name)
        local answers = {}
        for _, r in ipairs(map[name] or {}) do
          answers[#answers + 1] = { type = "TLSA", usage = r[1], selector = r[2], mtype = r[3], data = r[4] }
        end
        if map[name] == "SERVFAIL" then return { rcode = "SERVFAIL", answers = {} } end
        return { rcode = map[name] and "NOERROR" or "NXDOMAIN", ad = true, secure = true, answers = answers }
      end
    end

    it("secure chain: TLSA at the expanded name first, and the DANE-TA chain must name it", function()
      local ca = chain(certs.leaf.valid.chain)[2]
      local stale = cert(certs.leaf.self.cert):tlsa(1, 1)
      -- the valid leaf names *.wild.test: the expanded name host.wild.test
      local fs, r, asked = dane { cname = "host.wild.test", tlsa = at {
        ["_25._tcp.host.wild.test"] = { { 2, 0, 1, ca:tlsa(0, 1) } },
        ["_25._tcp.mx.test"] = { { 3, 1, 1, stale } } } }
      assert.equal("DANE_MATCH", codes(fs))
      assert.matches("TLSA 2 0 1 .* at _25._tcp.host.wild.test matches the issuer at depth 1", fs[1].message)
      local f = r.servers[1].facts.dane
      assert.equal("host.wild.test", f.expanded)
      assert.equal("host.wild.test", f.base)
      assert.equal("_25._tcp.host.wild.test", f.name)
      local tlsa = {}
      for _, q in ipairs(asked) do if q:match("^TLSA") then tlsa[#tlsa + 1] = q end end
      assert.same({ "TLSA _25._tcp.host.wild.test" }, tlsa) -- records there: the original name is not asked
    end)

    it("records at the expanded name, a certificate naming only the original MX name: the name check fails (as Postfix)", function()
      local ca = chain(certs.leaf.valid.chain)[2]
      local fs = dane { cname = "host.other.test", tlsa = at { ["_25._tcp.host.other.test"] = { { 2, 0, 1, ca:tlsa(0, 1) } } } }
      assert.equal("DANE_TA_INVALID", codes(fs))
      assert.matches("does not verify for host.other.test (hostname mismatch", fs[1].message, 1, true)
    end)

    it("secure chain, no TLSA at the expanded name: the original name's records apply", function()
      local leaf = cert(certs.leaf.valid.cert)
      local fs, r, asked = dane { cname = "host.other.test", tlsa = at { ["_25._tcp.mx.test"] = { { 3, 1, 1, leaf:tlsa(1, 1) } } } }
      assert.equal("DANE_MATCH", codes(fs))
      assert.equal("_25._tcp.mx.test", r.servers[1].facts.dane.name)
      local tlsa = {}
      for _, q in ipairs(asked) do if q:match("^TLSA") then tlsa[#tlsa + 1] = q end end
      assert.same({ "TLSA _25._tcp.host.other.test", "TLSA _25._tcp.mx.test" }, tlsa)
    end)

    it("a lookup error at the expanded name is no 'none': bogus, and the original name is not tried", function()
      local leaf = cert(certs.leaf.valid.cert)
      local fs, _, asked = dane { cname = "host.other.test", tlsa = at {
        ["_25._tcp.host.other.test"] = "SERVFAIL", ["_25._tcp.mx.test"] = { { 3, 1, 1, leaf:tlsa(1, 1) } } } }
      assert.equal("DANE_BOGUS", codes(fs))
      assert.matches("SERVFAIL for _25._tcp.host.other.test", fs[1].message, 1, true)
      for _, q in ipairs(asked) do assert.is_not.equal("TLSA _25._tcp.mx.test", q) end
    end)

    it("DANE-TA records at the original name (none at the expanded one): the chain must name the original", function()
      local ca = chain(certs.leaf.valid.chain)[2]
      local fs, r = dane { cname = "host.other.test", tlsa = at { ["_25._tcp.mx.test"] = { { 2, 0, 1, ca:tlsa(0, 1) } } } }
      assert.equal("DANE_MATCH", codes(fs))
      assert.equal("mx.test", r.servers[1].facts.dane.base)
    end)
  end)

  it("SERVFAIL from a validating resolver for a signed host is bogus: critical", function()
    local fs = dane { tlsa = function() return { rcode = "SERVFAIL", answers = {} } end }
    assert.equal("DANE_BOGUS", codes(fs))
    assert.equal("critical", fs[1].severity)
    -- but not when the resolver does not validate: then nobody knows
    fs = dane { tlsa = function() return { rcode = "SERVFAIL", answers = {} } end, validating = false }
    assert.equal("DANE_DNS_FAILED", codes(fs))
    -- and an unsigned MX host: senders never ask for its TLSA records
    local r
    fs, r = dane { tlsa = function() return { rcode = "SERVFAIL", answers = {} } end, addr_secure = false }
    assert.equal("", codes(fs))
    assert.equal("insecure", r.servers[1].facts.dane.result)
    fs = dane { tlsa = function() return nil, "timeout", "no answer" end, addr_secure = false }
    assert.equal("", codes(fs))
  end)

  it("a malformed TLSA answer is critical with the decoder's reason; a time-out is inconclusive", function()
    local fs = dane { tlsa = function() return nil, "dns", "malformed answer: answer record 1: TLSA rdata is 2 bytes (too short) (TLSA _25._tcp.mx.test)" end }
    assert.equal("DANE_TLSA_MALFORMED", codes(fs))
    assert.matches("TLSA rdata is 2 bytes", fs[1].message, 1, true)
    fs = dane { tlsa = function() return nil, "timeout", "no answer" end }
    assert.equal("DANE_DNS_FAILED", codes(fs))
    assert.equal("inconclusive", fs[1].severity)
  end)

  it("TLSA records and no STARTTLS: DANE senders do not deliver", function()
    local fs = dane { starttls = false, tlsa = { { 3, 1, 1, ("ab"):rep(32) } } }
    assert.equal("DANE_NO_TLS", codes(fs))
    assert.matches("the server does not offer STARTTLS", fs[1].message, 1, true)
  end)

  it("no TLSA record: no finding, the fact says none", function()
    local fs, r = dane { tlsa = {} }
    assert.equal("", codes(fs))
    assert.equal("none", r.servers[1].facts.dane.result)
  end)

  it("rollover foresight: only the current key pinned and expiry inside the horizon", function()
    local leaf = cert(certs.leaf.valid.cert)
    local days = math.floor((leaf:not_after() - os.time()) / 86400)
    local pol = { thresholds = { expiry_warning_days = days + 10 } }
    local fs = dane { tlsa = { { 3, 1, 1, leaf:tlsa(1, 1) } }, policy = pol }
    assert.equal("DANE_MATCH DANE_ROLLOVER_MISSING", codes(fs))
    assert.equal("warning", fs[2].severity)
    assert.matches("pin only the current key", fs[2].message, 1, true)
    assert.matches("publish the next key's \"3 1 1\" record", fs[2].hint, 1, true)
    -- a second record (the next key) published: no warning
    fs = dane { tlsa = { { 3, 1, 1, leaf:tlsa(1, 1) }, { 3, 1, 1, ("ef"):rep(32) } }, policy = pol }
    assert.equal("DANE_MATCH", codes(fs))
  end)

  it("a bad dnssec_probe setting is a precise error, not a crash of the run", function()
    local fs = dane { tlsa = { { 3, 1, 1, ("ab"):rep(32) } }, probe = "nonsense" }
    assert.equal("CHECK_ERROR", codes(fs))
    assert.matches('dnssec_probe: "nonsense" is not TYPE:NAME (e.g. "ns:.")', fs[1].message, 1, true)
  end)
end)
