-- mxprobe.smtp.extensions: the EHLO reply's lines to keywords.
local extensions = require "mxprobe.smtp.extensions"

describe("smtp.extensions.parse", function()
  it("reads keywords, SIZE, AUTH and STARTTLS", function()
    local f = extensions.parse { "mx.example greets", "PIPELINING", "SIZE 10240000", "starttls", "AUTH plain LOGIN" }
    assert.same({ "PIPELINING", "SIZE 10240000", "starttls", "AUTH plain LOGIN" }, f.extensions)
    assert.equal(10240000, f.size)
    assert.same({ "PLAIN", "LOGIN" }, f.auth)
    assert.is_true(f.starttls)
    assert.same({ "AUTH", "PIPELINING", "SIZE", "STARTTLS" }, extensions.missing(f, { keywords = {} }))
  end)

  -- found by fuzz/fuzz_lua_ehlo: tonumber made a float of it, and the
  -- record said 1e+20
  it("leaves out a SIZE too large for an integer, keeping the keyword", function()
    local f = extensions.parse { "mx", "SIZE 99999999999999999999" }
    assert.is_nil(f.size)
    assert.equal("99999999999999999999", f.keywords.SIZE)
    assert.equal(1, extensions.parse({ "mx", "SIZE 0000000000000000000001" }).size)
    assert.equal(math.type(extensions.parse({ "mx", "SIZE 999999999999999999" }).size), "integer")
  end)

  it("has no SIZE for a SIZE without a number", function()
    assert.is_nil(extensions.parse({ "mx", "SIZE" }).size)
  end)
end)
