-- MTA-STS (checks/mta_sts.lua, net/mta_sts_policy.lua, net/http.lua) and
-- TLS-RPT (checks/tlsrpt.lua): the strict parsers, and whole runs against
-- a scripted HTTPS policy host (tests/helpers/https_policy.py: redirects,
-- oversized, dripping, non-UTF-8 policies...) and a scripted SMTP server
-- with STARTTLS, all on loopback with certificates made at test time.  The
-- real policy host (nginx) is the lab's (tests/integration/mta_sts_spec.lua).
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local http = require "mxprobe.net.http"
local P = require "mxprobe.net.mta_sts_policy"
local fake = require "tests.helpers.fake_smtp"
local make_certs = require("tests.helpers.certs").make

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/spec"
local helpers = here:gsub("spec$", "helpers")

describe("MTA-STS parsers", function()
  it("the TXT record: v=STSv1 first, an id of 1 to 32 letters and digits", function()
    assert.same({ v = "STSv1", id = "20261201T1200" }, (P.parse_txt("v=STSv1; id=20261201T1200;")))
    assert.same({ v = "STSv1", id = "abc" }, (P.parse_txt("v=STSv1;id=abc")))
    local cases = {
      { "v=STSv2; id=1", 'does not begin with "v=STSv1;"' },
      { "v=STSv1;", "no id field" },
      { "v=STSv1; id=2026-12-01", 'id "2026-12-01" is not 1 to 32 letters and digits' },
      { "v=STSv1; id=" .. ("a"):rep(33), "is not 1 to 32 letters and digits" },
      { "v=STSv1; id=1; id=2", "field id appears twice" },
      { "v=STSv1; id 1", 'field "id 1" is not name=value' },
    }
    for _, c in ipairs(cases) do
      local ok, why = P.parse_txt(c[1])
      assert.is_nil(ok, c[1])
      assert.matches(c[2], why, 1, true)
    end
  end)

  it("the policy: version, mode, mx, max_age, strictly, with the reason", function()
    local p, probs = P.parse_policy("version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 604800\n")
    assert.same({ "mail.example.com", "*.example.net" }, p.mx)
    assert.equal("enforce", p.mode); assert.equal(604800, p.max_age); assert.same({}, probs)
    p = P.parse_policy("version: STSv1\r\nmode: testing\r\nmx: MX.Example.COM\r\nmax_age: 0\r\n")
    assert.equal("testing", p.mode); assert.same({ "mx.example.com" }, p.mx)
    local function reason(body)
      local pol, pr = P.parse_policy(body)
      assert.is_nil(pol, body)
      return pr[#pr].code, pr[#pr].evidence.reason
    end
    local base = "version: STSv1\nmode: enforce\nmx: mx.test\n"
    assert.same({ "MTA_STS_POLICY_INVALID", "no max_age line" }, { reason(base) })
    assert.same({ "MTA_STS_POLICY_INVALID", 'max_age "31557601" is not an integer 0 to 31557600' },
      { reason(base .. "max_age: 31557601\n") })
    assert.same({ "MTA_STS_POLICY_INVALID", 'max_age "-1" is not an integer 0 to 31557600' }, { reason(base .. "max_age: -1\n") })
    assert.same({ "MTA_STS_POLICY_INVALID", 'mode "strict" is not enforce, testing or none' },
      { reason("version: STSv1\nmode: strict\nmx: mx.test\nmax_age: 1\n") })
    assert.same({ "MTA_STS_POLICY_INVALID", 'version "STSv2" is not STSv1' },
      { reason("version: STSv2\nmode: enforce\nmx: mx.test\nmax_age: 1\n") })
    assert.same({ "MTA_STS_POLICY_INVALID", "no mx line (required unless mode is none)" },
      { reason("version: STSv1\nmode: enforce\nmax_age: 1\n") })
    assert.same({ "MTA_STS_POLICY_INVALID", 'line 2: mx pattern "*.*.test": a wildcard is allowed only as the whole first label ("*.example.com")' },
      { reason("version: STSv1\nmx: *.*.test\nmode: enforce\nmax_age: 1\n") })
    assert.same({ "MTA_STS_POLICY_INVALID", 'line 1 is not "key: value"' }, { reason("<html>\n") })
    assert.same({ "MTA_STS_POLICY_INVALID", "not UTF-8 (byte 5)" }, { reason("mx: \xff\n") })
    -- tolerated, but said: unknown keys (info), duplicate keys (warning)
    local pol, pr = P.parse_policy(base .. "max_age: 5\ncolour: blue\nmode: testing\n")
    assert.equal("enforce", pol.mode)
    assert.equal("MTA_STS_POLICY_DUPLICATE_KEY", pr[1].code); assert.equal("mode", pr[1].evidence.key)
    assert.equal("MTA_STS_POLICY_UNKNOWN_KEY", pr[2].code); assert.same({ "colour" }, pr[2].evidence.keys)
    assert.equal("none", (P.parse_policy("version: STSv1\nmode: none\nmax_age: 86400\n")).mode)
  end)

  it("mx patterns: exact names, and *. for exactly one label (RFC 8461 4.1)", function()
    assert.is_true(P.matches("mail.example.com", "MAIL.example.com."))
    assert.is_true(P.matches("*.example.com", "mx1.example.com"))
    assert.is_false(P.matches("*.example.com", "a.b.example.com"))
    assert.is_false(P.matches("*.example.com", "example.com"))
    assert.is_false(P.matches("mail.example.com", "mail.example.co"))
  end)
end)

describe("MTA-STS and TLS-RPT runs", function()
  local certs, srv, ready, sts_leaf
  setup(function()
    certs = make_certs()
    local modes = { "ok", "testing", "other", "wild", "none", "html", "redirect", "notfound", "big", "drip",
                    "notutf8", "dup", "unknown", "garbage", "badmax", "badmx", "noversion", "crlf", "flood" }
    local san = {}
    for i, m in ipairs(modes) do san[i] = "DNS:mta-sts." .. m .. ".test" end
    local leaf = certs.make_leaf("sts", table.concat(san, ","))
    sts_leaf = leaf
    ready = certs.dir .. "/https.ready"
    local p = io.popen(("python3 %s/https_policy.py %s %s %s 90 >/dev/null 2>&1 & echo $!"):format(helpers, ready,
      leaf.chain, leaf.key))
    srv = { pid = p:read("l") }
    p:close()
    for _ = 1, 100 do
      local f = io.open(ready)
      if f then srv.port = tonumber(f:read("l")); f:close(); break end
      loop.sleep(0.05)
    end
    assert(srv.port, "https_policy.py did not start")
  end)
  teardown(function()
    if srv and srv.pid then os.execute("kill " .. srv.pid .. " 2>/dev/null") end
    if certs then certs.cleanup() end
  end)

  local function tls_script()
    return {
      "220 mx.test ESMTP\r\n", { expect = "^EHLO" }, "250-mx.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
      { expect = "^STARTTLS" }, "220 2.0.0 ready\r\n",
      function(c)
        local info, code, detail = c:tls_handshake({ server = true, cert = certs.leaf.valid.chain, key = certs.leaf.valid.key }, loop.now() + 3)
        if not info then return nil, code, detail end
        return true
      end,
      { expect = "^EHLO" }, "250-mx.test\r\n250 8BITMIME\r\n", { expect = "^QUIT" }, "221 bye\r\n",
    }
  end

  -- o.txt: the _mta-sts TXT strings; o.rpt: the _smtp._tls TXT strings
  local function run(domain, o)
    o = o or {}
    local function txt(list)
      local a = {}
      for i, t in ipairs(list or {}) do a[i] = { type = "TXT", text = t, strings = { t } } end
      return { rcode = "NOERROR", answers = a }
    end
    local dns = {
      query = function(_, name, qtype)
        if qtype == "MX" and name == domain then
          return { rcode = "NOERROR", answers = { { type = "MX", preference = 10, host = "mx.test." } } }
        elseif qtype == "A" and (name == "mx.test" or name:match("^mta%-sts%.")) then
          return { rcode = "NOERROR", answers = { { type = "A", address = "127.0.0.1" } } }
        elseif qtype == "TXT" and name == "_mta-sts." .. domain then
          return txt(o.txt or { "v=STSv1; id=20261201" })
        elseif qtype == "TXT" and name == "_smtp._tls." .. domain then
          return txt(o.rpt)
        end
        return { rcode = "NOERROR", answers = {} }
      end,
      addresses = function(_, name)
        if name:match("^mta%-sts%.") and not o.no_host then return { { family = "ipv4", address = "127.0.0.1" } } end
        return {}
      end,
    }
    local smtp = fake.start(tls_script(), { lifetime = 15 })
    local r = engine.new { dns = dns, installed_checks = false, policy = { options = { mta_sts = {
        port = srv.port, timeout = o.timeout or 5 } } },
      config = { allow_reserved = { "loopback" }, helo = "tester.test", port = smtp.port, families = { 4 },
                 timeouts = { connect = 2, greeting = 3, command = 3, tls = 3 }, ca_file = certs.ca,
                 only = { "mta_sts", "tlsrpt", "certificate" } } }:check_domain(domain)
    smtp:wait()
    local out, by = {}, {}
    for _, f in ipairs(r.findings) do
      if f.check == "mta_sts" or f.check == "tlsrpt" then out[#out + 1] = f.code; by[f.code] = f end
    end
    table.sort(out)
    return table.concat(out, " "), by, r
  end

  it("net/http: a 200 with its body, type and the address it connected to", function()
    local res = assert(http.get(("https://mta-sts.ok.test:%d/.well-known/mta-sts.txt"):format(srv.port),
      { addresses = { "127.0.0.1" }, ca_file = certs.ca }, loop.now() + 5))
    assert.equal(200, res.status)
    assert.equal("text/plain", res.content_type)
    assert.equal("127.0.0.1", res.ip)
    assert.matches("^version: STSv1\n", res.body)
    -- the policy host certificate's notAfter (curl's certificate info), as
    -- the x509 binding reads it from the file
    local f = assert(io.open(sts_leaf.cert)); local pem = f:read("a"); f:close()
    assert.equal(assert(require("mxprobe.net.x509").load_pem(pem))[1]:not_after(), res.not_after)
    assert.is_true(math.type(res.not_after) == "integer" and res.not_after > os.time())
    -- the multi handle lives under a registry key of its own, not over its
    -- metatable (which made its __gc fail and leak curl's state at exit)
    assert.equal("table", type(debug.getregistry()["mxprobe.http.multi"]))
    assert.has_error(function() http.get("http://mta-sts.ok.test/", { addresses = { "127.0.0.1" } }) end,
      "bad argument #1 to 'get' (an https:// URL expected)")
    assert.has_error(function() http.get("https://mta-sts.ok.test/", {}) end,
      "bad argument #2 to 'get' (addresses: a list of addresses of mta-sts.ok.test expected)")
  end)

  it("enforce, the MX matches and passes: MTA_STS_OK; a valid TLS-RPT record", function()
    local codes, by = run("ok.test", { rpt = { "v=TLSRPTv1; rua=mailto:tlsrpt@ok.test,https://r.ok.test/v1" } })
    assert.equal("MTA_STS_OK TLSRPT_OK", codes)
    assert.equal("MTA-STS policy enforce (id 20261201, max_age 86400 s): every MX that senders may use passes (mx.test)", by.MTA_STS_OK.message)
    assert.same({ "mx.test" }, by.MTA_STS_OK.evidence.hosts) -- a plain list (JSON)
    codes = run("crlf.test")
    assert.equal("MTA_STS_OK TLSRPT_MISSING", codes)
    assert.equal("MTA_STS_OK TLSRPT_MISSING", (run("wild.test")))
  end)

  it("an MX the enforce policy does not name is critical; testing mode only reports", function()
    local codes, by, r = run("other.test")
    assert.equal("MTA_STS_MX_NOT_IN_POLICY TLSRPT_MISSING", codes)
    assert.equal("critical", by.MTA_STS_MX_NOT_IN_POLICY.severity)
    assert.equal("critical", r.verdict)
    assert.equal("info", by.TLSRPT_MISSING.severity)
    assert.equal("other.test uses MTA-STS but publishes no TLS-RPT record: senders' TLS failures will not be reported to you", by.TLSRPT_MISSING.message)
    codes = run("testing.test")
    assert.equal("MTA_STS_OK TLSRPT_MISSING", codes) -- mx.test passes under testing as well
    assert.equal("MTA_STS_MODE_NONE TLSRPT_MISSING", (run("none.test")))
  end)

  it("TXT without a usable policy: a precise warning for each failure, never a crash or a hang", function()
    local cases = {
      { "redirect.test", "MTA_STS_POLICY_REDIRECT", "answers 301 (redirect to https://elsewhere.test/.well-known/mta-sts.txt)" },
      { "notfound.test", "MTA_STS_POLICY_HTTP_STATUS", "answers HTTP 404, not 200" },
      { "big.test", "MTA_STS_POLICY_TOO_LARGE", "is larger than 65536 bytes" },
      { "flood.test", "MTA_STS_POLICY_TOO_LARGE", "is larger than 65536 bytes" }, -- no Content-Length: the read cap
      { "notutf8.test", "MTA_STS_POLICY_INVALID", "not UTF-8 (byte" },
      { "garbage.test", "MTA_STS_POLICY_INVALID", "is invalid (" },
      { "badmax.test", "MTA_STS_POLICY_INVALID", 'max_age "99999999999" is not an integer' },
      { "badmx.test", "MTA_STS_POLICY_INVALID", "a wildcard is allowed only as the whole first label" },
      { "noversion.test", "MTA_STS_POLICY_INVALID", "no version line" },
    }
    for _, c in ipairs(cases) do
      local codes, by = run(c[1])
      assert.equal(c[2] .. " TLSRPT_MISSING", codes, c[1])
      assert.equal("warning", by[c[2]].severity, c[1])
      assert.matches(c[3], by[c[2]].message, 1, true)
    end
  end)

  it("a dripping policy host ends at the deadline", function()
    local t0 = loop.now()
    local codes, by = run("drip.test", { timeout = 2 })
    assert.equal("MTA_STS_POLICY_TIMEOUT TLSRPT_MISSING", codes)
    assert.is_true(loop.now() - t0 < 6, "took " .. (loop.now() - t0))
    assert.matches("did not finish in time", by.MTA_STS_POLICY_TIMEOUT.message, 1, true)
  end)

  it("a policy host whose certificate names another host", function()
    -- mta-sts.wrongname.test is not in the server's certificate
    local codes, by = run("wrongname.test")
    assert.equal("MTA_STS_POLICY_TLS TLSRPT_MISSING", codes)
    assert.matches("fails certificate verification", by.MTA_STS_POLICY_TLS.message, 1, true)
  end)

  it("the policy host without an address", function()
    local codes, by = run("ok.test", { no_host = true })
    assert.equal("MTA_STS_POLICY_HOST_MISSING TLSRPT_MISSING", codes)
    assert.matches("mta-sts.ok.test has no address", by.MTA_STS_POLICY_HOST_MISSING.message, 1, true)
  end)

  it("served as text/html; duplicate and unknown keys", function()
    assert.equal("MTA_STS_OK MTA_STS_POLICY_CONTENT_TYPE TLSRPT_MISSING", (run("html.test")))
    assert.equal("MTA_STS_OK MTA_STS_POLICY_DUPLICATE_KEY TLSRPT_MISSING", (run("dup.test")))
    assert.equal("MTA_STS_OK MTA_STS_POLICY_UNKNOWN_KEY TLSRPT_MISSING", (run("unknown.test")))
  end)

  it("several STSv1 records, or a bad one, mean no policy (no fetch)", function()
    local codes, by = run("ok.test", { txt = { "v=STSv1; id=1", "v=STSv1; id=2", "unrelated" } })
    assert.equal("MTA_STS_TXT_MULTIPLE", codes)
    assert.equal("2 \"v=STSv1\" TXT records at _mta-sts.ok.test: senders treat the domain as having no MTA-STS policy", by.MTA_STS_TXT_MULTIPLE.message)
    codes = run("ok.test", { txt = { "v=STSv1; id=not-valid" } })
    assert.equal("MTA_STS_TXT_INVALID", codes)
    assert.equal("", (run("ok.test", { txt = { "something else" } })))
  end)

  it("--mx HOST (check_host): no mail domain, so no MTA-STS or TLS-RPT lookup", function()
    local asked = {}
    local dns = { query = function(_, name, qtype)
      asked[#asked + 1] = qtype .. " " .. name
      if qtype == "A" and name == "mx.test" then return { rcode = "NOERROR", answers = { { type = "A", address = "127.0.0.1" } } } end
      return { rcode = "NOERROR", answers = {} }
    end }
    local smtp = fake.start(tls_script(), { lifetime = 15 })
    local r = engine.new { dns = dns, installed_checks = false, config = { allow_reserved = { "loopback" }, helo = "tester.test",
      port = smtp.port, families = { 4 }, timeouts = { connect = 2, greeting = 3, command = 3, tls = 3 }, ca_file = certs.ca,
      only = { "mta_sts", "tlsrpt", "certificate" } } }:check_host("mx.test")
    smtp:wait()
    assert.equal("host", r.mode)
    for _, q in ipairs(asked) do assert.is_nil(q:find("_mta-sts", 1, true), q); assert.is_nil(q:find("_smtp._tls", 1, true), q) end
    assert.same({}, r.findings)
  end)

  it("TLS-RPT: invalid and multiple records", function()
    local cases = {
      { { "v=TLSRPTv1; rua=ftp://x.ok.test/" }, "TLSRPT_INVALID", '"ftp://x.ok.test/" is neither a mailto: nor an https: URI' },
      { { "v=TLSRPTv1; rua=mailto:nobody" }, "TLSRPT_INVALID", '"mailto:nobody" is not mailto:local@domain' },
      { { "v=TLSRPTv1;" }, "TLSRPT_INVALID", "no rua field" },
      { { "v=TLSRPTv1; rua=mailto:a@ok.test", "v=TLSRPTv1; rua=mailto:b@ok.test" }, "TLSRPT_MULTIPLE", "2 \"v=TLSRPTv1\" TXT records" },
    }
    for _, c in ipairs(cases) do
      local codes, by = run("ok.test", { rpt = c[1] })
      assert.equal("MTA_STS_OK " .. c[2], codes)
      assert.matches(c[3], by[c[2]].message, 1, true)
    end
  end)
end)
