-- mxprobe.app.audit and `mxprobe audit`, against a fake engine (and once the
-- real engine with a fake DNS and a loopback SMTP server): input parsing,
-- IDN, duplicates, shards, resume, CSV, streaming order, the summary,
-- interrupts, limits.  No lab, no network beyond loopback.
local cjson = require "cjson"
local loop = require "mxprobe.runtime.loop"
local audit = require "mxprobe.app.audit"
local csv = require "mxprobe.report.csv"
local cli = require "mxprobe.app.cli"

local EXIT = { ok = 0, warning = 1, critical = 2, inconclusive = 3 }

local function tmpfile(content)
  local p = os.tmpname()
  if content then
    local f = assert(io.open(p, "wb")); f:write(content); f:close()
  end
  return p
end

local function slurp(p)
  local f = io.open(p, "rb")
  if not f then return nil end
  local s = f:read("a"); f:close()
  return s
end

local function lines_of(s)
  local t = {}
  for l in s:gmatch("([^\n]*)\n") do t[#t + 1] = l end
  return t
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

local function result_for(domain, verdict, codes)
  local findings = {}
  for _, c in ipairs(codes or {}) do findings[#findings + 1] = { code = c, check = "x", severity = verdict } end
  findings[#findings + 1] = { code = "CONNECT_OK", check = "connect", severity = "ok" }
  return {
    schema = 1, domain = domain, verdict = verdict, exit_code = EXIT[verdict], policy = "default",
    started = "2026-11-28T09:00:00Z", duration_s = 0.01,
    decided_by = codes and codes[1] and { code = codes[1], check = "x" } or nil,
    dns = { mx = { { preference = 10, host = "mx." .. domain, addresses = { "192.0.2.10" } } }, findings = {} },
    servers = { { host = "mx." .. domain, address = "192.0.2.10", family = 4, port = 25, preference = 10,
                  score = verdict == "ok" and 100 or 40, grade = verdict == "ok" and "A" or "D", facts = {},
                  findings = findings, transcript = {} } },
    findings = {},
  }
end

-- A fake engine.  o.delay[domain] = seconds, o.verdict[domain], o.codes[domain],
-- o.crash[domain]: raise.  Records calls, concurrency and completion order.
local function fake_engine(o)
  o = o or {}
  local E = { calls = {}, finished = {}, active = 0, peak = 0 }
  function E.new(spec)
    E.spec = spec
    -- like the real engine: the caller's config.limits over the policy's
    local limits = { sessions_per_address = 2, max_sessions = 7 }
    for k, v in pairs(spec.config and spec.config.limits or {}) do limits[k] = v end
    local run = { config = { limits = limits }, share = spec.share }
    function run:check_domain(d)
      E.calls[#E.calls + 1] = d
      E.active = E.active + 1
      E.peak = math.max(E.peak, E.active)
      local delay = (o.delay or {})[d] or o.default_delay
      if delay then loop.sleep(delay) end
      E.active = E.active - 1
      E.finished[#E.finished + 1] = d
      if (o.crash or {})[d] then error("boom in " .. d) end
      return result_for(d, (o.verdict or {})[d] or "ok", (o.codes or {})[d])
    end
    function run:stats() return { probes = 3, shared = #E.calls - 3, sessions_open_peak = 2 } end
    E.run = run
    return run
  end
  return E
end

-- audit.run with a fake engine, output to a list; returns summary, records, engine
local function run_audit(opts, eo)
  local engine = fake_engine(eo)
  local lines = {}
  opts.engine = engine
  if opts.output == nil then
    opts.output = function(l) lines[#lines + 1] = l; return true end
  end
  if opts.summary == nil then opts.summary = false end
  opts.stderr = opts.stderr or buffer()
  local summary = audit.run(opts)
  local records = {}
  for _, l in ipairs(lines) do records[#records + 1] = cjson.decode(l) end
  return summary, records, engine, lines
end

describe("audit input", function()
  it("skips blank lines and comments, trims spaces, CR and a BOM", function()
    local entries, n = audit.read({ "\239\187\191a.test", "", "   # a comment", "b.test\r", "  c.test  # trailing",
                                    "\t", "D.Test." })
    assert.equal(7, n)
    assert.same({ { name = "a.test", line = 1 }, { name = "b.test", line = 4 },
                  { name = "c.test", line = 5 }, { name = "d.test", input = "D.Test.", line = 7 } }, entries)
  end)

  it("converts internationalised names to A-labels and keeps the name as given", function()
    local entries = audit.read({ "Bücher.example", "例え.テスト" })
    assert.same({ name = "xn--bcher-kva.example", input = "Bücher.example", line = 1 }, entries[1])
    assert.equal("xn--r8jz45g.xn--zckzah", entries[2].name)
    assert.equal("xn--bcher-kva.example", audit.normalize("BÜCHER.example."))
  end)

  it("keeps what is not a domain name, with the reason", function()
    local entries = audit.read({ "two words.test", "a..test", "☃.test", "-x.test" })
    assert.equal(4, #entries)
    for _, e in ipairs(entries) do
      assert.is_nil(e.name)
      assert.is_string(e.error)
      assert.matches("is not a domain name", e.error)
    end
    assert.matches("internationalised name", entries[3].error)
    assert.equal("two words.test", audit.key(entries[1]))
  end)

  it("reads files and reports a missing one as nil, 'io'", function()
    local p = tmpfile("a.test\n# x\nb.test\n")
    local entries, n = audit.read(p)
    os.remove(p)
    assert.equal(3, n)
    assert.equal(2, #entries)
    assert.equal(3, entries[2].line)
    local r, code, detail = audit.read("/nonexistent/domains.txt")
    assert.is_nil(r); assert.equal("io", code); assert.matches("cannot read", detail)
  end)
end)

describe("audit shards", function()
  local names = {}
  for i = 1, 3000 do names[i] = ("d%05d.scale.example"):format(i) end

  it("puts every name in exactly one of N shards, for several N", function()
    for _, n in ipairs { 1, 2, 3, 7, 16 } do
      local seen, sizes = {}, {}
      for k = 1, n do
        local todo = audit.select(audit.read(names), { shard = { k, n } })
        sizes[k] = #todo
        for _, e in ipairs(todo) do
          assert.is_nil(seen[e.name], e.name .. " in two shards")
          seen[e.name] = k
        end
      end
      local total = 0
      for _, s in ipairs(sizes) do total = total + s end
      assert.equal(#names, total)
      for k = 1, n do -- a fair share: within 25 % of N-th
        assert.is_true(math.abs(sizes[k] - #names / n) < 0.25 * #names / n + 5, ("N=%d K=%d: %d"):format(n, k, sizes[k]))
      end
    end
  end)

  it("depends on the name only: not on its position, case, trailing dot or U-label form", function()
    local fwd = {}
    for _, e in ipairs(audit.select(audit.read(names), { shard = { 2, 5 } })) do fwd[e.name] = true end
    local rev = {}
    for i = #names, 1, -1 do rev[#rev + 1] = names[i]:upper() .. "." end
    local back = {}
    for _, e in ipairs(audit.select(audit.read(rev), { shard = { 2, 5 } })) do back[e.name] = true end
    assert.same(fwd, back)
    assert.equal(audit.shard_of("xn--bcher-kva.example", 9), audit.shard_of(audit.normalize("Bücher.example"), 9))
  end)

  it("is pinned: the same shards on every machine and version (FNV-1a 32)", function()
    -- changing the hash would reshuffle running audits; this pins it
    -- FNV-1a-32("example.org") = 0x2d8e29b1 (also by Python: see the docs)
    assert.equal(0x2d8e29b1 % 8 + 1, audit.shard_of("example.org", 8))
    assert.equal(2, audit.shard_of("example.org", 8))
    assert.equal(2166136261 % 7 + 1, audit.shard_of("", 7)) -- the offset basis
  end)

  it("parses K/N and refuses the rest", function()
    assert.same({ 3, 8 }, { audit.parse_shard("3/8") })
    for _, bad in ipairs { "0/8", "9/8", "3", "3/0", "a/b", "-1/2", "1/2/3" } do
      local k, why = audit.parse_shard(bad)
      assert.is_nil(k, bad)
      assert.matches("K/N", why)
    end
  end)
end)

describe("audit records", function()
  it("writes exactly one record per input domain; duplicates once; bad names as errors", function()
    local summary, records, engine = run_audit({
      domains = { "a.test", "b.test", "A.test.", "not a name", "c.test # c", "b.test", "bücher.test", "☃.test" },
    })
    assert.same({ "a.test", "b.test", "c.test", "xn--bcher-kva.test" }, (function()
      local t = {}
      for _, d in ipairs(engine.calls) do t[#t + 1] = d end
      table.sort(t)
      return t
    end)())
    local by = {}
    for _, r in ipairs(records) do
      assert.is_nil(by[r.domain], "two records for " .. r.domain)
      by[r.domain] = r
    end
    assert.equal(6, #records)
    assert.equal("not a name", by["not a name"].domain)
    assert.matches("is not a domain name", by["not a name"].error)
    assert.equal("inconclusive", by["not a name"].verdict)
    assert.equal(3, by["not a name"].exit_code)
    assert.same({}, by["not a name"].servers)
    assert.equal("☃.test", by["☃.test"].domain)
    assert.equal("bücher.test", by["xn--bcher-kva.test"].input)
    assert.is_nil(by["a.test"].input)
    assert.equal(6, summary.domains)
    assert.equal(6, summary.records)
    assert.equal(2, summary.input.duplicates)
    assert.equal(2, summary.input.invalid)
    assert.equal(0, summary.exit_code)
  end)

  it("turns an engine crash into an error record and goes on", function()
    local summary, records = run_audit({ domains = { "a.test", "b.test" } }, { crash = { ["a.test"] = true } })
    table.sort(records, function(x, y) return x.domain < y.domain end)
    assert.equal(2, #records)
    assert.matches("internal error: .*boom in a.test", records[1].error)
    assert.is_nil(records[1].error:find("stack traceback", 1, true))
    assert.equal("ok", records[2].verdict)
    assert.equal(1, summary.errors)
    assert.equal(0, summary.exit_code)
  end)

  it("streams: each record is written when its domain completes, not in input order", function()
    local written_at = {}
    local engine = fake_engine({ delay = { ["slow.test"] = 0.3, ["fast.test"] = 0.01, ["mid.test"] = 0.1 } })
    local summary = audit.run({
      engine = engine, summary = false, domains = { "slow.test", "fast.test", "mid.test" },
      output = function(l)
        written_at[#written_at + 1] = { cjson.decode(l).domain, #engine.finished }
        return true
      end,
    })
    assert.same({ "fast.test", "mid.test", "slow.test" }, { written_at[1][1], written_at[2][1], written_at[3][1] })
    -- fast.test was out before mid.test and slow.test had finished
    assert.same({ 1, 2, 3 }, { written_at[1][2], written_at[2][2], written_at[3][2] })
    assert.equal(3, summary.records)
  end)

  it("flushes a file after every record", function()
    local p = tmpfile()
    local seen
    run_audit({
      domains = { "a.test", "b.test" }, output = p,
      on_result = function(r)
        seen = seen or {}
        seen[#seen + 1] = #lines_of(slurp(p)) -- on disk already when on_result runs
      end,
    }, { delay = { ["b.test"] = 0.05 } })
    os.remove(p)
    assert.same({ 1, 2 }, seen)
  end)

  it("checks many domains at once, at most `parallel`", function()
    local doms = {}
    for i = 1, 50 do doms[i] = ("d%d.test"):format(i) end
    local t0 = loop.now()
    local _, records, engine = run_audit({ domains = doms, parallel = 20 }, { default_delay = 0.1 })
    assert.equal(50, #records)
    assert.equal(20, engine.peak)
    local dt = loop.now() - t0
    assert.is_true(dt < 0.45 and dt >= 0.29, "took " .. dt) -- 3 rounds of 0.1 s, not 50
  end)

  it("lets a script shape the output: map to a table, a string or nothing", function()
    local _, records = run_audit({
      domains = { "a.test", "b.test", "skip.test" },
      map = function(r)
        if r.domain == "skip.test" then return nil end
        if r.domain == "b.test" then return cjson.encode({ only = r.domain }) end
        return { domain = r.domain, verdict = r.verdict }
      end,
    })
    table.sort(records, function(x, y) return (x.domain or x.only) < (y.domain or y.only) end)
    assert.same({ { domain = "a.test", verdict = "ok" }, { only = "b.test" } }, records)
  end)

  it("counts verdicts and codes (domains per code, ok findings left out) in the summary", function()
    local summary = run_audit({ domains = { "a.test", "b.test", "c.test", "d.test", "bad name" } }, {
      verdict = { ["b.test"] = "warning", ["c.test"] = "critical", ["d.test"] = "critical" },
      codes = { ["b.test"] = { "TLS_VERSION_12" }, ["c.test"] = { "RELAY_OPEN", "TLS_VERSION_12" },
                ["d.test"] = { "RELAY_OPEN" } },
    })
    assert.same({ ok = 1, warning = 1, critical = 2, inconclusive = 1 }, summary.verdicts)
    assert.same({ RELAY_OPEN = 2, TLS_VERSION_12 = 2 }, summary.codes)
    assert.equal(1, summary.errors)
    assert.equal(3, summary.probes)
    local text = audit.summary_text(summary)
    assert.matches("5 domains, 5 records written", text, 1, true)
    assert.matches("1 ok, 1 warning, 2 critical, 1 inconclusive (1 with an error)", text, 1, true)
    assert.matches("RELAY_OPEN%s+2", text)
    assert.is_nil(text:find("CONNECT_OK", 1, true))
  end)

  it("writes the summary as JSON to a file", function()
    local p = tmpfile()
    run_audit({ domains = { "a.test", "a.test" }, summary = p })
    local s = cjson.decode(slurp(p))
    os.remove(p)
    assert.equal("mxprobe-audit-summary", s.kind)
    assert.equal(1, s.domains); assert.equal(1, s.records); assert.equal(1, s.input.duplicates)
    assert.equal(1, s.verdicts.ok)
    assert.same({}, s.codes)
    assert.equal(0, s.exit_code)
  end)

  it("stops when the output cannot be written, and says so", function()
    local n = 0
    local summary = run_audit({
      domains = { "a.test", "b.test", "c.test", "d.test" }, parallel = 1,
      output = function() n = n + 1; if n > 2 then return nil, "Broken pipe" end return true end,
    })
    assert.equal(2, summary.records)
    assert.equal("Broken pipe", summary.write_error)
    assert.equal(2, summary.not_checked)
    assert.equal(3, summary.exit_code)
  end)

  it("lays the caller's limits over the run's (the policy's) and sizes the task pool from them", function()
    local _, _, engine = run_audit({ domains = { "a.test", "b.test", "c.test" },
                                     limits = { sessions_per_address = 5, max_domains = 1 } }, { default_delay = 0.02 })
    assert.same({ sessions_per_address = 5, max_sessions = 7, max_domains = 1 }, engine.run.config.limits)
    assert.equal(1, engine.peak)
    assert.is_true(engine.spec.share)
    local _, _, e2 = run_audit({ domains = { "a.test" }, share = false })
    assert.is_false(e2.spec.share)
  end)

  it("reads max_domains, max_dns_queries and the probe limits from a policy; flags win", function()
    local E = require "mxprobe.engine"
    local pol = tmpfile('return { name = "site", probe = { limits = { max_domains = 3, max_dns_queries = 8, '
      .. 'sessions_per_address = 1, connects_per_second_per_address = 4 } } }')
    local made, peak, active = nil, 0, 0
    local engine = { new = function(spec)
      made = E.new(spec)
      function made:check_domain(d) -- the real run, without the network
        active = active + 1; peak = math.max(peak, active)
        loop.sleep(0.02)
        active = active - 1
        return result_for(d, "ok")
      end
      return made
    end }
    local s = audit.run({ domains = { "a.t", "b.t", "c.t", "d.t", "e.t", "f.t", "g.t" }, engine = engine, policy = pol,
                          output = false, summary = false, limits = { sessions_per_address = 2 },
                          config = { resolver = { servers = { "127.0.0.1:9" } } } })
    os.remove(pol)
    assert.equal(7, s.records)
    assert.equal(3, peak)
    assert.equal(8, made.dns.max_inflight)
    assert.equal(2, made.limits.per_address)
    assert.equal(4, made.limits.rate)
    local bad = tmpfile('return { probe = { limits = { max_domains = 0 } } }')
    assert.has_error(function() audit.run({ domains = { "a.t" }, policy = bad, output = false, summary = false }) end)
    os.remove(bad)
  end)

  it("raises on misuse", function()
    assert.has_error(function() audit.run({ domains = { "a.test" }, bogus = 1 }) end, "audit.run: unknown option 'bogus'")
    assert.has_error(function() audit.run({}) end)
    assert.has_error(function() run_audit({ domains = { "a.test" }, format = "xml" }) end)
    assert.has_error(function() run_audit({ domains = { "a.test" }, shard = "0/3" }) end)
  end)
end)

describe("audit resume", function()
  it("skips the domains an earlier output has, drops a torn last line, appends", function()
    local p = tmpfile(cjson.encode(result_for("a.test", "ok")) .. "\n"
      .. cjson.encode(result_for("b.test", "warning")) .. "\n"
      .. '{"domain":"c.test","verd') -- killed mid-write
    local set, info = audit.recorded(p)
    assert.same({ ["a.test"] = true, ["b.test"] = true }, set)
    assert.equal(2, info.records)
    assert.is_true(info.partial > 0)
    local summary, _, engine = run_audit({ domains = { "a.test", "b.test", "c.test", "d.test" }, resume = p, output = p })
    table.sort(engine.calls)
    assert.same({ "c.test", "d.test" }, engine.calls)
    assert.equal(2, summary.input.already_recorded)
    assert.equal(2, summary.domains)
    local seen = {}
    for _, l in ipairs(lines_of(slurp(p))) do
      local r = cjson.decode(l) -- every line is a whole record now
      assert.is_nil(seen[r.domain]); seen[r.domain] = true
    end
    assert.same({ ["a.test"] = true, ["b.test"] = true, ["c.test"] = true, ["d.test"] = true }, seen)
    -- a third run has nothing left to do
    local s3, _, e3 = run_audit({ domains = { "a.test", "b.test", "c.test", "d.test" }, resume = p, output = p })
    os.remove(p)
    assert.same({}, e3.calls)
    assert.equal(0, s3.domains); assert.equal(0, s3.exit_code)
  end)

  it("treats a missing resume file as empty (the first attempt of a job)", function()
    local p = tmpfile(); os.remove(p)
    local summary = run_audit({ domains = { "a.test" }, resume = p, output = p })
    assert.equal(1, #lines_of(slurp(p)))
    os.remove(p)
    assert.equal(0, summary.exit_code)
  end)

  it("reads CSV outputs too, and writes no second header when appending", function()
    local p = tmpfile()
    run_audit({ domains = { "a.test", "x,y" }, output = p, format = "csv" })
    local s1 = slurp(p)
    assert.equal(3, #lines_of(s1))
    local _, _, engine = run_audit({ domains = { "a.test", "b.test", "x,y" }, resume = p, output = p, format = "csv" })
    assert.same({ "b.test" }, engine.calls)
    local rows = lines_of(slurp(p))
    os.remove(p)
    assert.equal(4, #rows)
    assert.equal(csv.header(), rows[1] .. "\n")
    local firsts = {}
    for i = 2, #rows do firsts[#firsts + 1] = csv.parse_line(rows[i])[1] end
    table.sort(firsts)
    assert.same({ "a.test", "b.test", "x,y" }, firsts)
  end)
end)

describe("audit interrupt", function()
  it("Ctrl-C: stops feeding, cancels what is in flight, writes no record for it; resume finishes", function()
    local pid = assert(io.open("/proc/self/stat")):read("n")
    local doms = {}
    for i = 1, 40 do doms[i] = ("d%02d.test"):format(i) end
    local p = tmpfile()
    loop.spawn(function()
      loop.sleep(0.2)
      -- in the background: system() ignores SIGINT in the caller while it waits
      os.execute(("(sleep 0.05; kill -INT %d) &"):format(math.tointeger(pid)))
    end)
    local delay = {}
    for i = 1, 40 do delay[doms[i]] = i <= 5 and 0.05 or 2 end
    local summary, _, engine = run_audit({ domains = doms, output = p, parallel = 10 }, { delay = delay })
    assert.is_true(summary.interrupted)
    assert.equal(3, summary.exit_code)
    assert.equal(5, summary.records)
    assert.equal(35, summary.not_checked)
    assert.equal(15, #engine.calls) -- 10 at first, 5 more as the fast ones ended, then no new one
    assert.equal(5, #lines_of(slurp(p)))
    assert.matches("INTERRUPTED: 35 not checked", audit.summary_text(summary), 1, true)
    -- the default handler is back
    local s2, _, e2 = run_audit({ domains = doms, output = p, resume = p, parallel = 40 })
    assert.equal(35, #e2.calls)
    assert.equal(0, s2.exit_code)
    local seen, n = {}, 0
    for _, l in ipairs(lines_of(slurp(p))) do
      local d = cjson.decode(l).domain
      assert.is_nil(seen[d]); seen[d] = true; n = n + 1
    end
    os.remove(p)
    assert.equal(40, n)
  end)
end)

describe("report.csv", function()
  it("has a header and one line per result, quoting what needs it", function()
    local r = result_for("a.test", "critical", { "RELAY_OPEN", "CERT_EXPIRED" })
    r.error = 'said "no", then\r\nleft'
    local line = csv.render(r)
    assert.equal(1, #lines_of(line))
    local f = csv.parse_line(line)
    assert.equal("domain,verdict,exit_code,decided_by,mx,servers,min_score,worst_grade,codes,error,started,duration_s,input\n",
      csv.header())
    assert.same({ "a.test", "critical", "2", "RELAY_OPEN", "10:mx.a.test", "1", "40", "D", "CERT_EXPIRED RELAY_OPEN",
                  'said "no", then  left', "2026-11-28T09:00:00Z", "0.01", "" }, f)
    assert.matches('"said ""no"", then  left"', line, 1, true)
  end)

  it("takes chosen and custom columns; a failing column is left empty", function()
    local r = result_for("a.test", "ok")
    local cols = { "domain", { "tls", function(x) return x.servers[1].facts.starttls.version end }, { "n", function() return 3.5 end } }
    assert.equal("domain,tls,n\n", csv.header(cols))
    assert.equal("a.test,,3.5\n", csv.render(r, cols))
    assert.has_error(function() csv.render(r, { "nope" }) end)
  end)

  it("writes invalid UTF-8 as \\xNN and survives odd results", function()
    assert.equal("a\\xFFb", csv.field("a\255b"))
    assert.equal('" x"', csv.field(" x"))
    local line = csv.render({ domain = "z.test" })
    assert.equal("z.test,,,,,0,,,,,,,\n", line)
  end)
end)

describe("mxprobe audit (cli)", function()
  local function run_cli(argv, eo)
    local out, err = buffer(), buffer()
    local engine = fake_engine(eo)
    local code = cli.main(argv, { engine = engine, stdout = out, stderr = err })
    return code, out:text(), err:text(), engine
  end

  it("audits a file to stdout as JSON Lines with a summary on stderr", function()
    local p = tmpfile("a.test\n# c\nb.test\na.test\nBücher.test\n")
    local code, out, err, engine = run_cli({ "audit", p, "--allow-reserved", "documentation", "--timeout-connect", "3" })
    os.remove(p)
    assert.equal(0, code)
    assert.equal(3, #lines_of(out))
    assert.equal(3, #engine.calls)
    assert.matches("mxprobe audit: 3 domains, 3 records written", err, 1, true)
    assert.matches("1 duplicates", err, 1, true)
    assert.same({ "documentation" }, engine.spec.config.allow_reserved)
    assert.equal(3, engine.spec.config.timeouts.connect)
    assert.is_true(engine.spec.share)
  end)

  it("passes --csv, --shard, --no-share, limits and --summary through", function()
    local doms = {}
    for i = 1, 100 do doms[i] = ("d%03d.test"):format(i) end
    local p = tmpfile(table.concat(doms, "\n") .. "\n")
    local sum = tmpfile()
    local code, out, err, engine = run_cli({ "audit", p, "--csv", "--shard", "2/3", "--no-share", "--parallel", "7",
      "--sessions-per-address", "3", "--connects-per-second", "0.5", "--max-sessions", "50",
      "--max-dns-queries", "16", "--summary", sum })
    local s = cjson.decode(slurp(sum))
    os.remove(p); os.remove(sum)
    assert.equal(0, code)
    assert.equal("", err)
    local rows = lines_of(out)
    assert.equal(csv.header(), rows[1] .. "\n")
    local expect = 0
    for _, d in ipairs(doms) do if audit.shard_of(d, 3) == 2 then expect = expect + 1 end end
    assert.equal(expect + 1, #rows)
    assert.equal(expect, s.records)
    assert.equal("2/3", s.shard)
    assert.is_false(engine.spec.share)
    assert.same({ sessions_per_address = 3, connects_per_second_per_address = 0.5, max_sessions = 50,
                  max_dns_queries = 16 }, engine.run.config.limits)
    assert.is_true(engine.peak <= 7)
  end)

  it("--resume FILE appends to FILE", function()
    local p = tmpfile("a.test\nb.test\n")
    local o = tmpfile(cjson.encode(result_for("a.test", "ok")) .. "\n")
    local code, out, _, engine = run_cli({ "audit", p, "--resume", o })
    assert.equal(0, code)
    assert.equal("", out)
    assert.same({ "b.test" }, engine.calls)
    assert.equal(2, #lines_of(slurp(o)))
    os.remove(p); os.remove(o)
  end)

  it("reads stdin with - (a real process; DNS to a closed loopback port)", function()
    local pid = assert(io.open("/proc/self/stat")):read("n")
    local exe = io.popen(("readlink /proc/%d/exe"):format(math.tointeger(pid))):read("l")
    local p = io.popen(("printf 'a.test\\nb.test\\n#x\\n' | %s audit - --resolver 127.0.0.1:9 --timeout-dns 0.3 "
      .. "--no-progress 2>/dev/null"):format(exe))
    local out = p:read("a")
    local ok, _, code = p:close()
    assert.is_true(ok, "exit " .. tostring(code))
    local doms = {}
    for _, l in ipairs(lines_of(out)) do doms[#doms + 1] = cjson.decode(l).domain end
    table.sort(doms)
    assert.same({ "a.test", "b.test" }, doms)
  end)

  local usage = {
    { { "audit" }, "mxprobe: audit: missing argument 'file'" },
    { { "audit", "/nonexistent/list.txt" }, "mxprobe: audit: cannot read '/nonexistent/list.txt'" },
    { { "audit", "-", "--shard", "0/4" }, "mxprobe: audit: --shard: '0/4' is not K/N" },
    { { "audit", "-", "--shard", "5/4" }, "mxprobe: audit: --shard: '5/4' is not K/N" },
    { { "audit", "-", "--parallel", "0" }, "mxprobe: audit: --parallel: '0' is not a whole number" },
    { { "audit", "-", "--sessions-per-address", "x" }, "mxprobe: audit: --sessions-per-address: 'x' is not a whole number" },
    { { "audit", "-", "--connects-per-second", "0" }, "mxprobe: audit: --connects-per-second: '0' is not a rate" },
    { { "audit", "-", "--max-dns-queries", "-3" }, "mxprobe: audit: " },
    { { "audit", "-", "--mx", "x.test" }, "mxprobe: audit: unknown option '--mx'" },
    { { "audit", "-", "--timeout-connect", "0" }, "mxprobe: audit: --timeout-connect: '0': the timeout must be more than 0" },
    { { "audit", "-", "-o", "/tmp" }, "mxprobe: audit: --output: '/tmp' is a directory" },
  }
  for _, c in ipairs(usage) do
    it(table.concat(c[1], " ") .. " -> exit 3, one line", function()
      local code, out, err, engine = run_cli(c[1])
      assert.equal(3, code)
      assert.equal("", out)
      assert.matches("^[^\n]*\n$", err)
      assert.matches(c[2], err, 1, true)
      assert.same({}, engine.calls)
    end)
  end

  it("audit --help lists the audit options and exits 0", function()
    local code, out = run_cli({ "audit", "--help" })
    assert.equal(0, code)
    for _, o in ipairs { "--output", "--csv", "--resume", "--shard", "--summary", "--no-share", "--parallel",
                         "--max-sessions", "--max-dns-queries", "--sessions-per-address", "--connects-per-second",
                         "--ca-file", "--allow-reserved", "--policy", "docs/audits.md" } do
      assert.matches(o, out, 1, true)
    end
  end)
end)

describe("audit with the real engine (fake DNS, loopback SMTP)", function()
  local engine = require "mxprobe.engine"
  local fake = require "tests.helpers.fake_smtp"
  local fake_dns = require "tests.helpers.fake_resolver" -- DNS is not under test here
  local function server(n)
    local stats = { started = 0 }
    local srv = fake.start({
      function() stats.started = stats.started + 1 end,
      "220 mx.test ESMTP\r\n", { expect = "^QUIT" }, "221 bye\r\n",
    }, { connections = n, lifetime = 10 })
    return srv, stats
  end
  local function real_run(port, share)
    return engine.new { dns = fake_dns, share = share, config = {
      only = { "banner" }, allow_reserved = { "loopback" }, port = port, helo = "t.test",
      timeouts = { connect = 2, greeting = 3, command = 3 } } }
  end
  local doms = {}
  for i = 1, 20 do doms[i] = ("d%02d.test"):format(i) end

  it("shares one probe between the 20 domains of one MX", function()
    local srv, stats = server(1)
    local lines = {}
    local summary = audit.run({ run = real_run(srv.port, true), domains = doms, summary = false,
                                output = function(l) lines[#lines + 1] = l; return true end })
    srv:wait()
    assert.equal(1, stats.started)
    assert.equal(20, #lines)
    assert.equal(1, summary.probes); assert.equal(19, summary.shared)
    for _, l in ipairs(lines) do
      local r = cjson.decode(l)
      assert.equal("ok", r.verdict)
      assert.equal(220, r.servers[1].facts.banner.code)
    end
  end)

  it("--no-share probes for every domain, at most sessions_per_address at once", function()
    local srv, stats = server(20)
    local summary = audit.run({ run = real_run(srv.port, false), domains = doms, summary = false, output = false,
                                limits = { sessions_per_address = 4 } })
    srv:wait()
    assert.equal(20, stats.started)
    assert.equal(20, summary.probes)
    assert.is_true(summary.sessions_open_peak <= 4, tostring(summary.sessions_open_peak))
    assert.equal(20, summary.records)
  end)
end)
