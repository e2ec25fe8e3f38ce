--- mxprobe.report.nagios: --format nagios, a monitoring plugin's output
-- (Nagios plugin guidelines, as Icinga and Naemon read them too; the same
-- conventions as check_smtp of monitoring-plugins).
--
--   nagios.render_all(results, opts) -> text, exit_code
--   nagios.render(result, opts)      -> text, exit_code
--     opts.warning, opts.critical  certificate days (-w / -c): WARNING /
--                                  CRITICAL when a certificate is valid for
--                                  fewer days (like check_smtp -D)
--     opts.timed_out               seconds, when -t stopped the run
--     opts.interrupted             true after Ctrl-C / SIGTERM (UNKNOWN)
--     opts.targets                 how many targets there were (for "2 of 3 done")
--
-- The first line is the status: "MXPROBE WARNING - example.org: <the
-- decisive reason>|<performance data>".  Then one line per server (long
-- output).  Exit status 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; an
-- inconclusive verdict is UNKNOWN.
--
-- Performance data, per server N (the order of the report, mxN):
--   'mxN_time'=0.021s;;;0        connect + greeting, as check_smtp's time
--   'mxN_cert_days'=85;W;C;0     days the certificate is still valid
--   'mxN_tls_version'=1.3;;;0    negotiated TLS version (0: no TLS)
--   'mxN_score'=100;;;0;100      the policy's score
-- and 'time'=0.107s;;;0 for the whole test.  With several targets, labels
-- start with the domain ('example.org mx1_time').
local text = require "mxprobe.report.text"
local reason = require "mxprobe.report.reason"

local M = {}

M.STATUS = { [0] = "OK", [1] = "WARNING", [2] = "CRITICAL", [3] = "UNKNOWN" }
local VERDICT_EXIT = { ok = 0, warning = 1, critical = 2, inconclusive = 3 }
-- the monitoring convention's "worst": critical, then unknown, then warning
local RANK = { [0] = 0, [1] = 1, [3] = 2, [2] = 3 }

local function worst(a, b) return RANK[b] > RANK[a] and b or a end

local function list(t) return type(t) == "table" and t or {} end

-- Text for a plugin line: escaped for a terminal (mxprobe.report.text),
-- one line, and no "|", which would start the performance data.
local function clean(s)
    return (text.escape(tostring(s)):gsub("|", "/"))
end

-- a whole number as an integer (JSON decoders give floats), or nil
local function int(v)
    if type(v) ~= "number" then return nil end
    return math.tointeger(v) or math.floor(v)
end

local function num(v)
    if math.tointeger(v) then return tostring(math.tointeger(v)) end
    local s = ("%.6f"):format(v):gsub("0+$", ""):gsub("%.$", "")
    return s
end

-- A label: quoted (the guidelines allow any character but = and '
-- inside quotes).
local function label(prefix, name)
    return "'" .. (prefix .. name):gsub("['=]", "_") .. "'"
end

local function exit_of(r)
    local c = type(r) == "table" and r.exit_code
    if math.type(c) == "integer" and M.STATUS[c] then return c end
    return VERDICT_EXIT[type(r) == "table" and r.verdict] or 3
end

local function cert_days(s)
    local c = type(s.facts) == "table" and type(s.facts.certificate) == "table" and s.facts.certificate or nil
    return c and int(c.days_left) or nil, c
end

-- TLS version as a number; 0 when the server was reached and did not
-- offer STARTTLS or the handshake failed; nil when TLS was not tested.
local function tls_of(s)
    local t = type(s.facts) == "table" and type(s.facts.starttls) == "table" and s.facts.starttls or nil
    if not t then return nil end
    if t.version then return reason.tls_number(t.version), t.version end
    if t.offered == false or t.handshake == false then return 0, nil end
    return nil
end

--- The status of one result with the thresholds applied, and why.
-- @return exit code, reason phrase (unescaped)
function M.status(r, opts)
    opts = opts or {}
    local code, why = exit_of(r), reason.phrase(r)
    for i, s in ipairs(list(r.servers)) do
        local days = cert_days(s)
        if days then
            local c
            if opts.critical and days < opts.critical then
                c = 2
            elseif opts.warning and days < opts.warning then
                c = 1
            end
            if c and RANK[c] > RANK[code] then
                code = c
                why = ("the certificate of mx%d %s (%s) expires in %d %s (%s %d)"):format(i, tostring(s.host),
                    tostring(s.address), days, days == 1 and "day" or "days", c == 2 and "-c" or "-w",
                    c == 2 and opts.critical or opts.warning)
            end
        end
    end
    return code, why
