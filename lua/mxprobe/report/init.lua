--- mxprobe.report: render results (schema 1) in one of the output formats.
--
--   report.render(result, "text", { color = bool, verbose = bool }) -> string
--   report.render(result, "json") -> one line of JSON, newline-terminated
--   report.render(result, "csv", columns) -> one CSV row (mxprobe.report.csv)
--   report.render(result, "nagios", { warning =, critical = }) -> plugin output, exit code
--   report.render(result, "openmetrics") -> metrics text (Prometheus / OpenMetrics)
--
-- The formats themselves live in mxprobe.report.text and
-- mxprobe.report.json; this module only picks one by name, for embedders
-- and scripts that do not want to know the module names.
local M = {}

M.formats = { text = "mxprobe.report.text", json = "mxprobe.report.json", csv = "mxprobe.report.csv",
              nagios = "mxprobe.report.nagios", openmetrics = "mxprobe.report.openmetrics" }

function M.render(result, format, opts)
    local name = M.formats[format or "text"]
    if not name then
        error(("report.render: unknown format %q (text, json, csv, nagios or openmetrics)"):format(tostring(format)), 2)
    end
    -- lazy: the module is chosen by name at run time; a script asking for json loads only json
    return require(name).render(result, opts)
end

return M
