-- One report never contradicts itself (issue 12 item 8), nothing is skipped
-- in silence (item 6), an untested server has no grade (item 1), and a
-- timeout is blamed on the server only with evidence (item 2).  Every lab
-- domain goes through the stock checks once, inside the lab's namespace
-- (tests/run-integration); then pairs of findings that cannot both be true
-- are looked for in every result.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local text = require "mxprobe.report.text"

local world = dofile("tests/lab/world.lua")
local state = os.getenv("MXLAB_STATE") or world.state_dir

local function config(extra)
  local c = {
    resolvers = { world.resolver }, ca_file = state .. "/ca/ca.pem", allow_reserved = { "documentation" },
    timeouts = { connect = 5, greeting = 40, command = 10, tls = 10, dns = 3 },
  }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

local function check_all(run, names)
  local tasks, out = {}, {}
  for _, name in ipairs(names) do tasks[name] = loop.spawn(function() return run:check_domain(name) end) end
  for name, t in pairs(tasks) do out[name] = assert(loop.join(t)) end
  return out
end

local names = {}
for _, d in ipairs(world.domains) do names[#names + 1] = d.name end
local results = check_all(engine.new { config = config() }, names)

-- The timeout domain alone, with three kinds of evidence, concurrently.
local alone = {}
do
  local runs = {
    none = engine.new { config = config() },
    reference_answers = engine.new { config = config { vantage_check = "good.mx.lab.test" } },
    reference_dropped = engine.new { config = config { vantage_check = "203.0.113.99:25" } },
  }
  local tasks = {}
  for k, run in pairs(runs) do tasks[k] = loop.spawn(function() return run:check_domain("timeout.lab.test") end) end
  for k, t in pairs(tasks) do alone[k] = assert(loop.join(t)) end
end

-- Pairs of codes that cannot both be true of one server (or of one
-- domain's DNS and domain findings).
local EXCLUSIVE = {
  { "MX_OK", { "MX_NXDOMAIN", "MX_NONE", "MX_NULL", "MX_DNS_FAIL", "MX_NONE_IMPLICIT" } },
  { "CONNECT_OK", { "CONNECT_REFUSED", "CONNECT_TIMEOUT", "CONNECT_UNREACHABLE", "CONNECT_ERROR" } },
  { "BANNER_OK", { "BANNER_TIMEOUT", "BANNER_CLOSED", "BANNER_MALFORMED", "BANNER_421", "BANNER_554", "BANNER_UNEXPECTED" } },
  { "EHLO_OK", { "EHLO_FAILED", "EHLO_HELO_ONLY", "EHLO_421" } },
  { "STARTTLS_NOT_OFFERED", { "STARTTLS_REJECTED", "STARTTLS_HANDSHAKE_FAILED", "TLS_VERSION_13", "TLS_VERSION_12",
                              "TLS_VERSION_DEPRECATED", "TLS_VERSION_BROKEN", "CERT_OK", "STARTTLS_INJECTION_SAFE" } },
  { "STARTTLS_HANDSHAKE_FAILED", { "TLS_VERSION_13", "TLS_VERSION_12", "TLS_VERSION_DEPRECATED", "CERT_OK", "CERT_EXPIRED" } },
  { "CERT_OK", { "CERT_EXPIRED", "CERT_NOT_YET_VALID", "CERT_EXPIRING", "CERT_UNTRUSTED", "CERT_SELF_SIGNED",
                 "CERT_NAME_MISMATCH", "CERT_MISSING" } },
  { "RELAY_OPEN", { "RELAY_DENIED", "RELAY_REJECTED", "RELAY_DEFERRED", "RELAY_MAIL_REJECTED" } },
  { "STARTTLS_INJECTION_SAFE", { "STARTTLS_COMMAND_INJECTION" } },
}

local function scopes(r)
  local out = {}
  local dom = {}
  for _, f in ipairs(r.dns.findings) do dom[#dom + 1] = f end
  for _, f in ipairs(r.findings) do dom[#dom + 1] = f end
  out[1] = { name = "domain", findings = dom, not_run = r.not_run }
  for _, s in ipairs(r.servers) do
    out[#out + 1] = { name = s.host .. " " .. s.address, findings = s.findings, not_run = s.not_run, srv = s }
  end
  return out
end

-- Every contradiction in a result, as text.
local function contradictions(r)
  local found = {}
  local all_codes = {}
  for _, sc in ipairs(scopes(r)) do
    local codes, by_check = {}, {}
    for _, f in ipairs(sc.findings) do codes[f.code] = f; by_check[f.check] = true; all_codes[f.code] = true end
    for _, pair in ipairs(EXCLUSIVE) do
      if codes[pair[1]] then
        for _, other in ipairs(pair[2]) do
          if codes[other] then found[#found + 1] = ("%s: %s and %s"):format(sc.name, pair[1], other) end
        end
      end
    end
    -- a check that did not run reported nothing
    for _, n in ipairs(sc.not_run or {}) do
      if by_check[n.check] then found[#found + 1] = ("%s: %s is not run (%s) but reported"):format(sc.name, n.check, n.reason) end
    end
    -- an IP-literal MX is not counted as a valid one
    if codes.MX_OK and codes.MX_IP_LITERAL then
      for _, h in ipairs(codes.MX_OK.evidence.hosts or {}) do
        if h:match(" " .. codes.MX_IP_LITERAL.evidence.host:gsub("%p", "%%%0") .. "$") then
          found[#found + 1] = "MX_OK counts the IP literal " .. codes.MX_IP_LITERAL.evidence.host
        end
      end
    end
    local s = sc.srv
    if s then
      -- a grade needs a test, and a critical finding rules out an A
      if s.score_reason and (s.score or s.grade) then found[#found + 1] = sc.name .. ": not tested but scored" end
      if not s.score_reason and not s.score then found[#found + 1] = sc.name .. ": no score and no reason" end
      for _, f in ipairs(s.findings) do
        if f.severity == "critical" and s.grade == "A" then found[#found + 1] = sc.name .. ": grade A beside critical " .. f.code end
      end
      if (codes.CONNECT_TIMEOUT or codes.CONNECT_REFUSED) and s.score then
        found[#found + 1] = sc.name .. ": unreachable but scored " .. tostring(s.score)
      end
    end
  end
  -- a domain-wide "every address timed out" beside a server that connected
  if all_codes.CONNECT_OK and (all_codes.CONNECT_ALL_TIMEOUT or all_codes.CONNECT_PORT_BLOCKED) then
    found[#found + 1] = "every address timed out, yet one connected"
  end
  if all_codes.CONNECT_OK and all_codes.ADDRESS_NONE_ALL then
    found[#found + 1] = "no MX host has a usable address, yet one connected"
  end
  -- "no IPv6 address" for a host that was tested over IPv6
  for _, f in ipairs(r.dns.findings) do
    if f.code == "ADDRESS_NO_IPV6" then
      for _, s in ipairs(r.servers) do
        if s.host == f.evidence.host and s.family == 6 then found[#found + 1] = "ADDRESS_NO_IPV6 for " .. s.host .. ", tested over IPv6" end
      end
    end
  end
  -- "TLS on some, not all" needs one without
  if all_codes.TLS_INCONSISTENT then
    local weak = 0
    for _, s in ipairs(r.servers) do
      if not (s.facts.starttls and s.facts.starttls.handshake) then weak = weak + 1 end
    end
    if weak == 0 then found[#found + 1] = "TLS_INCONSISTENT, yet every server did TLS" end
  end
  -- the deciding finding is one of the report's
  if r.decided_by and r.decided_by.code and not all_codes[r.decided_by.code] then
    found[#found + 1] = "decided by " .. r.decided_by.code .. ", which the report does not list"
  end
  -- the verdict agrees with the worst conclusive severity (default policy)
  local worst = "ok"
  local rank = { ok = 0, info = 0, warning = 1, critical = 2 }
  for _, sc in ipairs(scopes(r)) do
    for _, f in ipairs(sc.findings) do
      if rank[f.severity] and rank[f.severity] > rank[worst] then worst = f.severity end
    end
  end
  if worst ~= "ok" and r.verdict ~= worst then found[#found + 1] = ("verdict %s, worst finding %s"):format(r.verdict, worst) end
  return found
end

describe("every lab report is consistent", function()
  for _, name in ipairs(names) do
    it(name, function()
      assert.same({}, contradictions(results[name]))
    end)
  end

  it("the rule catches the contradictions it is meant to", function()
    local r = { verdict = "critical", not_run = {}, findings = {},
      dns = { findings = { { code = "MX_OK", check = "mx", severity = "ok", evidence = { hosts = { "10 192.0.2.1" } } },
                           { code = "MX_IP_LITERAL", check = "mx", severity = "critical", evidence = { host = "192.0.2.1" } } } },
      servers = { { host = "h", address = "192.0.2.1", score = 100, grade = "A", not_run = { { check = "banner", reason = "x" } },
        findings = { { code = "CONNECT_TIMEOUT", check = "connect", severity = "critical", evidence = {} },
                     { code = "BANNER_OK", check = "banner", severity = "ok", evidence = {} } } } } }
    local found = contradictions(r)
    assert.same({
      "MX_OK counts the IP literal 192.0.2.1",
      "h 192.0.2.1: banner is not run (x) but reported",
      "h 192.0.2.1: grade A beside critical CONNECT_TIMEOUT",
      "h 192.0.2.1: unreachable but scored 100",
    }, found)
  end)
end)

describe("nothing skipped in silence, in the lab", function()
  it("slow-greeting: starttls_injection is listed as not run, with the reason, in text and JSON", function()
    local s = results["slow-greeting.lab.test"].servers[1]
    local reason
    for _, n in ipairs(s.not_run) do if n.check == "starttls_injection" then reason = n.reason end end
    assert.matches("^the greeting was slow %(3%d%.%d+ s; greeting_slow_s = 30%)$", reason)
    assert.matches("not run: starttls_injection (the greeting was slow", text.render(results["slow-greeting.lab.test"]), 1, true)
    assert.matches('"check":"starttls_injection","reason":"the greeting was slow',
      require("mxprobe.report.json").render(results["slow-greeting.lab.test"]), 1, true)
  end)

  it("tls-broken: the certificate check and the injection probe say why they did not run", function()
    local s = results["tls-broken.lab.test"].servers[1]
    local why = {}
    for _, n in ipairs(s.not_run) do why[n.check] = n.reason end
    assert.equal("no TLS session", why.certificate)
    assert.equal("no TLS handshake on the main session", why.starttls_injection)
  end)

  it("greet-421 and refused: no score, and the reason", function()
    local s = results["greet-421.lab.test"].servers[1]
    assert.is_nil(s.score)
    assert.equal("not tested: greeting 421: the session ended", s.score_reason)
    s = results["refused.lab.test"].servers[1]
    assert.is_nil(s.grade)
    assert.equal("not tested: the connection was refused", s.score_reason)
    assert.matches("score - (not tested: the connection was refused)", text.render(results["refused.lab.test"]), 1, true)
  end)

  it("many-mx: the MX left out make it a warning", function()
    local r = results["many-mx.lab.test"]
    assert.equal("warning", r.verdict)
    assert.equal("MX_TOO_MANY", r.decided_by.code)
  end)
end)

describe("whose timeout is it, in the lab", function()
  it("in a run where other servers answered on port 25, the timeout is the server's: critical", function()
    local r = results["timeout.lab.test"]
    assert.equal("critical", r.verdict)
    assert.equal("open", r.vantage.state)
    assert.is_true(r.vantage.answered > 0)
  end)

  it("alone, without evidence: inconclusive, the override shown, and a pointer to --vantage-check", function()
    local r = alone.none
    assert.equal("inconclusive", r.verdict)
    assert.equal("unknown", r.vantage.state)
    assert.equal("CONNECT_ALL_TIMEOUT", r.findings[1].code)
    local f = r.servers[1].findings[#r.servers[1].findings]
    assert.equal("CONNECT_TIMEOUT", f.code)
    assert.same({ "critical", "connect" }, { f.override.from, f.override.check })
    assert.matches("--vantage-check", r.findings[1].hint, 1, true)
  end)

  it("alone, with a reference host that answers: critical", function()
    local r = alone.reference_answers
    assert.equal("critical", r.verdict)
    assert.same({ "open", "answered" }, { r.vantage.state, r.vantage.check.state })
    assert.equal("192.0.2.10", r.vantage.check.address)
  end)

  it("alone, with a reference host that is dropped too: port 25 is blocked here", function()
    local r = alone.reference_dropped
    assert.equal("inconclusive", r.verdict)
    assert.equal("blocked", r.vantage.state)
    assert.equal("CONNECT_PORT_BLOCKED", r.findings[1].code)
  end)
end)
