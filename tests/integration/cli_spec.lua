-- `mxprobe DOMAIN...` against the lab, inside its namespace
-- (tests/run-integration): several domains go through the one runner, in
-- command-line order, with the same codes as one-domain runs, and the
-- domains whose MX is good.mx.lab.test share its probe (real Postfix);
-- --csv gives one row per domain.
local cjson = require "cjson"
local cli = require "mxprobe.app.cli"
local csv = require "mxprobe.report.csv"

local world = dofile("tests/lab/world.lua")
local expected = dofile("tests/integration/expected.lua")
local state = os.getenv("MXLAB_STATE") or world.state_dir

local function buffer()
  local b = { parts = {} }
  function b:write(...) for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring((select(i, ...))) end return self end
  function b:text() return table.concat(self.parts) end
  return b
end

local function codes_of(r)
  local set, list = {}, {}
  local function add(fs) for _, x in ipairs(fs or {}) do set[x.code] = true end end
  add(r.dns and r.dns.findings); add(r.findings)
  for _, s in ipairs(r.servers or {}) do add(s.findings) end
  for c in pairs(set) do list[#list + 1] = c end
  table.sort(list)
  return list
end

local COMMON = { "--resolver", world.resolver, "--allow-reserved", "documentation", "--ca-file", state .. "/ca/ca.pem",
                 "--timeout-connect", "5" }
-- every one of these has good.mx.lab.test as an MX
local SHARING = { "dup-mx.lab.test", "good.lab.test", "bad-secondary.lab.test", "two-mx.lab.test" }

-- the real engine, keeping the run the command line makes (for its counters)
local engine = require "mxprobe.engine"
local made_run
local spy = setmetatable({ new = function(spec) made_run = engine.new(spec); return made_run end }, { __index = engine })

local function run(extra)
  local argv = {}
  for _, a in ipairs(extra) do argv[#argv + 1] = a end
  for _, a in ipairs(COMMON) do argv[#argv + 1] = a end
  for _, d in ipairs(SHARING) do argv[#argv + 1] = d end
  local out, err = buffer(), buffer()
  local code = cli.main(argv, { stdout = out, stderr = err, engine = spy })
  return code, out:text(), err:text()
end

describe("mxprobe DOMAIN... in the lab", function()
  it("reports in command-line order, with one-domain codes, sharing the probes of a common MX", function()
    local code, out, err = run { "--json" }
    assert.equal(1, code, err) -- bad-secondary is a warning
    local docs = {}
    for line in out:gmatch("[^\n]+") do docs[#docs + 1] = cjson.decode(line) end
    assert.equal(#SHARING, #docs)
    local triples, servers, good = {}, 0, 0
    for i, r in ipairs(docs) do
      assert.equal(SHARING[i], r.domain)
      assert.same(expected[r.domain].codes, codes_of(r), r.domain)
      assert.equal(expected[r.domain].verdict, r.verdict, r.domain)
      for _, s in ipairs(r.servers) do
        triples[("%s|%d|%s"):format(s.address, s.port, s.host)] = true
        servers = servers + 1
        if s.host == "good.mx.lab.test" then good = good + 1 end
      end
    end
    local distinct = 0
    for _ in pairs(triples) do distinct = distinct + 1 end
    local st = made_run:stats()
    assert.equal(distinct, st.probes) -- each (address, port, MX name) probed once
    assert.equal(servers, st.probes + st.shared)
    assert.is_true(good >= #SHARING and st.shared >= #SHARING - 1, ("%d shared"):format(st.shared))
  end)

  it("--csv: a header and one row per domain, in command-line order", function()
    local code, out, err = run { "--csv" }
    assert.equal(1, code, err)
    local rows = {}
    for line in out:gmatch("[^\n]+") do rows[#rows + 1] = line end
    assert.equal(csv.header(), rows[1] .. "\n")
    assert.equal(#SHARING + 1, #rows)
    for i, d in ipairs(SHARING) do
      local f = csv.parse_line(rows[i + 1])
      assert.equal(d, f[1])
      assert.equal(expected[d].verdict, f[2])
    end
  end)
end)
