-- core.copy.deep (core/l_copy.c) makes the engine's copy of a shared
-- probe's findings as the Lua copy does (engine.lua_deep_copy).
local core = require "mxprobe.core"
local engine = require "mxprobe.engine"
local json = require "mxprobe.report.json"
local frozen = require "mxprobe.runtime.frozen"

local function check_copy(orig, copy, seen)
    seen = seen or {}
    if type(orig) ~= "table" then
        assert.are.equal(orig, copy)
        return
    end
    assert.are_not.equal(orig, copy, "a table was shared, not copied")
    assert.are.equal(getmetatable(orig), getmetatable(copy))
    local n = 0
    for k, v in pairs(orig) do
        n = n + 1
        check_copy(v, rawget(copy, k), seen)
    end
    for _ in pairs(copy) do n = n - 1 end
    assert.are.equal(0, n)
end

describe("core.copy.deep", function()
    it("copies every table and keeps keys, values and metatables", function()
        local key = {}
        local v = {
            { code = "CERT_OK", severity = "ok", evidence = { sans = json.array { "a", "b" }, days = 30.5 } },
            { code = "X", evidence = json.object {}, list = { 1, 2, { 3 } }, [key] = "table key", [2.5] = true },
            facts = frozen.mark({ a = 1 }), f = print, n = -0.0, s = "x\0y",
        }
        local c = core.copy.deep(v)
        check_copy(v, c)
        check_copy(v, engine.lua_deep_copy(v))
        assert.are.equal("table key", c[2][key])
        assert.are.same(v, c)
        -- a frozen table's copy is frozen too, as the Lua copy's is
        assert.is_true(frozen.is(c.facts))
        assert.are.equal(1, core.copy.deep(1))
        assert.are.equal("s", core.copy.deep("s"))
    end)

    it("leaves __metatable, __pairs and deep nesting to the Lua copy", function()
        assert.are.equal(0, select("#", core.copy.deep(setmetatable({}, { __metatable = "locked" }))))
        assert.are.equal(0, select("#", core.copy.deep({ x = setmetatable({}, { __pairs = pairs }) })))
        local deep = {}
        local at = deep
        for _ = 1, 150 do at.x = {}; at = at.x end
        assert.are.equal(0, select("#", core.copy.deep(deep)))
        local ok = pcall(engine.lua_deep_copy, deep)
        assert.is_true(ok)
    end)

    it("rows: a new list and a new table per row, the values in them the same", function()
        local mt = { __name = "row" }
        local ev = { a = 1 }
        local list = setmetatable({ setmetatable({ code = "X", evidence = ev }, mt), "plain", { code = "Y" } }, mt)
        local c = core.copy.rows(list)
        assert.are_not.equal(list, c)
        assert.are.equal(mt, getmetatable(c))
        assert.are.equal(3, #c)
        assert.are_not.equal(list[1], c[1])
        assert.are.equal(mt, getmetatable(c[1]))
        assert.are.equal(ev, c[1].evidence)
        assert.are.same({ code = "X", evidence = ev }, setmetatable(c[1], nil))
        assert.are.equal("plain", c[2])
        assert.are.same({ code = "Y" }, c[3])
        assert.are.same({}, core.copy.rows({}))
        assert.has_error(function() core.copy.rows("x") end)
    end)
end)

describe("core.copy.without", function()
    it("copies one level without the key named, sharing the values", function()
        local facts, key = frozen.mark({ a = 1 }), {}
        local srv = setmetatable({ host = "mx", transcript = { "220 hi" }, facts = facts, [key] = 1, "one", "two", [10] = "x" },
                                 { __index = function() return "meta" end })
        local c = core.copy.without(srv, "transcript")
        assert.are_not.equal(srv, c)
        assert.is_nil(getmetatable(c))
        assert.is_nil(rawget(c, "transcript"))
        assert.are.equal(facts, c.facts)
        assert.are.same({ host = "mx", facts = facts, [key] = 1, "one", "two", [10] = "x" }, c)
        assert.are.equal(2, #c)
        -- the original keeps everything; a key that is not there changes nothing
        assert.are.same({ "220 hi" }, srv.transcript)
        assert.are.same({ a = 1, b = 2 }, core.copy.without({ a = 1, b = 2 }, "transcript"))
        local w = core.copy.without({ 1, 2 }, 1)
        assert.is_nil(w[1]); assert.are.equal(2, w[2])
        assert.has_error(function() core.copy.without("x", "k") end)
        assert.has_error(function() core.copy.without({}) end)
    end)
end)
