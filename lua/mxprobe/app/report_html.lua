--- mxprobe.app.report_html: `mxprobe report AUDIT.jsonl -o report.html`,
-- one self-contained page for people (docs/audits.md, "A page to read").
--
--   local rh = require "mxprobe.app.report_html"
--   local agg = assert(rh.aggregate("results.jsonl"))
--   io.open("report.html", "w"):write(rh.render(agg, { title = "Portfolio" }))
--
-- The page has no outside reference at all (CSS, script and data inline,
-- no fonts, images or libraries from anywhere): it opens the same from a
-- mail attachment, an air-gapped laptop or a file share in ten years.  The
-- charts are SVG that this module writes (docs/design.md says why: no npm
-- library to vendor, pin and review for a dozen bar charts).
--
-- The JSON Lines input is streamed: one record is decoded at a time, and
-- what is kept are aggregates (counts by verdict, code, TLS version,
-- provider, certificate end day) and, for the per-domain table, one compact
-- row per domain (a short JSON array, its findings as indexes into a table
-- of distinct findings: domains behind one provider share theirs).
local common = require "mxprobe.app.cli.common"
local argparse = require "argparse"
local cjson = require "cjson"
local json = require "mxprobe.report.json"
local jsonpick = require("mxprobe.core").jsonpick

local M = {}

M.VERDICTS = { "ok", "warning", "critical", "inconclusive" }
local VERDICT_INDEX = { ok = 0, warning = 1, critical = 2, inconclusive = 3 }
M.TLS_ORDER = { "TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1", "no TLS", "not tested" }
local TLS_RANK = { ["TLSv1.3"] = 4, ["TLSv1.2"] = 3, ["TLSv1.1"] = 2, ["TLSv1"] = 1 }
M.SENDER_OUTCOMES = { "authenticated", "encrypted", "plaintext", "defers", "no_delivery", "inconclusive" }
M.HORIZON_DAYS = 90
M.TOP_CODES = 20
M.TOP_PROVIDERS = 50
M.MESSAGE_MAX = 240

----------------------------------------------------------------- helpers

--- Days since 1970-01-01 of a civil date (proleptic Gregorian; no time
-- zones: os.time would apply the local one).
local function days_from_civil(y, m, d)
    y = m <= 2 and y - 1 or y
    local era = (y >= 0 and y or y - 399) // 400
    local yoe = y - era * 400
    local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
    local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468
end

--- "2026-11-28T09:00:00Z" -> seconds since the epoch | nil
function M.parse_time(s)
    if type(s) ~= "string" then return nil end
    local y, mo, d, h, mi, se = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)")
    if not y then return nil end
    return days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400 + tonumber(h) * 3600
        + tonumber(mi) * 60 + tonumber(se)
end

--- The mail provider of an MX host: its last two labels ("mx1.mail.example.net"
-- -> "example.net"), the registrable-looking part without a suffix list.
function M.provider_of(host)
    if type(host) ~= "string" or host == "" then return "(no MX)" end
    if host:match("^[%d%.]+$") or host:find(":", 1, true) then return host end
    local a, b = host:match("([^%.]+)%.([^%.]+)$")
    if not a then return host end
    return a .. "." .. b
end

local function esc(s)
    return (tostring(s):gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }))
end
M.escape = esc

local function int(n)
    if type(n) ~= "number" then return nil end
    return math.tointeger(n) or math.floor(n + 0.5)
end

local function jstr(x) return cjson.encode(json.valid_utf8(x)) end
local function jnum(x) x = int(x); return x and ("%d"):format(x) or "null" end

