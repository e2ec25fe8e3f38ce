-- core.x509 and mxprobe.net.x509 on certificates made at test time, checked
-- against what the openssl command says about the same files.
local core = require "mxprobe.core"
local x509 = require "mxprobe.net.x509"
local make_certs = require("tests.helpers.certs").make

local X = core.x509

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>/dev/null"))
  local out = p:read("a")
  p:close()
  return (out:gsub("%s+$", ""))
end

describe("core.x509", function()
  local certs, valid, chain, expired, self, wrong, ed, weak, ca, int

  local function one(path) return assert(X.load_pem(certs.read(path)))[1] end

  setup(function()
    certs = make_certs()
    chain = assert(X.load_pem(certs.read(certs.leaf.valid.chain)))
    valid = chain[1]
    expired = one(certs.leaf.expired.cert)
    self = one(certs.leaf.self.cert)
    wrong = one(certs.leaf.wrong.cert)
    ed = one(certs.leaf.ed25519.cert)
    weak = certs.weak_available and one(certs.leaf.weak.cert)
    ca = one(certs.ca)
    int = one(certs.intermediate)
  end)
  teardown(function() if certs then certs.cleanup() end end)

  it("load_pem returns every certificate of a bundle, in order", function()
    assert.equal(2, #chain)
    assert.equal(valid, chain[1])
    assert.equal(int, chain[2])
    assert.equal(13, #assert(X.load_pem(certs.read(certs.leaf.long.chain))))
  end)

  it("subject and issuer are RFC 2253 one-liners", function()
    assert.equal("CN=mx.test", valid:subject())
    assert.equal("CN=mxprobe Test Intermediate CA", valid:issuer())
    assert.equal("CN=mxprobe Test Intermediate CA", int:subject()) -- openssl ca's policy keeps the CN only
    assert.equal("CN=mxprobe Test Root CA,O=mxprobe tests", int:issuer())
    assert.equal(self:subject(), self:issuer())
    assert.equal(sh("openssl x509 -noout -subject -nameopt RFC2253 -in " .. sh_quote(certs.intermediate)),
      "subject=" .. int:subject())
  end)

  it("serial is hex, as openssl prints it", function()
    local want = sh("openssl x509 -noout -serial -in " .. sh_quote(certs.leaf.valid.cert)):match("serial=(%x+)")
    assert.equal(want, valid:serial())
    assert.matches("^%x+$", self:serial())
  end)

  it("not_before / not_after are epoch seconds", function()
    local now = os.time()
    assert.is_true(math.type(valid:not_before()) == "integer")
    assert.is_true(valid:not_before() <= now)
    assert.is_true(math.abs(valid:not_after() - (now + 365 * 86400)) < 3600)
    assert.is_true(expired:not_after() < now)
    assert.is_true(math.abs(expired:not_after() - (now - 30 * 86400)) < 3600)
    assert.is_true(math.abs(expired:not_before() - (now - 400 * 86400)) < 3600)
    -- the same instant openssl prints
    local want = sh("openssl x509 -noout -enddate -dateopt iso_8601 -in " .. sh_quote(certs.leaf.valid.cert))
    assert.equal(want:match("notAfter=(.*)"):gsub(" ", "T"), os.date("!%Y-%m-%dT%H:%M:%SZ", valid:not_after()))
  end)

  it("sans lists DNS names and IP addresses", function()
    assert.same({ "mx.test", "*.wild.test", "127.0.0.1" }, valid:sans())
    assert.same({ "other.test" }, wrong:sans())
    assert.same({}, ca:sans())
  end)

  it("key gives type and bits (and the curve)", function()
    assert.same({ "EC", 256, "prime256v1" }, { valid:key() })
    local t, bits = ed:key()
    assert.equal("ED25519", t)
    assert.equal(256, bits) -- OpenSSL 3.0 reports the 256-bit key size
    if weak then assert.same({ "RSA", 1024 }, { weak:key() }) end
  end)

  it("signature_algorithm names the algorithm", function()
    assert.equal("ecdsa-with-SHA256", valid:signature_algorithm())
    if weak then assert.equal("ecdsa-with-SHA1", weak:signature_algorithm()) end
    -- an RSA signature
    local path = certs.dir .. "/rsa.crt"
    os.execute(("openssl req -x509 -newkey rsa:1024 -nodes -keyout %s -out %s -days 1 -subj /CN=rsa.test 2>/dev/null")
      :format(sh_quote(certs.dir .. "/rsa.key"), sh_quote(path)))
    local rsa = one(path)
    assert.equal("sha256WithRSAEncryption", rsa:signature_algorithm())
    assert.same({ "RSA", 1024 }, { rsa:key() })
  end)

  it("fingerprint is SHA-256 hex with colons, as openssl prints it", function()
    local want = sh("openssl x509 -noout -fingerprint -sha256 -in " .. sh_quote(certs.leaf.valid.cert))
    assert.equal(want:match("=(.*)"), valid:fingerprint())
    assert.equal("", (valid:fingerprint():gsub("^%x%x", ""):gsub(":%x%x", "")))
    assert.equal(32 * 3 - 1, #valid:fingerprint())
    want = sh("openssl x509 -noout -fingerprint -sha1 -in " .. sh_quote(certs.leaf.valid.cert))
    assert.equal(want:match("=(.*)"), valid:fingerprint("sha1"))
  end)

  it("spki_sha256 is the DANE 3 1 1 data", function()
    local want = sh(("openssl x509 -noout -pubkey -in %s | openssl pkey -pubin -outform DER | sha256sum")
      :format(sh_quote(certs.leaf.valid.cert))):match("^(%x+)")
    assert.equal(want, valid:spki_sha256())
  end)

  it("pem and der round-trip", function()
    assert.equal(certs.read(certs.leaf.valid.cert), valid:pem())
    assert.equal(valid, X.load_pem(valid:pem())[1])
    assert.equal(valid, assert(X.load_der(valid:der())))
    assert.are_not.equal(valid, wrong)
  end)

  it("== with another kind of userdata is false, not an error", function()
    -- Lua calls the first operand's __eq for any two full userdata
    local sock = assert(core.net.listen("127.0.0.1", 0))
    local ok, eq = pcall(function() return valid == sock end)
    assert.is_true(ok, eq)
    assert.is_false(eq)
    ok, eq = pcall(function() return sock == valid end)
    assert.is_true(ok, eq)
    assert.is_false(eq)
    sock:close()
  end)

  it("check_host applies RFC 6125 wildcard rules and IP SANs", function()
    assert.is_true(valid:check_host("mx.test"))
    assert.is_true(valid:check_host("MX.Test"))
    assert.is_true(valid:check_host("mx.test."))
    assert.is_false(valid:check_host("other.test"))
    assert.is_true(valid:check_host("a.wild.test"))
    assert.is_false(valid:check_host("wild.test"))
    assert.is_false(valid:check_host("a.b.wild.test"))
    assert.is_true(valid:check_host("127.0.0.1"))
    assert.is_false(valid:check_host("127.0.0.2"))
    assert.is_false(wrong:check_host("mx.test"))
    assert.same({ false, "malformed name" }, { valid:check_host("") })
    assert.same({ false, "malformed name" }, { valid:check_host("mx\0.test") })
  end)

  it("self_signed, is_ca, version", function()
    assert.is_true(self:self_signed())
    assert.is_true(ca:self_signed())
    assert.is_false(valid:self_signed())
    assert.is_false(int:self_signed())
    assert.is_true(ca:is_ca())
    assert.is_true(int:is_ca())
    assert.is_false(valid:is_ca())
    assert.is_false(self:is_ca())
    assert.equal(3, valid:version())
    assert.equal("x509: CN=mx.test", tostring(valid))
  end)

  describe("garbage in, a clean error out", function()
    it("load_pem", function()
      assert.same({ nil, "x509", "no PEM certificate found" }, { X.load_pem("garbage") })
      assert.same({ nil, "x509", "no PEM certificate found" }, { X.load_pem("") })
      assert.same({ nil, "x509", "no PEM certificate found" }, { X.load_pem(certs.read(certs.leaf.valid.key)) })
      local r, code, detail = X.load_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
      assert.is_nil(r)
      assert.equal("x509", code)
      assert.matches("cannot parse certificate #1", detail)
      r, code, detail = X.load_pem(certs.read(certs.leaf.valid.cert) .. "-----BEGIN CERTIFICATE-----\n!!!!\n")
      assert.is_nil(r)
      assert.equal("x509", code)
      assert.matches("#2", detail)
      local pem = certs.read(certs.leaf.valid.cert)
      r, code, detail = X.load_pem(pem:sub(1, #pem // 2))
      assert.is_nil(r)
      assert.equal("x509", code)
      r, code = X.load_pem(pem:rep(65))
      assert.is_nil(r)
      assert.equal("limit", code)
      -- keys and other blocks around certificates are skipped
      assert.equal(1, #X.load_pem(certs.read(certs.leaf.valid.key) .. pem))
    end)

    it("load_der", function()
      local r, code, detail = X.load_der("junk")
      assert.is_nil(r)
      assert.equal("x509", code)
      assert.matches("cannot parse", detail)
      r, code, detail = X.load_der(valid:der() .. "xx")
      assert.is_nil(r)
      assert.equal("2 trailing bytes after the DER certificate", detail)
    end)

    it("misuse raises naming function and argument", function()
      assert.error_matches(function() X.load_pem() end, "bad argument #1 to 'load_pem'")
      assert.error_matches(function() X.load_pem({}) end, "bad argument #1 to 'load_pem'")
      assert.error_matches(function() valid.subject(42) end, "bad argument #1 to 'subject' %(mxprobe.x509 expected, got number%)")
      assert.error_matches(function() valid:fingerprint("nope") end, "bad argument #1 to 'fingerprint' %(unknown digest 'nope'%)")
      assert.error_matches(function() valid:check_host() end, "bad argument #1 to 'check_host'")
    end)
  end)

  describe("mxprobe.net.x509", function()
    it("days_left", function()
      local now = os.time()
      assert.is_true(math.abs(x509.days_left(valid, now) - 365) < 0.1)
      assert.is_true(math.abs(x509.days_left(expired, now) + 30) < 0.1)
      assert.error_matches(function() x509.days_left("x") end, "bad argument #1 to 'days_left'")
    end)

    it("to_table and chain_to_table give plain data for JSON", function()
      local t = x509.to_table(valid, os.time())
      assert.equal("CN=mx.test", t.subject)
      assert.same({ "mx.test", "*.wild.test", "127.0.0.1" }, t.sans)
      assert.same({ type = "EC", bits = 256, curve = "prime256v1" }, t.key)
      assert.equal(valid:fingerprint(), t.fingerprint_sha256)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", t.not_after_iso)
      assert.is_false(t.self_signed)
      assert.is_false(t.is_ca)
      assert.is_true(t.days_left > 364 and t.days_left < 366)
      for k, v in pairs(t) do
        assert.is_true(type(v) ~= "userdata" and type(v) ~= "function", k)
      end
      local ts = x509.chain_to_table(chain)
      assert.equal(2, #ts)
      assert.is_true(ts[2].is_ca)
      assert.error_matches(function() x509.chain_to_table("x") end, "bad argument #1 to 'chain_to_table'")
    end)
  end)
end)
