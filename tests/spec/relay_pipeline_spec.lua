-- The relay probe pipelines (RFC 2920) where the server offers PIPELINING:
-- MAIL, RCPT (relay), RCPT (postmaster), RSET in one write, the replies
-- matched in order; one command at a time otherwise; a relay that looks
-- open is asked again in step; more replies than commands make the probe
-- inconclusive, never open (issue 15).  Scripted servers on loopback.
local engine = require "mxprobe.engine"
local dialog = require "mxprobe.smtp.dialog"
local fake = require "tests.helpers.fake_smtp"
local fake_dns = require "tests.helpers.fake_resolver"

local GREETING = "220 mx.test ESMTP\r\n"
local PIPE = "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
local NOPIPE = "250-mx.test\r\n250 8BITMIME\r\n"

local function run_case(script)
  local srv = fake.start(script, { lifetime = 10 })
  local run = engine.new { dns = fake_dns, config = {
    only = { "relay" }, allow_reserved = { "loopback" }, helo = "tester.test", port = srv.port, families = { 4 },
    options = { relay = { from = "probe@sender.test", to = "someone@external.test" } },
    timeouts = { connect = 2, greeting = 3, command = 3, tls = 3 },
  } }
  local result = run:check_domain("site.test")
  srv:wait()
  local set = {}
  for _, f in ipairs(result.servers[1].findings) do set[f.code] = f end
  return result, srv, set, result.servers[1].facts.relay
end

-- a script step: how many bytes the client had sent beyond the line just read
local function batched(conn, server) server.batched = conn:buffered() end

local function sent(srv) return table.concat(srv.received[1] or {}, "\n") end

