-- The SMTP dialog against the lab (issue 16 item 2, issue 12 items 3, 4,
-- 9, 10): scripted servers that answer ahead of the dialog or send two
-- greetings, a 700 KiB greeting line, a 554 greeting naming a DNSBL, and the
-- real greylisting Postfix, each with the exact codes and the facts.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"

local world = dofile("tests/lab/world.lua")
local state = os.getenv("MXLAB_STATE") or world.state_dir

local DOMAINS = { "double-greeting", "early-reply", "greet-554-listed", "long-greeting", "ehlo-flood",
                  "no-postmaster", "greylist", "good", "starttls-exec" }

local run = engine.new {
  config = {
    resolvers = { world.resolver }, ca_file = state .. "/ca/ca.pem", allow_reserved = { "documentation" },
    timeouts = { connect = 5, greeting = 10, command = 10, tls = 10, dns = 3 },
  },
}

local results = {}
do
  local tasks = {}
  for _, d in ipairs(DOMAINS) do
    tasks[d] = loop.spawn(function() return run:check_domain(d .. ".lab.test") end)
  end
  for d, t in pairs(tasks) do results[d] = assert(loop.join(t)) end
end

local function server(d) return results[d].servers[1] end
local function finding(d, code)
  for _, f in ipairs(server(d).findings) do if f.code == code then return f end end
