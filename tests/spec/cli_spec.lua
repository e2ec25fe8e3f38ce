-- The command line, against a fake engine: argument validation (one line
-- on stderr naming the option, exit 3), --help/--version, the config the
-- engine receives, --json, exit codes from verdicts, concurrency and order,
-- colour rules, --list-checks and --explain.  No network.
local cjson = require "cjson"
local loop = require "mxprobe.runtime.loop"
local cli = require "mxprobe.app.cli"

local function buffer()
  local b = { parts = {} }
  function b:write(...)
    for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring((select(i, ...))) end
    return self
  end
  function b:text() return table.concat(self.parts) end
  return b
end

local CHECKS = {
  { id = "mx", description = "Resolve the MX records", scope = "domain", categories = { "dns" }, requires = {},
    findings = { MX_OK = { severity = "ok", message = "MX records found" },
                 MX_NONE = { severity = "critical", message = "No MX and no address", hint = "Publish an MX record." } } },
  { id = "connect", description = "TCP connection to port 25", scope = "address", categories = { "transport" }, requires = { "mx" },
    findings = { CONNECT_OK = { severity = "ok", message = "Connected" },
                 CONNECT_REFUSED = { severity = "critical", message = "Connection refused", hint = "Start the MTA or open the firewall." } } },
  { id = "banner", description = "The 220 greeting", scope = "session", categories = { "smtp" }, requires = { "connect" },
    findings = { BANNER_OK = { severity = "ok", message = "220 received" } } },
}

local EXIT = { ok = 0, warning = 1, critical = 2, inconclusive = 3 }

local function result_for(domain, verdict)
  local sev = verdict == "inconclusive" and "inconclusive" or verdict
  return {
    schema = 1, domain = domain, verdict = verdict, exit_code = EXIT[verdict],
    policy = "default", started = "2026-11-28T09:00:00Z", duration_s = 0.01,
    decided_by = verdict ~= "ok" and { code = "CONNECT_REFUSED", rule = "worst" } or nil,
    dns = { mx = { { preference = 10, host = "mx." .. domain, addresses = { "192.0.2.10" } } }, findings = {} },
    servers = { { host = "mx." .. domain, address = "192.0.2.10", family = 4, port = 25, preference = 10,
                  score = 50, grade = "C", facts = {},
                  findings = { { code = "CONNECT_OK", check = "connect", severity = sev, message = "Connected", hint = "h" } },
                  transcript = {} } },
    findings = {},
  }
end

