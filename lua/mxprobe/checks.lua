--- mxprobe.checks: load check files and validate them strictly.
--
-- A check file returns a table (GUIDE section 3):
--   id          string, unique, [a-z][a-z0-9_]*
--   description one line
--   categories  list of strings
--   scope       "domain" | "address" | "session"
--   requires    list of check ids that must run first (optional)
--   findings    { CODE = { severity = , message = , hint = } }, CODE in [A-Z][A-Z0-9_]*
--   applies     function(ctx) -> bool (optional)
--   run         function(ctx)
--   summarize   function(dctx) (optional; once per domain, after every address)
-- Unknown keys, wrong types, duplicate ids or codes, unknown dependencies
-- and cycles are errors naming the file and the field, raised before any
-- probe starts.  No I/O happens at load time.

local M = {}

M.SEVERITIES = { ok = 1, info = 2, warning = 3, critical = 4, inconclusive = 5, error = 6 }
M.SCOPES = { domain = true, address = true, session = true }

local KEYS = {
    id = "string", description = "string", categories = "table", scope = "string",
    requires = "table", findings = "table", applies = "function", run = "function",
    summarize = "function", options = "table",
}
local FINDING_KEYS = { severity = "string", message = "string", hint = "string", weight = "number" }

local function fail(file, field, fmt, ...)
    error(("%s: %s: " .. fmt):format(file, field, ...), 0)
end

--- Validate one check table; file names where it came from.
function M.validate(def, file)
    if type(def) ~= "table" then
        fail(file, "(return value)", "a check file must return a table, got %s", type(def))
    end
    for k, v in pairs(def) do
        local want = KEYS[k]
        if not want then fail(file, tostring(k), "unknown key (allowed: id, description, categories, scope, requires, findings, applies, run, summarize, options)") end
        if type(v) ~= want then fail(file, k, "%s expected, got %s", want, type(v)) end
    end
    for _, k in ipairs { "id", "description", "scope", "findings", "run" } do
        if def[k] == nil then fail(file, k, "missing (required)") end
    end
    if not def.id:match("^[a-z][a-z0-9_]*$") then fail(file, "id", "%q must match [a-z][a-z0-9_]*", def.id) end
    if not M.SCOPES[def.scope] then fail(file, "scope", "%q is not one of domain, address, session", def.scope) end
    for i, c in ipairs(def.categories or {}) do
        if type(c) ~= "string" then fail(file, ("categories[%d]"):format(i), "string expected, got %s", type(c)) end
    end
    for i, r in ipairs(def.requires or {}) do
        if type(r) ~= "string" then fail(file, ("requires[%d]"):format(i), "string expected, got %s", type(r)) end
    end
    for code, f in pairs(def.findings) do
        local field = "findings." .. tostring(code)
        if type(code) ~= "string" or not code:match("^[A-Z][A-Z0-9_]*$") then
            fail(file, field, "finding codes must match [A-Z][A-Z0-9_]*")
        end
        if type(f) ~= "table" then fail(file, field, "table expected, got %s", type(f)) end
        for k, v in pairs(f) do
            if not FINDING_KEYS[k] then fail(file, field .. "." .. tostring(k), "unknown key (allowed: severity, message, hint, weight)") end
            if type(v) ~= FINDING_KEYS[k] then fail(file, field .. "." .. k, "%s expected, got %s", FINDING_KEYS[k], type(v)) end
        end
        if not f.severity or not M.SEVERITIES[f.severity] then
            fail(file, field .. ".severity", "must be one of ok, info, warning, critical, inconclusive, error")
        end
        if not f.message then fail(file, field .. ".message", "missing (required)") end
    end
    def.requires = def.requires or {}
    def.categories = def.categories or {}
    def.file = file
    return def
end

--- Load one check file in an environment of its own.
function M.load_file(path)
    local chunk, err = loadfile(path, "t")
    if not chunk then error(err, 0) end
    local ok, def = pcall(chunk)
    if not ok then error(("%s: error while loading: %s"):format(path, tostring(def)), 0) end
    return M.validate(def, path)
end

local function list_lua_files(dir)
    local p = io.popen(("ls -1 %q 2>/dev/null"):format(dir))
    local files = {}
    if p then
        for name in p:lines() do
            if name:match("^[%w_%-]+%.lua$") then files[#files + 1] = dir .. "/" .. name end
        end
        p:close()
    end
    table.sort(files)
    return files
end

--- Order checks so that every check comes after what it requires.
-- Raises on unknown dependencies and cycles, naming the check's file.
function M.order(defs)
    local by_id = {}
    for _, d in ipairs(defs) do by_id[d.id] = d end
    local order, state = {}, {}
    local function visit(d, path)
        if state[d.id] == "done" then return end
        if state[d.id] == "active" then
            fail(d.file, "requires", "dependency cycle: %s -> %s", table.concat(path, " -> "), d.id)
        end
        state[d.id] = "active"
        path[#path + 1] = d.id
        for i, r in ipairs(d.requires) do
            local dep = by_id[r]
            if not dep then fail(d.file, ("requires[%d]"):format(i), "unknown check id %q", r) end
            visit(dep, path)
        end
        path[#path] = nil
        state[d.id] = "done"
        order[#order + 1] = d
    end
    for _, d in ipairs(defs) do visit(d, {}) end
    return order
end

--- Load every check from the directories (stock first), validate, order.
-- A later directory may replace a stock check by using the same id.
function M.load(dirs)
    local defs, by_id, codes = {}, {}, {}
    for _, dir in ipairs(dirs) do
        local files = list_lua_files(dir)
        for _, path in ipairs(files) do
            local d = M.load_file(path)
            if by_id[d.id] then
                if by_id[d.id].dir == dir then
                    fail(path, "id", "duplicate check id %q (also in %s)", d.id, by_id[d.id].file)
                end
                for i, x in ipairs(defs) do if x.id == d.id then table.remove(defs, i) break end end
                for code in pairs(by_id[d.id].findings) do codes[code] = nil end
            end
            d.dir = dir
            for code in pairs(d.findings) do
                if codes[code] then fail(path, "findings." .. code, "code already declared by check %q", codes[code]) end
                codes[code] = d.id
            end
            by_id[d.id] = d
            defs[#defs + 1] = d
        end
    end
    return M.order(defs)
end

--- The checks to run when only some are asked for: those and their dependencies.
function M.select(ordered, wanted)
    if not wanted or #wanted == 0 then return ordered end
    local by_id, need = {}, {}
    for _, d in ipairs(ordered) do by_id[d.id] = d end
    local function add(id, from)
        local d = by_id[id]
        if not d then error(("unknown check id %q%s"):format(id, from and (" (required by " .. from .. ")") or ""), 0) end
        if need[id] then return end
        need[id] = true
        for _, r in ipairs(d.requires) do add(r, id) end
    end
    for _, id in ipairs(wanted) do add(id) end
    local out = {}
    for _, d in ipairs(ordered) do if need[d.id] then out[#out + 1] = d end end
    return out
end

return M
