-- runtime.frozen and its use: shared session records encoded once (issue 15)
local frozen = require "mxprobe.runtime.frozen"
local json = require "mxprobe.report.json"

describe("runtime.frozen", function()
  it("marks a table, refuses new keys and other metatables", function()
    local t = frozen.mark({ { dir = "<", text = "220 ok" } })
    assert.is_true(frozen.is(t))
    assert.is_false(frozen.is({}))
    assert.equal(t, frozen.mark(t)) -- idempotent
    assert.has_error(function() t[2] = { dir = ">" } end)
    assert.has_error(function() frozen.mark(json.array()) end)
  end)

  it("is encoded as the same table unfrozen would be, once", function()
    local plain = { { dir = "<", t = 0.1, text = "220 mx ESMTP" }, { dir = ">", t = 0.2, text = "EHLO a/b" } }
    local shared = frozen.mark({ { dir = "<", t = 0.1, text = "220 mx ESMTP" }, { dir = ">", t = 0.2, text = "EHLO a/b" } })
    local want = json.encode({ transcript = plain, n = 1 })
    assert.equal(want, json.encode({ transcript = shared, n = 1 }))
    -- encoded once, nothing is kept (the long tail of an audit: servers
    -- no other domain uses): a change inside (which the rule forbids) shows
    shared[2].text = "EHLO b"
    local want2 = json.encode({ transcript = shared, n = 1 })
    assert.are_not.equal(want, want2)
    -- from the second encoding on it comes from the cache: a change inside
    -- would not show, which is how we know it is cached
    shared[1].text = "changed"
    assert.equal(want2, json.encode({ transcript = shared, n = 1 }))
    -- empty frozen tables still follow their key
    assert.equal('{"facts":{},"transcript":[]}', json.encode({ transcript = frozen.mark({}), facts = frozen.mark({}) }))
  end)
end)
