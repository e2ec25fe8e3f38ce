-- Custom checks (docs/writing-checks.md): the strict loader (file, line and
-- field in every message), where checks come from (stock, the installed
-- search path, --checks-dir), error isolation at run time, and the example
-- checks of examples/checks against scripted servers on loopback.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local checks = require "mxprobe.engine.checks"
local context = require "mxprobe.engine.context"
local judge = require "mxprobe.policy.judge"
local fake = require "tests.helpers.fake_smtp"
local make_certs = require("tests.helpers.certs").make

local tmp = assert(io.popen("mktemp -d /tmp/mxprobe-checks.XXXXXX")):read("l")
local n = 0
-- A fresh directory with the given files ({ name = text }).
local function dir_with(files)
  n = n + 1
  local dir = ("%s/d%d"):format(tmp, n)
  os.execute("mkdir -p " .. dir)
  for name, text in pairs(files) do
    local f = assert(io.open(dir .. "/" .. name, "w"))
    f:write(text)
    f:close()
  end
  return dir
end
local function load_dirs(...)
  return checks.load(checks.dirs { installed_checks = false, checks_dirs = { ... } })
end
local function load_error(files)
  local dir = dir_with(files)
  local ok, err = pcall(load_dirs, dir)
  assert.is_false(ok, "the checks loaded")
  return err, dir
end

local GOOD = [[
return {
  id = "mine",
  description = "a custom check",
  scope = "address",
  requires = { "banner" },
  findings = { MINE_OK = { severity = "ok", message = "fine" } },
  run = function(ctx) ctx:finding("MINE_OK", {}) end,
}
]]

describe("check loader: validation", function()
  it("a valid custom check loads after what it requires", function()
    local all = load_dirs(dir_with({ ["mine.lua"] = GOOD }))
    local pos = {}
    for i, d in ipairs(all) do pos[d.id] = i end
    assert.truthy(pos.mine)
    assert.is_true(pos.mine > pos.banner)
  end)

  it("an unknown key: file, line and field, with a suggestion", function()
    local err, dir = load_error({ ["x.lua"] = GOOD:gsub("  findings =", "  findigns =") })
    assert.equal(dir .. "/x.lua:6: findigns: unknown key (allowed: id, description, categories, scope, requires, "
      .. "findings, options, check_option, enabled, applies, run, summarize); did you mean findings?", err)
  end)

  it("wrong types, bad values, missing fields", function()
    assert.matches("x.lua:4: scope: string expected, got number$", load_error({ ["x.lua"] = GOOD:gsub('"address"', "3") }))
    assert.matches("x.lua:4: scope: \"everywhere\" is not one of domain, address, session$",
      load_error({ ["x.lua"] = GOOD:gsub('"address"', '"everywhere"') }))
    assert.matches("x.lua:2: id: \"Mine\" must match", load_error({ ["x.lua"] = GOOD:gsub('"mine"', '"Mine"') }))
    assert.matches("x.lua: run: missing %(required%)$", load_error({ ["x.lua"] = GOOD:gsub("  run = [^\n]*\n", "") }))
    assert.matches("x.lua:6: findings.mine_ok: finding codes must match",
      load_error({ ["x.lua"] = GOOD:gsub("MINE_OK =", "mine_ok =") }))
    assert.matches("x.lua:6: findings.MINE_OK.severity: must be one of ok, info",
      load_error({ ["x.lua"] = GOOD:gsub('severity = "ok"', 'severity = "good"') }))
    assert.matches("x.lua:6: findings.MINE_OK.mesage: unknown key %(allowed: severity, message, hint, weight%); did you mean message%?",
      load_error({ ["x.lua"] = GOOD:gsub("message =", "mesage =") }))
    assert.matches("x.lua:4: options.f: the default must be a string, number, boolean or table, got function",
      load_error({ ["x.lua"] = GOOD:gsub('  scope', '  options = { f = print },\n  scope') }))
    assert.matches("x.lua: a check file must return a table, got nil", load_error({ ["x.lua"] = "local x = 1\n" }))
  end)

  it("Lua errors: syntax (file:line) and errors while loading", function()
    assert.matches("x.lua:3: .*expected", load_error({ ["x.lua"] = "return {\n  id = 'x'\n  scope = 1 }\n" }))
    assert.matches("x.lua:1: boom$", load_error({ ["x.lua"] = "error('boom')\n" }))
  end)

  it("unknown dependencies and cycles, with the line of the requirement", function()
    local err, dir = load_error({ ["x.lua"] = GOOD:gsub('"banner"', '"baner"') })
    assert.equal(dir .. "/x.lua:5: requires[1]: unknown check id \"baner\" (known: address, banner, certificate, connect, "
      .. "dane, ehlo, mine, mta_sts, mx, relay, starttls, starttls_injection, submission_auth, submission_unauth, tls_consistency, tls_offer, tlsrpt); did you mean banner?", err)
    local a = GOOD:gsub('"banner"', '"b"'):gsub('"mine"', '"a"'):gsub("MINE_OK", "A_OK")
    local b = GOOD:gsub('"banner"', '"a"'):gsub('"mine"', '"b"'):gsub("MINE_OK", "B_OK")
    err, dir = load_error({ ["a.lua"] = a, ["b.lua"] = b })
    assert.equal(dir .. "/b.lua:5: requires: dependency cycle: a -> b -> a", err)
  end)

  it("duplicate ids in one directory and duplicate codes", function()
    local err = load_error({ ["a.lua"] = GOOD, ["b.lua"] = GOOD })
    assert.matches("b.lua:2: id: duplicate check id \"mine\" %(also in .*a.lua%)$", err)
    err = load_error({ ["a.lua"] = GOOD:gsub("MINE_OK", "CERT_OK") })
    assert.matches("a.lua:6: findings.CERT_OK: code already declared by check \"certificate\"", err)
  end)

  it("a check in a later directory replaces one with the same id", function()
    local mine = GOOD:gsub('"mine"', '"relay"'):gsub("MINE_OK", "SITE_RELAY_OK")
    local all = load_dirs(dir_with({ ["relay.lua"] = mine }))
    local relay
    for _, d in ipairs(all) do if d.id == "relay" then relay = d end end
    assert.truthy(relay.findings.SITE_RELAY_OK)
    assert.is_nil(relay.findings.RELAY_OPEN)
    assert.matches("checks/relay.lua$", relay.replaces)
  end)

  it("a check file cannot leak globals into others", function()
    load_dirs(dir_with({ ["g.lua"] = "leaked_by_check = true\n" .. GOOD }))
    assert.is_nil(rawget(_G, "leaked_by_check"))
  end)
end)

