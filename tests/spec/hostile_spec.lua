-- Servers that throttle, misbehave or present odd certificates: the
-- diagnosis must stay right (GUIDE section 5: 421 is inconclusive, never
-- broken) and no check may crash.  Loopback only, scripted servers.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local fake = require "tests.helpers.fake_smtp"

local fake_dns = require "tests.helpers.fake_resolver" -- DNS is not under test here

local function codes_of(result)
  local set, list = {}, {}
  for _, s in ipairs(result.servers) do
    for _, f in ipairs(s.findings) do set[f.code] = f end
  end
  for c in pairs(set) do list[#list + 1] = c end
  table.sort(list)
  return set, table.concat(list, " ")
end

local function run_case(script, only)
  local srv = fake.start(script, { lifetime = 10 })
  local run = engine.new { dns = fake_dns, config = {
    only = only, allow_reserved = { "loopback" }, helo = "tester.test",
    options = { relay = { from = "probe@sender.test", to = "someone@external.test" } },
    timeouts = { connect = 2, greeting = 3, command = 3, tls = 3 },
  } }
  local result = run:check_host("127.0.0.1", srv.port)
  srv:wait()
  return result, srv
end

local GREETING = "220 mx.test ESMTP\r\n"
local EHLO_REPLY = "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"

describe("421 after the greeting is inconclusive, never broken", function()
  it("421 to RCPT (even with 4.7.1) is not a relay denial", function()
    local r, srv = run_case({
      GREETING, { expect = "^EHLO" }, EHLO_REPLY,
      { expect = "^MAIL FROM" }, "250 2.1.0 Ok\r\n",
      { expect = "^RCPT TO" }, "421 4.7.1 Too many connections, try again later\r\n",
    }, { "relay" })
    local set, list = codes_of(r)
    assert.is_nil(set.RELAY_DENIED, list)
    assert.is_truthy(set.RELAY_INCONCLUSIVE, list)
    assert.equal("inconclusive", r.verdict)
    for _, line in ipairs(srv.received[1] or {}) do assert.not_matches("^DATA", line) end
  end)
end)

describe("421 to EHLO", function()
  it("is inconclusive, and nothing (no HELO) is sent after it but QUIT", function()
    local r, srv = run_case({
      GREETING, { expect = "^EHLO" }, "421 4.7.0 mx.test Service not available, closing channel\r\n",
      { read = true }, "221 bye\r\n",
    }, { "ehlo" })
    local set, list = codes_of(r)
    assert.is_nil(set.EHLO_FAILED, list)
    assert.is_truthy(set.EHLO_421, list)
    assert.equal("inconclusive", r.verdict)
    for _, line in ipairs(srv.received[1] or {}) do assert.not_matches("^HELO", line) end
  end)
end)

describe("421 to STARTTLS", function()
  it("is inconclusive, not STARTTLS_REJECTED, and not a TLS inconsistency", function()
    local r = run_case({
      GREETING, { expect = "^EHLO" }, "250-mx.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
      { expect = "^STARTTLS" }, "421 4.7.0 Too many sessions, closing\r\n",
    }, { "starttls", "tls_consistency" })
    local set, list = codes_of(r)
    assert.is_nil(set.STARTTLS_REJECTED, list)
    assert.is_truthy(set.STARTTLS_421, list)
    assert.equal("inconclusive", r.verdict)
  end)

  it("a throttled address does not count as one without TLS (tls_consistency)", function()
    local def = dofile("checks/tls_consistency.lua")
    local got = {}
    local servers = {
      { host = "mx1.test", address = "192.0.2.1", facts = { starttls = { offered = true, accepted = true, handshake = true } } },
      { host = "mx2.test", address = "192.0.2.2", facts = { starttls = { offered = true, throttled = true } } },
    }
    def.summarize {
      servers = function() return servers end,
      finding = function(_, code) got[#got + 1] = code end,
    }
    assert.same({}, got)
  end)
end)

describe("certificates a hostile or odd server presents", function()
  local certs
  setup(function() certs = require("tests.helpers.certs").make() end)
  teardown(function() if certs then certs.cleanup() end end)

  local function write(path, text)
    local f = assert(io.open(path, "w")); f:write(text); f:close()
  end

  local function tls_case(chain_file, key_file, config)
    local script = {
      GREETING, { expect = "^EHLO" }, "250-mx.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
      { expect = "^STARTTLS" }, "220 2.0.0 ready\r\n",
      function(c)
        local info, code, detail = c:tls_handshake({ server = true, cert = chain_file, key = key_file }, loop.now() + 3)
        if not info then return nil, code, detail end
      end,
      { expect = "^EHLO" }, EHLO_REPLY, { expect = "^QUIT" }, "221 bye\r\n",
    }
    local srv = fake.start(script, { lifetime = 10 })
    local cfg = { only = { "certificate" }, allow_reserved = { "loopback" }, helo = "tester.test",
                  timeouts = { connect = 2, greeting = 3, command = 3, tls = 3 } }
    for k, v in pairs(config or {}) do cfg[k] = v end
    local r = engine.new({ dns = fake_dns, config = cfg }):check_host("127.0.0.1", srv.port)
    srv:wait()
    return r
  end

  it("a chain that ends in a root the tester does not trust is untrusted, not self-signed", function()
    -- leaf + intermediate + root: the leaf is not self-signed, its root is unknown
    local chain = certs.dir .. "/with-root.pem"
    write(chain, certs.read(certs.leaf.valid.cert) .. certs.read(certs.intermediate) .. certs.read(certs.ca))
    local r = tls_case(chain, certs.leaf.valid.key) -- system store only
    local set, list = codes_of(r)
    assert.is_nil(set.CERT_SELF_SIGNED, list)
    assert.is_truthy(set.CERT_UNTRUSTED, list)
    assert.matches("still encrypts", set.CERT_UNTRUSTED.message)
  end)

  it("a certificate whose notAfter is not a valid time does not crash the check", function()
    -- a self-signed certificate with its notAfter bytes overwritten: the
    -- handshake still works (the key is intact), the date cannot be read
    local d = certs.dir
    assert(os.execute(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s/bt.key"
      .. " -out %s/bt.crt -days 30 -subj /CN=mx.test -addext subjectAltName=IP:127.0.0.1 2>/dev/null"
      .. " && openssl x509 -in %s/bt.crt -outform DER -out %s/bt.der"):format(d, d, d, d)))
    local der = certs.read(d .. "/bt.der")
    local first = assert(der:find("\23\13", 1, true))            -- UTCTime notBefore
    local at = assert(der:find("\23\13", first + 15, true))      -- UTCTime notAfter
    local f = assert(io.open(d .. "/bad-time.der", "wb"))
    f:write(der:sub(1, at + 1) .. "99AB01000000Z" .. der:sub(at + 15)); f:close()
    assert(os.execute(("{ echo '-----BEGIN CERTIFICATE-----'; openssl base64 -in %s/bad-time.der;"
      .. " echo '-----END CERTIFICATE-----'; } > %s/bad-time.pem"):format(d, d)))
    local r = tls_case(d .. "/bad-time.pem", d .. "/bt.key")
    local set, list = codes_of(r)
    assert.is_nil(set.CHECK_ERROR, set.CHECK_ERROR and set.CHECK_ERROR.message)
    assert.is_nil(set.CERT_OK, list)
    assert.is_truthy(set.CERT_SELF_SIGNED, list)
    assert.is_false(r.servers[1].facts.certificate.verified)
  end)
end)

describe("certificate findings that fail verification", function()
  it("say that opportunistic TLS still encrypts", function()
    local def = dofile("checks/certificate.lua")
    for _, code in ipairs { "CERT_UNTRUSTED", "CERT_SELF_SIGNED", "CERT_EXPIRED", "CERT_NOT_YET_VALID", "CERT_NAME_MISMATCH" } do
      assert.matches("still encrypts", def.findings[code].message, 1, true)
    end
  end)
end)

describe("--mx with an address", function()
  it("a PTR is not compared with the address itself", function()
    local r = run_case({ "220 ESMTP ready\r\n", { expect = "^QUIT" }, "221 bye\r\n" }, { "banner" })
    local set, list = codes_of(r)
    assert.is_truthy(set.BANNER_NO_HOSTNAME, list)
    assert.is_nil(set.BANNER_PTR_MISMATCH, set.BANNER_PTR_MISMATCH and set.BANNER_PTR_MISMATCH.message)
  end)
end)

describe("greetings with an address literal instead of a name", function()
  it("[192.0.2.1] counts as the server naming itself (RFC 5321 4.1.3), not as a missing host name", function()
    local r = run_case({ "220 [192.0.2.1] ESMTP ready\r\n", { expect = "^QUIT" }, "221 bye\r\n" }, { "banner" })
    local set, list = codes_of(r)
    assert.is_nil(set.BANNER_NO_HOSTNAME, list)
    assert.equal("[192.0.2.1]", r.servers[1].facts.banner.hostname)
  end)

  it("[IPv6:2001:db8::1] too; a bracketed word that is not an address does not", function()
    local r = run_case({ "220 [IPv6:2001:db8::1] ESMTP\r\n", { expect = "^QUIT" }, "221 bye\r\n" }, { "banner" })
    assert.is_nil((codes_of(r)).BANNER_NO_HOSTNAME)
    local r2 = run_case({ "220 [not-an-address] ESMTP\r\n", { expect = "^QUIT" }, "221 bye\r\n" }, { "banner" })
    assert.is_truthy((codes_of(r2)).BANNER_NO_HOSTNAME)
  end)
end)
