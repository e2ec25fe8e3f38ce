--- mxprobe.policy.rules: domain-level policy rules (docs/policies.md, docs/api.md).
--
-- policy.rules is a list; each entry is either
--   function(result, api) ... end                      -- named by file:line
--   { name = "all MX in our list", description = "...",
--     check = function(result, api) ... end }
-- A rule runs once per domain, after every check and summary, and sees the
-- whole result: result.dns.mx (every MX), result.servers (every address,
-- with facts and findings), result.findings.  Through `api` it may
--   * report:   api.fail / api.warn / api.info / api.pass / api.inconclusive
--               (message [, { server = , hint = , evidence = }])
--               -> a POLICY_RULE finding that names the rule;
--   * override: api.set_severity(finding, severity, why) -> the finding
--               keeps its code and records the rule and its old severity;
--   * look:     api.each, api.find, api.has, api.mx, api.lowest_preference,
--               api.is_backup, api.match, api.network, api.weight,
--               api.query (DNS), api.params, api.policy, api.config.
-- A rule that raises becomes a POLICY_RULE finding of severity "error"
-- (traceback under -v); the other rules still run.

local vocab = require "mxprobe.runtime.vocab"
local iputil = require "mxprobe.net.iputil"
local findings = require "mxprobe.runtime.findings"
local loop = require "mxprobe.runtime.loop"
local budget = require "mxprobe.runtime.budget"

local M = {}

--- The name, source ("file:line") and function of rule number i.  A
-- plain function is named by its source.
function M.describe(rule, i)
    local fn = type(rule) == "function" and rule or rule.check
    local info = debug.getinfo(fn, "S")
    local src = info.source:sub(1, 1) == "@" and info.source:sub(2) or info.short_src
    local source = ("%s:%d"):format(src, info.linedefined)
    local name = type(rule) == "table" and rule.name or source
    return { name = name, source = source, fn = fn, description = type(rule) == "table" and rule.description or nil }
end

local function argerr(fname, n, msg)
    error(("bad argument #%d to 'api.%s' (%s)"):format(n, fname, msg), 3)
end

local function is_server(result, srv)
    for _, s in ipairs(result.servers) do if s == srv then return true end end
    return false
end

-- Every finding of the result, with its server (nil for DNS and domain ones).
local each = findings.each
M.each = each

--- Does a host name match a pattern (or any pattern of a list)?  "*"
-- stands for any run of characters within one label ("*.example.net"
-- matches "mx1.example.net", not "a.b.example.net"); case-insensitive,
-- trailing dots ignored.
function M.match(name, pattern)
    if type(pattern) == "table" then
        for _, p in ipairs(pattern) do if M.match(name, p) then return true end end
        return false
    end
    name = tostring(name):lower():gsub("%.$", "")
    pattern = tostring(pattern):lower():gsub("%.$", "")
    local lp = "^" .. pattern:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"):gsub("%*", "[^.]*") .. "$"
    return name:match(lp) ~= nil
end

--- The network an address is in: "192.0.2.0/24", "2001:db8:1::/48".
function M.network(address, v4_bits, v6_bits)
    v4_bits, v6_bits = v4_bits or 24, v6_bits or 48
    local o = iputil.parse4(address)
    if o then
        local n = (o[1] << 24) | (o[2] << 16) | (o[3] << 8) | o[4]
        local mask = v4_bits == 0 and 0 or ((0xffffffff << (32 - v4_bits)) & 0xffffffff)
        n = n & mask
        return ("%d.%d.%d.%d/%d"):format(n >> 24 & 255, n >> 16 & 255, n >> 8 & 255, n & 255, v4_bits)
    end
    local g = iputil.parse6(address)
    if not g then return nil end
    local out, bits = {}, v6_bits
    for i = 1, 8 do
        local keep = math.max(0, math.min(16, bits - (i - 1) * 16))
        local mask = keep == 0 and 0 or ((0xffff << (16 - keep)) & 0xffff)
        out[i] = ("%x"):format(g[i] & mask)
    end
    -- shorten the trailing zeros only: 2001:db8:1:0:0:0:0:0 -> 2001:db8:1::
    local last = 8
    while last > 0 and out[last] == "0" do last = last - 1 end
    local text = table.concat(out, ":", 1, math.max(last, 1))
    if last < 8 then text = text .. "::" end
    return ("%s/%d"):format(text, v6_bits)
end

--- The policy's weight of a finding: the weight the policy gives its code,
-- else the weight of its severity.  Once a rule changed its severity, the
-- weight of the new severity.
function M.weight(pol, f)
    local pf = pol.findings
    local over = pf and pf[f.code]
    -- a rule or a check (ctx:set_severity) re-judged it: the new severity's weight
    if over and over.weight then
        local o = f.override
        if not (o and (o.rule or o.check)) then return over.weight end
    end
    local w = pol.weights
    return w and w[f.severity] or 0
