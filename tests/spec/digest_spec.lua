-- core.digest: SHA-256 of strings and files (OpenSSL EVP), for the records
-- of an audit that name the policy and CA file they were made with.
local digest = require("mxprobe.core").digest

local function tmpfile(bytes)
  local p = os.tmpname()
  local f = assert(io.open(p, "wb"))
  f:write(bytes)
  f:close()
  return p
end

describe("core.digest", function()
  it("sha256 of a string is the FIPS 180-2 test vector, lower-case hex", function()
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", digest.sha256("abc"))
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", digest.sha256(""))
  end)

  it("hashes any bytes, NUL included", function()
    assert.are_not.equal(digest.sha256("a\0b"), digest.sha256("a"))
  end)

  it("file() reads the file in blocks: the digest of a 200 kB file equals that of its content", function()
    local big = ("0123456789abcdef"):rep(12800) .. "tail"
    local p = tmpfile(big)
    assert.equal(digest.sha256(big), digest.file(p))
    os.remove(p)
  end)

  it("file() takes another algorithm OpenSSL knows", function()
    local p = tmpfile("abc")
    assert.equal("ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
      .. "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f", digest.file(p, "sha512"))
    assert.has_error(function() digest.file(p, "no-such-digest") end, "bad argument #2 to 'file' (unknown digest 'no-such-digest')")
    os.remove(p)
  end)

  it("an unreadable file is nil, 'io', why: missing, or a directory", function()
    local r, code, detail = digest.file("/nonexistent/policy.lua")
    assert.is_nil(r); assert.equal("io", code)
    assert.equal("cannot read '/nonexistent/policy.lua': No such file or directory", detail)
    r, code, detail = digest.file("/tmp")
    assert.is_nil(r); assert.equal("io", code); assert.matches("Is a directory", detail)
  end)

  it("raises for a non-string argument", function()
    assert.has_error(function() digest.sha256(nil) end)
    assert.has_error(function() digest.file({}) end)
  end)
end)
