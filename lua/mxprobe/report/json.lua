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
local cjson = require "cjson"

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

local function encode_string(s)
    return cjson.encode(M.valid_utf8(s))
end

local function encode_number(n)
    if math.type(n) == "integer" then return ("%d"):format(n) end
    if n ~= n or n == math.huge or n == -math.huge then return "null" end
    if n == math.floor(n) and math.abs(n) < 2^53 then return ("%d"):format(math.tointeger(n)) end
    return cjson.encode(n)
end

-- Decide array or object: returns "array", n or "object".
local function shape(t, key)
    local mt = getmetatable(t)
    if mt == M.array_mt then return "array", #t end
    if mt == M.object_mt then return "object" end
    local n, count = 0, 0
    for k in pairs(t) do
        count = count + 1
        if math.type(k) == "integer" and k > 0 then
            if k > n then n = k end
        else
            return "object"
        end
    end
    if count == 0 then
        return (key ~= nil and M.ARRAY_KEYS[key]) and "array" or "object", 0
    end
    if n == count then return "array", n end
    return "object" -- sparse: keys become strings
end

local encode_value

local function encode_table(t, key, depth, seen, buf)
    if seen[t] then error("json: a table refers to itself (at key " .. tostring(key) .. ")", 0) end
    if depth > MAX_DEPTH then error("json: nesting deeper than " .. MAX_DEPTH, 0) end
    seen[t] = true
    local kind, n = shape(t, key)
    if kind == "array" then
        buf[#buf + 1] = "["
        for i = 1, n do
            if i > 1 then buf[#buf + 1] = "," end
            encode_value(t[i], key, depth + 1, seen, buf)
        end
        buf[#buf + 1] = "]"
    else
        local entries = {}
        for k, v in pairs(t) do
            local tk = type(k)
            if tk == "string" or tk == "number" or tk == "boolean" then
                entries[#entries + 1] = { tostring(k), v }
            end
        end
        table.sort(entries, function(a, b) return a[1] < b[1] end)
        buf[#buf + 1] = "{"
        local last
        for _, e in ipairs(entries) do
            if e[1] ~= last then -- the number 1 and the string "1": keep one
                if last ~= nil then buf[#buf + 1] = "," end
                last = e[1]
                buf[#buf + 1] = encode_string(e[1])
                buf[#buf + 1] = ":"
                encode_value(e[2], e[1], depth + 1, seen, buf)
            end
        end
        buf[#buf + 1] = "}"
    end
    seen[t] = nil
end

function encode_value(v, key, depth, seen, buf)
    local tv = type(v)
    if tv == "string" then buf[#buf + 1] = encode_string(v)
    elseif tv == "number" then buf[#buf + 1] = encode_number(v)
    elseif tv == "boolean" then buf[#buf + 1] = v and "true" or "false"
    elseif v == nil or v == cjson.null then buf[#buf + 1] = "null"
    elseif tv == "table" then encode_table(v, key, depth, seen, buf)
    else buf[#buf + 1] = encode_string(tv) -- function, thread, userdata
    end
end

--- Encode any Lua value as one line of JSON (no trailing newline).
-- key: the name of the field v sits in, if any (decides whether an empty
-- table is [] or {}).
function M.encode(v, key)
    local buf = {}
    encode_value(v, key, 0, {}, buf)
    return table.concat(buf)
end

--- One result (schema 1) as one line of JSON, newline-terminated: a JSON
-- Lines record, and a complete JSON document on its own.
function M.render(result)
    return M.encode(result) .. "\n"
end

return M
