-- core.keyset (core/l_keyset.c): the audit's set of input names, outside
-- the Lua heap.  Checked against a Lua table as the reference.
local core = require "mxprobe.core"

describe("core.keyset", function()
  it("adds, finds and re-tags keys; a key added again is not counted twice", function()
    local s = core.keyset.new()
    assert.is_nil(s:get("a.test"))
    s:add("a.test", 1)
    s:add("b.test", 2)
    assert.equal(1, s:get("a.test"))
    assert.equal(2, s:get("b.test"))
    s:add("a.test", 2)
    assert.equal(2, s:get("a.test"))
    assert.equal(2, s:count())
    assert.is_nil(s:get("A.test")) -- bytes, not names: case is the caller's business
    assert.matches("^mxprobe.keyset %(2 keys%)$", tostring(s))
  end)

  it("tells keys apart by all their bytes: empty, embedded zeros, invalid UTF-8, prefixes", function()
    local s = core.keyset.new()
    local keys = { "", "\0", "\0\0", "a\0b", "a\0c", "\255\254", "\255", "x", "xx", ("y"):rep(70000) }
    for i, k in ipairs(keys) do s:add(k, i) end
    for i, k in ipairs(keys) do assert.equal(i, s:get(k), ("key %d"):format(i)) end
    assert.equal(#keys, s:count())
    assert.is_nil(s:get("a"))
    assert.is_nil(s:get(("y"):rep(69999)))
  end)

  it("agrees with a Lua table over 200,000 random adds and lookups (growth included)", function()
    math.randomseed(15)
    local s, ref, n = core.keyset.new(), {}, 0
    for _ = 1, 200000 do
      local k = ("d%d.test"):format(math.random(1, 150000))
      local tag = math.random(0, 255)
      if math.random() < 0.5 then
        if ref[k] == nil then n = n + 1 end
        ref[k] = tag
        s:add(k, tag)
      else
        assert.equal(ref[k], s:get(k))
      end
    end
    assert.equal(n, s:count())
    for k, tag in pairs(ref) do assert.equal(tag, s:get(k)) end
  end)

  it("holds a million audit names in well under 100 MB", function()
    local s = core.keyset.new()
    for i = 1, 1000000 do s:add(("d%07d.inet.lab.test"):format(i), 2) end
    assert.equal(1000000, s:count())
    local mb = s:bytes() / 1048576
    assert.is_true(mb < 64, ("%.1f MB"):format(mb))
    assert.equal(2, s:get("d0999999.inet.lab.test"))
  end)

  it("refuses bad arguments with a message naming them", function()
    local s = core.keyset.new()
    assert.has_error(function() s:add("a", 256) end, "bad argument #2 to 'add' (a tag from 0 to 255 expected)")
    assert.has_error(function() s:add("a", -1) end, "bad argument #2 to 'add' (a tag from 0 to 255 expected)")
    assert.has_error(function() s:add({}, 1) end)
    assert.has_error(function() s:get(nil) end)
    assert.has_error(function() s.add({}, "a", 1) end)
  end)
end)