describe("relay probe pipelining", function()
  it("PIPELINING offered: the four commands in one write, replies matched in order", function()
    local r, srv, set, fact = run_case({ GREETING, { expect = "^EHLO" }, PIPE,
      { expect = "^MAIL FROM:<probe@sender.test>" }, batched,
      { expect = "^RCPT TO:<someone@external.test>" }, { expect = "^RCPT TO:<postmaster@site.test>" }, { expect = "^RSET" },
      "250 2.1.0 Ok\r\n554 5.7.1 <someone@external.test>: Relay access denied\r\n550 5.1.1 <postmaster@site.test>: no such user\r\n250 2.0.0 Ok\r\n",
      { expect = "^QUIT" }, "221 Bye\r\n" })
    assert.same({}, srv.errors)
    assert.is_true(srv.batched > 0, "RCPT, RCPT and RSET came in the write of MAIL")
    assert.is_true(fact.pipelined)
    assert.truthy(set.RELAY_DENIED)
    assert.equal(554, fact.code)
    -- the third reply went to the postmaster RCPT, not the relay one
    assert.truthy(set.RELAY_POSTMASTER_REJECTED)
    assert.equal(550, fact.local_rcpt.code)
    assert.equal("warning", r.verdict) -- the postmaster refusal, not the relay probe
  end)

  it("no PIPELINING: one command at a time", function()
    local _, srv, set, fact = run_case({ GREETING, { expect = "^EHLO" }, NOPIPE,
      { expect = "^MAIL" }, batched, "250 2.1.0 Ok\r\n",
      { expect = "^RCPT TO:<someone@external.test>" }, "550 5.7.1 Relay access denied\r\n",
      { expect = "^RCPT TO:<postmaster@site.test>" }, "250 2.1.5 Ok\r\n",
      { expect = "^RSET" }, "250 2.0.0 Ok\r\n", { expect = "^QUIT" }, "221 Bye\r\n" })
    assert.same({}, srv.errors)
    assert.equal(0, srv.batched)
    assert.is_false(fact.pipelined)
    assert.truthy(set.RELAY_DENIED)
    assert.is_nil(set.RELAY_POSTMASTER_REJECTED)
  end)

  it("a pipelined 250 to the relay RCPT is asked again in step: the in-step reply decides", function()
    local _, srv, set, fact = run_case({ GREETING, { expect = "^EHLO" }, PIPE,
      { expect = "^MAIL" }, { expect = "^RCPT" }, { expect = "^RCPT" }, { expect = "^RSET" },
      "250 Ok\r\n250 Ok\r\n250 Ok\r\n250 Ok\r\n",
      { expect = "^MAIL" }, batched, "250 Ok\r\n", { expect = "^RCPT TO:<someone@external.test>" }, "550 5.7.1 Relay access denied\r\n",
      { expect = "^RCPT TO:<postmaster" }, "250 Ok\r\n", { expect = "^RSET" }, "250 Ok\r\n",
      { expect = "^QUIT" }, "221 Bye\r\n" })
    assert.same({}, srv.errors)
    assert.equal(0, srv.batched) -- the second transaction went one command at a time
    assert.is_true(fact.confirmed_one_by_one)
    assert.is_nil(set.RELAY_OPEN)
    assert.truthy(set.RELAY_DENIED)
  end)

  it("an open relay is said after the in-step confirmation", function()
    local _, srv, set, fact = run_case({ GREETING, { expect = "^EHLO" }, PIPE,
      { expect = "^MAIL" }, { expect = "^RCPT" }, { expect = "^RCPT" }, { expect = "^RSET" },
      "250 Ok\r\n250 Ok\r\n250 Ok\r\n250 Ok\r\n",
      { expect = "^MAIL" }, "250 Ok\r\n", { expect = "^RCPT" }, "250 2.1.5 Ok\r\n",
      { expect = "^RCPT" }, "250 Ok\r\n", { expect = "^RSET" }, "250 Ok\r\n",
      { expect = "^QUIT" }, "221 Bye\r\n" })
    assert.same({}, srv.errors)
    assert.is_true(fact.confirmed_one_by_one)
    assert.truthy(set.RELAY_OPEN)
    assert.not_matches("DATA", sent(srv))
  end)

  it("more replies than commands: inconclusive, and the extra reply is reported", function()
    -- matched in order, the extra 451 would pass for the relay RCPT's reply
    local _, srv, set = run_case({ GREETING, { expect = "^EHLO" }, PIPE,
      { expect = "^MAIL" }, { expect = "^RCPT" }, { expect = "^RCPT" }, { expect = "^RSET" },
      "250 Ok\r\n451 4.3.0 out of step\r\n250 Ok\r\n250 Ok\r\n250 Ok\r\n",
      { read = true }, "221 Bye\r\n" })
    assert.same({}, srv.errors)
    assert.is_nil(set.RELAY_DEFERRED)
    assert.truthy(set.RELAY_INCONCLUSIVE)
    assert.matches("later replies cannot be matched", set.RELAY_INCONCLUSIVE.message, 1, true)
    assert.truthy(set.SMTP_UNSOLICITED_REPLY)
  end)

  it("a 421 after the pipelined relay refusal: denied, and the closing reply is not judged as the postmaster's", function()
    local _, srv, set, fact = run_case({ GREETING, { expect = "^EHLO" }, PIPE,
      { expect = "^MAIL" }, { expect = "^RCPT" }, { expect = "^RCPT" }, { expect = "^RSET" },
      "250 Ok\r\n550 5.7.1 Relay access denied\r\n421 4.7.0 mx.test Error: too many errors\r\n", { close = true } })
    assert.same({}, srv.errors)
    assert.truthy(set.RELAY_DENIED)
    assert.is_nil(set.RELAY_POSTMASTER_REJECTED)
    assert.is_nil(set.SMTP_UNSOLICITED_REPLY)
    assert.equal(421, fact.local_rcpt.code)
    assert.equal("throttled", fact.local_rcpt.class)
  end)

  it("dialog.pipeline groups MAIL, RCPT and RSET only", function()
    local s = setmetatable({}, { __index = function() error("must not be reached") end })
    for _, bad in ipairs({ "DATA", "QUIT", "STARTTLS", "EHLO x" }) do
      local ok, err = pcall(dialog.pipeline, s, { "MAIL FROM:<a@b>", bad })
      assert.is_false(ok)
      assert.matches("cannot be pipelined", err, 1, true)
    end
    assert.has_error(function() dialog.pipeline(s, {}) end)
    assert.has_error(function() dialog.pipeline(s, { "RCPT TO:<a@b>\r\nDATA" }) end)
  end)
end)
