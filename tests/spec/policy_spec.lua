-- Site policies (docs/policies.md): strict validation that names file,
-- line and field; merging over the default; check selection; thresholds
-- that the stock checks really read; rules that add findings, override
-- severities and decide the verdict; exit codes that follow the policy.
-- Loopback only: scripted servers (tests/helpers/fake_smtp.lua) and a
-- fake DNS.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local policy = require "mxprobe.policy"
local checks = require "mxprobe.engine.checks"
local judge = require "mxprobe.policy.judge"
local rules = require "mxprobe.policy.rules"
local cli = require "mxprobe.app.cli"
local fake = require "tests.helpers.fake_smtp"
local make_certs = require("tests.helpers.certs").make

local tmp = assert(io.popen("mktemp -d /tmp/mxprobe-policy.XXXXXX")):read("l")
local function write(name, text)
  local path = tmp .. "/" .. name
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local ALL = checks.load(checks.dirs { installed_checks = false })
local CATALOG = engine.catalog({ all_checks = ALL })

local function load_error(text, name)
  local path = write(name or "site.lua", text)
  local ok, err = pcall(policy.load, path, CATALOG, ALL)
  assert.is_false(ok, "the policy loaded")
  return err, path
end

local fake_dns = require "tests.helpers.fake_resolver" -- DNS is not under test here

local certs
local function starttls_as(leaf, tls_opts)
  return function(c)
    local o = { server = true, cert = certs.leaf[leaf].chain, key = certs.leaf[leaf].key }
    for k, v in pairs(tls_opts or {}) do o[k] = v end
    local info, code, detail = c:tls_handshake(o, loop.now() + 3)
    if not info then return nil, code, detail end
    return true
  end
end

