-- core.dns (c-ares on the loop) and mxprobe.net.dns (the wrapper), against a
-- real nsd serving tests/zones/ on loopback and a scripted responder
-- (tests/helpers/fake_dns.py) for answers no real server sends.
-- No packet leaves the machine: every resolver here names its servers.
local core = require "mxprobe.core"
local loop = require "mxprobe.runtime.loop"
local dns = require "mxprobe.net.dns"
local H = require "tests.helpers.dns_server"
local C = core.dns

-- wait for a core query and return its result (3 s cap)
local function answer(q)
  local ok, code = loop.wait(q, nil, loop.now() + 3)
  if not ok then return nil, code end
  return q:result()
end

local function by_type(list, t)
  local out = {}
  for _, rr in ipairs(list) do if rr.type == t then out[#out + 1] = rr end end
  return out
end

local function sorted(t) table.sort(t); return t end

describe("core.dns without a server", function()
  it("builds reverse names for IPv4 and IPv6", function()
    assert.equal("11.2.0.192.in-addr.arpa", C.reverse_name("192.0.2.11"))
    assert.equal("0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
      C.reverse_name("2001:db8::10"))
    assert.has_error(function() C.reverse_name("mx1.core.test") end,
      "bad argument #1 to 'reverse_name' (not an IPv4 or IPv6 address: 'mx1.core.test')")
  end)

  it("normalizes the server list", function()
    local r = assert(C.resolver { servers = { "127.0.0.1:5300", "[::1]:5301", "192.0.2.1", "::1" } })
    assert.same({ "127.0.0.1:5300", "[::1]:5301", "192.0.2.1:53", "[::1]:53" }, r:servers())
    r:close()
  end)

  it("rejects bad server strings and options, naming function and argument", function()
    local function err_of(f) local ok, e = pcall(f); assert.is_false(ok); return e end
    local e = err_of(function() C.resolver { servers = { "127.0.0.1:5300", "mx.example:53" } } end)
    assert.matches("bad argument #1 to 'resolver' %(servers%[2%]: bad server 'mx.example:53'", e)
    assert.matches("port out of range", err_of(function() C.resolver { servers = { "127.0.0.1:99999" } } end))
    assert.matches("bad port", err_of(function() C.resolver { servers = { "127.0.0.1:" } } end))
    assert.matches("missing ']'", err_of(function() C.resolver { servers = { "[::1:53" } } end))
    assert.matches("the list is empty", err_of(function() C.resolver { servers = {} } end))
    assert.matches("servers%[1%]: string expected", err_of(function() C.resolver { servers = { 53 } } end))
    assert.matches("unknown option 'server'", err_of(function() C.resolver { server = "127.0.0.1" } end))
    assert.matches("option 'timeout' must be more than 0", err_of(function() C.resolver { servers = { "127.0.0.1" }, timeout = 0 } end))
    assert.matches("option 'tries' must be an integer", err_of(function() C.resolver { servers = { "127.0.0.1" }, tries = 1.5 } end))
    -- NaN and infinities are refused with a clear message (one shared reader, core/opts.c)
    assert.matches("bad argument #1 to 'resolver' %(option 'timeout' must be a finite number, got NaN%)",
      err_of(function() C.resolver { servers = { "127.0.0.1" }, timeout = 0 / 0 } end))
    assert.matches("option 'timeout' must be a finite number, got inf",
      err_of(function() C.resolver { servers = { "127.0.0.1" }, timeout = math.huge } end))
    assert.matches("bad argument #1 to 'resolver' %(unknown option 'dedline'%)",
      err_of(function() C.resolver { dedline = 1 } end))
    assert.matches("bad argument #1 to 'resolver' %(options table expected, got string%)",
      err_of(function() C.resolver "x" end))
    -- the wrapper names itself
    e = err_of(function() dns.new { servers = { "999.0.0.1" } } end)
    assert.matches("bad argument #1 to 'new' %(servers%[1%]: bad server '999.0.0.1': not a numeric IPv4", e)
    assert.matches("bad argument #1 to 'new' %(unknown option 'serverz'%)", err_of(function() dns.new { serverz = {} } end))
    assert.matches("max_inflight", err_of(function() dns.new { servers = { "127.0.0.1" }, max_inflight = 0 } end))
  end)

  it("rejects unknown types and bad names before sending anything", function()
    local r = assert(C.resolver { servers = { "127.0.0.1:9" } })
    assert.has_error(function() r:query("core.test", "MXX") end,
      "bad argument #2 to 'query' (unknown type 'MXX' (expected MX, A, AAAA, CNAME, TXT, PTR, TLSA, NS or SOA))")
    assert.has_error(function() r:query("", "A") end, "bad argument #1 to 'query' (empty name)")
    assert.has_error(function() r:query(("a"):rep(300), "A") end,
      "bad argument #1 to 'query' (name longer than 253 characters)")
    assert.equal(0, r:pending())
    r:close()
    assert.has_error(function() r:query("core.test", "A") end, "query: the resolver is closed")
    local w = assert(dns.new { servers = { "127.0.0.1:9" } })
    assert.has_error(function() w:query("core.test", "ANY") end,
      "bad argument #2 to 'query' (unknown type 'ANY' (expected MX, A, AAAA, CNAME, TXT, PTR, TLSA, NS or SOA))")
    assert.has_error(function() w:query(nil, "A") end, "bad argument #1 to 'query' (string expected, got nil)")
    assert.has_error(function() w:addresses("x.test", "ipv5") end)
    assert.has_error(function() w:ptr("not-an-ip") end,
      "bad argument #1 to 'ptr' (not an IPv4 or IPv6 address: 'not-an-ip')")
    w:close()
  end)

  it("refuses to query where it cannot wait, before sending anything", function()
    local w = assert(dns.new { servers = { "127.0.0.1:9" } })
    local ok, err = pcall(table.sort, { 1, 2, 3 }, function()
      w:query("mx1.core.test", "A")
      return false
    end)
    assert.is_false(ok)
    assert.matches("query: cannot wait here", err)
    assert.same({ sent = 0, cached = 0, coalesced = 0, pending = 0 }, w:stats())
    w:close()
  end)

  it("reads nameservers from a resolv.conf through c-ares (nothing sent)", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("# test\nnameserver 127.0.0.1\nnameserver ::1\nsearch example.invalid\n")
    f:close()
    local r = assert(dns.new { resolv_conf = path })
    assert.same({ "127.0.0.1:53", "[::1]:53" }, r:servers())
    r:close()
    os.remove(path)
    local none, code, detail = dns.new { resolv_conf = path }
    assert.is_nil(none)
    assert.equal("dns", code)
    assert.matches("cannot read " .. path, detail, 1, true)
    -- without servers or resolv_conf: /etc/resolv.conf (only read here)
    local d = assert(dns.new())
    assert.is_true(#d:servers() >= 1)
    d:close()
  end)
end)

describe("core.dns and mxprobe.net.dns against nsd", function()
  local srv, why
  setup(function() srv, why = H.start_nsd() end)
  teardown(function() H.stop_nsd(srv) end)

  local function it_nsd(desc, fn)
    it(desc, function()
      if not srv then
        pending("nsd not available: " .. tostring(why))
        return
      end
      fn()
    end)
  end

  local function resolver(extra)
    local o = { servers = { srv.servers[1] }, timeout = 1, tries = 2 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(C.resolver(o))
  end

  it_nsd("decodes MX with preferences and TTLs, flags and the authority section", function()
    local r = resolver()
    local res = assert(answer(r:query("core.test", "MX")))
    assert.equal("NOERROR", res.rcode)
    assert.is_true(res.aa)
    assert.is_false(res.tc)
    assert.is_false(res.ad)
    assert.same({ name = "core.test", type = "MX" }, res.question)
    local mx = by_type(res.answers, "MX")
    table.sort(mx, function(a, b) return a.preference < b.preference end)
    assert.same({ name = "core.test", type = "MX", ttl = 300, preference = 10, host = "mx1.core.test" }, mx[1])
    assert.same({ name = "core.test", type = "MX", ttl = 300, preference = 20, host = "mx2.core.test" }, mx[2])
    assert.same({ name = "core.test", type = "NS", ttl = 300, host = "ns.core.test" }, res.authority[1])
    r:close()
  end)

  it_nsd("decodes A and AAAA (TTL 600), CNAME chains, TXT strings, TLSA", function()
    local r = resolver()
    local a = assert(answer(r:query("mx1.core.test", "A")))
    assert.same({ { name = "mx1.core.test", type = "A", ttl = 600, address = "192.0.2.10" } }, a.answers)
    local aaaa = assert(answer(r:query("mx1.core.test", "AAAA")))
    assert.same({ { name = "mx1.core.test", type = "AAAA", ttl = 600, address = "2001:db8::10" } }, aaaa.answers)

    local c = assert(answer(r:query("alias.core.test", "A")))
    assert.same({ name = "alias.core.test", type = "CNAME", ttl = 120, target = "alias2.core.test" }, c.answers[1])
    assert.same({ name = "alias2.core.test", type = "CNAME", ttl = 90, target = "mx1.core.test" }, c.answers[2])
    assert.same({ name = "mx1.core.test", type = "A", ttl = 600, address = "192.0.2.10" }, c.answers[3])
    local cq = assert(answer(r:query("alias.core.test", "CNAME")))
    assert.equal("alias2.core.test", cq.answers[1].target)

    local t = assert(answer(r:query("txt.core.test", "TXT")))
    local texts = {}
    for _, rr in ipairs(t.answers) do texts[rr.text] = rr.strings end
    assert.same({ "v=spf1 ip4:192.0.2.0/24", " -all" }, texts["v=spf1 ip4:192.0.2.0/24 -all"])
    assert.same({ "single" }, texts["single"])

    local tl = assert(answer(r:query("_25._tcp.mx1.core.test", "TLSA")))
    assert.same({ name = "_25._tcp.mx1.core.test", type = "TLSA", ttl = 300, usage = 3, selector = 1, mtype = 1,
      data = "0c72ac70b745ac19998811b131d662c9ac69dbdbe7cb23e5b514b56664c5d3d6" }, tl.answers[1])

    local soa = assert(answer(r:query("core.test", "SOA")))
    assert.same({ name = "core.test", type = "SOA", ttl = 300, mname = "ns.core.test", rname = "hostmaster.core.test",
      serial = 2024010101, refresh = 3600, retry = 600, expire = 86400, minimum = 60 }, soa.answers[1])
    local ns = assert(answer(r:query("core.test", "NS")))
    assert.equal("ns.core.test", ns.answers[1].host)
    r:close()
  end)

  it_nsd("decodes PTR for IPv4 and IPv6 reverse names", function()
    local r = resolver()
    local p4 = assert(answer(r:query(C.reverse_name("192.0.2.11"), "PTR")))
    assert.same({ { name = "11.2.0.192.in-addr.arpa", type = "PTR", ttl = 300, host = "mx2.core.test" } }, p4.answers)
    local p6 = assert(answer(r:query(C.reverse_name("2001:db8::10"), "PTR")))
    assert.equal("mx1.core.test", p6.answers[1].host)
    r:close()
  end)

  it_nsd("returns NXDOMAIN and NODATA as answers with the SOA for negative caching", function()
    local r = resolver()
    local nx, code = answer(r:query("nope.core.test", "A"))
    assert.is_table(nx, code)
    assert.equal("NXDOMAIN", nx.rcode)
    assert.same({}, nx.answers)
    local soa = by_type(nx.authority, "SOA")[1]
    assert.equal(60, soa.minimum)
    assert.equal(60, nx.negative_ttl)
    local nd = assert(answer(r:query("nodata.core.test", "MX")))
    assert.equal("NOERROR", nd.rcode)
    assert.same({}, nd.answers)
    assert.equal("SOA", nd.authority[1].type)
    assert.equal(60, nd.negative_ttl)
    r:close()
  end)

  it_nsd("returns REFUSED (not authoritative) and SERVFAIL (zone failed to load) as answers", function()
    local r = resolver()
    local ref = assert(answer(r:query("example.invalid", "A")))
    assert.equal("REFUSED", ref.rcode)
    assert.is_false(ref.aa)
    local sf = assert(answer(r:query("x.broken.test", "A")))
    assert.equal("SERVFAIL", sf.rcode)
    r:close()
  end)

  it_nsd("retries a truncated UDP answer over TCP and caps records decoded", function()
    local r = resolver()
    local big = assert(answer(r:query("big.core.test", "A")))
    assert.equal(120, #big.answers)
    assert.is_false(big.tc)
    assert.is_nil(big.capped)
    local seen = {}
    for _, rr in ipairs(big.answers) do seen[rr.address] = true end
    assert.is_true(seen["192.0.2.1"] and seen["192.0.2.120"])
    r:close()
    local capped = resolver { max_records = 50 }
    local c = assert(answer(capped:query("big.core.test", "A")))
    assert.equal(50, #c.answers)
    assert.is_true(c.capped)
    capped:close()
  end)

  it_nsd("queries over IPv6 loopback", function()
    if not srv.ipv6 then
      pending("no ::1 on this machine")
      return
    end
    local r = assert(C.resolver { servers = { srv.servers[2] }, timeout = 1, tries = 1 })
    local res = assert(answer(r:query("mx1.core.test", "AAAA")))
    assert.equal("2001:db8::10", res.answers[1].address)
    r:close()
  end)

  it_nsd("runs 200 queries concurrently on one resolver", function()
    local r = resolver { timeout = 2 }
    local qs = {}
    for i = 1, 200 do qs[i] = r:query(("n%d.many.core.test"):format(i), "A") end
    assert.equal(200, r:pending())
    for i = 1, 200 do
      local res = assert(answer(qs[i]))
      assert.equal(("n%d.many.core.test"):format(i), res.answers[1].name)
      assert.equal("192.0.2.99", res.answers[1].address)
      assert.equal(30, res.answers[1].ttl)
    end
    assert.equal(0, r:pending())
    r:close()
  end)

  it_nsd("a query completed before anyone waits is already done", function()
    local r = resolver()
    local q = r:query("mx2.core.test", "A")
    loop.sleep(0.3) -- the answer arrives while nobody waits
    assert.is_true(q:done())
    assert.is_true(loop.wait(q, nil, loop.now() + 0.01))
    assert.equal("192.0.2.11", q:result().answers[1].address)
    r:close()
  end)

  it_nsd("closing the resolver cancels queries in flight and wakes their waiters", function()
    local r = resolver()
    local q1 = r:query("mx1.core.test", "A")
    local q2 = r:query("mx2.core.test", "A")
    local t = loop.spawn(function() return loop.wait(q1, nil, loop.now() + 5) end)
    loop.spawn(function() r:close() end)
    assert.is_true(loop.join(t))
    assert.equal("cancelled", select(2, q1:result()))
    assert.equal("cancelled", select(2, q2:result()))
    assert.equal(0, r:pending())
    r:close() -- twice is fine
  end)

  it_nsd("closing a query in flight wakes its waiter; dropped queries are safe", function()
    local r = resolver()
    local q = r:query("mx1.core.test", "A")
    -- the waiter parks before the closer runs: no loop step in between
    local t = loop.spawn(function() return loop.wait(q, nil, loop.now() + 5) end)
    loop.spawn(function() q:close() end)
    assert.is_true(loop.join(t))
    local res, code = q:result()
    assert.is_nil(res)
    assert.equal("cancelled", code)
    -- dropped queries: collected while c-ares still has them
    for i = 1, 20 do r:query(("n%d.many.core.test"):format(i), "A") end
    collectgarbage(); collectgarbage()
    local deadline = loop.now() + 3
    while r:pending() > 0 and loop.now() < deadline do loop.sleep(0.02) end
    assert.equal(0, r:pending())
    collectgarbage(); collectgarbage()
    -- a resolver dropped with queries in flight
    do
      local r2 = resolver()
      for i = 1, 5 do r2:query(("n%d.many.core.test"):format(i), "A") end
    end
    collectgarbage(); collectgarbage()
    loop.sleep(0.05)
    r:close()
  end)

  describe("mxprobe.net.dns", function()
    local function new(extra)
      local o = { servers = { srv.servers[1] }, timeout = 1, tries = 2 }
      for k, v in pairs(extra or {}) do o[k] = v end
      return assert(dns.new(o))
    end

    it_nsd("mx() sorts by preference; NODATA and NXDOMAIN give empty lists", function()
      local r = new()
      local mxs, res = r:mx("Core.Test.")
      assert.same({ { preference = 10, host = "mx1.core.test", ttl = 300 },
                    { preference = 20, host = "mx2.core.test", ttl = 300 } }, mxs)
      assert.equal("NOERROR", res.rcode)
      local none, nres = r:mx("nodata.core.test")
      assert.same({}, none)
      assert.equal("NOERROR", nres.rcode)
      local nx, xres = r:mx("nope.core.test")
      assert.same({}, nx)
      assert.equal("NXDOMAIN", xres.rcode)
      assert.same({ { preference = 0, host = ".", ttl = 300 } }, (r:mx("nullmx.core.test")))
      r:close()
    end)

    it_nsd("addresses() asks A and AAAA concurrently and follows CNAME chains", function()
      local r = new()
      local addrs, info = r:addresses("mx1.core.test")
      assert.same({ { family = "ipv4", address = "192.0.2.10", ttl = 600, name = "mx1.core.test" },
                    { family = "ipv6", address = "2001:db8::10", ttl = 600, name = "mx1.core.test" } }, addrs)
      assert.same({}, info.cname)
      assert.is_nil(info.errors)
      addrs, info = r:addresses("alias.core.test", "ipv4")
      assert.same({ { family = "ipv4", address = "192.0.2.10", ttl = 600, name = "mx1.core.test" } }, addrs)
      assert.same({ "alias2.core.test", "mx1.core.test" }, info.cname)
      -- the target is in another zone (nsd serves it too and adds it)
      addrs, info = r:addresses("outside.core.test", "ipv4")
      assert.same({ { family = "ipv4", address = "192.0.2.30", ttl = 300, name = "mail.other.test" } }, addrs)
      assert.same({ "mail.other.test" }, info.cname)
      -- NXDOMAIN and NODATA: empty, not errors
      addrs, info = r:addresses("nope.core.test")
      assert.same({}, addrs)
      assert.equal("NXDOMAIN", info.rcode)
      addrs = r:addresses("mx2.core.test", { "ipv6" })
      assert.same({}, addrs)
      r:close()
    end)

    it_nsd("addresses() answers from the cache in the caller's task: the same lists, no task spawned", function()
      local r = new()
      local names = { { "mx1.core.test" }, { "alias.core.test", "ipv4" }, { "outside.core.test", "ipv4" },
                      { "nope.core.test" }, { "mx2.core.test", { "ipv6" } }, { "loop1.core.test", "ipv4" } }
      local first = {}
      for i, q in ipairs(names) do first[i] = table.pack(r:addresses(q[1], q[2])) end
      local spawn, spawned = loop.spawn, 0
      loop.spawn = function(...) spawned = spawned + 1; return spawn(...) end
      local ok, err = pcall(function()
        for i, q in ipairs(names) do assert.same(first[i], table.pack(r:addresses(q[1], q[2]))) end
      end)
      loop.spawn = spawn
      assert(ok, err)
      assert.equal(0, spawned)
      r:close()
    end)

    it_nsd("addresses() from the cache: every asker gets tables of its own, each family counted as a cache hit", function()
      local r = new()
      local fams = { "ipv4", "ipv6" }
      local a1 = assert(r:addresses("mx1.core.test", fams))
      local before = r:stats()
      fams[1] = "bogus" -- the caller's list is not kept
      local a2, info2 = assert(r:addresses("mx1.core.test", { "ipv4", "ipv6" }))
      assert.same(a1, a2)
      assert.same({}, info2.cname)
      for i = 1, #a1 do assert.are_not.equal(a1[i], a2[i]) end
      -- what one asker does to its list is not what the next one gets
      a2[1].address, a2[2] = "198.51.100.1", nil
      local a3 = assert(r:addresses("MX1.core.test."))
      assert.same({ { family = "ipv4", address = "192.0.2.10", ttl = 600, name = "mx1.core.test" },
                    { family = "ipv6", address = "2001:db8::10", ttl = 600, name = "mx1.core.test" } }, a3)
      local after = r:stats()
      assert.equal(before.sent, after.sent)
      assert.equal(before.cached + 4, after.cached) -- two calls, A and AAAA each
      -- an alias's list is made again each time: it took more than the first answer
      local c1 = assert(r:addresses("alias.core.test", "ipv4"))
      local c2, cinfo = assert(r:addresses("alias.core.test", "ipv4"))
      assert.same(c1, c2)
      assert.same({ "alias2.core.test", "mx1.core.test" }, cinfo.cname)
      r:close()
      -- a closed resolver refuses, cached answers or not
      assert.has_error(function() r:addresses("mx1.core.test") end)
    end)

    it_nsd("addresses() stops CNAME loops and chains past the depth cap", function()
      local r = new()
      local a, code, detail = r:addresses("loop1.core.test", "ipv4")
      assert.is_nil(a)
      assert.equal("dns", code)
      assert.matches("CNAME loop", detail)
      a, code, detail = r:addresses("d1.core.test", "ipv4")
      assert.is_nil(a)
      assert.equal("limit", code)
      assert.matches("longer than 8", detail)
      local deep = new { max_cname_depth = 10 }
      assert.equal("192.0.2.10", deep:addresses("d1.core.test", "ipv4")[1].address)
      deep:close()
      r:close()
    end)

    it_nsd("ptr() gives the names of an address", function()
      local r = new()
      assert.same({ "mx2.core.test" }, (r:ptr("192.0.2.11")))
      assert.same({ "mx1.core.test" }, (r:ptr("2001:db8::10")))
      local none, res = r:ptr("192.0.2.77")
      assert.same({}, none)
      assert.equal("NXDOMAIN", res.rcode)
      r:close()
    end)

    it_nsd("caches answers for the run and coalesces identical questions in flight", function()
      local r = new()
      local first = assert(r:query("mx1.core.test", "A"))
      local t0 = loop.now()
      local again = assert(r:query("MX1.core.test.", "a"))
      assert.is_true(loop.now() - t0 < 0.01)
      assert.equal(first, again) -- the same table: no second packet
      assert.same({ sent = 1, cached = 1, coalesced = 0, pending = 0 }, r:stats())
      -- five tasks ask the same new question at once: one query on the wire
      local ts = {}
      for i = 1, 5 do ts[i] = loop.spawn(function() return r:query("mx2.core.test", "AAAA") end) end
      local results = {}
      for i = 1, 5 do results[i] = assert(loop.join(ts[i])) end
      for i = 2, 5 do assert.equal(results[1], results[i]) end
      local s = r:stats()
      assert.equal(2, s.sent)
      assert.equal(4, s.coalesced)
      r:close()
    end)

    it_nsd("runs 200 concurrent lookups through the in-flight cap", function()
      local r = new { max_inflight = 16, timeout = 2 }
      local ts, peak = {}, 0
      for i = 1, 200 do
        ts[i] = loop.spawn(function()
          local res = r:query(("w%d.many.core.test"):format(i), "A")
          peak = math.max(peak, r:stats().pending)
          return res
        end)
      end
      local sampler = loop.spawn(function()
        for _ = 1, 200 do
          peak = math.max(peak, r:stats().pending)
          loop.sleep(0.001)
        end
      end)
      for i = 1, 200 do
        local res = assert(loop.join(ts[i]))
        assert.equal("192.0.2.99", res.answers[1].address)
      end
      loop.cancel(sampler)
      assert.is_true(peak >= 1 and peak <= 16, "peak " .. peak)
      assert.equal(200, r:stats().sent)
      r:close()
    end)
  end)
end)

describe("core.dns against a scripted responder", function()
  local fake, why
  setup(function() fake, why = H.start_fake() end)
  teardown(function() H.stop_fake(fake) end)

  local function it_fake(desc, fn)
    it(desc, function()
      if not fake then
        pending("fake DNS responder not available: " .. tostring(why))
        return
      end
      fn()
    end)
  end

  local function resolver(extra)
    local o = { servers = { "127.0.0.1:" .. fake.port }, timeout = 0.3, tries = 2 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(C.resolver(o))
  end

  -- how many queries the responder saw, and the peak of slow ones outstanding
  local function responder_stats()
    local r = resolver()
    local res = assert(answer(r:query("stats.test", "TXT")))
    r:close()
    local n, m = res.answers[1].text:match("queries=(%d+) maxout=(%d+)")
    return tonumber(n), tonumber(m)
  end

  it_fake("turns malformed answers into nil, \"dns\", \"malformed answer: ...\"", function()
    local r = resolver()
    local cases = {
      { "truncated.test", "truncated" },
      { "ptrloop.test", "loop" },
      { "rdlen.test", "rdata runs past the end" },
      { "garbage.test", "answer record" },
    }
    for _, c in ipairs(cases) do
      local res, code, detail = answer(r:query(c[1], "A"))
      assert.is_nil(res, c[1])
      assert.equal("dns", code, c[1])
      assert.matches("^malformed answer: ", detail)
      assert.matches(c[2], detail, 1, true)
      assert.matches(c[1], detail, 1, true)
    end
    r:close()
  end)

  it_fake("reports SERVFAIL as an answer and decodes the AD flag", function()
    local r = resolver()
    local sf = assert(answer(r:query("servfail.test", "A")))
    assert.equal("SERVFAIL", sf.rcode)
    assert.same({}, sf.answers)
    local ad = assert(answer(r:query("ad.test", "A")))
    assert.is_true(ad.ad)
    assert.is_true(ad.aa)
    assert.equal("192.0.2.1", ad.answers[1].address)
    r:close()
  end)

  it_fake("sets the AD bit in the query only when asked (RFC 6840 5.7)", function()
    local r = resolver()
    local with = assert(answer(r:query("adecho.test", "A", "ad")))
    assert.is_true(with.ad)
    local without = assert(answer(r:query("adecho.x1.test", "A")))
    assert.is_false(without.ad)
    assert.has_error(function() r:query("adecho.test", "A", "do") end,
      "bad argument #3 to 'query' (unknown flags 'do' (expected \"ad\"))")
    r:close()
  end)

  it_fake("mxprobe.net.dns asks with AD and marks every answer secure or not", function()
    local r = assert(dns.new { servers = { "127.0.0.1:" .. fake.port }, timeout = 1, tries = 1 })
    local a = assert(r:query("adecho.x2.test", "A"))
    assert.is_true(a.secure)
    local off = assert(dns.new { servers = { "127.0.0.1:" .. fake.port }, timeout = 1, tries = 1, dnssec = false })
    local b = assert(off:query("adecho.x3.test", "A"))
    assert.is_false(b.secure)
    local addrs, info = assert(r:addresses("adecho.x4.test", "ipv4"))
    assert.equal("192.0.2.1", addrs[1].address)
    assert.is_true(info.answers.ipv4.secure)
    assert.has_error(function() dns.new { dnssec = "yes" } end,
      "bad argument #1 to 'new' (dnssec: boolean expected, got string)")
    r:close(); off:close()
  end)

  it_fake("the DNSSEC self-test asks once per resolver and says why it fails", function()
    local r = assert(dns.new { servers = { "127.0.0.1:" .. fake.port }, timeout = 1, tries = 1 })
    assert.is_true(dns.validates(r, "adecho.probe.test", "A"))
    local before = responder_stats()
    assert.is_true(dns.validates(r, "adecho.probe.test", "A"))
    assert.equal(before, (responder_stats()))
    local ok, why = dns.validates(r, "plain.probe.test", "A")
    assert.is_false(ok)
    assert.equal("this resolver does not validate DNSSEC (no AD bit for the signed name plain.probe.test A, rcode NOERROR)", why)
    ok, why = dns.validates(r, "servfail.probe.test", "A")
    assert.is_false(ok)
    assert.matches("SERVFAIL", why, 1, true)
    r:close()
  end)

  it_fake("a TLSA record with short rdata is a malformed answer, not a crash", function()
    local r = resolver()
    local res, code, detail = answer(r:query("tlsashort.test", "TLSA", "ad"))
    assert.is_nil(res)
    assert.equal("dns", code)
    assert.equal("malformed answer: answer record 1: TLSA rdata is 2 bytes (too short) (TLSA tlsashort.test)", detail)
    r:close()
  end)

  it_fake("times out against a server that never answers, within timeout and tries", function()
    local r = resolver { timeout = 0.2, tries = 2 }
    local t0 = loop.now()
    local res, code, detail = answer(r:query("silent.test", "A"))
    local dt = loop.now() - t0
    assert.is_nil(res)
    assert.equal("timeout", code)
    assert.matches("A silent.test", detail, 1, true)
    assert.is_true(dt >= 0.2 and dt < 1.5, "took " .. dt)
    r:close()
  end)

  it_fake("a caller deadline shorter than c-ares's timeout ends the wait first", function()
    local r = assert(dns.new { servers = { "127.0.0.1:" .. fake.port }, timeout = 1, tries = 1 })
    local t0 = loop.now()
    local res, code = r:query("silent.x2.test", "A", loop.now() + 0.1)
    assert.is_nil(res)
    assert.equal("timeout", code)
    assert.is_true(loop.now() - t0 < 0.5)
    assert.equal(1, r:stats().pending) -- still in c-ares until its own timeout
    r:close()
    assert.equal(0, r:stats().pending)
  end)

  it_fake("a lost datagram is sent again inside the question's deadline (dns.try_timeout)", function()
    assert.equal(0.4, dns.try_timeout(1))
    assert.has_error(function() dns.try_timeout(0) end, "bad argument #1 to 'try_timeout' (seconds > 0 expected, got 0)")
    -- the responder ignores the first query for each question
    local r = assert(dns.new { servers = { "127.0.0.1:" .. fake.port }, timeout = dns.try_timeout(1), tries = 2 })
    local t0 = loop.now()
    local a = assert(r:query("dropfirst.x5.test", "A", loop.now() + 1))
    local dt = loop.now() - t0
    assert.equal("192.0.2.1", a.answers[1].address)
    assert.is_true(dt >= 0.35 and dt < 1, "took " .. dt)
    r:close()
    -- a try as long as the deadline: the same loss fails the question
    local same = assert(dns.new { servers = { "127.0.0.1:" .. fake.port }, timeout = 1, tries = 2 })
    local res, code, detail = same:query("dropfirst.x6.test", "A", loop.now() + 1)
    assert.is_nil(res)
    assert.equal("timeout", code)
    assert.equal("the deadline passed", detail)
    same:close()
  end)

  it_fake("the engine's resolver sends a lost question again within timeouts.dns", function()
    local engine = require "mxprobe.engine"
    local run = engine.new { config = { resolvers = { "127.0.0.1:" .. fake.port }, timeouts = { dns = 1 } } }
    local t0 = loop.now()
    local a = assert(run.dns:query("dropfirst.x7.test", "A", loop.now() + 1))
    assert.equal("192.0.2.1", a.answers[1].address)
    assert.is_true(loop.now() - t0 < 1)
    run.dns:close()
  end)

  it_fake("reports a closed port (ICMP port unreachable) as refused", function()
    local r = assert(C.resolver { servers = { "127.0.0.1:" .. fake.closed_port }, timeout = 0.5, tries = 2 })
    local t0 = loop.now()
    local res, code, detail = answer(r:query("core.test", "A"))
    assert.is_nil(res)
    assert.equal("refused", code)
    assert.is_string(detail)
    assert.is_true(loop.now() - t0 < 1.5)
    r:close()
  end)

  it_fake("the cache sends no second packet (counted by the responder)", function()
    local r = assert(dns.new { servers = { "127.0.0.1:" .. fake.port }, timeout = 1, tries = 1 })
    local before = responder_stats()
    local a = assert(r:query("cached.test", "A"))
    local b = assert(r:query("CACHED.test", "A"))
    assert.equal(a, b)
    assert.equal(before + 1, (responder_stats()))
    -- errors are not cached: a malformed answer is asked again
    assert.is_nil(r:query("garbage.test", "A"))
    assert.is_nil(r:query("garbage.test", "A"))
    assert.equal(before + 3, (responder_stats()))
    r:close()
  end)

  it_fake("closing resolvers and queries cancels what waits on them", function()
    -- wrapper: a task waits on a silent server, another closes the resolver
    local w = assert(dns.new { servers = { "127.0.0.1:" .. fake.port }, timeout = 2, tries = 1 })
    local t = loop.spawn(function() return w:query("silent.x3.test", "MX") end)
    loop.spawn(function() w:close() end)
    local res, code = loop.join(t)
    assert.is_nil(res)
    assert.equal("cancelled", code)
    assert.has_error(function() w:query("core.test", "MX") end, "query: the resolver is closed")
    -- core: a query closed while a task waits, then its resolver
    local r = resolver { timeout = 2, tries = 1 }
    local q = r:query("silent.x4.test", "A")
    local waiter = loop.spawn(function() return loop.wait(q, nil, loop.now() + 5) end)
    local t0 = loop.now()
    loop.sleep(0.05)
    assert.is_false(q:done())
    q:close()
    assert.is_true(loop.join(waiter))
    assert.is_true(loop.now() - t0 < 0.5)
    assert.equal("cancelled", select(2, q:result()))
    assert.equal(1, r:pending()) -- c-ares still has it, detached
    r:close()
    assert.equal(0, r:pending())
  end)

  it_fake("addresses() asks again for a CNAME target the answer left out", function()
    local r = assert(dns.new { servers = { "127.0.0.1:" .. fake.port }, timeout = 1, tries = 1 })
    local before = responder_stats()
    local addrs, info = r:addresses("cname.test", "ipv4")
    assert.same({ { family = "ipv4", address = "192.0.2.1", ttl = 60, name = "target.test" } }, addrs)
    assert.same({ "target.test" }, info.cname)
    assert.equal(before + 2, (responder_stats()))
    r:close()
  end)

  it_fake("the in-flight cap holds: at most max_inflight slow queries outstanding", function()
    local _, peak0 = responder_stats()
    assert.equal(0, peak0)
    local r = assert(dns.new { servers = { "127.0.0.1:" .. fake.port }, timeout = 2, tries = 1, max_inflight = 2 })
    local t0 = loop.now()
    local ts = {}
    for i = 1, 6 do ts[i] = loop.spawn(function() return r:query(("slow.n%d.test"):format(i), "A") end) end
    for i = 1, 6 do assert.equal("192.0.2.1", assert(loop.join(ts[i])).answers[1].address) end
    local dt = loop.now() - t0
    local _, peak = responder_stats()
    assert.equal(2, peak)
    assert.is_true(dt >= 0.85 and dt < 3, "took " .. dt) -- three rounds of 0.3 s
    r:close()
  end)

  it_fake("the cache keeps max_cached answers and as many older ones, no more", function()
    local r = assert(dns.new { servers = { "127.0.0.1:" .. fake.port }, timeout = 1, tries = 1, max_cached = 2 })
    local before = responder_stats()
    for _, n in ipairs({ "a", "b", "c", "d", "e" }) do assert(r:query("k" .. n .. ".cache.test", "A")) end
    assert.equal(before + 5, (responder_stats()))
    -- kd is in the older generation: still answered from the cache (and moved up)
    assert.equal("192.0.2.1", assert(r:query("kd.cache.test", "A")).answers[1].address)
    assert.equal(before + 5, (responder_stats()))
    -- ka was let go two generations ago: asked again
    assert(r:query("ka.cache.test", "A"))
    assert.equal(before + 6, (responder_stats()))
    r:close()
    local ok, err = pcall(dns.new, { servers = { "127.0.0.1" }, max_cached = 0 })
    assert.is_false(ok)
    assert.matches("max_cached", err)
  end)

  it_fake("time queued for a slot does not count against a question's deadline", function()
    -- one slot, held 0.3 s by each slow question; the sixth asker waits
    -- about 1.5 s for its slot, far past its 0.5 s deadline: its answer still
    -- counts (the tester's own queue is not the name server's slowness)
    local r = assert(dns.new { servers = { "127.0.0.1:" .. fake.port }, timeout = 2, tries = 1, max_inflight = 1 })
    local ts = {}
    for i = 1, 6 do
      ts[i] = loop.spawn(function() return r:query(("slow.q%d.test"):format(i), "A", loop.now() + 0.5) end)
    end
    for i = 1, 6 do
      local res, code, detail = loop.join(ts[i])
      assert.is_table(res, ("asker %d: %s %s"):format(i, tostring(code), tostring(detail)))
      assert.equal("192.0.2.1", res.answers[1].address)
    end
    -- the deadline still bounds the wait for the answer itself
    local t0 = loop.now()
    local res, code = r:query("silent.q7.test", "A", loop.now() + 0.3)
    assert.is_nil(res)
    assert.equal("timeout", code)
    assert.is_true(loop.now() - t0 < 1)
    r:close()
  end)
end)
