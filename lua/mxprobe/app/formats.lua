--- mxprobe.app.formats: the output formats of the command line and of
-- audits, as a stream: something before the first record, each record,
-- something after the last.  Adding a format is one entry here (and a
-- flag or a value in cli/parser.lua).
--
--   local fmt = formats.get("csv")
--   fmt.header(opts)              -> string | nil   before the first record
--   fmt.record(result, opts, n)   -> string | nil   the n-th record (1, 2, ...)
--   fmt.footer(seen, opts)        -> string | nil   after the last; seen: the
--                                    { domain =, verdict =, exit_code =, decided_by = }
--                                    of every record written
--
-- opts: { color = bool, verbose = bool, columns = CSV columns }.
local json = require "mxprobe.report.json"
local csv = require "mxprobe.report.csv"
local text = require "mxprobe.report.text"

local M = {}

local function none() return nil end

M.FORMATS = {
    -- one JSON document per line (docs/json-schema.md)
    json = { header = none, footer = none, record = function(r) return json.render(r) end },
    -- a header, then one row per result (report/csv.lua)
    csv = {
        header = function(o) return csv.header(o.columns) end,
        record = function(r, o) return csv.render(r, o.columns) end,
        footer = none,
    },
    -- the human report: a blank line between targets, a summary line after several
    text = {
        header = none,
        record = function(r, o, n)
            return (n > 1 and "\n" or "") .. text.render(r, { color = o.color, verbose = o.verbose })
        end,
        footer = function(seen)
            if #seen > 1 then return "\n" .. text.summary(seen) end
        end,
    },
}
M.FORMATS.jsonl = M.FORMATS.json -- audits' name for it

--- The format called name, or nil and a message listing the known ones.
function M.get(name)
    local f = M.FORMATS[name]
    if f then return f end
    local names = {}
    for k in pairs(M.FORMATS) do names[#names + 1] = k end
    table.sort(names)
    return nil, ("unknown format '%s' (%s)"):format(tostring(name), table.concat(names, ", "))
end

return M