describe("check search path", function()
  it("MXPROBE_CHECKS_PATH: colon-separated, missing directories left out, empty = the default", function()
    local a, b = dir_with({}), dir_with({})
    local env = function(v) return function(name) if name == "MXPROBE_CHECKS_PATH" then return v end end end
    assert.same({ a, b }, checks.search_path(env(a .. ":/nonexistent:" .. b)))
    assert.same({}, checks.search_path(env("")))          -- the default, which the source tree does not have
    assert.same({}, checks.search_path(env(nil)))
    local default = require("mxprobe.runtime.paths").root .. "/site-checks"
    assert.same({ require("mxprobe.runtime.paths").checks, a }, checks.dirs { getenv = env(a .. "::" .. default) })
  end)

  it("installed checks load with the stock ones; --checks-dir comes after them", function()
    local installed = dir_with({ ["mine.lua"] = GOOD })
    local later = dir_with({ ["mine.lua"] = GOOD:gsub("a custom check", "the site's version") })
    local getenv = function(name) if name == "MXPROBE_CHECKS_PATH" then return installed end end
    local run = engine.new { getenv = getenv, dns = {}, checks_dirs = { later } }
    local mine
    for _, d in ipairs(run.checks) do if d.id == "mine" then mine = d end end
    assert.equal("the site's version", mine.description)
    run = engine.new { getenv = getenv, dns = {} }
    for _, d in ipairs(run.checks) do if d.id == "mine" then mine = d end end
    assert.equal(installed .. "/mine.lua", mine.file)
    run = engine.new { getenv = getenv, dns = {}, installed_checks = false }
    for _, d in ipairs(run.checks) do assert.are_not.equal("mine", d.id) end
  end)
end)

