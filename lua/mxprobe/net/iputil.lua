--- mxprobe.net.iputil: the one parser and classifier of IP address
-- literals (the command line, the checks and the policy use it).
--
--   parse4(s)   -> { a, b, c, d } | nil     dotted quad, decimal only
--   parse6(s)   -> eight 16-bit groups | nil (an IPv4 tail allowed: ::ffff:192.0.2.1)
--   family(s)   -> 4 | 6 | nil
--   classify(s) -> kind, family | nil, kind one of "global", "loopback",
--                  "private", "linklocal", "documentation", "shared",
--                  "multicast", "unspecified", "reserved"
--   is_literal(s) -> bool (also in brackets: "[2001:db8::1]")
--
-- What counts as an address is what inet_pton(3) accepts, which is what
-- the core (core/l_net.c) connects to: four decimal octets 0-255 without
-- leading zeros.  So "010.0.0.1" is not an address: inet_aton(3) and
-- many tools read 010 as octal (8), others as decimal (10), and a
-- literal whose meaning depends on the reader must not be guessed at.

local M = {}

-- One octet: 0-255, no leading zero ("0" itself is fine).
local function octet(p)
    if #p > 1 and p:sub(1, 1) == "0" then return nil end
    local n = tonumber(p)
    if n > 255 then return nil end
    return n
end

function M.parse4(s)
    if type(s) ~= "string" then return nil end
    local a, b, c, d = s:match("^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$")
    if not a then return nil end
    local o = {}
    for i, p in ipairs { a, b, c, d } do
        o[i] = octet(p)
        if not o[i] then return nil end
    end
    return o
end

--- Eight 16-bit groups, or nil.  An embedded IPv4 address may only be
-- the last 32 bits ("::ffff:192.0.2.1", not "192.0.2.1::").
function M.parse6(s)
    if type(s) ~= "string" or not s:find(":", 1, true) or s:find("[^%x:%.]") then return nil end
    local head, tail = s:match("^(.-)::(.*)$")
    local function groups(part, last)
        local g = {}
        if part == "" then return g end
        local items = {}
        for x in (part .. ":"):gmatch("([^:]*):") do items[#items + 1] = x end
        for i, x in ipairs(items) do
            if x:find(".", 1, true) then -- embedded IPv4: only at the very end
                local o = last and i == #items and M.parse4(x)
                if not o then return nil end
                g[#g + 1] = o[1] * 256 + o[2]
                g[#g + 1] = o[3] * 256 + o[4]
            else
                if #x == 0 or #x > 4 then return nil end
                g[#g + 1] = tonumber(x, 16)
            end
        end
        return g
    end
    local out
    if head then
        local h, t = groups(head, false), groups(tail, true)
        if not h or not t or #h + #t > 7 then return nil end
        out = h
        for _ = 1, 8 - #h - #t do out[#out + 1] = 0 end
        for _, x in ipairs(t) do out[#out + 1] = x end
    else
        out = groups(s, true)
        if not out or #out ~= 8 then return nil end
    end
    return out
end

--- 4 or 6 when s is an IPv4 or IPv6 literal (no brackets), else nil.
function M.family(s)
    if M.parse4(s) then return 4 end
    if M.parse6(s) then return 6 end
    return nil
end

local function class4(o)
    local a, b = o[1], o[2]
    if a == 127 then return "loopback" end
    if a == 10 or (a == 172 and b >= 16 and b <= 31) or (a == 192 and b == 168) then return "private" end
    if a == 169 and b == 254 then return "linklocal" end
    if (a == 192 and b == 0 and o[3] == 2) or (a == 198 and b == 51 and o[3] == 100) or (a == 203 and b == 0 and o[3] == 113) then
        return "documentation"
    end
    if a == 100 and b >= 64 and b <= 127 then return "shared" end
    if a >= 224 and a <= 239 then return "multicast" end
    if a == 0 then return a + b + o[3] + o[4] == 0 and "unspecified" or "reserved" end
    if a >= 240 or (a == 198 and (b == 18 or b == 19)) or (a == 192 and b == 0 and o[3] == 0) then return "reserved" end
    return "global"
end

local function class6(g)
    local zero6 = g[1] == 0 and g[2] == 0 and g[3] == 0 and g[4] == 0 and g[5] == 0
    if zero6 and g[6] == 0 and g[7] == 0 then
        if g[8] == 1 then return "loopback" end
        if g[8] == 0 then return "unspecified" end
    end
    if zero6 and g[6] == 0xffff then -- IPv4-mapped
        return class4({ g[7] >> 8, g[7] & 255, g[8] >> 8, g[8] & 255 })
    end
    if g[1] & 0xffc0 == 0xfe80 then return "linklocal" end
    if g[1] & 0xfe00 == 0xfc00 then return "private" end
    if g[1] & 0xff00 == 0xff00 then return "multicast" end
    if g[1] == 0x2001 and g[2] == 0x0db8 then return "documentation" end
    if g[1] & 0xe000 ~= 0x2000 then return "reserved" end -- outside 2000::/3
    return "global"
end

local function classify(ip)
    local o = M.parse4(ip)
    if o then return class4(o), 4 end
    local g = M.parse6(ip)
    if g then return class6(g), 6 end
    return nil
end

-- An audit asks about the same few addresses and MX names for every
-- domain (issue 15: parsing them again was 5 % of a shared domain's Lua
-- work), so the answers are kept, for at most MEMO_MAX strings at once.
local MEMO_MAX = 4096
local kinds, fams, literal, memo_n = {}, {}, {}, 0
local function remember(s, kind, fam, lit)
    if memo_n >= MEMO_MAX then kinds, fams, literal, memo_n = {}, {}, {}, 0 end
    memo_n = memo_n + 1
    kinds[s], fams[s], literal[s] = kind or false, fam or false, lit
end

function M.classify(ip)
    local kind = kinds[ip]
    if kind == nil then
        if type(ip) ~= "string" then return classify(ip) end
        local fam
        kind, fam = classify(ip)
        remember(ip, kind, fam, literal[ip])
        return kind, fam
    end
    if kind == false then return nil end
    return kind, fams[ip]
end

function M.is_literal(s)
    if type(s) ~= "string" then return false end
    local lit = literal[s]
    if lit == nil then
        local v = s:gsub("^%[", ""):gsub("%]$", "")
        lit = M.classify(v) ~= nil
        if kinds[s] == nil then remember(s, classify(s)) end
        literal[s] = lit
    end
    return lit
end

return M
