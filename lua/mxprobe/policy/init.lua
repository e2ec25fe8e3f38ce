--- mxprobe.policy: load, validate and merge policies (docs/policies.md).
--
--   policy.load(src [, catalog [, checks]]) -> merged policy
--       src: a file name, a policy table, or nil (the default policy);
--       catalog: code -> declaration (engine.catalog), checks: the loaded
--       check list (mxprobe.engine.checks.load).  With them, codes, check ids,
--       categories and check options are validated too.
--   policy.default() -> the stock policy (checks/policy/default.lua)
--   policy.validate(p, file [, env]) -> p, or raises
--   policy.select_checks(all, pol, config) -> the checks that run, and
--       { id -> why } of those turned off
--
-- A policy file returns a table shaped like checks/policy/default.lua.  It
-- is merged over the default: records (thresholds, probe, checks, ...) and
-- maps (weights, findings, options, params) merge key by key; lists and
-- scalars replace.  Validation is strict and complete before anything is
-- merged or probed: unknown keys, wrong types, unknown codes, check ids or
-- categories fail with "FILE:LINE: field: what is wrong", so a misspelt
-- field never half-applies.

local paths = require "mxprobe.runtime.paths"
local core = require "mxprobe.core"
local vocab = require "mxprobe.runtime.vocab"
local config_errors = require "mxprobe.runtime.config_errors"
local trust = require "mxprobe.runtime.file_trust"

local M = {}


-- The schema: a type name, or a table for a record.  "list:T" is a list of
-- T; "map:T" a table with string keys and T values; "any" anything.  Names
-- starting with "@" are validated by a function of their own (below).
M.SCHEMA = {
    name = "string",
    description = "string",
    params = "table",
    thresholds = {
        greeting_slow_s = "number", expiry_warning_days = "number", min_rsa_bits = "number",
        min_ec_bits = "number", min_tls = "string", max_mx = "number", max_addresses = "number",
    },
    weights = "map:number",
    findings = "@findings",
    grades = "@grades",
    grade = "function",
    score = "function",
    verdict = "function",
    probe = {
        port = "number", helo = "string", families = "list:number",
        timeouts = { connect = "number", greeting = "number", command = "number", tls = "number", dns = "number",
                     cpu = "number" },
        vantage_check = "string",
        tls = { enumerate = "@tls_enumerate" },
        allow_reserved = "list:string", ca_file = "string", resolvers = "list:string",
        limits = { sessions_per_address = "number", connects_per_second_per_address = "number", max_sessions = "number",
                   max_domains = "number", max_dns_queries = "number" }, -- the last two: mxprobe audit
    },
    checks = {
        only = "list:string", enable = "list:string", disable = "list:string",
        disable_categories = "list:string",
    },
    options = "@options",
    rules = "@rules",
    senders = { judge = "boolean", certificate_defects = "@severity_or_false" },
}