-- Two addresses for mx.test: 127.0.0.1 (a scripted server) and 127.0.0.2
-- (nothing listens there: refused).
local function fake_dns(extra)
  return {
    query = function(_, name, qtype)
      if extra and extra[qtype] then
        local a = extra[qtype](name)
        if a then return a end
      end
      if qtype == "MX" and name:match("%.test$") then
        return { rcode = "NOERROR", answers = { { type = "MX", preference = 10, host = "mx.test." } } }
      elseif qtype == "A" and name == "mx.test" then
        return { rcode = "NOERROR", answers = { { type = "A", address = "127.0.0.1" }, { type = "A", address = "127.0.0.2" } } }
      elseif qtype == "PTR" then
        return { rcode = "NOERROR", answers = { { type = "PTR", host = "mx.test." } } }
      end
      return { rcode = "NOERROR", answers = {} }
    end,
  }
end

local function check_site(dirs, o)
  local srv = fake.start(o.script or { o.greeting or "220 mx.test ESMTP\r\n", { expect = "^QUIT" }, "221 bye\r\n" }, { lifetime = 10 })
  local cfg = { allow_reserved = { "loopback" }, helo = "tester.test", port = srv.port, families = { 4 },
                timeouts = { connect = 2, greeting = 3, command = 3, tls = 3 } }
  for k, v in pairs(o.config or {}) do cfg[k] = v end
  local run = engine.new { dns = o.dns or fake_dns(), checks_dirs = dirs, installed_checks = false, policy = o.policy, config = cfg }
  local r = run:check_domain("site.test")
  srv:wait()
  return r
end

local function by_address(r, address)
  for _, s in ipairs(r.servers) do if s.address == address then return s end end
