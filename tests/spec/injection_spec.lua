-- The STARTTLS injection probe carried on the main STARTTLS (issue 15:
-- one TLS handshake per address instead of two): how the replies after
-- it are paired (mxprobe.smtp.injection), and what the starttls check does
-- when the carried attempt settles nothing - it starts over on a clean
-- session, so its findings never rest on the pipelined bytes.
-- Loopback only; the TLS paths are in tests/integration/resumption_spec.lua.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local session = require "mxprobe.smtp.session"
local dialog = require "mxprobe.smtp.dialog"
local injection = require "mxprobe.smtp.injection"
local fake = require "tests.helpers.fake_smtp"
local fake_dns = require "tests.helpers.fake_resolver"

local function find(list, code)
  for _, f in ipairs(list or {}) do if f.code == code then return f end end
end

describe("injection.ehlo_after: which reply answers our EHLO", function()
  local wait0
  setup(function() wait0 = injection.SECOND_WAIT; injection.SECOND_WAIT = 0.3 end)
  teardown(function() injection.SECOND_WAIT = wait0 end)

  local function after(replies)
    local srv = fake.start({ "220 mx.test ESMTP\r\n", { expect = "^EHLO t%.test$" }, replies, { hold = 1 } }, { lifetime = 5 })
    local s = assert(session.open("127.0.0.1", srv.port, { connect_timeout = 2, timeouts = { command = 2 } }))
    assert.equal(220, dialog.greet(s).code)
    local t0 = loop.now()
    local r, verdict, injected = injection.ehlo_after(s, "t.test", loop.now() + 2)
    local took = loop.now() - t0
    s:close()
    srv:stop()
    assert.same({}, srv.errors)
    return r, verdict, injected, took
  end

  it("a 250 first is our EHLO's: the pipelined command was discarded", function()
    local r, verdict, injected, took = after("250-mx.test\r\n250 STARTTLS\r\n")
    assert.equal("discarded", verdict)
    assert.is_nil(injected)
    assert.equal(250, r.code)
    assert.is_true(r.extensions.starttls)
    assert.truthy(took < 0.2) -- no wait for a second reply
  end)

  it("a non-250 and then a 250: the first answered the injected RCPT, the 250 is our EHLO's", function()
    local r, verdict, injected = after("503 5.5.1 Error: need MAIL command\r\n250-mx.test\r\n250 PIPELINING\r\n")
    assert.equal("executed", verdict)
    assert.equal(503, injected.code)
    assert.equal(250, r.code)
    assert.same({ "PIPELINING" }, r.extensions.extensions)
  end)

  it("a non-250 and nothing after it: EHLO's own refusal, nothing concluded", function()
    local r, verdict, injected, took = after("554 5.7.1 go away\r\n")
    assert.is_nil(verdict)
    assert.is_nil(injected)
    assert.equal(554, r.code)
    assert.is_nil(r.extensions)
    assert.truthy(took >= 0.25 and took < 1.5, took)
  end)
end)

describe("the starttls check carrying the injection probe", function()
  local function run_against(script, config_extra, connections)
    local srv = fake.start(script, { lifetime = 8, connections = connections or 2 })
    local config = { allow_reserved = { "loopback" }, families = { 4 }, helo = "t.test",
                     timeouts = { connect = 2, greeting = 2, command = 2, tls = 2, dns = 1 },
                     only = { "starttls", "starttls_injection" } }
    for k, v in pairs(config_extra or {}) do config[k] = v end
    local run = engine.new { dns = fake_dns, config = config, installed_checks = false }
    local r = run:check_host("127.0.0.1", srv.port)
    srv:stop()
    return r.servers[1], srv
  end

  -- connection 1 answers the pipelined STARTTLS as Postfix 3.9 does
  -- (smtpd_forbid_unauth_pipelining); connection 2 refuses TLS outright
  local function refusing_script(seen)
    return {
      "220 mx.test ESMTP\r\n", { expect = "^EHLO" }, "250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
      { expect = "^STARTTLS$" },
      function(c, _, i)
        if i == 1 then
          local line = c:read_line(loop.now() + 2)
          seen[i] = line
          c:send("554 5.5.0 Error: SMTP protocol synchronization\r\n")
          c:close()
          return nil, "closed", "done" -- the script ends here
        end
        -- nothing may follow a plain STARTTLS
        local line, code = c:read_line(loop.now() + 0.3)
        seen[i] = line or code
        c:send("454 4.7.0 TLS not available due to local problem\r\n")
        return true
      end,
      { read = true },
    }
  end

  it("a refused pipelined STARTTLS: the dialog starts over on a clean session and is judged on it", function()
    local seen = {}
    local s = run_against(refusing_script(seen))
    assert.equal("RCPT TO:<injection-test@mxprobe.invalid>", seen[1])
    assert.equal("timeout", seen[2]) -- the second STARTTLS carried nothing
    -- judged on the clean session: its 454, not the 554 to the pipelined one
    local f = assert(find(s.findings, "STARTTLS_REJECTED"))
    assert.equal(454, f.evidence.code)
    assert.same({ result = "refused", code = 554, text = "5.5.0 Error: SMTP protocol synchronization" },
      s.facts.starttls.injection_probe)
    assert.is_nil(s.facts.starttls_injection)
    -- both sessions are in the transcript
    local sessions = 1
    for _, e in ipairs(s.transcript) do if e.text == "--- new session ---" then sessions = sessions + 1 end end
    assert.equal(2, sessions)
  end)

  local function plain_script(seen)
    return {
      "220 mx.test ESMTP\r\n", { expect = "^EHLO" }, "250-mx.test\r\n250 STARTTLS\r\n",
      { expect = "^STARTTLS$" },
      function(c, _, i)
        local line, code = c:read_line(loop.now() + 0.3)
        seen[i] = line or code
        c:send("454 4.7.0 TLS not available\r\n")
        return true
      end,
      { read = true },
    }
  end

  it("carry_injection = false: the main STARTTLS carries nothing", function()
    local seen = {}
    local s = run_against(plain_script(seen), { options = { starttls = { carry_injection = false } } }, 1)
    assert.equal("timeout", seen[1])
    assert.truthy(find(s.findings, "STARTTLS_REJECTED"))
    assert.is_nil(s.facts.starttls.injection_probe)
  end)

  it("with starttls_injection not selected, the main STARTTLS carries nothing", function()
    local seen = {}
    local s = run_against(plain_script(seen), { only = { "starttls" } }, 1)
    assert.equal("timeout", seen[1])
    assert.is_nil(s.facts.starttls.injection_probe)
  end)

  it("a 421 to the pipelined STARTTLS is a throttle: not asked twice", function()
    local s, srv = run_against({
      "220 mx.test ESMTP\r\n", { expect = "^EHLO" }, "250-mx.test\r\n250 STARTTLS\r\n",
      { expect = "^STARTTLS$" }, "421 4.7.0 mx.test closing\r\n", { read = true },
    }, nil, 2)
    assert.truthy(find(s.findings, "STARTTLS_421"))
    assert.equal(1, srv.served)
    assert.is_nil(s.facts.starttls.injection_probe)
  end)
end)
