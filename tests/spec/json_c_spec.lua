-- core.json (core/l_json.c) gives the bytes of report/json.lua's Lua walk,
-- the reference, for whatever it encodes itself, and leaves the rest to it.
local json = require "mxprobe.report.json"
local frozen = require "mxprobe.runtime.frozen"
local core = require "mxprobe.core"
local cjson = require "cjson"

local CTX = { array_mt = json.array_mt, object_mt = json.object_mt, frozen_mt = frozen.mt,
              array_keys = json.ARRAY_KEYS, frozen_cache = setmetatable({}, { __mode = "k" }),
              frozen_once = setmetatable({}, { __mode = "k" }) }

local function c(v, key) return core.json.encode(v, key, CTX) end

local function same(v, key)
    local want = json.encode_lua(v, key)
    local got = c(v, key)
    assert.is_string(got, "core.json left this value to the Lua walk")
    assert.are.equal(want, got)
    assert.are.equal(want, json.encode(v, key))
end

-- a deterministic generator of nested values (strings of any bytes)
local function gen(seed)
    local x = seed
    local function rnd(n)
        x = (x * 1103515245 + 12345) % 2147483648
        return x % n
    end
    local function str()
        local t = {}
        for i = 1, rnd(12) do
            local k = rnd(10)
            if k < 5 then t[i] = string.char(97 + rnd(26))
            elseif k < 7 then t[i] = string.char(rnd(256))
            elseif k < 8 then t[i] = ({ "é", "€", "\u{1F600}", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80" })[rnd(6) + 1]
            else t[i] = ({ '"', "\\", "/", "\n", "\0", "\127" })[rnd(6) + 1] end
        end
        return table.concat(t)
    end
    local NUMS = { 0, -0.0, 1, -7, 2^53, 2^53 - 1, 1e300, 1 / 3, 0.1, -2.5e-7, math.maxinteger, math.mininteger,
                   1e15 + 0.5, 0 / 0, math.huge, -math.huge, 123456789012345.6 }
    local KEYS = { "findings", "servers", "facts", "host", "transcript", "mx", "x", "code" }
    local function val(depth)
        local k = rnd(depth > 4 and 5 or 9)
        if k == 0 then return str()
        elseif k == 1 then return NUMS[rnd(#NUMS) + 1]
        elseif k == 2 then return rnd(2) == 1
        elseif k == 3 then return cjson.null
        elseif k == 4 then return rnd(1000)
        elseif k <= 6 then
            local t = {}
            for i = 1, rnd(5) do t[i] = val(depth + 1) end
            if rnd(4) == 0 then json.array(t) end
            return t
        else
            local t = {}
            for _ = 1, rnd(6) do
                t[rnd(3) == 0 and str() or KEYS[rnd(#KEYS) + 1]] = val(depth + 1)
            end
            if rnd(8) == 0 then json.object(t) end
            return t
        end
    end
    return function() return { v = val(0), f = KEYS[rnd(#KEYS) + 1] } end
end

describe("core.json", function()
    it("encodes 3000 generated values as the Lua walk does", function()
        local next_value = gen(42)
        for _ = 1, 3000 do
            local x = next_value()
            same(x.v)
            same({ [x.f] = x.v, empty = {}, list = {}, findings = {} })
        end
    end)

    it("gives the bytes of the Lua walk for strings and numbers of every kind", function()
        local all = {}
        for i = 0, 255 do all[#all + 1] = string.char(i) end
        same(table.concat(all))
        for _, s in ipairs { "", "plain", "a/b", "tab\there", "\xff\xfe", "\xe2\x82", "ok \xe2\x82\xac then \x80",
                             "\xed\xbf\xbf", "\xf0\x9f\x98\x80", "\xf8\x88\x80\x80\x80", "nul\0inside" } do
            same(s)
            same({ [s] = s })
        end
        for _, n in ipairs { 0, -0.0, 3, -3, 0.5, 2^53, -(2^53), 2^53 - 1, 2^63, 1e-320, 0 / 0, math.huge, -math.huge } do
            same(n)
        end
        -- integers of every digit count and both signs, as string.format writes them
        local p10 = 1
        for _ = 1, 18 do
            for _, n in ipairs { p10, p10 - 1, p10 + 1, -p10, -p10 + 1, -p10 - 1 } do
                same(n)
                same(n + 0.0)
                assert.are.equal(("%d"):format(n), c(n))
            end
            p10 = p10 * 10
        end
        for _, n in ipairs { math.maxinteger, math.mininteger, math.mininteger + 1, -1, -9, -10 } do
            assert.are.equal(("%d"):format(n), c(n))
        end
        same(function() end)
        same(coroutine.create(function() end))
        same(io.stdout)
    end)

    it("has cjson.null as core.json.null, which both walks write as null", function()
        -- report/json.lua recognises null by core.json.null and loads cjson
        -- only to escape a string or write a fraction
        assert.are.equal(cjson.null, core.json.null)
        assert.are.equal("null", json.encode_lua(core.json.null))
        assert.are.equal('{"a":null,"b":[null]}', json.encode_lua({ a = cjson.null, b = { cjson.null } }))
        same({ a = cjson.null, b = { core.json.null } })
    end)

    it("decides [] and {} as the Lua walk does", function()
        same({})
        same({}, "findings")
        same({}, "facts")
        same({ findings = {}, facts = {}, x = json.array(), y = json.object(), servers = { {}, { transcript = {} } } })
        same(json.object({}), "findings")
        same(json.array({ 1, 2, 3 }))
        same({ 1, 2, 3 })
    end)

    it("encodes a frozen table once, from its second use", function()
        local t = frozen.mark({ a = 1, b = { 1, 2 } })
        local r = { one = t, two = t, three = t }
        same(r)
        assert.is_string(CTX.frozen_cache[t])
        assert.are.equal('{"a":1,"b":[1,2]}', CTX.frozen_cache[t])
        same(r)
        same(frozen.mark({}), "findings")
    end)

    it("leaves other metatables and number keys in objects to the Lua walk", function()
        assert.is_false(c(setmetatable({}, { __index = function() return 1 end })))
        assert.is_false(c({ [1] = "a", [3] = "c" }))
        assert.is_false(c({ a = 1, [2] = "b" }))
        assert.is_false(c({ [true] = 1 }))
        assert.is_false(c({ 1, 2 }, 7))
        -- and json.encode still gives the Lua walk's bytes for them
        assert.are.equal('{"1":"a","3":"c"}', json.encode({ [1] = "a", [3] = "c" }))
        assert.are.equal('{"2":"b","a":1}', json.encode({ a = 1, [2] = "b" }))
    end)

    it("refuses a cycle and a nesting too deep with the Lua walk's messages", function()
        local t = { a = {} }
        t.a.b = t
        local ok, err = pcall(c, t)
        assert.is_false(ok)
        assert.are.equal("json: a table refers to itself (at key b)", err)
        local ok2, err2 = pcall(json.encode_lua, t)
        assert.are.equal(err2, err)
        assert.is_false(ok2)
        local deep = {}
        local at = deep
        for _ = 1, 70 do at.x = {}; at = at.x end
        local ok3, err3 = pcall(c, deep)
        assert.is_false(ok3)
        assert.are.equal("json: nesting deeper than 64", err3)
        assert.are.equal(err3, select(2, pcall(json.encode_lua, deep)))
        -- the same table twice, not inside itself, is no cycle
        local shared = { 1 }
        same({ a = shared, b = shared, c = { shared } })
    end)
end)
