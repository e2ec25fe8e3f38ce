-- Every lab domain through the stock checks, inside the lab's namespace
-- (tests/run-integration), asserting the exact diagnostic codes and the
-- verdict of tests/integration/expected.lua.  All domains are checked
-- concurrently, once, before the assertions: the run takes about as long
-- as the slowest lab server (the greeting deadline, 40 s, for the drip).
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"

local world = dofile("tests/lab/world.lua")
local expected = dofile("tests/integration/expected.lua")
local state = os.getenv("MXLAB_STATE") or world.state_dir

local function codes_of(result)
  local set, list = {}, {}
  local function add(fs) for _, f in ipairs(fs) do set[f.code] = true end end
  add(result.dns.findings); add(result.findings)
  for _, s in ipairs(result.servers) do add(s.findings) end
  for c in pairs(set) do list[#list + 1] = c end
  table.sort(list)
  return list
end

local run = engine.new {
  config = {
    resolvers = { world.resolver }, ca_file = state .. "/ca/ca.pem", allow_reserved = { "documentation" },
    timeouts = { connect = 5, greeting = 40, command = 10, tls = 10, dns = 3 },
  },
}

local results, t0 = {}, loop.now()
do
  local tasks = {}
  for _, d in ipairs(world.domains) do
    tasks[d.name] = loop.spawn(function() return run:check_domain(d.name) end)
  end
  for name, t in pairs(tasks) do
    local r, code, detail = loop.join(t)
    results[name] = r or { error = tostring(code) .. ": " .. tostring(detail) }
  end
end
local elapsed = loop.now() - t0

describe("the lab, domain by domain", function()
  for _, d in ipairs(world.domains) do
    it(("%s (%s) -> %s"):format(d.name, d.problem, expected[d.name] and expected[d.name].verdict or "?"), function()
      local exp = assert(expected[d.name], "no expectation for " .. d.name)
      local r = results[d.name]
      assert.is_nil(r.error)
      assert.same(exp.codes, codes_of(r))
      assert.equal(exp.verdict, r.verdict)
      assert.equal(({ ok = 0, warning = 1, critical = 2, inconclusive = 3 })[exp.verdict], r.exit_code)
    end)
  end

  it("has an expectation for every lab domain and no other", function()
    for name in pairs(expected) do assert.truthy(world.by_name[name], name .. " is not a lab domain") end
    for _, d in ipairs(world.domains) do assert.truthy(expected[d.name], d.name .. " has no expectation") end
  end)

  it("checked all domains concurrently (about the slowest server, not the sum)", function()
    -- the drip ends at the 40 s greeting deadline; serially this would take minutes
    assert.is_true(elapsed < 55, ("took %.1f s"):format(elapsed))
  end)
end)

describe("the lab, facts worth a closer look", function()
  it("two-mx: both MX tested, in preference order, each with its own score", function()
    local r = results["two-mx.lab.test"]
    assert.equal(2, #r.servers)
    assert.same({ 10, 20 }, { r.dns.mx[1].preference, r.dns.mx[2].preference })
    for _, s in ipairs(r.servers) do
      assert.equal(100, s.score); assert.equal("A", s.grade)
      assert.equal("TLSv1.3", s.facts.starttls.version)
      assert.equal("denied", s.facts.relay.verdict)
    end
  end)

  it("dual-stack: the IPv4 and the IPv6 address are reported on their own", function()
    local r = results["dual-stack.lab.test"]
    local fams = {}
    for _, s in ipairs(r.servers) do fams[#fams + 1] = s.family end
    table.sort(fams)
    assert.same({ 4, 6 }, fams)
  end)

  it("open-relay: the probe stopped at RCPT and never sent DATA", function()
    local r = results["open-relay.lab.test"]
    local sent = {}
    for _, e in ipairs(r.servers[1].transcript) do if e.dir == ">" then sent[#sent + 1] = e.text end end
    local joined = table.concat(sent, "\n")
    assert.matches("RCPT TO:", joined, 1, true)
    assert.matches("RSET", joined, 1, true)
    assert.not_matches("DATA", joined, 1, true)
    -- real Postfix offers PIPELINING: the probe went in one write, and the
    -- 250 was asked again one command at a time before RELAY_OPEN was said
    local relay = r.servers[1].facts.relay
    assert.is_true(relay.pipelined)
    assert.is_true(relay.confirmed_one_by_one)
    assert.equal("open", relay.verdict)
    local _, mails = joined:gsub("MAIL FROM:", "")
    assert.equal(2, mails)
  end)

  it("good: the relay probe was pipelined on real Postfix and the replies kept their commands", function()
    local relay = results["good.lab.test"].servers[1].facts.relay
    assert.is_true(relay.pipelined)
    assert.is_nil(relay.confirmed_one_by_one)
    assert.same({ "denied", 550 }, { relay.verdict, relay.code })
    assert.matches("Relay access denied", relay.text, 1, true)
    assert.equal(250, relay.local_rcpt.code)
  end)

  it("expired: days to expiry are negative and the leaf is named", function()
    local c = results["expired.lab.test"].servers[1].facts.certificate
    assert.is_true(c.days_left < 0)
    assert.matches("expired.mx.lab.test", c.subject, 1, true)
  end)

  it("tls10: TLS 1.0 or 1.1 was negotiated and is reported as deprecated", function()
    local s = results["tls10.lab.test"].servers[1]
    assert.truthy(({ TLSv1 = true, ["TLSv1.1"] = true })[s.facts.starttls.version])
  end)

  it("slow-greeting: the 35 s greeting is measured", function()
    local b = results["slow-greeting.lab.test"].servers[1].facts.banner
    assert.is_true(b.seconds > 34 and b.seconds < 40, tostring(b.seconds))
  end)
end)
