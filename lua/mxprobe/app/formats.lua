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

-- The CSV and text renderers (and what they need: the sender summary, the
-- reasons, the terminal's widths) are loaded with the first record of
-- their format, so a run pays only for the format it writes.
-- lazy: see above
local function csv() return require "mxprobe.report.csv" end
-- lazy: see above
local function text() return require "mxprobe.report.text" end

local M = {}

local function none() return nil end

M.FORMATS = {
    -- one JSON document per line (docs/json-schema.md)
    json = { header = none, footer = none, record = function(r) return json.render(r) end },
    -- a header, then one row per result (report/csv.lua)
    csv = {
        header = function(o) return csv().header(o.columns) end,
        record = function(r, o) return csv().render(r, o.columns) end,
        footer = none,
    },
    -- the human report: a blank line between targets, a summary line after several
    -- (o.width: wrap there; o.quiet: only each target's summary line)
    text = {
        header = none,
        record = function(r, o, n)
            return (n > 1 and not o.quiet and "\n" or "") ..
                text().render(r, { color = o.color, verbose = o.verbose, width = o.width, quiet = o.quiet })
        end,
        footer = function(seen, o)
            if #seen > 1 and not o.quiet then return "\n" .. text().summary(seen) end
        end,
    },
}

-- Formats that render all results at once, at the end (a monitoring
-- plugin's one status line; one metric family per name): record() keeps
-- the result in o.collected, footer() renders them, exit_code() (nagios)
-- is the plugin's status.  o: warning_days, critical_days, timed_out,
-- interrupted, targets.
local function collected(module_name)
    local f = { header = none }
    function f.record(r, o)
        o.collected = o.collected or {}
        o.collected[#o.collected + 1] = r
        return nil
    end
    function f.footer(_, o)
        -- lazy: the monitoring renderers are loaded only for their format
        local mod = require(module_name)
        local s, code = mod.render_all(o.collected or {}, { warning = o.warning_days, critical = o.critical_days,
            timed_out = o.timed_out, targets = o.targets, interrupted = o.interrupted })
        o.exit_code = code
        return s
    end
    return f
end
M.FORMATS.nagios = collected("mxprobe.report.nagios")
M.FORMATS.openmetrics = collected("mxprobe.report.openmetrics")
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
