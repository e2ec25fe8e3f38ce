--- mxprobe.report.json: results as JSON (docs/json-schema.md).
--
-- Debian's lua-cjson 2.1.0 has neither cjson.empty_array nor
-- cjson.array_mt, and it encodes every empty table as {}.  So this module
-- walks the structure itself and uses cjson only for the leaves (string
-- escaping, float formatting).  That buys three things:
--   * empty arrays encode as []: a table is an array when it carries the
--     marker metatable M.array_mt, or when it is empty and its key is one
--     the schema declares as an array (M.ARRAY_KEYS: findings, servers,
--     mx, addresses, transcript, ...); any other empty table is {}
--     (M.object_mt forces {} where an array key would say otherwise);
--   * keys come out sorted, so the same result gives the same bytes
--     (diffable, testable);
--   * nothing the engine hands over can make encoding fail: NaN and
--     infinities become null, functions and userdata their type name,
--     invalid UTF-8 bytes are escaped as the text \xNN (JSON must be UTF-8),
--     integers keep every digit (cjson would round them to 14).
local frozen = require "mxprobe.runtime.frozen"
local core = require "mxprobe.core"

local M = {}

M.array_mt = { __name = "mxprobe.json.array" }
M.object_mt = { __name = "mxprobe.json.object" }

--- Mark t (default: a new table) as a JSON array, so that it encodes as []
-- when empty.  Returns t.
function M.array(t) return setmetatable(t or {}, M.array_mt) end
--- Mark t as a JSON object, so that it encodes as {} when empty.
function M.object(t) return setmetatable(t or {}, M.object_mt) end

-- Keys whose value is a list in schema 1 (an empty one encodes as []).
M.ARRAY_KEYS = {
    mx = true, addresses = true, findings = true, servers = true,
    transcript = true, extensions = true, sans = true, families = true,
    categories = true, requires = true, checks = true, chain = true,
    only = true, results = true, ehlo_after = true, auth = true, ptrs = true, not_run = true,
    kinds = true, breaks = true, -- result.senders (policy/senders.lua)
}

local MAX_DEPTH = 64

