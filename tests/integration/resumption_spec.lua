-- The STARTTLS injection probe against the lab's real Postfix and two
-- scripted faults (issue 15).  By default the probe rides on the main
-- STARTTLS: one TLS handshake per address.  What that cannot settle
-- starts over on a clean session.  With carry_injection = false the probe
-- has a session of its own, which resumes the main session's TLS session:
-- good.mx.lab.test on port 25 resumes (TLS 1.3 ticket), the same smtpd on
-- port 2525 has no tickets (tls_session_ticket_cipher empty:
-- tests/lab/postfix.sh) and refuses.  The verdict is the same every way.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"

local world = dofile("tests/lab/world.lua")
local state = os.getenv("MXLAB_STATE") or world.state_dir

local OWN_SESSION = { starttls = { carry_injection = false } }

local function probe(port, host, options)
  local run = engine.new {
    config = {
      resolvers = { world.resolver }, ca_file = state .. "/ca/ca.pem", allow_reserved = { "documentation" },
      timeouts = { connect = 5, greeting = 10, command = 10, tls = 10, dns = 3 },
      options = options,
      -- the TLS offer's sessions would hide the ones counted here
      only = { "starttls", "starttls_injection", "certificate", "relay" },
    },
  }
  local t = loop.spawn(function() return run:check_host(host or "good.mx.lab.test", port) end)
  local r = assert(loop.join(t))
  assert.equal(1, #r.servers)
  return r.servers[1]
end

local function codes_of(srv, check)
  local out = {}
  for _, f in ipairs(srv.findings) do
    if check == nil or f.check == check then out[#out + 1] = (check and "" or f.check .. ":") .. f.code end
  end
  table.sort(out)
  return out
end

-- the transcript's sessions, and in each the lines sent and the handshakes made
local function sessions_of(srv)
  local out = { { sent = {}, handshakes = 0 } }
  for _, e in ipairs(srv.transcript) do
    if e.text == "--- new session ---" then out[#out + 1] = { sent = {}, handshakes = 0 }
    elseif e.dir == ">" then table.insert(out[#out].sent, e.text)
    elseif e.text:find("^TLS established") then out[#out].handshakes = out[#out].handshakes + 1 end
  end
  return out
end

local function find(srv, code)
  for _, f in ipairs(srv.findings) do if f.code == code then return f end end
end

describe("lab: the STARTTLS injection probe rides on the main STARTTLS", function()
  local on25, on2526, sync, exec, exec_own
  setup(function()
    on25, on2526 = probe(25), probe(2526)
    sync = probe(25, "starttls-sync.mx.lab.test")
    exec, exec_own = probe(25, "starttls-exec.mx.lab.test"), probe(25, "starttls-exec.mx.lab.test", OWN_SESSION)
  end)

  it("Postfix on port 25: one session, one handshake, and the verdict of a probe of its own", function()
    assert.same({ "STARTTLS_INJECTION_SAFE" }, codes_of(on25, "starttls_injection"))
    assert.same({ result = "discarded" }, on25.facts.starttls.injection_probe)
    assert.same({ carried = true }, on25.facts.starttls_injection)
    local ss = sessions_of(on25)
    assert.equal(1, #ss)
    assert.equal(1, ss[1].handshakes)
    assert.equal("RCPT TO:<injection-test@mxprobe.invalid>   (pipelined on purpose)", ss[1].sent[3])
    -- the rest of the dialog went on in that TLS session
    assert.same({ "CERT_OK" }, codes_of(on25, "certificate"))
    assert.same({ "RELAY_DENIED" }, codes_of(on25, "relay"))
    assert.is_true(on25.facts.relay.tls)
    -- the same findings as with the probe on a session of its own
    assert.same(codes_of(probe(25, nil, OWN_SESSION)), codes_of(on25))
  end)

  it("Postfix with smtpd_forbid_unauth_pipelining = yes (port 2526) drops the pipelined RCPT: the carried probe stands", function()
    assert.same({ result = "discarded" }, on2526.facts.starttls.injection_probe)
    assert.same({ "STARTTLS_INJECTION_SAFE" }, codes_of(on2526, "starttls_injection"))
    assert.equal(1, #sessions_of(on2526))
  end)

  it("starttls-sync refuses the pipelined STARTTLS (554, close): the dialog starts over clean and is judged there", function()
    assert.same({ result = "refused", code = 554, text = "5.5.0 Error: SMTP protocol synchronization" },
      sync.facts.starttls.injection_probe)
    local ss = sessions_of(sync)
    assert.equal(2, #ss)
    assert.equal(0, ss[1].handshakes)
    assert.equal(1, ss[2].handshakes)
    assert.same({ "EHLO mxprobe.invalid", "STARTTLS", "EHLO mxprobe.invalid" }, { ss[2].sent[1], ss[2].sent[2], ss[2].sent[3] })
    assert.same({ "TLS_VERSION_13" }, codes_of(sync, "starttls"))
    assert.same({ "CERT_OK" }, codes_of(sync, "certificate"))
    assert.same({ "RELAY_DENIED" }, codes_of(sync, "relay"))
    -- a server that will not take a command pipelined after STARTTLS cannot run one inside TLS
    assert.same({ "STARTTLS_INJECTION_SAFE" }, codes_of(sync, "starttls_injection"))
    assert.same({ carried = true }, sync.facts.starttls_injection)
  end)

  it("starttls-exec runs the pipelined RCPT inside TLS: found on the main session, as on a session of its own", function()
    local f = assert(find(exec, "STARTTLS_COMMAND_INJECTION"))
    assert.same({ code = 550, text = "5.7.1 Relay access denied" }, f.evidence)
    assert.same({ result = "executed", code = 550, text = "5.7.1 Relay access denied" }, exec.facts.starttls.injection_probe)
    assert.equal(1, #sessions_of(exec))
    -- our EHLO's reply came second and is the one the starttls check judged
    assert.same({ "TLS_VERSION_13" }, codes_of(exec, "starttls"))
    assert.truthy(exec.facts.starttls.ehlo_after)
    local own = assert(find(exec_own, "STARTTLS_COMMAND_INJECTION"))
    assert.same(f.evidence, own.evidence)
    assert.equal(2, #sessions_of(exec_own))
    assert.same(codes_of(exec_own), codes_of(exec))
  end)
end)

describe("lab: with carry_injection = false the probe's own session resumes the main session's TLS session", function()
  local on25, on2525
  setup(function()
    on25, on2525 = probe(25, nil, OWN_SESSION), probe(2525, nil, OWN_SESSION)
  end)

  it("port 25 (Postfix with TLS 1.3 tickets): resumed, and the verdict is unchanged", function()
    assert.same({ "STARTTLS_INJECTION_SAFE" }, codes_of(on25, "starttls_injection"))
    assert.same({ session_offered = true, resumed = true }, on25.facts.starttls_injection)
    assert.is_nil(on25.facts.starttls.injection_probe)
    -- the main session made a full handshake and the certificate check read it
    assert.is_true(on25.facts.starttls.handshake)
    assert.equal("TLSv1.3", on25.facts.starttls.version)
    assert.same({ "CERT_OK" }, codes_of(on25, "certificate"))
    local ss = sessions_of(on25)
    assert.equal(2, #ss)
    assert.equal("STARTTLS", ss[1].sent[2])
    assert.equal("EHLO mxprobe.invalid", ss[1].sent[3]) -- nothing pipelined on the main session
  end)

  it("port 2525 (the same Postfix without tickets): a full handshake, the same verdict", function()
    assert.same({ "STARTTLS_INJECTION_SAFE" }, codes_of(on2525, "starttls_injection"))
    local f = on2525.facts.starttls_injection
    assert.is_false(f.resumed)
    -- without ticket keys OpenSSL still hands out a (stateful) ticket that
    -- no cache backs: it is offered and refused; a server sending none at
    -- all would leave nothing to offer: both are "not resumed"
    assert.is_boolean(f.session_offered)
    assert.is_true(on2525.facts.starttls.handshake)
    assert.same({ "CERT_OK" }, codes_of(on2525, "certificate"))
    assert.same(codes_of(on25), codes_of(on2525))
  end)
end)
