-- TLS resumption of the STARTTLS injection probe against the lab's real
-- Postfix (issue 15): good.mx.lab.test on port 25 resumes the main
-- session's TLS session (TLS 1.3 ticket), the same smtpd on port 2525 has
-- no tickets (tls_session_ticket_cipher empty: tests/lab/postfix.sh) and
-- refuses; the verdict is STARTTLS_INJECTION_SAFE either way.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"

local world = dofile("tests/lab/world.lua")
local state = os.getenv("MXLAB_STATE") or world.state_dir

local function probe(port)
  local run = engine.new {
    config = {
      resolvers = { world.resolver }, ca_file = state .. "/ca/ca.pem", allow_reserved = { "documentation" },
      timeouts = { connect = 5, greeting = 10, command = 10, tls = 10, dns = 3 },
    },
  }
  local t = loop.spawn(function() return run:check_host("good.mx.lab.test", port) end)
  local r = assert(loop.join(t))
  assert.equal(1, #r.servers)
  return r.servers[1]
end

local function codes_of(srv, check)
  local out = {}
  for _, f in ipairs(srv.findings) do
    if f.check == check then out[#out + 1] = f.code end
  end
  table.sort(out)
  return out
end

describe("lab: the STARTTLS injection probe resumes the main session's TLS session", function()
  local on25, on2525
  setup(function()
    on25, on2525 = probe(25), probe(2525)
  end)

  it("port 25 (Postfix with TLS 1.3 tickets): resumed, and the verdict is unchanged", function()
    assert.same({ "STARTTLS_INJECTION_SAFE" }, codes_of(on25, "starttls_injection"))
    assert.same({ session_offered = true, resumed = true }, on25.facts.starttls_injection)
    -- the main session made a full handshake and the certificate check read it
    assert.is_true(on25.facts.starttls.handshake)
    assert.equal("TLSv1.3", on25.facts.starttls.version)
    assert.same({ "CERT_OK" }, codes_of(on25, "certificate"))
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
    -- the same findings as on port 25, check by check
    local function all(srv)
      local out = {}
      for _, f2 in ipairs(srv.findings) do out[#out + 1] = f2.check .. ":" .. f2.code end
      table.sort(out)
      return out
    end
    assert.same(all(on25), all(on2525))
  end)
end)
