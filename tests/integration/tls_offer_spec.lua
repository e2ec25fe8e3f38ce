-- checks/tls_offer.lua against the lab's TLS-offer servers (tests/lab:
-- legacy, dualcert, mixed-new/mixed-old, tls10), with exact results, and
-- nmap's ssl-enum-ciphers on the same server as the reference for what is
-- offered.  Runs inside the lab namespace (tests/run-integration).
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"

local world = dofile("tests/lab/world.lua")
local state = os.getenv("MXLAB_STATE") or world.state_dir

local function new_run(tls)
  return engine.new {
    config = {
      resolvers = { world.resolver }, ca_file = state .. "/ca/ca.pem", allow_reserved = { "documentation" },
      timeouts = { connect = 5, greeting = 10, command = 10, tls = 10, dns = 3 }, tls = tls,
    },
  }
end

local function check(name, tls)
  local run = new_run(tls)
  return loop.join(loop.spawn(function() return run:check_domain(name) end))
end

local function server(r, address)
  for _, s in ipairs(r.servers) do if s.address == address then return s end end
end

local function codes(findings, check_id)
  local out = {}
  for _, f in ipairs(findings) do if not check_id or f.check == check_id then out[#out + 1] = f.code end end
  table.sort(out)
  return out
end

local function finding(findings, code)
  for _, f in ipairs(findings) do if f.code == code then return f end end
end

-- nmap's view: { ["TLSv1.0"] = { "TLS_RSA_WITH_AES_128_CBC_SHA", ... }, ... }
local function nmap_offer(address)
  local p = assert(io.popen(("nmap -Pn -p 25 --script ssl-enum-ciphers %s 2>&1"):format(address)))
  local out = p:read("a")
  p:close()
  local offer, current = {}, nil
  for line in out:gmatch("[^\n]+") do
    local v = line:match("^|%s+(TLSv1%.%d):%s*$")
    if v then current = v; offer[v] = {} end
    local suite = line:match("^|%s+(TLS_[%w_]+) %(")
    if suite and current then table.insert(offer[current], suite) end
  end
  return offer, out
end

-- IANA name -> OpenSSL name, from the linked OpenSSL's own table
local function iana_to_openssl()
  local map = {}
  local p = assert(io.popen("openssl ciphers -stdname 'ALL:COMPLEMENTOFALL:@SECLEVEL=0' 2>/dev/null"))
  for line in p:lines() do
    local iana, ossl = line:match("^(%S+)%s+%- (%S+)")
    if iana then map[iana] = ossl end
  end
  p:close()
  return map
end

describe("tls_offer in the lab", function()
  it("legacy: TLS 1.0-1.2, static RSA, FFDHE 2048, a NULL suite, client order; nmap sees the same versions", function()
    local r = check("legacy.lab.test")
    local s = assert(server(r, "198.51.100.60"))
    local f = s.facts.tls_offer
    assert.same({ "TLSv1", "TLSv1.1", "TLSv1.2" }, f.versions)
    assert.same({ "SSLv3" }, f.untestable)
    assert.same({ "TLS_KX_PHASE_OUT", "TLS_NO_SERVER_PREFERENCE", "TLS_OFFER_PHASE_OUT", "TLS_OFFER_UNTESTABLE",
                  "TLS_OFFER_VERSIONS", "TLS_STRICT_CLIENT_OK", "TLS_SUITES_INSUFFICIENT", "TLS_SUITES_PHASE_OUT" },
                codes(s.findings, "tls_offer"))
    assert.same({ "NULL-SHA256" }, finding(s.findings, "TLS_SUITES_INSUFFICIENT").evidence.suites)
    assert.same({ ["FFDHE 2048 bits"] = "phase_out" }, f.key_exchange)
    assert.is_false(f.server_preference)
    assert.equal("insufficient", f.grade)
    assert.equal("warning", r.verdict)
    local nm, raw = nmap_offer("198.51.100.60")
    local nmap_versions = {}
    for v in pairs(nm) do nmap_versions[#nmap_versions + 1] = v end
    table.sort(nmap_versions)
    assert.same({ "TLSv1.0", "TLSv1.1", "TLSv1.2" }, nmap_versions, raw)
  end)

  it("legacy, suites mode: every TLS 1.2 suite nmap lists, and no other", function()
    local r = check("legacy.lab.test", { enumerate = "suites" })
    local f = server(r, "198.51.100.60").facts.tls_offer
    local ours = {}
    for _, list in pairs(f.suites) do for _, s in ipairs(list) do ours[#ours + 1] = s end end
    table.sort(ours)
    local map, theirs = iana_to_openssl(), {}
    local nm, raw = nmap_offer("198.51.100.60")
    for _, iana in ipairs(nm["TLSv1.2"] or {}) do theirs[#theirs + 1] = map[iana] or iana end
    table.sort(theirs)
    assert.same(theirs, ours, raw)
    assert.same({ "AES128-GCM-SHA256", "AES128-SHA", "AES256-SHA", "DHE-RSA-AES128-SHA", "NULL-SHA256" }, ours)
  end)

  it("dualcert: both certificates are found and checked", function()
    local r = check("dualcert.lab.test")
    local s = assert(server(r, "198.51.100.61"))
    local certs = s.facts.tls_offer.certificates
    assert.equal(2, #certs)
    local types = { certs[1].key_type, certs[2].key_type }
    table.sort(types)
    assert.same({ "EC", "RSA" }, types)
    for _, c in ipairs(certs) do
      assert.is_true(c.verified); assert.is_true(c.name_match)
    end
    assert.equal(2, finding(s.findings, "TLS_CERTIFICATES").evidence.count)
    assert.is_nil(finding(s.findings, "TLS_SECOND_CERT_PROBLEM"))
    assert.equal("ok", r.verdict)
  end)

  it("dualcert under DANE-EE of its ECDSA key only: the RSA certificate is the problem DANE senders meet", function()
    local r = check("dane-dual.sec.lab.test")
    local s = assert(server(r, "198.51.100.61"))
    assert.equal("match", s.facts.dane.result) -- the main handshake got the ECDSA certificate
    local dane_f
    for _, f in ipairs(s.findings) do
      if f.code == "TLS_SECOND_CERT_PROBLEM" and f.evidence.problem:find("TLSA", 1, true) then dane_f = f end
    end
    assert.truthy(dane_f, "no DANE problem for the second certificate")
    assert.equal("RSA", dane_f.evidence.type)
    -- without DANE, the same server has no such problem (dualcert.lab.test above)
  end)

  it("mixed: the finding names the address that offers more", function()
    local r = check("mixed.lab.test")
    local f = assert(finding(r.findings, "TLS_ADDRESSES_DIFFER"))
    assert.equal("mixed.mx.lab.test", f.evidence.host)
    assert.equal("198.51.100.63 offers TLSv1, TLSv1.1; 198.51.100.62 does not", f.evidence.differences[1])
    assert.same({ "TLSv1.2", "TLSv1.3" }, server(r, "198.51.100.62").facts.tls_offer.versions)
    assert.same({ "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3" }, server(r, "198.51.100.63").facts.tls_offer.versions)
  end)

  it("tls10: a modern client cannot talk to it, and the report says why", function()
    local r = check("tls10.lab.test")
    local s = server(r, "198.51.100.27")
    local f = assert(finding(s.findings, "TLS_STRICT_CLIENT_FAILS"))
    assert.matches("protocol version", f.evidence.reason)
    assert.truthy(finding(s.findings, "TLS_OFFER_NO_TLS12"))
  end)

  it("probe.tls.enumerate: versions costs one handshake per testable version; false runs no extra session", function()
    local r = check("good.lab.test", { enumerate = "versions" })
    local f = server(r, "192.0.2.10").facts.tls_offer
    assert.equal(4, f.handshakes)
    assert.same({ "TLSv1.2", "TLSv1.3" }, f.versions)
    assert.is_nil(f.suites)
    r = check("good.lab.test", { enumerate = false })
    assert.is_nil(server(r, "192.0.2.10").facts.tls_offer)
    assert.same({}, codes(server(r, "192.0.2.10").findings, "tls_offer"))
  end)
end)
