local ip = require "mxprobe.net.iputil"

-- Classification only: these strings are parsed, never contacted.  The
-- private ranges are here because the checks must recognise them in MX
-- answers and refuse to probe them.
describe("mxprobe.net.iputil.classify", function()
  local cases = {
    { "192.0.2.10", "documentation", 4 }, { "198.51.100.1", "documentation", 4 },
    { "203.0.113.99", "documentation", 4 }, { "127.0.0.1", "loopback", 4 },
    { "10.1.2.3", "private", 4 }, { "172.16.0.1", "private", 4 }, { "172.32.0.1", "global", 4 },
    { "192.168.1.1", "private", 4 }, { "169.254.1.1", "linklocal", 4 }, { "100.64.0.1", "shared", 4 },
    { "224.0.0.1", "multicast", 4 }, { "0.0.0.0", "unspecified", 4 }, { "8.8.8.8", "global", 4 },
    { "::1", "loopback", 6 }, { "::", "unspecified", 6 }, { "fe80::1", "linklocal", 6 },
    { "fd00::1", "private", 6 }, { "2001:db8::25", "documentation", 6 }, { "2a00:1450::1", "global", 6 },
    { "::ffff:127.0.0.1", "loopback", 6 }, { "ff02::1", "multicast", 6 },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " is " .. c[2], function()
      local kind, fam = ip.classify(c[1])
      assert.equal(c[2], kind)
      assert.equal(c[3], fam)
    end)
  end
  it("rejects what is not an address", function()
    for _, s in ipairs { "mx.example.org", "256.1.1.1", "1.2.3", "1::2::3", "12345::1", "" } do
      assert.is_nil(ip.classify(s), s)
    end
  end)
end)

-- One parser for the whole program (the command line used to have its
-- own, which disagreed with this one about leading zeros).
describe("mxprobe.net.iputil: what is an address literal", function()
  it("refuses octets with a leading zero: 010 is 8 to inet_aton and 10 to others", function()
    for _, s in ipairs { "010.0.0.1", "192.0.2.01", "00.0.0.0", "::ffff:192.0.2.010" } do
      assert.is_nil(ip.parse4(s) or ip.parse6(s), s)
      assert.is_nil(ip.family(s), s)
      assert.is_false(ip.is_literal(s), s)
    end
    assert.same({ 0, 0, 0, 0 }, ip.parse4("0.0.0.0"))
    assert.same({ 192, 0, 2, 10 }, ip.parse4("192.0.2.10"))
  end)
  it("takes an IPv4 tail only as the last 32 bits of an IPv6 address", function()
    assert.same({ 0, 0, 0, 0, 0, 0xffff, 0xc000, 0x020a }, ip.parse6("::ffff:192.0.2.10"))
    assert.is_nil(ip.parse6("192.0.2.10::"))
    assert.is_nil(ip.parse6("::192.0.2.10:1"))
  end)
  it("says which family, and takes brackets only in is_literal", function()
    assert.equal(4, ip.family("192.0.2.1"))
    assert.equal(6, ip.family("2001:db8::1"))
    assert.is_nil(ip.family("[2001:db8::1]"))
    assert.is_true(ip.is_literal("[2001:db8::1]"))
    assert.is_nil(ip.family("0001.2.3.4"))
    assert.is_nil(ip.family(nil))
  end)
  it("is the parser the command line uses (--mx, --resolver)", function()
    local options = require "mxprobe.app.cli.options"
    assert.is_nil(options.parse_host("010.0.0.1"))
    assert.equal("192.0.2.1:53", options.parse_resolver("192.0.2.1"))
    assert.is_nil(options.parse_resolver("010.0.0.1"))
  end)
end)
