--- mxprobe.engine.context: what a check's run(ctx) receives.
--
-- Domain contexts (scope "domain") carry ctx.domain and ctx.facts (the
-- domain checks' facts, result.facts); the MX targets and, in summaries,
-- the servers come through ctx:targets() and ctx:servers().  Server
-- contexts carry ctx.host, ctx.address, ctx.family, ctx.port,
-- ctx.preference and ctx.facts (what earlier checks learnt about this
-- server); "session" checks get the SMTP session (ctx:session()), "address"
-- checks none.  Nothing else is shared: the TLS details go through
-- ctx:set_tls()/ctx:tls(), a changed severity through ctx:set_severity(),
-- a check that does not run is listed in not_run with its reason.
--
-- docs/api.md lists every method.

local loop = require "mxprobe.runtime.loop"
local session = require "mxprobe.smtp.session"
local policy = require "mxprobe.policy"
local vocab = require "mxprobe.runtime.vocab"
local budget = require "mxprobe.runtime.budget"

local M = {}
local Ctx = {}
Ctx.__index = Ctx

local function field(ev, k)
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
end

-- A template split once into its text and its {field} names (odd places:
-- text, even: names), since an audit renders the same few messages for
-- every domain (issue 15: a gsub and a closure per finding).  The catalog's
-- templates are a fixed set; others (a check's own) are kept up to
-- TEMPLATES_MAX at once.
local TEMPLATES_MAX = 1024
local templates, templates_n = {}, 0
local function parts_of(template)
    local p = templates[template]
    if p then return p end
    p = {}
    local i = 1
    while true do
        local s, e, k = template:find("{([%w_]+)}", i)
        if not s then break end
        p[#p + 1] = template:sub(i, s - 1)
        p[#p + 1] = k
        i = e + 1
    end
    p[#p + 1] = template:sub(i)
    if templates_n >= TEMPLATES_MAX then templates, templates_n = {}, 0 end
    templates[template], templates_n = p, templates_n + 1
    return p
end

local concat = table.concat
local function render(template, ev)
    local p = parts_of(template)
    local n = #p
    if n == 1 then return p[1] end
    local out = {}
    for i = 1, n do out[i] = i % 2 == 1 and p[i] or field(ev, p[i]) end
    return concat(out)
end
M.render = render

local NO_OVERRIDE = {}

--- Build a finding table for code (declared by check_id, or the engine).
function Ctx:make_finding(code, evidence, check_id)
    local run = self.run
    local decl = run.catalog[code]
    if not decl then error(("finding %q is not declared by any check"):format(code), 3) end
    local pf = run.policy.findings
    local over = pf and pf[code] or NO_OVERRIDE
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
-- as the caller (engine config.options: the command line) or the policy
-- (policy.options[check id][name]) sets it, else its default.
function Ctx:option(name)
    local def = self.check
    if not def or (def.options or {})[name] == nil then
        error(("check %s has no option %q (declare it in the check's options table)"):format(def and def.id or "?", tostring(name)), 2)
    end
    local srcs = { self.config.options or {}, self.policy.options or {} } -- the command line wins
    for i = 1, 2 do
        local set = (srcs[i][def.id] or {})[name]
        if set ~= nil then return set end
    end
    return def.options[name]
end
function Ctx:timeout(phase) return self.config.timeouts[phase] or 30 end
function Ctx:deadline(phase) return loop.now() + self:timeout(phase) end

--- The MX targets of the domain (domain contexts): a list of
-- { host, preference, implicit, addresses = { { address, family, probe } } },
-- or nil before a check has set them.  The engine probes every address
-- whose probe is not false.
function Ctx:targets() return self._targets end

--- Set the targets (the check that finds the MX hosts).
function Ctx:set_targets(list)
    if type(list) ~= "table" then error("bad argument #1 to 'set_targets' (a list of targets expected)", 2) end
    self._targets = list
    return list
end

--- Every server record of the domain (domain contexts, in summarize):
-- { host, address, preference, facts, findings, not_run }.
function Ctx:servers() return self._result.servers end

--- "host" when a host was given to test (--mx HOST: no domain, no MX
-- lookup), nil for a domain.
function Ctx:mode() return self._result.mode end

--- The TLS details of this server's session (server contexts), as the
-- check that did the handshake recorded them: { protocol, cipher, bits,
-- chain = { x509 certificates, leaf first }, verify, hostname_match }, or nil.
function Ctx:tls() return self._tls end
function Ctx:set_tls(info)
    if type(info) ~= "table" then error("bad argument #1 to 'set_tls' (the table of session:starttls expected)", 2) end
    self._tls = info
    return info
end

--- The main session's TLS session (core.tls's, from session:tls_session()),
-- for one resumption by a later probe of this same server: it lives in this
-- server context only (one address, port and MX name), never in the record,
-- and core.tls refuses it for another server.  nil when the server gave
-- nothing to resume with.
function Ctx:tls_session() return self._tls_session end
function Ctx:set_tls_session(s)
    if type(s) ~= "userdata" then error("bad argument #1 to 'set_tls_session' (a session of session:tls_session expected)", 2) end
    self._tls_session = s
    return s
end

--- This server could not be tested (no connection, no greeting): it gets
-- no score (score_reason = reason).  The first reason stays.
function Ctx:not_tested(reason)
    if not self.srv then error("not_tested: only for server checks", 2) end
    if type(reason) ~= "string" then error("bad argument #1 to 'not_tested' (a reason string expected)", 2) end
    self.srv.untested = self.srv.untested or reason
end

--- What the run has seen of this vantage point (docs/json-schema.md,
-- vantage): { port, answered = servers that answered on it so far,
-- check = the --vantage-check result or nil }.
function Ctx:vantage() return self._result.vantage or self.run:vantage_evidence() end

--- Change the severity of a finding another check reported (in summarize):
-- it keeps its code and records override = { from, check, source, why },
-- which the report shows; as a policy rule's api.set_severity does.
function Ctx:set_severity(f, severity, why)
    if type(f) ~= "table" or type(f.code) ~= "string" then error("bad argument #1 to 'set_severity' (a finding expected)", 2) end
    if not vocab.SEVERITIES[severity] then
        error(("bad argument #2 to 'set_severity' (%q is not a severity)"):format(tostring(severity)), 2)
    end
    if type(why) ~= "string" then error("bad argument #3 to 'set_severity' (a reason string expected: the report shows it)", 2) end
    if f.severity == severity then return f end
    local def = self.check
    f.override = { from = f.severity, check = def and def.id or "engine", source = def and def.file or nil, why = why }
    f.severity = severity
    return f
end

-- A check that did not run here, and why: the result lists it (not_run).
function Ctx:skip(def, reason)
    self.ran[def.id] = false
    self.not_run[#self.not_run + 1] = { check = def.id, reason = reason }
end

local function check_error(self, def, err)
    local msg = tostring(err)
    local ev = { check = def.id, error = msg:match("^[^\n]*") }
    if type(err) == "table" and err.budget then
        ev.error, ev.location = err.message, err.location
    end
    if self.config.verbose then ev.traceback = type(err) == "table" and err.traceback or msg end
    local f = self:make_finding("CHECK_ERROR", ev, def.id)
    self.findings[#self.findings + 1] = f
    return f
end

-- Call fn(self) with the Lua time budget: ok, results or false, error.
local function guarded(self, fn)
    return budget.call(self.config.timeouts.cpu, fn, self)
end

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
            return self:skip(def, root.evidence.check == r and ("requires %s, which failed (CHECK_ERROR)"):format(r)
                or ("requires %s, which did not run: %s failed (CHECK_ERROR)"):format(r, tostring(root.evidence.check)))
        end
    end
    -- ... nor does one whose requirement did not run here (no session, no TLS...)
    for _, r in ipairs(def.requires) do
        if self.ran[r] == false then return self:skip(def, ("requires %s, which did not run"):format(r)) end
    end
    self.check = def
    -- an address check gets no session (its scope says so)
    self.sessionless = def.scope == "address"
    local ok, res, why = true, nil, nil
    if def.applies then
        ok, res, why = guarded(self, def.applies)
    end
    local applies = ok and (def.applies == nil or res) and true or false
    if ok and applies then
        ok, res = guarded(self, def.run)
    end
    self.sessionless = false
    if not ok then
        self.failed[def.id] = check_error(self, def, res)
        self.ran[def.id] = false
    elseif not applies then
        self:skip(def, type(why) == "string" and why or "does not apply here")
    else
        self.ran[def.id] = true
    end
    self.check = nil
end

function Ctx:run_summary(def)
    self.check = def
    local ok, err = guarded(self, def.summarize)
    if not ok then check_error(self, def, err) end
    self.check = nil
end

--- Whether the check `id` is selected in this run (policy, --checks,
-- --no-relay ...): a check that can do part of another's work cheaply
-- asks first (starttls carries starttls_injection's probe).  Whether it
-- then applies at this server is its own applies' answer.
function Ctx:will_run(id) return self.run:runs(id) end

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

local function no_session(self, what)
    if self.sessionless then
        error(("check %s has scope \"address\", which gets no session (%s): declare scope = \"session\""):format(
            self.check.id, what), 3)
    end
end

local function open(self)
    local s, code, detail, seconds = session.open(self.address, self.port, {
        connect_timeout = self:timeout("connect"), timeouts = self.config.timeouts, limits = self.run.limits,
        host = self.host, -- names the server in status lines
        source = self:source(), implicit_tls = self:implicit_tls(),
    })
    -- evidence for the whole run: this vantage point reaches the port
    if s then self.run:saw_answer(self.port) end
    return s, code, detail, seconds
end

--- Open the SMTP session to this server (connect only).
-- Returns the session or nil, code, detail, seconds.
function Ctx:open_session()
    no_session(self, "open_session")
    if self.sess and not self.sess.closed then self.sess:close() end
    local s, code, detail, seconds = open(self)
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
    no_session(self, "extra_session")
    -- one connection at a time per probe: the main session ends first
    if self.sess and not self.sess.closed then self.sess:quit() end
    local s, code, detail, seconds = open(self)
    if s then self.sessions[#self.sessions + 1] = s end
    return s, code, detail, seconds
end

function Ctx:session()
    if self.sessionless then return nil end
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
        run = run, _result = result, policy = run.policy, config = run.config, dns = run.dns,
        domain = result.domain, ran = {},
    }
end

--- The context of domain-scope checks and summaries.
function M.domain(run, result)
    local c = setmetatable(base(run, result), Ctx)
    c.findings = result.findings
    result.facts = result.facts or {}
    result.not_run = result.not_run or {}
    c.facts, c.not_run = result.facts, result.not_run
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
    srv.not_run = srv.not_run or {}
    c.srv, c.facts, c.findings, c.not_run = srv, srv.facts, srv.findings, srv.not_run
    c.host, c.address, c.family, c.port, c.preference = srv.host, srv.address, srv.family, srv.port, srv.preference
    c.sessions = {}
    return c
end

return M
