--- mxprobe.judge: scores, grades, domain rules and the verdict, all read
-- from the policy (checks/policy/default.lua documents the knobs).

local M = {}

local RANK = { ok = 0, info = 0, warning = 1, critical = 2 }
local EXIT = { ok = 0, warning = 1, critical = 2, inconclusive = 3 }

local function weight_of(pol, catalog, f)
    local over = (pol.findings or {})[f.code]
    if over and over.weight then return over.weight end
    return (pol.weights or {})[f.severity] or 0
end

--- Score a server: 100 minus the weights of its findings, floored at 0.
function M.score(pol, catalog, srv)
    if pol.score then return pol.score(srv) end
    local s = 100
    for _, f in ipairs(srv.findings) do s = s - weight_of(pol, catalog, f) end
    return math.max(0, math.floor(s + 0.5))
end

function M.grade(pol, score)
    for _, band in ipairs(pol.grades or {}) do
        if score >= band[1] then return band[2] end
    end
    return "F"
end

local function each_finding(result, fn)
    for _, f in ipairs(result.dns.findings) do fn(f, nil) end
    for _, f in ipairs(result.findings) do fn(f, nil) end
    for _, srv in ipairs(result.servers) do
        for _, f in ipairs(srv.findings) do fn(f, srv) end
    end
end
M.each_finding = each_finding

--- The default verdict: the worst conclusive severity; "inconclusive" when
-- something could not be tested and nothing conclusive is wrong.
function M.verdict(result)
    local worst, worst_f, worst_srv = 0, nil, nil
    local unsure, unsure_f, unsure_srv = false, nil, nil
    each_finding(result, function(f, srv)
        local r = RANK[f.severity]
        if r == nil then
            if not unsure then unsure, unsure_f, unsure_srv = true, f, srv end
        elseif r > worst then
            worst, worst_f, worst_srv = r, f, srv
        end
    end)
    if worst == 2 then return "critical", worst_f, worst_srv end
    if worst == 1 then return "warning", worst_f, worst_srv end
    if unsure then return "inconclusive", unsure_f, unsure_srv end
    return "ok", nil, nil
end

function M.judge(run, result, dctx)
    local pol = run.policy
    for _, srv in ipairs(result.servers) do
        srv.score = M.score(pol, run.catalog, srv)
        srv.grade = M.grade(pol, srv.score)
    end
    local rules = require "mxprobe.rules"
    rules.apply(run, result, dctx)
    local verdict, f, srv
    if pol.verdict then
        verdict, f = pol.verdict(result)
    else
        verdict, f, srv = M.verdict(result)
    end
    if not EXIT[verdict] then
        error(("policy verdict function returned %q (expected ok, warning, critical or inconclusive)"):format(tostring(verdict)), 0)
    end
    result.verdict = verdict
    result.exit_code = EXIT[verdict]
    if f then
        result.decided_by = { code = f.code, check = f.check, rule = f.rule,
                              host = srv and srv.host or nil, address = srv and srv.address or nil }
    end
end

return M