-- A fake engine: verdicts per domain ("ok" by default), optional delays,
-- and a record of what cli passed in.
local function fake_engine(o)
  o = o or {}
  local E = { calls = {}, active = 0, peak = 0 }
  function E.new(spec)
    E.spec = spec
    if o.new_error then error(o.new_error, 0) end
    local run = { checks = CHECKS }
    if o.strict_only then -- like the real engine: unknown ids in config.only raise
      local known = {}
      for _, c in ipairs(CHECKS) do known[c.id] = true end
      for _, id in ipairs(spec.config.only or {}) do
        if not known[id] then error(("unknown check id %q"):format(id), 0) end
      end
    end
    if o.disabled then -- run.all_checks: every check; run.checks: those that run
      run.all_checks, run.checks = CHECKS, {}
      for _, c in ipairs(CHECKS) do if not o.disabled[c.id] then run.checks[#run.checks + 1] = c end end
    end
    function run:check_domain(d)
      E.calls[#E.calls + 1] = d
      E.active = E.active + 1
      E.peak = math.max(E.peak, E.active)
      if o.delay and o.delay[d] then loop.sleep(o.delay[d]) end
      E.active = E.active - 1
      if o.crash and o.crash[d] then error("boom in " .. d) end
      return result_for(d, (o.verdicts or {})[d] or "ok")
    end
    function run:check_host(h, port)
      E.calls[#E.calls + 1] = h .. ":" .. tostring(port)
      local r = result_for(h, "ok")
      r.mode = "host"
      return r
    end
    return run
  end
  function E.catalog()
    local cat = {}
    for _, c in ipairs(CHECKS) do
      for code, f in pairs(c.findings) do
        cat[code] = { check = c.id, severity = f.severity, message = f.message, hint = f.hint, description = c.description }
      end
    end
    return cat
  end
  return E
end

-- run the cli; returns exit code, stdout, stderr, engine
local function run(argv, o, env)
  local out, err = buffer(), buffer()
  local engine = fake_engine(o)
  env = env or {}
  env.engine, env.stdout, env.stderr = engine, out, err
  local code = cli.main(argv, env)
  return code, out:text(), err:text(), engine
end

local function one_line(s) return s:match("^[^\n]*\n$") ~= nil end

describe("cli: usage", function()
  it("--help prints every option on stdout and exits 0", function()
    local code, out, err = run({ "--help" })
    assert.equal(0, code)
    assert.equal("", err)
    assert.matches("^Usage: mxprobe", out)
    for _, o in ipairs { "--json", "--mx", "--port", "--helo", "--timeout-connect", "--timeout-greeting",
                         "--timeout-command", "--timeout-tls", "-4", "-6", "--resolver", "--ca-file", "--checks",
                         "--no-relay", "--relay-from", "--relay-to", "--policy", "--checks-dir", "--list-checks",
                         "--explain", "--verbose", "--no-color", "--version", "Exit status" } do
      assert.matches(o, out, 1, true)
    end
  end)

  it("-h wins over mistakes elsewhere on the line", function()
    local code, out = run({ "--port", "nope", "-h" })
    assert.equal(0, code)
    assert.matches("Usage:", out, 1, true)
  end)

  it("--version prints the core version", function()
    local code, out = run({ "--version" })
    assert.equal(0, code)
    -- the first line; the libraries' versions follow (toolbox_spec)
    assert.equal("mxprobe " .. require("mxprobe.runtime.paths").version, out:match("^[^\n]*"))
  end)

  it("with no domain says so and exits 3", function()
    local code, out, err = run({})
    assert.equal(3, code)
    assert.equal("", out)
    assert.matches("^mxprobe: no domain given", err)
    assert.is_true(one_line(err))
  end)
end)

describe("cli: validation", function()
  local cases = {
    { { "--port", "0", "a.test" }, "mxprobe: --port: '0' is not a port number (1-65535)" },
    { { "--port", "65536", "a.test" }, "mxprobe: --port: '65536' is not a port number" },
    { { "--port", "25x", "a.test" }, "mxprobe: --port: '25x'" },
    { { "--timeout-connect", "0", "a.test" }, "mxprobe: --timeout-connect: '0': the timeout must be more than 0 seconds" },
    { { "--timeout-greeting", "soon", "a.test" }, "mxprobe: --timeout-greeting: 'soon' is not a number of seconds" },
    { { "--timeout-command=-1", "a.test" }, "mxprobe: --timeout-command: '-1' is not a number of seconds" },
    { { "--timeout-tls", "1e9", "a.test" }, "mxprobe: --timeout-tls: '1e9' is not a number of seconds" },
    { { "--resolver", "300.1.1.1", "a.test" }, "mxprobe: --resolver: '300.1.1.1' is not IP[:PORT]" },
    { { "--resolver", "ns1.example", "a.test" }, "mxprobe: --resolver: 'ns1.example' is not IP[:PORT]" },
    { { "--resolver", "192.0.2.1:0", "a.test" }, "mxprobe: --resolver: '192.0.2.1:0': '0' is not a port number" },
    { { "--resolver", "[2001:db8::zz]:53", "a.test" }, "mxprobe: --resolver: '[2001:db8::zz]:53' is not IP[:PORT]" },
    { { "--ca-file", "/nonexistent/ca.pem", "a.test" }, "mxprobe: --ca-file: cannot read '/nonexistent/ca.pem': No such file or directory" },
    { { "--ca-file", "/tmp", "a.test" }, "mxprobe: --ca-file: cannot read '/tmp': Is a directory" },
    { { "--policy", "/nonexistent/policy.lua", "a.test" }, "mxprobe: --policy: cannot read '/nonexistent/policy.lua'" },
    { { "--checks-dir", "/etc/hostname", "a.test" }, "mxprobe: --checks-dir: '/etc/hostname' is not a directory" },
    { { "--checks", "banner,Bad!", "a.test" }, "mxprobe: --checks: 'Bad!' is not a check id" },
    { { "--checks", "banner,nosuch", "a.test" }, "mxprobe: --checks: unknown check 'nosuch' (known: mx, connect, banner)" },
    { { "--helo", "bad name", "a.test" }, "mxprobe: --helo: 'bad name' is not a host name or address literal" },
    { { "--helo", "[300.0.0.1]", "a.test" }, "mxprobe: --helo: '[300.0.0.1]' is not an address literal" },
    { { "--relay-from", "nobody", "a.test" }, "mxprobe: --relay-from: 'nobody' is not a mail address" },
    { { "--relay-to", "a b@c.test", "a.test" }, "mxprobe: --relay-to: 'a b@c.test' is not a mail address" },
    { { "--no-relay", "--relay-to", "x@y.test", "a.test" }, "mxprobe: --no-relay: cannot be combined with --relay-to" },
    { { "--parallel", "0", "a.test" }, "mxprobe: --parallel: '0' is not a whole number" },
    { { "--allow-reserved", "documentation,public", "a.test" }, "mxprobe: --allow-reserved: 'public' is not an address kind (documentation, private," },
    { { "--mx", "bad_host!", }, "mxprobe: --mx: 'bad_host!' is not a host name or IP address" },
    { { "exa mple.test" }, "mxprobe: 'exa mple.test' is not a domain name (it contains spaces" },
    { { "a..test" }, "mxprobe: 'a..test' is not a domain name (empty label)" },
    { { "-bad.test" }, "mxprobe: unknown option '-b'" },
    { { "ok.test", "bad-.test" }, "mxprobe: 'bad-.test' is not a domain name (a label starts or ends with '-')" },
    { { "☃.test" }, "mxprobe: '☃.test' is not a domain name (internationalised name: string contains a disallowed character)" },
    { { "bad-ü-.test" }, "mxprobe: 'bad-ü-.test' is not a domain name (internationalised name:" },
    { { "--prot", "25", "a.test" }, "mxprobe: unknown option '--prot'; did you mean '--port'? (see mxprobe --help)" },
    { { "--port" }, "mxprobe: option '--port' requires an argument" },
    { { "--list-checks", "a.test" }, "mxprobe: --list-checks: takes no DOMAIN or --mx" },
    { { "--list-checks", "--explain", "MX_OK" }, "mxprobe: --list-checks and --explain: choose one" },
  }
  for _, c in ipairs(cases) do
    it(table.concat(c[1], " ") .. " -> exit 3, one line", function()
      local code, out, err, engine = run(c[1])
      assert.equal(3, code)
      assert.equal("", out)
      assert.is_true(one_line(err), err)
      assert.matches(c[2], err, 1, true)
      assert.same({}, engine.calls, "nothing may be probed after a usage error")
    end)
  end

  it("names --checks for an unknown id even when the engine raises about it", function()
    local code, out, err = run({ "--checks", "connect,nosuch", "a.test" }, { strict_only = true })
    assert.equal(3, code)
    assert.equal("", out)
    assert.equal("mxprobe: --checks: unknown check 'nosuch' (known: mx, connect, banner)\n", err)
  end)

  it("reports a bad policy or check file with the engine's own message", function()
    local code, out, err = run({ "a.test" }, { new_error = "site.lua:3: weights.tls: number expected, got string" })
    assert.equal(3, code)
    assert.equal("", out)
    assert.equal("mxprobe: site.lua:3: weights.tls: number expected, got string\n", err)
  end)

  it("keeps a multi-line engine error to its first line", function()
    local _, _, err = run({ "a.test" }, { new_error = "checks/x.lua:1: boom\nstack traceback:\n\t[C]: in ?" })
    assert.equal("mxprobe: checks/x.lua:1: boom\n", err)
  end)
end)

describe("cli: the engine's config", function()
  it("passes every option, normalised", function()
    local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)
    local code, _, err, engine = run({
      "--port", "2525", "--helo", "probe.lab.test", "-4", "--resolver", "192.0.2.53",
      "--resolver", "[2001:DB8::53]:5353", "--resolver", "2001:db8::1", "--ca-file", "/etc/hostname",
      "--checks", "banner, connect", "--relay-from", "probe@lab.test", "--relay-to", "x@elsewhere.test",
      "--timeout-connect", "2.5", "--timeout-greeting", "30", "--timeout-command", "5", "--timeout-tls", ".5",
      "--timeout-dns", "1", "--policy", "/etc/hostname", "--checks-dir", dir, "-v", "a.test" })
    os.remove(dir)
    assert.equal("", err)
    assert.equal(0, code)
    local cfg = engine.spec.config
    assert.equal(2525, cfg.port)
    assert.equal("probe.lab.test", cfg.helo)
    assert.same({ 4 }, cfg.families)
    assert.same({ "192.0.2.53:53", "[2001:db8::53]:5353", "[2001:db8::1]:53" }, cfg.resolver.servers)
    assert.equal("/etc/hostname", cfg.ca_file)
    assert.same({ "banner", "connect" }, cfg.only)
    -- the relay flags are the relay check's options
    assert.same({ relay = { from = "probe@lab.test", to = "x@elsewhere.test" } }, cfg.options)
    assert.same({ connect = 2.5, greeting = 30, command = 5, tls = 0.5, dns = 1 }, cfg.timeouts)
    assert.is_true(cfg.verbose)
    assert.equal("/etc/hostname", engine.spec.policy)
    assert.same({ dir }, engine.spec.checks_dirs)
  end)

  it("leaves what was not given to the engine's defaults", function()
    local _, _, _, engine = run({ "a.test." })
    local cfg = engine.spec.config
    assert.is_nil(cfg.port); assert.is_nil(cfg.helo); assert.is_nil(cfg.families)
    assert.is_nil(cfg.resolver); assert.is_nil(cfg.timeouts); assert.is_nil(cfg.only)
    assert.is_nil(cfg.disable, "the policy decides whether the relay probe runs")
    assert.is_nil(cfg.options)
    assert.is_false(cfg.verbose)
    assert.is_nil(engine.spec.policy)
    assert.same({}, engine.spec.checks_dirs)
    assert.same({ "a.test" }, engine.calls, "the trailing dot is dropped")
  end)

  it("--allow-reserved names address kinds to probe anyway", function()
    assert.same({ "documentation", "private" },
      select(4, run({ "--allow-reserved", "documentation, private", "a.test" })).spec.config.allow_reserved)
    assert.same(cli.RESERVED_KINDS, select(4, run({ "--allow-reserved", "all", "a.test" })).spec.config.allow_reserved)
  end)

  it("-6 alone means IPv6 only, -4 -6 both, --no-relay disables the probe", function()
    assert.same({ 6 }, select(4, run({ "-6", "a.test" })).spec.config.families)
    assert.is_nil(select(4, run({ "-4", "-6", "a.test" })).spec.config.families)
    assert.same({ "relay" }, select(4, run({ "--no-relay", "a.test" })).spec.config.disable)
  end)

  it("--mx tests hosts directly, with --port", function()
    local code, out, _, engine = run({ "--mx", "mx1.lab.test", "--mx", "[2001:db8::25]", "--port", "2525" })
    assert.equal(0, code)
    assert.same({ "mx1.lab.test:2525", "2001:db8::25:2525" }, engine.calls)
    assert.matches("mx1.lab.test  OK", out, 1, true)
    local _, _, _, e2 = run({ "--mx", "192.0.2.25" })
    assert.same({ "192.0.2.25:nil" }, e2.calls, "no --port: the engine (policy) decides")
  end)
end)

describe("cli: output and exit codes", function()
  it("--json gives one parseable document per domain, in argument order", function()
    local code, out, err = run({ "--json", "slow.test", "fast.test", "mid.test" },
      { delay = { ["slow.test"] = 0.1, ["mid.test"] = 0.05 } })
    assert.equal(0, code)
    assert.equal("", err)
    local docs = {}
    for line in out:gmatch("([^\n]*)\n") do docs[#docs + 1] = cjson.decode(line) end
    assert.equal(3, #docs)
    assert.same({ "slow.test", "fast.test", "mid.test" }, { docs[1].domain, docs[2].domain, docs[3].domain })
    for _, d in ipairs(docs) do
      assert.equal(1, d.schema)
      for _, k in ipairs { "verdict", "exit_code", "policy", "started", "duration_s", "dns", "servers", "findings" } do
        assert.is_not_nil(d[k], k)
      end
      assert.equal("table", type(d.servers[1].findings))
    end
    assert.matches('"findings":[]', out, 1, true)
    assert.is_nil(out:find("\27", 1, true))
  end)

  it("converts internationalised names to A-labels (libidn2) and keeps the name as given", function()
    local code, out, _, engine = run({ "--json", "Bücher.test", "例え.テスト." })
    assert.equal(0, code)
    assert.same({ "xn--bcher-kva.test", "xn--r8jz45g.xn--zckzah" }, engine.calls)
    local docs = {}
    for line in out:gmatch("[^\n]+") do docs[#docs + 1] = cjson.decode(line) end
    assert.equal("xn--bcher-kva.test", docs[1].domain)
    assert.equal("Bücher.test", docs[1].input)
    assert.equal("例え.テスト.", docs[2].input)
    local _, out2 = run({ "--json", "plain.test" })
    assert.is_nil(cjson.decode(out2).input)
  end)

  it("checks domains concurrently, at most --parallel at once", function()
    local t0 = loop.now()
    local _, _, _, engine = run({ "--json", "a.test", "b.test", "c.test" },
      { delay = { ["a.test"] = 0.2, ["b.test"] = 0.2, ["c.test"] = 0.2 } })
    local dt = loop.now() - t0
    assert.is_true(dt < 0.35, "took " .. dt)
    assert.equal(3, engine.peak)
    t0 = loop.now()
    local _, _, _, e1 = run({ "--json", "--parallel", "1", "a.test", "b.test" },
      { delay = { ["a.test"] = 0.1, ["b.test"] = 0.1 } })
    dt = loop.now() - t0
    assert.equal(1, e1.peak)
    assert.is_true(dt >= 0.19, "took " .. dt)
  end)

  local verdict_cases = {
    { { ok = "ok" }, 0 },
    { { w = "warning" }, 1 },
    { { c = "critical" }, 2 },
    { { i = "inconclusive" }, 3 },
    { { a = "ok", b = "warning" }, 1 },
    { { a = "warning", b = "critical" }, 2 },
    { { a = "critical", b = "inconclusive" }, 2 },
    { { a = "warning", b = "inconclusive" }, 3 },
  }
  for _, vc in ipairs(verdict_cases) do
    local names, desc = {}, {}
    for d, v in pairs(vc[1]) do names[#names + 1] = d .. ".test"; desc[#desc + 1] = v end
    table.sort(names); table.sort(desc)
    it(("verdicts %s -> exit %d"):format(table.concat(desc, "+"), vc[2]), function()
      local verdicts = {}
      for d, v in pairs(vc[1]) do verdicts[d .. ".test"] = v end
      assert.equal(vc[2], (run(names, { verdicts = verdicts })))
      assert.equal(vc[2], (run({ "--json", table.unpack(names) }, { verdicts = verdicts })))
    end)
  end

  it("a crash in the engine is reported, the other domains still run", function()
    local code, out, err = run({ "--json", "ok.test", "bad.test" }, { crash = { ["bad.test"] = true } })
    assert.equal(3, code)
    assert.matches("^mxprobe: bad.test: internal error: .*boom in bad.test\n$", err)
    local first, second = out:match("^([^\n]*)\n([^\n]*)\n$")
    assert.equal("ok", cjson.decode(first).verdict)
    local b = cjson.decode(second)
    assert.equal("inconclusive", b.verdict)
    assert.equal(3, b.exit_code)
    assert.matches("boom in bad.test", b.error, 1, true)
  end)

  it("stops probing when nobody reads stdout any more", function()
    local engine = fake_engine({ delay = { ["b.test"] = 5, ["c.test"] = 5 } })
    local writes = 0
    local closed = { write = function(self) writes = writes + 1; return nil, "Broken pipe" end }
    local err = buffer()
    local t0 = loop.now()
    local code = cli.main({ "--json", "a.test", "b.test", "c.test" }, { engine = engine, stdout = closed, stderr = err })
    assert.is_true(loop.now() - t0 < 1, "the slow domains were cancelled")
    assert.equal(3, code)
    assert.equal("", err:text(), "a reader that went away is not an error worth a message")
    -- a flush error counts too
    writes = 0
    local unflushable = { write = function(self) return self end, flush = function() return nil, "No space left on device" end }
    err = buffer()
    code = cli.main({ "--json", "a.test", "b.test" }, { engine = fake_engine({ delay = { ["b.test"] = 5 } }), stdout = unflushable, stderr = err })
    assert.equal(3, code)
    assert.equal("mxprobe: cannot write the report: No space left on device; stopped\n", err:text())
  end)

  it("text: one report per domain, then a summary line", function()
    local code, out = run({ "a.test", "b.test" }, { verdicts = { ["b.test"] = "critical" } })
    assert.equal(2, code)
    assert.matches("^a%.test  OK[ \n]", out) -- then the decisive reason (toolbox_spec)
    assert.matches("\nb%.test  CRITICAL[ \n]", out)
    assert.matches("decided by CONNECT_REFUSED (rule: worst)", out, 1, true)
    assert.matches("\n2 targets: 1 ok, 1 critical\n$", out)
  end)
end)

describe("cli: colour", function()
  local function env_with(vars, tty)
    return { tty = tty, getenv = function(k) return vars[k] end }
  end
  local function coloured(argv, vars, tty)
    local _, out = run(argv, { verdicts = { ["a.test"] = "warning" } }, env_with(vars, tty))
    return out:find("\27[", 1, true) ~= nil
  end

  it("colours on a terminal", function()
    assert.is_true(coloured({ "a.test" }, { TERM = "xterm" }, true))
  end)
  it("not when NO_COLOR is set to anything non-empty", function()
    assert.is_false(coloured({ "a.test" }, { TERM = "xterm", NO_COLOR = "1" }, true))
    assert.is_false(coloured({ "a.test" }, { TERM = "xterm", NO_COLOR = "0" }, true))
    assert.is_true(coloured({ "a.test" }, { TERM = "xterm", NO_COLOR = "" }, true))
  end)
  it("not with --no-color, not off a terminal, not on a dumb one, never in JSON", function()
    assert.is_false(coloured({ "--no-color", "a.test" }, { TERM = "xterm" }, true))
    assert.is_false(coloured({ "a.test" }, { TERM = "xterm" }, false))
    assert.is_false(coloured({ "a.test" }, { TERM = "dumb" }, true))
    assert.is_false(coloured({ "a.test" }, {}, true))
    assert.is_false(coloured({ "--json", "a.test" }, { TERM = "xterm" }, true))
  end)
end)

describe("cli: --list-checks and --explain", function()
  it("--list-checks lists every check from the engine", function()
    local code, out, err = run({ "--list-checks" })
    assert.equal(0, code)
    assert.equal("", err)
    assert.matches("^ID%s+SCOPE%s+REQUIRES%s+CODES%s+DESCRIPTION\n", out)
    assert.matches("\nmx%s+domain%s+%-%s+2%s+Resolve the MX records\n", out)
    assert.matches("\nbanner%s+session%s+connect%s+1%s+The 220 greeting\n", out)
  end)

  it("--list-checks marks the checks that would not run", function()
    local code, out = run({ "--list-checks" }, { disabled = { banner = true } })
    assert.equal(0, code)
    assert.matches("The 220 greeting (not run: disabled by the policy or options)\n", out, 1, true)
    assert.is_nil(out:find("TCP connection to port 25 (not run", 1, true))
    local _, js = run({ "--list-checks", "--json" }, { disabled = { banner = true } })
    local list = cjson.decode(js)
    assert.is_true(list[2].enabled)
    assert.is_false(list[3].enabled)
  end)

  it("--list-checks --json is one JSON array", function()
    local code, out = run({ "--list-checks", "--json" })
    assert.equal(0, code)
    local list = cjson.decode(out)
    assert.equal(3, #list)
    assert.equal("mx", list[1].id)
    assert.equal("critical", list[2].findings.CONNECT_REFUSED.severity)
    assert.matches('"requires":[]', out, 1, true)
  end)

  it("--explain prints code, check, severity, message, hint and description", function()
    local code, out, err = run({ "--explain", "connect_refused" })
    assert.equal(0, code)
    assert.equal("", err)
    assert.matches("^code:%s+CONNECT_REFUSED\n", out)
    assert.matches("\ncheck:%s+connect: TCP connection to port 25\n", out)
    assert.matches("\nseverity:%s+critical %(the default", out)
    assert.matches("\nmessage:%s+Connection refused\n", out)
    assert.matches("\nhint:%s+Start the MTA or open the firewall.\n", out)
    assert.matches("\nrequires:%s+mx\n", out)
  end)

  it("--explain --json", function()
    local code, out = run({ "--explain", "BANNER_OK", "--json" })
    assert.equal(0, code)
    local e = cjson.decode(out)
    assert.equal("BANNER_OK", e.code)
    assert.equal("banner", e.check)
    assert.equal("The 220 greeting", e.description)
  end)

  it("--explain of an unknown code exits 3 with suggestions", function()
    local code, out, err = run({ "--explain", "CONNECT_REFUSD" })
    assert.equal(3, code)
    assert.equal("", out)
    assert.is_true(one_line(err))
    assert.matches("mxprobe: --explain: unknown code 'CONNECT_REFUSD' (did you mean CONNECT_REFUSED?)", err, 1, true)
    local code2, _, err2 = run({ "--explain", "NOPE" })
    assert.equal(3, code2)
    assert.equal("mxprobe: --explain: unknown code 'NOPE'; mxprobe --list-checks -v lists them all\n", err2)
  end)
end)