local function sorted_keys(t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    return keys
end

------------------------------------------------------------------ validation

-- A validation pass: env = { file, lines, catalog, checks (by id), categories }.
local V = {}
V.__index = V

function V:fail(segments, fmt, ...)
    local msg = fmt:format(...)
    local field = config_errors.path_text(segments)
    local line = config_errors.find_line(self.lines, segments)
    local where = line and ("%s:%d"):format(self.file, line) or self.file
    if field == "" then error(("%s: %s"):format(where, msg), 0) end
    error(("%s: %s: %s"):format(where, field, msg), 0)
end

local function push(segments, s)
    local o = {}
    for i, x in ipairs(segments) do o[i] = x end
    o[#o + 1] = s
    return o
end

function V:type(segments, want, v)
    if type(v) ~= want then self:fail(segments, "%s expected, got %s", want, type(v)) end
end

function V:list(segments, elem, v, check_elem)
    self:type(segments, "table", v)
    local n = #v
    for k in pairs(v) do
        if math.type(k) ~= "integer" or k < 1 or k > n then
            self:fail(segments, "a list expected, found the key %s", type(k) == "string" and ("%q"):format(k) or tostring(k))
        end
    end
    for i, x in ipairs(v) do
        local seg = push(segments, i)
        if type(x) == "string" then seg = push(seg, { value = x }) end
        if type(x) ~= elem then self:fail(seg, "%s expected, got %s", elem, type(x)) end
        if check_elem then check_elem(i, x, seg) end
    end
end

function V:value(segments, want, v)
    if type(want) == "table" then
        self:type(segments, "table", v)
        for k, sub in pairs(v) do
            local seg = push(segments, tostring(k))
            if type(k) ~= "string" or not want[k] then
                local known = sorted_keys(want)
                self:fail(seg, "unknown field (known: %s)%s", table.concat(known, ", "), config_errors.suggest(k, known))
            end
            self:value(seg, want[k], sub)
        end
        return
    end
    if want:sub(1, 1) == "@" then return self[want:sub(2)](self, segments, v) end
    if want == "any" then return end
    local kind, elem = want:match("^(%a+):(%a+)$")
    if kind == "list" then return self:list(segments, elem, v) end
    if kind == "map" then
        self:type(segments, "table", v)
        for k, x in pairs(v) do
            if type(k) ~= "string" then self:fail(segments, "string keys expected, found %s", tostring(k)) end
            if type(x) ~= elem then self:fail(push(segments, k), "%s expected, got %s", elem, type(x)) end
        end
        return
    end
    self:type(segments, want, v)
end

local SEVERITY = vocab.SEVERITIES

function V:findings(segments, v)
    self:type(segments, "table", v)
    for code, f in pairs(v) do
        local seg = push(segments, tostring(code))
        if type(code) ~= "string" then self:fail(segments, "finding codes are strings, found %s", tostring(code)) end
        if self.catalog and not self.catalog[code] then
            local known = sorted_keys(self.catalog)
            self:fail(seg, "no check declares this code (see mxprobe --list-checks -v)%s", config_errors.suggest(code, known))
        end
        self:type(seg, "table", f)
        for k, x in pairs(f) do
            local kseg = push(seg, tostring(k))
            if k == "severity" then
                if type(x) ~= "string" or not SEVERITY[x] then
                    self:fail(kseg, "%s is not a severity (%s)", type(x) == "string" and ("%q"):format(x) or type(x),
                        table.concat(vocab.SEVERITY_LIST, ", "))
                end
            elseif k == "weight" then
                if type(x) ~= "number" then self:fail(kseg, "number expected, got %s", type(x)) end
            else
                self:fail(kseg, "unknown field (known: severity, weight)%s", config_errors.suggest(k, { "severity", "weight" }))
            end
        end
    end
end

function V:grades(segments, v)
    self:list(segments, "table", v)
    local last = math.huge
    for i, band in ipairs(v) do
        local seg = push(segments, i)
        if type(band[1]) ~= "number" or type(band[2]) ~= "string" or #band ~= 2 then
            self:fail(seg, "{ minimum score, \"grade\" } expected, e.g. { 90, \"A\" }")
        end
        for k in pairs(band) do
            if k ~= 1 and k ~= 2 then self:fail(seg, "{ minimum score, \"grade\" } expected, found the key %s", tostring(k)) end
        end
        if band[1] >= last then self:fail(seg, "bands go from the highest minimum to the lowest (%s after %s)", band[1], last) end
        last = band[1]
    end
end

local RULE_KEYS = { name = "string", check = "function", description = "string" }

function V:rules(segments, v)
    self:type(segments, "table", v)
    local n = #v
    for k in pairs(v) do
        if math.type(k) ~= "integer" or k < 1 or k > n then
            self:fail(segments, "a list of rules expected, found the key %s", tostring(k))
        end
    end
    for i, r in ipairs(v) do
        local seg = push(segments, i)
        if type(r) == "table" then
            for k, x in pairs(r) do
                local kseg = push(seg, tostring(k))
                if not RULE_KEYS[k] then
                    self:fail(kseg, "unknown field of a rule (known: name, check, description)%s",
                        config_errors.suggest(k, { "name", "check", "description" }))
                end
                if type(x) ~= RULE_KEYS[k] then self:fail(kseg, "%s expected, got %s", RULE_KEYS[k], type(x)) end
            end
            if not r.check then self:fail(push(seg, { value = r.name }), "a rule table needs check = function(result, api) ... end") end
            if not r.name then self:fail(seg, "a rule table needs a name") end
        elseif type(r) ~= "function" then
            self:fail(seg, "a function(result, api) or { name = \"...\", check = function(result, api) ... end } expected, got %s", type(r))
        end
    end
end

function V:options(segments, v)
    self:type(segments, "table", v)
    for id, opts in pairs(v) do
        local seg = push(segments, tostring(id))
        local def = self.checks and self.checks[id]
        if self.checks and not def then
            self:fail(seg, "no check has this id%s", config_errors.suggest(id, sorted_keys(self.checks)))
        end
        self:type(seg, "table", opts)
        for k, x in pairs(opts) do
            local kseg = push(seg, tostring(k))
            if def then
                local declared = def.options or {}
                if declared[k] == nil then
                    local known = sorted_keys(declared)
                    self:fail(kseg, "check %s has no such option (%s)%s", id,
                        #known > 0 and ("known: " .. table.concat(known, ", ")) or "it declares none", config_errors.suggest(k, known))
                end
                if type(x) ~= type(declared[k]) then
                    self:fail(kseg, "%s expected (like the default), got %s", type(declared[k]), type(x))
                end
                -- the check's own rule for the value (a mail address, a range...)
                local why = def.check_option and def.check_option(k, x)
                if why then self:fail(kseg, "%s", tostring(why)) end
            end
        end
    end
end

-- senders.certificate_defects: one severity, or false (the checks' own)
function V:severity_or_false(segments, v)
    if v ~= false and not (type(v) == "string" and SEVERITY[v]) then
        self:fail(segments, "a severity (%s) or false expected, got %s", table.concat(vocab.SEVERITY_LIST, ", "),
            type(v) == "string" and ("%q"):format(v) or type(v))
    end
end

local set_of = vocab.set_of
-- probe.tls.enumerate: how deep checks/tls_offer.lua grades the TLS offer
function V:tls_enumerate(segments, v)
    local modes = { versions = true, grades = true, suites = true }
    if v ~= false and not modes[v] then
        self:fail(segments, "\"versions\", \"grades\", \"suites\" or false expected, got %s", type(v) == "string" and ("%q"):format(v) or type(v))
    end
end

local TLS_SET, KIND_SET = set_of(vocab.TLS_VERSIONS), set_of(vocab.RESERVED_KINDS)

-- The range of every number a user gives (policy files, --timeout-*, the
-- embedding API's options): { lowest, highest, integer = true, above = true
-- (lowest itself excluded) }.  Why every one: NaN fails every comparison and
-- so passed "x <= 0" style checks, and an infinite time-out waits forever;
-- a finite upper bound also keeps a typo (3600000) from looking like a hang.
local SECONDS = { 0, 86400, above = true } -- a day
M.RANGES = {
    thresholds = {
        greeting_slow_s = { 0, 86400 }, expiry_warning_days = { 0, 36500 },
        min_rsa_bits = { 0, 65536, integer = true }, min_ec_bits = { 0, 4096, integer = true },
        max_mx = { 0, 10000, integer = true }, max_addresses = { 0, 10000, integer = true },
    },
    weight = { 0, 1000 },            -- weights.<severity>, findings.<code>.weight
    grade_minimum = { -100000, 100 }, -- grades[i][1]: scores are 100 minus weights
    timeouts = { connect = SECONDS, greeting = SECONDS, command = SECONDS, tls = SECONDS, dns = SECONDS },
    limits = {
        sessions_per_address = { 1, 10000, integer = true }, connects_per_second_per_address = { 0, 1000000 },
        max_sessions = { 0, 1000000, integer = true }, max_domains = { 1, 1000000, integer = true },
        max_dns_queries = { 1, 1000000, integer = true },
    },
    option = { -2^53, 2^53 },        -- a check's numeric option: finite at least
}

--- Why number x is outside range r, or nil when it is inside.
function M.out_of_range(x, r)
    if type(x) ~= "number" then return nil end
    local function num(n)
        if n ~= n then return "NaN" end
        if math.type(n) == "float" and n == math.floor(n) and math.abs(n) < 2^53 then return ("%d"):format(n) end
        return tostring(n)
    end
    local lo, hi = r[1], r[2]
    local inside = x == x and (r.above and x > lo or not r.above and x >= lo) and x <= hi
    if inside and not (r.integer and x ~= math.floor(x)) then return nil end
    if r.above then return ("must be more than %s and at most %s, got %s"):format(num(lo), num(hi), num(x)) end
    return ("must be a %s from %s to %s, got %s"):format(r.integer and "whole number" or "number", num(lo), num(hi), num(x))
end

function V:range(segments, x, r)
    local why = M.out_of_range(x, r)
    if why then self:fail(segments, "%s", why) end
end

-- Checks beyond types: ranges, known names, ids and categories.
function V:semantics(p)
    local t = p.thresholds or {}
    for k, x in pairs(t) do
        if M.RANGES.thresholds[k] then self:range({ "thresholds", k }, x, M.RANGES.thresholds[k]) end
    end
    if t.min_tls and not TLS_SET[t.min_tls] then
        self:fail({ "thresholds", "min_tls" }, "%q is not a TLS version (%s)", t.min_tls, table.concat(vocab.TLS_VERSIONS, ", "))
    end
    for sev, x in pairs(p.weights or {}) do
        if not SEVERITY[sev] then self:fail({ "weights", sev }, "not a severity (%s)", table.concat(vocab.SEVERITY_LIST, ", ")) end
        self:range({ "weights", sev }, x, M.RANGES.weight)
    end
    if type(p.findings) == "table" then
        for code, f in pairs(p.findings) do
            if type(f) == "table" then self:range({ "findings", tostring(code), "weight" }, f.weight, M.RANGES.weight) end
        end
    end
    for i, band in ipairs(type(p.grades) == "table" and p.grades or {}) do
        if type(band) == "table" then self:range({ "grades", i }, band[1], M.RANGES.grade_minimum) end
    end
    if type(p.options) == "table" then
        for id, opts in pairs(p.options) do
            for k, x in pairs(type(opts) == "table" and opts or {}) do
                self:range({ "options", tostring(id), tostring(k) }, x, M.RANGES.option)
            end
        end
    end
    local probe = p.probe or {}
    if probe.port and (math.type(probe.port) ~= "integer" or probe.port < 1 or probe.port > 65535) then
        self:fail({ "probe", "port" }, "a port number 1-65535 expected")
    end
    if probe.families then
        if #probe.families == 0 then self:fail({ "probe", "families" }, "at least one of 4, 6") end
        for _, f in ipairs(probe.families) do
            if f ~= 4 and f ~= 6 then self:fail({ "probe", "families" }, "%s is not an address family (4 or 6)", tostring(f)) end
        end
    end
    for k, x in pairs(probe.timeouts or {}) do
        if M.RANGES.timeouts[k] then self:range({ "probe", "timeouts", k }, x, M.RANGES.timeouts[k]) end
    end
    for k, x in pairs(probe.limits or {}) do
        if M.RANGES.limits[k] then self:range({ "probe", "limits", k }, x, M.RANGES.limits[k]) end
    end
    for i, kind in ipairs(probe.allow_reserved or {}) do
        if not KIND_SET[kind] then
            self:fail({ "probe", "allow_reserved", i, { value = kind } }, "%q is not an address kind (%s)%s", kind,
                table.concat(vocab.RESERVED_KINDS, ", "), config_errors.suggest(kind, vocab.RESERVED_KINDS))
        end
    end
    if probe.helo and (probe.helo == "" or probe.helo:find("[%s%c]")) then
        self:fail({ "probe", "helo" }, "%q is not a host name", probe.helo)
    end
    local ch = p.checks or {}
    if self.checks then
        local ids = sorted_keys(self.checks)
        for _, list in ipairs { "only", "enable", "disable" } do
            for i, id in ipairs(ch[list] or {}) do
                if not self.checks[id] then
                    self:fail({ "checks", list, i, { value = id } }, "unknown check id %q (known: %s)%s", id,
                        table.concat(ids, ", "), config_errors.suggest(id, ids))
                end
            end
        end
        local cats = sorted_keys(self.categories)
        for i, c in ipairs(ch.disable_categories or {}) do
            if not self.categories[c] then
                self:fail({ "checks", "disable_categories", i, { value = c } }, "no check has the category %q (known: %s)%s", c,
                    table.concat(cats, ", "), config_errors.suggest(c, cats))
            end
        end
        local off = set_of(ch.disable or {})
        for i, id in ipairs(ch.enable or {}) do
            if off[id] then self:fail({ "checks", "enable", i, { value = id } }, "%q is in both checks.enable and checks.disable", id) end
        end
    end
end

--- Validate a policy table; file names it in messages.  env (optional):
-- { lines = source lines, catalog = , checks = { id -> def } }.
function M.validate(p, file, env)
    env = env or {}
    local v = setmetatable({ file = file, lines = env.lines, catalog = env.catalog }, V)
    if env.checks then
        v.checks, v.categories = {}, {}
        for _, d in ipairs(env.checks) do
            v.checks[d.id] = d
            for _, c in ipairs(d.categories or {}) do v.categories[c] = true end
        end
    end
    if type(p) ~= "table" then
        error(("%s: a policy must return a table, got %s (the file must end with `return { ... }`)"):format(file, type(p)), 0)
    end
    for k, x in pairs(p) do
        local want = type(k) == "string" and M.SCHEMA[k]
        if not want then
            local known = sorted_keys(M.SCHEMA)
            v:fail({ tostring(k) }, "unknown field (known: %s)%s", table.concat(known, ", "), config_errors.suggest(k, known))
        end
        v:value({ k }, want, x)
    end
    v:semantics(p)
    return p
end

------------------------------------------------------------------ merging

-- A record or a map merges key by key; a list (or an empty table) replaces.
local function is_list(t) return next(t) == nil or t[1] ~= nil end

local function merge(base, over, top)
    local out = {}
    for k, v in pairs(base) do out[k] = v end
    for k, v in pairs(over) do
        if type(v) == "table" and type(out[k]) == "table" and not is_list(v) and not is_list(out[k])
           and not (top and k == "rules") then
            out[k] = merge(out[k], v)
        else
            out[k] = v
        end
    end
    return out
end
M.merge = merge

-- What a policy file's code can reach (docs/policies.md, "What a policy
-- may do"): pure functions only.  A policy judges results that it is
-- handed; it has no business running programs, touching files or the
-- network, or changing the libraries the engine uses.  So: no io, os
-- beyond the clock, require, load/dofile (load would run code in the real
-- global table), debug, collectgarbage or print; the libraries are copies,
-- and getmetatable refuses strings (the string metatable leads to the real
-- string table).  Rules do their DNS work through `api`.
M.SANDBOX_GLOBALS = {
    "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber", "tostring", "type",
    "xpcall", "rawequal", "rawget", "rawlen", "rawset", "setmetatable", "_VERSION",
}
M.SANDBOX_LIBRARIES = {
    string = { "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower", "match", "rep", "reverse",
               "sub", "upper", "pack", "packsize", "unpack" },
    table = { "concat", "insert", "move", "pack", "remove", "sort", "unpack" },
    math = true, -- every function and constant
    utf8 = true,
    os = { "clock", "date", "difftime", "time" },
}

--- A fresh environment for one policy file.
function M.sandbox()
    local env = {}
    for _, k in ipairs(M.SANDBOX_GLOBALS) do env[k] = _G[k] end
    for lib, names in pairs(M.SANDBOX_LIBRARIES) do
        local copy = {}
        if names == true then
            for k, v in pairs(_G[lib]) do copy[k] = v end
        else
            for _, k in ipairs(names) do copy[k] = _G[lib][k] end
        end
        env[lib] = copy
    end
    env.getmetatable = function(v)
        if type(v) == "string" then return nil end
        return getmetatable(v)
    end
    env._G = env
    return env
end

local function load_chunk(path)
    trust.check(path, "policy file")
    local chunk, err = loadfile(path, "t", M.sandbox())
    if not chunk then
        -- syntax errors name the file; a few parser limits do not ("C stack overflow")
        err = tostring(err)
        if err:sub(1, #path + 1) ~= path .. ":" then err = ("%s: %s"):format(path, err) end
        error(err, 0)
    end
    local ok, p = pcall(chunk)
    if not ok then
        local msg = tostring(p):match("^[^\n]*")
        if msg:sub(1, #path + 1) == path .. ":" then error(msg, 0) end
        error(("%s: error while loading: %s"):format(path, msg), 0)
    end
    return p
end

--- The default policy.
function M.default()
    local path = paths.checks .. "/policy/default.lua"
    return M.validate(load_chunk(path), path, { lines = config_errors.read_lines(path) })
end

local function dirname(path) return path:match("^(.*)/[^/]*$") or "." end

--- Load a policy (a file name or a table) and merge it over the default.
-- With catalog and checks, codes, check ids, categories and options are
-- validated as well.  Raises "FILE:LINE: field: problem" (one line).
function M.load(src, catalog, all_checks)
    local base = M.default()
    if src == nil then
        base.file = paths.checks .. "/policy/default.lua"
        return base
    end
    local file, p, lines
    if type(src) == "string" then
        file, p, lines = src, load_chunk(src), config_errors.read_lines(src)
    elseif type(src) == "table" then
        file, p = "(policy table)", src
    else
        error(("policy: a file name or a table expected, got %s"):format(type(src)), 0)
    end
    M.validate(p, file, { lines = lines, catalog = catalog, checks = all_checks })
    local merged = merge(base, p, true)
    merged.name = p.name or (type(src) == "string" and src:match("([^/]+)%.lua$")) or "custom"
    merged.file = type(src) == "string" and src or nil
    merged.lines = lines
    -- a CA file next to the policy: relative to the policy's directory
    local ca = merged.probe and merged.probe.ca_file
    if ca and merged.file and (p.probe or {}).ca_file and ca:sub(1, 1) ~= "/" then
        merged.probe = merge(merged.probe, { ca_file = dirname(merged.file) .. "/" .. ca })
    end
    return merged
end

--- Where a field of the policy is written: "file:line", or the file.
function M.where(pol, segments)
    local line = config_errors.find_line(pol.lines, segments)
    local file = pol.file or "(policy table)"
    return line and ("%s:%d"):format(file, line) or file
end

--- When the policy's findings table changes the severity of code from
-- the check's default: { from = default, policy = name, source =
-- "file:line" } (cached per policy and code), else nil.
function M.override(pol, code, default_severity)
    local over = (pol.findings or {})[code]
    if not over or not over.severity or over.severity == default_severity then return nil end
    pol.overrides = pol.overrides or {}
    local o = pol.overrides[code]
    if not o then
        o = { from = default_severity, policy = pol.name, source = M.where(pol, { "findings", code, "severity" }) }
        pol.overrides[code] = o
    end
    return { from = o.from, policy = o.policy, source = o.source }
end

--- What the policy asks of this machine, checked once the probe
-- configuration is built (engine.new): a CA file that cannot be read is
-- a mistake of the policy (or of --ca-file), not a TLS failure of every
-- server.
function M.check_config(pol, config)
    -- numbers from the caller (command line, embedding API, audit options);
    -- the policy's own were checked by M.validate
    for _, group in ipairs { "timeouts", "limits" } do
        for k, x in pairs(type(config[group]) == "table" and config[group] or {}) do
            local r = M.RANGES[group][k]
            local why = r and (type(x) ~= "number" and ("a number expected, got %s"):format(type(x)) or M.out_of_range(x, r))
            if why then error(("%s.%s: %s"):format(group, k, why), 0) end
        end
    end
    if config.port ~= nil and (math.type(config.port) ~= "integer" or config.port < 1 or config.port > 65535) then
        local x = config.port
        error(("port: a port number 1-65535 expected, got %s"):format(x ~= x and "NaN" or tostring(x)), 0)
    end
    local ca = config.ca_file
    if type(ca) == "string" then
        local f, err = io.open(ca, "r")
        if not f then
            local why = tostring(err):gsub("^[^:]*: ", "")
            if pol.probe and pol.probe.ca_file == ca then
                error(("%s: probe.ca_file: cannot read %q: %s"):format(M.where(pol, { "probe", "ca_file" }), ca, why), 0)
            end
            error(("ca_file: cannot read %q: %s"):format(ca, why), 0)
        end
        f:close()
        -- readable is not enough: a file without a certificate would fail
        -- every server's TLS (core.tls.load_ca names the file)
        local n, err = core.tls.load_ca(ca)
        if not n then
            if pol.probe and pol.probe.ca_file == ca then
                error(("%s: probe.ca_file: %s"):format(M.where(pol, { "probe", "ca_file" }), err), 0)
            end
            error(("ca_file: %s"):format(err), 0)
        end
    end
end

------------------------------------------------------------------ selection

--- The checks to run when only some are asked for: those and what they
-- require, in the given (dependency) order.
local function with_requirements(ordered, wanted)
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

--- Which checks run.  config.only (--checks) or the policy's checks.only
-- names checks to run, with what they require; otherwise every check runs
-- except those off by default (the check declares enabled = false) and
-- those in a category of checks.disable_categories.  checks.enable turns
-- on checks that are off by default or by category, with what they
-- require.  checks.disable (and --no-relay) always wins, and turns off
-- whatever requires the checks it names.
function M.select_checks(all, pol, config)
    local ch = pol.checks or {}
    local by_id = {}
    for _, d in ipairs(all) do by_id[d.id] = d end
    local function need(id, what)
        if not by_id[id] then
            local ids = sorted_keys(by_id)
            error(("%s: %s: unknown check id %q (known: %s)"):format(M.where(pol, { "checks", { value = id } }), what, id,
                table.concat(ids, ", ")), 0)
        end
    end
    local only = config.only or ch.only
    if only and #only == 0 then only = nil end
    local disabled = {}
    for _, id in ipairs(ch.disable or {}) do need(id, "checks.disable"); disabled[id] = "checks.disable" end
    for _, id in ipairs(config.disable or {}) do need(id, "disable"); disabled[id] = "the options (--no-relay, disable)" end
    -- asked for by name: runs whatever its default or category, with what it requires
    local forced = {}
    local function force(id)
        if forced[id] then return end
        forced[id] = true
        for _, r in ipairs(by_id[id].requires) do force(r) end
    end
    local asked = {}
    for _, id in ipairs(only or {}) do need(id, config.only and "--checks" or "checks.only"); asked[#asked + 1] = id; force(id) end
    for _, id in ipairs(ch.enable or {}) do need(id, "checks.enable"); asked[#asked + 1] = id; force(id) end
    local selected = only and with_requirements(all, asked) or all
    local cats = set_of(ch.disable_categories or {})
    for _, d in ipairs(selected) do
        if not forced[d.id] and not disabled[d.id] then
            if d.enabled == false then disabled[d.id] = "off by default" end
            for _, c in ipairs(d.categories) do
                if cats[c] then disabled[d.id] = "checks.disable_categories" end
            end
        end
    end
    local enabled = set_of(ch.enable or {})
    local out = {}
    for _, d in ipairs(selected) do -- in dependency order: a requirement is decided first
        local off = disabled[d.id]
        for _, r in ipairs(d.requires) do
            if disabled[r] and not off then
                off = ("requires %s"):format(r)
                if enabled[d.id] then
                    error(("%s: checks.enable: %q requires %q, which %s turns off"):format(
                        M.where(pol, { "checks", "enable", { value = d.id } }), d.id, r,
                        disabled[r]:match("^requires") and "a disabled check" or disabled[r]), 0)
                end
            end
        end
        if off then disabled[d.id] = off else out[#out + 1] = d end
    end
    return out, disabled
end

--- Options set by the caller (engine config.options, from the command
-- line): validated like a policy's options table.
function M.check_options(opts, all_checks)
    if opts == nil then return end
    M.validate({ options = opts }, "options", { checks = all_checks })
end

return M
