-- The interpretation tables of the seed article (../shared/seed/) are
-- requirements.  Each row becomes a case: an in-loop scripted server on
-- loopback behaves as the row says, the stock checks run against it
-- (check_host, as `mxprobe --mx`), and the row's meaning must come out as
-- the documented diagnostic code.
local loop = require "mxprobe.runtime.loop"
local net = require("mxprobe.core").net
local socket = require "mxprobe.net.socket"
local engine = require "mxprobe.engine"
local fake = require "tests.helpers.fake_smtp"
local make_certs = require("tests.helpers.certs").make

local fake_dns = require "tests.helpers.fake_resolver" -- DNS is not under test here

local function codes_of(result)
  local set, list = {}, {}
  local function add(fs) for _, f in ipairs(fs) do set[f.code] = true end end
  add(result.findings) -- the DNS part is not under test here
  for _, s in ipairs(result.servers) do add(s.findings) end
  for c in pairs(set) do list[#list + 1] = c end
  table.sort(list)
  return list, set
end

local function probe(port, config)
  config.allow_reserved = { "loopback" }
  config.helo = "tester.test"
  config.timeouts = config.timeouts or { connect = 2, greeting = 3, command = 3, tls = 3 }
  local run = engine.new { dns = fake_dns, config = config }
  return run:check_host("127.0.0.1", port)
end

local certs
local function starttls_as(leaf, tls_opts)
  return function(c)
    local o = { server = true, cert = certs.leaf[leaf].chain, key = certs.leaf[leaf].key }
    for k, v in pairs(tls_opts or {}) do o[k] = v end
    local info, code, detail = c:tls_handshake(o, loop.now() + 3)
    if not info then return nil, code, detail end
    return true
  end
end

-- greeting, EHLO, [STARTTLS + handshake + EHLO], [MAIL, RCPT, RSET], QUIT
local function script(o)
  local ehlo = "250-mx.test\r\n250-PIPELINING\r\n" .. (o.tls and "250-STARTTLS\r\n" or "") .. "250 8BITMIME\r\n"
  local s = { o.greeting or "220 mx.test ESMTP test\r\n" }
  if o.only_greeting then
    s[#s + 1] = { expect = "^QUIT" }; s[#s + 1] = "221 bye\r\n"
    return s
  end
  s[#s + 1] = { expect = "^EHLO tester.test" }; s[#s + 1] = ehlo
  if o.tls then
    s[#s + 1] = { expect = "^STARTTLS" }; s[#s + 1] = "220 2.0.0 ready\r\n"
    s[#s + 1] = starttls_as(o.leaf or "valid", o.tls_opts)
    s[#s + 1] = { expect = "^EHLO" }; s[#s + 1] = "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
  end
  -- (PIPELINING: one write; a 250 is asked again one command at a time,
  -- checks/relay.lua)
  for _ = 1, o.rcpt and (o.rcpt:match("^2") and 2 or 1) or 0 do
    s[#s + 1] = { expect = "^MAIL FROM:<probe@sender.test>" }; s[#s + 1] = "250 2.1.0 Ok\r\n"
    s[#s + 1] = { expect = "^RCPT TO:<someone@external.test>" }; s[#s + 1] = o.rcpt
    s[#s + 1] = { expect = "^RSET" }; s[#s + 1] = "250 2.0.0 Ok\r\n"
  end
  s[#s + 1] = { expect = "^QUIT" }; s[#s + 1] = "221 2.0.0 Bye\r\n"
  return s
end

local function run_case(o, config)
  local srv = fake.start(script(o), { lifetime = 10 })
  local result = probe(srv.port, config)
  srv:wait()
  return result, srv
end

describe("seed table: telnet to port 25 (connect and banner)", function()
  it("Connected + 220 ...: server reachable, banner OK", function()
    local r, srv = run_case({ only_greeting = true }, { only = { "banner" } })
    local _, set = codes_of(r)
    assert.is_true(set.CONNECT_OK and set.BANNER_OK, table.concat(codes_of(r), " "))
    assert.same({}, srv.errors)
    assert.equal("ok", r.verdict)
  end)

  it("Connection refused: port 25 closed or service stopped", function()
    local l = assert(net.listen("127.0.0.1", 0, 1))
    local _, port = l:local_addr()
    l:close()
    local r = probe(port, { only = { "banner" } })
    assert.same({ "CONNECT_REFUSED" }, codes_of(r))
    assert.equal("critical", r.verdict)
  end)

  it("Connection timed out: port 25 blocked, test from another network", function()
    -- a listener that never accepts, with its queue full: the next SYN is dropped
    local l = assert(net.listen("127.0.0.1", 0, 1))
    local _, port = l:local_addr()
    local held = {}
    for _ = 1, 4 do
      local s = socket.connect("127.0.0.1", port, { timeout = 0.3 })
      if s then held[#held + 1] = s end
    end
    local r = probe(port, { only = { "banner" }, timeouts = { connect = 0.5 } })
    assert.same({ "CONNECT_ALL_TIMEOUT", "CONNECT_TIMEOUT" }, codes_of(r))
    assert.equal("inconclusive", r.verdict) -- the tester's network may be the cause
    for _, s in ipairs(held) do s:close() end
    l:close()
  end)

  it("220 without hostname: misconfigured banner", function()
    local r = run_case({ greeting = "220 ESMTP ready\r\n", only_greeting = true }, { only = { "banner" } })
    local _, set = codes_of(r)
    assert.is_true(set.BANNER_NO_HOSTNAME, table.concat(codes_of(r), " "))
    assert.equal("warning", r.verdict)
  end)
end)

describe("seed table: the RCPT TO reply to an external domain", function()
  local rows = {
    { "550 5.7.1 Relaying denied\r\n", "RELAY_DENIED", "ok", "server properly configured" },
    { "250 2.1.5 Ok\r\n", "RELAY_OPEN", "critical", "open relay detected" },
    { "450 4.2.0 Greylisted, try again\r\n", "RELAY_DEFERRED", "ok", "active greylisting, not an open relay" },
    { "451 4.7.1 Try again later\r\n", "RELAY_DEFERRED", "ok", "active greylisting, not an open relay" },
    { "554 5.7.0 Blocked by policy\r\n", "RELAY_REJECTED", "ok", "rejected for another reason" },
    -- Postfix's reject_unauth_destination: 554 with 5.7.1 Relay access denied
    { "554 5.7.1 <someone@external.test>: Relay access denied\r\n", "RELAY_DENIED", "ok", "Postfix denies relaying with 554 5.7.1" },
  }
  for _, row in ipairs(rows) do
    it(("%s-> %s (%s)"):format(row[1]:gsub("\r\n", " "), row[2], row[4]), function()
      local r, srv = run_case({ rcpt = row[1] }, {
        only = { "relay" }, options = { relay = { from = "probe@sender.test", to = "someone@external.test" } },
      })
      local _, set = codes_of(r)
      assert.is_true(set[row[2]], table.concat(codes_of(r), " "))
      assert.equal(row[3], r.verdict)
      assert.same({}, srv.errors)
      -- never DATA
      for _, line in ipairs(srv.received[1] or {}) do assert.not_matches("^DATA", line) end
    end)
  end
end)

describe("seed tables: TLS version and certificate verification", function()
  setup(function() certs = make_certs() end)
  teardown(function() if certs then certs.cleanup() end end)

  local versions = {
    { "TLSv1.3", "TLS_VERSION_13", "ok", "optimal" },
    { "TLSv1.2", "TLS_VERSION_12", "ok", "acceptable" },
    { "TLSv1.1", "TLS_VERSION_DEPRECATED", "warning", "deprecated (RFC 8996)" },
    { "TLSv1", "TLS_VERSION_DEPRECATED", "warning", "deprecated (RFC 8996)" },
  }
  for _, v in ipairs(versions) do
    it(("New, %s -> %s (%s)"):format(v[1], v[2], v[4]), function()
      local r, srv = run_case({ tls = true, tls_opts = { min = v[1], max = v[1], security_level = 0 } },
                              { only = { "starttls" }, ca_file = certs.ca })
      local _, set = codes_of(r)
      assert.is_true(set[v[2]], table.concat(codes_of(r), " ") .. " " .. table.concat(srv.errors, "; "))
      assert.equal(v[1], r.servers[1].facts.starttls.version)
      assert.equal(v[3], r.verdict)
    end)
  end

  local chains = {
    { "valid", "CERT_OK", "ok", "verify return:1 at each level: chain valid" },
    -- expired like the others: opportunistic senders still deliver encrypted, the
    -- verifying ones refuse every defect alike (SENDERS_STRICT_FAIL decides)
    { "expired", "CERT_EXPIRED", "warning", "certificate has expired" },
    { "wrong", "CERT_NAME_MISMATCH", "warning", "CN/SAN does not match the MX host name" },
    { "self", "CERT_SELF_SIGNED", "warning", "self-signed" },
  }
  for _, c in ipairs(chains) do
    it(("%s certificate -> %s (%s)"):format(c[1], c[2], c[4]), function()
      local r = run_case({ tls = true, leaf = c[1] }, { only = { "certificate" }, ca_file = certs.ca })
      local _, set = codes_of(r)
      assert.is_true(set[c[2]], table.concat(codes_of(r), " "))
      assert.equal(c[3], r.verdict)
    end)
  end

  it("a chain to a CA the tester does not trust -> CERT_UNTRUSTED, still encrypted", function()
    local r = run_case({ tls = true, leaf = "valid" }, { only = { "certificate" } }) -- system store only
    local _, set = codes_of(r)
    assert.is_true(set.CERT_UNTRUSTED, table.concat(codes_of(r), " "))
    assert.is_true(set.TLS_VERSION_13)
    assert.matches("still encrypts", r.servers[1].findings[#r.servers[1].findings].message ~= nil and
      (function() for _, f in ipairs(r.servers[1].findings) do if f.code == "CERT_UNTRUSTED" then return f.message end end end)())
  end)
end)
