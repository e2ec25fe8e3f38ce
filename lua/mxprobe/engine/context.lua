--- mxprobe.engine.context: what a check's run(ctx) receives.
--
-- Domain contexts (scope "domain") carry ctx.domain, ctx.targets (the MX
-- hosts and their addresses, filled by the mx and address checks) and
-- ctx.result.  Server contexts (scopes "address" and "session") carry
-- ctx.host, ctx.address, ctx.family, ctx.port, ctx.preference, ctx.facts
-- (what earlier checks learnt about this server) and the SMTP session.
--
-- Methods: ctx:finding(code, evidence), ctx:fact(value), ctx:deadline(phase),
-- ctx:threshold(name), ctx:open_session(), ctx:session().

local loop = require "mxprobe.runtime.loop"
local session = require "mxprobe.smtp.session"
local policy = require "mxprobe.policy"

local M = {}
local Ctx = {}
Ctx.__index = Ctx

local function render(template, ev)
    return (template:gsub("{([%w_]+)}", function(k)
        local v = ev[k]
        if v == nil then return "{" .. k .. "}" end
        if type(v) == "table" then
            local parts = {}
            for i, x in ipairs(v) do parts[i] = tostring(x) end
            return table.concat(parts, ", ")
        end
        if math.type(v) == "float" then
            local txt = ("%.3f"):format(v):gsub("0+$", ""):gsub("%.$", "")
            return txt
        end
        return tostring(v)
    end))
end
M.render = render

--- Build a finding table for code (declared by check_id, or the engine).
function Ctx:make_finding(code, evidence, check_id)
    local run = self.run
    local decl = run.catalog[code]
    if not decl then error(("finding %q is not declared by any check"):format(code), 3) end
    local over = (run.policy.findings or {})[code] or {}
    evidence = evidence or {}
    return {
        code = code, check = check_id or decl.check,
        severity = over.severity or decl.severity,
        message = render(decl.message, evidence),
        hint = decl.hint and render(decl.hint, evidence) or nil,
        evidence = evidence,
        -- the policy's findings table changed the severity: say where
        override = over.severity and policy.override(run.policy, code, decl.severity) or nil,
    }
end

