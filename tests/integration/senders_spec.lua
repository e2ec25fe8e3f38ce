-- The sender matrix in the lab, the default verdict from it (certificate
-- defects that every verifying sender treats alike get one severity, and
-- the failing kinds of sender decide: opted-in mechanism or opportunistic:
-- critical; only the strict client: warning), and
-- examples/policies/sender-matrix.lua, which overrides that default.
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

local function finding(r, code)
  for _, f in ipairs(r.findings) do if f.code == code then return f end end
  for _, srv in ipairs(r.servers) do
    for _, f in ipairs(srv.findings) do if f.code == code then return f, srv end end
  end
end

describe("the default verdict from the sender matrix (policy/sender_verdict.lua)", function()
  it("expired, self-signed and wrong-name certificates: one severity, and the same verdict", function()
    for _, d in ipairs({ "expired.lab.test", "self-signed.lab.test", "wrong-name.lab.test" }) do
      assert.equal("warning", base[d].verdict, d)
      assert.equal("SENDERS_STRICT_FAIL", base[d].decided_by.code, d)
    end
    local f = finding(base["expired.lab.test"], "CERT_EXPIRED")
    assert.equal("warning", f.severity)
    assert.equal("critical", f.override.from)
    assert.equal("default", f.override.policy)
    assert.equal("every verifying sender refuses this certificate alike: strict clients do not deliver (the certificate expired on "
      .. os.date("!%Y-%m-%d", os.time() - 30 * 86400) .. "); opportunistic senders deliver encrypted, not authenticated", f.override.why)
    assert.equal("Senders that always verify certificates do not deliver to expired.lab.test (expired.mx.lab.test: the certificate expired on "
      .. os.date("!%Y-%m-%d", os.time() - 30 * 86400) .. "); opportunistic senders still deliver encrypted, not authenticated",
      finding(base["expired.lab.test"], "SENDERS_STRICT_FAIL").message)
  end)

  it("failing a mechanism the domain opted into is critical, and the reason names the senders", function()
    local r = base["dane-mismatch.sec.lab.test"]
    assert.equal("critical", r.verdict)
    assert.equal("SENDERS_DANE_FAIL", r.decided_by.code)
    assert.matches("^DANE senders do not deliver to dane%-mismatch.sec.lab.test %(dane%-mismatch.mx.sec.lab.test: no TLSA record matches%)",
      finding(r, "SENDERS_DANE_FAIL").message)
    r = base["other-mx.sts.lab.test"]
    assert.equal("critical", r.verdict)
    assert.matches("^MTA%-STS senders do not deliver to other%-mx.sts.lab.test %(good.mx.lab.test: the MX is not in the policy %(policy enforce%)%)",
      finding(r, "SENDERS_MTA_STS_FAIL").message)
  end)

  it("DANE-EE under an expired certificate: DANE senders deliver; only the strict client fails (a warning)", function()
    local r = base["dane-expired.sec.lab.test"]
    assert.equal("authenticated", r.senders.domain.dane.outcome)
    assert.equal("warning", r.verdict)
    assert.equal("warning", finding(r, "CERT_EXPIRED").severity)
    assert.matches("DANE senders deliver encrypted and authenticated", finding(r, "CERT_EXPIRED").override.why, 1, true)
  end)

  it("testing mode: MTA-STS senders deliver; the strict client's failure is the warning", function()
    local r = base["testing.sts.lab.test"]
    assert.equal("encrypted", r.senders.domain.mta_sts.outcome)
    assert.equal("warning", r.verdict)
    assert.is_nil(finding(r, "SENDERS_MTA_STS_FAIL"))
  end)

  it("when it breaks inside the horizon: a warning with the date", function()
    local f = finding(base["expiring.lab.test"], "SENDERS_BREAK_SOON")
    assert.matches("^Strict clients stop delivering to expiring.mx.lab.test on %d%d%d%d%-%d%d%-%d%d %(certificate expiry%), unless something changes$",
      f.message)
    assert.equal("warning", base["expiring.lab.test"].verdict)
  end)

  it("healthy domains stay ok; plaintext-only stays critical (its own finding decides)", function()
    assert.equal("ok", base["good.lab.test"].verdict)
    assert.equal("ok", base["enforce.sts.lab.test"].verdict)
    assert.equal("critical", base["no-starttls.lab.test"].verdict)
    assert.equal("STARTTLS_NOT_OFFERED", base["no-starttls.lab.test"].decided_by.code)
    assert.equal("plaintext", base["no-starttls.lab.test"].senders.domain.opportunistic.outcome)
  end)
end)

describe("examples/policies/sender-matrix.lua (overriding the default)", function()
  it("the strict client failing is critical there", function()
    assert.equal("critical", matrix["expired.lab.test"].verdict)
    assert.equal("SENDERS_STRICT_FAIL", matrix["expired.lab.test"].decided_by.code)
    assert.equal("warning", matrix["expired.lab.test"].decided_by.override.from)
    assert.equal("critical", matrix["self-signed.lab.test"].verdict)
  end)

  it("every MX must authenticate for MTA-STS senders; healthy domains stay ok", function()
    assert.equal("ok", matrix["good.lab.test"].verdict)
    assert.equal("ok", matrix["enforce.sts.lab.test"].verdict)
    assert.same({ "MTA-STS senders do not deliver to good.mx.lab.test (the MX is not in the policy (policy enforce))" },
      messages(matrix["other-mx.sts.lab.test"]))
    -- testing mode: they deliver, unauthenticated, and the rule says so
    assert.same({ "MTA-STS senders deliver without authentication to self-signed.mx.lab.test (testing mode: would fail "
      .. "(the certificate chain does not verify), delivers as opportunistic)" }, messages(matrix["testing.sts.lab.test"]))
  end)
end)
