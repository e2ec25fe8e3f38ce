-- checks/address.lua: every MX host's A/AAAA, one task per host when there
-- are several.  What one host's lookup found is never lost because
-- another's raised (a bug in a resolver, the Lua time budget): the error is
-- the check's CHECK_ERROR, as with one host, and the other hosts keep
-- their findings and their addresses.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"

local function findings_of(r)
  local out = {}
  for _, f in ipairs(r.dns.findings) do out[#out + 1] = f end -- the address check's
  for _, f in ipairs(r.findings) do out[#out + 1] = f end -- CHECK_ERROR
  return out
end

local function run_with(dns)
  local run = engine.new { dns = dns, config = { only = { "mx", "address" }, allow_reserved = { "loopback" },
                                                 families = { 4 }, timeouts = { dns = 2 } } }
  return assert(loop.join(loop.spawn(function() return run:check_domain("two.test") end)))
end

describe("checks/address", function()
  local function dns_raising(bad)
    return {
      query = function(_, name, qtype)
        if qtype == "MX" and name == "two.test" then
          return { rcode = "NOERROR", answers = { { type = "MX", preference = 10, host = "mxa.test." },
                                                  { type = "MX", preference = 20, host = "mxb.test." } } }
        elseif qtype == "A" and name == bad then
          error("resolver broke on " .. name)
        elseif qtype == "A" and name:match("^mx[ab]%.test$") then
          return { rcode = "NOERROR", answers = { { type = "A", address = "127.0.0.1" } } }
        end
        return { rcode = "NOERROR", answers = {} }
      end,
    }
  end

  it("a host whose lookup raised: CHECK_ERROR naming the error, the other host's findings kept", function()
    local r = run_with(dns_raising("mxb.test"))
    local err, ok_hosts = nil, {}
    for _, f in ipairs(findings_of(r)) do
      if f.code == "CHECK_ERROR" then err = f end
      if f.code == "ADDRESS_OK" then ok_hosts[#ok_hosts + 1] = f.evidence.host end
    end
    assert.truthy(err, "the raised error is reported")
    assert.equal("address", err.evidence.check)
    assert.matches("resolver broke on mxb.test", err.message, 1, true)
    assert.same({ "mxa.test" }, ok_hosts)
    -- mxa.test's address is still probed
    local probed = {}
    for _, s in ipairs(r.servers) do probed[#probed + 1] = s.host end
    assert.same({ "mxa.test" }, probed)
  end)

  it("the first host raising does not hide the second's findings", function()
    local r = run_with(dns_raising("mxa.test"))
    local codes = {}
    for _, f in ipairs(findings_of(r)) do codes[f.code] = (codes[f.code] or 0) + 1 end
    assert.equal(1, codes.CHECK_ERROR)
    assert.equal(1, codes.ADDRESS_OK)
    assert.is_nil(codes.ADDRESS_NONE_ALL)
  end)
end)
