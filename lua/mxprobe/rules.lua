--- mxprobe.rules: domain-level policy rules.
--
-- A rule is a function(result, api) in policy.rules.  It sees the whole
-- result (every MX, every address, every finding) and may add findings
-- with api.fail / api.warn / api.pass / api.info (message, evidence).  Such
-- findings have the code POLICY_RULE unless the rule names its own, and
-- carry the rule's name so the report can say which rule decided.

local M = {}

function M.apply(run, result, dctx)
    for i, rule in ipairs(run.policy.rules or {}) do
        local name = ("rule %d"):format(i)
        local info = debug.getinfo(rule, "S")
        if info and info.short_src then name = ("%s:%d"):format(info.short_src, info.linedefined) end
        local function add(severity, message, evidence)
            local f = {
                code = "POLICY_RULE", check = "policy", severity = severity,
                message = tostring(message), evidence = evidence or {}, rule = name,
            }
            result.findings[#result.findings + 1] = f
            return f
        end
        local api = {
            fail = function(msg, ev) return add("critical", msg, ev) end,
            warn = function(msg, ev) return add("warning", msg, ev) end,
            info = function(msg, ev) return add("info", msg, ev) end,
            pass = function(msg, ev) return add("ok", msg, ev) end,
            name = function(n) name = tostring(n) end,
        }
        local ok, err = xpcall(rule, debug.traceback, result, api)
        if not ok then
            add("error", ("policy rule %s failed: %s"):format(name, tostring(err):match("^[^\n]*")),
                run.config.verbose and { traceback = tostring(err) } or {})
        end
    end
end

return M
