-- The check contract (issue 9 section 2) and verdicts that are right for the
-- right reason (issue 12): what a check sees and may do, what the result
-- says about checks that did not run, servers that were not tested, MX left
-- out, whose fault a timeout is, and Lua that computes without end.
-- Loopback only: the fake resolver maps *.test to mx.test -> 127.0.0.1.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local context = require "mxprobe.engine.context"
local budget = require "mxprobe.runtime.budget"
local socket = require "mxprobe.net.socket"
local json = require "mxprobe.report.json"
local text = require "mxprobe.report.text"
local fake_dns = require "tests.helpers.fake_resolver"

local ROOT = require("mxprobe.runtime.paths").root
local tmp = assert(io.popen("mktemp -d /tmp/mxprobe-contract.XXXXXX")):read("l")
local n = 0
local function dir_with(files)
  n = n + 1
  local dir = ("%s/d%d"):format(tmp, n)
  os.execute("mkdir -p " .. dir)
  for name, body in pairs(files) do
    local f = assert(io.open(dir .. "/" .. name, "w"))
    f:write(body)
    f:close()
  end
  return dir
end

-- a loopback port where nothing listens: connections are refused at once
local function free_port()
  local l = assert(socket.listen("127.0.0.1", 0))
  local _, port = l:local_addr()
  l:close()
  return port
end

local function new_run(extra, opts)
  local config = { allow_reserved = { "loopback" }, families = { 4 }, helo = "t.test", port = free_port(),
                   timeouts = { connect = 2, greeting = 2, command = 2, dns = 1 } }
  for k, v in pairs(extra or {}) do config[k] = v end
  opts = opts or {}
  return engine.new { dns = opts.dns or fake_dns, config = config, installed_checks = false,
                      checks_dirs = opts.checks_dirs, policy = opts.policy }
end

local function find(list, code)
  for _, f in ipairs(list or {}) do if f.code == code then return f end end
end
local function not_run(list, id)
  for _, e in ipairs(list or {}) do if e.check == id then return e.reason end end
end

