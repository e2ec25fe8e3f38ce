-- checks/tls_offer.lua against scripted servers for the faults no real MTA
-- makes on purpose: a reset after the ClientHello of one version only, 454
-- to the third STARTTLS, extra sessions tarpitted.  Each attempt is
-- reported, the rest of the grade is still given, nothing waits unbounded.
-- Also the grade tables (mxprobe.net.tls_grades) on their own.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local grades = require "mxprobe.net.tls_grades"
local fake = require "tests.helpers.fake_smtp"
local fake_dns = require "tests.helpers.fake_resolver"
local certs = require "tests.helpers.certs"

local C -- certificates made at test time
local EHLO_TLS = "250-mx.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n"

-- A server for every connection: greeting, EHLO, STARTTLS, then behave(i)
-- decides: "tls" (a real handshake), "reset" (RST after the 220), "454",
-- or "tarpit" (silence after the greeting).
local function server(behave)
  return fake.start({ function(c, srv, i)
    local how = behave(i)
    if how == "tarpit" then loop.sleep(30); return end
    c:send("220 mx.test ESMTP\r\n")
    local line = c:read_line()
    if not line then return end
    c:send(EHLO_TLS)
    while true do
      line = c:read_line()
      if not line then return end
      if line:match("^STARTTLS") then break end
      if line:match("^QUIT") then c:send("221 bye\r\n"); return end
      if line:match("^RSET") or line:match("^MAIL") or line:match("^RCPT") then c:send("250 ok\r\n")
      else c:send("250 mx.test\r\n") end
    end
    if how == "454" then c:send("454 4.7.0 TLS not available due to local problem\r\n"); return end
    c:send("220 go ahead\r\n")
    if how == "reset" then c:abort(); return end
    local ok = c:tls_handshake({ server = true, cert = C.leaf.valid.chain, key = C.leaf.valid.key, min = "TLSv1.2" }, loop.now() + 3)
    if not ok then return end
    while true do
      line = c:read_line()
      if not line then return end
      if line:match("^QUIT") then c:send("221 bye\r\n"); return end
      c:send("250 mx.test\r\n")
    end
  end }, { connections = 60, lifetime = 30 })
end

local function run_case(behave, tls)
  local srv = server(behave)
  local run = engine.new { dns = fake_dns, config = {
    only = { "tls_offer" }, allow_reserved = { "loopback" }, helo = "tester.test",
    timeouts = { connect = 2, greeting = 2, command = 2, tls = 2 }, tls = tls,
  } }
  local t0 = loop.now()
  local result = run:check_host("127.0.0.1", srv.port)
  srv:stop()
  return result.servers[1], loop.now() - t0
end

local function codes(s)
  local out = {}
  for _, f in ipairs(s.findings) do if f.check == "tls_offer" then out[#out + 1] = f.code end end
  table.sort(out)
  return table.concat(out, " ")
end

describe("tls_offer against hostile servers", function()
  setup(function() C = certs.make() end)

  it("a reset for one version only: that attempt says so, the other versions are still graded", function()
    -- connection 1 is the main session; 2..5 are TLS 1.0, 1.1, 1.2, 1.3
    local s = run_case(function(i) return i == 4 and "reset" or "tls" end, { enumerate = "versions" })
    local f = s.facts.tls_offer
    assert.same({ "TLSv1.3" }, f.versions) -- 1.0 and 1.1: refused by this server; 1.2: reset
    local by = {}
    for _, a in ipairs(f.attempts) do by[a.what] = a end
    assert.equal("refused", by["version TLSv1.2"].result)
    assert.matches("reset", by["version TLSv1.2"].detail or "")
    assert.matches("protocol version", by["version TLSv1.1"].detail or "")
    assert.equal("accepted", by["version TLSv1.3"].result)
  end)

  it("454 to the third STARTTLS ends the enumeration early and says what is missing", function()
    local s = run_case(function(i) return i == 3 and "454" or "tls" end)
    assert.matches("TLS_OFFER_INCOMPLETE", codes(s))
    local f = s.facts.tls_offer
    assert.equal(2, f.handshakes)
    for _, x in ipairs(s.findings) do
      if x.code == "TLS_OFFER_INCOMPLETE" then assert.matches("STARTTLS answered 454", x.message) end
    end
  end)

  it("tarpitted extra sessions cost a greeting deadline each, within the budget, and no crash", function()
    local s, seconds = run_case(function(i) return i > 1 and "tarpit" or "tls" end, { enumerate = "versions" })
    local f = s.facts.tls_offer
    assert.same({}, f.versions)
    for _, a in ipairs(f.attempts) do assert.equal("no greeting", a.result) end
    assert.is_true(seconds < 4 * 2 + 3, "took " .. seconds .. " s")
  end)
end)

describe("mxprobe.net.tls_grades", function()
  it("grades suites as NCSC-NL does", function()
    assert.equal("good", grades.suite_grade("TLS_AES_256_GCM_SHA384"))
    assert.equal("good", grades.suite_grade("ECDHE-RSA-AES128-GCM-SHA256"))
    assert.equal("sufficient", grades.suite_grade("ECDHE-ECDSA-AES256-SHA"))
    assert.equal("sufficient", grades.suite_grade("DHE-RSA-AES256-GCM-SHA384"))
    assert.equal("phase_out", grades.suite_grade("AES128-SHA"))
    assert.same({ "insufficient", "broken" }, { grades.suite_grade("NULL-SHA256") })
    assert.same({ "insufficient", "anonymous" }, { grades.suite_grade("ADH-AES256-GCM-SHA384") })
    assert.same({ "insufficient", "unlisted" }, { grades.suite_grade("ECDHE-ECDSA-AES256-CCM8") })
  end)

  it("class cipher strings offer exactly their class", function()
    local tls = require "mxprobe.net.tls"
    for _, class in ipairs(grades.PROBE_CLASSES) do
      local ctx = tls.context({ max = "TLSv1.2", ciphers = grades.cipher_string(class) })
      assert.is_truthy(ctx, class)
    end
    assert.matches("^ECDHE%-ECDSA%-AES256%-GCM%-SHA384:", grades.cipher_string("good"))
    assert.matches("!ECDHE%-ECDSA%-AES256%-GCM%-SHA384", grades.cipher_string("insufficient"))
  end)

  it("grades key exchange by group and size", function()
    assert.equal("good", grades.kx_grade("X25519", 253, "x25519"))
    assert.equal("phase_out", grades.kx_grade("DH", 2048))
    assert.equal("sufficient", grades.kx_grade("DH", 3072))
    assert.equal("insufficient", grades.kx_grade("DH", 1024))
    assert.equal("phase_out", grades.kx_grade("EC", 521, "secp521r1"))
  end)
end)
