-- Audit records that say how they were made (provenance), compact records
-- (no transcripts unless asked), and `mxprobe audit --summarize` over
-- several outputs (issue 14, items 3-5).  The real engine with a fake DNS
-- and a loopback SMTP server where the record's content matters; no lab.
local cjson = require "cjson"
local audit = require "mxprobe.app.audit"
local summarize = require "mxprobe.app.audit_summarize"
local cli = require "mxprobe.app.cli"
local engine = require "mxprobe.engine"
local digest = require("mxprobe.core").digest
local fake = require "tests.helpers.fake_smtp"
local fake_dns = require "tests.helpers.fake_resolver"

local function tmpfile(content)
  local p = os.tmpname()
  if content then
    local f = assert(io.open(p, "wb")); f:write(content); f:close()
  end
  return p
end

local function slurp(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a"); f:close()
  return s
end

local function buffer()
  local b = { parts = {} }
  function b:write(...)
    for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring((select(i, ...))) end
    return self
  end
  function b:text() return table.concat(self.parts) end
  return b
end

-- A loopback server that greets with 220 (good) or 554 (failing).
local function server(n, greeting)
  return fake.start({ greeting or "220 mx.test ESMTP\r\n", { expect = "^QUIT" }, "221 bye\r\n" },
                    { connections = n, lifetime = 10 })
end

local function real_run(port, extra)
  local cfg = { only = { "banner" }, allow_reserved = { "loopback" }, port = port, helo = "probe.example",
                timeouts = { connect = 2, greeting = 3, command = 3 } }
  for k, v in pairs(extra or {}) do cfg[k] = v end
  return engine.new { dns = fake_dns, share = false, config = cfg }
end

local function audit_lines(run, doms, opts)
  local lines = {}
  opts = opts or {}
  opts.run, opts.domains, opts.summary = run, doms, false
  opts.output = function(l) lines[#lines + 1] = l; return true end
  local s = audit.run(opts)
  return s, lines
end

describe("audit records say how they were made", function()
  it("carry the mxprobe version, EHLO name, policy name and digest, CA file digest and the options", function()
    -- a real certificate: trust anchors are validated when the run starts
    local certs = require("tests.helpers.certs").make()
    local ca = tmpfile(slurp(certs.ca))
    certs.cleanup()
    local srv = server(1)
    local run = real_run(srv.port, { ca_file = ca })
    local s, lines = audit_lines(run, { "a.test" })
    srv:wait()
    local r = cjson.decode(lines[1])
    local p = r.provenance
    assert.equal(require("mxprobe.core").version, p.mxprobe)
    assert.equal("probe.example", p.ehlo)
    assert.equal("default", p.policy.name)
    assert.equal(digest.file(run.policy.file), p.policy.sha256)
    assert.matches("^%x+$", p.policy.sha256); assert.equal(64, #p.policy.sha256)
    assert.same({ path = ca, sha256 = digest.sha256(slurp(ca)) }, p.ca_file)
    assert.equal(srv.port, p.options.port)
    assert.same({ "banner" }, p.options.checks)
    assert.same({ "loopback" }, p.options.allow_reserved)
    -- the timeouts in force: the flags over the policy's
    assert.equal(2, p.options.timeouts.connect); assert.equal(3, p.options.timeouts.greeting)
    assert.equal(run.config.timeouts.tls, p.options.timeouts.tls)
    assert.equal("none", p.options.transcripts)
    assert.is_false(p.options.share)
    assert.is_true(p.options.relay.enabled)
    -- the summary says the same, and has a schema version of its own
    assert.same(p, cjson.decode(audit.summary_json(s)).provenance)
    assert.equal(1, cjson.decode(audit.summary_json(s)).schema)
    os.remove(ca)
  end)

  it("name a policy file by its digest: the same name with other rules is another digest", function()
    local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir " .. dir))
    local pol = dir .. "/site.lua"
    local f = assert(io.open(pol, "w")); f:write('return { name = "site" }\n'); f:close()
    local run1 = engine.new { dns = fake_dns, policy = pol, config = { only = { "banner" } } }
    local p1 = audit.provenance(run1)
    f = assert(io.open(pol, "w")); f:write('return { name = "site", findings = { BANNER_SLOW = { severity = "critical" } } }\n'); f:close()
    local run2 = engine.new { dns = fake_dns, policy = pol, config = { only = { "banner" } } }
    local p2 = audit.provenance(run2)
    assert.equal("site", p1.policy.name); assert.equal(pol, p1.policy.file)
    assert.equal(digest.file(pol), p2.policy.sha256)
    assert.are_not.equal(p1.policy.sha256, p2.policy.sha256)
    os.execute("rm -r " .. dir)
  end)

  it("carry vantage evidence when the configuration has it", function()
    local run = engine.new { dns = fake_dns, config = { only = { "banner" }, vantage = { name = "lab-1" } } }
    assert.same({ name = "lab-1" }, audit.provenance(run).vantage)
    run = engine.new { dns = fake_dns, config = { only = { "banner" } } }
    assert.is_nil(audit.provenance(run).vantage)
  end)

  it("error records (lines that are not domain names) carry it too", function()
    local run = real_run(1)
    local _, lines = audit_lines(run, { "not a domain" })
    local r = cjson.decode(lines[1])
    assert.truthy(r.error)
    assert.equal("probe.example", r.provenance.ehlo)
  end)
end)

describe("compact audit records", function()
  it("leave the transcripts out by default, and keep facts, findings and verdicts", function()
    local srv = server(1)
    local seen
    local _, lines = audit_lines(real_run(srv.port), { "a.test" }, { on_result = function(r) seen = r end })
    srv:wait()
    local r = cjson.decode(lines[1])
    assert.equal("ok", r.verdict)
    assert.equal(220, r.servers[1].facts.banner.code)
    assert.truthy(r.servers[1].findings[1].code)
    assert.is_nil(r.servers[1].transcript)
    assert.is_false(lines[1]:find('"transcript"', 1, true) ~= nil)
    -- on_result still gets the whole result
    assert.truthy(#seen.servers[1].transcript > 0)
  end)

  it("keep them all with transcripts = 'all', and only for failing servers with 'failing'", function()
    local good, bad = server(2), server(1, "554 go away\r\n")
    local run_all = real_run(good.port)
    local _, all = audit_lines(run_all, { "a.test" }, { transcripts = "all" })
    local r = cjson.decode(all[1])
    assert.truthy(#r.servers[1].transcript > 0)
    -- failing: the 554 server keeps its dialogue, the good one does not
    local _, f1 = audit_lines(real_run(good.port), { "a.test" }, { transcripts = "failing" })
    local _, f2 = audit_lines(real_run(bad.port), { "b.test" }, { transcripts = "failing" })
    good:wait(); bad:wait()
    local rg, rb = cjson.decode(f1[1]), cjson.decode(f2[1])
    assert.is_nil(rg.servers[1].transcript)
    assert.equal("critical", rb.verdict)
    assert.truthy(#rb.servers[1].transcript > 0)
    assert.equal("failing", rb.provenance.options.transcripts)
  end)

  it("refuses an unknown transcripts mode", function()
    assert.has_error(function() audit.run { domains = { "a.test" }, transcripts = "some", output = false,
                                            summary = false, run = real_run(1) } end,
      "audit.run: transcripts: 'none', 'failing' or 'all' expected, got \"some\"")
  end)

  it("compact() copies: the result itself keeps its transcripts", function()
    local r = { servers = { { findings = {}, transcript = { { dir = "<", text = "220" } } },
                            { findings = { { code = "X", severity = "critical" } }, transcript = { { dir = "<", text = "554" } } } } }
    local none, failing = audit.compact(r, "none"), audit.compact(r, "failing")
    assert.is_nil(none.servers[1].transcript); assert.is_nil(none.servers[2].transcript)
    assert.is_nil(failing.servers[1].transcript); assert.truthy(failing.servers[2].transcript)
    assert.truthy(r.servers[1].transcript)
    assert.equal(r, audit.compact(r, "all"))
  end)

  it("mxprobe audit --transcripts / --transcripts=failing reach the run; a bad value is a usage error", function()
    -- the real engine, with no DNS: the one line is not a domain name
    local fake_engine = { new = function(spec) return engine.new { dns = fake_dns, config = spec.config } end }
    local p = tmpfile("not a domain\n")
    for _, case in ipairs { { {}, "none" }, { { "--transcripts" }, "all" }, { { "--transcripts=failing" }, "failing" },
                            { { "--transcripts", "--transcripts=none" }, "none" } } do
      local out, err = buffer(), buffer()
      local argv = { "audit", p }
      for _, a in ipairs(case[1]) do argv[#argv + 1] = a end
      local code = cli.main(argv, { engine = fake_engine, stdout = out, stderr = err })
      assert.equal(0, code)
      assert.equal(case[2], cjson.decode(out:text()).provenance.options.transcripts, table.concat(argv, " "))
    end
    local err = buffer()
    assert.equal(3, cli.main({ "audit", p, "--transcripts=some" }, { engine = fake_engine, stdout = buffer(), stderr = err }))
    assert.equal("mxprobe: audit: --transcripts=some: 'all', 'failing' or 'none' expected\n", err:text())
    os.remove(p)
  end)
end)

describe("the summary of a resumed run", function()
  it("says that the earlier attempts' records are not in its figures, and how to count them all", function()
    local out = tmpfile(cjson.encode({ domain = "a.test", verdict = "ok" }) .. "\n")
    local err = buffer()
    local s = audit.run { domains = { "a.test", "not a domain" }, resume = out, output = out, run = real_run(1),
                          stderr = err }
    assert.equal(1, s.input.already_recorded)
    assert.equal(1, s.records)
    assert.matches("resumed: the 1 records of earlier attempts are not in these figures; "
      .. "mxprobe audit --summarize FILE counts them all", err:text(), 1, true)
    assert.equal(2, assert(summarize.summarize({ out })).records)
    os.remove(out)
  end)
end)

describe("mxprobe audit --summarize", function()
  local function rec(d, verdict, codes, extra)
    local findings = {}
    for _, c in ipairs(codes or {}) do findings[#findings + 1] = { code = c, severity = "warning", check = "x" } end
    findings[#findings + 1] = { code = "CONNECT_OK", severity = "ok", check = "connect" }
    local r = { schema = 1, domain = d, verdict = verdict, servers = { { findings = findings } }, findings = {},
                dns = { mx = {}, findings = {} } }
    for k, v in pairs(extra or {}) do r[k] = v end
    return cjson.encode(r) .. "\n"
  end

  it("counts every record of every file once: duplicates, torn last lines and junk are counted apart", function()
    local a = tmpfile(rec("a.test", "ok") .. rec("b.test", "warning", { "CERT_EXPIRING" }) .. '{"domain": "c.te')
    local b = tmpfile(rec("c.test", "critical", { "RELAY_OPEN", "CERT_EXPIRING" }) .. rec("a.test", "critical")
      .. "not json\n" .. rec("d.test", "inconclusive", nil, { error = "not a domain" }))
    local s = assert(summarize.summarize({ a, b }))
    assert.equal(2, s.files)
    assert.equal(4, s.records)
    assert.equal(1, s.duplicates)   -- a.test again: the first record counts
    assert.equal(1, s.partial)
    assert.equal(1, s.unreadable)
    assert.same({ ok = 1, warning = 1, critical = 1, inconclusive = 1 }, s.verdicts)
    assert.same({ CERT_EXPIRING = 2, RELAY_OPEN = 1 }, s.codes)
    assert.equal(1, s.errors)
    assert.equal(3, s.exit_code) -- an unreadable line
    os.remove(a); os.remove(b)
  end)

  it("with --input: missing and extra domains, and exit 0 only when in = out", function()
    local list = tmpfile("a.test\nB.test.\n# comment\nc.test\na.test\n")
    local out = tmpfile(rec("a.test", "ok") .. rec("b.test", "ok") .. rec("z.test", "ok"))
    local s = assert(summarize.summarize({ out }, { input = list }))
    assert.equal(3, s.domains); assert.equal(1, s.missing); assert.equal(1, s.extra)
    assert.equal(3, s.exit_code)
    local f = assert(io.open(out, "ab")); f:write(rec("c.test", "warning", { "X" })); f:close()
    s = assert(summarize.summarize({ out }, { input = list }))
    assert.equal(0, s.missing); assert.equal(0, s.exit_code)
    os.remove(list); os.remove(out)
  end)

  it("reads CSV outputs: verdicts and the codes column", function()
    local csv = require "mxprobe.report.csv"
    local r1 = cjson.decode(rec("a.test", "warning", { "CERT_EXPIRING", "BANNER_SLOW" }))
    local r2 = cjson.decode(rec("b.test", "ok"))
    local p = tmpfile(csv.header() .. csv.render(r1) .. csv.render(r2))
    local s = assert(summarize.summarize({ p }))
    assert.equal(2, s.records)
    assert.same({ ok = 1, warning = 1, critical = 0, inconclusive = 0 }, s.verdicts)
    assert.same({ BANNER_SLOW = 1, CERT_EXPIRING = 1 }, s.codes)
    os.remove(p)
  end)

  it("notes records made in different ways (another version or options)", function()
    local p = tmpfile(rec("a.test", "ok", nil, { provenance = { mxprobe = "1", ehlo = "x" } })
      .. rec("b.test", "ok", nil, { provenance = { mxprobe = "1", ehlo = "x" } })
      .. rec("c.test", "ok", nil, { provenance = { mxprobe = "1", ehlo = "y" } }))
    local s = assert(summarize.summarize({ p }))
    assert.equal(2, s.provenance_variants)
    assert.matches("made 2 different ways", summarize.text(s), 1, true)
    os.remove(p)
  end)

  it("is `mxprobe audit --summarize FILE...`: text on stdout, JSON with --summary, precise errors", function()
    local p1, p2 = tmpfile(rec("a.test", "ok")), tmpfile(rec("b.test", "critical", { "RELAY_OPEN" }))
    local out, err = buffer(), buffer()
    assert.equal(0, cli.main({ "audit", "--summarize", p1, p2 }, { stdout = out, stderr = err }))
    assert.equal("", err:text())
    assert.matches("^mxprobe audit %-%-summarize: 2 files, 2 records", out:text())
    assert.matches("RELAY_OPEN%s+1", out:text())
    local js = tmpfile()
    assert.equal(0, cli.main({ "audit", "--summarize", p1, p2, "--summary", js }, { stdout = buffer(), stderr = buffer() }))
    local s = cjson.decode(slurp(js))
    assert.equal("mxprobe-audit-summary", s.kind); assert.equal(1, s.schema)
    assert.equal(2, s.records); assert.same({ RELAY_OPEN = 1 }, s.codes)
    err = buffer()
    assert.equal(3, cli.main({ "audit", "--summarize", "/nonexistent/part.jsonl" }, { stdout = buffer(), stderr = err }))
    assert.equal("mxprobe: audit --summarize: cannot read '/nonexistent/part.jsonl': No such file or directory\n", err:text())
    err = buffer()
    assert.equal(3, cli.main({ "audit", "--summarize" }, { stdout = buffer(), stderr = err }))
    assert.matches("missing argument 'files'", err:text(), 1, true)
    err = buffer()
    assert.equal(3, cli.main({ "audit", "--summarize", p1, "--shard", "1/2" }, { stdout = buffer(), stderr = err }))
    assert.equal("mxprobe: audit --summarize: --shard: only with --input\n", err:text())
    os.remove(p1); os.remove(p2); os.remove(js)
  end)
end)
