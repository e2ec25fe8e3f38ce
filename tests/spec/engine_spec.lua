-- The engine across domains: probes shared per (address, port, MX name),
-- per-address slots, the connection rate cap, and error isolation.
-- Loopback only: a fake DNS maps every test domain to mx.test -> 127.0.0.1.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local fake = require "tests.helpers.fake_smtp"

local fake_dns = require "tests.helpers.fake_resolver" -- DNS is not under test here

-- a server that greets slowly and counts connections and concurrency
local function counting_server(n, delay)
  local stats = { active = 0, peak = 0, started = {} }
  local srv = fake.start({
    function()
      stats.active = stats.active + 1
      stats.peak = math.max(stats.peak, stats.active)
      stats.started[#stats.started + 1] = loop.now()
    end,
    { sleep = delay or 0.1 },
    "220 mx.test ESMTP\r\n",
    { expect = "^QUIT" },
    "221 bye\r\n",
    function() stats.active = stats.active - 1 end,
  }, { connections = n, lifetime = 10 })
  return srv, stats
end

local function new_run(port, extra)
  local config = { only = { "banner" }, allow_reserved = { "loopback" }, port = port, helo = "t.test",
                   timeouts = { connect = 2, greeting = 3, command = 3 } }
  for k, v in pairs(extra or {}) do config[k] = v end
  return engine.new { dns = fake_dns, config = config, share = extra and extra.share }
end

local function check_all(run, domains)
  local tasks, out = {}, {}
  for i, d in ipairs(domains) do tasks[i] = loop.spawn(function() return run:check_domain(d) end) end
  for i, t in ipairs(tasks) do out[i] = assert(loop.join(t)) end
  return out
end

describe("engine across domains", function()
  it("shares one probe per (address, port, MX name) between domains", function()
    local srv, stats = counting_server(1)
    local run = new_run(srv.port, { share = true })
    local results = check_all(run, { "a.test", "b.test", "c.test" })
    srv:wait()
    assert.equal(1, #stats.started)
    for _, r in ipairs(results) do
      assert.equal("ok", r.verdict)
      assert.equal(1, #r.servers)
      assert.equal(220, r.servers[1].facts.banner.code)
    end
    -- the facts and the transcript, final once the probe is done, are one
    -- frozen table; so are the findings, since this policy changes none
    -- per domain (no rules: engine Run:_shares_findings, issue 15)
    local frozen = require "mxprobe.runtime.frozen"
    local findings = require "mxprobe.runtime.findings"
    for _, part in ipairs({ "facts", "transcript", "findings" }) do
      assert.equal(results[1].servers[1][part], results[2].servers[1][part])
      assert.is_true(frozen.is(results[1].servers[1][part]), part)
    end
    assert.is_true(#results[1].servers[1].transcript > 0)
    local st = run:stats()
    assert.equal(1, st.probes); assert.equal(2, st.shared)
    local s1, s2 = results[1].servers[1], results[2].servers[1]
    assert.equal("CONNECT_OK", s1.findings[1].code)
    -- a shared finding refuses a new key (set_severity's override): a
    -- change that forgot findings.own fails instead of changing every domain
    assert.has_error(function() s1.findings[1].override = {} end)
    assert.has_error(function() s1.findings[#s1.findings + 1] = {} end)
    -- own(): this domain's copy, re-judged alone; the evidence stays the probe's
    local mine = findings.own(s1)
    assert.equal(mine, s1.findings)
    assert.is_false(frozen.is(mine))
    assert.equal(mine, findings.own(s1)) -- once
    assert.are_not.equal(mine[1], s2.findings[1])
    assert.is_false(frozen.is(mine[1]))
    assert.equal(mine[1].evidence, s2.findings[1].evidence)
    assert.is_true(frozen.is(mine[1].evidence))
    mine[1].severity = "warning"
    mine[1].override = { from = "ok" }
    assert.equal("ok", s2.findings[1].severity)
    assert.is_nil(s2.findings[1].override)
    assert.has_error(function() mine[1].evidence.added = true end)
  end)

  it("gives each domain its own copy of a shared probe's findings when the policy has rules", function()
    local srv = counting_server(1)
    local config = { only = { "banner" }, allow_reserved = { "loopback" }, port = srv.port, helo = "t.test",
                     timeouts = { connect = 2, greeting = 3, command = 3 } }
    local seen = {}
    local run = engine.new { dns = fake_dns, config = config, share = true,
                             policy = { rules = { function(result) seen[#seen + 1] = result.domain end } } }
    local results = check_all(run, { "a.test", "b.test" })
    srv:wait()
    assert.equal(2, #seen)
    assert.equal(1, run:stats().probes)
    local f1, f2 = results[1].servers[1].findings[1], results[2].servers[1].findings[1]
    local frozen = require "mxprobe.runtime.frozen"
    assert.are_not.equal(results[1].servers[1].findings, results[2].servers[1].findings)
    assert.is_false(frozen.is(results[1].servers[1].findings))
    assert.are_not.equal(f1, f2)
    assert.equal(f1.evidence, f2.evidence)
    f1.severity = "warning"
    assert.equal("ok", f2.severity)
  end)

  it("keeps SHARED_MAX shared probes and as many older ones: a server let go is probed again", function()
    -- aN.test has MX mxN.test (127.0.0.1): one shared key per domain
    local dns = {
      query = function(_, name, qtype)
        local n = name:match("^a(%d)%.test$")
        if qtype == "MX" and n then
          return { rcode = "NOERROR", answers = { { type = "MX", preference = 10, host = "mx" .. n .. ".test." } } }
        elseif qtype == "A" and name:match("^mx%d%.test$") then
          return { rcode = "NOERROR", answers = { { type = "A", address = "127.0.0.1" } } }
        end
        return { rcode = "NOERROR", answers = {} }
      end,
    }
    local saved = engine.SHARED_MAX
    engine.SHARED_MAX = 1
    local srv, stats = counting_server(5)
    local ok, err = pcall(function()
      local config = { only = { "banner" }, allow_reserved = { "loopback" }, port = srv.port, helo = "t.test",
                       timeouts = { connect = 2, greeting = 3, command = 3 } }
      local run = engine.new { dns = dns, config = config, share = true }
      local function one(d) check_all(run, { d }) return run:stats().probes end
      assert.equal(1, one("a1.test"))
      assert.equal(1, one("a1.test")) -- shared
      assert.equal(2, one("a2.test")) -- mx1 moves to the older generation
      assert.equal(2, one("a1.test")) -- still shared, moved up again
      assert.equal(3, one("a3.test"))
      assert.equal(4, one("a4.test")) -- now mx3 and mx4 are kept; mx1 and mx2 are gone
      assert.equal(5, one("a2.test")) -- let go: probed again
    end)
    engine.SHARED_MAX = saved
    srv:wait()
    assert(ok, err)
    assert.equal(5, #stats.started)
  end)

  it("without sharing, probes every time but at most sessions_per_address at once", function()
    local srv, stats = counting_server(4, 0.2)
    local run = new_run(srv.port, { limits = { sessions_per_address = 1 } })
    local t0 = loop.now()
    check_all(run, { "a.test", "b.test", "c.test", "d.test" })
    srv:wait()
    assert.equal(4, #stats.started)
    assert.equal(1, stats.peak)
    assert.is_true(loop.now() - t0 >= 0.8)
    assert.equal(4, run:stats().probes)
  end)

  it("caps new connections per second per address", function()
    local srv, stats = counting_server(3, 0)
    local run = new_run(srv.port, { limits = { sessions_per_address = 3, connects_per_second_per_address = 10 } })
    check_all(run, { "a.test", "b.test", "c.test" })
    srv:wait()
    assert.equal(3, #stats.started)
    table.sort(stats.started)
    assert.is_true(stats.started[3] - stats.started[1] >= 0.18, tostring(stats.started[3] - stats.started[1]))
  end)

  it("a check that raises becomes a CHECK_ERROR finding; the rest of the run goes on", function()
    local srv = counting_server(1)
    local run = new_run(srv.port)
    -- break one check of this run only
    for _, d in ipairs(run.checks) do
      if d.id == "banner" then
        local orig = d.run
        d.run = function(ctx) orig(ctx); error("deliberate failure") end
      end
    end
    local r = check_all(run, { "a.test" })[1]
    srv:wait()
    local codes = {}
    for _, f in ipairs(r.servers[1].findings) do codes[f.code] = f end
    assert.truthy(codes.CONNECT_OK)
    assert.truthy(codes.BANNER_OK)
    assert.truthy(codes.CHECK_ERROR)
    assert.equal("error", codes.CHECK_ERROR.severity)
    assert.matches("deliberate failure", codes.CHECK_ERROR.message)
    assert.equal("inconclusive", r.verdict)
  end)
end)
