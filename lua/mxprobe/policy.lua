--- mxprobe.policy: load, validate and merge policies.
--
-- A policy file returns a table shaped like checks/policy/default.lua.  It
-- is merged over the default: tables merge key by key, lists and scalars
-- replace.  Validation is strict and happens before any probe: unknown keys
-- and wrong types fail with "file: field: what is wrong", so a misspelt
-- field never half-applies.

local paths = require "mxprobe.paths"
local checks = require "mxprobe.checks"

local M = {}

-- The schema: a type name, or a table for nested records.  "list:T" is a
-- list of T; "map:T" a table with any string keys and T values.
local SCHEMA = {
    name = "string",
    description = "string",
    thresholds = {
        greeting_slow_s = "number", expiry_warning_days = "number", min_rsa_bits = "number",
        min_ec_bits = "number", min_tls = "string", max_mx = "number", max_addresses = "number",
    },
    weights = "map:number",
    findings = "map:table",
    grades = "list:table",
    probe = {
        port = "number", helo = "string", families = "list:number",
        timeouts = { connect = "number", greeting = "number", command = "number", tls = "number", dns = "number" },
        relay = { enabled = "boolean", from = "string", to = "string" },
        allow_reserved = "list:string", ca_file = "string", resolvers = "list:string",
        limits = { sessions_per_address = "number", connects_per_second_per_address = "number", max_sessions = "number" },
    },
    checks = { disable = "list:string", enable = "list:string", only = "list:string" },
    rules = "list:function",
    score = "function",
    verdict = "function",
}

local function check_value(file, field, want, v)
    if type(want) == "table" then
        if type(v) ~= "table" then error(("%s: %s: table expected, got %s"):format(file, field, type(v)), 0) end
        for k, sub in pairs(v) do
            local w = want[k]
            if not w then
                local keys = {}
                for kk in pairs(want) do keys[#keys + 1] = kk end
                table.sort(keys)
                error(("%s: %s.%s: unknown field (known: %s)"):format(file, field, tostring(k), table.concat(keys, ", ")), 0)
            end
            check_value(file, field .. "." .. tostring(k), w, sub)
        end
        return
    end
    local kind, elem = want:match("^(%a+):(%a+)$")
    if kind then
        if type(v) ~= "table" then error(("%s: %s: table expected, got %s"):format(file, field, type(v)), 0) end
        for k, x in pairs(v) do
            if kind == "list" and math.type(k) ~= "integer" then
                error(("%s: %s: a list expected, found key %q"):format(file, field, tostring(k)), 0)
            end
            if type(x) ~= elem then
                error(("%s: %s[%s]: %s expected, got %s"):format(file, field, tostring(k), elem, type(x)), 0)
            end
        end
        return
    end
    if type(v) ~= want then error(("%s: %s: %s expected, got %s"):format(file, field, want, type(v)), 0) end
end

--- Validate a policy table; `file` names it in messages.
function M.validate(p, file)
    if type(p) ~= "table" then error(("%s: a policy must return a table, got %s"):format(file, type(p)), 0) end
    for k, v in pairs(p) do
        local want = SCHEMA[tostring(k)]
        if not want then
            error(("%s: %s: unknown field (known: checks, description, findings, grades, name, probe, rules, score, thresholds, verdict, weights)"):format(file, tostring(k)), 0)
        end
        check_value(file, tostring(k), want, v)
    end
    for code, f in pairs(p.findings or {}) do
        for k, v in pairs(f) do
            if k == "severity" then
                if not checks.SEVERITIES[v] then error(("%s: findings.%s.severity: %q is not a severity"):format(file, code, tostring(v)), 0) end
            elseif k == "weight" then
                if type(v) ~= "number" then error(("%s: findings.%s.weight: number expected"):format(file, code), 0) end
            else
                error(("%s: findings.%s.%s: unknown field (known: severity, weight)"):format(file, code, tostring(k)), 0)
            end
        end
    end
    for sev in pairs(p.weights or {}) do
        if not checks.SEVERITIES[sev] then error(("%s: weights.%s: not a severity"):format(file, sev), 0) end
    end
    return p
end

local function merge(base, over)
    local out = {}
    for k, v in pairs(base) do out[k] = v end
    for k, v in pairs(over) do
        if type(v) == "table" and type(out[k]) == "table" and #v == 0 and next(v) ~= nil and k ~= "rules" then
            out[k] = merge(out[k], v)
        else
            out[k] = v
        end
    end
    return out
end

local function load_table(path)
    local chunk, err = loadfile(path, "t")
    if not chunk then error(err, 0) end
    local ok, p = pcall(chunk)
    if not ok then error(("%s: error while loading: %s"):format(path, tostring(p)), 0) end
    return p
end

--- Which checks run: config.only (--checks) or the policy's checks.only,
-- with their dependencies; minus what the policy or config disables (and
-- whatever depends on a disabled check).  Unknown ids are errors.
function M.select_checks(all, pol, config)
    local only = config.only or (pol.checks or {}).only
    local selected = checks.select(all, only)
    local disabled = {}
    for _, id in ipairs((pol.checks or {}).disable or {}) do disabled[id] = true end
    for _, id in ipairs(config.disable or {}) do disabled[id] = true end
    if config.relay and config.relay.enabled == false then disabled.relay = true end
    for id in pairs(disabled) do
        local known = false
        for _, d in ipairs(all) do if d.id == id then known = true end end
        if not known then error(("%s: checks.disable: unknown check id %q"):format(pol.file or "policy", id), 0) end
    end
    local out = {}
    for _, d in ipairs(selected) do
        local off = disabled[d.id]
        for _, r in ipairs(d.requires) do if disabled[r] then off = true end end
        if off then disabled[d.id] = true else out[#out + 1] = d end
    end
    return out
end

--- The default policy.
function M.default()
    local path = paths.checks .. "/policy/default.lua"
    return M.validate(load_table(path), path)
end

--- Load a policy file (or take a table) and merge it over the default.
-- Codes named in findings must exist in the catalog when one is given.
function M.load(src, catalog)
    local base = M.default()
    if src == nil then return base end
    local file = type(src) == "string" and src or "(policy table)"
    local p = type(src) == "string" and load_table(src) or src
    M.validate(p, file)
    if catalog then
        for code in pairs(p.findings or {}) do
            if not catalog[code] then error(("%s: findings.%s: no check declares this code (see mxprobe --list-checks)"):format(file, code), 0) end
        end
    end
    local merged = merge(base, p)
    merged.name = p.name or (type(src) == "string" and src:match("([^/]+)%.lua$")) or "custom"
    merged.file = type(src) == "string" and src or nil
    return merged
end

return M
