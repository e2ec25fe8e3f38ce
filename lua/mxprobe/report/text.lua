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
-- with evidence, transcript) goes through M.escape (runtime.escape.for_display) before display, even
-- though the engine escapes already: a terminal must never receive a
-- control sequence from a remote server.
local vocab = require "mxprobe.runtime.vocab"
local escape = require "mxprobe.runtime.escape"

local M = {}

----------------------------------------------------------------- escaping

--- The project's display escaping (mxprobe.runtime.escape.for_display),
-- here too because every report module prints through it.
M.escape = escape.for_display

--- Display width of an (escaped) string: code points, not bytes.
function M.width(s)
    return utf8.len(s) or #s
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
-- colour is added); the last column is not padded.
local function format_table(rows, indent, paint)
    local widths = {}
    for _, row in ipairs(rows) do
        for c, cell in ipairs(row) do
            local text = type(cell) == "table" and cell[1] or cell
            local w = M.width(text)
            if not widths[c] or w > widths[c] then widths[c] = w end
        end
    end
    local lines = {}
    for _, row in ipairs(rows) do
        local parts = {}
        for c, cell in ipairs(row) do
            local text, style = cell, nil
            if type(cell) == "table" then text, style = cell[1], cell[2] end
            local pad = (c < #row) and (" "):rep(widths[c] - M.width(text) + 2) or ""
            parts[#parts + 1] = (style and paint(style, text) or text) .. pad
        end
        lines[#lines + 1] = indent .. table.concat(parts)
    end
    return lines, widths
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

-- Rows for a list of findings, and the hints to print under them.
local function findings_block(lines, findings, indent, paint)
    local rows = { { { "CHECK", "heading" }, { "SEVERITY", "heading" }, { "CODE", "heading" }, { "MESSAGE", "heading" } } }
    for _, f in ipairs(findings) do
        local sev = M.escape(f.severity or "?")
        rows[#rows + 1] = {
            M.escape(f.check or "-"),
            { sev, SEVERITY_RANK[sev] and sev or nil },
            M.escape(f.code or "?"),
            M.escape(f.message or ""),
        }
    end
    local tlines, widths = format_table(rows, indent, paint)
    -- hints go under the MESSAGE column of their finding
    local hint_indent = indent .. (" "):rep(widths[1] + widths[2] + widths[3] + 6)
    lines[#lines + 1] = tlines[1]
    for i, f in ipairs(findings) do
        lines[#lines + 1] = tlines[i + 1]
        if f.hint and f.hint ~= "" and f.severity ~= "ok" then
            lines[#lines + 1] = hint_indent .. paint("dim", "hint: " .. M.escape(f.hint))
        end
        -- what the policy did to it: the rule that added it or changed its severity
        local o = type(f.override) == "table" and f.override or nil
        if o and o.from then
            local by = o.rule and ("rule " .. M.rule_name(o.rule, o.source)) or
                       o.check and ("check " .. M.escape(o.check)) or
                       ("policy " .. M.escape(o.policy or "?") .. (o.source and (" (" .. M.escape(o.source) .. ")") or ""))
            lines[#lines + 1] = hint_indent .. paint("dim", ("severity: %s instead of %s, by %s%s"):format(
                M.escape(f.severity or "?"), M.escape(o.from), by, o.why and (": " .. M.escape(o.why)) or ""))
        elseif f.rule and f.code == "POLICY_RULE" then
            lines[#lines + 1] = hint_indent .. paint("dim", "rule " .. M.rule_name(f.rule, f.rule_source))
        end
        local ev = type(f.evidence) == "table" and f.evidence or {}
        if type(ev.traceback) == "string" then -- only there with -v
            for l in ev.traceback:gmatch("[^\n]+") do
                lines[#lines + 1] = hint_indent .. paint("dim", M.escape((l:gsub("\t", "  "))))
            end
        end
    end
end

-- The checks that did not run: "not run: banner (no connection)", one line
-- each, and those that only follow from another one on a line of their own
-- ("not run because of that: ehlo, starttls, ...").
local function not_run_block(lines, list, indent, paint)
    local follow = {}
    for _, n in ipairs(list) do
        if type(n) == "table" then
            if type(n.reason) == "string" and n.reason:match("^requires [%w_]+, which did not run$") then
                follow[#follow + 1] = M.escape(n.check or "?")
            else
                lines[#lines + 1] = indent .. paint("dim", ("not run: %s (%s)"):format(M.escape(n.check or "?"), M.escape(n.reason or "?")))
            end
        end
    end
    if #follow > 0 then
        lines[#lines + 1] = indent .. paint("dim", "not run, as they require one of those: " .. table.concat(follow, ", "))
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

local function facts_block(lines, facts, indent, paint)
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
    for _, l in ipairs(format_table(rows, indent .. "  ", paint)) do lines[#lines + 1] = l end
end

local function transcript_block(lines, transcript, indent, paint)
    if type(transcript) ~= "table" or #transcript == 0 then return end
    lines[#lines + 1] = indent .. paint("heading", "transcript")
    for _, e in ipairs(transcript) do
        local t = type(e.t) == "number" and ("%7.3f"):format(e.t) or "      ?"
        -- > sent, < received, * a note of the session (connected, new
        -- session), ! an error (timeout, reset)
        local dir = (e.dir == ">" or e.dir == "<" or e.dir == "*" or e.dir == "!") and e.dir or "?"
        lines[#lines + 1] = ("%s  %s %s %s"):format(indent, paint("dim", t), dir, M.escape(e.text or ""))
    end
end

------------------------------------------------------------------- report

-- "decided by ..." for the header, or nil.
local function decided_line(d)
    if type(d) ~= "table" or not (d.code or d.rule) then return nil end
    local what = M.escape(d.code or "?")
    if d.host or d.address then
        what = what .. " on " .. M.escape(d.host or d.address)
        if d.host and d.address then what = what .. " (" .. M.escape(d.address) .. ")" end
    end
    local o = type(d.override) == "table" and d.override or nil
    local s
    if d.rule and d.rule_source and not d.code then
        -- the policy's verdict function, without a finding
        s = "  decided by the policy's " .. M.escape(d.rule) .. " function (" .. M.escape(d.rule_source) .. ")"
        if d.reason then s = s .. ": " .. M.escape(d.reason) end
    elseif d.rule and d.rule_source then
        s = "  decided by rule " .. M.rule_name(d.rule, d.rule_source) .. ": " .. what
        if o and o.from and d.severity then
            s = s .. (" (%s instead of %s)"):format(M.escape(d.severity), M.escape(o.from))
        end
    elseif o and o.check and o.from then
        s = ("  decided by %s (%s instead of %s: check %s)"):format(what, M.escape(d.severity or "?"),
            M.escape(o.from), M.escape(o.check))
    elseif o and o.policy then
        s = ("  decided by %s (%s instead of %s: policy %s%s)"):format(what, M.escape(d.severity or "?"),
            M.escape(o.from or "?"), M.escape(o.policy), o.source and (", " .. M.escape(o.source)) or "")
    else
        s = "  decided by " .. what
        if d.rule then s = s .. " (rule: " .. M.escape(d.rule) .. ")" end
    end
    return s
end

local function header_block(lines, result, paint)
    local function add(s) lines[#lines + 1] = s end
    local name = M.escape(result.domain or result.host or "?")
    local verdict = M.escape(result.verdict or "inconclusive")
    add(paint("bold", name) .. "  " .. paint(SEVERITY_RANK[verdict] and verdict or "bold", verdict:upper()))
    local meta = {}
    if result.policy then meta[#meta + 1] = "policy " .. M.escape(result.policy) end
    if result.started then meta[#meta + 1] = "started " .. M.escape(result.started) end
    if result.duration_s then meta[#meta + 1] = "took " .. seconds(result.duration_s) end
    if #meta > 0 then add("  " .. table.concat(meta, ", ")) end
    local decided = decided_line(result.decided_by)
    if decided then add(decided) end
    if result.error then add("  error: " .. M.escape(result.error)) end
end

local function dns_block(lines, dns, paint)
    local function add(s) lines[#lines + 1] = s end
    add("")
    add(paint("heading", "DNS"))
    local mx = list_of(dns.mx)
    if #mx > 0 then
        local rows = { { { "PREF", "heading" }, { "MX", "heading" }, { "ADDRESSES", "heading" } } }
        local implicit = false
        for _, m in ipairs(mx) do
            local addrs = {}
            for _, a in ipairs(list_of(m.addresses)) do addrs[#addrs + 1] = M.escape(a) end
            local host = M.escape(m.host or "?")
            if m.implicit then host = host .. " (implicit)"; implicit = true end
            rows[#rows + 1] = { m.preference ~= nil and M.escape(m.preference) or "-", host,
                                #addrs > 0 and table.concat(addrs, ", ") or "(no addresses)" }
        end
        for _, l in ipairs(format_table(rows, "  ", paint)) do add(l) end
        if implicit then add("  (no MX record: mail goes to the domain's own addresses, RFC 5321 section 5.1)") end
    else
        add("  no MX hosts")
    end
    local df = list_of(dns.findings)
    if #df > 0 then add(""); findings_block(lines, df, "  ", paint) end
end

local function server_block(lines, s, paint, verbose)
    local function add(x) lines[#lines + 1] = x end
    add("")
    local head = { paint("bold", M.escape(s.host or "?")), endpoint(s.address, s.port) }
    if s.preference ~= nil then head[#head + 1] = "preference " .. M.escape(s.preference) end
    if s.score ~= nil then head[#head + 1] = "score " .. M.escape(s.score) end
    if s.grade ~= nil then head[#head + 1] = "grade " .. paint("bold", M.escape(s.grade)) end
    if s.score == nil and s.score_reason ~= nil then
        head[#head + 1] = "score - (" .. M.escape(s.score_reason) .. ")"
    end
    add(table.concat(head, "  "))
    local sf = list_of(s.findings)
    if #sf > 0 then
        findings_block(lines, sf, "  ", paint)
    else
        add("  no findings")
    end
    not_run_block(lines, list_of(s.not_run), "  ", paint)
    if verbose then
        facts_block(lines, s.facts, "  ", paint)
        transcript_block(lines, s.transcript, "  ", paint)
    end
end

--- The report of one result as a string (ending in a newline): the
-- header, DNS, the domain's findings (and checks not run), then each server.
function M.render(result, opts)
    opts = opts or {}
    local paint = painter(opts.color)
    local lines = {}
    header_block(lines, result, paint)
    if type(result.dns) == "table" then dns_block(lines, result.dns, paint) end
    local rf, rn = list_of(result.findings), list_of(result.not_run)
    if #rf > 0 or #rn > 0 then
        lines[#lines + 1] = ""
        lines[#lines + 1] = paint("heading", "Domain")
        if #rf > 0 then findings_block(lines, rf, "  ", paint) end
        not_run_block(lines, rn, "  ", paint)
    end
    local v = type(result.vantage) == "table" and result.vantage or nil
    if v and opts.verbose then lines[#lines + 1] = ""; lines[#lines + 1] = "  " .. M.vantage_line(v) end
    for _, s in ipairs(list_of(result.servers)) do server_block(lines, s, paint, opts.verbose) end
    if #list_of(result.servers) == 0 and not result.error then
        lines[#lines + 1] = ""
        lines[#lines + 1] = "  no server was tested"
    end
    M.senders_block(lines, result, paint)
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
function M.senders_block(lines, result, paint)
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
    for _, l in ipairs(format_table(rows, "  ", paint)) do lines[#lines + 1] = l end
    lines[#lines + 1] = "  (* no MTA-STS policy or DANE records in use: such senders act as opportunistic ones)"
    for _, k in ipairs(SENDER_KINDS) do
        local c = type(m.domain) == "table" and m.domain[k[1]] or nil
        local worth = { plaintext = true, defers = true, no_delivery = true, inconclusive = true }
        if type(c) == "table" and not c.as and worth[c.outcome] and c.reason then
            lines[#lines + 1] = ("  %s: %s (%s)"):format(k[2]:lower(), OUTCOME_TEXT[c.outcome] or M.escape(c.outcome), M.escape(c.reason))
        end
    end
    local labels = { opportunistic = "Opportunistic", mta_sts = "MTA-STS", dane = "DANE", strict = "Strict-client" }
    for _, b in ipairs(list_of(m.breaks)) do
        lines[#lines + 1] = ("  %s senders stop delivering to %s on %s (%s)"):format(labels[b.kind] or M.escape(b.kind),
            M.escape(b.host or "?"), M.escape(b.date or "?"), M.escape(b.reason or "?"))
    end
end

--- One line summing up several results, e.g. "3 domains: 1 ok, 2 warning".
function M.summary(results)
    local counts, order = {}, { table.unpack(vocab.VERDICTS) }
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
