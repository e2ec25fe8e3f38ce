-- mxprobe audit against the lab, inside its namespace (tests/run-integration):
-- every lab domain (plus a sample of the --scale domains when the lab has
-- them), with duplicates, a comment, an internationalised name and a line
-- that is not a domain.  In = out, one record per domain, the same codes as
-- the one-domain integration spec, probes shared (run:stats()), time-outs
-- overlapping, and the `mxprobe audit` command with --csv and --shard.
local cjson = require "cjson"
local loop = require "mxprobe.runtime.loop"
local audit = require "mxprobe.app.audit"
local cli = require "mxprobe.app.cli"

local world = dofile("tests/lab/world.lua")
local expected = dofile("tests/integration/expected.lua")
local state = os.getenv("MXLAB_STATE") or world.state_dir

-- the greeting deadline is shorter than the lab spec's: these two depend on it
local TIMING = { ["slow-greeting.lab.test"] = true, ["drip.lab.test"] = true }
local CONFIG = {
  resolvers = { world.resolver }, ca_file = state .. "/ca/ca.pem", allow_reserved = { "documentation" },
  timeouts = { connect = 5, greeting = 10, command = 10, tls = 10, dns = 3 },
}

local function scale_sample(n)
  local f = io.open(state .. "/scale-domains.txt")
  if not f then return {} end
  local list = {}
  for line in f:lines() do
    if #list >= n then break end
    list[#list + 1] = line
  end
  f:close()
  return list
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

local function read_records(path)
  local list = {}
  for line in io.lines(path) do list[#list + 1] = cjson.decode(line) end
  return list
end

-- the input: every lab domain, a comment, a duplicate in another spelling,
-- an internationalised name (no such domain in the lab: NXDOMAIN), a bad
-- line, and the first 400 scale domains when the lab was started with them
local scale = scale_sample(400)
local input = { "# the lab, as an auditor would list it" }
for _, d in ipairs(world.domains) do input[#input + 1] = d.name end
input[#input + 1] = "GOOD.lab.test.   # again"
input[#input + 1] = "bücher.lab.test"
input[#input + 1] = "not a domain"
for _, d in ipairs(scale) do input[#input + 1] = d end
local unique = #world.domains + 2 + #scale

local out_path, sum_path = os.tmpname(), os.tmpname()
local t0 = loop.now()
local summary = audit.run { domains = input, output = out_path, summary = sum_path, config = CONFIG }
local elapsed = loop.now() - t0
local records = read_records(out_path)
local summary_json = cjson.decode(io.open(sum_path):read("a"))
os.remove(out_path)
os.remove(sum_path)
local by = {}
for _, r in ipairs(records) do by[r.domain] = by[r.domain] or {}; table.insert(by[r.domain], r) end

describe("audit of the lab", function()
  it("writes one record per input domain: in = out", function()
    assert.equal(unique, summary.domains)
    assert.equal(unique, #records)
    assert.equal(unique, summary.records)
    for d, list in pairs(by) do assert.equal(1, #list, d .. " has " .. #list .. " records") end
    for _, d in ipairs(world.domains) do assert.truthy(by[d.name], d.name .. " has no record") end
    for _, d in ipairs(scale) do assert.truthy(by[d], d .. " has no record") end
    assert.equal(1, summary.input.duplicates)
    assert.equal(0, summary.exit_code)
  end)

  it("records have the --json schema", function()
    for _, r in ipairs(records) do
      assert.equal(1, r.schema)
      assert.is_string(r.domain); assert.is_string(r.verdict); assert.is_number(r.exit_code)
      assert.equal("table", type(r.dns.mx)); assert.equal("table", type(r.servers)); assert.equal("table", type(r.findings))
    end
  end)

  it("reports the same codes as a one-domain run for every lab domain", function()
    for _, d in ipairs(world.domains) do
      if not TIMING[d.name] then
        local r = by[d.name][1]
        assert.same(expected[d.name].codes, codes_of(r), d.name)
        assert.equal(expected[d.name].verdict, r.verdict, d.name)
      end
    end
  end)

  it("checks an internationalised name as its A-label and says what was given", function()
    local r = by["xn--bcher-kva.lab.test"][1]
    assert.equal("bücher.lab.test", r.input)
    assert.same({ "MX_NXDOMAIN" }, codes_of(r))
  end)

  it("gives a line that is not a domain an error record", function()
    local r = by["not a domain"][1]
    assert.matches("is not a domain name", r.error)
    assert.equal("inconclusive", r.verdict)
  end)

  it("probes every (address, port, MX name) once and shares it", function()
    local triples, servers = {}, 0
    for _, r in ipairs(records) do
      for _, s in ipairs(r.servers) do
        triples[("%s|%d|%s"):format(s.address, s.port, s.host)] = true
        servers = servers + 1
      end
    end
    local distinct = 0
    for _ in pairs(triples) do distinct = distinct + 1 end
    assert.equal(distinct, summary.probes)
    assert.equal(servers, summary.probes + summary.shared)
    assert.is_true(summary.shared > 0)
    if #scale > 0 then assert.is_true(summary.shared > #scale) end
    assert.equal(summary.probes, summary_json.probes)
    assert.equal(unique, summary_json.records)
  end)

  it("overlaps the time-outs instead of queueing them", function()
    -- timeout.lab.test and every 20th scale domain sit behind the dropped
    -- address (5 s connect time-out); the greeting deadline (10 s) of drip
    -- and slow-greeting bounds the run
    local dropped = 1
    for i = 1, #scale do if i % 20 == 0 then dropped = dropped + 1 end end
    assert.equal(dropped, summary.codes.CONNECT_TIMEOUT)
    assert.is_true(elapsed < 25, ("took %.1f s"):format(elapsed))
  end)
end)

describe("audit of the lab without sharing", function()
  it("probes for every domain, at most sessions_per_address at once per address", function()
    local doms = { "good.lab.test", "two-mx.lab.test", "bad-secondary.lab.test", "dup-mx.lab.test", "timeout.lab.test" }
    for i = 1, math.min(40, #scale) do doms[#doms + 1] = scale[i] end
    local n = 0
    local s = audit.run { domains = doms, output = function() n = n + 1; return true end, summary = false,
                          config = CONFIG, share = false, limits = { sessions_per_address = 2 } }
    assert.equal(#doms, n)
    assert.equal(0, s.shared)
    assert.is_true(s.probes >= #doms)
    assert.is_true(s.sessions_open_peak <= 2 * 6, tostring(s.sessions_open_peak))
  end)
end)

describe("mxprobe audit in the lab", function()
  local function buffer()
    local b = { parts = {} }
    function b:write(...) for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring((select(i, ...))) end return self end
    function b:text() return table.concat(self.parts) end
    return b
  end

  it("--csv and --shard: N shards cover the input once", function()
    local list = os.tmpname()
    local f = io.open(list, "w")
    local names = { "good.lab.test", "two-mx.lab.test", "refused.lab.test", "nxdomain.lab.test", "open-relay.lab.test",
                    "null-mx.lab.test", "dual-stack.lab.test", "greylist.lab.test" }
    f:write(table.concat(names, "\n"), "\n")
    f:close()
    local seen = {}
    for k = 1, 3 do
      local out, err = buffer(), buffer()
      local code = cli.main({ "audit", list, "--csv", "--shard", k .. "/3", "--resolver", world.resolver,
                              "--allow-reserved", "documentation", "--ca-file", state .. "/ca/ca.pem",
                              "--timeout-connect", "5" }, { stdout = out, stderr = err })
      assert.equal(0, code, err:text())
      local rows = {}
      for line in out:text():gmatch("[^\n]+") do rows[#rows + 1] = line end
      assert.equal("domain,verdict,", rows[1]:sub(1, 15))
      for i = 2, #rows do
        local d = require("mxprobe.report.csv").parse_line(rows[i])[1]
        assert.is_nil(seen[d], d .. " in two shards")
        seen[d] = k
      end
    end
    os.remove(list)
    for _, n in ipairs(names) do assert.truthy(seen[n], n .. " in no shard") end
  end)
end)
