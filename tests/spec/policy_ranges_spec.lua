-- Every number from a user has a finite range (issue 16, item 8): NaN and
-- infinities in a policy, or in the probe configuration that the command
-- line, the embedding API and audit options build, are refused before any
-- probe starts, with the field named.  NaN used to pass because it fails
-- every comparison ("x <= 0" is false); an infinite time-out waited forever.
local policy = require "mxprobe.policy"
local engine = require "mxprobe.engine"
local fake_dns = require "tests.helpers.fake_resolver"

local NAN, INF = 0 / 0, math.huge

local function policy_error(p)
  local ok, err = pcall(policy.load, p)
  assert.is_false(ok, "accepted")
  return tostring(err)
end

describe("policy number ranges", function()
  local cases = {
    { { probe = { timeouts = { connect = NAN } } }, "probe.timeouts.connect: must be more than 0 and at most 86400, got NaN" },
    { { probe = { timeouts = { greeting = INF } } }, "probe.timeouts.greeting: must be more than 0 and at most 86400, got inf" },
    { { probe = { timeouts = { command = -INF } } }, "probe.timeouts.command: must be more than 0 and at most 86400, got -inf" },
    { { probe = { timeouts = { tls = 0 } } }, "probe.timeouts.tls: must be more than 0" },
    { { probe = { timeouts = { dns = 86401 } } }, "probe.timeouts.dns: must be more than 0 and at most 86400, got 86401" },
    { { probe = { limits = { max_sessions = NAN } } }, "probe.limits.max_sessions: must be a whole number from 0 to 1000000, got NaN" },
    { { probe = { limits = { sessions_per_address = INF } } }, "probe.limits.sessions_per_address: must be a whole number" },
    { { probe = { limits = { connects_per_second_per_address = NAN } } }, "probe.limits.connects_per_second_per_address: must be a number" },
    { { probe = { limits = { max_dns_queries = 1.5 } } }, "probe.limits.max_dns_queries: must be a whole number from 1 to 1000000, got 1.5" },
    { { thresholds = { greeting_slow_s = NAN } }, "thresholds.greeting_slow_s: must be a number from 0 to 86400, got NaN" },
    { { thresholds = { expiry_warning_days = INF } }, "thresholds.expiry_warning_days:" },
    { { thresholds = { min_rsa_bits = NAN } }, "thresholds.min_rsa_bits:" },
    { { thresholds = { min_ec_bits = INF } }, "thresholds.min_ec_bits:" },
    { { thresholds = { max_mx = -1 } }, "thresholds.max_mx: must be a whole number from 0 to 10000, got -1" },
    { { thresholds = { max_addresses = NAN } }, "thresholds.max_addresses:" },
    { { weights = { warning = NAN } }, "weights.warning: must be a number from 0 to 1000, got NaN" },
    { { weights = { critical = INF } }, "weights.critical:" },
    { { findings = { CERT_EXPIRED = { weight = NAN } } }, "findings.CERT_EXPIRED.weight: must be a number from 0 to 1000, got NaN" },
    { { grades = { { NAN, "A" }, { 0, "F" } } }, "grades[1]: must be a number from -100000 to 100, got NaN" },
    { { grades = { { 90, "A" }, { -INF, "F" } } }, "grades[2]: must be a number from -100000 to 100, got -inf" },
    { { options = { banner = { x = NAN } } }, "options.banner.x: must be a number from" },
  }
  for _, c in ipairs(cases) do
    it("refuses " .. c[2], function()
      local err = policy_error(c[1])
      assert.truthy(err:find(c[2], 1, true), err)
      assert.equal(1, select(2, err:gsub("\n", "")) + 1) -- one line
    end)
  end

  it("accepts the stock policy and ordinary values", function()
    assert.is_table(policy.load { probe = { timeouts = { connect = 0.5, dns = 86400 }, limits = { max_sessions = 0 } },
                                  thresholds = { greeting_slow_s = 0 }, weights = { warning = 0 } })
  end)
end)

describe("probe configuration number ranges (command line, embedding API, audit options)", function()
  local function new_error(config)
    local ok, err = pcall(engine.new, { dns = fake_dns, config = config })
    assert.is_false(ok, "accepted")
    return tostring(err)
  end
  it("refuses NaN and infinite time-outs", function()
    assert.equal("timeouts.connect: must be more than 0 and at most 86400, got NaN", new_error { timeouts = { connect = NAN } })
    assert.equal("timeouts.greeting: must be more than 0 and at most 86400, got inf", new_error { timeouts = { greeting = INF } })
    assert.equal("timeouts.dns: a number expected, got string", new_error { timeouts = { dns = "5" } })
  end)
  it("refuses limits out of range", function()
    assert.equal("limits.max_domains: must be a whole number from 1 to 1000000, got inf", new_error { limits = { max_domains = INF } })
    assert.equal("limits.max_sessions: must be a whole number from 0 to 1000000, got NaN", new_error { limits = { max_sessions = NAN } })
  end)
  it("refuses a port out of range", function()
    assert.equal("port: a port number 1-65535 expected, got NaN", new_error { port = NAN })
  end)
  it("accepts finite values", function()
    assert.is_table(engine.new { dns = fake_dns, config = { timeouts = { connect = 3 }, limits = { max_sessions = 10 } } })
  end)
end)
