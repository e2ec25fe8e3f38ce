-- Every example of examples/ against the test world (tests/lab): each
-- policy on lab domains where it changes the verdict, and says which rule
-- decided; each custom check loaded with --checks-dir and producing its
-- findings.  Runs inside the lab's namespace (tests/run-integration).
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local policy = require "mxprobe.policy"
local checks = require "mxprobe.engine.checks"
local cli = require "mxprobe.app.cli"
local cjson = require "cjson"

local world = dofile("tests/lab/world.lua")
local state = os.getenv("MXLAB_STATE") or world.state_dir
local ROOT = require("mxprobe.runtime.paths").root
local POLICIES, CHECKS = ROOT .. "/examples/policies", ROOT .. "/examples/checks"

local CONFIG = {
  resolvers = { world.resolver }, ca_file = state .. "/ca/ca.pem", allow_reserved = { "documentation" },
  timeouts = { connect = 5, greeting = 10, command = 10, tls = 10, dns = 3 },
}

-- The domains used below: fast ones (no 35 s greetings).
local DOMAINS = { "good", "two-mx", "bad-secondary", "wrong-name", "self-signed", "tls10", "no-starttls",
                  "greet-nohost", "mx-cname", "expiring" }

local function ls(dir)
  local out = {}
  for name in assert(io.popen(("ls -1 %q"):format(dir))):lines() do out[#out + 1] = name end
  table.sort(out)
  return out
end

-- Check every domain under one policy (a file or a table), concurrently.
local function check_all(pol, extra)
  local opts = { policy = pol, config = CONFIG, installed_checks = false }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local run = engine.new(opts)
  local tasks, out = {}, {}
  for _, d in ipairs(DOMAINS) do
    tasks[d] = loop.spawn(function() return run:check_domain(d .. ".lab.test") end)
  end
  for d, t in pairs(tasks) do out[d] = assert(loop.join(t)) end
  return out
end

-- The example policy as a table, with its params changed for the lab.
local function with_params(file, params)
  local p = dofile(POLICIES .. "/" .. file)
  p.params = p.params or {}
  for k, v in pairs(params) do p.params[k] = v end
  return p
end

local function find(r, code)
  local found = {}
  local function scan(list, srv) for _, f in ipairs(list) do if f.code == code then found[#found + 1] = { f, srv } end end end
  scan(r.dns.findings); scan(r.findings)
  for _, s in ipairs(r.servers) do scan(s.findings, s) end
  return found
end
local function has_code(r, code) return #find(r, code) > 0 end

local base = check_all(nil)

describe("examples: every file loads and validates", function()
  it("the example checks load with the stock ones, and the policies validate against them", function()
    local all = checks.load(checks.dirs { installed_checks = false, checks_dirs = { CHECKS } })
    local ids = {}
    for _, d in ipairs(all) do ids[d.id] = true end
    for _, name in ipairs(ls(CHECKS)) do
      assert.truthy(ids[name:gsub("%.lua$", "")], name)
    end
    local catalog = engine.catalog({ all_checks = all })
    for _, name in ipairs(ls(POLICIES)) do
      local p = policy.load(POLICIES .. "/" .. name, catalog, all)
      assert.equal(name:gsub("%.lua$", ""), p.name)
      assert.truthy(p.description, name .. " has a description")
    end
  end)

  it("at least three policies and two checks, each exercised below", function()
    assert.same({ "backup-mx-plaintext.lua", "corporate-strict.lua", "hosted-provider.lua", "mta-sts-prepare.lua",
                  "sender-matrix.lua" }, ls(POLICIES)) -- sender-matrix: tests/integration/senders_spec.lua
    assert.same({ "dane_tlsa.lua", "greeting_software.lua", "mx_networks.lua" }, ls(CHECKS))
  end)

  it("the default verdicts the examples are compared with", function()
    local v = {}
    for d, r in pairs(base) do v[d] = r.verdict end
    assert.same({ good = "ok", ["two-mx"] = "ok", ["bad-secondary"] = "warning", ["wrong-name"] = "warning",
                  ["self-signed"] = "warning", tls10 = "warning", ["no-starttls"] = "critical",
                  ["greet-nohost"] = "warning", ["mx-cname"] = "warning", expiring = "warning" }, v)
  end)
end)

describe("examples/policies/corporate-strict.lua", function()
  it("as shipped, with the lab's CA: no lab MX is one of 'ours'", function()
    local r = check_all(POLICIES .. "/corporate-strict.lua")
    assert.equal("critical", r.good.verdict)
    assert.equal("all MX in our list", r.good.decided_by.rule)
    assert.matches("^examples/policies/corporate%-strict.lua:%d+$", r.good.decided_by.rule_source:gsub("^.*/examples/", "examples/"))
  end)

  describe("with the lab's MX as ours", function()
    local r
    setup(function()
      r = check_all(with_params("corporate-strict.lua", {
        allowed_mx = { "good.mx.lab.test", "good2.mx.lab.test", "self-signed.mx.lab.test", "tls10.mx.lab.test" } }))
    end)

    it("one network is not enough: two-mx is critical (both MX in 192.0.2.0/24)", function()
      assert.equal("critical", r["two-mx"].verdict)
      assert.equal("at least two MX in different networks", r["two-mx"].decided_by.rule)
      assert.equal(2, r["two-mx"].exit_code)
    end)

    it("the backup's self-signed certificate does not chain to our CA: critical, by that rule", function()
      local d = r["bad-secondary"].decided_by
      assert.equal("critical", r["bad-secondary"].verdict)
      assert.same({ "CERT_SELF_SIGNED", "certificate chains to our CA", "self-signed.mx.lab.test" }, { d.code, d.rule, d.host })
      assert.equal("warning", d.override.from)
    end)

    it("TLS 1.0 is critical (the policy's findings table), and the finding says where that was set", function()
      assert.equal("critical", r.tls10.verdict)
      local f = find(r.tls10, "TLS_VERSION_DEPRECATED")[1][1]
      assert.equal("critical", f.severity)
      assert.equal("corporate-strict", f.override.policy)
      assert.equal("(policy table)", f.override.source) -- a table has no file; with --policy FILE it is FILE:LINE
    end)

    it("an MX outside the list is named", function()
      local fs = find(r["wrong-name"], "POLICY_RULE")
      assert.matches("MX wrong%-name.mx.lab.test %(preference 10%) is not one of ours", fs[1][1].message)
    end)

    it("the expiry horizon is 21 days: the 10-day certificate is flagged", function()
      assert.is_true(has_code(r.expiring, "CERT_EXPIRING"))
    end)
  end)
end)

describe("examples/policies/hosted-provider.lua", function()
  it("as shipped (Microsoft 365): a lab domain is not at the provider: critical, where the default says OK", function()
    local r = check_all(POLICIES .. "/hosted-provider.lua")
    assert.equal("ok", base.good.verdict)
    assert.equal("critical", r.good.verdict)
    assert.equal("every MX is at the provider", r.good.decided_by.rule)
    assert.matches("is not at Microsoft 365", find(r.good, "POLICY_RULE")[1][1].message)
    -- the relay and injection probes (category "security") are off
    assert.is_false(has_code(r.good, "RELAY_DENIED"))
    assert.is_false(has_code(r.good, "STARTTLS_INJECTION_SAFE"))
  end)

  it("with the lab as 'the provider': the provider's greeting is its business", function()
    local r = check_all(with_params("hosted-provider.lua", { provider = "the lab", mx_patterns = { "*.mx.lab.test" } }))
    assert.equal("ok", r.good.verdict)
    assert.equal("ok", r["two-mx"].verdict)
    assert.equal("warning", base["greet-nohost"].verdict)
    assert.equal("ok", r["greet-nohost"].verdict)
    local f = find(r["greet-nohost"], "BANNER_NO_HOSTNAME")[1][1]
    assert.equal("info", f.severity)
    assert.equal("the provider's own servers are the provider's business", f.override.rule)
  end)

  it("an MX left outside the provider is critical", function()
    local r = check_all(with_params("hosted-provider.lua", { provider = "the lab", mx_patterns = { "good*.mx.lab.test" } }))
    assert.equal("ok", r["two-mx"].verdict)
    assert.equal("critical", r["bad-secondary"].verdict)
    assert.matches("^MX self%-signed.mx.lab.test %(preference 20%) is not at the lab", find(r["bad-secondary"], "POLICY_RULE")[1][1].message)
  end)
end)

describe("examples/policies/mta-sts-prepare.lua", function()
  local r
  setup(function() r = check_all(POLICIES .. "/mta-sts-prepare.lua") end)

  it("a domain ready for enforcement stays OK, with what to publish next", function()
    assert.equal("ok", r.good.verdict)
    local msgs = {}
    for _, x in ipairs(find(r.good, "POLICY_RULE")) do msgs[#msgs + 1] = x[1].message end
    table.sort(msgs)
    assert.matches("^all 1 MX address%(es%) meet MTA%-STS enforce requirements$", msgs[1])
    assert.matches("^no _mta%-sts.good.lab.test TXT record yet", msgs[2])
    assert.matches("^no _smtp._tls.good.lab.test TXT record %(TLS%-RPT%)", msgs[3])
  end)

  it("names the MX that would fail, and why; the rule decides", function()
    local cases = {
      ["bad-secondary"] = { "self-signed.mx.lab.test", "the certificate does not chain to a trusted CA" },
      ["wrong-name"] = { "wrong-name.mx.lab.test", "the certificate does not name wrong%-name.mx.lab.test" },
      ["mx-cname"] = { "alias.mx-cname.lab.test", "the certificate does not name alias.mx%-cname.lab.test" },
      tls10 = { "tls10.mx.lab.test", "TLSv1[.1]* %(TLS 1.2 or later is required%)" },
      ["no-starttls"] = { "no-starttls.mx.lab.test", "no STARTTLS" },
    }
    for d, want in pairs(cases) do
      local res = r[d]
      assert.equal("critical", res.verdict, d)
      assert.equal("every MX would pass MTA-STS enforce", res.decided_by.rule, d)
      assert.equal(want[1], res.decided_by.host, d)
      local f = find(res, "POLICY_RULE")
      local msg
      for _, x in ipairs(f) do if x[2] then msg = x[1].message end end
      assert.matches("would refuse MTA%-STS senders: .*" .. want[2], msg, d)
    end
    -- the primary of bad-secondary is fine and not named
    for _, x in ipairs(find(r["bad-secondary"], "POLICY_RULE")) do
      if x[2] then assert.equal("self-signed.mx.lab.test", x[2].host) end
    end
  end)

  it("planned mx: lines that do not cover an MX", function()
    local res = check_all(with_params("mta-sts-prepare.lua", { mx_patterns = { "good.mx.lab.test" } }))
    assert.equal("critical", res["two-mx"].verdict)
    assert.equal("MX records match the planned mx: lines", res["two-mx"].decided_by.rule)
  end)
end)

describe("examples/policies/backup-mx-plaintext.lua", function()
  local r
  setup(function() r = check_all(POLICIES .. "/backup-mx-plaintext.lua") end)

  it("the backup's self-signed certificate is accepted: OK instead of warning", function()
    assert.equal("warning", base["bad-secondary"].verdict)
    assert.equal("ok", r["bad-secondary"].verdict)
    local f = find(r["bad-secondary"], "CERT_SELF_SIGNED")[1][1]
    assert.same({ "info", "warning", "the backup MX may be plaintext" }, { f.severity, f.override.from, f.override.rule })
  end)

  it("the primary is held to the standard", function()
    assert.equal("critical", r["no-starttls"].verdict)
    assert.equal("warning", r["self-signed"].verdict)
  end)
end)

describe("examples/checks with --checks-dir", function()
  local r
  setup(function() r = check_all(nil, { checks_dirs = { CHECKS } }) end)

  it("dane_tlsa: the lab's TLSA 3 1 1 for good.mx matches; other MX have none", function()
    local ok = find(r.good, "DANE_OK")
    assert.equal(1, #ok)
    assert.equal("TLSA 3 1 1 at _25._tcp.good.mx.lab.test matches the server's certificate", ok[1][1].message)
    assert.is_true(has_code(r.good, "DANE_INSECURE"))           -- the lab zone is not signed
    assert.equal("self-signed.mx.lab.test", find(r["bad-secondary"], "DANE_NONE")[1][2].host)
  end)

  it("mx_networks: one /24 is a warning, two are fine", function()
    assert.equal("warning", r.good.verdict)
    assert.equal("MX_SINGLE_NETWORK", r.good.decided_by.code)
    assert.is_true(has_code(r["two-mx"], "MX_SINGLE_NETWORK"))
    assert.equal("The reachable MX addresses span 2 networks: 192.0.2.0/24, 198.51.100.0/24",
      find(r["bad-secondary"], "MX_NETWORKS_OK")[1][1].message)
  end)

  it("greeting_software: the lab's greetings are discreet", function()
    for _, d in ipairs { "good", "two-mx", "wrong-name" } do
      for _, s in ipairs(r[d].servers) do
        local mine = {}
        for _, f in ipairs(s.findings) do if f.check == "greeting_software" then mine[#mine + 1] = f.code end end
        assert.same({ "GREETING_DISCREET" }, mine)
      end
    end
    -- a site pattern makes the lab's own banner word count
    local r2 = check_all({ options = { greeting_software = { extra_patterns = { "mxlab%-%w+" } } } }, { checks_dirs = { CHECKS } })
    local f = find(r2.good, "GREETING_REVEALS_SOFTWARE")[1][1]
    assert.equal("The greeting reveals \"mxlab-good\": good.mx.lab.test ESMTP mxlab-good", f.message)
  end)

  it("a policy option of an example check: one network is enough", function()
    local r2 = check_all({ options = { mx_networks = { min_networks = 1 } } }, { checks_dirs = { CHECKS } })
    assert.is_true(has_code(r2.good, "MX_NETWORKS_OK"))
  end)
end)

describe("examples through the command line", function()
  local function mxprobe(args)
    local out, err = {}, {}
    local env = { stdout = { write = function(_, ...) for _, s in ipairs { ... } do out[#out + 1] = s end return true end },
                  stderr = { write = function(_, ...) for _, s in ipairs { ... } do err[#err + 1] = s end return true end },
                  columns = 1000 } -- no wrapping: lines are matched whole below
    local argv = { "--allow-reserved", "documentation", "--ca-file", state .. "/ca/ca.pem", "--resolver", world.resolver }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    local code = cli.main(argv, env)
    return code, table.concat(out), table.concat(err)
  end

  it("the same domain: exit 1 by default, 0 with the backup policy, 2 preparing MTA-STS", function()
    assert.equal(1, (mxprobe({ "bad-secondary.lab.test" })))
    local code, out = mxprobe({ "--policy", "examples/policies/backup-mx-plaintext.lua", "bad-secondary.lab.test" })
    assert.equal(0, code, out)
    assert.matches("^bad%-secondary%.lab%.test  OK  [^\n]*\n  policy backup%-mx%-plaintext", out)
    assert.matches("severity: info instead of warning, by rule 'the backup MX may be plaintext'", out, 1, true)
    code, out = mxprobe({ "--policy", "examples/policies/mta-sts-prepare.lua", "bad-secondary.lab.test" })
    assert.equal(2, code, out)
    assert.matches("decided by rule 'every MX would pass MTA-STS enforce' (examples/policies/mta-sts-prepare.lua:", out, 1, true)
  end)

  it("--checks-dir examples/checks --json: the custom findings are in the document", function()
    local code, out = mxprobe({ "--checks-dir", "examples/checks", "--json", "good.lab.test" })
    assert.equal(1, code)
    local doc = cjson.decode(out)
    local seen = {}
    for _, f in ipairs(doc.findings) do seen[f.code] = true end
    for _, f in ipairs(doc.servers[1].findings) do seen[f.code] = true end
    assert.is_true(seen.MX_SINGLE_NETWORK and seen.DANE_OK and seen.GREETING_DISCREET)
    assert.equal("MX_SINGLE_NETWORK", doc.decided_by.code)
  end)

  it("the corporate policy without its CA file: exit 3 and one line, before any probe", function()
    local code, out, err = mxprobe({ "--policy", "examples/policies/corporate-strict.lua", "good.lab.test" })
    -- --ca-file is given above, so it wins; without it the policy's file is needed
    assert.equal(2, code)
    local argv = { "--allow-reserved", "documentation", "--policy", "examples/policies/corporate-strict.lua", "good.lab.test" }
    local e = {}
    code = cli.main(argv, { stdout = { write = function() return true end },
                            stderr = { write = function(_, ...) for _, s in ipairs { ... } do e[#e + 1] = s end return true end } })
    assert.equal(3, code)
    assert.matches("^mxprobe: examples/policies/corporate%-strict.lua:%d+: probe.ca_file: cannot read \"/etc/ssl/corp/mail%-ca.pem\"", table.concat(e))
    assert.equal("", err)
    assert.truthy(out)
  end)
end)