--- Make a string valid UTF-8: every byte that is not part of a valid
-- sequence becomes the four characters \xNN.
function M.valid_utf8(s)
    if utf8.len(s) then return s end
    local out, i, n = {}, 1, #s
    while i <= n do
        local ok, cp_or_pos = pcall(utf8.codepoint, s, i)
        if ok then
            local len = #utf8.char(cp_or_pos)
            out[#out + 1] = s:sub(i, i + len - 1)
            i = i + len
        else
            out[#out + 1] = ("\\x%02X"):format(s:byte(i))
            i = i + 1
        end
    end
    return table.concat(out)
end

-- Speed (issue 15): an audit encodes one record per domain, 10-30 KB
-- each, so this walker is on the hot path.  It keeps one output buffer
-- with an explicit length, decides array/object and collects the keys in
-- one pass, sorts plain strings with the default comparison (no closure),
-- writes strings that need no escaping directly (cjson only for those that
-- do, so the bytes are what cjson gives: it escapes "/" and DEL too) and
-- remembers the encoded form of the keys it has seen ("host":, ...).
local find, format, sort, concat = string.find, string.format, table.sort, table.concat
local mtype, floor, huge, tointeger = math.type, math.floor, math.huge, math.tointeger
-- cjson is loaded when first needed (a string to escape, a fraction): the
-- C walk needs it for neither, and loading it (a shared object, dlopen'ed)
-- was 2-3 % of the time from process start to the first DNS question
-- (issue 15 (d)).  null is the NULL light userdata, which cjson.null is.
local cjson_encode_fn
local function cjson_encode(v)
    -- lazy: only a string to escape or a fraction needs cjson
    if not cjson_encode_fn then cjson_encode_fn = require("cjson").encode end
    return cjson_encode_fn(v)
end
local null = core.json and core.json.null or require("cjson").null
local ulen = utf8.len
local array_mt, object_mt, ARRAY_KEYS = M.array_mt, M.object_mt, M.ARRAY_KEYS

-- characters that need more than the two quotes: controls, '"', '\', '/',
-- DEL and every byte of a multi-byte sequence (which must be valid UTF-8)
local SPECIAL = '[%z\1-\31"\\/\127-\255]'

local function encode_string(s)
    if not find(s, SPECIAL) then return '"' .. s .. '"' end
    if not ulen(s) then s = M.valid_utf8(s) end
    return cjson_encode(s)
end

local KEYS_MAX = 4096 -- the key cache is cleared when it grows past this
local key_cache, key_count = {}, 0
local function encode_key(k)
    local e = key_cache[k]
    if e then return e end
    e = encode_string(k) .. ":"
    if key_count >= KEYS_MAX then key_cache, key_count = {}, 0 end
    key_cache[k], key_count = e, key_count + 1
    return e
end

local function encode_number(n)
    if mtype(n) == "integer" then return format("%d", n) end
    if n ~= n or n == huge or n == -huge then return "null" end
    if n == floor(n) and (n < 0 and -n or n) < 2^53 then return format("%d", tointeger(n)) end
    return cjson_encode(n)
end

-- Encodings of frozen tables (runtime.frozen: final, shared between the
-- records of an audit), by table; weak, so they go with the tables.
local frozen_mt = frozen.mt
local frozen_cache = setmetatable({}, { __mode = "k" })
-- Kept only from the second encoding on: a table encoded once (a server no
-- other domain uses, the long tail of an audit) costs no cached copy.
local frozen_once = setmetatable({}, { __mode = "k" })

-- the state of one encode() call (encoding calls no user code, so one at a time)
local buf, nbuf, seen

local encode_value

local encode_table

-- A frozen table: its encoding once, then the cached string.  Only for a
-- table with keys (an empty one encodes as [] or {} by its key).
local function encode_frozen(t, key, depth)
    local c = frozen_cache[t]
    if c then
        nbuf = nbuf + 1; buf[nbuf] = c
        return
    end
    local start = nbuf + 1
    encode_table(t, key, depth, true)
    if next(t) == nil then return end
    if not frozen_once[t] then
        frozen_once[t] = true
        return
    end
    c = concat(buf, "", start, nbuf)
    for i = start + 1, nbuf do buf[i] = nil end
    buf[start], nbuf = c, start
    frozen_cache[t] = c
end

function encode_table(t, key, depth, inner)
    local mt = getmetatable(t)
    if mt == frozen_mt and not inner then return encode_frozen(t, key, depth) end
    if seen[t] then error("json: a table refers to itself (at key " .. tostring(key) .. ")", 0) end
    if depth > MAX_DEPTH then error("json: nesting deeper than " .. MAX_DEPTH, 0) end
    seen[t] = true
    local n, keys, nkeys -- n: the array's length; nil for an object
    if mt == array_mt then
        n = #t
    elseif mt ~= object_mt then
        -- one pass: every key, and whether they are exactly 1..count
        local maxk, numeric = 0, true
        keys, nkeys = {}, 0
        for k in pairs(t) do
            nkeys = nkeys + 1
            keys[nkeys] = k
            if numeric then
                if mtype(k) == "integer" and k > 0 then
                    if k > maxk then maxk = k end
                else
                    numeric = false
                end
            end
        end
        if nkeys == 0 then
            if key ~= nil and ARRAY_KEYS[key] then n = 0 end
        elseif numeric and maxk == nkeys then
            n = nkeys
        end
    end
    if n then
        nbuf = nbuf + 1; buf[nbuf] = "["
        for i = 1, n do
            if i > 1 then nbuf = nbuf + 1; buf[nbuf] = "," end
            encode_value(t[i], key, depth + 1)
        end
        nbuf = nbuf + 1; buf[nbuf] = "]"
        seen[t] = nil
        return
    end
    if not keys then -- object_mt, or an empty table that is an object
        keys, nkeys = {}, 0
        for k in pairs(t) do nkeys = nkeys + 1; keys[nkeys] = k end
    end
    -- keys that are not strings are written as strings ("1"); the string
    -- and the number of the same text: keep one
    local orig
    local j = 0
    for i = 1, nkeys do
        local k = keys[i]
        local tk = type(k)
        if tk == "string" then
            j = j + 1; keys[j] = k
        elseif tk == "number" or tk == "boolean" then
            local sk = tostring(k)
            orig = orig or {}
            if orig[sk] == nil and t[sk] == nil then
                orig[sk] = k
                j = j + 1; keys[j] = sk
            end
        end
    end
    for i = j + 1, nkeys do keys[i] = nil end
    sort(keys)
    nbuf = nbuf + 1; buf[nbuf] = "{"
    for i = 1, j do
        local k = keys[i]
        if i > 1 then nbuf = nbuf + 1; buf[nbuf] = "," end
        nbuf = nbuf + 1; buf[nbuf] = encode_key(k)
        local v = t[k]
        if v == nil and orig then v = t[orig[k]] end
        encode_value(v, k, depth + 1)
    end
    nbuf = nbuf + 1; buf[nbuf] = "}"
    seen[t] = nil
end

function encode_value(v, key, depth)
    local tv = type(v)
    if tv == "string" then
        if find(v, SPECIAL) then
            nbuf = nbuf + 1; buf[nbuf] = encode_string(v)
        else -- the common case: no new string, three pieces
            buf[nbuf + 1] = '"'; buf[nbuf + 2] = v; buf[nbuf + 3] = '"'
            nbuf = nbuf + 3
        end
    elseif tv == "table" then encode_table(v, key, depth)
    elseif tv == "number" then nbuf = nbuf + 1; buf[nbuf] = encode_number(v)
    elseif tv == "boolean" then nbuf = nbuf + 1; buf[nbuf] = v and "true" or "false"
    elseif v == nil or v == null then nbuf = nbuf + 1; buf[nbuf] = "null"
    else nbuf = nbuf + 1; buf[nbuf] = encode_string(tv) -- function, thread, userdata
    end
end

--- The walk above in Lua, the reference for core.json (tests/spec/json_c_spec.lua).
function M.encode_lua(v, key)
    buf, nbuf, seen = {}, 0, {}
    local ok, err = pcall(encode_value, v, key, 0)
    local out = ok and concat(buf, "", 1, nbuf)
    buf, seen = nil, nil
    if not ok then error(err, 0) end
    return out
end

-- core.json (core/l_json.c) walks the same way in C, for the same bytes
-- (issue 15: the walk was most of a shared domain's CPU); it answers false
-- for what only this walk does (other metatables, number or boolean keys
-- in an object), and the Lua walk encodes the value then.
local c_encode = core.json and core.json.encode
local C_CTX = { array_mt = array_mt, object_mt = object_mt, frozen_mt = frozen_mt, array_keys = ARRAY_KEYS,
                frozen_cache = frozen_cache, frozen_once = frozen_once }

--- Encode any Lua value as one line of JSON (no trailing newline).
-- key: the name of the field v sits in, if any (decides whether an empty
-- table is [] or {}).
function M.encode(v, key)
    if c_encode then
        local s = c_encode(v, key, C_CTX)
        if s then return s end
    end
    return M.encode_lua(v, key)
end

--- One result (schema 1) as one line of JSON, newline-terminated: a JSON
-- Lines record, and a complete JSON document on its own.
function M.render(result)
    -- the C walk writes the newline into the same string: a second copy of
    -- every record was a good part of an audit's garbage (issue 15)
    if c_encode then
        local s = c_encode(result, nil, C_CTX, "\n")
        if s then return s end
    end
    return M.encode_lua(result) .. "\n"
end

return M
