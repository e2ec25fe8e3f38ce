--- mxprobe.policy.judge: scores, grades, domain rules and the verdict, all read
-- from the policy (checks/policy/default.lua documents the knobs,
-- docs/policies.md the order):
--   1. every server is scored (policy.score or 100 minus the weights) and graded;
--      a server that could not be tested (srv.untested, set by a check with
--      ctx:not_tested) gets no score and no grade, and score_reason says why;
--   2. the sender matrix is judged (policy/sender_verdict.lua, policy.senders),
--      then the policy's rules run (they may add findings or change severities);
--   3. every server is scored and graded again, so rules count;
--   4. the verdict: policy.verdict, or the worst conclusive severity;
--      result.decided_by names the finding, and the rule or policy entry
--      behind its severity.

local rules = require "mxprobe.policy.rules"
local findings = require "mxprobe.runtime.findings"
local vocab = require "mxprobe.runtime.vocab"
local budget = require "mxprobe.runtime.budget"
local senders = require "mxprobe.policy.senders"
local sender_verdict = require "mxprobe.policy.sender_verdict"

local M = {}

local RANK = { ok = 0, info = 0, warning = 1, critical = 2 }
local EXIT = vocab.VERDICT_EXIT
M.EXIT = EXIT

-- A shared probe's findings list (runtime.findings.own) is the same table
-- for every domain that uses the server: what is computed from it alone
-- is computed once, by policy and list (weak: they go with the lists).
local weak_k = { __mode = "k" }
local score_memo = setmetatable({}, weak_k)

local function score_of(pol, l)
    local s = 100
    for _, f in ipairs(l) do s = s - rules.weight(pol, f) end
    return math.max(0, math.floor(s + 0.5))
end

--- Score a server: 100 minus the weights of its findings, floored at 0.
function M.default_score(pol, srv)
    local l = srv.findings
    if not findings.is_shared(l) then return score_of(pol, l) end
    local memo = score_memo[pol]
    if not memo then memo = setmetatable({}, weak_k); score_memo[pol] = memo end
    local s = memo[l]
    if s == nil then s = score_of(pol, l); memo[l] = s end
    return s
end

function M.score(pol, catalog, srv)
    if pol.score then return pol.score(srv) end
    return M.default_score(pol, srv)
end

function M.grade(pol, score)
    for _, band in ipairs(pol.grades or {}) do
        if score >= band[1] then return band[2] end
    end
    return "F"
end

local function each_finding(result, fn)
    for f, srv in findings.each(result) do fn(f, srv) end
end
M.each_finding = each_finding

