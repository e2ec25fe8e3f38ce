-- The sender matrix in the lab, and examples/policies/sender-matrix.lua,
-- which takes the verdict from it: certificate defects that every
-- verifying sender treats alike get one severity, and the failing kinds of
-- sender decide (opted-in mechanism or opportunistic: critical; only the
-- strict client: warning).
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"

local world = dofile("tests/lab/world.lua")
local state = os.getenv("MXLAB_STATE") or world.state_dir
local ROOT = require("mxprobe.runtime.paths").root

local DOMAINS = { "good.lab.test", "expired.lab.test", "self-signed.lab.test", "wrong-name.lab.test",
                  "expiring.lab.test", "no-starttls.lab.test", "bad-secondary.lab.test",
                  "dane-mismatch.sec.lab.test", "dane-expired.sec.lab.test", "other-mx.sts.lab.test",
                  "testing.sts.lab.test", "enforce.sts.lab.test" }

local function check_all(policy)
  local run = engine.new { policy = policy, config = {
    resolvers = { world.resolver }, ca_file = state .. "/ca/ca.pem", allow_reserved = { "documentation" },
    timeouts = { connect = 5, greeting = 10, command = 10, tls = 10, dns = 3 } } }
  local tasks, out = {}, {}
  for _, d in ipairs(DOMAINS) do tasks[d] = loop.spawn(function() return run:check_domain(d) end) end
  for d, t in pairs(tasks) do out[d] = assert(loop.join(t)) end
  return out
end

local base = check_all(nil)
local matrix = check_all(ROOT .. "/examples/policies/sender-matrix.lua")

local function messages(r)
  local out = {}
  for _, f in ipairs(r.findings) do if f.code == "POLICY_RULE" then out[#out + 1] = f.message end end
  table.sort(out)
  return out
end

describe("the sender matrix in the lab", function()
  it("every result carries it; the domain row follows preference and fallback", function()
    local r = base["bad-secondary.lab.test"]
    assert.same({ "good.mx.lab.test", "self-signed.mx.lab.test" }, { r.senders.mx[1].host, r.senders.mx[2].host })
    assert.equal("no_delivery", r.senders.mx[2].addresses[1].strict.outcome)
    assert.equal("authenticated", r.senders.domain.strict.outcome)
    assert.equal("good.mx.lab.test", r.senders.domain.strict.via)
    local e = base["expired.lab.test"].senders.domain
    assert.equal("encrypted", e.opportunistic.outcome)
    assert.equal("no_delivery", e.strict.outcome)
    assert.matches("the certificate expired on ", e.strict.reason, 1, true)
    local n = base["no-starttls.lab.test"].senders.domain
    assert.equal("plaintext", n.opportunistic.outcome)
  end)

  it("when it breaks: the expiring certificate's date for the strict client", function()
    local b = base["expiring.lab.test"].senders.breaks
    assert.equal(1, #b)
    assert.equal("strict", b[1].kind); assert.equal("expiring.mx.lab.test", b[1].host)
    local f = io.popen("date -u +%F -d \"$(openssl x509 -in " .. state .. "/certs/expiring.crt -noout -enddate | cut -d= -f2)\"")
    local want = f:read("l"); f:close()
    assert.equal(want, b[1].date)
    assert.equal("certificate expiry", b[1].reason)
  end)
end)

describe("examples/policies/sender-matrix.lua", function()
  it("expired and self-signed certificates get the same verdict: every verifying sender refuses both", function()
    assert.equal("critical", base["expired.lab.test"].verdict)
    assert.equal("warning", base["self-signed.lab.test"].verdict)
    assert.equal("warning", matrix["expired.lab.test"].verdict)
    assert.equal("warning", matrix["self-signed.lab.test"].verdict)
    assert.equal("warning", matrix["wrong-name.lab.test"].verdict)
    assert.same({ "Strict clients do not deliver to expired.lab.test (expired.mx.lab.test: the certificate expired on "
      .. os.date("!%Y-%m-%d", os.time() - 30 * 86400) .. ")" }, messages(matrix["expired.lab.test"]))
    local f = matrix["expired.lab.test"].servers[1].findings
    for _, x in ipairs(f) do
      if x.code == "CERT_EXPIRED" then
        assert.equal("warning", x.severity); assert.equal("critical", x.override.from)
      end
    end
  end)

  it("failing a mechanism the domain opted into is critical", function()
    assert.equal("critical", matrix["dane-mismatch.sec.lab.test"].verdict)
    assert.same({ "DANE senders do not deliver to dane-mismatch.sec.lab.test (dane-mismatch.mx.sec.lab.test: no TLSA record matches)" },
      messages(matrix["dane-mismatch.sec.lab.test"]))
    assert.equal("critical", matrix["other-mx.sts.lab.test"].verdict)
    assert.same({ "MTA-STS senders do not deliver to other-mx.sts.lab.test (good.mx.lab.test: the MX is not in the policy (policy enforce))" },
      messages(matrix["other-mx.sts.lab.test"]))
  end)

  it("DANE-EE under an expired certificate: DANE senders deliver; the strict client does not (a warning)", function()
    local r = matrix["dane-expired.sec.lab.test"]
    assert.equal("authenticated", r.senders.domain.dane.outcome)
    assert.equal("warning", r.verdict)
  end)

  it("testing mode: MTA-STS senders deliver; the strict client's failure is the warning", function()
    local r = matrix["testing.sts.lab.test"]
    assert.equal("encrypted", r.senders.domain.mta_sts.outcome)
    assert.equal("warning", r.verdict)
  end)

  it("when it breaks inside the horizon: a warning with the date", function()
    local msgs = messages(matrix["expiring.lab.test"])
    assert.equal(1, #msgs)
    assert.matches("^Strict clients stop delivering to expiring.mx.lab.test on %d%d%d%d%-%d%d%-%d%d %(certificate expiry%)$", msgs[1])
    assert.equal("warning", matrix["expiring.lab.test"].verdict)
  end)

  it("healthy domains stay ok; plaintext-only stays critical (its own finding)", function()
    assert.equal("ok", matrix["good.lab.test"].verdict)
    assert.equal("ok", matrix["enforce.sts.lab.test"].verdict)
    assert.equal("critical", matrix["no-starttls.lab.test"].verdict)
  end)
end)
