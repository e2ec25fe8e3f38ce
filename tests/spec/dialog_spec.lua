-- The SMTP dialog verbs (mxprobe.smtp.dialog) and the reply classifier
-- (mxprobe.smtp.reply), against scripted servers on loopback: replies stay
-- matched to their commands when a server sends a second greeting or
-- answers ahead of the dialog (issue 16 item 2); an overlong line is
-- reported and read past (issue 12 item 4); the STARTTLS payload travels in
-- one write; tls_probe does connect..certificate in one call.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local session = require "mxprobe.smtp.session"
local dialog = require "mxprobe.smtp.dialog"
local reply = require "mxprobe.smtp.reply"
local fake = require "tests.helpers.fake_smtp"
local fake_dns = require "tests.helpers.fake_resolver"

local GREETING = "220 mx.test ESMTP\r\n"
local EHLO_REPLY = "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
-- without PIPELINING the relay probe goes one command at a time, and each
-- command's in-step rule is seen (pipelined: tests/spec/relay_pipeline_spec.lua)
local EHLO_NOPIPE = "250-mx.test\r\n250 8BITMIME\r\n"

local function open(srv)
  return assert(session.open(srv.ip, srv.port, { timeouts = { greeting = 3, command = 3, tls = 3 } }))
end

local function codes_of(result)
  local set, list = {}, {}
  for _, s in ipairs(result.servers) do
    for _, f in ipairs(s.findings) do set[f.code] = f end
  end
  for c in pairs(set) do list[#list + 1] = c end
  table.sort(list)
  return set, table.concat(list, " ")
end

local function run_case(script, opts)
  opts = opts or {}
  local srv = fake.start(script, { lifetime = 10, connections = opts.connections })
  local run = engine.new { dns = fake_dns, config = {
    only = opts.only, allow_reserved = { "loopback" }, helo = "tester.test", port = srv.port, families = { 4 },
    options = { relay = { from = "probe@sender.test", to = "someone@external.test" } },
    timeouts = { connect = 2, greeting = 3, command = 3, tls = 3 },
  } }
  local result = opts.domain and run:check_domain(opts.domain) or run:check_host("127.0.0.1", srv.port)
  srv:wait()
  return result, srv
end

local function sent(srv, i)
  return table.concat(srv.received[i or 1] or {}, "\n")
end

describe("reply.classify", function()
  it("decides ok, throttled, temporary, permanent, with the enhanced code", function()
    local function k(code, enhanced) return reply.classify({ code = code, lines = { "x" }, enhanced = enhanced }) end
    assert.equal("ok", k(250).class)
    assert.equal("intermediate", k(354).class)
    assert.equal("throttled", k(421, "4.7.1").class) -- whatever the enhanced code says
    assert.equal("temporary", k(451, "4.7.1").class)
    assert.equal("temporary", k(450).class)
    assert.equal("permanent", k(550, "5.7.1").class)
    assert.equal("invalid", k(199).class)
    local p = k(554, "5.7.1")
    assert.same({ 7, 1 }, { p.subject, p.detail })
  end)

  it("tells a relay refusal by 5.7.1 or the word relay, and names blocklists as whole words", function()
    assert.is_true(reply.relay_refusal({ code = 554, lines = { "5.7.1 <x@y>: Relay access denied" }, enhanced = "5.7.1" }))
    assert.is_true(reply.relay_refusal({ code = 554, lines = { "relaying denied" } }))
    assert.is_false(reply.relay_refusal({ code = 250, lines = { "relay ok" } }))
    assert.is_false(reply.relay_refusal({ code = 554, lines = { "5.7.0 policy" }, enhanced = "5.7.0" }))
    assert.equal("spamhaus", reply.names_blocklist({ code = 554, lines = { "5.7.1 blocked using zen.spamhaus.org" } }) and "spamhaus" or nil)
    assert.truthy(reply.names_blocklist({ code = 554, lines = { "Your IP is listed" } }))
    assert.is_nil(reply.names_blocklist({ code = 554, lines = { "No SMTP service here" } }))
    assert.is_nil(reply.names_blocklist({ code = 554, lines = { "verbless tubercle" } }))
  end)
end)

describe("dialog verbs", function()
  it("greet, ehlo, mail, rcpt, rset, quit return the parsed replies", function()
    local srv = fake.start({ GREETING, { expect = "^EHLO t%.test$" }, EHLO_REPLY,
      { expect = "^MAIL FROM:<a@b%.test>$" }, "250 2.1.0 Ok\r\n",
      { expect = "^RCPT TO:<c@d%.test>$" }, "554 5.7.1 Relay access denied\r\n",
      { expect = "^RSET$" }, "250 2.0.0 Ok\r\n", { expect = "^QUIT$" }, "221 2.0.0 Bye\r\n" })
    local s = open(srv)
    local g = assert(dialog.greet(s))
    assert.same({ 220, "ok" }, { g.code, g.class })
    local e, info = dialog.ehlo(s, "t.test")
    assert.equal(250, e.code)
    assert.equal("EHLO", info.verb)
    assert.is_true(info.extensions.keywords.PIPELINING ~= nil)
    assert.equal("ok", dialog.mail(s, "a@b.test").class)
    local r = dialog.rcpt(s, "c@d.test")
    assert.same({ 554, "5.7.1", "permanent" }, { r.code, r.enhanced, r.class })
    assert.is_number(r.seconds)
    assert.equal(250, dialog.rset(s).code)
    assert.equal(221, dialog.quit(s).code)
    assert.is_true(s.closed)
    srv:wait()
    assert.same({}, srv.errors)
    assert.is_nil(s.events)
  end)

  it("ehlo falls back to HELO only when asked, never after 421", function()
    local srv = fake.start({ GREETING, { expect = "^EHLO" }, "502 5.5.2 no\r\n", { expect = "^HELO t%.test" }, "250 mx.test\r\n" })
    local s = open(srv)
    dialog.greet(s)
    local h, info = dialog.ehlo(s, "t.test", { fallback = true })
    assert.same({ 250, "HELO", 502 }, { h.code, info.verb, info.ehlo.code })
    s:close(); srv:stop()
    srv = fake.start({ GREETING, { expect = "^EHLO" }, "421 4.7.0 busy\r\n", { read = true } })
    s = open(srv)
    dialog.greet(s)
    local r, i2 = dialog.ehlo(s, "t.test", { fallback = true })
    assert.same({ 421, "throttled", "EHLO" }, { r.code, r.class, i2.verb })
    s:close(); srv:stop()
    assert.not_matches("HELO", sent(srv))
  end)

  it("starttls writes the payload in the same write as STARTTLS", function()
    local got
    local srv = fake.start({ GREETING, { expect = "^EHLO" }, "250-mx.test\r\n250 STARTTLS\r\n",
      { expect = "^STARTTLS$" },
      function(c)
        -- the payload came in the same segment: it is already buffered after
        -- the STARTTLS line was read, without another read
        got = c:raw():take_buffered()
        c:send("454 4.7.0 TLS not available\r\n")
      end, { read = true } })
    local s = open(srv)
    dialog.greet(s)
    dialog.ehlo(s, "t.test")
    local r, tls = dialog.starttls(s, { payload = "RCPT TO:<x@y.test>\r\n" })
    assert.equal(454, r.code)
    assert.is_nil(tls)
    assert.equal("RCPT TO:<x@y.test>\r\n", got)
    s:close(); srv:stop()
  end)

  it("starttls rejects unknown options", function()
    assert.has_error(function() dialog.starttls({}, { snii = "x" }) end,
      "bad argument #2 to 'starttls' (unknown option 'snii')")
  end)
end)

describe("replies stay with their commands", function()
  it("a second greeting in the same write is noted and dropped; EHLO gets its own reply", function()
    local srv = fake.start({ "220 proxy.test ESMTP proxy\r\n220 mx.test ESMTP\r\n", { expect = "^EHLO" }, EHLO_REPLY,
      { read = true } })
    local s = open(srv)
    loop.sleep(0.1) -- both greetings are here before EHLO is sent
    assert.equal(220, dialog.greet(s).code)
    local e, info = dialog.ehlo(s, "t.test")
    assert.same({ 250, "EHLO" }, { e.code, info.verb })
    assert.equal(1, #s.events)
    assert.equal("SMTP_UNSOLICITED_REPLY", s.events[1].code)
    assert.equal("another greeting", s.events[1].evidence.what)
    assert.is_nil(s.out_of_step)
    s:close(); srv:stop()
  end)

  it("a second greeting that comes after EHLO was sent is skipped, not taken as EHLO's reply", function()
    local srv = fake.start({ "220 proxy.test ESMTP proxy\r\n", { expect = "^EHLO" }, "220 mx.test ESMTP\r\n", EHLO_REPLY,
      { read = true } })
    local s = open(srv)
    dialog.greet(s)
    local e = dialog.ehlo(s, "t.test")
    assert.equal(250, e.code)
    assert.equal("another greeting", s.events[1].evidence.what)
    s:close(); srv:stop()
  end)

  it("a reply pushed before RCPT was sent is never taken as RCPT's reply", function()
    local srv = fake.start({ GREETING, { expect = "^EHLO" }, EHLO_REPLY,
      { expect = "^MAIL" }, "250 2.1.0 Ok\r\n554 5.7.1 early\r\n", { read = true }, "250 2.1.5 Ok\r\n", { read = true } })
    local s = open(srv)
    dialog.greet(s)
    dialog.ehlo(s, "t.test")
    assert.equal(250, dialog.mail(s, "a@b.test").code)
    loop.sleep(0.1)
    local r, code, detail = dialog.rcpt(s, "c@d.test")
    assert.is_nil(r)
    assert.equal("unsolicited", code)
    assert.matches("554 5.7.1 early", detail, 1, true)
    assert.matches("before RCPT was sent", detail, 1, true)
    -- out of step: nothing else is paired either
    assert.equal("unsolicited", select(2, dialog.rset(s)))
    s:close(); srv:stop()
    assert.not_matches("RCPT", sent(srv))
  end)

  it("engine: a double greeting no longer turns a 554 to RCPT into RELAY_OPEN", function()
    -- before the fix every reply was one step late: EHLO read the second
    -- greeting, HELO read EHLO's 250, MAIL HELO's, RCPT MAIL's 250: "open relay"
    local r, srv = run_case({ "220 proxy.test ESMTP\r\n220 mx.test ESMTP\r\n", { expect = "^EHLO" }, EHLO_REPLY,
      { expect = "^MAIL" }, "250 2.1.0 Ok\r\n", { expect = "^RCPT" }, "554 5.7.1 Relay access denied\r\n",
      { expect = "^RSET" }, "250 Ok\r\n", { read = true }, "221 Bye\r\n" }, { only = { "relay" } })
    local set, list = codes_of(r)
    assert.is_nil(set.RELAY_OPEN, list)
    assert.truthy(set.RELAY_DENIED, list)
    assert.truthy(set.SMTP_UNSOLICITED_REPLY, list)
    assert.equal("warning", set.SMTP_UNSOLICITED_REPLY.severity)
    assert.matches("another greeting before EHLO", set.SMTP_UNSOLICITED_REPLY.message, 1, true)
    assert.same({}, srv.errors)
  end)

  it("a 421 that comes before a command is the end of the session, not a reply out of step", function()
    -- Postfix under stress (smtpd_hard_error_limit = ${stress?1}{20}) answers
    -- the first refused RCPT, then says 421 and closes: RFC 5321 3.8 allows
    -- a 421 "asynchronously from command receipt"
    local srv = fake.start({ GREETING, { expect = "^EHLO" }, EHLO_REPLY, { expect = "^MAIL" }, "250 2.1.0 Ok\r\n",
      { expect = "^RCPT" }, "550 5.7.1 <x@y.test>: Relay access denied\r\n421 4.7.0 mx.test Error: too many errors\r\n",
      { close = true } })
    local s = open(srv)
    dialog.greet(s)
    dialog.ehlo(s, "t.test")
    dialog.mail(s, "a@b.test")
    assert.equal(550, dialog.rcpt(s, "x@y.test").code)
    loop.sleep(0.1)
    local r, code, detail = dialog.rcpt(s, "postmaster@b.test")
    assert.is_nil(r)
    assert.equal("closed", code)
    assert.matches("the server ended the session (421 4.7.0 mx.test Error: too many errors) before RCPT", detail, 1, true)
    assert.same({}, s.events or {}) -- no SMTP_UNSOLICITED_REPLY
    assert.equal("closed", select(2, dialog.rset(s)))
    assert.equal("closed", select(2, dialog.quit(s)))
    srv:stop()
    local _, n = sent(srv):gsub("RCPT", "")
    assert.equal(1, n)
    assert.not_matches("QUIT", sent(srv))
  end)

  it("engine: the relay probe against a server that says 421 after refusing: RELAY_DENIED, no protocol warning", function()
    local r = run_case({ GREETING, { expect = "^EHLO" }, EHLO_NOPIPE,
      { expect = "^MAIL" }, "250 2.1.0 Ok\r\n",
      { expect = "^RCPT" }, "550 5.7.1 <someone@external.test>: Relay access denied\r\n421 4.7.0 mx.test Error: too many errors\r\n",
      { close = true } }, { only = { "relay" }, domain = "site.test" })
    local set, list = codes_of(r)
    assert.truthy(set.RELAY_DENIED, list)
    assert.is_nil(set.SMTP_UNSOLICITED_REPLY, list)
    assert.equal("ok", r.verdict)
    local lr = r.servers[1].facts.relay.local_rcpt
    assert.matches("ended the session %(421", lr.error)
  end)

  it("engine: an early 554 before RCPT makes the relay probe inconclusive, never open", function()
    local r, srv = run_case({ GREETING, { expect = "^EHLO" }, EHLO_NOPIPE,
      { expect = "^MAIL" }, "250 2.1.0 Ok\r\n554 5.7.1 early\r\n",
      { read = true }, "250 2.1.5 Ok\r\n", { read = true }, "221 Bye\r\n" }, { only = { "relay" } })
    local set, list = codes_of(r)
    assert.is_nil(set.RELAY_OPEN, list)
    assert.truthy(set.RELAY_INCONCLUSIVE, list)
    assert.truthy(set.SMTP_UNSOLICITED_REPLY, list)
    assert.matches("before RCPT was sent", set.RELAY_INCONCLUSIVE.message, 1, true)
    assert.not_matches("RCPT", sent(srv))
  end)
end)

describe("overlong lines", function()
  it("a 600 KiB greeting line is reported with its length and the dialog goes on", function()
    local long = "220 mx.test " .. ("x"):rep(600 * 1024) .. "\r\n"
    local r, srv = run_case({ long, { expect = "^EHLO" }, EHLO_REPLY,
      { expect = "^MAIL" }, "250 Ok\r\n", { expect = "^RCPT" }, "550 5.7.1 Relay access denied\r\n",
      { expect = "^RSET" }, "250 Ok\r\n", { read = true }, "221 Bye\r\n" }, { only = { "relay" } })
    local set, list = codes_of(r)
    assert.truthy(set.BANNER_OK, list)
    assert.truthy(set.RELAY_DENIED, list)
    local f = assert(set.SMTP_LINE_TOO_LONG, list)
    assert.equal(#long, f.evidence.length)
    assert.matches(("is %d octets long"):format(#long), f.message, 1, true)
    assert.matches("greeting", f.message, 1, true)
    assert.is_true(#r.servers[1].facts.banner.text < 5000)
  end)

  it("a line between 512 and 4096 octets is reported too, without a cut", function()
    local srv = fake.start({ "220 mx.test " .. ("y"):rep(1000) .. "\r\n", { read = true } })
    local s = open(srv)
    local g = dialog.greet(s)
    assert.equal(220, g.code)
    assert.equal(1014, g.longest)
    assert.is_nil(g.cut)
    assert.equal("", s.events[1].evidence.cut)
    s:close(); srv:stop()
  end)

  it("past 1 MiB of discarded bytes the reply is refused, not read forever", function()
    local srv = fake.start({ "220 " .. ("z"):rep(1100 * 1024), { hold = 2 } })
    local s = open(srv)
    local g, code, detail = dialog.greet(s)
    assert.is_nil(g)
    assert.equal("limit", code)
    assert.matches("discarded", detail)
    s:close(); srv:stop()
  end)
end)

describe("messages say what happened", function()
  it("an EHLO reply cut at the line limit says so, and HELO is not blamed", function()
    local lines = {}
    for i = 1, 150 do lines[i] = "250-EXT" .. i .. "\r\n" end
    local r, srv = run_case({ GREETING, { expect = "^EHLO" }, table.concat(lines), { read = true } }, { only = { "ehlo" } })
    local set, list = codes_of(r)
    assert.is_nil(set.EHLO_FAILED, list)
    local f = assert(set.EHLO_UNREADABLE, list)
    assert.matches("EHLO reply exceeded 100 lines", f.message, 1, true)
    assert.not_matches("HELO", sent(srv))
  end)

  it("a 554 greeting that names a blocklist is inconclusive: the tester may be the one refused", function()
    local r = run_case({ "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org\r\n",
      { read = true }, "221 Bye\r\n" }, { only = { "banner" } })
    local set, list = codes_of(r)
    assert.is_nil(set.BANNER_554, list)
    assert.equal("inconclusive", set.BANNER_554_LISTED.severity)
    assert.matches("tester", set.BANNER_554_LISTED.message)
    assert.equal("inconclusive", r.verdict)
    local plain = run_case({ "554 5.3.2 No SMTP service here\r\n", { read = true }, "221 Bye\r\n" }, { only = { "banner" } })
    assert.truthy((codes_of(plain)).BANNER_554)
  end)
end)

describe("relay: RCPT to postmaster of the domain", function()
  local function script(postmaster_reply)
    return { GREETING, { expect = "^EHLO" }, EHLO_REPLY, { expect = "^MAIL" }, "250 Ok\r\n",
      { expect = "^RCPT TO:<someone@external%.test>" }, "554 5.7.1 Relay access denied\r\n",
      { expect = "^RCPT TO:<postmaster@example%.test>$" }, postmaster_reply,
      { expect = "^RSET" }, "250 Ok\r\n", { expect = "^QUIT" }, "221 Bye\r\n" }
  end
  it("451: greylisting active (info); 550: postmaster rejected (warning); 250: nothing to say", function()
    local r, srv = run_case(script("451 4.7.1 Greylisted, try again later\r\n"), { only = { "relay" }, domain = "example.test" })
    local set, list = codes_of(r)
    assert.equal("info", assert(set.RELAY_LOCAL_GREYLISTED, list).severity)
    assert.same({}, srv.errors)
    r = run_case(script("550 5.1.1 <postmaster@example.test>: User unknown\r\n"), { only = { "relay" }, domain = "example.test" })
    set, list = codes_of(r)
    assert.equal("warning", assert(set.RELAY_POSTMASTER_REJECTED, list).severity)
    assert.matches("RFC 5321 section 4.5.1", set.RELAY_POSTMASTER_REJECTED.message, 1, true)
    r, srv = run_case(script("250 2.1.5 Ok\r\n"), { only = { "relay" }, domain = "example.test" })
    set, list = codes_of(r)
    assert.is_nil(set.RELAY_LOCAL_GREYLISTED, list)
    assert.is_nil(set.RELAY_POSTMASTER_REJECTED, list)
    assert.equal(250, r.servers[1].facts.relay.local_rcpt.code)
    assert.not_matches("DATA", sent(srv))
    assert.same({}, srv.errors)
  end)
end)

describe("stage timings", function()
  it("greeting, EHLO, relay dialog are in the facts, in seconds", function()
    local r = run_case({ GREETING, { expect = "^EHLO" }, EHLO_REPLY, { expect = "^MAIL" }, "250 Ok\r\n",
      { expect = "^RCPT" }, "550 5.7.1 no\r\n", { expect = "^RSET" }, "250 Ok\r\n", { read = true }, "221 Bye\r\n" },
      { only = { "relay" } })
    local f = r.servers[1].facts
    -- connect showed 0.0 ms everywhere: the seconds were dropped on success
    assert.is_true(f.connect.seconds > 0, tostring(f.connect.seconds))
    assert.is_true(f.banner.seconds > 0, tostring(f.banner.seconds))
    assert.is_number(f.ehlo.seconds)
    assert.is_number(f.relay.seconds)
    assert.is_true(f.relay.seconds >= 0 and f.relay.seconds < 5)
  end)
end)

describe("dialog.tls_probe", function()
  local certs
  setup(function() certs = require("tests.helpers.certs").make() end)
  teardown(function() if certs then certs.cleanup() end end)

  local function tls_server(n)
    local leaf = certs.leaf.valid
    local step = function(c)
      local ok, code, detail = c:tls_handshake({ server = true, cert = leaf.chain, key = leaf.key }, loop.now() + 3)
      if not ok then return nil, code, detail end
      local line = c:read_line()
      if line and line:match("^QUIT") then c:send("221 2.0.0 Bye\r\n") end
    end
    return fake.start({ GREETING, { expect = "^EHLO" }, "250-mx.test\r\n250 STARTTLS\r\n",
      { expect = "^STARTTLS$" }, "220 2.0.0 Ready\r\n", step }, { connections = n or 1 })
  end

  it("connects, greets, says EHLO, starts TLS with the options and returns the certificate", function()
    local srv = tls_server(2)
    local info, probe = dialog.tls_probe({ address = srv.ip, port = srv.port, host = "mx.test", helo = "t.test",
      ca_file = certs.ca, timeouts = { connect = 2, greeting = 3, command = 3, tls = 3 } },
      { max_version = "TLSv1.2" })
    assert.is_table(info, tostring(probe))
    assert.equal("TLSv1.2", info.protocol)
    assert.equal("done", probe.stage)
    assert.is_true(#info.chain >= 1)
    assert.equal(220, probe.greeting.code)
    local info13 = dialog.tls_probe({ address = srv.ip, port = srv.port, host = "mx.test", helo = "t.test",
      ca_file = certs.ca, timeouts = { connect = 2, greeting = 3, command = 3, tls = 3 } }, { min_version = "TLSv1.3" })
    assert.equal("TLSv1.3", info13.protocol)
    srv:wait()
    assert.same({}, srv.errors)
  end)

  it("takes a check context: its extra session, host, helo, ca_file and time-outs", function()
    local dir = assert(io.popen("mktemp -d /tmp/mxprobe-dialog.XXXXXX")):read("l")
    local f = assert(io.open(dir .. "/tls_enum.lua", "w"))
    f:write([[
local dialog = require "mxprobe.smtp.dialog"
return {
  id = "tls_enum", description = "TLS versions, one probe each", categories = { "tls" },
  scope = "session", requires = { "ehlo" },
  findings = { TLS_ENUM = { severity = "info", message = "{versions}" } },
  run = function(ctx)
    local seen = {}
    for _, v in ipairs { "TLSv1.2", "TLSv1.3" } do
      local info = dialog.tls_probe(ctx, { min_version = v, max_version = v })
      seen[#seen + 1] = info and info.protocol or "-"
    end
    ctx:finding("TLS_ENUM", { versions = seen })
  end,
}
]])
    f:close()
    local srv = tls_server(3)
    local run = engine.new { dns = fake_dns, checks_dirs = { dir }, installed_checks = false, config = {
      only = { "tls_enum" }, allow_reserved = { "loopback" }, helo = "tester.test", port = srv.port, families = { 4 },
      ca_file = certs.ca, timeouts = { connect = 2, greeting = 3, command = 3, tls = 3 } } }
    local r = run:check_domain("example.test") -- MX mx.test: the certificate's name
    os.execute("rm -rf " .. dir)
    srv:stop()
    local set, list = codes_of(r)
    assert.equal("TLSv1.2, TLSv1.3", assert(set.TLS_ENUM, list).message)
  end)

  it("says at which stage it stopped", function()
    local srv = fake.start({ GREETING, { expect = "^EHLO" }, "250 mx.test\r\n", { expect = "^STARTTLS" },
      "502 5.5.1 no TLS here\r\n", { read = true } })
    local info, code, detail, probe = dialog.tls_probe({ address = srv.ip, port = srv.port, host = "mx.test",
      timeouts = { connect = 2, greeting = 3, command = 3, tls = 3 } }, {})
    assert.is_nil(info)
    assert.equal("permanent", code)
    assert.matches("STARTTLS 502", detail, 1, true)
    assert.equal("starttls", probe.stage)
    srv:stop()
  end)
end)

describe("the dialog's documentation", function()
  local ROOT = require("mxprobe.runtime.paths").root
  local function read(p)
    local f = assert(io.open(ROOT .. "/" .. p))
    local s = f:read("a")
    f:close()
    return s
  end

  it("docs/api.md names every function of mxprobe.smtp.dialog and mxprobe.smtp.reply", function()
    local api = read("docs/api.md")
    local missing = {}
    for name, mod in pairs { dialog = dialog, reply = reply } do
      for k, v in pairs(mod) do
        if type(v) == "function" and not api:find(("%s.%s("):format(name, k), 1, true) then
          missing[#missing + 1] = name .. "." .. k
        end
      end
    end
    table.sort(missing)
    assert.same({}, missing)
  end)

  it("docs/writing-checks.md shows a complete check written with the verbs in under 30 lines", function()
    local doc = read("docs/writing-checks.md")
    local block = doc:match("```lua check\n(%-%- my%-checks/null_sender%.lua\n.-)```")
    assert.truthy(block, "the null_sender example is gone")
    local n = select(2, block:gsub("\n", ""))
    assert.is_true(n < 30, n .. " lines")
    assert.matches("dialog.mail(", block, 1, true)
    -- and the VRFY example speaks through the verbs, not raw session calls
    local vrfy = assert(doc:match("```lua check\n(%-%- my%-checks/vrfy%.lua\n.-)```"))
    assert.not_matches("s:command(", vrfy, 1, true)
    assert.not_matches("s:read_reply(", vrfy, 1, true)
    assert.matches("dialog.ehlo(", vrfy, 1, true)
  end)
end)

describe("a 220 to the first command", function()
  it("is the server's answer when no other reply follows (no wait past LATE_GREETING_WAIT)", function()
    local saved = dialog.LATE_GREETING_WAIT
    dialog.LATE_GREETING_WAIT = 0.3
    local srv = fake.start({ GREETING, { expect = "^EHLO" }, "220 odd answer\r\n", { hold = 2 } })
    local s = open(srv)
    dialog.greet(s)
    local t0 = loop.now()
    local r = dialog.ehlo(s, "t.test")
    dialog.LATE_GREETING_WAIT = saved
    assert.equal(220, r.code)
    assert.is_true(loop.now() - t0 < 1.5)
    assert.is_nil(s.events)
    s:close(); srv:stop()
  end)
end)

describe("a greeting past every limit", function()
  it("is BANNER_TOO_LONG with what was exceeded, not 'not an SMTP server'", function()
    local r = run_case({ { repeat_send = "220-mx.test greeting line that never ends\r\n", count = 200 }, { hold = 1 } },
      { only = { "banner" } })
    local set, list = codes_of(r)
    assert.is_nil(set.BANNER_MALFORMED, list)
    assert.matches("over 100 lines", assert(set.BANNER_TOO_LONG, list).message, 1, true)
    local g = run_case({ "\0\255garbage\r\n", { hold = 1 } }, { only = { "banner" } })
    assert.truthy((codes_of(g)).BANNER_MALFORMED) -- bytes that are not SMTP stay malformed
  end)
end)