-- The index (0-based, for the script) of a repeating string in the page's
-- list `which`; raw: already JSON.
local function intern(a, which, str, raw)
    local t = a.interned[which]
    local i = t[str]
    if not i then
        local list = a.lists[which]
        list[#list + 1] = raw and str or jstr(str)
        i = #list - 1
        t[str] = i
    end
    return i
end

local TLS_INDEX = {}
for i, t in ipairs(M.TLS_ORDER) do TLS_INDEX[t] = i - 1 end

----------------------------------------------------------------- aggregation

function M.new_agg()
    local a = {
        records = 0, unreadable = 0, duplicates = 0, partial = 0, errors = 0,
        verdicts = {}, codes = {}, tls = {}, providers = {}, certs = {}, expiry_days = {}, expired = 0,
        cert_count = 0, first = nil, last = nil, provenance = nil, senders = nil,
        finding_index = {}, findings = {}, seen = {},
        -- the domain table, by column (one array per column; the page's
        -- script sorts and filters indexes into them); strings that repeat
        -- (grades, providers, code sets, finding lists) are interned: a
        -- column holds an index into the list of distinct ones
        col = { d = {}, v = {}, g = {}, s = {}, t = {}, c = {}, p = {}, m = {}, k = {}, f = {} }, errors_at = {},
        interned = { g = {}, p = {}, k = {}, f = {} }, lists = { g = {}, p = {}, k = {}, f = {} },
    }
    for _, v in ipairs(M.VERDICTS) do a.verdicts[v] = 0 end
    for _, t in ipairs(M.TLS_ORDER) do a.tls[t] = 0 end
    return a
end

-- The findings of one list (a record's, or one server's: `where`) as
-- indexes into the page's table of distinct findings ({ code, severity,
-- where, message }), appended to refs; codes above ok into codes/code_list
-- (once per domain).  The index is a tree where -> code -> severity ->
-- message: no key string is built per finding (this runs for every
-- finding of every record, some 40 per record).
local function take(a, list, where, refs, codes, code_list)
    local t = a.finding_index
    local n1 = t[where]
    if not n1 then n1 = {}; t[where] = n1 end
    local max, findings = M.MESSAGE_MAX, a.findings
    for k = 1, #list do
        local f = list[k]
        local code = type(f) == "table" and f.code
        if type(code) == "string" then
            local sev = f.severity
            if type(sev) ~= "string" then sev = "info" end
            -- the message of a passed check says what passed ("Port 25 open
            -- (0.012 s)"): timings make it unique per server, and the code
            -- says enough
            local msg = ""
            if sev ~= "ok" then
                msg = f.message
                if type(msg) ~= "string" then msg = ""
                elseif #msg > max then msg = msg:sub(1, max) .. "..." end
            end
            local n2 = n1[code]; if not n2 then n2 = {}; n1[code] = n2 end
            local n3 = n2[sev]; if not n3 then n3 = {}; n2[sev] = n3 end
            local i = n3[msg]
            if not i then
                findings[#findings + 1] = { code, sev, where, msg }
                i = #findings - 1 -- 0-based, for the script
                n3[msg] = i
            end
            refs[#refs + 1] = i
            if f.severity ~= "ok" and not codes[code] then
                codes[code] = true
                code_list[#code_list + 1] = code
            end
        end
    end
end

-- The sender matrix (policy/senders.lua, docs/json-schema.md "Senders"):
-- rows are the kinds of sender in the records' `kinds` order, columns the
-- outcomes, cells the domains where that kind gets that outcome
-- (`senders.domain[kind].outcome`).
local function add_senders(a, senders)
    if type(senders) ~= "table" or type(senders.domain) ~= "table" then return end
    a.senders = a.senders or { rows = {}, order = {}, outcomes = {} }
    local m = a.senders
    local kinds = senders.kinds
    if type(kinds) ~= "table" then
        kinds = {}
        for k in pairs(senders.domain) do if type(k) == "string" then kinds[#kinds + 1] = k end end
        table.sort(kinds)
    end
    for _, kind in ipairs(kinds) do
        local cell = senders.domain[kind]
        if type(kind) == "string" and type(cell) == "table" and type(cell.outcome) == "string" then
            m.outcomes[cell.outcome] = true
            local row = m.rows[kind]
            if not row then row = {}; m.rows[kind] = row; m.order[#m.order + 1] = kind end
            row[cell.outcome] = (row[cell.outcome] or 0) + 1
        end
    end
end

-- The servers of a record: the weakest one's score and grade, the weakest
-- TLS version ("no TLS", "not tested"), the soonest certificate end; every
-- distinct certificate is counted for the timeline.
local function weakest_server(a, r)
    local servers = type(r.servers) == "table" and r.servers or {}
    local min_score, grade, weakest, cert_days
    local tested = 0
    for _, s in ipairs(servers) do
        if type(s) == "table" then
            if type(s.score) == "number" and (not min_score or s.score < min_score) then
                min_score, grade = s.score, s.grade
            end
            local facts = type(s.facts) == "table" and s.facts or {}
            -- only a server that answered says anything about TLS: one that
            -- timed out or refused is not a server "without TLS"
            local connect = type(facts.connect) == "table" and facts.connect or {}
            if connect.state == "connected" or facts.banner ~= nil then
                tested = tested + 1
                local st = type(facts.starttls) == "table" and facts.starttls or {}
                local rank = TLS_RANK[st.version] or 0
                if not weakest or rank < weakest then weakest = rank end
            end
            local c = type(facts.certificate) == "table" and facts.certificate or nil
            if c and type(c.not_after) == "number" then
                local key = type(c.fingerprint_sha256) == "string" and c.fingerprint_sha256
                    or (tostring(s.host) .. "|" .. c.not_after)
                if not a.certs[key] then
                    a.certs[key] = c.not_after
                    a.cert_count = a.cert_count + 1
                end
                if type(c.days_left) == "number" and (not cert_days or c.days_left < cert_days) then
                    cert_days = c.days_left
                end
            end
        end
    end
    local tls
    if tested == 0 then tls = "not tested"
    elseif weakest == 0 then tls = "no TLS"
    else
        for name, rank in pairs(TLS_RANK) do if rank == weakest then tls = name end end
    end
    return min_score, grade, tls, cert_days

end

-- The provider of a record (the suffix of its most preferred MX host),
-- counted with the record's verdict.  @return provider, number of MX hosts
local function add_provider(a, r, v, tls)
    local dns = type(r.dns) == "table" and r.dns or {}
    local mx = type(dns.mx) == "table" and dns.mx or {}
    local best
    for _, m in ipairs(mx) do
        if type(m) == "table" and type(m.host) == "string" then
            if not best or (tonumber(m.preference) or 0) < (tonumber(best.preference) or 0) then best = m end
        end
    end
    local provider = M.provider_of(best and best.host)
    local p = a.providers[provider]
    if not p then
        p = { domains = 0, ok = 0, warning = 0, critical = 0, inconclusive = 0, no_tls = 0 }
        a.providers[provider] = p
    end
    p.domains = p.domains + 1
    p[v] = p[v] + 1
    if tls == "no TLS" then p.no_tls = p.no_tls + 1 end

    return provider, #mx
end

--- Count one record into the aggregates and keep its compact row.
function M.add(a, r)
    if type(r) ~= "table" or type(r.domain) ~= "string" then
        a.unreadable = a.unreadable + 1
        return
    end
    if a.seen[r.domain] then a.duplicates = a.duplicates + 1; return end
    a.seen[r.domain] = true
    a.records = a.records + 1
    local v = VERDICT_INDEX[r.verdict] and r.verdict or "inconclusive"
    a.verdicts[v] = a.verdicts[v] + 1
    if r.error then a.errors = a.errors + 1 end
    local t = M.parse_time(r.started)
    if t then
        if not a.first or t < a.first then a.first = t end
        if not a.last or t > a.last then a.last = t end
    end
    if a.provenance == nil and type(r.provenance) == "table" then a.provenance = r.provenance end
    if r.senders ~= nil then add_senders(a, r.senders) end

    -- codes (severity above ok, each once per domain) and the findings
    local codes, code_list, refs = {}, {}, {}
    local dns = type(r.dns) == "table" and r.dns or {}
    if type(dns.findings) == "table" then take(a, dns.findings, "", refs, codes, code_list) end
    if type(r.findings) == "table" then take(a, r.findings, "", refs, codes, code_list) end
    for _, srv in ipairs(type(r.servers) == "table" and r.servers or {}) do
        if type(srv) == "table" and type(srv.findings) == "table" then
            take(a, srv.findings, tostring(srv.host or "?") .. (srv.address and (" " .. tostring(srv.address)) or ""),
                 refs, codes, code_list)
        end
    end
    table.sort(code_list)
    for _, c in ipairs(code_list) do a.codes[c] = (a.codes[c] or 0) + 1 end

    -- the weakest server: grade, score, TLS version; certificates
    local min_score, grade, tls, cert_days = weakest_server(a, r)
    a.tls[tls] = a.tls[tls] + 1
    local provider, n_mx = add_provider(a, r, v, tls)

    -- the domain table's columns
    local col, n = a.col, a.records
    col.d[n], col.v[n], col.g[n] = jstr(r.domain), VERDICT_INDEX[v], intern(a, "g", type(grade) == "string" and grade or "")
    col.s[n], col.t[n], col.c[n] = jnum(min_score), TLS_INDEX[tls], jnum(cert_days)
    col.p[n], col.m[n] = intern(a, "p", provider), n_mx
    col.k[n], col.f[n] = intern(a, "k", table.concat(code_list, " ")), intern(a, "f", "[" .. table.concat(refs, ",") .. "]", true)
    if type(r.error) == "string" then a.errors_at[#a.errors_at + 1] = ('"%d":%s'):format(n - 1, jstr(r.error)) end
end

-- What the page needs of a record, decoded by core.jsonpick (the rest of
-- a record, most of it, is checked and skipped: decoding 14 kB records
-- whole made generation 15 times slower).  The provenance is read from the
-- first record that has one.
local FINDING = { code = true, severity = true, message = true }
local WANT = {
    domain = true, verdict = true, error = true, started = true,
    senders = { kinds = true, domain = { ["*"] = { outcome = true } } },
    dns = { mx = { host = true, preference = true }, findings = FINDING },
    findings = FINDING,
    servers = {
        host = true, address = true, score = true, grade = true, findings = FINDING,
        facts = { connect = { state = true }, banner = {}, starttls = { version = true },
                  certificate = { not_after = true, days_left = true, fingerprint_sha256 = true } },
    },
}
local PICK = jsonpick.compile(WANT)
WANT.provenance = true
local PICK_FIRST = jsonpick.compile(WANT)
M.WANT = WANT

-- Each complete line of f, as fn(text, i, j): the line is text:sub(i, j),
-- without its newline; read in blocks (reading by line costs more than the
-- rest of the report).  A last line without a newline is a writer killed
-- mid-record (or still writing), and is no record: partial() is called
-- when it is not blank.
M.BLOCK = 1 << 22
local function each_line(f, fn, partial)
    local held = {} -- the start of a line longer than what was read so far
    while true do
        local block = f:read(M.BLOCK)
        if not block then break end
        local p = 1
        local q = block:find("\n", 1, true)
        if #held > 0 then
            if not q then
                held[#held + 1] = block
                goto next_block
            end
            held[#held + 1] = block:sub(1, q)
            local line = table.concat(held)
            held = {}
            fn(line, 1, #line - 1)
            p = q + 1
            q = block:find("\n", p, true)
        end
        while q do
            fn(block, p, q - 1)
            p = q + 1
            q = block:find("\n", p, true)
        end
        if p <= #block then held[1] = block:sub(p) end
        ::next_block::
    end
    if #held > 0 and table.concat(held):find("%S") then partial() end
end

-- Every record of the files into a.  @return nil | what could not be read
local function read_all(a, paths)
    for _, path in ipairs(paths) do
        local f, err
        if path == "-" then f = io.stdin else f, err = io.open(path, "rb") end
        if not f then return ("cannot read '%s': %s"):format(path, (tostring(err):gsub("^[^:]*: ", ""))) end
        each_line(f, function(text, i, j)
            local first = text:find("%S", i)
            if not first or first > j then return end -- a blank line
            local r = (a.provenance == nil and PICK_FIRST or PICK):pick(text, i, j, cjson.null)
            if r == nil then
                -- not strict JSON, or beyond what the picker takes: cjson decides
                local ok
                ok, r = pcall(cjson.decode, text:sub(i, j))
                if not ok then a.unreadable = a.unreadable + 1; return end
            end
            M.add(a, r)
        end, function() a.partial = a.partial + 1 end)
        if path ~= "-" then f:close() end
    end
end

--- Stream JSON Lines files into the aggregates: a path, "-" for stdin,
-- or a list of them (the parts of a sharded audit; a domain's first
-- record counts).  @return aggregates | nil, detail
function M.aggregate(paths)
    if type(paths) ~= "table" then paths = { paths } end
    local a = M.new_agg()
    -- Each record leaves its picked tables behind at once (some 40 small
    -- tables and strings): with the collector's default pause (200 %) a
    -- third of the time went to collecting them; 400 % trades some memory
    -- (bench/report prints the peak) for that time.
    collectgarbage("incremental", 400, 0, 0)
    local ok, err = pcall(read_all, a, paths)
    collectgarbage("incremental", 200, 0, 0)
    if not ok then error(err, 0) end
    if err then return nil, err end
    return M.finish(a, table.concat(paths, " "))
end

--- The aggregates after the last record: certificate ends by day.
-- (M.new_agg, M.add, M.finish: what aggregate does, for a caller that
-- decodes records itself; the spec compares the two ways.)
function M.finish(a, file)
    a.file = file
    -- certificate ends by day, from the audit's time
    local ref = a.last or os.time()
    a.reference = ref
    local days = {}
    for i = 0, M.HORIZON_DAYS - 1 do days[i] = 0 end
    local within = 0
    for _, not_after in pairs(a.certs) do
        local d = (not_after - ref) / 86400
        if d < 0 then a.expired = a.expired + 1
        elseif d < M.HORIZON_DAYS then
            local i = math.floor(d)
            days[i] = days[i] + 1
            within = within + 1
        end
    end
    a.expiry_days, a.expiring = days, within
    a.certs, a.finding_index, a.seen, a.interned = nil, nil, nil, nil -- not needed for the page
    return a
end

----------------------------------------------------------------- SVG charts

local COLORS = { ok = "#2e7d32", warning = "#e0a800", critical = "#c62828", inconclusive = "#757575",
                 ["TLSv1.3"] = "#2e7d32", ["TLSv1.2"] = "#7cb342", ["TLSv1.1"] = "#e0a800", ["TLSv1"] = "#ef6c00",
                 ["no TLS"] = "#c62828", ["not tested"] = "#757575" }

--- A horizontal bar chart: items { { label, value, color } }.
function M.bars_svg(items, opts)
    opts = opts or {}
    local width, label_w, row_h = opts.width or 560, opts.label_width or 200, 22
    local max = 0
    for _, it in ipairs(items) do if it[2] > max then max = it[2] end end
    local h = #items * row_h + 8
    local bar_w = width - label_w - 70
    local out = { ('<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="%s" width="%d" height="%d" viewBox="0 0 %d %d">')
        :format(esc(opts.title or "chart"), width, h, width, h) }
    for i, it in ipairs(items) do
        local y = (i - 1) * row_h + 4
        local w = max > 0 and math.max(it[2] > 0 and 1 or 0, math.floor(bar_w * it[2] / max + 0.5)) or 0
        out[#out + 1] = ('<text x="%d" y="%d" text-anchor="end" class="lbl">%s</text>'):format(label_w - 6, y + 15, esc(it[1]))
        out[#out + 1] = ('<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s: %d</title></rect>')
            :format(label_w, y + 2, w, row_h - 6, it[3] or "#1565c0", esc(it[1]), it[2])
        out[#out + 1] = ('<text x="%d" y="%d" class="val">%d</text>'):format(label_w + w + 6, y + 15, it[2])
    end
    out[#out + 1] = "</svg>"
    return table.concat(out)
end

--- The certificate end timeline: one bar per day of the next 90.
function M.timeline_svg(days, ref)
    local n = M.HORIZON_DAYS
    local width, height, left, bottom, top = 720, 180, 36, 36, 10
    local plot_w, plot_h = width - left - 10, height - bottom - top
    local max = 0
    for i = 0, n - 1 do if days[i] > max then max = days[i] end end
    local bw = plot_w / n
    local out = { ('<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="certificates ending per day, next %d days" width="%d" height="%d" viewBox="0 0 %d %d">')
        :format(n, width, height, width, height) }
    out[#out + 1] = ('<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/>'):format(left, top + plot_h, left + plot_w, top + plot_h)
    out[#out + 1] = ('<text x="%d" y="%d" text-anchor="end" class="lbl">%d</text>'):format(left - 4, top + 10, max)
    out[#out + 1] = ('<text x="%d" y="%d" text-anchor="end" class="lbl">0</text>'):format(left - 4, top + plot_h)
    for i = 0, n - 1 do
        local v = days[i]
        if v > 0 then
            local h = math.max(2, math.floor(plot_h * v / max + 0.5))
            local color = i < 14 and COLORS.critical or (i < 30 and COLORS.warning or "#1565c0")
            out[#out + 1] = ('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %d</title></rect>')
                :format(left + i * bw + 0.5, top + plot_h - h, math.max(1, bw - 1), h, color,
                        os.date("!%Y-%m-%d", ref + i * 86400), v)
        end
        if i % 14 == 0 then
            out[#out + 1] = ('<text x="%.1f" y="%d" class="lbl">%s</text>'):format(left + i * bw, top + plot_h + 16,
                os.date("!%b %d", ref + i * 86400))
        end
    end
    out[#out + 1] = ('<text x="%d" y="%d" class="lbl">days from the audit (%s)</text>'):format(left, height - 4,
        os.date("!%Y-%m-%d", ref))
    out[#out + 1] = "</svg>"
    return table.concat(out)
end

----------------------------------------------------------------- the page

local CSS = [[
:root{--ok:#2e7d32;--warning:#e0a800;--critical:#c62828;--inconclusive:#757575;--fg:#1b1b1b;--muted:#5f6368;--line:#dadce0}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);margin:0;background:#f6f7f9}
header{background:#1f2937;color:#fff;padding:16px 24px}header h1{margin:0 0 4px;font-size:22px}header p{margin:0;color:#cbd5e1;font-size:13px}
main{padding:16px 24px;max-width:1400px}section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:14px 18px;margin:0 0 16px}
h2{font-size:17px;margin:0 0 10px}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:16px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid var(--line);border-radius:6px;padding:10px 16px;min-width:130px;background:#fff}
.card .n{font-size:26px;font-weight:600}.card .l{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card.ok .n{color:var(--ok)}.card.warning .n{color:#a67c00}.card.critical .n{color:var(--critical)}.card.inconclusive .n{color:var(--inconclusive)}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#f1f3f4;font-weight:600;white-space:nowrap}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.chart text{font-size:12px;fill:var(--fg)}.chart .val{fill:var(--muted)}.chart .axis{stroke:#9aa0a6}
.v{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px}.v.ok{background:var(--ok)}.v.warning{background:var(--warning);color:#222}
.v.critical{background:var(--critical)}.v.inconclusive{background:var(--inconclusive)}
#domains th{cursor:pointer;user-select:none}#domains th.sorted-asc::after{content:" \25B2"}#domains th.sorted-desc::after{content:" \25BC"}
.controls{display:flex;gap:10px;align-items:center;flex-wrap:wrap;margin-bottom:8px}.controls input{padding:5px 8px;min-width:280px}
.pager button{margin:0 2px}.muted{color:var(--muted)}code{font-size:12px}.codes{font-size:12px;color:var(--muted)}
#detail{position:fixed;top:0;right:0;width:min(760px,96vw);height:100vh;overflow:auto;margin:0;z-index:10;border-left:4px solid #1565c0;box-shadow:-4px 0 16px rgba(0,0,0,.2);border-radius:0}#detail[hidden]{display:none}#detail .close{float:right;font-size:20px;text-decoration:none}.sev-ok{color:var(--ok)}.sev-warning{color:#a67c00}.sev-critical{color:var(--critical)}
.sev-inconclusive,.sev-error{color:var(--inconclusive)}.sev-info{color:var(--muted)}.side{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}
]]

-- The script: the domain table (sort, filter, pages), each domain's
-- findings (#d/NAME), and counts computed from the embedded rows (the
-- spec compares them with the JSON Lines).
local SCRIPT = [==[
(function(){
"use strict";
var t0=performance.now();
var D=JSON.parse(document.getElementById("mx-data").textContent);
/* the domains by column: row i is D.d[i], D.v[i], ...; G, P, K, FL, T are
   the distinct grades, providers, code sets, finding lists, TLS versions */
var V=["ok","warning","critical","inconclusive"],F=D.findings,N=D.d.length,PAGE=100;
var state={q:"",v:"",key:1,dir:-1,page:0},view=[];
var COLS=[[0,"Domain"],[1,"Verdict"],[2,"Grade"],[3,"Score"],[4,"TLS"],[5,"Cert days"],[6,"Provider"],[7,"MX"],[8,"Codes"]];
var RANK=[0,1,3,2];
var PL=D.P.map(function(x){return x.toLowerCase();}),KL=D.K.map(function(x){return x.toLowerCase();});
var KS=KL.map(function(x){return " "+x+" ";}),dl=null;
function el(t,a,txt){var e=document.createElement(t);if(a)for(var k in a)e.setAttribute(k,a[k]);if(txt!=null)e.textContent=txt;return e;}
/* the value row i sorts by in column k (null last when ascending cert days) */
function sortval(k){switch(k){
  case 0:return D.d;case 1:return D.v.map(function(x){return RANK[x];});
  case 2:return D.g.map(function(x){return D.G[x];});case 3:return D.s.map(function(x){return x===null?-1:x;});
  case 4:return D.t.map(function(x){return D.T[x];});case 5:return D.c.map(function(x){return x===null?1e9:x;});
  case 6:return D.p.map(function(x){return D.P[x];});case 7:return D.m;
  default:return D.k.map(function(x){return D.K[x];});}}
function text(i){if(!dl)dl=D.d.map(function(x){return x.toLowerCase();});
  return dl[i]+" "+PL[D.p[i]]+" "+KL[D.k[i]]+" "+D.T[D.t[i]].toLowerCase();}
function matcher(){var vf=state.v===""?-1:+state.v,terms=state.q.toLowerCase().split(/\s+/).filter(function(t){return t;});
  return function(i){if(vf>=0&&D.v[i]!==vf)return false;
    for(var j=0;j<terms.length;j++){var t=terms[j];
      if(t.indexOf("code:")===0){if(KS[D.k[i]].indexOf(" "+t.slice(5)+" ")<0)return false;}
      else if(t.indexOf("provider:")===0){if(PL[D.p[i]]!==t.slice(9))return false;}
      else if(text(i).indexOf(t)<0)return false;}
    return true;};}
function refresh(){var m=matcher();view=[];for(var i=0;i<N;i++)if(m(i))view.push(i);
  var sv=sortval(state.key),dir=state.dir,d=D.d;
  view.sort(function(a,b){var x=sv[a],y=sv[b];if(x<y)return -dir;if(x>y)return dir;return d[a]<d[b]?-1:d[a]>d[b]?1:0;});
  state.page=Math.min(state.page,Math.max(0,Math.ceil(view.length/PAGE)-1));draw();}
function draw(){var tb=document.querySelector("#domains tbody");tb.textContent="";
  var start=state.page*PAGE,end=Math.min(view.length,start+PAGE),frag=document.createDocumentFragment();
  for(var n=start;n<end;n++){var i=view[n],tr=el("tr"),s=D.s[i],c=D.c[i],e=D.e[i];
    var a=el("a",{href:"#d/"+encodeURIComponent(D.d[i])},D.d[i]);var td=el("td");td.appendChild(a);tr.appendChild(td);
    td=el("td");td.appendChild(el("span",{"class":"v "+V[D.v[i]]},V[D.v[i]]));tr.appendChild(td);
    tr.appendChild(el("td",null,D.G[D.g[i]]));tr.appendChild(el("td",{"class":"num"},s===null?"":s));
    tr.appendChild(el("td",null,D.T[D.t[i]]));tr.appendChild(el("td",{"class":"num"},c===null?"":c));
    tr.appendChild(el("td",null,D.P[D.p[i]]));tr.appendChild(el("td",{"class":"num"},D.m[i]));
    tr.appendChild(el("td",{"class":"codes"},e!=null?("error: "+e):D.K[D.k[i]]));frag.appendChild(tr);}
  tb.appendChild(frag);
  document.getElementById("shown").textContent=view.length?(start+1)+"\u2013"+end:"0";
  document.getElementById("matching").textContent=view.length;
  document.getElementById("page").textContent=(state.page+1)+" / "+Math.max(1,Math.ceil(view.length/PAGE));
  var ths=document.querySelectorAll("#domains th");for(var j=0;j<ths.length;j++){ths[j].className=(j===state.key?(state.dir>0?"sorted-asc":"sorted-desc"):"")+(j===3||j===5||j===7?" num":"");}}
/* #q/TEXT: filtered; #t/KEY/DIR/PAGE: sorted by a column, at a page (1-based) */
function route(){var q=/^#q\/(.*)$/.exec(location.hash),t=/^#t\/(\d)\/(-?1)\/(\d+)$/.exec(location.hash);
  if(q){var box=document.getElementById("q");box.value=decodeURIComponent(q[1]);state.q=box.value.trim();state.page=0;refresh();}
  if(t){state.key=+t[1];state.dir=+t[2];state.page=Math.max(0,+t[3]-1);refresh();}
  detail();}
function detail(){var m=/^#d\/(.+)$/.exec(location.hash),box=document.getElementById("detail");
  if(!m){box.hidden=true;return;}var name=decodeURIComponent(m[1]),i=D.d.indexOf(name);
  box.hidden=false;box.textContent="";
  box.appendChild(el("a",{href:"#","class":"close","aria-label":"close"},"\u00d7"));
  if(i<0){box.appendChild(el("h2",null,"No record for "+name));return;}
  var h=el("h2",null,D.d[i]+" ");h.appendChild(el("span",{"class":"v "+V[D.v[i]]},V[D.v[i]]));box.appendChild(h);
  if(D.e[i]!=null)box.appendChild(el("p",null,"error: "+D.e[i]));
  var t=el("table",{id:"detail-findings"}),hd=el("tr");["Code","Severity","Server","Message"].forEach(function(x){hd.appendChild(el("th",null,x));});t.appendChild(hd);
  var refs=D.FL[D.f[i]];
  refs.forEach(function(ix){var f=F[ix],tr=el("tr",{"class":"finding"});var c=el("td");c.appendChild(el("code",null,f[0]));tr.appendChild(c);
    tr.appendChild(el("td",{"class":"sev-"+f[1]},f[1]));tr.appendChild(el("td",null,f[2]));tr.appendChild(el("td",null,f[3]));t.appendChild(tr);});
  box.appendChild(t);box.appendChild(el("p",{"class":"muted"},refs.length+" findings"));box.scrollTop=0;}
var head=document.querySelector("#domains thead tr");
COLS.forEach(function(c){var th=el("th",{"data-key":c[0]},c[1]);th.addEventListener("click",function(){
  if(state.key===c[0])state.dir=-state.dir;else{state.key=c[0];state.dir=c[0]===0||c[0]===6?1:-1;}refresh();});head.appendChild(th);});
document.getElementById("q").addEventListener("input",function(e){state.q=e.target.value.trim();state.page=0;refresh();});
document.getElementById("vf").addEventListener("change",function(e){state.v=e.target.value;state.page=0;refresh();});
document.getElementById("prev").addEventListener("click",function(){if(state.page>0){state.page--;draw();}});
document.getElementById("next").addEventListener("click",function(){if((state.page+1)*PAGE<view.length){state.page++;draw();}});
document.addEventListener("click",function(e){var a=e.target.closest&&e.target.closest("a[data-filter]");if(a){e.preventDefault();
  var q=document.getElementById("q");q.value=a.getAttribute("data-filter");state.q=q.value;state.page=0;refresh();
  document.getElementById("domains-section").scrollIntoView();}});
window.addEventListener("hashchange",route);
/* counts from the embedded columns, for the reader and for the spec that
   compares them with the JSON Lines */
var counts=[0,0,0,0];for(var i=0;i<N;i++)counts[D.v[i]]++;
V.forEach(function(v,i){document.getElementById("js-"+v).textContent=counts[i];});
document.getElementById("js-total").textContent=N;
if(!/^#t\//.test(location.hash))refresh();route();
document.body.setAttribute("data-render-ms",Math.round(performance.now()-t0));
document.body.setAttribute("data-ready","1");
})();
]==]

local function num_cell(n) return ('<td class="num">%d</td>'):format(n) end

local function provenance_text(p)
    if type(p) ~= "table" then return "" end
    local parts = {}
    if p.mxprobe then parts[#parts + 1] = "mxprobe " .. tostring(p.mxprobe) end
    local pol = type(p.policy) == "table" and p.policy or {}
    if pol.name then
        parts[#parts + 1] = "policy " .. tostring(pol.name)
            .. (type(pol.sha256) == "string" and (" (sha256 " .. pol.sha256:sub(1, 12) .. "…)") or "")
    end
    if p.ehlo then parts[#parts + 1] = "EHLO " .. tostring(p.ehlo) end
    local ca = type(p.ca_file) == "table" and p.ca_file or nil
    if ca and type(ca.sha256) == "string" then parts[#parts + 1] = "CA file sha256 " .. ca.sha256:sub(1, 12) .. "…" end
    if p.vantage ~= nil and p.vantage ~= cjson.null then
        parts[#parts + 1] = "vantage " .. (type(p.vantage) == "table" and json.encode(p.vantage) or tostring(p.vantage))
    end
    return table.concat(parts, " · ")
end

local function sorted_by_count(t)
    local l = {}
    for k, n in pairs(t) do l[#l + 1] = { k, n } end
    table.sort(l, function(x, y) if x[2] ~= y[2] then return x[2] > y[2] end return x[1] < y[1] end)
    return l
end

-- The verdict cards and chart, and notes on what was not counted.
local function section_verdicts(a, add)
    -- verdicts: the numbers the generator counted (data-count) and the ones
    -- the script counts from the rows (js-*)
    add('<section id="summary"><h2>Verdicts</h2><div class="side"><div class="cards">')
    add(('<div class="card"><div class="n" id="count-total" data-count="%d">%d</div><div class="l">domains</div></div>'):format(a.records, a.records))
    for _, v in ipairs(M.VERDICTS) do
        add(('<div class="card %s"><div class="n" id="count-%s" data-count="%d">%d</div><div class="l">%s</div></div>'):format(
            v, v, a.verdicts[v], a.verdicts[v], v))
    end
    add("</div>")
    local vitems = {}
    for _, v in ipairs(M.VERDICTS) do vitems[#vitems + 1] = { v, a.verdicts[v], COLORS[v] } end
    add(M.bars_svg(vitems, { title = "domains by verdict", width = 480, label_width = 110 }))
    add("</div>")
    local notes = {}
    if a.errors > 0 then notes[#notes + 1] = ("%d records with an error (not a domain name, or an internal error)"):format(a.errors) end
    if a.duplicates > 0 then notes[#notes + 1] = ("%d domains recorded twice (the first record counts)"):format(a.duplicates) end
    if a.unreadable > 0 then notes[#notes + 1] = ("%d lines that are not records"):format(a.unreadable) end
    if a.partial > 0 then notes[#notes + 1] = ("%d last lines cut short (an audit still running, or killed)"):format(a.partial) end
    if #notes > 0 then add('<p class="muted" id="notes">' .. esc(table.concat(notes, "; ")) .. "</p>") end
    add("</section>")

end

-- The most frequent codes and the TLS versions, side by side.
local function section_codes_tls(a, add)
    add('<div class="grid">')
    -- codes
    add('<section id="codes"><h2>Most frequent codes</h2><p class="muted">Domains with the code at a severity above ok. Click a code to list its domains.</p>')
    local codes = sorted_by_count(a.codes)
    local citems = {}
    for i = 1, math.min(#codes, 12) do citems[i] = { codes[i][1], codes[i][2], "#1565c0" } end
    if #citems > 0 then add(M.bars_svg(citems, { title = "most frequent codes", label_width = 230 })) end
    add('<table id="codes-table"><tr><th>Code</th><th class="num">Domains</th></tr>')
    for i = 1, math.min(#codes, M.TOP_CODES) do
        add(('<tr><td><a href="#domains-section" data-filter="code:%s"><code>%s</code></a></td><td class="num" data-code="%s">%d</td></tr>')
            :format(esc(codes[i][1]:lower()), esc(codes[i][1]), esc(codes[i][1]), codes[i][2]))
    end
    if #codes > M.TOP_CODES then add(('<tr><td class="muted">%d more codes</td><td></td></tr>'):format(#codes - M.TOP_CODES)) end
    if #codes == 0 then add('<tr><td class="muted" colspan="2">no code above ok</td></tr>') end
    add("</table></section>")

    -- TLS
    add('<section id="tls"><h2>TLS versions</h2><p class="muted">Domains by the weakest TLS version among the servers that answered; "no TLS": one of them without STARTTLS or whose handshake failed; "not tested": no server answered (or there is none).</p>')
    local titems = {}
    for _, t in ipairs(M.TLS_ORDER) do titems[#titems + 1] = { t, a.tls[t], COLORS[t] } end
    add(M.bars_svg(titems, { title = "domains by weakest TLS version", label_width = 110 }))
    add('<table id="tls-table"><tr><th>Version</th><th class="num">Domains</th></tr>')
    for _, t in ipairs(M.TLS_ORDER) do add(('<tr><td>%s</td><td class="num" data-tls="%s">%d</td></tr>'):format(t, t, a.tls[t])) end
    add("</table></section>")
    add("</div>")

end

-- Certificates ending over the next HORIZON_DAYS days.
local function section_expiry(a, add)
    -- certificates
    add(('<section id="expiry"><h2>Certificate expiry, next %d days</h2>'):format(M.HORIZON_DAYS))
    add(('<p>%s distinct certificates seen; <strong id="cert-expiring" data-count="%d">%d</strong> end within %d days of the audit, <strong id="cert-expired" data-count="%d">%d</strong> have already ended.</p>')
        :format(a.cert_count, a.expiring, a.expiring, M.HORIZON_DAYS, a.expired, a.expired))
    add(M.timeline_svg(a.expiry_days, a.reference))
    add("</section>")

end

-- Domains by mail provider.
local function section_providers(a, add)
    -- providers
    add('<section id="providers"><h2>By mail provider</h2><p class="muted">The provider is the last two labels of the most preferred MX host.</p>')
    add('<table id="providers-table"><tr><th>Provider</th><th class="num">Domains</th><th class="num">ok</th><th class="num">warning</th><th class="num">critical</th><th class="num">inconclusive</th><th class="num">no TLS</th></tr>')
    local provs = {}
    for name, p in pairs(a.providers) do provs[#provs + 1] = { name, p.domains } end
    provs = sorted_by_count((function() local t = {} for _, x in ipairs(provs) do t[x[1]] = x[2] end return t end)())
    for i = 1, math.min(#provs, M.TOP_PROVIDERS) do
        local name, p = provs[i][1], a.providers[provs[i][1]]
        add(('<tr data-provider="%s"><td><a href="#domains-section" data-filter="provider:%s">%s</a></td>%s%s%s%s%s%s</tr>'):format(
            esc(name), esc(name:lower()), esc(name), num_cell(p.domains), num_cell(p.ok), num_cell(p.warning),
            num_cell(p.critical), num_cell(p.inconclusive), num_cell(p.no_tls)))
    end
    if #provs > M.TOP_PROVIDERS then
        local rest = 0
        for i = M.TOP_PROVIDERS + 1, #provs do rest = rest + provs[i][2] end
        add(('<tr><td class="muted">%d more providers</td>%s<td colspan="5"></td></tr>'):format(#provs - M.TOP_PROVIDERS, num_cell(rest)))
    end
    add("</table></section>")

end

-- The sender matrix, only when records have senders.
local function section_senders(a, add)
    -- senders, when the records have them
    if a.senders then
        -- the outcomes from best to worst (docs/json-schema.md), then any other
        local outcomes, known = {}, {}
        for _, o in ipairs(M.SENDER_OUTCOMES) do
            known[o] = true
            if a.senders.outcomes[o] then outcomes[#outcomes + 1] = o end
        end
        local other = {}
        for o in pairs(a.senders.outcomes) do if not known[o] then other[#other + 1] = o end end
        table.sort(other)
        for _, o in ipairs(other) do outcomes[#outcomes + 1] = o end
        add('<section id="senders"><h2>Sender matrix</h2><p class="muted">Domains per kind of sender and what it does with the domain\'s mail (opportunistic: STARTTLS when offered; mta_sts, dane: with a usable policy or secure TLSA records, else as opportunistic; strict: TLS 1.2+, PKIX chain and name).</p><table id="senders-table"><tr><th>Sender</th>')
        for _, o in ipairs(outcomes) do add('<th class="num">' .. esc(o) .. "</th>") end
        add("</tr>")
        for _, n in ipairs(a.senders.order) do
            add('<tr><td>' .. esc(n) .. "</td>")
            for _, o in ipairs(outcomes) do
                add(('<td class="num" data-sender="%s" data-outcome="%s">%d</td>'):format(esc(n), esc(o), a.senders.rows[n][o] or 0))
            end
            add("</tr>")
        end
        add("</table></section>")
    end

end

-- The domain table (drawn by the script) and the detail panel.
local function section_domains(a, add)
    -- the domains
    add('<section id="detail" hidden></section>')
    add('<section id="domains-section"><h2>Domains</h2><div class="controls">')
    add('<input id="q" type="search" placeholder="filter: name, provider, code:CERT_EXPIRED, provider:example.net" aria-label="filter">')
    add('<select id="vf" aria-label="verdict"><option value="">every verdict</option>')
    for i, v in ipairs(M.VERDICTS) do add(('<option value="%d">%s</option>'):format(i - 1, v)) end
    add('</select><span class="pager"><button id="prev" type="button">‹ previous</button><span id="page">1 / 1</span><button id="next" type="button">next ›</button></span>')
    add('<span class="muted">showing <span id="shown">0</span> of <span id="matching">0</span> matching; ')
    add('rows embedded: <span id="js-total">?</span> (')
    for i, v in ipairs(M.VERDICTS) do add(('%s%s <span id="js-%s">?</span>'):format(i > 1 and ", " or "", v, v)) end
    add(")</span></div>")
    add('<table id="domains"><thead><tr></tr></thead><tbody></tbody></table>')
    add('<noscript><p>The domain table needs JavaScript; the counts above do not.</p></noscript></section>')
    add("</main>")

end

--- The page, as one string.  opts: title, generated (time), source (file name shown).
function M.render(a, opts)
    opts = opts or {}
    local title = opts.title or "mxprobe audit report"
    local h = {}
    local function add(s) h[#h + 1] = s end
    add('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">')
    add('<meta name="viewport" content="width=device-width, initial-scale=1">')
    -- nothing from elsewhere, ever: a policy for the browser too
    add([[<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">]])
    add("<title>" .. esc(title) .. "</title><style>" .. CSS .. "</style></head><body>")
    local span = a.first and a.last and (os.date("!%Y-%m-%d %H:%M", a.first) .. " – " .. os.date("!%Y-%m-%d %H:%M UTC", a.last)) or "unknown"
    add(("<header><h1>%s</h1><p>%s · audited %s · page made %s</p><p>%s</p></header><main>"):format(
        esc(title), esc(opts.source or a.file or ""), esc(span),
        esc(os.date("!%Y-%m-%d %H:%M UTC", opts.generated or os.time())), esc(provenance_text(a.provenance))))

    section_verdicts(a, add)
    section_codes_tls(a, add)
    section_expiry(a, add)
    section_providers(a, add)
    section_senders(a, add)
    section_domains(a, add)
    -- the data, by column (see new_agg), pre-encoded JSON; no "<" appears
    -- raw inside the script element (a message could say "</script>" or
    -- "<!--"), and in JSON a "<" can only be inside a string, where \u003c
    -- means the same
    local c, l = a.col, a.lists
    local data = {
        '{"findings":', json.encode(json.array(a.findings)),
        ',"G":[', table.concat(l.g, ","), '],"P":[', table.concat(l.p, ","), '],"K":[', table.concat(l.k, ","),
        '],"FL":[', table.concat(l.f, ","), '],"T":', json.encode(M.TLS_ORDER),
        ',"d":[', table.concat(c.d, ","), '],"v":[', table.concat(c.v, ","), '],"g":[', table.concat(c.g, ","),
        '],"s":[', table.concat(c.s, ","), '],"t":[', table.concat(c.t, ","), '],"c":[', table.concat(c.c, ","),
        '],"p":[', table.concat(c.p, ","), '],"m":[', table.concat(c.m, ","), '],"k":[', table.concat(c.k, ","),
        '],"f":[', table.concat(c.f, ","), '],"e":{', table.concat(a.errors_at, ","), "}}",
    }
    data = table.concat(data)
    if data:find("<", 1, true) then data = data:gsub("<", "\\u003c") end
    add('<script type="application/json" id="mx-data">' .. data .. "</script>")
    add("<script>" .. SCRIPT .. "</script></body></html>\n")
    return table.concat(h)
end

local function parser()
    local p = argparse("mxprobe report")
    p:description("One self-contained HTML page from an audit's JSON Lines: verdicts, the most frequent "
        .. "codes, TLS versions, certificate expiry over the next 90 days, mail providers, the sender "
        .. "matrix when records have one, and a sortable, filterable table of the domains with each "
        .. "domain's findings. No network access is needed to view it.")
    p:epilog("Exit status: 0 written; 3 an error (unreadable input, unwritable output).\n\n"
        .. "Example:\n  mxprobe report results.jsonl -o report.html\n\nFull documentation: docs/audits.md")
    p:add_help(false):usage_max_width(80):help_max_width(80):help_description_margin(30)
    p:argument("audit", "JSON Lines output(s) of mxprobe audit (- for stdin; the parts of a sharded audit)."):args("+")
    p:option("-o --output", "Write the page to this file (default: stdout)."):argname("<file>")
    p:option("--title", "The page's title."):argname("<text>")
    p:flag("-h --help", "Show this help and exit.")
    return p
end
M.parser = parser

--- argv: the arguments after "report".  env: stdout, stderr.  @return exit code
function M.main(argv, env)
    local args, stdout, stderr, fail = common.subcommand("report", parser, argv, env)
    if not args then return stdout end -- the exit code: help shown, or a usage error
    local a, err = M.aggregate(args.audit)
    if not a then return fail(err) end
    if a.records == 0 then
        return fail(("'%s' has no audit records (%d lines that are not records)"):format(
            table.concat(args.audit, "', '"), a.unreadable))
    end
    local page = M.render(a, { title = args.title, source = table.concat(args.audit, " ") })
    if args.output and args.output ~= "-" then
        local f, oerr = io.open(args.output, "wb")
        if not f then return fail(("cannot write '%s': %s"):format(args.output, (tostring(oerr):gsub("^[^:]*: ", "")))) end
        local wok, werr = f:write(page)
        if wok then wok, werr = f:close() else f:close() end
        if not wok then return fail(("cannot write '%s': %s"):format(args.output, tostring(werr))) end
    else
        stdout:write(page)
    end
    return 0
end

return M
