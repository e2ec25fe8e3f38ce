--- mxprobe.report.explain: the diagnostic codes and checks, for people.
--
-- Everything here reads the engine's own data (run.checks and
-- engine.catalog(run)), so `mxprobe --explain`, `mxprobe --list-checks`
-- and docs/codes.md (scripts/gen-codes-doc) cannot drift from the checks.
local vocab = require "mxprobe.runtime.vocab"
local text = require "mxprobe.report.text"
local json = require "mxprobe.report.json"

local M = {}

local escape = require("mxprobe.runtime.escape").for_display

M.SEVERITY_ORDER = vocab.SEVERITIES

local function sorted_keys(t)
    local keys = {}
    for k in pairs(t or {}) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    return keys
end

--- The check with this id, or nil.
function M.find_check(checks, id)
    for _, c in ipairs(checks or {}) do
        if c.id == id then return c end
    end
    return nil
end

--- Codes of a check, ordered by default severity (ok first), then by name.
function M.codes_of(check)
    local codes = sorted_keys(check.findings)
    table.sort(codes, function(a, b)
        local ra = M.SEVERITY_ORDER[check.findings[a].severity] or 99
        local rb = M.SEVERITY_ORDER[check.findings[b].severity] or 99
        if ra ~= rb then return ra < rb end
        return a < b
    end)
    return codes
end

local function distance(a, b)
    -- Levenshtein, small strings only
    local la, lb = #a, #b
    if math.abs(la - lb) > 3 then return 99 end
    local prev = {}
    for j = 0, lb do prev[j] = j end
    for i = 1, la do
        local cur = { [0] = i }
        for j = 1, lb do
            local cost = a:byte(i) == b:byte(j) and 0 or 1
            cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
        end
        prev = cur
    end
    return prev[lb]
end

