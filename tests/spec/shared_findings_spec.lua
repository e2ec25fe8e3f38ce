-- A shared probe's findings list (runtime.findings.own, issue 15) is judged
-- once per probe: the verdict's walk, the default score and the audit
-- summary's codes read a memo of the frozen list instead of walking it.
-- Each must give exactly what walking a plain copy of the same findings
-- gives, for any mix of severities, rules and servers.
local judge = require "mxprobe.policy.judge"
local audit = require "mxprobe.app.audit"
local frozen = require "mxprobe.runtime.frozen"
local findings = require "mxprobe.runtime.findings"
local policy = require "mxprobe.policy"

local SEVERITIES = { "ok", "info", "warning", "critical", "inconclusive", "error" }
local CODES = { "CONNECT_OK", "CERT_EXPIRED", "TLS_VERSION_13", "RELAY_DENIED", "BANNER_SLOW", "EHLO_OK" }

local function random_list(rand, n)
  local l = {}
  for i = 1, n do
    local f = { check = "c", code = CODES[rand(#CODES)], severity = SEVERITIES[rand(#SEVERITIES)], evidence = {} }
    if rand(4) == 1 then f.rule = "a rule" end
    l[i] = f
  end
  return l
end

local function plain_copy(l)
  local out = {}
  for i, f in ipairs(l) do
    local c = {}
    for k, v in pairs(f) do c[k] = v end
    out[i] = c
  end
  return out
end

local function freeze(l)
  for _, f in ipairs(l) do frozen.mark(f) end
  return frozen.mark(l)
end

-- the index of f in the result's walk order (DNS, domain, servers), or nil
local function position(result, f)
  local i = 0
  for x in findings.each(result) do
    i = i + 1
    if x == f then return i end
  end
end

describe("shared findings", function()
  it("the verdict and its deciding finding are those of walking plain copies (2,000 random results)", function()
    local seed = os.time()
    math.randomseed(seed)
    local rand = math.random
    for _ = 1, 2000 do
      local dns, dom = random_list(rand, rand(0, 3)), random_list(rand, rand(0, 3))
      local lists = {}
      for s = 1, rand(0, 4) do lists[s] = random_list(rand, rand(0, 6)) end
      local shared = { dns = { findings = plain_copy(dns) }, findings = plain_copy(dom), servers = {} }
      local plain = { dns = { findings = plain_copy(dns) }, findings = plain_copy(dom), servers = {} }
      for s, l in ipairs(lists) do
        -- some servers shared (frozen), some not, as in a mixed audit
        shared.servers[s] = { findings = rand(3) == 1 and plain_copy(l) or freeze(plain_copy(l)) }
        plain.servers[s] = { findings = plain_copy(l) }
      end
      -- twice: the second reads the memo
      for _ = 1, 2 do
        local v1, f1, s1 = judge.verdict(shared)
        local v2, f2, s2 = judge.verdict(plain)
        assert.equal(v2, v1, "seed " .. seed)
        assert.equal(f2 and position(plain, f2), f1 and position(shared, f1), "seed " .. seed)
        local i1, i2
        for i, s in ipairs(shared.servers) do if s == s1 then i1 = i end end
        for i, s in ipairs(plain.servers) do if s == s2 then i2 = i end end
        assert.equal(i2, i1, "seed " .. seed)
      end
    end
  end)

  it("the default score and the summary's codes are those of walking plain copies", function()
    local pol = policy.default()
    local seed = os.time()
    math.randomseed(seed)
    local rand = math.random
    for _ = 1, 500 do
      local l = random_list(rand, rand(0, 8))
      local srv_shared, srv_plain = { findings = freeze(plain_copy(l)) }, { findings = plain_copy(l) }
      for _ = 1, 2 do
        assert.equal(judge.default_score(pol, srv_plain), judge.default_score(pol, srv_shared), "seed " .. seed)
      end
      local other = random_list(rand, rand(0, 3))
      local s1, s2 = audit.new_summary(), audit.new_summary()
      for _ = 1, 2 do
        audit.count(s1, { verdict = "ok", findings = plain_copy(other), servers = { srv_shared, srv_shared } })
        audit.count(s2, { verdict = "ok", findings = plain_copy(other), servers = { srv_plain, srv_plain } })
      end
      assert.same(s2.codes, s1.codes, "seed " .. seed)
    end
  end)

  it("own() copies a shared list once and leaves a private one alone", function()
    local l = { { code = "A", severity = "ok", evidence = frozen.mark({ x = 1 }) } }
    local private = { findings = l }
    assert.equal(l, findings.own(private))
    local srv = { findings = freeze(plain_copy(l)) }
    local shared = srv.findings
    local mine = findings.own(srv)
    assert.are_not.equal(shared, mine)
    assert.equal(mine, srv.findings)
    assert.equal(mine, findings.own(srv))
    assert.is_false(frozen.is(mine)); assert.is_false(frozen.is(mine[1]))
    assert.equal(shared[1].evidence, mine[1].evidence)
    mine[#mine + 1] = { code = "B" }
    assert.equal(1, #shared)
  end)
end)
