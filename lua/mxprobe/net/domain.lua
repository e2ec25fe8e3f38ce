--- mxprobe.net.domain: the one validator of domain and host names, used by
-- the command line, audits, the embedding API and the engine.
--
--   domain.problem(name)  -> nil, or why name (A-labels) is not a host name
--   domain.parse(s)       -> name without its trailing dot [, s as given when
--                            it was converted from a U-label] | nil, message
--                            (an IP address is refused with a hint to --mx;
--                            the message echoes at most 256 bytes of s)
--
-- Labels are letters, digits, '-' and '_' ('_' for service names such as
-- _mta-sts), 63 octets at most, not starting or ending with '-'; the name
-- is 253 octets at most.  An internationalised name (any byte above ASCII)
-- is converted to A-labels first (core.idn: IDNA2008, UTS #46
-- non-transitional, NFC), so "bücher.example" is checked as
-- "xn--bcher-kva.example".

local core = require "mxprobe.core"
local iputil = require "mxprobe.net.iputil"
local escape = require "mxprobe.runtime.escape"

local M = {}

-- what a message echoes of the input: escaped, at most MAX_ECHO bytes
local function shown(s) return escape.for_display(s, escape.MAX_ECHO) end

-- A name with nothing wrong passes a few scans (issue 15: the label loop
-- below ran for every line of an audit's input); any other is walked
-- label by label for the reason.
-- The scans are chosen for Lua's matcher, which tries a pattern at every
-- position (an end anchor does not help): the ends are read as bytes, and a
-- label longer than 63 is looked for only in a name that could hold one
-- (one audited domain's names took ~9 us here, issue 15 (c)).
local BAD_CHAR, LONG_LABEL = "[^%w%-_.]", ("[^.]"):rep(64)
local DOT, HYPHEN = 46, 45
-- plain: the caller already knows that name has no BAD_CHAR
local function plainly_fine(name, plain)
    local n = #name
    if n > 253 or (not plain and name:find(BAD_CHAR)) or name:find("..", 1, true)
        or name:find("-.", 1, true) or name:find(".-", 1, true) then
        return false
    end
    local first, last = name:byte(1), name:byte(n)
    if first == DOT or first == HYPHEN or last == DOT or last == HYPHEN then return false end
    return n <= 63 or not name:find(LONG_LABEL)
end

local function problem(name, plain)
    if name == "" then return "empty" end
    if plainly_fine(name, plain) then return nil end
    if #name > 253 then return "longer than 253 characters" end
    for label in (name .. "."):gmatch("([^.]*)%.") do
        if label == "" then return "empty label" end
        if #label > 63 then return "a label is longer than 63 characters" end
        if label:find("[^%w%-_]") then return "only letters, digits, '-' and '_' are allowed" end
        if label:sub(1, 1) == "-" or label:sub(-1) == "-" then return "a label starts or ends with '-'" end
    end
end

function M.problem(name) return problem(name) end

-- is the last label of name all digits?  Read from the end: most names end
-- in a letter, which settles it at once
local function last_label_digits(name)
    local i = #name
    local b = name:byte(i)
    if not b or b < 48 or b > 57 then return false end
    while i > 1 do
        i = i - 1
        b = name:byte(i)
        if b == DOT then return true end
        if b < 48 or b > 57 then return false end
    end
    return true
end

function M.parse(s)
    -- the message is made only for a name refused (an audit parses every
    -- input line: escaping each for a message nobody reads was 2 % of a
    -- shared domain's Lua, issue 15)
    local input = s -- (s becomes its A-labels below; the message shows what was given)
    local function what() return ("'%s' is not a domain name"):format(shown(input)) end
    if s == "" then return nil, "an empty domain name" end
    -- the common case: letters, digits, '-', '_' and dots, so no brackets,
    -- spaces, controls or bytes above ASCII to look for
    local plain = not s:find(BAD_CHAR)
    local bare = not plain and s:match("^%[(.*)%]$") or s
    if iputil.family(bare) then
        return nil, ("'%s' is an IP address, not a domain name (to test the server at that address: --mx %s)")
            :format(shown(s), shown(bare))
    end
    if not plain and s:find("[%c%s]") then return nil, what() .. " (it contains spaces or control characters)" end
    local given
    if not plain and s:find("[\128-\255]") then
        local ascii, _, detail = core.idn.to_ascii(s)
        if not ascii then return nil, ("%s (internationalised name: %s)"):format(what(), detail) end
        given, s, plain = s, ascii, false
    end
    local name = s:byte(-1) == DOT and s:sub(1, -2) or s
    if name == "" then return nil, what() end
    local why = problem(name, plain)
    -- no top-level domain is all digits (RFC 3696 2): "010.0.0.1" is a
    -- mistyped address, and resolving it as a name would ask the DNS about it
    if not why and last_label_digits(name) then
        why = "the last label is all digits; to test a server by address: --mx ADDRESS"
    end
    if why then return nil, ("%s (%s)"):format(what(), why) end
    return name, given
end

return M