end
local function sent(d)
  local out = {}
  for _, e in ipairs(server(d).transcript) do if e.dir == ">" then out[#out + 1] = e.text end end
  return out
end
local function count(list, prefix)
  local n = 0
  for _, l in ipairs(list) do if l:sub(1, #prefix) == prefix then n = n + 1 end end
  return n
end

describe("lab: replies stay with their commands", function()
  it("double-greeting: the second 220 is a warning, and relaying is denied (550), not open", function()
    local f = assert(finding("double-greeting", "SMTP_UNSOLICITED_REPLY"))
    assert.equal("warning", f.severity)
    assert.equal("another greeting", f.evidence.what)
    assert.equal("EHLO", f.evidence.before)
    local relay = server("double-greeting").facts.relay
    assert.same({ "denied", 550 }, { relay.verdict, relay.code })
    assert.is_nil(finding("double-greeting", "RELAY_OPEN"))
    assert.equal(0, count(sent("double-greeting"), "HELO")) -- EHLO got its own 250
  end)

  it("early-reply: a 554 before RCPT is never RCPT's reply; the probe is inconclusive and RCPT unsent", function()
    local f = assert(finding("early-reply", "SMTP_UNSOLICITED_REPLY"))
    assert.equal("RCPT", f.evidence.before)
    assert.matches("^554 5%.7%.1 early", f.evidence.reply)
    assert.truthy(finding("early-reply", "RELAY_INCONCLUSIVE"))
    assert.is_nil(finding("early-reply", "RELAY_OPEN"))
    assert.is_nil(finding("early-reply", "RELAY_DENIED"))
    -- (the injection probe's pipelined RCPT is another one, on its own session)
    assert.equal(0, count(sent("early-reply"), "RCPT TO:<relay-test@"))
    assert.equal(1, count(sent("early-reply"), "MAIL FROM"))
  end)
end)

describe("lab: overlong lines and blocklisted greetings", function()
  it("long-greeting: the 700 KiB line is reported with its length; STARTTLS and relay are still tested", function()
    local f = assert(finding("long-greeting", "SMTP_LINE_TOO_LONG"))
    assert.equal(#"220 long-greeting.mx.lab.test ESMTP " + 700 * 1024 + 2, f.evidence.length)
    local facts = server("long-greeting").facts
    assert.is_true(facts.banner.ok)
    assert.equal("TLSv1.3", facts.starttls.version)
    assert.equal("denied", facts.relay.verdict)
    assert.is_true(#finding("long-greeting", "BANNER_OK").message < 300)
    assert.is_nil(finding("long-greeting", "BANNER_MALFORMED"))
    assert.is_nil(finding("long-greeting", "BANNER_TOO_LONG"))
  end)

  it("greet-554-listed: inconclusive (the tester may be listed), not BANNER_554", function()
    local f = assert(finding("greet-554-listed", "BANNER_554_LISTED"))
    assert.equal("inconclusive", f.severity)
    assert.equal("spamhaus", f.evidence.word)
    assert.is_nil(finding("greet-554-listed", "BANNER_554"))
    assert.equal("inconclusive", results["greet-554-listed"].verdict)
  end)

  it("ehlo-flood: 'EHLO reply exceeded 100 lines', and no HELO", function()
    local f = assert(finding("ehlo-flood", "EHLO_UNREADABLE"))
    assert.matches("EHLO reply exceeded 100 lines", f.message, 1, true)
    assert.equal(0, count(sent("ehlo-flood"), "HELO"))
  end)
end)

describe("lab: RCPT TO postmaster after the relay probe", function()
  it("greylist (real Postfix): 451 4.7.1 is greylisting, info", function()
    local f = assert(finding("greylist", "RELAY_LOCAL_GREYLISTED"))
    assert.equal("info", f.severity)
    assert.same({ 451, "postmaster@greylist.lab.test" }, { f.evidence.code, f.evidence.to })
    assert.equal("4.7.1", server("greylist").facts.relay.local_rcpt.enhanced)
  end)

  it("no-postmaster (real Postfix): 550 5.1.1 is a warning citing RFC 5321 4.5.1", function()
    local f = assert(finding("no-postmaster", "RELAY_POSTMASTER_REJECTED"))
    assert.equal("warning", f.severity)
    assert.same({ 550, "postmaster@no-postmaster.lab.test" }, { f.evidence.code, f.evidence.to })
    assert.equal("5.1.1", server("no-postmaster").facts.relay.local_rcpt.enhanced)
    assert.equal("denied", server("no-postmaster").facts.relay.verdict) -- the relay probe itself as on good
  end)

  it("good (real Postfix): 250, nothing reported; never DATA; RSET after the RCPTs", function()
    local lr = server("good").facts.relay.local_rcpt
    assert.same({ 250, "postmaster@good.lab.test" }, { lr.code, lr.to })
    assert.is_nil(finding("good", "RELAY_LOCAL_GREYLISTED"))
    assert.is_nil(finding("good", "RELAY_POSTMASTER_REJECTED"))
    local s = sent("good")
    assert.equal(0, count(s, "DATA"))
    local relay_rcpt, local_rcpt, rset
    for i, l in ipairs(s) do
      if l:match("^RCPT TO:<relay%-test@") then relay_rcpt = i end
      if l:match("^RCPT TO:<postmaster@") then local_rcpt = i end
      if l == "RSET" then rset = i end
    end
    assert.same({ relay_rcpt + 1, local_rcpt + 1 }, { local_rcpt, rset })
  end)
end)

describe("lab: stage timings in the facts (seconds)", function()
  it("connect, greeting, EHLO, STARTTLS handshake and relay dialog are measured", function()
    local f = server("good").facts
    for _, t in ipairs { f.connect.seconds, f.banner.seconds, f.ehlo.seconds, f.starttls.handshake_seconds,
                         f.relay.seconds } do
      assert.is_number(t)
      assert.is_true(t > 0 and t < 10, tostring(t))
    end
    assert.is_true(f.starttls.seconds >= f.starttls.handshake_seconds)
  end)
end)

describe("lab: the STARTTLS payload", function()
  it("starttls-exec: the injected RCPT rode with STARTTLS and was executed inside TLS", function()
    assert.truthy(finding("starttls-exec", "STARTTLS_COMMAND_INJECTION"))
    assert.truthy(finding("good", "STARTTLS_INJECTION_SAFE"))
  end)
end)
