--- mxprobe.report.text: the human report of one result (schema 1).
--
--   render(result, { color = bool, verbose = bool }) -> string
--
-- Layout: a header (domain, verdict, what decided it), the DNS section (MX
-- list with preferences and addresses), domain-level findings, then one
-- block per MX address with an aligned table CHECK / SEVERITY / CODE /
-- MESSAGE, the score and grade, and the hint under every finding that is
-- not ok.  verbose adds each server's facts and SMTP transcript.
--
-- Everything that may come from the network (banner, host names, messages
-- with evidence, transcript) goes through M.escape before display, even
-- though the engine escapes already: a terminal must never receive a
-- control sequence from a remote server.
local vocab = require "mxprobe.runtime.vocab"
local escape = require "mxprobe.runtime.escape"
local reason = require "mxprobe.report.reason"
local senders = require "mxprobe.policy.senders"
local term_width = require("mxprobe.core").term.width -- wcwidth in C.UTF-8 (core/l_term.c)

local M = {}

----------------------------------------------------------------- escaping

--- The project's display escaping (mxprobe.runtime.escape.for_display),
-- here too because every report module prints through it.
M.escape = escape.for_display

--- Display width of an (escaped) string in terminal columns.
function M.width(s)
    s = tostring(s)
    if not s:find("[\128-\255]") then return #s end
    if term_width then return term_width(s) end
    return utf8.len(s) or #s
end