end

local REPORT_KEYS = { server = true, hint = true, evidence = true }

--- The api a rule (described by r) receives.
function M.api(run, result, r)
    local api = {
        params = run.policy.params or {}, policy = run.policy, config = run.config,
        rule = { name = r.name, source = r.source },
    }

    function api.report(severity, message, opts)
        if not vocab.SEVERITIES[severity] then argerr("report", 1, ("%q is not a severity"):format(tostring(severity))) end
        if type(message) ~= "string" then argerr("report", 2, "a message string expected, got " .. type(message)) end
        if opts ~= nil and type(opts) ~= "table" then argerr("report", 3, "a table { server =, hint =, evidence = } expected") end
        opts = opts or {}
        for k in pairs(opts) do
            if not REPORT_KEYS[k] then argerr("report", 3, ("unknown key %q (known: server, hint, evidence)"):format(tostring(k))) end
        end
        if opts.server ~= nil and not is_server(result, opts.server) then
            argerr("report", 3, "server must be one of result.servers")
        end
        local f = {
            code = "POLICY_RULE", check = "policy", severity = severity, message = message,
            hint = opts.hint, evidence = opts.evidence or {}, rule = r.name, rule_source = r.source,
        }
        local list = opts.server and opts.server.findings or result.findings
        list[#list + 1] = f
        return f
    end
    local function reporter(sev, fname)
        return function(message, opts)
            if type(message) ~= "string" then argerr(fname, 1, "a message string expected, got " .. type(message)) end
            return api.report(sev, message, opts)
        end
    end
    api.fail = reporter("critical", "fail")
    api.critical = api.fail
    api.warn = reporter("warning", "warn")
    api.info = reporter("info", "info")
    api.pass = reporter("ok", "pass")
    api.inconclusive = reporter("inconclusive", "inconclusive")

    --- Change the severity of a finding (it keeps its code); the finding
    -- records the rule, the old severity and why.
    function api.set_severity(f, severity, why)
        if type(f) ~= "table" or type(f.code) ~= "string" then argerr("set_severity", 1, "a finding expected") end
        if not vocab.SEVERITIES[severity] then
            argerr("set_severity", 2, ("%q is not a severity"):format(tostring(severity)))
        end
        if why ~= nil and type(why) ~= "string" then argerr("set_severity", 3, "a string (why) expected") end
        if f.severity == severity then return f end
        f.override = { from = f.severity, rule = r.name, source = r.source, why = why }
        f.severity = severity
        f.rule, f.rule_source = r.name, r.source
        return f
    end

    return M.add_readers(api, run, result)
end

--- What a rule reads: the findings, the MX list, DNS.  Part of M.api.
function M.add_readers(api, run, result)
    function api.each(code) return each(result, code) end
    function api.find(code, server)
        for f, srv in each(result, code) do
            if server == nil or srv == server then return f, srv end
        end
    end
    function api.has(code, server) return api.find(code, server) ~= nil end
    function api.mx() return result.dns.mx end
    function api.senders() return result.senders end -- mxprobe.policy.senders: what each kind of sender does
    function api.lowest_preference()
        local low
        for _, m in ipairs(result.dns.mx) do
            if m.preference and (not low or m.preference < low) then low = m.preference end
        end
        for _, s in ipairs(result.servers) do
            if s.preference and (not low or s.preference < low) then low = s.preference end
        end
        return low
    end
    function api.is_backup(x)
        local low = api.lowest_preference()
        return x ~= nil and x.preference ~= nil and low ~= nil and x.preference > low
    end
    api.match = M.match
    api.network = M.network
    function api.weight(f) return M.weight(run.policy, f) end
    --- A DNS query (yields; the probe's DNS timeout).  Answer table, or nil, code, detail.
    function api.query(name, qtype)
        return run.dns:query(name, qtype, loop.now() + ((run.config.timeouts or {}).dns or 5))
    end
    return api
end

local function failure(run, result, r, err, what)
    local msg = type(err) == "table" and err.budget and err.traceback or tostring(err)
    return {
        code = "POLICY_RULE", check = "policy", severity = "error",
        message = ("%s '%s' (%s) failed: %s"):format(what or "policy rule", r.name, r.source, msg:match("^[^\n]*")),
        evidence = run.config.verbose and { traceback = msg } or {},
        rule = r.name, rule_source = r.source,
        hint = "A bug in the policy: fix the rule; run with -v for the traceback.",
    }
end
M.failure = failure

--- Run every rule of the policy over the result.
function M.apply(run, result)
    for i, rule in ipairs(run.policy.rules or {}) do
        local r = M.describe(rule, i)
        local ok, err = budget.call((run.config.timeouts or {}).cpu, r.fn, result, M.api(run, result, r))
        if not ok then
            result.findings[#result.findings + 1] = failure(run, result, r, err)
        end
    end
end

return M
