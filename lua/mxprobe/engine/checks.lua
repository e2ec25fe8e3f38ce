--- mxprobe.engine.checks: load check files and validate them strictly
-- (docs/writing-checks.md).
--
-- A check file returns a table (GUIDE section 3):
--   id          string, unique, [a-z][a-z0-9_]*
--   description one line
--   categories  list of strings (optional)
--   scope       "domain" | "address" | "session"
--   requires    list of check ids that must run first (optional)
--   findings    { CODE = { severity = , message = , hint = , weight = } }, CODE in [A-Z][A-Z0-9_]*
--   options     { name = default } settings a policy may change (optional)
--   enabled     false: runs only when a policy enables it (optional)
--   applies     function(ctx) -> bool (optional)
--   run         function(ctx)
--   summarize   function(dctx) (optional; once per domain, after every address)
-- Unknown keys, wrong types, duplicate ids or codes, unknown dependencies
-- and cycles are errors naming the file, the line and the field, raised
-- before any probe starts.  No I/O happens at load time.
--
-- Where checks come from, in order (a later one replaces a check with the
-- same id): the stock checks, the installed ones (the search path:
-- $MXPROBE_CHECKS_PATH, colon-separated, or <datadir>/mxprobe/site-checks),
-- then each --checks-dir.

local vocab = require "mxprobe.runtime.vocab"
local config_errors = require "mxprobe.runtime.config_errors"
local paths = require "mxprobe.runtime.paths"

local M = {}

M.SCOPES = { domain = true, address = true, session = true }

local KEYS = {
    id = "string", description = "string", categories = "table", scope = "string",
    requires = "table", findings = "table", applies = "function", run = "function",
    summarize = "function", options = "table", enabled = "boolean",
}
M.KEYS = KEYS
local KEY_LIST = "id, description, categories, scope, requires, findings, options, enabled, applies, run, summarize"
local FINDING_KEYS = { severity = "string", message = "string", hint = "string", weight = "number" }
local OPTION_TYPES = { string = true, number = true, boolean = true, table = true }

-- Source lines of the files loaded, for messages that name a line.
local sources = {}

local function line_of(file, segments)
    local lines = sources[file] or config_errors.read_lines(file)
    sources[file] = lines
    return config_errors.find_line(lines, segments)
end