end
local function codes(list)
  local out = {}
  for _, f in ipairs(list) do out[#out + 1] = f.code end
  return table.concat(out, " ")
end

describe("custom checks at run time", function()
  local BOOM = [[
return {
  id = "boom", description = "crashes where it runs", scope = "address", requires = { "banner" },
  findings = { BOOM_OK = { severity = "ok", message = "never" } },
  applies = function(ctx) return ctx.facts.banner and ctx.facts.banner.ok end,
  run = function(ctx) local t = nil; return t.field end,
}
]]
  local AFTER = [[
return {
  id = "after_boom", description = "depends on boom", scope = "address", requires = { "boom" },
  findings = { AFTER_OK = { severity = "ok", message = "ran" } },
  run = function(ctx) ctx:finding("AFTER_OK", { n = ctx.facts.boom.count }) end,
}
]]
  local USES = [[
return {
  id = "uses_banner", description = "reads the banner's facts", scope = "address", requires = { "banner" },
  options = { slow_ms = 1000 },
  findings = { USES_OK = { severity = "ok", message = "greeting {code} in {ms} ms (limit {limit})" } },
  applies = function(ctx) return ctx.facts.banner and ctx.facts.banner.ok end,
  run = function(ctx)
    local b = ctx.facts.banner
    ctx:finding("USES_OK", { code = b.code, ms = math.floor(b.seconds * 1000), limit = ctx:option("slow_ms") })
  end,
}
]]

  it("a crash is CHECK_ERROR for that check and that address; its dependants are skipped; the rest goes on", function()
    local dir = dir_with({ ["boom.lua"] = BOOM, ["after_boom.lua"] = AFTER, ["uses_banner.lua"] = USES })
    local r = check_site({ dir }, { config = { only = { "banner", "after_boom", "uses_banner" } } })
    local one, two = by_address(r, "127.0.0.1"), by_address(r, "127.0.0.2")
    assert.equal("CONNECT_OK BANNER_OK CHECK_ERROR USES_OK", codes(one.findings))
    local err = one.findings[3]
    assert.equal("boom", err.check)
    assert.equal("error", err.severity)
    assert.matches("^The check boom failed: .*boom.lua:5: attempt to index a nil value %(local 't'%) %(not run because of it: after_boom%)$", err.message)
    assert.same({ "after_boom" }, err.evidence.skipped)
    assert.is_nil(err.evidence.traceback, "no traceback without -v")
    assert.equal("CONNECT_REFUSED", codes(two.findings))   -- the other address: no error there
    assert.equal("critical", r.verdict)
  end)

  it("with -v the traceback is in the finding and in the text report", function()
    local dir = dir_with({ ["boom.lua"] = BOOM })
    local r = check_site({ dir }, { config = { only = { "boom" }, verbose = true } })
    local err = by_address(r, "127.0.0.1").findings[#by_address(r, "127.0.0.1").findings]
    assert.equal("CHECK_ERROR", err.code)
    assert.matches("stack traceback:", err.evidence.traceback)
    local text = require("mxprobe.report.text").render(r, { verbose = true })
    assert.matches("stack traceback:", text, 1, true)
  end)

  it("a check reads stock facts and the option the policy sets", function()
    local dir = dir_with({ ["uses_banner.lua"] = USES })
    local r = check_site({ dir }, { config = { only = { "uses_banner" } }, policy = { options = { uses_banner = { slow_ms = 250 } } } })
    local f = by_address(r, "127.0.0.1").findings[#by_address(r, "127.0.0.1").findings]
    assert.equal("USES_OK", f.code)
    assert.matches("^greeting 220 in %d+ ms %(limit 250%)$", f.message)
  end)

  it("an option the check did not declare is a bug in the check", function()
    local dir = dir_with({ ["bad_opt.lua"] = USES:gsub('ctx:option%("slow_ms"%)', 'ctx:option("slow")'):gsub("uses_banner", "bad_opt"):gsub("USES_OK", "BAD_OPT_OK") })
    local r = check_site({ dir }, { config = { only = { "bad_opt" } } })
    local f = by_address(r, "127.0.0.1").findings[#by_address(r, "127.0.0.1").findings]
    assert.equal("CHECK_ERROR", f.code)
    assert.matches("check bad_opt has no option \"slow\"", f.message)
  end)
end)

describe("example checks (examples/checks) on loopback", function()
  teardown(function() os.execute("rm -rf '" .. tmp .. "'") end) -- the last block: the temporary files go
  local EX = require("mxprobe.runtime.paths").root .. "/examples/checks"
  local certs
  setup(function() certs = make_certs() end)
  teardown(function() if certs then certs.cleanup() end end)

  local function greeting(text, policy)
    local r = check_site({ EX }, { greeting = text .. "\r\n", policy = policy, config = { only = { "greeting_software" } } })
    local s = by_address(r, "127.0.0.1")
    for _, f in ipairs(s.findings) do if f.check == "greeting_software" then return f, r end end
  end

  it("greeting_software: names the software and the version it sees", function()
    local f = greeting("220 mx1.example.org ESMTP Postfix (Debian/GNU)")
    assert.equal("GREETING_REVEALS_SOFTWARE", f.code)
    assert.equal("warning", f.severity)
    assert.same({ "Postfix" }, f.evidence.found)
    f = greeting("220 mail2.example.org ESMTP Sendmail 8.15.2/8.15.2; Sat, 28 Nov 2026 09:00:00 GMT")
    assert.equal("The greeting reveals Sendmail, version 8.15.2: mail2.example.org ESMTP Sendmail 8.15.2/8.15.2; Sat, 28 Nov 2026 09:00:00 GMT", f.message)
    f = greeting("220 mx01.example.org ESMTP")
    assert.equal("GREETING_DISCREET", f.code)
    -- a site that minds versions only
    f = greeting("220 mx1.example.org ESMTP Postfix", { options = { greeting_software = { versions_only = true } } })
    assert.equal("GREETING_DISCREET", f.code)
    f = greeting("220 mx1.example.org ESMTP Exim 4.96", { options = { greeting_software = { versions_only = true } } })
    assert.equal("version 4.96", f.evidence.what)
  end)

  it("mx_networks: one network is a warning; the prefix length is an option", function()
    local run = engine.new { dns = fake_dns(), checks_dirs = { EX }, installed_checks = false }
    local function summary(addresses, pol)
      if pol then run = engine.new { dns = fake_dns(), checks_dirs = { EX }, installed_checks = false, policy = pol } end
      local result = { domain = "site.test", dns = { mx = {}, findings = {} }, findings = {}, servers = {} }
      for _, a in ipairs(addresses) do
        result.servers[#result.servers + 1] = { host = "mx.test", address = a, preference = 10, findings = {},
                                                facts = { connect = { state = a:find("^198") and "refused" or "connected" } } }
      end
      local dctx = context.domain(run, result)
      for _, d in ipairs(run.checks) do if d.id == "mx_networks" then dctx:run_summary(d) end end
      return result.findings[1]
    end
    local f = summary({ "192.0.2.10", "192.0.2.11" })
    assert.equal("MX_SINGLE_NETWORK", f.code)
    assert.equal("Every reachable MX address is in 1 network(s) (192.0.2.0/24); at least 2 wanted", f.message)
    assert.equal("MX_NETWORKS_OK", summary({ "192.0.2.10", "203.0.113.5", "2001:db8::25" }).code)
    assert.equal("MX_SINGLE_NETWORK", summary({ "192.0.2.10", "198.51.100.9" }).code, "unreachable addresses do not count")
    assert.equal("MX_NETWORKS_OK", summary({ "192.0.2.10", "192.0.2.11" }, { options = { mx_networks = { ipv4_prefix = 32 } } }).code)
    assert.is_nil(summary({}))
  end)

  describe("dane_tlsa", function()
    local x509 = require "mxprobe.net.x509"
    local function pem(path) local f = assert(io.open(path)); local s = f:read("a"); f:close(); return s end
    local function tls_script()
      return {
        "220 mx.test ESMTP\r\n", { expect = "^EHLO" }, "250-mx.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
        { expect = "^STARTTLS" }, "220 2.0.0 ready\r\n",
        function(c)
          local info, code, detail = c:tls_handshake({ server = true, cert = certs.leaf.valid.chain, key = certs.leaf.valid.key }, loop.now() + 3)
          if not info then return nil, code, detail end
          return true
        end,
        { expect = "^EHLO" }, "250-mx.test\r\n250 8BITMIME\r\n", { expect = "^QUIT" }, "221 bye\r\n",
      }
    end
    local function dane(records, ad)
      local dns = fake_dns({ TLSA = function(name)
        assert.equal("_25._tcp.mx.test", name)
        local answers = {}
        for _, r in ipairs(records) do
          answers[#answers + 1] = { type = "TLSA", usage = r[1], selector = r[2], mtype = r[3], data = r[4] }
        end
        return { rcode = "NOERROR", ad = ad, answers = answers }
      end })
      local r = check_site({ EX }, { script = tls_script(), dns = dns,
        config = { only = { "dane_tlsa" }, ca_file = certs.ca } })
      local out = {}
      for _, f in ipairs(by_address(r, "127.0.0.1").findings) do
        if f.check == "dane_tlsa" then out[#out + 1] = f end
      end
      return out, r
    end

    it("3 1 1 of the leaf's key matches; a DNSSEC-validated answer is not flagged", function()
      local leaf = assert(x509.load_pem(pem(certs.leaf.valid.cert)))[1]
      local fs = dane({ { 3, 1, 1, leaf:spki_sha256() } }, true)
      assert.equal(1, #fs)
      assert.equal("DANE_OK", fs[1].code)
      assert.equal("TLSA 3 1 1 at _25._tcp.mx.test matches the server's certificate", fs[1].message)
    end)

    it("2 0 1 of the intermediate matches (DANE-TA); without DNSSEC it says so", function()
      local int = assert(x509.load_pem(pem(certs.intermediate)))[1]
      local fs = dane({ { 2, 0, 1, int:fingerprint():gsub(":", "") } }, false)
      assert.equal("DANE_INSECURE DANE_OK", codes(fs))
      assert.matches("issuer at depth 1", fs[2].message)
    end)

    it("a stale record is critical and the hint gives the record to publish", function()
      local leaf = assert(x509.load_pem(pem(certs.leaf.valid.cert)))[1]
      local fs, r = dane({ { 3, 1, 1, ("ab"):rep(32) } }, true)
      assert.equal("DANE_MISMATCH", fs[1].code)
      assert.equal("critical", r.verdict)
      assert.matches(leaf:spki_sha256(), fs[1].hint, 1, true)
    end)

    it("no record, and records of kinds it does not evaluate", function()
      assert.equal("DANE_NONE", codes(dane({}, true)))
      assert.equal("DANE_UNUSABLE", codes(dane({ { 3, 1, 2, ("ab"):rep(64) } }, true)))
    end)
  end)
end)
