--- mxprobe.runtime.escape: the two escapings of the project, named for
-- what they do.
--
--   escape.for_display(s [, max])     text for a terminal or a message
--   escape.for_transcript(bytes [, max])  bytes a peer sent, for the record
--
-- for_display makes any text safe to print: control characters (C0, DEL,
-- C1), bidirectional controls and invalid UTF-8 bytes become visible
-- escapes (\xNN, \uNNNN, \t, \n, \r); printable text, non-ASCII included,
-- is kept.  It leaves a backslash alone, so text that for_transcript
-- already escaped is shown as it is (the report escapes again whatever it
-- prints: a terminal must never receive a control sequence from a remote
-- server, whatever the engine did).
--
-- for_transcript is core.smtp.escape (C, the transcript and evidence
-- rule): the same classes escaped, lower-case \xNN, \u{...} for invisible
-- code points, and a backslash doubled, so the bytes can be recovered.
--
-- max (bytes of input) cuts long text and appends "...": a 10 MB input
-- line must not come back whole in its error message.
local core = require "mxprobe.core"

local M = {}

M.MAX_ECHO = 256 -- bytes of user input echoed in a message

local function escape_cp(cp)
    if cp == 9 then return "\\t" end
    if cp == 10 then return "\\n" end
    if cp == 13 then return "\\r" end
    if cp < 0x20 or cp == 0x7f then return ("\\x%02X"):format(cp) end
    if cp >= 0x80 and cp <= 0x9f then return ("\\u%04X"):format(cp) end -- C1 controls
    -- bidirectional overrides and isolates can make text display as
    -- something else than it is
    if (cp >= 0x202a and cp <= 0x202e) or (cp >= 0x2066 and cp <= 0x2069) or cp == 0x200e or cp == 0x200f then
        return ("\\u%04X"):format(cp)
    end
    return nil
end

-- s cut at max bytes (on a UTF-8 boundary when it can be), and whether it was.
local function cut(s, max)
    if not max or #s <= max then return s, false end
    local i = max
    -- do not split a UTF-8 sequence: back off over continuation bytes
    while i > 0 and i > max - 3 and (s:byte(i + 1) or 0) & 0xC0 == 0x80 do i = i - 1 end
    return s:sub(1, i), true
end

function M.for_display(s, max)
    s = tostring(s)
    local was_cut
    s, was_cut = cut(s, max)
    local more = was_cut and "..." or ""
    if not s:find("[%z\1-\31\127-\255]") then return s .. more end
    local out, i, n = {}, 1, #s
    while i <= n do
        local ok, cp = pcall(utf8.codepoint, s, i)
        if ok then
            local len = #utf8.char(cp)
            out[#out + 1] = escape_cp(cp) or s:sub(i, i + len - 1)
            i = i + len
        else
            out[#out + 1] = ("\\x%02X"):format(s:byte(i))
            i = i + 1
        end
    end
    return table.concat(out) .. more
end

function M.for_transcript(bytes, max)
    local s, was_cut = cut(bytes, max)
    s = core.smtp.escape(s)
    return was_cut and (s .. "...") or s
end

return M