-- One list of findings into the verdict's state: the worst conclusive
-- finding so far (rank, finding, server) and the first inconclusive one.
-- A call per list, not per finding (issue 15: the walk runs once per
-- domain of an audit, and findings.each's iterator was a call per finding).
local function worst_of(l, srv, worst, wf, ws, uf, us)
    if type(l) ~= "table" then return worst, wf, ws, uf, us end
    for i = 1, #l do
        local f = l[i]
        if type(f) == "table" then
            local r = RANK[f.severity]
            if r == nil then
                if not uf then uf, us = f, srv end
            elseif r > worst or (r == worst and r > 0 and f.rule and not wf.rule) then
                -- on a tie, a finding a policy rule added or judged is the more specific reason
                worst, wf, ws = r, f, srv
            end
        end
    end
    return worst, wf, ws, uf, us
end

-- What worst_of takes from one list, for a shared list: its worst rank
-- (-1: none ranked), the first finding of that rank, the first of that
-- rank a rule added or judged, the first inconclusive one.  Folding it in
-- (worst_shared) gives what walking the list does.
local worst_memo = setmetatable({}, weak_k)

local function list_worst(l)
    local w, first, first_rule, unranked = -1, nil, nil, nil
    for i = 1, #l do
        local f = l[i]
        if type(f) == "table" then
            local r = RANK[f.severity]
            if r == nil then
                unranked = unranked or f
            elseif r > w then
                w, first, first_rule = r, f, f.rule and f or nil
            elseif r == w and not first_rule and f.rule then
                first_rule = f
            end
        end
    end
    return { w, first, first_rule, unranked }
end

local function worst_shared(l, srv, worst, wf, ws, uf, us)
    local m = worst_memo[l]
    if not m then m = list_worst(l); worst_memo[l] = m end
    local w, first, first_rule, unranked = m[1], m[2], m[3], m[4]
    if unranked and not uf then uf, us = unranked, srv end
    if w > worst then
        -- walking: the first of rank w is taken, then replaced once by a
        -- later one a rule touched (only above ok)
        if w > 0 and first_rule then return w, first_rule, srv, uf, us end
        return w, first, srv, uf, us
    elseif w == worst and w > 0 and first_rule and not wf.rule then
        return w, first_rule, srv, uf, us
    end
    return worst, wf, ws, uf, us
end

--- The default verdict: the worst conclusive severity; "inconclusive" when
-- something could not be tested and nothing conclusive is wrong.  The
-- deciding finding is the first of the worst severity, preferring one a
-- policy rule added or changed.  The lists in findings.each's order: the
-- DNS findings, the domain's, each server's.
function M.verdict(result)
    local dns = result.dns
    local worst, wf, ws, uf, us = worst_of(type(dns) == "table" and dns.findings, nil, 0)
    worst, wf, ws, uf, us = worst_of(result.findings, nil, worst, wf, ws, uf, us)
    local servers = result.servers
    if type(servers) == "table" then
        for i = 1, #servers do
            local srv = servers[i]
            if type(srv) == "table" then
                local l = srv.findings
                if findings.is_shared(l) then
                    worst, wf, ws, uf, us = worst_shared(l, srv, worst, wf, ws, uf, us)
                else
                    worst, wf, ws, uf, us = worst_of(l, srv, worst, wf, ws, uf, us)
                end
            end
        end
    end
    if worst == 2 then return "critical", wf, ws end
    if worst == 1 then return "warning", wf, ws end
    if uf then return "inconclusive", uf, us end
    return "ok", nil, nil
end

local server_of = findings.server_of

-- A function of the policy (score, grade, verdict) as a pseudo-rule, for
-- error messages and decided_by.
local function describe_fn(fn, what)
    local r = rules.describe(fn, 0)
    r.name = what
    return r
end

-- final: the pass after the rules, the one that reports a broken function
local function score_all(run, result, final)
    local pol = run.policy
    local cpu = (run.config.timeouts or {}).cpu
    for _, srv in ipairs(result.servers) do
        -- nothing was tested: a number would claim a judgement nobody made
        if srv.untested then
            srv.score, srv.grade, srv.score_reason = nil, nil, "not tested: " .. srv.untested
            goto next
        end
        local score = M.default_score(pol, srv)
        if pol.score then
            local r = describe_fn(pol.score, "score")
            local ok, s = budget.call(cpu, pol.score, srv, rules.api(run, result, r))
            if ok and type(s) == "number" and s == s then
                score = math.max(0, math.min(100, math.floor(s + 0.5)))
            elseif final then
                local err = ok and ("returned %s, not a number"):format(type(s)) or s
                local own = findings.own(srv)
                own[#own + 1] = rules.failure(run, result, r, err, "policy function")
            end
        end
        local grade = M.grade(pol, score)
        if pol.grade then
            local r = describe_fn(pol.grade, "grade")
            local ok, g = budget.call(cpu, pol.grade, score, srv)
            if ok and type(g) == "string" then
                grade = g
            elseif final then
                local err = ok and ("returned %s, not a string"):format(type(g)) or g
                local own = findings.own(srv)
                own[#own + 1] = rules.failure(run, result, r, err, "policy function")
            end
        end
        srv.score, srv.grade = score, grade
        ::next::
    end
end

function M.judge(run, result, dctx)
    local pol = run.policy
    -- nil: a result judged without its run's checks (every fact counts);
    -- made once per run (its checks do not change)
    local ran = run.checks and run._ran_set
    if run.checks and (not ran or run._ran_of ~= run.checks) then
        for _, d in ipairs(run.checks) do ran = ran or {}; ran[d.id] = true end
        run._ran_set, run._ran_of = ran, run.checks
    end
    -- the sender matrix, for rules (api.senders) and reports
    -- shared by the domains with the same servers when nothing changes it
    -- afterwards: the findings are shared too (the engine's Run)
    local share = type(run._shares_findings) == "function" and run:_shares_findings()
    result.senders = senders.compute(result, dctx and dctx.facts, nil, ran, share)
    sender_verdict.apply(pol, result, nil, run.config) -- what the matrix says (policy.senders), before the site's rules
    -- the scores the rules see; without rules the pass after them gives
    -- the same ones, so it is the only one (issue 15: a domain of an audit)
    local pr = pol.rules
    if pr and next(pr) ~= nil then score_all(run, result) end
    rules.apply(run, result, dctx)
    score_all(run, result, true)
    local verdict, f, srv, reason, by
    if pol.verdict then
        by = describe_fn(pol.verdict, "verdict")
        local ok, v, x = budget.call((run.config.timeouts or {}).cpu, pol.verdict, result, rules.api(run, result, by))
        if ok and EXIT[v] then
            verdict = v
            if type(x) == "table" then f = x; srv = server_of(result, x)
            elseif x ~= nil then reason = tostring(x) end
        else
            local err = ok and ("returned %q (expected ok, warning, critical or inconclusive)"):format(tostring(v)) or v
            f = rules.failure(run, result, by, err, "policy function")
            result.findings[#result.findings + 1] = f
            verdict, by = "inconclusive", nil
        end
    else
        verdict, f, srv = M.verdict(result)
    end
    result.verdict = verdict
    result.exit_code = EXIT[verdict]
    if f then
        local d = { code = f.code, check = f.check, severity = f.severity, rule = f.rule, rule_source = f.rule_source,
                    host = srv and srv.host or nil, address = srv and srv.address or nil }
        if f.override then
            d.override = {}
            for k, v in pairs(f.override) do d.override[k] = v end
        end
        if by then d.verdict_function = by.source end
        result.decided_by = d
    elseif by and verdict ~= "ok" then
        result.decided_by = { rule = "verdict", rule_source = by.source, reason = reason }
    end
end

return M