end

local function perfdata(r, prefix, opts, out)
    if type(r.duration_s) == "number" then
        out[#out + 1] = label(prefix, "time") .. "=" .. num(r.duration_s) .. "s;;;0"
    end
    for i, s in ipairs(list(r.servers)) do
        local mx = "mx" .. i .. "_"
        local t = reason.server_time(s)
        if t then out[#out + 1] = label(prefix, mx .. "time") .. "=" .. num(t) .. "s;;;0" end
        local days = cert_days(s)
        if days then
            out[#out + 1] = ("%s=%d;%s;%s;0"):format(label(prefix, mx .. "cert_days"), days,
                opts.warning and tostring(opts.warning) or "", opts.critical and tostring(opts.critical) or "")
        end
        local tls = tls_of(s)
        if tls then out[#out + 1] = label(prefix, mx .. "tls_version") .. "=" .. num(tls) .. ";;;0" end
        if type(s.score) == "number" then out[#out + 1] = label(prefix, mx .. "score") .. "=" .. num(s.score) .. ";;;0;100" end
    end
end

local function server_line(i, s)
    local parts = {}
    if type(s.score) == "number" then parts[#parts + 1] = "score " .. num(s.score) end
    local tls, version = tls_of(s)
    if version then parts[#parts + 1] = version elseif tls == 0 then parts[#parts + 1] = "no TLS" end
    local days = cert_days(s)
    if days then parts[#parts + 1] = ("certificate %d days"):format(days) end
    local worst_f
    local sev_rank = { ok = 0, info = 1, warning = 2, critical = 3, inconclusive = 2, error = 3 }
    for _, f in ipairs(list(s.findings)) do
        if (sev_rank[f.severity] or 0) >= 2 and (not worst_f or sev_rank[f.severity] > sev_rank[worst_f.severity]) then worst_f = f end
    end
    if worst_f then parts[#parts + 1] = tostring(worst_f.severity) .. " " .. tostring(worst_f.code) end
    local addr = tostring(s.address or "?")
    if addr:find(":", 1, true) then addr = "[" .. addr .. "]" end
    return clean(("mx%d %s %s:%s: %s"):format(i, tostring(s.host or "?"), addr, type(s.port) == "number" and num(s.port) or "?", table.concat(parts, ", ")))
end

function M.render_all(results, opts)
    opts = opts or {}
    local code, why = 0, nil
    local many = #results > 1
    local statuses, perf, long = {}, {}, {}
    for _, r in ipairs(results) do
        local c, w = M.status(r, opts)
        statuses[#statuses + 1] = c
        local name = tostring(r.input or r.domain or "?")
        if r.input and r.domain and r.input ~= r.domain then name = r.domain .. " (" .. r.input .. ")" end
        if why == nil or RANK[c] > RANK[code] then code, why = c, name .. ": " .. w end
        perfdata(r, many and (tostring(r.domain) .. " ") or "", opts, perf)
        for i, s in ipairs(list(r.servers)) do
            long[#long + 1] = (many and (clean(r.domain) .. " ") or "") .. server_line(i, s)
        end
    end
    if opts.timed_out or opts.interrupted then
        code = 3
        local done = #results > 0 and ("; %d of %d %s done"):format(#results, opts.targets or #results,
            (opts.targets or #results) == 1 and "target" or "targets") or ""
        why = opts.timed_out and ("timed out after %s s (-t)%s"):format(num(opts.timed_out), done)
              or ("interrupted%s"):format(done)
    end
    if #results == 0 and not why then code, why = 3, "no result" end
    if many and not opts.timed_out and not opts.interrupted then
        local counts = {}
        for _, c in ipairs(statuses) do counts[c] = (counts[c] or 0) + 1 end
        local parts = {}
        for _, c in ipairs { 2, 3, 1, 0 } do
            if counts[c] then parts[#parts + 1] = ("%d %s"):format(counts[c], M.STATUS[c]:lower()) end
        end
        why = ("%d targets (%s); %s"):format(#results, table.concat(parts, ", "), why)
    end
    local line = "MXPROBE " .. M.STATUS[code] .. " - " .. clean(why)
    if #perf > 0 then line = line .. "|" .. table.concat(perf, " ") end
    local out = { line }
    for _, l in ipairs(long) do out[#out + 1] = l end
    return table.concat(out, "\n") .. "\n", code
end

function M.render(result, opts)
    return M.render_all({ result }, opts)
end

return M