-- The longest prefix of s (a UTF-8 string) that fits in w columns, and
-- the rest; at least one character, so that a wrap always progresses.
local function cut(s, w)
    local used, last = 0, 0
    local ok = pcall(function()
        for p, c in utf8.codes(s) do
            local ch = utf8.char(c)
            local cw = M.width(ch)
            if used + cw > w and last > 0 then break end
            used = used + cw
            last = p + #ch - 1
        end
    end)
    if not ok then last = math.min(w, #s) end -- not UTF-8 (never after escape): bytes
    if last == 0 then last = #s end
    return s:sub(1, last), s:sub(last + 1)
end

--- Wrap s into lines of at most width columns, breaking at spaces; a
-- word longer than a line is cut.  first: the width of the first line
-- (default width).  width nil: one line.
function M.wrap(s, width, first)
    s = tostring(s)
    if not width then return { s } end
    local limit = first or width
    if M.width(s) <= limit then return { s } end
    local lines, line, lw = {}, "", 0
    for word in s:gmatch("%S+") do
        local ww = M.width(word)
        if lw > 0 and lw + 1 + ww <= limit then
            line, lw = line .. " " .. word, lw + 1 + ww
        else
            if lw > 0 then lines[#lines + 1] = line; limit = width end
            while ww > limit do
                local head, rest = cut(word, limit)
                lines[#lines + 1] = head
                limit = width
                word = rest
                ww = M.width(word)
            end
            line, lw = word, ww
        end
    end
    if lw > 0 or #lines == 0 then lines[#lines + 1] = line end
    return lines
end

------------------------------------------------------------------- colour

local SGR = {
    ok = "32", info = "36", warning = "33", critical = "1;31",
    inconclusive = "35", error = "1;35",
    bold = "1", dim = "2", heading = "1",
}

local function painter(color)
    if not color then return function(_, s) return s end end
    return function(style, s)
        local code = SGR[style]
        if not code or s == "" then return s end
        return "\27[" .. code .. "m" .. s .. "\27[0m"
    end
end

------------------------------------------------------------------- tables

-- rows: list of lists of cells; a cell is a string or { text, style }.
-- Columns are padded to their widest cell (by display width, before any
-- colour is added); the last column is not padded and wraps at width
-- (nil: no limit), its continuation lines starting under it.  When the
-- other columns leave it fewer than MIN_LAST columns, it goes on lines
-- of its own, indented by 4 under the row.
-- @return lines, widths, the start column of the last column (0-based),
--         the width left for it (nil: no limit)
local MIN_LAST = 24
local function format_table(rows, indent, paint, width)
    local widths = {}
    for _, row in ipairs(rows) do
        for c, cell in ipairs(row) do
            local text = type(cell) == "table" and cell[1] or cell
            local w = M.width(text)
            if c < #row and (not widths[c] or w > widths[c]) then widths[c] = w end
        end
    end
    local ncols = 0
    for _, row in ipairs(rows) do ncols = math.max(ncols, #row) end
    local start = M.width(indent)
    for c = 1, ncols - 1 do start = start + (widths[c] or 0) + 2 end
    local avail, below = width and (width - start) or nil, false
    if avail and avail < MIN_LAST then
        below = true
        start = M.width(indent) + 4
        avail = math.max(width - start, 8)
    end
    local lines = {}
    for _, row in ipairs(rows) do
        local parts = {}
        for c, cell in ipairs(row) do
            local text, style = cell, nil
            if type(cell) == "table" then text, style = cell[1], cell[2] end
            if c < #row then
                local pad = (" "):rep(widths[c] - M.width(text) + 2)
                parts[#parts + 1] = (style and paint(style, text) or text) .. pad
            else
                local wrapped = M.wrap(text, avail)
                if below and style == "heading" then
                    -- the header of a column that is not beside the others
                    wrapped = {}
                end
                if below then
                    lines[#lines + 1] = (indent .. table.concat(parts)):gsub("%s+$", "")
                    for _, w in ipairs(wrapped) do
                        lines[#lines + 1] = (" "):rep(start) .. (style and paint(style, w) or w)
                    end
                else
                    parts[#parts + 1] = style and paint(style, wrapped[1]) or wrapped[1]
                    lines[#lines + 1] = indent .. table.concat(parts)
                    for i = 2, #wrapped do
                        lines[#lines + 1] = (" "):rep(start) .. (style and paint(style, wrapped[i]) or wrapped[i])
                    end
                end
                parts = nil
                break
            end
        end
        if parts then lines[#lines + 1] = indent .. table.concat(parts) end
    end
    return lines, widths, start, avail
end

-- Wrapped text at column `at` (0-based), in lines of width columns;
-- the first line may start elsewhere (prefix already written).
local function add_wrapped(lines, text, at, width, paint, style)
    local avail = width and math.max(width - at, 8) or nil
    for _, l in ipairs(M.wrap(text, avail)) do
        lines[#lines + 1] = (" "):rep(at) .. (style and paint(style, l) or l)
    end
end

------------------------------------------------------------------ helpers

local function seconds(s)
    if type(s) ~= "number" then return "?" end
    if s < 10 then return ("%.3f s"):format(s) end
    return ("%.1f s"):format(s)
end

local function endpoint(address, port)
    address = M.escape(address or "?")
    if address:find(":", 1, true) then address = "[" .. address .. "]" end
    return port and (address .. ":" .. tostring(port)) or address
end

local function list_of(t)
    if type(t) ~= "table" then return {} end
    return t
end

local SEVERITY_RANK = vocab.SEVERITIES

-- core.idn.to_unicode, when the core is there
local to_unicode
do
    local ok, core = pcall(require, "mxprobe.core")
    if ok and type(core) == "table" and type(core.idn) == "table" then to_unicode = core.idn.to_unicode end
end

--- A host or domain name with its U-label form next to it when it has
-- A-labels: "xn--bcher-kva.example (bücher.example)".  given: the name
-- as the user typed it, when known.
function M.name(name, given)
    name = tostring(name or "?")
    local u = given
    if (not u or u == name) and to_unicode and (name:find("^xn%-%-") or name:find("%.xn%-%-")) then
        local ok, r = pcall(to_unicode, name)
        if ok and type(r) == "string" then u = r end
    end
    if u and u ~= name and u:lower() ~= name then return M.escape(name) .. " (" .. M.escape(u) .. ")" end
    return M.escape(name)
end

-- Findings sorted worst first (stable: the check order within a severity).
local function by_severity(findings)
    local t = {}
    for i, f in ipairs(findings) do t[i] = { f = f, i = i } end
    table.sort(t, function(a, b)
        local ra, rb = SEVERITY_RANK[a.f.severity] or 0, SEVERITY_RANK[b.f.severity] or 0
        if ra ~= rb then return ra > rb end
        return a.i < b.i
    end)
    local out = {}
    for i, x in ipairs(t) do out[i] = x.f end
    return out
end

-- The worst severity rank among findings (0 when none).
local function worst_rank(findings)
    local w = 0
    for _, f in ipairs(list_of(findings)) do w = math.max(w, SEVERITY_RANK[f.severity] or 0) end
    return w
end

-- The table of a list of findings, problems first, and the hints and
-- policy notes under them (in the MESSAGE column).  Unless verbose, the
-- ok findings are folded into one line of codes under the table.
local function findings_block(lines, findings, indent, paint, width, verbose)
    local shown, ok_codes = {}, {}
    for _, f in ipairs(by_severity(findings)) do
        if f.severity == "ok" and not verbose then ok_codes[#ok_codes + 1] = M.escape(f.code or "?")
        else shown[#shown + 1] = f end
    end
    if #shown > 0 then
        local rows = { { { "CHECK", "heading" }, { "SEVERITY", "heading" }, { "CODE", "heading" }, { "MESSAGE", "heading" } } }
        for i, f in ipairs(shown) do
            local sev = M.escape(f.severity or "?")
            rows[i + 1] = {
                M.escape(f.check or "-"),
                { sev, SEVERITY_RANK[sev] and sev or nil },
                M.escape(f.code or "?"),
                M.escape(f.message or ""),
            }
        end
        -- format row by row so the notes of each finding follow it
        local all, _, start = format_table(rows, indent, paint, width)
        -- split the formatted lines back into rows: a row's first line is
        -- the one that starts with text at the indent
        local row_lines, current = {}, nil
        local il = #indent
        for _, l in ipairs(all) do
            if l:sub(il + 1, il + 1) ~= " " then
                current = { l }
                row_lines[#row_lines + 1] = current
            else
                current[#current + 1] = l
            end
        end
        for _, l in ipairs(row_lines[1] or {}) do lines[#lines + 1] = l end
        for i, f in ipairs(shown) do
            for _, l in ipairs(row_lines[i + 1] or {}) do lines[#lines + 1] = l end
            if f.hint and f.hint ~= "" and f.severity ~= "ok" then
                add_wrapped(lines, "hint: " .. M.escape(f.hint), start, width, paint, "dim")
            end
            -- what the policy did to it: the rule that added it or changed its severity
            local o = type(f.override) == "table" and f.override or nil
            if o and o.from then
                local by = o.rule and ("rule " .. M.rule_name(o.rule, o.source)) or
                           o.check and ("check " .. M.escape(o.check)) or
                           ("policy " .. M.escape(o.policy or "?") .. (o.source and (" (" .. M.escape(o.source) .. ")") or ""))
                add_wrapped(lines, ("severity: %s instead of %s, by %s%s"):format(M.escape(f.severity or "?"),
                    M.escape(o.from), by, o.why and (": " .. M.escape(o.why)) or ""), start, width, paint, "dim")
            elseif f.rule and f.code == "POLICY_RULE" then
                add_wrapped(lines, "rule " .. M.rule_name(f.rule, f.rule_source), start, width, paint, "dim")
            end
            local ev = type(f.evidence) == "table" and f.evidence or {}
            if type(ev.traceback) == "string" then -- only there with -v
                for l in ev.traceback:gmatch("[^\n]+") do
                    add_wrapped(lines, M.escape((l:gsub("\t", "  "))), start, width, paint, "dim")
                end
            end
        end
    end
    if #ok_codes > 0 then
        local head = indent .. paint("ok", "ok") .. "  "
        local at = M.width(indent) + 4
        local wrapped = M.wrap(table.concat(ok_codes, " "), width and math.max(width - at, 8) or nil)
        lines[#lines + 1] = head .. paint("dim", wrapped[1])
        for i = 2, #wrapped do lines[#lines + 1] = (" "):rep(at) .. paint("dim", wrapped[i]) end
    end
end

-- The checks that did not run: "not run: banner (no connection)", one line
-- each, and those that only follow from another one on a line of their own
-- ("not run because of that: ehlo, starttls, ...").
local function not_run_block(lines, list, indent, paint, width)
    local follow = {}
    for _, n in ipairs(list) do
        if type(n) == "table" then
            if type(n.reason) == "string" and n.reason:match("^requires [%w_]+, which did not run$") then
                follow[#follow + 1] = M.escape(n.check or "?")
            else
                add_wrapped(lines, ("not run: %s (%s)"):format(M.escape(n.check or "?"), M.escape(n.reason or "?")),
                    #indent, width, paint, "dim")
            end
        end
    end
    if #follow > 0 then
        add_wrapped(lines, "not run, as they require one of those: " .. table.concat(follow, ", "), #indent, width, paint, "dim")
    end
end

--- The vantage evidence of a result in one line (docs/json-schema.md).
function M.vantage_line(v)
    local c = type(v.check) == "table" and v.check or nil
    local parts = { ("%s server(s) answered on port %s in this run"):format(M.escape(v.answered or 0), M.escape(v.port or "?")) }
    if c then
        parts[#parts + 1] = ("reference host %s: %s"):format(M.escape(c.target or "?"), M.escape(c.state or "?"))
    end
    return ("vantage: port %s %s (%s)"):format(M.escape(v.port or "?"),
        v.state == "open" and "reachable" or v.state == "blocked" and "blocked here" or "unknown", table.concat(parts, "; "))
end

--- 'name' (file:line), or file:line alone when the rule is named by it.
--- 'name' (file:line), or file:line alone when the rule is named by it.
function M.rule_name(name, source)
    name = tostring(name)
    if source == nil or source == name then return M.escape(name) end
    return ("'%s' (%s)"):format(M.escape(name), M.escape(source))
end

-- Fact fields that hold a time as seconds since the epoch.
local EPOCH_KEYS = { not_after = true, not_before = true }

-- A fact value on one line: arrays joined, tables as k=v.
local function fact_value(v, depth, key)
    depth = depth or 0
    if EPOCH_KEYS[key] and math.type(v) == "integer" then
        return os.date("!%Y-%m-%dT%H:%M:%SZ", v)
    end
    if type(v) ~= "table" then
        if v == true then return "yes" elseif v == false then return "no" end
        if math.type(v) == "float" then return ("%g"):format(v) end
        return M.escape(tostring(v))
    end
    if depth > 2 then return "{...}" end
    if #v > 0 or next(v) == nil then
        local parts, nested = {}, false
        for _, x in ipairs(v) do
            parts[#parts + 1] = fact_value(x, depth + 1)
            nested = nested or type(x) == "table"
        end
        return table.concat(parts, nested and "; " or ", ")
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
        local x = v[k]
        if x == nil then x = v[tonumber(k)] end
        if x == "" then -- a keyword without parameters (EHLO keywords)
            parts[#parts + 1] = M.escape(k)
        elseif type(x) == "table" then
            parts[#parts + 1] = M.escape(k) .. "=[" .. fact_value(x, depth + 1) .. "]"
        else
            parts[#parts + 1] = M.escape(k) .. "=" .. fact_value(x, depth + 1, k)
        end
    end
    return table.concat(parts, " ")
end

local FACT_ORDER = { "connect", "banner", "ehlo", "starttls", "tls", "certificate", "relay" }

local function facts_block(lines, facts, indent, paint, width)
    if type(facts) ~= "table" or next(facts) == nil then return end
    lines[#lines + 1] = indent .. paint("heading", "facts")
    local names, seen = {}, {}
    for _, k in ipairs(FACT_ORDER) do
        if facts[k] ~= nil then names[#names + 1] = k; seen[k] = true end
    end
    local rest = {}
    for k in pairs(facts) do if not seen[k] then rest[#rest + 1] = tostring(k) end end
    table.sort(rest)
    for _, k in ipairs(rest) do names[#names + 1] = k end
    local rows = {}
    for _, k in ipairs(names) do rows[#rows + 1] = { M.escape(k), fact_value(facts[k]) } end
    for _, l in ipairs((format_table(rows, indent .. "  ", paint, width))) do lines[#lines + 1] = l end
end

local function transcript_block(lines, transcript, indent, paint, width)
    if type(transcript) ~= "table" or #transcript == 0 then return end
    lines[#lines + 1] = indent .. paint("heading", "transcript")
    local at = M.width(indent) + 2 + 7 + 3 -- "  " time(7) " > "
    for _, e in ipairs(transcript) do
        local t = type(e.t) == "number" and ("%7.3f"):format(e.t) or "      ?"
        -- > sent, < received, * a note of the session (connected, new
        -- session), ! an error (timeout, reset)
        local dir = (e.dir == ">" or e.dir == "<" or e.dir == "*" or e.dir == "!") and e.dir or "?"
        local text = M.escape(e.text or "")
        local avail = width and math.max(width - at, 8) or nil
        local parts = {}
        -- a protocol line is cut where it must, not at its spaces: what was
        -- sent is shown exactly
        local rest = text
        repeat
            local head
            if avail and M.width(rest) > avail then head, rest = cut(rest, avail) else head, rest = rest, "" end
            parts[#parts + 1] = head
        until rest == ""
        lines[#lines + 1] = ("%s  %s %s %s"):format(indent, paint("dim", t), dir, parts[1])
        for i = 2, #parts do lines[#lines + 1] = (" "):rep(at) .. parts[i] end
    end
end

------------------------------------------------------------------- report

-- The "decided by" line, only when a policy rule, a policy entry or the
-- verdict function decided (the summary line already names the finding).
local function decided_line(d)
    if type(d) ~= "table" or not (d.code or d.rule) then return nil end
    local o = type(d.override) == "table" and d.override or nil
    if not d.rule and not (o and (o.policy or o.check)) then return nil end
    local what = M.escape(d.code or "?")
    if d.host or d.address then
        what = what .. " on " .. M.escape(d.host or d.address)
        if d.host and d.address then what = what .. " (" .. M.escape(d.address) .. ")" end
    end
    local s
    if d.rule and d.rule_source and not d.code then
        -- the policy's verdict function, without a finding
        s = "decided by the policy's " .. M.escape(d.rule) .. " function (" .. M.escape(d.rule_source) .. ")"
        if d.reason then s = s .. ": " .. M.escape(d.reason) end
    elseif d.rule and d.rule_source then
        s = "decided by rule " .. M.rule_name(d.rule, d.rule_source) .. ": " .. what
        if o and o.from and d.severity then
            s = s .. (" (%s instead of %s)"):format(M.escape(d.severity), M.escape(o.from))
        end
    elseif o and o.check and o.from then
        s = ("decided by %s (%s instead of %s: check %s)"):format(what, M.escape(d.severity or "?"),
            M.escape(o.from), M.escape(o.check))
    elseif o and o.policy then
        s = ("decided by %s (%s instead of %s: policy %s%s)"):format(what, M.escape(d.severity or "?"),
            M.escape(o.from or "?"), M.escape(o.policy), o.source and (", " .. M.escape(o.source)) or "")
    else
        s = "decided by " .. what
        if d.rule then s = s .. " (rule: " .. M.escape(d.rule) .. ")" end
    end
    return s
end

--- The first line of a report: the domain, the verdict and the decisive
-- reason (the finding that decided, with its message).
-- @return the plain parts: name, verdict, reason (nil when ok)
local function summary_parts(result)
    local name = M.name(result.domain or result.host or "?", result.input)
    local verdict = M.escape(result.verdict or "inconclusive")
    local why
    if result.error then
        why = "error: " .. M.escape(result.error)
    elseif type(result.decided_by) == "table" and (result.decided_by.code or result.decided_by.reason) then
        why = M.escape(reason.phrase(result))
    elseif result.verdict == "ok" then
        local n = #list_of(result.servers)
        why = n > 0 and ("%d %s tested, no problem found"):format(n, n == 1 and "server" or "servers") or nil
    end
    return name, verdict, why
end

--- The one summary line of a result (wrapped at width: continuation
-- lines indented by 4).
function M.summary_line(result, opts)
    opts = opts or {}
    local paint = painter(opts.color)
    local name, verdict, why = summary_parts(result)
    local lines = {}
    local head = name .. "  " .. verdict:upper()
    local styled = paint("bold", name) .. "  " .. paint(SEVERITY_RANK[verdict] and verdict or "bold", verdict:upper())
    if not why then return styled end
    local width = opts.width
    local hw = M.width(head) + 2
    if not width or hw + M.width(why) <= width then return styled .. "  " .. why end
    -- the reason fills the first line, then continues indented by 4
    local w = M.wrap(why, math.max(width - 4, 8), math.max(width - hw, 8))
    lines[1] = styled .. "  " .. w[1]
    for i = 2, #w do lines[#lines + 1] = "    " .. w[i] end
    return table.concat(lines, "\n")
end

-- The DNS section: the MX table and the DNS findings.
local function dns_block(lines, dns, paint, width, verbose)
    local function add(x) lines[#lines + 1] = x end
    add("")
    add(paint("heading", "DNS"))
    local mx = list_of(dns.mx)
    if #mx > 0 then
        local rows = { { { "PREF", "heading" }, { "MX", "heading" }, { "ADDRESSES", "heading" } } }
        local implicit = false
        for _, m in ipairs(mx) do
            local addrs = {}
            for _, a in ipairs(list_of(m.addresses)) do addrs[#addrs + 1] = M.escape(a) end
            local host = M.name(m.host or "?")
            if m.implicit then host = host .. " (implicit)"; implicit = true end
            rows[#rows + 1] = { m.preference ~= nil and M.escape(m.preference) or "-", host,
                                #addrs > 0 and table.concat(addrs, ", ") or "(no addresses)" }
        end
        for _, l in ipairs((format_table(rows, "  ", paint, width))) do add(l) end
        if implicit then
            add_wrapped(lines, "(no MX record: mail goes to the domain's own addresses, RFC 5321 section 5.1)", 2, width, paint)
        end
    else
        add("  no MX hosts")
    end
    local df = list_of(dns.findings)
    if #df > 0 then
        if worst_rank(df) > (SEVERITY_RANK.ok or 1) or verbose then add("") end
        findings_block(lines, df, "  ", paint, width, verbose)
    end
end

-- The head line(s) of a server: host, endpoint, preference, score, grade,
-- put on as few lines as the width allows.
local function server_head(lines, s, paint, width)
    local host = M.name(s.host or "?")
    local head = { { host, paint("bold", host) }, { endpoint(s.address, s.port) } }
    if s.preference ~= nil then head[#head + 1] = { "preference " .. M.escape(s.preference) } end
    if s.score ~= nil then head[#head + 1] = { "score " .. M.escape(s.score) } end
    if s.grade ~= nil then
        head[#head + 1] = { "grade " .. M.escape(s.grade), "grade " .. paint("bold", M.escape(s.grade)) }
    end
    if s.score == nil and s.score_reason ~= nil then
        head[#head + 1] = { "score - (" .. M.escape(s.score_reason) .. ")" }
    end
    local line, lw = {}, 0
    for _, part in ipairs(head) do
        local w = M.width(part[1])
        if lw > 0 and width and lw + 2 + w > width then
            lines[#lines + 1] = table.concat(line, "  ")
            line, lw = {}, 2
            line[1] = " " -- continuation: indented by 2 (with the separator)
        end
        line[#line + 1] = part[2] or part[1]
        lw = lw + (lw > 0 and 2 or 0) + w
    end
    lines[#lines + 1] = table.concat(line, "  ")
end

local function server_block(lines, s, paint, width, verbose)
    lines[#lines + 1] = ""
    server_head(lines, s, paint, width)
    local sf = list_of(s.findings)
    if #sf > 0 then
        findings_block(lines, sf, "  ", paint, width, verbose)
    else
        lines[#lines + 1] = "  no findings"
    end
    not_run_block(lines, list_of(s.not_run), "  ", paint, width)
    if verbose then
        facts_block(lines, s.facts, "  ", paint, width)
        transcript_block(lines, s.transcript, "  ", paint, width)
    end
end

--- The report of one result as a string (ending in a newline).
--   opts.color    ANSI colours
--   opts.verbose  every finding (ok ones too), facts and the transcript
--   opts.width    wrap at this many columns (nil: no wrapping)
--   opts.quiet    only the summary line
function M.render(result, opts)
    opts = opts or {}
    local paint = painter(opts.color)
    local width = opts.width
    local lines = {}
    local function add(s) lines[#lines + 1] = s end
    local function add_text(s, at) add_wrapped(lines, s, at or 2, width, paint) end

    add(M.summary_line(result, opts))
    if opts.quiet then return table.concat(lines, "\n") .. "\n" end
    local meta = {}
    if result.policy then meta[#meta + 1] = "policy " .. M.escape(result.policy) end
    if result.started then meta[#meta + 1] = "started " .. M.escape(result.started) end
    if result.duration_s then meta[#meta + 1] = "took " .. seconds(result.duration_s) end
    if #meta > 0 then add_text(table.concat(meta, ", ")) end
    local dl = decided_line(result.decided_by)
    if dl then add_text(dl) end
    if type(result.dns) == "table" then dns_block(lines, result.dns, paint, width, opts.verbose) end

    -- domain-level findings, and the checks that did not run for the domain
    local rf, rn = list_of(result.findings), list_of(result.not_run)
    if #rf > 0 or #rn > 0 then
        add("")
        add(paint("heading", "Domain"))
        if #rf > 0 then findings_block(lines, rf, "  ", paint, width, opts.verbose) end
        not_run_block(lines, rn, "  ", paint, width)
    end
    local v = type(result.vantage) == "table" and result.vantage or nil
    if v and opts.verbose then add(""); add_text(M.vantage_line(v)) end
    M.senders_block(lines, result, paint, width)

    -- servers, those with problems first (then in the engine's order:
    -- preference, then address)
    local servers = {}
    for i, s in ipairs(list_of(result.servers)) do servers[i] = { s = s, i = i, w = worst_rank(s.findings) } end
    table.sort(servers, function(a, b)
        if a.w ~= b.w then return a.w > b.w end
        return a.i < b.i
    end)
    for _, x in ipairs(servers) do server_block(lines, x.s, paint, width, opts.verbose) end
    if #list_of(result.servers) == 0 and not result.error then
        add("")
        add("  no server was tested")
    end
    return table.concat(lines, "\n") .. "\n"
end

-- The sender matrix (result.senders, mxprobe.policy.senders) as a small
-- table: one row per MX address and one for the domain, one column per kind
-- of sender; then the dates from which a kind stops delivering.
local SENDER_KINDS = { { "opportunistic", "OPPORTUNISTIC" }, { "mta_sts", "MTA-STS" }, { "dane", "DANE" },
                       { "strict", "STRICT CLIENT" } }
local OUTCOME_TEXT = { authenticated = "encrypted+authenticated", encrypted = "encrypted", plaintext = "plaintext",
                       defers = "defers", no_delivery = "no delivery", inconclusive = "inconclusive" }
local OUTCOME_PAINT = { authenticated = "ok", encrypted = "ok", plaintext = "warning", defers = "critical",
                        no_delivery = "critical", inconclusive = "inconclusive" }
function M.senders_block(lines, result, paint, width)
    local m = type(result.senders) == "table" and result.senders or nil
    if not m or #list_of(m.mx) == 0 then return end
    lines[#lines + 1] = ""
    lines[#lines + 1] = paint("heading", "Senders")
    local head = { { "", "heading" } }
    for _, k in ipairs(SENDER_KINDS) do head[#head + 1] = { k[2], "heading" } end
    local rows = { head }
    local function row(label, cells)
        local r = { label }
        for _, k in ipairs(SENDER_KINDS) do
            local c = type(cells[k[1]]) == "table" and cells[k[1]] or {}
            local o = c.outcome or "inconclusive"
            local txt = OUTCOME_TEXT[o] or M.escape(o)
            if c.as == "opportunistic" then txt = txt .. " *" end
            r[#r + 1] = { txt, OUTCOME_PAINT[o] }
        end
        rows[#rows + 1] = r
    end
    for _, mx in ipairs(list_of(m.mx)) do
        for _, a in ipairs(list_of(mx.addresses)) do
            row(("%s %s"):format(M.escape(mx.host or "?"), M.escape(a.address or "?")), a)
        end
    end
    row("domain", type(m.domain) == "table" and m.domain or {})
    local table_lines = format_table(rows, "  ", paint, width)
    local too_wide = false
    for _, l in ipairs(table_lines) do
        if width and M.width((l:gsub("\27%[[%d;]*m", ""))) > width then too_wide = true end
    end
    if not too_wide then
        for _, l in ipairs(table_lines) do lines[#lines + 1] = l end
    else
        -- a narrow terminal: one wrapped line per row instead of the table
        for i = 2, #rows do
            local parts = {}
            for j, k in ipairs(SENDER_KINDS) do parts[#parts + 1] = k[2]:lower() .. " " .. rows[i][j + 1][1] end
            add_wrapped(lines, rows[i][1] .. ": " .. table.concat(parts, ", "), 2, width, paint)
        end
    end
    add_wrapped(lines, "(* no MTA-STS policy or DANE records in use: such senders act as opportunistic ones)", 2, width, paint)
    for _, k in ipairs(SENDER_KINDS) do
        local c = type(m.domain) == "table" and m.domain[k[1]] or nil
        local worth = { plaintext = true, defers = true, no_delivery = true, inconclusive = true }
        if type(c) == "table" and not c.as and worth[c.outcome] and c.reason then
            add_wrapped(lines, ("%s: %s (%s)"):format(k[2]:lower(), OUTCOME_TEXT[c.outcome] or M.escape(c.outcome),
                M.escape(c.reason)), 2, width, paint)
        end
    end
    -- one wording with the SENDERS_BREAK_SOON finding (policy/senders.lua)
    for _, b in ipairs(list_of(m.breaks)) do
        if type(b) == "table" then
            add_wrapped(lines, M.escape((senders.break_text(b):gsub("^%l", string.upper))), 2, width, paint)
        end
    end
end

--- One line summing up several results, e.g. "3 domains: 1 ok, 2 warning".
function M.summary(results)
    local counts, order = {}, { "ok", "warning", "critical", "inconclusive" }
    for _, r in ipairs(results) do
        local v = r.verdict or "inconclusive"
        counts[v] = (counts[v] or 0) + 1
        if not SEVERITY_RANK[v] then order[#order + 1] = v end
    end
    local parts = {}
    for _, v in ipairs(order) do
        if counts[v] then parts[#parts + 1] = ("%d %s"):format(counts[v], M.escape(v)); counts[v] = nil end
    end
    return ("%d %s: %s\n"):format(#results, #results == 1 and "target" or "targets", table.concat(parts, ", "))
end

return M
