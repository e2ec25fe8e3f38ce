-- The one runner of targets (mxprobe.app.runner) as the command line,
-- audits and the embedding API use it: order, sharing, one error-record
-- shape, CSV from the command line, plain one-line user errors, echoes
-- capped, IP addresses given as domains, 1000 targets, the checks
-- directory listed without a shell, and isatty without one.  No network
-- beyond loopback.
local cjson = require "cjson"
local loop = require "mxprobe.runtime.loop"
local cli = require "mxprobe.app.cli"
local runner = require "mxprobe.app.runner"
local audit = require "mxprobe.app.audit"
local csv = require "mxprobe.report.csv"
local json = require "mxprobe.report.json"
local core = require "mxprobe.core"

local function buffer()
  local b = { parts = {} }
  function b:write(...)
    for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring((select(i, ...))) end
    return self
  end
  function b:text() return table.concat(self.parts) end
  return b
end

local function lines_of(s)
  local t = {}
  for l in s:gmatch("([^\n]*)\n") do t[#t + 1] = l end
  return t
end

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(require("lfs").mkdir(p))
  return p
end

local function result_for(domain, verdict)
  return {
    schema = 1, domain = domain, verdict = verdict or "ok", exit_code = verdict == "critical" and 2 or 0,
    dns = { mx = {}, findings = {} }, servers = {}, findings = {},
  }
end

-- A fake engine that records the spec it was given and the names checked.
local function fake_engine(o)
  o = o or {}
  local E = { calls = {} }
  function E.new(spec)
    E.spec = spec
    local run = { checks = {} }
    function run:check_domain(d)
      E.calls[#E.calls + 1] = d
      if o.delay then loop.sleep(o.delay(d)) end
      if o.crash and o.crash[d] then error("boom in " .. d) end
      return result_for(d, (o.verdicts or {})[d])
    end
    function run:check_host(h) return result_for(h) end
    return run
  end
  function E.catalog() return {} end
  return E
end

local function run_cli(argv, o)
  local out, err = buffer(), buffer()
  local engine = fake_engine(o)
  local code = cli.main(argv, { engine = engine, stdout = out, stderr = err })
  return code, out:text(), err:text(), engine
end

describe("runner", function()
  it("writes in target order when asked, as each completes otherwise", function()
    local E = fake_engine { delay = function(d) return d == "a.test" and 0.1 or 0.01 end }
    local run = E.new {}
    local targets = { { kind = "domain", name = "a.test" }, { kind = "domain", name = "b.test" },
                      { kind = "domain", name = "c.test" } }
    for _, ordered in ipairs { true, false } do
      local got = {}
      local st = runner.run(run, { targets = targets, parallel = 3, ordered = ordered,
        write = function(r) got[#got + 1] = r.domain; return true end })
      assert.equal(3, st.written)
      if ordered then assert.same({ "a.test", "b.test", "c.test" }, got)
      else assert.same({ "b.test", "c.test", "a.test" }, got) end
    end
  end)

  it("stops when the writer fails and starts nothing more", function()
    local run = fake_engine().new {}
    local targets = {}
    for i = 1, 50 do targets[i] = { kind = "domain", name = ("d%02d.test"):format(i) } end
    local n = 0
    local st = runner.run(run, { targets = targets, parallel = 2, ordered = true,
      write = function() n = n + 1; return n < 3, "disk full" end })
    assert.equal("disk full", st.write_error)
    assert.equal(2, st.written)
    assert.is_true(st.started <= 4, tostring(st.started))
  end)

  it("gives the command line and audits one error-record shape", function()
    local _, out, err = run_cli({ "--json", "a.test", "b.test" }, { crash = { ["a.test"] = true } })
    local from_cli = cjson.decode(lines_of(out)[1])
    assert.matches("^mxprobe: a.test: internal error: .*boom in a.test\n$", err)
    local recs = {}
    local E = fake_engine { crash = { ["a.test"] = true } }
    audit.run({ run = E.new {}, domains = { "a.test", "not a name" }, summary = false, signals = false,
                stderr = buffer(), output = function(l) recs[#recs + 1] = cjson.decode(l); return true end })
    table.sort(recs, function(x, y) return x.domain < y.domain end)
    local function shape(r)
      local keys = {}
      -- provenance: what every audit record adds (docs/json-schema.md)
      for k, v in pairs(r) do
        if k ~= "error" and k ~= "domain" and k ~= "provenance" then keys[k] = type(v) == "table" and json.encode(v) or v end
      end
      return keys
    end
    assert.same(shape(from_cli), shape(recs[1]))
    assert.same(shape(from_cli), shape(recs[2]))
    -- (the schema-aware encoder knows dns.mx is an array; a bare empty table is "{}")
    assert.same({ schema = 1, verdict = "inconclusive", exit_code = 3, dns = '{"findings":[],"mx":[]}',
                  servers = "{}", findings = "{}" }, shape(from_cli))
    assert.matches("^internal error: .*boom in a.test", from_cli.error)
    assert.matches("is not a domain name", recs[2].error)
  end)

  it("mxprobe a b c shares probes of common MX addresses, as audits do", function()
    local _, _, _, engine = run_cli({ "--json", "a.test", "b.test" })
    assert.is_true(engine.spec.share)
    local _, _, _, one = run_cli({ "--json", "a.test" })
    assert.is_false(one.spec.share) -- nothing to share: the servers stay unmarked
  end)

  it("runs 1000 domains from the command line, in order", function()
    local argv = { "--json", "--parallel", "50" }
    for i = 1, 1000 do argv[#argv + 1] = ("d%04d.test"):format(i) end
    local code, out, err, engine = run_cli(argv, { delay = function(d) return (tonumber(d:match("%d+")) % 7) * 0.001 end })
    assert.equal(0, code)
    assert.equal("", err)
    assert.equal(1000, #engine.calls)
    local docs = lines_of(out)
    assert.equal(1000, #docs)
    for i, l in ipairs(docs) do assert.equal(("d%04d.test"):format(i), cjson.decode(l).domain) end
  end)
end)

describe("mxprobe --csv and audit --json", function()
  it("--csv: a header, then one row per target in command-line order", function()
    local code, out, err = run_cli({ "--csv", "b.test", "a.test" }, { verdicts = { ["a.test"] = "critical" } })
    assert.equal(2, code)
    assert.equal("", err)
    local rows = lines_of(out)
    assert.equal(3, #rows)
    assert.equal(csv.header(), rows[1] .. "\n")
    assert.equal("b.test", csv.parse_line(rows[2])[1])
    assert.equal("a.test", csv.parse_line(rows[3])[1])
    assert.equal("critical", csv.parse_line(rows[3])[2])
  end)

  it("--json and --csv together: choose one", function()
    local code, out, err = run_cli({ "--json", "--csv", "a.test" })
    assert.equal(3, code)
    assert.equal("", out)
    assert.equal("mxprobe: --json and --csv: choose one\n", err)
  end)

  it("audit --json is accepted (it is the default); --json --csv is not", function()
    local p = os.tmpname()
    local f = assert(io.open(p, "w")); f:write("a.test\n"); f:close()
    local code, out = run_cli({ "audit", p, "--json", "--no-progress" })
    assert.equal(0, code)
    assert.equal("a.test", cjson.decode(lines_of(out)[1]).domain)
    local code2, _, err2 = run_cli({ "audit", p, "--json", "--csv" })
    os.remove(p)
    assert.equal(3, code2)
    assert.equal("mxprobe: audit: --json and --csv: choose one\n", err2)
  end)
end)

describe("user errors are one plain line", function()
  local dir = tmpdir()
  local many = {}
  for i = 1, 17 do many[#many + 1] = "--resolver"; many[#many + 1] = ("192.0.2.%d"):format(i) end
  many[#many + 1] = "a.test"
  local lines = {
    many,
    { "audit", "/dev/null", "-o", dir },
    { "audit", "/dev/null", "--summary", dir },
    { "audit", "/dev/null", "--resume", dir },
    { "audit", dir },
    { "--policy", dir, "a.test" },
    { "--ca-file", dir, "a.test" },
    { "--checks-dir", "/etc/hostname", "a.test" },
    { "--port", "99999", "a.test" },
    { "--mx", "010.0.0.1" },
    { "--helo", "192.0.2.1", "a.test" },
    { "--timeout-dns", "nan", "a.test" },
    { "--parallel", "1e9", "a.test" },
    { "192.0.2.1" },
    { "[2001:db8::1]" },
    { ("x"):rep(100000) .. ".test" },
    { "--checks", "nosuch", "a.test" },
    { "--explain", "NOPE" },
    { "audit", "/dev/null", "--shard", "9/2" },
  }
  for _, argv in ipairs(lines) do
    local shown = table.concat(argv, " ")
    if #shown > 80 then shown = shown:sub(1, 77) .. "..." end
    it(shown, function()
      local out, err = buffer(), buffer()
      -- the real engine: its errors must come out plain too
      local code = cli.main(argv, { stdout = out, stderr = err })
      local msg = err:text()
      assert.equal(3, code)
      assert.equal("", out:text())
      assert.matches("^mxprobe: [^\n]+\n$", msg)
      assert.is_nil(msg:find(".lua:", 1, true), msg)
      assert.is_nil(msg:find("bad argument", 1, true), msg)
      assert.is_true(#msg < 600, "echoes are capped: " .. #msg .. " bytes")
    end)
  end
  it("names what is wrong", function()
    local _, _, err = run_cli(many)
    assert.equal("mxprobe: --resolver: at most 16 DNS servers, 17 given\n", err)
    _, _, err = run_cli({ "192.0.2.1" })
    assert.equal("mxprobe: '192.0.2.1' is an IP address, not a domain name "
      .. "(to test the server at that address: --mx 192.0.2.1)\n", err)
    _, _, err = run_cli({ "--mx", "010.0.0.1" })
    assert.matches("mxprobe: --mx: '010.0.0.1' is not a host name or IP address (the last label is all digits)", err, 1, true)
    os.remove(dir)
  end)
end)

describe("audit input that is not a domain", function()
  it("a 10 MB line is echoed at most 256 bytes, once, into its record", function()
    local big = ("a"):rep(10 * 1024 * 1024)
    local recs = {}
    audit.run({ run = fake_engine().new {}, domains = { big, "192.0.2.7" }, summary = false, signals = false,
                output = function(l) recs[#recs + 1] = l; return true end })
    assert.equal(2, #recs)
    table.sort(recs, function(a, b) return #a < #b end)
    local ip, long = cjson.decode(recs[1]), cjson.decode(recs[2])
    assert.matches("is an IP address, not a domain name (to test the server at that address: --mx 192.0.2.7)", ip.error, 1, true)
    assert.is_true(#long.error < 400, tostring(#long.error))
    assert.matches("^'a+%.%.%.' is not a domain name", long.error)
  end)
end)

describe("no shell for the file system", function()
  it("a --checks-dir named $(...) loads its checks and runs nothing", function()
    local base = tmpdir()
    local witness = "mxprobe-runner-spec-witness" -- a shell would make it in the current directory
    os.remove(witness)
    local dir = base .. "/$(touch " .. witness .. ")"
    assert(require("lfs").mkdir(dir))
    local f = assert(io.open(dir .. "/extra.lua", "w"))
    f:write([[return { id = "extra", description = "a check from an odd directory", scope = "domain",
      findings = { EXTRA_OK = { severity = "ok", message = "fine" } }, run = function() end }]])
    f:close()
    local out, err = buffer(), buffer()
    local code = cli.main({ "--list-checks", "--checks-dir", dir }, { stdout = out, stderr = err })
    assert.equal(0, code, err:text())
    assert.matches("extra", out:text(), 1, true)
    assert.is_nil(io.open(witness), "a shell ran the directory's name")
    os.remove(dir .. "/extra.lua"); os.remove(dir); os.remove(base)
  end)

  it("asks the terminal question with isatty(3), not `test -t`", function()
    local p = os.tmpname()
    local f = assert(io.open(p, "w"))
    assert.is_false(core.term.isatty(f))
    f:close()
    assert.has_error(function() core.term.isatty(f) end)
    assert.is_false(core.term.isatty(4321))
    assert.has_error(function() core.term.isatty(-1) end)
    os.remove(p)
    for _, path in ipairs { "lua/mxprobe/app/cli/common.lua", "lua/mxprobe/app/audit.lua", "lua/mxprobe/engine/checks.lua" } do
      local src = assert(io.open(path)):read("a")
      assert.is_nil(src:find("os.execute", 1, true), path)
      assert.is_nil(src:find("io.popen", 1, true), path)
    end
  end)
end)

describe("cli.common.plain", function()
  local plain = require("mxprobe.app.cli.common").plain
  it("drops what a Lua error inside mxprobe adds, keeps a user's file and line", function()
    assert.equal("servers: more than 16 servers",
      plain("/work/x/lua/mxprobe/engine/init.lua:108: bad argument #1 to 'new' (servers: more than 16 servers)"))
    assert.equal("Is a directory", plain("/usr/share/lua/5.4/mxprobe/app/audit.lua:95: Is a directory\nstack traceback:\n..."))
    assert.equal("/home/u/mxprobe/site.lua:3: weights.tls: number expected",
      plain("/home/u/mxprobe/site.lua:3: weights.tls: number expected"))
    assert.equal("a\\x1B[31m", plain("a\27[31m"))
  end)
end)

describe("app.main", function()
  local main = require "mxprobe.app.main"
  -- main writes to io.stdout/io.stderr: swap them for buffers during the call
  local function call(argv)
    local out, err = buffer(), buffer()
    local so, se = io.stdout, io.stderr
    io.stdout, io.stderr = out, err
    local ok, code = pcall(main, argv)
    io.stdout, io.stderr = so, se
    assert(ok, code)
    return code, out:text(), err:text()
  end

  it("takes argv as one table (how core/main.c passes it), of any length", function()
    local dir = tmpdir()
    local argv = { "--explain", "MX_OK", "--json" }
    for _ = 1, 1000 do argv[#argv + 1] = "--checks-dir"; argv[#argv + 1] = dir end
    local code, out, err = call(argv)
    os.remove(dir)
    assert.equal(0, code, err)
    assert.equal("MX_OK", cjson.decode(out).code)
    local code2, _, err2 = call({ "audit" })
    assert.equal(3, code2)
    assert.equal("mxprobe: audit: missing argument 'file' (see mxprobe audit --help)\n", err2)
  end)

  it("still takes the strings themselves", function()
    local code, _, err = call("audit")
    assert.equal(3, code)
    assert.matches("missing argument 'file'", err, 1, true)
  end)
end)

describe("Ctrl-C in a real process", function()
  local H = require "tests.helpers.dns_server"
  it("mxprobe a b: stops, says how many were not checked, exits 3", function()
    local fake, why = H.start_fake() -- its 'silent' names never get an answer
    assert(fake, why)
    local pid = assert(io.open("/proc/self/stat")):read("n")
    local exe = io.popen(("readlink /proc/%d/exe"):format(math.tointeger(pid))):read("l")
    local dir = tmpdir()
    os.execute(("sh -c '%s --json --resolver 127.0.0.1:%d --timeout-dns 20 silent.a.test silent.b.test >%s/out 2>%s/err & "
      .. "echo $! >%s/pid; wait $!; echo $? >%s/rc' &"):format(exe, fake.port, dir, dir, dir, dir))
    loop.sleep(0.1)
    local child = math.tointeger(tonumber(assert(io.open(dir .. "/pid")):read("a"):match("%d+")))
    loop.sleep(0.5)
    local t0 = loop.now()
    os.execute(("kill -INT %d"):format(child))
    -- it is not our child (the shell's): wait for the shell to write its
    -- status (the file exists, empty, a moment before the status is in it)
    local function status()
      local f = io.open(dir .. "/rc")
      local s = f and f:read("a")
      if f then f:close() end
      return s and s:find("\n") and s or nil
    end
    while not status() and loop.now() - t0 < 5 do loop.sleep(0.05) end
    local rc = status() or ""
    local err = assert(io.open(dir .. "/err")):read("a")
    local out = assert(io.open(dir .. "/out")):read("a")
    H.stop_fake(fake)
    for _, f in ipairs { "out", "err", "pid", "rc" } do os.remove(dir .. "/" .. f) end
    os.remove(dir)
    assert.is_true(loop.now() - t0 < 5, "still running 5 s after SIGINT")
    assert.equal("3\n", rc)
    assert.equal("", out)
    assert.equal("mxprobe: interrupted; 2 of 2 targets not checked\n", err)
  end)
end)