-- greeting [after a pause], EHLO, [STARTTLS, EHLO], QUIT
local function script(o)
  local s = {}
  if o.pause then s[#s + 1] = { sleep = o.pause } end
  s[#s + 1] = o.greeting or "220 mx.test ESMTP\r\n"
  if o.only_greeting then
    s[#s + 1] = { expect = "^QUIT" }; s[#s + 1] = "221 bye\r\n"
    return s
  end
  s[#s + 1] = { expect = "^EHLO" }
  s[#s + 1] = "250-mx.test\r\n" .. (o.tls and "250-STARTTLS\r\n" or "") .. "250 8BITMIME\r\n"
  if o.tls then
    s[#s + 1] = { expect = "^STARTTLS" }; s[#s + 1] = "220 2.0.0 ready\r\n"
    s[#s + 1] = starttls_as(o.leaf or "valid", o.tls_opts)
    s[#s + 1] = { expect = "^EHLO" }; s[#s + 1] = "250-mx.test\r\n250 8BITMIME\r\n"
  end
  s[#s + 1] = { expect = "^QUIT" }; s[#s + 1] = "221 bye\r\n"
  return s
end

-- Probe a scripted server as the domain site.test under a policy.
local function probe(o, pol, config)
  local srv = fake.start(script(o), { lifetime = 10 })
  local cfg = { allow_reserved = { "loopback" }, helo = "tester.test", port = srv.port,
                timeouts = { connect = 2, greeting = 3, command = 3, tls = 3 } }
  for k, v in pairs(config or {}) do cfg[k] = v end
  local run = engine.new { dns = fake_dns, policy = pol, config = cfg, installed_checks = false }
  local r = run:check_domain("site.test")
  srv:wait()
  return r, run
end

local function codes(r)
  local set = {}
  judge.each_finding(r, function(f) set[f.code] = f end)
  return set
end

describe("policy validation", function()
  it("names file, line and field of a misspelt field, and suggests the right one", function()
    local err, path = load_error("return {\n  name = \"site\",\n  thresholds = {\n    min_tls = \"TLSv1.2\",\n    expiry_warnig_days = 21,\n  },\n}\n")
    assert.equal(path .. ":5: thresholds.expiry_warnig_days: unknown field (known: expiry_warning_days, greeting_slow_s, "
      .. "max_addresses, max_mx, min_ec_bits, min_rsa_bits, min_tls); did you mean expiry_warning_days?", err)
  end)

  it("names the line of an unknown top-level field", function()
    local err, path = load_error("return {\n  name = 'x',\n\n  rulez = {},\n}\n")
    assert.matches("^" .. path:gsub("%p", "%%%0") .. ":4: rulez: unknown field %(known: .*%); did you mean rules%?$", err)
  end)

  it("wrong types, with the line", function()
    local err, path = load_error("return {\n  probe = {\n    timeouts = { greeting = \"30\" },\n  },\n}\n")
    assert.equal(path .. ":3: probe.timeouts.greeting: number expected, got string", err)
    err = load_error("return { probe = { families = { 4, \"6\" } } }\n")
    assert.matches(":1: probe.families%[2%]: number expected, got string$", err)
    err = load_error("return { rules = { 42 } }\n")
    assert.matches(":1: rules%[1%]: a function%(result, api%) or { name = ", err)
  end)

  it("unknown codes, severities and check ids, with the line of the value", function()
    local err = load_error("return {\n  findings = {\n    CERT_UNTRUSTD = { severity = 'critical' },\n  },\n}\n")
    assert.matches(":3: findings.CERT_UNTRUSTD: no check declares this code .*; did you mean CERT_UNTRUSTED%?$", err)
    err = load_error("return {\n  findings = {\n    CERT_UNTRUSTED = { severity = 'fatal' },\n  },\n}\n")
    assert.matches(":3: findings.CERT_UNTRUSTED.severity: \"fatal\" is not a severity", err)
    err = load_error("return {\n  checks = {\n    disable = { 'relay',\n      'certifcate' },\n  },\n}\n")
    assert.matches(":4: checks.disable%[2%]: unknown check id \"certifcate\" %(known: .*%); did you mean certificate%?$", err)
    err = load_error("return {\n  checks = { disable_categories = { 'secruity' } },\n}\n")
    assert.matches(":2: checks.disable_categories%[1%]: no check has the category \"secruity\" .*did you mean security%?$", err)
  end)

  it("bad values: TLS versions, address kinds, grades, mail addresses, limits", function()
    assert.matches(":1: thresholds.min_tls: \"TLS1.3\" is not a TLS version", load_error("return { thresholds = { min_tls = 'TLS1.3' } }"))
    assert.matches(":1: probe.allow_reserved%[1%]: \"docs\" is not an address kind", load_error("return { probe = { allow_reserved = { 'docs' } } }"))
    assert.matches(":1: grades%[2%]: bands go from the highest minimum to the lowest %(95 after 90%)",
      load_error("return { grades = { { 90, 'A' }, { 95, 'B' } } }"))
    assert.matches(":1: options.relay.to: \"nobody\" is not a mail address", load_error("return { options = { relay = { to = 'nobody' } } }"))
    assert.matches(":1: probe.relay: unknown field", load_error("return { probe = { relay = { to = 'a@b.test' } } }"))
    assert.matches(":1: probe.limits.sessions_per_address: must be a whole number from 1 to 10000, got 0", load_error("return { probe = { limits = { sessions_per_address = 0 } } }"))
    assert.matches(":1: probe.helo: \"a b\" is not a host name", load_error("return { probe = { helo = 'a b' } }"))
  end)

  it("rule tables: known fields only, a name and a check function", function()
    assert.matches(":2: rules%[1%].nme: unknown field of a rule %(known: name, check, description%); did you mean name%?$",
      load_error("return {\n  rules = { { nme = 'x', check = function() end } },\n}\n"))
    assert.matches(":2: rules%[1%]: a rule table needs check = function%(result, api%) ... end$",
      load_error("return {\n  rules = { { name = 'mine' } },\n}\n"))
    assert.matches("rules%[1%]: a rule table needs a name$", load_error("return { rules = { { check = function() end } } }"))
  end)

  it("not Lua, the wrong type, or an error while loading: one line naming the file", function()
    local err, path = load_error("return {\n  probe = { timeouts = { greeting = 30 } }\n")
    assert.matches("^" .. path:gsub("%p", "%%%0") .. ":%d: '}' expected", err)
    err, path = load_error("return 'hello'\n")
    assert.equal(path .. ": a policy must return a table, got string (the file must end with `return { ... }`)", err)
    err, path = load_error("local x\nreturn x.y\n")
    assert.equal(path .. ":2: attempt to index a nil value (local 'x')", err)
    assert.is_nil(err:find("\n"))
  end)

  it("check options: the check must exist, declare the option, and the type must match", function()
    local dir = tmp .. "/optchecks"
    os.execute("mkdir -p " .. dir)
    local f = assert(io.open(dir .. "/opt.lua", "w"))
    f:write([[return { id = "opt", description = "d", scope = "address", options = { limit = 3 },
      findings = { OPT_OK = { severity = "ok", message = "m" } }, run = function() end }]])
    f:close()
    local all = checks.load(checks.dirs { installed_checks = false, checks_dirs = { dir } })
    local cat = engine.catalog({ all_checks = all })
    local function err_of(text)
      local ok, e = pcall(policy.load, write("o.lua", text), cat, all)
      assert.is_false(ok)
      return e
    end
    assert.matches(":2: options.nope: no check has this id", err_of("return {\n  options = { nope = {} },\n}"))
    assert.matches(":1: options.opt.limt: check opt has no such option %(known: limit%); did you mean limit%?$",
      err_of("return { options = { opt = { limt = 1 } } }"))
    assert.matches(":1: options.opt.limit: number expected %(like the default%), got string$",
      err_of("return { options = { opt = { limit = 'x' } } }"))
    local p = policy.load(write("o.lua", "return { options = { opt = { limit = 5 } } }"), cat, all)
    assert.equal(5, p.options.opt.limit)
  end)

  it("a CA file the policy names must be readable, before any probe", function()
    local path = write("ca.lua", "return {\n  probe = {\n    ca_file = '/nonexistent/corp-ca.pem',\n  },\n}\n")
    local ok, err = pcall(engine.new, { policy = path, dns = fake_dns, installed_checks = false })
    assert.is_false(ok)
    assert.equal(path .. ":3: probe.ca_file: cannot read \"/nonexistent/corp-ca.pem\": No such file or directory", err)
    -- --ca-file (an option) overrides it
    assert.truthy(engine.new { policy = path, dns = fake_dns, installed_checks = false,
                               config = { ca_file = "/etc/ssl/certs/ca-certificates.crt" } })
  end)

  it("a readable CA file without a certificate is refused, naming the file", function()
    -- before: accepted, then every server failed TLS verification
    local ok, err = pcall(engine.new, { dns = fake_dns, installed_checks = false, config = { ca_file = "/etc/hostname" } })
    assert.is_false(ok)
    assert.equal("ca_file: /etc/hostname: no certificate found", err)
    local path = write("ca2.lua", "return {\n  probe = {\n    ca_file = '/etc/hostname',\n  },\n}\n")
    ok, err = pcall(engine.new, { policy = path, dns = fake_dns, installed_checks = false })
    assert.is_false(ok)
    assert.equal(path .. ":3: probe.ca_file: /etc/hostname: no certificate found", err)
  end)

  it("the CLI: exit 3, one line on stderr, no packet sent", function()
    local l = assert(require("mxprobe.net.socket").listen("127.0.0.1", 0))
    local _, port = l:local_addr()
    local out, err = {}, {}
    local env = { stdout = { write = function(_, ...) for _, s in ipairs { ... } do out[#out + 1] = s end return true end },
                  stderr = { write = function(_, ...) for _, s in ipairs { ... } do err[#err + 1] = s end return true end } }
    local path = write("bad.lua", "return {\n  checks = { disable = { 'banner', 'nosuch' } },\n}\n")
    local code = cli.main({ "--policy", path, "--mx", "127.0.0.1", "--port", tostring(port), "--allow-reserved", "loopback" }, env)
    assert.equal(3, code)
    assert.equal("", table.concat(out))
    assert.equal(1, table.concat(err):find("mxprobe: " .. path .. ":2: checks.disable[2]: unknown check id \"nosuch\"", 1, true))
    assert.equal(1, select(2, table.concat(err):gsub("\n", "")))
    local c = l:accept(loop.now() + 0.2)
    assert.is_nil(c, "the probe connected although the policy was invalid")
    l:close()
  end)
end)

describe("policy merging", function()
  it("records and maps merge key by key; lists and values replace", function()
    local p = policy.load(write("m.lua", [[return {
      thresholds = { min_tls = "TLSv1.3" },
      findings = { CERT_UNTRUSTED = { severity = "critical" } },
      probe = { families = { 4 }, timeouts = { greeting = 5 } },
    }]]), CATALOG, ALL)
    assert.equal("TLSv1.3", p.thresholds.min_tls)
    assert.equal(30, p.thresholds.expiry_warning_days)          -- the default's
    assert.same({ severity = "critical", weight = 15 }, p.findings.CERT_UNTRUSTED)
    assert.same({ weight = 60 }, p.findings.STARTTLS_NOT_OFFERED)
    assert.same({ 4 }, p.probe.families)
    assert.equal(5, p.probe.timeouts.greeting)
    assert.equal(10, p.probe.timeouts.connect)
    assert.equal("m", p.name)                                     -- from the file name
  end)

  it("a relative CA file is relative to the policy's directory", function()
    local p = policy.load(write("rel.lua", "return { probe = { ca_file = 'corp-ca.pem' } }"), CATALOG, ALL)
    assert.equal(tmp .. "/corp-ca.pem", p.probe.ca_file)
  end)
end)

describe("policy check selection", function()
  local function ids(pol_table, config)
    local p = policy.load(pol_table, CATALOG, ALL)
    local out = {}
    for _, d in ipairs(policy.select_checks(ALL, p, config or {})) do out[#out + 1] = d.id end
    return table.concat(out, " ")
  end

  it("every stock check by default", function()
    assert.equal("mx address connect banner ehlo starttls certificate dane mta_sts relay starttls_injection submission_auth submission_unauth tls_consistency tls_offer tlsrpt", ids({}))
  end)
  it("disable_categories turns a category off; enable brings one back", function()
    assert.equal("mx address connect banner ehlo starttls certificate dane mta_sts tls_consistency tls_offer tlsrpt", ids({ checks = { disable_categories = { "security" } } }))
    assert.equal("mx address connect banner ehlo starttls certificate dane mta_sts relay tls_consistency tls_offer tlsrpt",
      ids({ checks = { disable_categories = { "security" }, enable = { "relay" } } }))
  end)
  it("disable takes what requires it along; enabling such a dependant is an error", function()
    assert.equal("mx address connect banner ehlo mta_sts relay tlsrpt", ids({ checks = { disable = { "starttls" } } }))
    local ok, err = pcall(ids, { checks = { disable = { "starttls" }, enable = { "certificate" } } })
    assert.is_false(ok)
    assert.matches("checks.enable: \"certificate\" requires \"starttls\", which checks.disable turns off", err)
  end)
  it("--no-relay and checks.disable turn the relay probe off, and the result says so", function()
    assert.is_nil(ids({}, { disable = { "relay" } }):find("relay"))
    -- the policy's switch survives the command line's options (which say nothing about it)
    local cfg = cli.config(assert(cli.parse({ "a.test" })))
    local run = engine.new { policy = { checks = { disable = { "relay" } } }, config = cfg, dns = fake_dns, installed_checks = false }
    for _, d in ipairs(run.checks) do assert.are_not.equal("relay", d.id) end
    assert.equal("checks.disable", run.turned_off.relay)
    run = engine.new { config = cli.config(assert(cli.parse({ "--no-relay", "a.test" }))), dns = fake_dns, installed_checks = false }
    assert.matches("^the options", run.turned_off.relay)
  end)
  it("the relay addresses are the relay check's options; a bad one is refused before probing", function()
    local run = engine.new { config = { options = { relay = { from = "me@here.test" } } }, dns = fake_dns, installed_checks = false }
    assert.equal("me@here.test", run.config.options.relay.from)
    local ok, err = pcall(engine.new, { config = { options = { relay = { to = "nobody" } } }, dns = fake_dns, installed_checks = false })
    assert.is_false(ok)
    assert.matches("options.relay.to: \"nobody\" is not a mail address", err)
  end)
  it("only (and --checks) run those with what they require", function()
    assert.equal("mx address connect banner", ids({ checks = { only = { "banner" } } }))
    assert.equal("mx address connect banner ehlo", ids({}, { only = { "ehlo" } }))
  end)
  it("a check declaring enabled = false runs only when enabled", function()
    local d = checks.validate({ id = "extra", description = "d", scope = "address", requires = { "banner" }, enabled = false,
      findings = { EXTRA_OK = { severity = "ok", message = "m" } }, run = function() end }, "(extra)")
    local all = checks.order((function() local t = { table.unpack(ALL) }; t[#t + 1] = d; return t end)())
    local p = policy.load({}, nil, all)
    local function has(pol) for _, c in ipairs(policy.select_checks(all, pol, {})) do if c.id == "extra" then return true end end return false end
    assert.is_false(has(p))
    assert.is_true(has(policy.load({ checks = { enable = { "extra" } } }, nil, all)))
  end)
end)

describe("policy thresholds reach the checks", function()
  setup(function() certs = make_certs() end)
  teardown(function() if certs then certs.cleanup() end end)

  it("greeting_slow_s: a 0.3 s greeting is slow under a 0.1 s threshold, not by default", function()
    local r = probe({ pause = 0.3, only_greeting = true }, { thresholds = { greeting_slow_s = 0.1 } }, { only = { "banner" } })
    assert.truthy(codes(r).BANNER_SLOW)
    assert.equal(0.1, codes(r).BANNER_SLOW.evidence.threshold)
    r = probe({ pause = 0.3, only_greeting = true }, nil, { only = { "banner" } })
    assert.is_nil(codes(r).BANNER_SLOW)
  end)

  it("probe.timeouts.greeting: the greeting deadline", function()
    local r = probe({ pause = 1.5, only_greeting = true }, { probe = { timeouts = { greeting = 0.3 } } }, { only = { "banner" }, timeouts = {} })
    assert.truthy(codes(r).BANNER_TIMEOUT)
    assert.equal("critical", r.verdict)
  end)

  it("min_tls: TLS 1.2 is below a TLSv1.3 minimum; the policy makes it critical and the report says so", function()
    local pol = write("tls13.lua", "return {\n  name = 'tls13',\n  thresholds = { min_tls = 'TLSv1.3' },\n"
      .. "  findings = {\n    TLS_VERSION_BELOW_POLICY = { severity = 'critical' },\n  },\n}\n")
    local o = { tls = true, tls_opts = { max = "TLSv1.2" } }
    local r = probe(o, pol, { only = { "starttls" }, ca_file = certs.ca })
    assert.equal("critical", r.verdict)
    assert.equal("TLS_VERSION_BELOW_POLICY", r.decided_by.code)
    assert.same({ from = "warning", policy = "tls13", source = pol .. ":5" }, r.decided_by.override)
    local text = require("mxprobe.report.text").render(r)
    assert.matches("decided by TLS_VERSION_BELOW_POLICY on mx.test (127.0.0.1) (critical instead of warning: policy tls13, "
      .. pol .. ":5)", text, 1, true)
    -- the same server under the default policy: TLS 1.2 is fine
    r = probe(o, nil, { only = { "starttls" }, ca_file = certs.ca })
    assert.equal("ok", r.verdict)
    assert.is_nil(codes(r).TLS_VERSION_BELOW_POLICY)
  end)

  it("expiry_warning_days and min_ec_bits reach the certificate check", function()
    local r = probe({ tls = true }, { thresholds = { expiry_warning_days = 400, min_ec_bits = 384 } },
      { only = { "certificate" }, ca_file = certs.ca })
    assert.truthy(codes(r).CERT_EXPIRING)
    assert.truthy(codes(r).CERT_WEAK_KEY)
    assert.equal(384, codes(r).CERT_WEAK_KEY.evidence.min)
    r = probe({ tls = true }, nil, { only = { "certificate" }, ca_file = certs.ca })
    assert.truthy(codes(r).CERT_OK)
  end)

  it("whether an untrusted certificate matters: its severity, and so the verdict", function()
    local o = { tls = true }
    local r = probe(o, nil, { only = { "certificate" } }) -- the system store does not know the test CA
    assert.truthy(codes(r).CERT_UNTRUSTED)
    assert.equal("warning", r.verdict)
    -- the strict client fails on it as well (SENDERS_STRICT_FAIL): a site
    -- that does not care says so for both
    r = probe(o, { findings = { CERT_UNTRUSTED = { severity = "info", weight = 0 } } }, { only = { "certificate" } })
    assert.equal("warning", r.verdict)
    assert.equal("SENDERS_STRICT_FAIL", r.decided_by.code)
    r = probe(o, { findings = { CERT_UNTRUSTED = { severity = "info", weight = 0 }, SENDERS_STRICT_FAIL = { severity = "info" } } },
      { only = { "certificate" } })
    assert.equal("ok", r.verdict)
    assert.equal(100, r.servers[1].score)
  end)
end)

-- A hand-made result, judged under a policy table (no network).
local function result_of(servers)
  local r = { domain = "site.test", dns = { mx = {}, findings = {} }, findings = {}, servers = {} }
  for _, s in ipairs(servers) do
    r.dns.mx[#r.dns.mx + 1] = { host = s.host, preference = s.preference, addresses = { s.address } }
    r.servers[#r.servers + 1] = { host = s.host, address = s.address, preference = s.preference,
                                  facts = s.facts or {}, findings = s.findings or {}, transcript = {} }
  end
  return r
end
local function judged(pol_table, servers, config)
  local run = { policy = policy.load(pol_table, CATALOG, ALL), catalog = CATALOG, config = config or {} }
  local r = result_of(servers)
  judge.judge(run, r)
  return r
end
local function F(code, severity) return { code = code, check = "x", severity = severity, message = code, evidence = {} } end

describe("policy rules", function()
  local two = function()
    return {
      { host = "mx1.site.test", address = "192.0.2.1", preference = 10, findings = { F("CERT_OK", "ok") } },
      { host = "mx2.site.test", address = "192.0.2.2", preference = 20,
        findings = { F("STARTTLS_NOT_OFFERED", "critical") }, facts = { starttls = { offered = false } } },
    }
  end

  it("a named rule adds a finding, decides the verdict, and the report says which rule (file:line)", function()
    local path = write("named.lua", [[return {
  rules = {
    { name = "all MX in our list",
      check = function(result, api)
        for _, mx in ipairs(api.mx()) do
          if not api.match(mx.host, { "mx1.site.test" }) then api.fail("MX " .. mx.host .. " is not ours") end
        end
      end },
  },
}
]])
    local run = { policy = policy.load(path, CATALOG, ALL), catalog = CATALOG, config = {} }
    local r = result_of({ { host = "mx1.site.test", address = "192.0.2.1", preference = 10 },
                          { host = "other.test", address = "192.0.2.9", preference = 20 } })
    judge.judge(run, r)
    assert.equal("critical", r.verdict)
    assert.equal(2, r.exit_code)
    assert.same({ code = "POLICY_RULE", check = "policy", severity = "critical", rule = "all MX in our list",
                  rule_source = path .. ":4" }, r.decided_by)
    assert.equal("MX other.test is not ours", r.findings[1].message)
    local text = require("mxprobe.report.text").render(r)
    assert.matches("decided by rule 'all MX in our list' (" .. path .. ":4): POLICY_RULE", text, 1, true)
  end)

  it("a plain function rule is named by its file and line", function()
    local r = judged({ rules = { function(result, api) api.warn("hm") end } }, {})
    assert.equal("warning", r.verdict)
    assert.matches("policy_spec.lua:%d+$", r.decided_by.rule)
    assert.equal(r.decided_by.rule, r.decided_by.rule_source)
  end)

  it("set_severity overrides a finding: the backup MX may be plaintext", function()
    local pol = { rules = { { name = "backup may be plaintext", check = function(result, api)
      for f, srv in api.each("STARTTLS_NOT_OFFERED") do
        if api.is_backup(srv) then api.set_severity(f, "info", "backups may be plaintext") end
      end
    end } } }
    local r = judged({}, two())
    assert.equal("critical", r.verdict)
    assert.equal(40, r.servers[2].score)
    r = judged(pol, two())
    assert.equal("ok", r.verdict)
    local f = r.servers[2].findings[1]
    assert.equal("info", f.severity)
    assert.equal("backup may be plaintext", f.rule)
    assert.same({ from = "critical", rule = "backup may be plaintext", source = f.rule_source, why = "backups may be plaintext" }, f.override)
    assert.equal(100, r.servers[2].score, "scores are computed again after the rules")
    local text = require("mxprobe.report.text").render(r)
    assert.matches("severity: info instead of critical, by rule 'backup may be plaintext'", text, 1, true)
  end)

  it("a rule may raise a severity, and then it is the rule that decided", function()
    local r = judged({ rules = { { name = "strict", check = function(result, api)
      for f in api.each("CERT_OK") do api.set_severity(f, "warning", "test") end
    end } } }, two())
    -- critical STARTTLS_NOT_OFFERED still wins over the warning
    assert.equal("critical", r.verdict)
    assert.equal("STARTTLS_NOT_OFFERED", r.decided_by.code)
  end)

  it("on a tie the finding a rule added decides", function()
    local r = judged({ rules = { { name = "r", check = function(result, api)
      api.fail("rule says no", { server = result.servers[1] })
    end } } }, two())
    assert.equal("r", r.decided_by.rule)
    assert.equal("mx1.site.test", r.decided_by.host)
  end)

  it("a rule that raises is an error finding naming it; the other rules still run", function()
    local r = judged({ rules = {
      { name = "broken", check = function() local t = nil; return t.x end },
      { name = "fine", check = function(_, api) api.info("ran") end },
    } }, {}, { verbose = true })
    assert.equal(2, #r.findings)
    assert.equal("error", r.findings[1].severity)
    assert.matches("^policy rule 'broken' %(.*policy_spec.lua:%d+%) failed: .*attempt to index a nil value", r.findings[1].message)
    assert.matches("stack traceback", r.findings[1].evidence.traceback)
    assert.equal("ran", r.findings[2].message)
    assert.equal("inconclusive", r.verdict)
    -- without -v, no traceback
    r = judged({ rules = { { name = "broken", check = function() error("boom") end } } }, {})
    assert.is_nil(r.findings[1].evidence.traceback)
  end)

  it("misuse of the api is reported as the rule's error", function()
    local r = judged({ rules = { { name = "typo", check = function(result, api)
      api.set_severity(result.servers[1].findings[1], "fatal")
    end } } }, two())
    assert.matches("bad argument #2 to 'api.set_severity' %(\"fatal\" is not a severity%)", r.findings[1].message)
    r = judged({ rules = { { name = "typo", check = function(_, api) api.fail("x", { sever = 1 }) end } } }, two())
    assert.matches("unknown key \"sever\"", r.findings[1].message)
  end)

  it("api helpers: match, network, lowest preference, find, weight", function()
    assert.is_true(rules.match("Mx1.Example.NET.", "*.example.net"))
    assert.is_false(rules.match("a.b.example.net", "*.example.net"))
    assert.is_true(rules.match("alt2.aspmx.l.google.com", { "aspmx.l.google.com", "alt*.aspmx.l.google.com" }))
    assert.is_false(rules.match("evil-example.net", "*.example.net"))
    assert.equal("192.0.2.0/24", rules.network("192.0.2.77"))
    assert.equal("198.51.100.0/22", rules.network("198.51.103.1", 22))
    assert.equal("2001:db8:1::/48", rules.network("2001:db8:1:2::25"))
    assert.equal("2001:db8:1:2::/64", rules.network("2001:db8:1:2::25", 24, 64))
    assert.is_nil(rules.network("mx.example"))
    local seen = {}
    judged({ rules = { function(result, api)
      seen.low = api.lowest_preference()
      seen.backup = api.is_backup(result.servers[2])
      seen.primary = api.is_backup(result.servers[1])
      local f, srv = api.find("STARTTLS_NOT_OFFERED")
      seen.host = srv.host
      seen.weight = api.weight(f)
      seen.has = api.has("CERT_OK", result.servers[2])
    end } }, two())
    assert.same({ low = 10, backup = true, primary = false, host = "mx2.site.test", weight = 60, has = false }, seen)
  end)

  it("score, grade and verdict functions", function()
    local r = judged({
      score = function(srv) return #srv.findings == 1 and srv.findings[1].severity == "ok" and 100 or 10 end,
      grade = function(score) return score >= 50 and "pass" or "fail" end,
      verdict = function(result)
        for _, s in ipairs(result.servers) do if s.grade == "fail" then return "warning", "a server failed" end end
        return "ok"
      end,
    }, two())
    assert.same({ 100, 10 }, { r.servers[1].score, r.servers[2].score })
    assert.same({ "pass", "fail" }, { r.servers[1].grade, r.servers[2].grade })
    assert.equal("warning", r.verdict)
    assert.equal(1, r.exit_code)
    assert.equal("verdict", r.decided_by.rule)
    assert.equal("a server failed", r.decided_by.reason)
    assert.matches("decided by the policy's verdict function %(.*policy_spec.lua:%d+%): a server failed",
      require("mxprobe.report.text").render(r))
  end)

  it("servers are scored once without rules; before and after the rules with them (the rules see scores)", function()
    local calls = 0
    local function score(srv)
      calls = calls + 1
      return srv.findings[1] and srv.findings[1].severity == "ok" and 90 or 20
    end
    local r = judged({ score = score }, two())
    assert.equal(2, calls) -- one pass: a second would give the same scores
    assert.same({ 90, 20 }, { r.servers[1].score, r.servers[2].score })

    calls = 0
    local seen
    r = judged({ score = score, rules = { function(result, api)
      seen = { result.servers[1].score, result.servers[2].score }
      api.fail("second server", { server = result.servers[2] })
    end } }, two())
    assert.equal(4, calls)
    assert.same({ 90, 20 }, seen)
    assert.same({ 90, 20 }, { r.servers[1].score, r.servers[2].score })
    assert.equal("critical", r.verdict)
  end)

  it("a verdict function returning nonsense is inconclusive, with an error finding", function()
    local r = judged({ verdict = function() return "fine" end }, two())
    assert.equal("inconclusive", r.verdict)
    assert.matches("returned \"fine\"", r.findings[#r.findings].message)
  end)
end)

describe("one domain, two policies", function()
  teardown(function() os.execute("rm -rf '" .. tmp .. "'") end) -- the last block: the temporary files go
  it("OK under one policy and critical under another, with matching exit codes", function()
    -- 127.0.0.1 may have no PTR where the tests run: not what this is about
    local lenient = write("lenient.lua", "return { name = 'lenient', findings = { BANNER_PTR_MISSING = { severity = 'info' } } }")
    local strict = write("strict.lua", [[return {
  name = "strict",
  findings = { BANNER_PTR_MISSING = { severity = "info" } },
  rules = {
    { name = "TLS on every MX", check = function(result, api)
        for _, s in ipairs(result.servers) do
          if not (s.facts.starttls and s.facts.starttls.handshake) then
            api.fail(s.host .. " offers no TLS", { server = s })
          end
        end
      end },
  },
}]])
    local function run_cli(pol)
      local srv = fake.start({ "220 mx.test ESMTP\r\n", { expect = "^EHLO" }, "250-mx.test\r\n250 8BITMIME\r\n",
                               { expect = "^QUIT" }, "221 bye\r\n" }, { lifetime = 10 })
      local out = {}
      local env = { stdout = { write = function(_, ...) for _, s in ipairs { ... } do out[#out + 1] = s end return true end },
                    stderr = { write = function(_, ...) for _, s in ipairs { ... } do out[#out + 1] = s end return true end },
                    columns = 1000 } -- no wrapping: the lines below are matched whole
      local code = cli.main({ "--policy", pol, "--mx", "127.0.0.1", "--port", tostring(srv.port), "--allow-reserved", "loopback",
                              "--checks", "ehlo", "--helo", "tester.test", "--timeout-dns", "1" }, env)
      srv:wait()
      return code, table.concat(out)
    end
    local code, out = run_cli(lenient)
    assert.equal(0, code, out)
    assert.matches("^127%.0%.0%.1  OK  [^\n]*\n  policy lenient", out)
    code, out = run_cli(strict)
    assert.equal(2, code, out)
    assert.matches("^127%.0%.0%.1  CRITICAL  [^\n]*\n  policy strict", out)
    assert.matches("decided by rule 'TLS on every MX' (" .. strict .. ":5): POLICY_RULE on 127.0.0.1", out, 1, true)
  end)
end)