describe("the check contract", function()
  teardown(function() os.execute("rm -rf '" .. tmp .. "'") end)

  it("facts of domain-scope checks are in the result", function()
    local r = new_run({ only = { "mx" } }):check_domain("a.test")
    assert.same({ count = 1, hosts = { "10 mx.test" } }, r.facts.mx)
    assert.matches('"facts":{"mx":', json.render(r), 1, true)
  end)

  it("--mx: the engine sets the targets and the mx check looks nothing up", function()
    local asked = 0
    local dns = { query = function(self, name, qtype)
      if qtype == "MX" then asked = asked + 1 end
      return fake_dns.query(self, name, qtype)
    end }
    local r = new_run({ only = { "address" } }, { dns = dns }):check_host("mx.test")
    assert.equal(0, asked)
    assert.same({ given = true }, r.facts.mx)
    assert.equal("127.0.0.1", r.servers[1].address)
  end)

  it("an address check gets no session; a session check does", function()
    local dir = dir_with {
      ["addr_probe.lua"] = [[
return { id = "addr_probe", description = "x", scope = "address", requires = { "connect" },
  findings = { ADDR_PROBE_SEEN = { severity = "info", message = "session: {s}" } },
  run = function(ctx)
    ctx:finding("ADDR_PROBE_SEEN", { s = tostring(ctx:session()) })
    ctx:extra_session()
  end }]],
      ["sess_probe.lua"] = [[
return { id = "sess_probe", description = "x", scope = "session", requires = { "connect" },
  findings = { SESS_PROBE_SEEN = { severity = "info", message = "extra: {code}" } },
  run = function(ctx)
    local s, code = ctx:extra_session()
    ctx:finding("SESS_PROBE_SEEN", { code = tostring(code) })
  end }]],
    }
    local r = new_run({ only = { "addr_probe", "sess_probe" } }, { checks_dirs = { dir } }):check_domain("a.test")
    local s = r.servers[1]
    assert.equal("session: nil", find(s.findings, "ADDR_PROBE_SEEN").message)
    local err = find(s.findings, "CHECK_ERROR")
    assert.equal("addr_probe", err.check)
    assert.matches('scope "address", which gets no session', err.message, 1, true)
    assert.equal("extra: refused", find(s.findings, "SESS_PROBE_SEEN").message)
  end)

  it("options: the command line wins over the policy, the policy over the default", function()
    local run = new_run({ options = { relay = { to = "cli@elsewhere.test" } } },
      { policy = { options = { relay = { from = "pol@here.test", to = "pol@elsewhere.test" } } } })
    local relay
    for _, d in ipairs(run.checks) do if d.id == "relay" then relay = d end end
    local r = { domain = "a.test", servers = {}, findings = {}, dns = { findings = {}, mx = {} } }
    local ctx = context.server(run, r, { host = "mx.test", address = "127.0.0.1", port = 25, facts = {}, findings = {} })
    ctx.check = relay
    assert.equal("cli@elsewhere.test", ctx:option("to"))
    assert.equal("pol@here.test", ctx:option("from"))
    ctx.check = nil
  end)

  it("the engine and the policy name no stock check", function()
    local ids = {}
    for _, d in ipairs(require("mxprobe.engine.checks").load({ ROOT .. "/checks" })) do ids[#ids + 1] = d.id end
    local offenders = {}
    for _, dir in ipairs { "engine", "policy" } do
      local p = io.popen(("ls %s/lua/mxprobe/%s/*.lua"):format(ROOT, dir))
      for path in p:lines() do
        -- policy/senders.lua and its verdict (sender_verdict.lua) are the
        -- exceptions: the sender matrix is, by definition, what the stock
        -- checks' facts (and their session findings) mean to each kind of sender
        if path:match("/policy/senders%.lua$") or path:match("/policy/sender_verdict%.lua$") then goto next_file end
        local f = assert(io.open(path))
        local lnum = 0
        for line in f:lines() do
          lnum = lnum + 1
          local code = line:gsub("%-%-.*$", "")
          for _, id in ipairs(ids) do
            -- a quoted id, or a field named by it (disabled.relay), outside comments;
            -- "connect" and "dns" are also time-out phases (ctx:timeout("connect"))
            -- "address" is also a scope and a field of every server record
            local quoted = code:find('"' .. id .. '"', 1, true) and not code:find('timeout%("' .. id .. '"%)')
              and not code:find('scope == "' .. id .. '"', 1, true)
            -- (result.dns.mx and api.mx are the MX list of the result schema)
            local field = id ~= "address" and code:find("[%w_]%." .. id .. "%f[^%w_]") and not code:find("timeouts%." .. id)
              and not code:find("dns%.mx%f[^%w_]") and not code:find("api%.mx%f[^%w_]")
            if quoted or field then offenders[#offenders + 1] = ("%s:%d: %s"):format(path:sub(#ROOT + 2), lnum, line) end
          end
        end
        f:close()
        ::next_file::
      end
      p:close()
    end
    assert.same({}, offenders)
  end)
end)

describe("nothing skipped in silence; no grade without a test", function()
  it("a refused connection: the checks that need a session are not run, with the reason, and the server has no score", function()
    local r = new_run():check_domain("a.test")
    local s = r.servers[1]
    assert.truthy(find(s.findings, "CONNECT_REFUSED"))
    assert.equal("no connection", not_run(s.not_run, "banner"))
    assert.equal("requires banner, which did not run", not_run(s.not_run, "ehlo"))
    assert.equal("requires starttls, which did not run", not_run(s.not_run, "certificate"))
    assert.is_nil(s.score)
    assert.is_nil(s.grade)
    assert.equal("not tested: the connection was refused", s.score_reason)
    local doc = json.render(r)
    assert.matches('"not_run":[{"check":"banner","reason":"no connection"}', doc, 1, true)
    assert.matches('"score_reason":"not tested: the connection was refused"', doc, 1, true)
    assert.not_matches('"score":', doc, 1, true)
    local t = text.render(r)
    assert.matches("not run: banner (no connection)", t, 1, true)
    assert.matches("score - (not tested: the connection was refused)", t, 1, true)
    assert.not_matches("grade A", t, 1, true)
  end)

  it("a server that throttles before TLS (421 to EHLO or STARTTLS) gets no grade either", function()
    local fake = require "tests.helpers.fake_smtp"
    local function case(script, only, reason)
      local srv = fake.start(script, { lifetime = 5 })
      local r = new_run({ only = only }):check_host("127.0.0.1", srv.port)
      srv:wait()
      assert.is_nil(r.servers[1].score)
      assert.equal(reason, r.servers[1].score_reason)
    end
    case({ "220 mx.test ESMTP\r\n", { expect = "^EHLO" }, "421 4.7.0 closing\r\n" }, { "ehlo" },
      "not tested: 421 to EHLO: the server is throttling the tester")
    case({ "220 mx.test ESMTP\r\n", { expect = "^EHLO" }, "250-mx.test\r\n250 STARTTLS\r\n",
           { expect = "^STARTTLS" }, "421 4.7.0 closing\r\n" }, { "starttls" },
      "not tested: 421 to STARTTLS: TLS could not be tested")
    -- 554 greeting: the session ended before anything was tested
    case({ "554 5.3.2 mx.test no SMTP service here\r\n", { read = true }, "221 bye\r\n" }, { "banner" },
      "not tested: greeting 554: the session ended")
  end)

  it("a crash: the checks that require it are listed as not run, and why", function()
    local dir = dir_with {
      ["boom.lua"] = [[return { id = "boom", description = "x", scope = "domain",
        findings = { BOOM_OK = { severity = "ok", message = "x" } }, run = function() error("bang") end }]],
      ["after_boom.lua"] = [[return { id = "after_boom", description = "x", scope = "domain", requires = { "boom" },
        findings = { AFTER_OK = { severity = "ok", message = "x" } }, run = function(ctx) ctx:finding("AFTER_OK") end }]],
      ["last.lua"] = [[return { id = "last", description = "x", scope = "domain", requires = { "after_boom" },
        findings = { LAST_OK = { severity = "ok", message = "x" } }, run = function(ctx) ctx:finding("LAST_OK") end }]],
    }
    local r = new_run({ only = { "last" } }, { checks_dirs = { dir } }):check_domain("a.test")
    assert.equal("requires boom, which failed (CHECK_ERROR)", not_run(r.not_run, "after_boom"))
    assert.equal("requires after_boom, which did not run: boom failed (CHECK_ERROR)", not_run(r.not_run, "last"))
  end)

  it("checks the options turn off are listed for the domain", function()
    local r = new_run({ disable = { "relay" } }):check_domain("a.test")
    assert.equal("turned off: the options (--no-relay, disable)", not_run(r.not_run, "relay"))
    assert.matches("not run: relay (turned off: the options", text.render(r), 1, true)
  end)

  it("starttls_injection says why it does not run after a slow greeting", function()
    local def = assert(loadfile(ROOT .. "/checks/starttls_injection.lua"))()
    local ctx = { facts = { starttls = { handshake = true }, banner = { seconds = 35.2 } },
                  threshold = function() return 30 end }
    local ok, why = def.applies(ctx)
    assert.is_false(ok)
    assert.equal("the greeting was slow (35.2 s; greeting_slow_s = 30)", why)
  end)
end)

describe("MX records", function()
  local function mx_dns(hosts)
    return { query = function(_, name, qtype)
      if qtype == "MX" and name == "many.test" then
        local answers = {}
        for i, h in ipairs(hosts) do answers[i] = { type = "MX", preference = i * 10, host = h .. "." } end
        return { rcode = "NOERROR", answers = answers }
      end
      return { rcode = "NOERROR", answers = {} }
    end }
  end

  it("MX left out by max_mx lower the verdict: a warning naming how many", function()
    local hosts = {}
    for i = 1, 12 do hosts[i] = ("mx%02d.many.test"):format(i) end
    local r = new_run({ only = { "mx" } }, { dns = mx_dns(hosts) }):check_domain("many.test")
    local f = find(r.dns.findings, "MX_TOO_MANY")
    assert.equal("warning", f.severity)
    assert.equal("2 of 12 MX not tested (max_mx = 10): 110 mx11.many.test, 120 mx12.many.test", f.message)
    assert.equal("warning", r.verdict)
  end)

  it("an IP-literal MX is reported as such, without an MX_OK beside it", function()
    local r = new_run({ only = { "mx" } }, { dns = mx_dns { "192.0.2.25" } }):check_domain("many.test")
    assert.truthy(find(r.dns.findings, "MX_IP_LITERAL"))
    assert.is_nil(find(r.dns.findings, "MX_OK"))
    -- with a real MX beside it, MX_OK counts only that one
    r = new_run({ only = { "mx" } }, { dns = mx_dns { "192.0.2.25", "mx.many.test" } }):check_domain("many.test")
    assert.equal("1 MX record(s): 20 mx.many.test", find(r.dns.findings, "MX_OK").message)
  end)
end)

describe("whose timeout is it (vantage evidence)", function()
  -- connect's summary over servers that all timed out, with the run's evidence
  local function judge_timeouts(prepare, each_server)
    local run = new_run({ port = 25 })
    if prepare then prepare(run) end
    local function srv(addr)
      local s = { host = "mx.test", address = addr, port = 25, facts = { connect = { state = "timeout" } },
                  findings = { { code = "CONNECT_TIMEOUT", check = "connect", severity = "critical", message = "x", evidence = {} } } }
      if each_server then each_server(s) end
      return s
    end
    local r = { domain = "a.test", dns = { mx = {}, findings = {} }, findings = {}, servers = { srv("192.0.2.1"), srv("192.0.2.2") } }
    local dctx = context.domain(run, r)
    for _, d in ipairs(run.checks) do if d.id == "connect" then dctx:run_summary(d) end end
    return r
  end

  it("no evidence: inconclusive, through an override the report shows", function()
    local r = judge_timeouts()
    assert.truthy(find(r.findings, "CONNECT_ALL_TIMEOUT"))
    local f = r.servers[1].findings[1]
    assert.equal("inconclusive", f.severity)
    assert.same({ from = "critical", check = "connect", source = ROOT .. "/checks/connect.lua",
                  why = "every address timed out and no server answered on port 25 in this run" }, f.override)
    assert.matches("severity: inconclusive instead of critical, by check connect: every address timed out",
      text.render(r), 1, true)
  end)

  it("a shared probe's findings (frozen, issue 15): this domain's copy is re-judged, the probe's list is not", function()
    local frozen = require "mxprobe.runtime.frozen"
    local shared = {}
    local r = judge_timeouts(nil, function(srv)
      for _, f in ipairs(srv.findings) do frozen.mark(f) end
      shared[#shared + 1] = frozen.mark(srv.findings)
    end)
    assert.truthy(find(r.findings, "CONNECT_ALL_TIMEOUT"))
    for i, srv in ipairs(r.servers) do
      assert.are_not.equal(shared[i], srv.findings)
      assert.equal("inconclusive", srv.findings[1].severity)
      assert.equal("critical", srv.findings[1].override.from)
      assert.equal("critical", shared[i][1].severity)
      assert.is_nil(shared[i][1].override)
    end
  end)

  it("another server answered on the port in this run: the timeouts are the servers' (critical)", function()
    local r = judge_timeouts(function(run) run:saw_answer(25) end)
    assert.is_nil(find(r.findings, "CONNECT_ALL_TIMEOUT"))
    assert.equal("critical", r.servers[1].findings[1].severity)
    assert.is_nil(r.servers[1].findings[1].override)
  end)

  it("the reference host timed out too: port 25 is blocked here", function()
    local r = judge_timeouts(function(run) run.vantage.check = { target = "ref.test:25", state = "timeout" } end)
    local f = find(r.findings, "CONNECT_PORT_BLOCKED")
    assert.equal("Port 25 is blocked on the tester's network: every address timed out, and so did the reference host ref.test:25 (timeout)", f.message)
    assert.equal("inconclusive", r.servers[2].findings[1].severity)
  end)

  it("--vantage-check connects once at the start and the result states the evidence", function()
    local l = assert(socket.listen("127.0.0.1", 0))
    local _, port = l:local_addr()
    local accepted = 0
    local server = loop.spawn(function()
      while true do
        local c = l:accept(loop.now() + 5)
        if not c then return end
        accepted = accepted + 1
        c:send("220 ref.test ESMTP\r\n", loop.now() + 1)
        c:read_line(loop.now() + 2)
        c:send("221 bye\r\n", loop.now() + 1)
        c:close()
      end
    end)
    local run = new_run({ vantage_check = "127.0.0.1:" .. port, only = { "mx" } })
    local a = run:check_domain("a.test")
    local b = run:check_domain("b.test")
    loop.cancel(server)
    l:close()
    assert.equal(1, accepted)
    assert.equal("open", a.vantage.state)
    assert.same({ "answered", "127.0.0.1:" .. port }, { b.vantage.check.state, b.vantage.check.target })
    -- refused: no evidence either way
    run = new_run({ vantage_check = "127.0.0.1:" .. free_port(), only = { "mx" } })
    assert.equal("unknown", run:check_domain("a.test").vantage.state)
  end)

  it("--vantage-check maps to the config; the audit summary states the evidence", function()
    local cli = require "mxprobe.app.cli"
    assert.equal("ref.test:2525", cli.config(assert(cli.parse({ "--vantage-check", "ref.test:2525", "a.test" }))).vantage_check)
    local cfg, err = cli.config(assert(cli.parse({ "--vantage-check", "ref.test:0", "a.test" })))
    assert.is_nil(cfg)
    assert.matches("--vantage-check: the port must be 1-65535", err, 1, true)
    local audit = require "mxprobe.app.audit"
    local summary = { domains = 1, records = 1, errors = 0, verdicts = {}, codes = {},
                      vantage = { port = 25, answered = 3, state = "open" } }
    assert.matches("vantage: port 25 reachable (3 server(s) answered on port 25 in this run)", audit.summary_text(summary), 1, true)
    summary.vantage = { port = 25, answered = 0, state = "blocked", check = { target = "ref.test:25", state = "timeout" } }
    assert.matches("vantage: port 25 blocked here (0 server(s) answered on port 25 in this run; reference host ref.test:25: timeout)",
      audit.summary_text(summary), 1, true)
    assert.equal("open", (function()
      local run = new_run()
      run:saw_answer(run.config.port)
      return run:stats().vantage.state
    end)())
  end)

  it("every server that answers on the probe port is evidence (also with check_host's port)", function()
    local fake = require "tests.helpers.fake_smtp"
    local srv = fake.start({ "220 mx.test ESMTP\r\n", { expect = "^QUIT" }, "221 bye\r\n" }, { lifetime = 5 })
    local run = new_run({ only = { "banner" } })
    local r = run:check_host("127.0.0.1", srv.port)
    srv:wait()
    assert.same({ srv.port, 1, "open" }, { r.vantage.port, r.vantage.answered, r.vantage.state })
  end)

  it("a bad --vantage-check or probe.vantage_check is refused before probing", function()
    local ok, err = pcall(new_run, { vantage_check = "host:99999" })
    assert.is_false(ok)
    assert.matches("probe.vantage_check: the port must be 1%-65535", err)
    assert.same({ "mx.example", 2525 }, { require("mxprobe.engine.vantage").parse("MX.example.:2525") })
    assert.same({ "2001:db8::25", 25 }, { require("mxprobe.engine.vantage").parse("[2001:db8::25]") })
  end)
end)

describe("the Lua time budget", function()
  it("stops Lua that computes without waiting, naming the file and line", function()
    local t0 = loop.now()
    local ok, err = budget.call(0.2, function()
      local x = 0
      while true do x = x + 1 end
    end)
    assert.is_false(ok)
    assert.is_true(err.budget)
    assert.matches("contract_spec.lua:%d+$", err.location)
    assert.matches("ran 0.%d s of Lua without waiting", tostring(err))
    assert.is_true(loop.now() - t0 < 2)
    -- and it is gone afterwards
    assert.is_nil(debug.gethook())
  end)

  it("a task spawned under the budget is bounded too", function()
    local t0 = loop.now()
    local ok, err = budget.call(0.2, function()
      local t = loop.spawn(function() while true do end end)
      local _, code, detail = loop.join(t)
      return code, detail
    end)
    assert.is_true(ok)
    assert.equal("error", err)
    assert.is_true(loop.now() - t0 < 2)
  end)

  it("waiting ends the slice: a check that sleeps is not stopped", function()
    local ok, v = budget.call(0.2, function()
      for _ = 1, 4 do loop.sleep(0.1) end
      return "done"
    end)
    assert.is_true(ok)
    assert.equal("done", v)
  end)

  it("a check that loops becomes CHECK_ERROR with the location; a rule that loops a POLICY_RULE error", function()
    local dir = dir_with { ["spin.lua"] = [[
return { id = "spin", description = "x", scope = "domain",
  findings = { SPIN_DONE = { severity = "ok", message = "never" } },
  run = function(ctx)
    local i = 0
    while true do i = i + 1 end
  end }]] }
    local run = new_run({ only = { "spin" }, timeouts = { cpu = 0.3 } }, {
      checks_dirs = { dir },
      policy = { rules = { { name = "spinning rule", check = function() while true do end end } } } })
    local t0 = loop.now()
    local r = run:check_domain("a.test")
    assert.is_true(loop.now() - t0 < 5)
    local f = find(r.findings, "CHECK_ERROR")
    assert.equal(dir .. "/spin.lua:5", f.evidence.location)
    assert.matches("spin.lua:5: ran 0.%d s of Lua without waiting", f.message)
    local p = find(r.findings, "POLICY_RULE")
    assert.equal("error", p.severity)
    assert.matches("policy rule 'spinning rule' %(.-contract_spec.lua:%d+%) failed: .-contract_spec.lua:%d+: ran", p.message)
  end)

  it("runs untraced in the executable: the watchdog, no instruction hook (issue 15)", function()
    assert.equal("watchdog", budget.mode)
    local ok, hook = budget.call(1, function() return debug.gethook() end)
    assert.is_true(ok)
    assert.is_nil(hook)
  end)

  it("where no watchdog runs (a host embedding mxprobe), the instruction hook stops it alike", function()
    local mode = budget.mode
    budget.mode = "hook"
    local t0 = loop.now()
    local ok, err = budget.call(0.2, function()
      assert(debug.gethook(), "the hook is set")
      local x = 0
      while true do x = x + 1 end
    end)
    local ok2, code = budget.call(0.2, function()
      local t = loop.spawn(function() while true do end end)
      local _, c = loop.join(t)
      return c
    end)
    budget.mode = mode
    assert.is_false(ok)
    assert.is_true(err.budget)
    assert.matches("contract_spec.lua:%d+$", err.location)
    assert.is_true(ok2)
    assert.equal("error", code)
    assert.is_true(loop.now() - t0 < 3)
    assert.is_nil(debug.gethook())
  end)

  it("a nested budget gives its caller's back", function()
    local ok, inner_ok, err = budget.call(5, function()
      local iok, ierr = budget.call(0.2, function() while true do end end)
      -- the outer budget (5 s) holds again: computing a little more is fine
      local x = 0
      for i = 1, 1e6 do x = x + i end
      return iok, ierr
    end)
    assert.is_true(ok)
    assert.is_false(inner_ok)
    assert.matches("the budget is 0.2 s", tostring(err))
  end)

  it("SIGINT stops a run stuck in a check's loop long before the budget", function()
    local dir = dir_with { ["spin.lua"] = [[
return { id = "spin", description = "x", scope = "domain",
  findings = { SPIN_DONE = { severity = "ok", message = "never" } },
  run = function() while true do end end }]] }
    local t0 = loop.now()
    -- the budget is 10 s by default; the signal comes after 1 s
    local cmd = ("cd %s && (build/mxprobe --checks-dir %s --checks spin --mx 127.0.0.1 >/dev/null 2>&1 & pid=$!; "
      .. "sleep 1; kill -INT $pid; wait $pid; echo rc=$?)"):format(ROOT, dir)
    local p = io.popen(cmd)
    local out = p:read("a")
    p:close()
    local took = loop.now() - t0
    assert.matches("rc=%d+", out)
    assert.is_true(took < 5, ("took %.1f s"):format(took))
  end)
end)
