-- No PTR question about a loopback (or link-local, or documentation)
-- address goes to the machine's resolver (issue 16, item 12): `mxprobe --mx
-- 127.0.0.1` used to ask the system resolver for 1.0.0.127.in-addr.arpa.
-- With a resolver chosen for the run (--resolver, the lab's DNS, a resolver
-- the caller gives the engine) the PTR is still asked.  The engine's DNS is
-- replaced by a recorder right after engine.new, so nothing reaches any
-- real resolver in either case.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local fake = require "tests.helpers.fake_smtp"

local function recorder()
  local r = { asked = {} }
  function r:query(name, qtype)
    self.asked[#self.asked + 1] = qtype .. " " .. name
    return { rcode = "NOERROR", answers = qtype == "PTR" and { { type = "PTR", host = "mx.test." } } or {} }
  end
  return r
end

local function probe(ip, extra)
  local srv = fake.start({ "220 mx.test ESMTP\r\n", { expect = "^QUIT" }, "221 bye\r\n" }, { ip = ip })
  local config = { only = { "banner" }, allow_reserved = { "loopback" }, port = srv.port, helo = "t.test",
                   timeouts = { connect = 2, greeting = 3, command = 3 } }
  for k, v in pairs(extra or {}) do config[k] = v end
  local run = engine.new { config = config }
  run.dns:close() -- never used: the machine's resolver is not asked anything here
  local rec = recorder()
  run.dns = rec -- the check contexts read run.dns
  local r = run:check_host(ip)
  srv:wait(); srv:stop()
  return rec.asked, r
end

describe("the PTR of a server address", function()
  it("is not asked of the machine's resolver for 127.0.0.1", function()
    local asked, r = probe("127.0.0.1")
    assert.same({}, asked)
    assert.is_nil(r.servers[1].facts.banner.ptr)
    for _, f in ipairs(r.servers[1].findings) do assert.is_nil(f.code:find("PTR"), f.code) end
  end)

  it("is not asked of the machine's resolver for ::1", function()
    local asked = probe("::1")
    assert.same({}, asked)
  end)

  it("is asked when the run names its resolver (--resolver, the lab's DNS)", function()
    local asked, r = probe("127.0.0.1", { resolvers = { "127.0.0.1:1" } })
    assert.same({ "PTR 1.0.0.127.in-addr.arpa" }, asked)
    assert.equal("mx.test", r.servers[1].facts.banner.ptr)
  end)
end)