--- Look a code up in the catalog; case does not matter.
-- @return entry, CODE | nil, suggestions (a list of close codes, maybe empty)
function M.lookup(catalog, code)
    local want = tostring(code):upper():gsub("[%s%-]", "_")
    if catalog[want] then return catalog[want], want end
    local near = {}
    for _, c in ipairs(sorted_keys(catalog)) do
        if #want >= 3 and c:find(want, 1, true) then
            near[#near + 1] = c
        elseif distance(want, c) <= 2 then
            near[#near + 1] = c
        end
    end
    while #near > 5 do near[#near] = nil end
    return nil, near
end

--- `--explain CODE` as text.
function M.render_code(code, entry, check)
    local description = check and check.description or entry.description
    local rows = {
        { "code", code },
        { "check", escape(entry.check or "?") .. (description and (": " .. escape(description)) or "") },
        { "severity", escape(entry.severity or "?") .. " (the default; a policy may change it)" },
        { "message", escape(entry.message or "") },
    }
    if entry.hint and entry.hint ~= "" then rows[#rows + 1] = { "hint", escape(entry.hint) } end
    if check then
        if check.scope then rows[#rows + 1] = { "scope", escape(check.scope) } end
        if check.categories and #check.categories > 0 then
            local cats = {}
            for _, c in ipairs(check.categories) do cats[#cats + 1] = escape(c) end
            rows[#rows + 1] = { "categories", table.concat(cats, ", ") }
        end
        if check.requires and #check.requires > 0 then
            local req = {}
            for _, c in ipairs(check.requires) do req[#req + 1] = escape(c) end
            rows[#rows + 1] = { "requires", table.concat(req, ", ") }
        end
        if check.file then rows[#rows + 1] = { "defined in", escape(check.file) } end
    end
    local w = 0
    for _, r in ipairs(rows) do w = math.max(w, #r[1]) end
    local out = {}
    for _, r in ipairs(rows) do
        out[#out + 1] = r[1] .. ":" .. (" "):rep(w - #r[1] + 2) .. r[2]
    end
    return table.concat(out, "\n") .. "\n"
end

--- `--explain CODE --json`: a plain table.
function M.code_table(code, entry, check)
    return {
        code = code,
        check = entry.check,
        severity = entry.severity,
        message = entry.message,
        hint = entry.hint,
        description = check and check.description or entry.description,
        scope = check and check.scope or nil,
        categories = json.array(check and check.categories and { table.unpack(check.categories) } or {}),
        requires = json.array(check and check.requires and { table.unpack(check.requires) } or {}),
    }
end

--- The checks as plain tables (no functions): for `--list-checks --json`.
-- active: as for render_checks; each check gets "enabled": bool.
function M.checks_table(checks, active)
    local out = json.array()
    for _, c in ipairs(checks or {}) do
        local findings = json.object()
        for code, f in pairs(c.findings or {}) do
            findings[code] = { severity = f.severity, message = f.message, hint = f.hint, weight = f.weight }
        end
        out[#out + 1] = {
            id = c.id, description = c.description, scope = c.scope,
            categories = json.array({ table.unpack(c.categories or {}) }),
            requires = json.array({ table.unpack(c.requires or {}) }),
            findings = findings,
            enabled = active == nil or active[c.id] == true,
        }
    end
    return out
end

--- `--list-checks` as text: one aligned row per check; with verbose, the
-- codes of each check under it.  active: optional set of the ids that
-- would run (with the policy and options given); the others are marked.
function M.render_checks(checks, verbose, active)
    local rows = { { "ID", "SCOPE", "REQUIRES", "CODES", "DESCRIPTION" } }
    for _, c in ipairs(checks or {}) do
        local req = {}
        for _, r in ipairs(c.requires or {}) do req[#req + 1] = escape(r) end
        rows[#rows + 1] = {
            escape(c.id or "?"), escape(c.scope or "?"),
            #req > 0 and table.concat(req, ",") or "-",
            tostring(#sorted_keys(c.findings)),
            escape(c.description or "") .. ((active and not active[c.id]) and " (not run: disabled by the policy or options)" or ""),
        }
    end
    local widths = {}
    for _, r in ipairs(rows) do
        for i, cell in ipairs(r) do widths[i] = math.max(widths[i] or 0, text.width(cell)) end
    end
    local out = {}
    for ri, r in ipairs(rows) do
        local parts = {}
        for i, cell in ipairs(r) do
            parts[i] = i < #r and (cell .. (" "):rep(widths[i] - text.width(cell) + 2)) or cell
        end
        out[#out + 1] = table.concat(parts)
        local c = checks[ri - 1]
        if verbose and c then
            for _, code in ipairs(M.codes_of(c)) do
                out[#out + 1] = ("    %-12s %s"):format(escape(c.findings[code].severity or "?"), escape(code))
            end
        end
    end
    return table.concat(out, "\n") .. "\n"
end

local function md(s)
    s = escape(s or ""):gsub("\\n", " ")
    return (s:gsub("|", "\\|"))
end

--- docs/codes.md: every code, grouped by check, in the engine's order.
function M.markdown(checks, catalog)
    local out = {}
    local function add(s) out[#out + 1] = s end
    add("# Diagnostic codes")
    add("")
    add("<!-- Generated by scripts/gen-codes-doc from the check files; do not edit by hand. -->")
    add("<!-- Regenerate: ./build/mxprobe scripts/gen-codes-doc > docs/codes.md -->")
    add("")
    add("Every finding mxprobe reports carries one of these codes. Codes are stable")
    add("identifiers: renaming one is a breaking change; messages and hints may improve.")
    add("The severity shown is the check's default; a policy (`--policy FILE`) may change it.")
    add("`mxprobe --explain CODE` prints the same information on the command line.")
    add("")
    add("Severities: `ok` (passed), `info` (worth knowing), `warning`, `critical`,")
    add("`inconclusive` (the check could not decide, with the reason), `error` (the check crashed).")
    add("")
    -- codes the catalog has that no check declares (the engine's own),
    -- as pseudo-checks after the real ones
    checks = { table.unpack(checks) }
    local declared = {}
    for _, c in ipairs(checks) do for code in pairs(c.findings or {}) do declared[code] = true end end
    local extra, extra_order = {}, {}
    for _, code in ipairs(sorted_keys(catalog or {})) do
        if not declared[code] then
            local e = catalog[code]
            local id = e.check or "engine"
            if not extra[id] then
                extra[id] = { id = id, scope = "-", description = e.description or ("reported by " .. id), findings = {} }
                extra_order[#extra_order + 1] = id
            end
            extra[id].findings[code] = e
        end
    end
    for _, id in ipairs(extra_order) do checks[#checks + 1] = extra[id] end
    local total = 0
    for _, c in ipairs(checks) do total = total + #sorted_keys(c.findings) end
    add(("%d checks, %d codes."):format(#checks, total))
    add("")
    add("| Check | Scope | Codes | Description |")
    add("|---|---|---|---|")
    for _, c in ipairs(checks) do
        add(("| [%s](#%s) | %s | %d | %s |"):format(md(c.id), c.id, md(c.scope), #sorted_keys(c.findings), md(c.description)))
    end
    for _, c in ipairs(checks) do
        add("")
        add("## " .. md(c.id))
        add("")
        add(md(c.description))
        add("")
        local meta = { c.scope == "-" and "Reported by the engine itself, not by a check file" or ("Scope: `" .. md(c.scope) .. "`") }
        if c.requires and #c.requires > 0 then
            local req = {}
            for _, r in ipairs(c.requires) do req[#req + 1] = ("[%s](#%s)"):format(md(r), r) end
            meta[#meta + 1] = "requires: " .. table.concat(req, ", ")
        end
        if c.categories and #c.categories > 0 then
            local cats = {}
            for _, x in ipairs(c.categories) do cats[#cats + 1] = "`" .. md(x) .. "`" end
            meta[#meta + 1] = "categories: " .. table.concat(cats, ", ")
        end
        add(table.concat(meta, "; ") .. ".")
        add("")
        add("| Code | Severity | Message | Hint |")
        add("|---|---|---|---|")
        for _, code in ipairs(M.codes_of(c)) do
            local e = catalog and catalog[code] or c.findings[code]
            add(("| `%s` | %s | %s | %s |"):format(code, md(e.severity), md(e.message), md(e.hint)))
        end
    end
    return table.concat(out, "\n") .. "\n"
end

return M