--- Record a finding of the running check.  The code must be one the check
-- declares in its findings table.
function Ctx:finding(code, evidence)
    local def = self.check
    if def and not def.findings[code] then
        error(("check %s reported %q, which its findings table does not declare"):format(def.id, tostring(code)), 2)
    end
    local f = self:make_finding(code, evidence, def and def.id)
    local list = self.findings_for and self.findings_for(def) or self.findings
    list[#list + 1] = f
    return f
end

function Ctx:add_finding(code, evidence, check_id)
    local f = self:make_finding(code, evidence, check_id)
    self.findings[#self.findings + 1] = f
    return f
end

--- Store the running check's facts (facts[check id] = value).
function Ctx:fact(value)
    self.facts[self.check.id] = value
    return value
end

function Ctx:threshold(name) return (self.policy.thresholds or {})[name] end

--- An option the running check declares (options = { name = default }),
-- as the policy sets it (policy.options[check id][name]) or its default.
function Ctx:option(name)
    local def = self.check
    if not def or (def.options or {})[name] == nil then
        error(("check %s has no option %q (declare it in the check's options table)"):format(def and def.id or "?", tostring(name)), 2)
    end
    local set = ((self.policy.options or {})[def.id] or {})[name]
    if set ~= nil then return set end
    return def.options[name]
end
function Ctx:timeout(phase) return self.config.timeouts[phase] or 30 end
function Ctx:deadline(phase) return loop.now() + self:timeout(phase) end

-- Run one check with its error isolated: a Lua error becomes an "error"
-- finding for this check (and this address); everything else goes on.
function Ctx:run_check(def)
    -- a check whose requirement crashed (or was skipped for it) is skipped:
    -- the crash's CHECK_ERROR finding lists it ...
    self.failed = self.failed or {}
    for _, r in ipairs(def.requires) do
        local root = self.failed[r]
        if root then
            self.failed[def.id] = root
            root.evidence.skipped = root.evidence.skipped or {}
            table.insert(root.evidence.skipped, def.id)
            root.message = ("%s (not run because of it: %s)"):format(root.message:gsub(" %(not run because of it: .*%)$", ""),
                table.concat(root.evidence.skipped, ", "))
            self.ran[def.id] = false
            return
        end
    end
    -- nor does one whose requirement did not apply here (no session, no TLS...)
    for _, r in ipairs(def.requires) do
        if self.ran[r] == false then self.ran[def.id] = false; return end
    end
    self.check = def
    local ok, res, applies = true, nil, true
    if def.applies then
        ok, res = xpcall(def.applies, debug.traceback, self)
        applies = ok and res and true or false
    end
    if ok and applies then
        ok, res = xpcall(def.run, debug.traceback, self)
    end
    if not ok then
        local msg = tostring(res)
        local first = msg:match("^[^\n]*")
        local ev = { check = def.id, error = first }
        if self.config.verbose then ev.traceback = msg end
        local f = self:make_finding("CHECK_ERROR", ev, def.id)
        self.findings[#self.findings + 1] = f
        self.failed[def.id] = f
    end
    self.ran[def.id] = ok and applies -- true: it applied and did not crash
    self.check = nil
end

function Ctx:run_summary(def)
    self.check = def
    local ok, err = xpcall(def.summarize, debug.traceback, self)
    if not ok then
        local ev = { check = def.id, error = tostring(err):match("^[^\n]*") }
        if self.config.verbose then ev.traceback = tostring(err) end
        self.findings[#self.findings + 1] = self:make_finding("CHECK_ERROR", ev, def.id)
    end
    self.check = nil
end

--- The local address to connect from (--source), for this server's family.
function Ctx:source()
    local src = self.config.source
    return type(src) == "table" and src[self.family] or nil
end

--- The TLS options of an implicit-TLS session (--implicit-tls), or nil.
-- SNI and the name to verify are the MX host name, as for STARTTLS.
function Ctx:implicit_tls()
    if not self.config.implicit_tls then return nil end
    local literal = self.host:find("^[%d.]+$") or self.host:find(":", 1, true)
    return { sni = not literal and self.host or nil, verify_name = self.host, ca_file = self.config.ca_file }
end

--- Open the SMTP session to this server (connect only).
-- Returns the session or nil, code, detail, seconds.
function Ctx:open_session()
    if self.sess and not self.sess.closed then self.sess:close() end
    local s, code, detail, seconds = session.open(self.address, self.port, {
        connect_timeout = self:timeout("connect"), timeouts = self.config.timeouts, limits = self.run.limits,
        host = self.host, -- names the server in status lines
        source = self:source(), implicit_tls = self:implicit_tls(),
    })
    if s then
        self.sess = s
        self.sessions[#self.sessions + 1] = s
    end
    return s, code, detail, seconds
end

--- A further session of the running check's own; the main session is
-- ended first (one connection per probe at a time, so per-address slots
-- cannot deadlock).  Its transcript joins the server's.  Close it when done.
function Ctx:extra_session()
    -- one connection at a time per probe: the main session ends first
    if self.sess and not self.sess.closed then self.sess:quit() end
    local s, code, detail, seconds = session.open(self.address, self.port, {
        connect_timeout = self:timeout("connect"), timeouts = self.config.timeouts, limits = self.run.limits,
        host = self.host, -- names the server in status lines
        source = self:source(), implicit_tls = self:implicit_tls(),
    })
    if s then self.sessions[#self.sessions + 1] = s end
    return s, code, detail, seconds
end

function Ctx:session()
    if self.sess and not self.sess.closed then return self.sess end
end

--- End of the server's checks: QUIT, and keep the transcripts.
function Ctx:close()
    for _, s in ipairs(self.sessions) do
        if not s.closed then s:quit() end
    end
    local out = self.srv.transcript
    for i, s in ipairs(self.sessions) do
        if i > 1 then out[#out + 1] = { dir = "*", text = "--- new session ---", t = 0 } end
        for _, e in ipairs(s.transcript) do out[#out + 1] = e end
    end
end

local function base(run, result)
    return {
        run = run, result = result, policy = run.policy, config = run.config, dns = run.dns,
        domain = result.domain, ran = {},
    }
end

--- The context of domain-scope checks and summaries.
function M.domain(run, result)
    local c = setmetatable(base(run, result), Ctx)
    c.findings = result.findings
    c.facts = {}
    c.servers = result.servers
    -- findings of DNS checks go under result.dns
    c.findings_for = function(def)
        for _, cat in ipairs(def and def.categories or {}) do
            if cat == "dns" then return result.dns.findings end
        end
        return result.findings
    end
    return c
end

--- The context of one server (an address of an MX).
function M.server(run, result, srv)
    local c = setmetatable(base(run, result), Ctx)
    c.srv, c.facts, c.findings = srv, srv.facts, srv.findings
    c.host, c.address, c.family, c.port, c.preference = srv.host, srv.address, srv.family, srv.port, srv.preference
    c.sessions = {}
    return c
end

return M
