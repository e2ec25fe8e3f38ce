-- bench/audit.d/handshakes.lua: the TLS handshakes bench/audit (b) says an
-- audit made, from its records; a resumed injection handshake is counted
-- as resumed, not as a full one; a probe carried on the main STARTTLS as
-- no handshake at all.
local cjson = require "cjson"

local function count(records)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  for _, r in ipairs(records) do f:write(cjson.encode(r), "\n") end
  f:close()
  -- the script reads the globals arg and print (busted gives a spec an
  -- environment of its own: set them in _G)
  local out, saved_arg, real_print = {}, _G.arg, _G.print
  _G.arg = { path }
  _G.print = function(s) out[#out + 1] = s end
  local ok, err = pcall(dofile, "bench/audit.d/handshakes.lua")
  _G.arg, _G.print = saved_arg, real_print
  os.remove(path)
  assert(ok, err)
  return table.concat(out, "\n")
end

local function server(starttls, injection, resumed)
  local s = { facts = {}, findings = {} }
  if starttls then s.facts.starttls = { handshake = true } end
  if injection then
    s.findings[1] = { check = "starttls_injection", code = "STARTTLS_INJECTION_SAFE" }
    s.facts.starttls_injection = injection == "carried" and { carried = true }
      or { session_offered = resumed ~= nil, resumed = resumed == true }
  end
  return s
end

describe("bench/audit.d/handshakes.lua", function()
  it("counts the injection probe's resumed handshakes apart from the full ones", function()
    local line = count {
      { servers = { server(true, true, true), server(true, true, false) } },
      { servers = { server(true, true, nil), server(true, false), server(false, false) } },
      { error = "not a domain" },
    }
    assert.equal("addresses=5 main=4 injection=3 resumed=1 full=6 carried=0", line)
  end)

  it("a probe carried on the main STARTTLS made no handshake of its own", function()
    local line = count { { servers = { server(true, "carried"), server(true, "carried"), server(true, true, true) } } }
    assert.equal("addresses=3 main=3 injection=1 resumed=1 full=3 carried=2", line)
  end)

  it("records from before the resumption (no facts.starttls_injection) count as full", function()
    local s = server(true, true, nil)
    s.facts.starttls_injection = nil
    assert.equal("addresses=1 main=1 injection=1 resumed=0 full=2 carried=0", count { { servers = { s } } })
  end)
end)
