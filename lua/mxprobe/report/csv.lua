--- mxprobe.report.csv: results (schema 1) as CSV rows, one per domain.
--
--   local csv = require "mxprobe.report.csv"
--   out:write(csv.header())                 -- "domain,verdict,exit_code,...\n"
--   out:write(csv.render(result))           -- one line per result
--   csv.render(result, { "domain", "verdict", { "tls", function(r) ... end } })
--   csv.parse_line(line) -> { fields... }   -- what resume reads back
--
-- RFC 4180 quoting (a field with a comma, a double quote or leading or
-- trailing space is quoted, quotes doubled), lines end with "\n".  A CSV
-- row is a summary: the JSON Lines record keeps everything, the row keeps
-- what fits in a spreadsheet cell.  Fields never contain line breaks (CR and
-- LF become spaces), so one row is one line and `wc -l` counts domains
-- plus the header.  Bytes that are not UTF-8 are written as \xNN, like the
-- JSON output.
local json = require "mxprobe.report.json"
local findings = require "mxprobe.runtime.findings"

local M = {}

-- Severities that do not make a code worth listing in the `codes` column.
local QUIET = { ok = true }

--- The codes of a result's findings that are not "ok", sorted, each once.
function M.codes(r)
    local set, list = {}, {}
    for f in findings.each(r) do
        if type(f) == "table" and type(f.code) == "string" and not QUIET[f.severity] and not set[f.code] then
            set[f.code] = true
            list[#list + 1] = f.code
        end
    end
    table.sort(list)
    return list
end

local function servers(r) return type(r.servers) == "table" and r.servers or {} end

local function worst_server(r)
    local worst
    for _, s in ipairs(servers(r)) do
        if type(s.score) == "number" and (not worst or s.score < worst.score) then worst = s end
    end
    return worst
end

-- The stock columns, in order: name and how to get the value.
M.COLUMNS = {
    { "domain", function(r) return r.domain end },
    { "verdict", function(r) return r.verdict end },
    { "exit_code", function(r) return r.exit_code end },
    { "decided_by", function(r) return type(r.decided_by) == "table" and r.decided_by.code or nil end },
    { "mx", function(r)
        local parts = {}
        for _, m in ipairs(type(r.dns) == "table" and type(r.dns.mx) == "table" and r.dns.mx or {}) do
            parts[#parts + 1] = ("%s:%s"):format(tostring(m.preference), tostring(m.host))
        end
        return table.concat(parts, " ")
    end },
    { "servers", function(r) return #servers(r) end },
    { "min_score", function(r) local w = worst_server(r); return w and w.score end },
    { "worst_grade", function(r) local w = worst_server(r); return w and w.grade end },
    { "codes", function(r) return table.concat(M.codes(r), " ") end },
    { "error", function(r) return r.error end },
    { "started", function(r) return r.started end },
    { "duration_s", function(r) return r.duration_s end },
    { "input", function(r) return r.input end },
}
local BY_NAME = {}
for _, c in ipairs(M.COLUMNS) do BY_NAME[c[1]] = c end

-- columns: nil (the stock ones), or a list of stock column names and
-- { name, function(result) -> value } pairs.
local function resolve(columns)
    if columns == nil then return M.COLUMNS end
    if type(columns) ~= "table" then error("csv: columns must be a list", 3) end
    local out = {}
    for i, c in ipairs(columns) do
        if type(c) == "string" then
            out[i] = BY_NAME[c] or error(("csv: unknown column %q (stock columns: %s)"):format(c, M.column_names()), 3)
        elseif type(c) == "table" and type(c[1]) == "string" and type(c[2]) == "function" then
            out[i] = c
        else
            error(("csv: columns[%d]: a column name or { name, function } expected"):format(i), 3)
        end
    end
    return out
end

function M.column_names()
    local names = {}
    for i, c in ipairs(M.COLUMNS) do names[i] = c[1] end
    return table.concat(names, ", ")
end

--- One field, quoted when needed.
function M.field(v)
    if v == nil then return "" end
    local s
    if math.type(v) == "integer" then s = ("%d"):format(v)
    elseif type(v) == "number" then
        s = (v ~= v or v == math.huge or v == -math.huge) and "" or ("%.14g"):format(v)
    else s = tostring(v) end
    s = json.valid_utf8(s):gsub("[\r\n]", " ")
    if s:find('[,"]') or s:find("^%s") or s:find("%s$") then
        s = '"' .. s:gsub('"', '""') .. '"'
    end
    return s
end

local function line(values)
    local parts = {}
    for i, v in ipairs(values) do parts[i] = M.field(v) end
    return table.concat(parts, ",", 1, #values) .. "\n"
end

--- The header line.
function M.header(columns)
    local cols, names = resolve(columns), {}
    for i, c in ipairs(cols) do names[i] = c[1] end
    return line(names)
end

--- One result as one line.  A column whose function raises is left empty
-- (a row is never lost to one odd value).
function M.render(result, columns)
    local cols, values = resolve(columns), {}
    for i, c in ipairs(cols) do
        local ok, v = pcall(c[2], result)
        if ok and v ~= nil then values[i] = v else values[i] = "" end
    end
    return line(values)
end

--- Split one CSV line (as this module writes them) into its fields.
function M.parse_line(s)
    s = s:gsub("\r?\n$", "")
    local fields, i, n = {}, 1, #s
    while true do
        if s:sub(i, i) == '"' then
            local buf, j = {}, i + 1
            while j <= n do
                local c = s:sub(j, j)
                if c == '"' then
                    if s:sub(j + 1, j + 1) == '"' then buf[#buf + 1] = '"'; j = j + 2
                    else j = j + 1; break end
                else
                    buf[#buf + 1] = c; j = j + 1
                end
            end
            fields[#fields + 1] = table.concat(buf)
            i = j
        else
            local j = s:find(",", i, true) or n + 1
            fields[#fields + 1] = s:sub(i, j - 1)
            i = j
        end
        if s:sub(i, i) == "," then i = i + 1 else break end
    end
    return fields
end

return M