local function fail(file, segments, fmt, ...)
    if type(segments) == "string" then segments = { segments } end
    local field = {}
    for _, s in ipairs(segments) do
        if type(s) == "string" then field[#field + 1] = s
        elseif math.type(s) == "integer" then field[#field] = (field[#field] or "") .. ("[%d]"):format(s) end
    end
    local line = file and file:sub(1, 1) ~= "(" and line_of(file, segments)
    local where = line and ("%s:%d"):format(file, line) or file
    error(("%s: %s: " .. fmt):format(where, table.concat(field, "."), ...), 0)
end

local function suggest(word, list)
    return config_errors.suggest(word, list)
end

--- Validate one check table; file names where it came from.
function M.validate(def, file)
    file = file or "(check table)"
    if type(def) ~= "table" then
        error(("%s: a check file must return a table, got %s (the file must end with `return { id = ..., ... }`)"):format(file, type(def)), 0)
    end
    local keys = {}
    for k in pairs(KEYS) do keys[#keys + 1] = k end
    for k, v in pairs(def) do
        local want = KEYS[k]
        if not want then fail(file, tostring(k), "unknown key (allowed: %s)%s", KEY_LIST, suggest(k, keys)) end
        if type(v) ~= want then fail(file, k, "%s expected, got %s", want, type(v)) end
    end
    for _, k in ipairs { "id", "description", "scope", "findings", "run" } do
        if def[k] == nil then
            error(("%s: %s: missing (required)"):format(file, k), 0)
        end
    end
    if not def.id:match("^[a-z][a-z0-9_]*$") then fail(file, "id", "%q must match [a-z][a-z0-9_]*", def.id) end
    if not M.SCOPES[def.scope] then fail(file, "scope", "%q is not one of domain, address, session", def.scope) end
    for i, c in ipairs(def.categories or {}) do
        if type(c) ~= "string" then fail(file, { "categories", i }, "string expected, got %s", type(c)) end
    end
    for i, r in ipairs(def.requires or {}) do
        if type(r) ~= "string" then fail(file, { "requires", i }, "string expected, got %s", type(r)) end
    end
    for k in pairs(def.requires or {}) do
        if math.type(k) ~= "integer" then fail(file, "requires", "a list of check ids expected") end
    end
    for code, f in pairs(def.findings) do
        local seg = { "findings", tostring(code) }
        if type(code) ~= "string" or not code:match("^[A-Z][A-Z0-9_]*$") then
            fail(file, seg, "finding codes must match [A-Z][A-Z0-9_]*")
        end
        if type(f) ~= "table" then fail(file, seg, "table expected, got %s", type(f)) end
        for k, v in pairs(f) do
            if not FINDING_KEYS[k] then
                fail(file, { "findings", code, tostring(k) }, "unknown key (allowed: severity, message, hint, weight)%s",
                    suggest(k, { "severity", "message", "hint", "weight" }))
            end
            if type(v) ~= FINDING_KEYS[k] then fail(file, { "findings", code, k }, "%s expected, got %s", FINDING_KEYS[k], type(v)) end
        end
        if not f.severity or not vocab.SEVERITIES[f.severity] then
            fail(file, { "findings", code, "severity" }, "must be one of ok, info, warning, critical, inconclusive, error")
        end
        if not f.message then fail(file, { "findings", code }, "message: missing (required)") end
    end
    if next(def.findings) == nil then fail(file, "findings", "declare at least one finding code") end
    for name, v in pairs(def.options or {}) do
        if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
            fail(file, "options", "option names are identifiers, found %s", tostring(name))
        end
        if not OPTION_TYPES[type(v)] then
            fail(file, { "options", name }, "the default must be a string, number, boolean or table, got %s", type(v))
        end
    end
    def.requires = def.requires or {}
    def.categories = def.categories or {}
    def.options = def.options or {}
    def.file = file
    return def
end

--- Load one check file in an environment of its own (a fresh table that
-- reads the globals), so that a check cannot leak globals into another.
function M.load_file(path)
    local env = setmetatable({}, { __index = _G })
    local chunk, err = loadfile(path, "t", env)
    if not chunk then error(err, 0) end
    local ok, def = pcall(chunk)
    if not ok then
        local msg = tostring(def):match("^[^\n]*")
        if msg:sub(1, #path + 1) == path .. ":" then error(msg, 0) end
        error(("%s: error while loading: %s"):format(path, msg), 0)
    end
    return M.validate(def, path)
end

-- lua-filesystem reads the directory in-process: `ls` through io.popen
-- costs a shell and a process (about 10 ms before the first DNS query,
-- issue 15).  Without lfs (a stock lua5.4 missing the package), `ls`.
local has_lfs, lfs = pcall(require, "lfs")

local function list_lua_files(dir)
    local files = {}
    local function add(name)
        if name:match("^[%w_%-]+%.lua$") then files[#files + 1] = dir .. "/" .. name end
    end
    if has_lfs then
        local ok, iter, state = pcall(lfs.dir, dir)
        if ok then for name in iter, state do add(name) end end
    else
        local p = io.popen(("ls -1 %q 2>/dev/null"):format(dir))
        if p then
            for name in p:lines() do add(name) end
            p:close()
        end
    end
    table.sort(files)
    return files
end

local function is_dir(path)
    local f = io.open(path .. "/.", "r")
    if f then f:close() return true end
    return false
end

--- The installed-checks search path: $MXPROBE_CHECKS_PATH (directories
-- separated by ":", an empty entry meaning the default), or the default
-- <datadir>/mxprobe/site-checks.  Directories that do not exist are left out.
function M.search_path(getenv)
    getenv = getenv or os.getenv
    local default = paths.root .. "/site-checks"
    local spec = getenv("MXPROBE_CHECKS_PATH")
    local out = {}
    if spec == nil then
        if is_dir(default) then out[1] = default end
        return out
    end
    for entry in (spec .. ":"):gmatch("([^:]*):") do
        local d = entry == "" and default or entry
        if is_dir(d) then out[#out + 1] = d end
    end
    return out
end

--- Every directory to load checks from: stock, installed (unless
-- opts.installed_checks == false), then opts.checks_dirs.
function M.dirs(opts)
    opts = opts or {}
    local dirs = { paths.checks }
    if opts.installed_checks ~= false then
        for _, d in ipairs(M.search_path(opts.getenv)) do dirs[#dirs + 1] = d end
    end
    for _, d in ipairs(opts.checks_dirs or {}) do dirs[#dirs + 1] = d end
    return dirs
end

--- Order checks so that every check comes after what it requires.
-- Raises on unknown dependencies and cycles, naming the check's file.
function M.order(defs)
    local by_id, ids = {}, {}
    for _, d in ipairs(defs) do by_id[d.id] = d; ids[#ids + 1] = d.id end
    table.sort(ids)
    local order, state = {}, {}
    local function visit(d, path)
        if state[d.id] == "done" then return end
        if state[d.id] == "active" then
            local from = 1
            for i, id in ipairs(path) do if id == d.id then from = i break end end
            local cycle = {}
            for i = from, #path do cycle[#cycle + 1] = path[i] end
            cycle[#cycle + 1] = d.id
            local last = by_id[path[#path]]
            fail(last.file, { "requires", { value = d.id } }, "dependency cycle: %s", table.concat(cycle, " -> "))
        end
        state[d.id] = "active"
        path[#path + 1] = d.id
        for i, r in ipairs(d.requires) do
            local dep = by_id[r]
            if not dep then
                fail(d.file, { "requires", i, { value = r } }, "unknown check id %q (known: %s)%s", r,
                    table.concat(ids, ", "), suggest(r, ids))
            end
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
-- A later directory may replace a check of an earlier one by using the
-- same id (its codes go with it); within one directory ids are unique.
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
                d.replaces = by_id[d.id].file
            end
            d.dir = dir
            for code in pairs(d.findings) do
                if codes[code] then fail(path, { "findings", code }, "code already declared by check %q (%s)", codes[code], by_id[codes[code]].file) end
                codes[code] = d.id
            end
            by_id[d.id] = d
            defs[#defs + 1] = d
        end
    end
    return M.order(defs)
end

return M
