--- mxprobe.engine: runs the checks for a domain and judges the results.
--
--   local run = engine.new{ policy = "site.lua", checks_dirs = {...}, config = {...}, share = bool }
--   local result = run:check_domain("example.org")   -- inside a task
--
-- Domain-scope checks run first (MX, addresses) and set the targets
-- (ctx:set_targets); then
-- every address of every MX gets a task of its own running the address-
-- and session-scope checks in dependency order, all concurrently; then each
-- check's summarize() sees the whole domain; then the policy scores every
-- server, applies its domain rules and gives the verdict.

local loop = require "mxprobe.runtime.loop"
local checks = require "mxprobe.engine.checks"
local policy_mod = require "mxprobe.policy"
local context = require "mxprobe.engine.context"
local sender_verdict = require "mxprobe.policy.sender_verdict"
local limits = require "mxprobe.engine.limits"
local dns = require "mxprobe.net.dns"
local frozen = require "mxprobe.runtime.frozen"
local domain_name = require "mxprobe.net.domain"
local vantage = require "mxprobe.engine.vantage"
local core = require "mxprobe.core"
local findings = require "mxprobe.runtime.findings"
local paths = require "mxprobe.runtime.paths"

local M = {}
local Run = {}
Run.__index = Run

M.SCHEMA = 1

-- Codes the engine itself reports.
M.ENGINE_FINDINGS = {
    POLICY_RULE = { severity = "warning", message = "A rule of the policy reported: {message}",
                    hint = "See the policy file named in the finding's rule field." },
    CHECK_ERROR = { severity = "error", message = "The check {check} failed: {error}",
                    hint = "A bug in the check or the policy; run with -v for the traceback and report it." },
    DOMAIN_INVALID = { severity = "error", message = "{domain} is not a valid domain name: {reason}",
                       hint = "Give a host name such as example.org." },
}

local function iso8601(t)
    return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

local function default_helo()
    local f = io.open("/proc/sys/kernel/hostname")
    local h = f and f:read("l")
    if f then f:close() end
    if h and h:find(".", 1, true) then return h end
    return "mxprobe.invalid"
end

--- The catalog of every finding code: code -> { check, severity, message, hint, description }.
function M.catalog(run)
    local cat = {}
    for code, f in pairs(M.ENGINE_FINDINGS) do
        cat[code] = { check = "engine", severity = f.severity, message = f.message, hint = f.hint,
                      description = "reported by the engine itself" }
    end
    for code, f in pairs(sender_verdict.FINDINGS) do -- the default verdict from the sender matrix
        cat[code] = { check = "senders", severity = f.severity, message = f.message, hint = f.hint,
                      description = "the verdict from the sender matrix (policy.senders, lua/mxprobe/policy/sender_verdict.lua)" }
    end
    for _, def in ipairs(run.all_checks or run.checks) do
        for code, f in pairs(def.findings) do
            cat[code] = { check = def.id, severity = f.severity, message = f.message, hint = f.hint,
                          description = def.description }
        end
    end
    return cat
end

local function copy(t)
    local o = {}
    for k, v in pairs(t) do o[k] = type(v) == "table" and copy(v) or v end
    return o
end

--- Build the probe configuration: policy.probe, then explicit options.
local function build_config(pol, cfg)
    local c = copy(pol.probe or {})
    c.timeouts = c.timeouts or {}
    c.limits = c.limits or {}
    for k, v in pairs(cfg or {}) do
        if k == "timeouts" or k == "limits" then
            for kk, vv in pairs(v) do c[k][kk] = vv end
        else
            c[k] = v
        end
    end
    c.helo = c.helo or default_helo()
    c.port = c.port or 25
    c.families = c.families or { 4, 6 }
    return c
end

--- Create a run: load and validate checks and policy (raises with
-- "file: field: problem" before anything is probed).
function M.new(opts)
    opts = opts or {}
    -- stock, installed ($MXPROBE_CHECKS_PATH; opts.installed_checks = false: none), opts.checks_dirs
    local all = checks.load(checks.dirs(opts))
    local run = setmetatable({ all_checks = all }, Run)
    local catalog = M.catalog(run)
    run.catalog = catalog
    run.policy = policy_mod.load(opts.policy, catalog, all)
    run.config = build_config(run.policy, opts.config)

    policy_mod.check_config(run.policy, run.config)
    policy_mod.check_options(run.config.options, all)
    run.checks, run.turned_off = policy_mod.select_checks(all, run.policy, run.config)
    if run.config.vantage_check ~= nil then
        local ok, why = vantage.parse(run.config.vantage_check)
        if not ok then
            error(("%s: probe.vantage_check: %s"):format(policy_mod.where(run.policy, { "probe", "vantage_check" }), why), 0)
        end
    end
    run.vantage = vantage.new(run.config)
    run.limits = limits.new(run.config.limits)
    run.share = opts.share == true or run.config.share == true
    run.shared, run.shared_old, run.shared_n, run.counters = {}, {}, 0, { probes = 0, shared = 0 }

    -- chosen for this run (not the machine's resolver): checks/banner asks it for PTRs of lab addresses
    run.dns_named = opts.dns ~= nil or run.config.resolvers ~= nil or run.config.resolver ~= nil
    -- timeouts.dns bounds each question (Ctx:deadline "dns"); a try is
    -- shorter, so that a lost datagram is sent again in time (dns.try_timeout)
    run.dns = opts.dns or dns.new {
        servers = run.config.resolvers or (run.config.resolver or {}).servers,
        timeout = dns.try_timeout(run.config.timeouts.dns or 5), tries = 2,
        max_inflight = run.config.limits.max_dns_queries,
    }
    return run
end

local function new_result(run, domain)
    return {
        schema = M.SCHEMA, domain = domain, policy = run.policy.name,
        started = iso8601(loop.wall()), t0 = loop.now(),
        dns = { mx = {}, findings = {} }, servers = {}, findings = {}, facts = {},
        -- checks turned off for the whole run are listed with why (not_run)
        not_run = run:_turned_off(),
    }
end

--- The checks the selection turned off, as not_run entries.  Those left
-- out because --checks / checks.only named others are not listed: the
-- user asked for less.
-- The walk over every check is made once per run (the selection does not
-- change); each domain gets its own list and entries, which its skips
-- extend (issue 15: the walk was 2 % of a shared domain's Lua).
function Run:_turned_off()
    local off = self._off
    if not off then
        off = {}
        for _, d in ipairs(self.all_checks) do
            local why = self.turned_off and self.turned_off[d.id]
            if why then off[#off + 1] = { d.id, "turned off: " .. why } end
        end
        self._off = off
    end
    local out = {}
    for i = 1, #off do out[i] = { check = off[i][1], reason = off[i][2] } end
    return out
end

--- Whether a check of this id runs in this run (the selection's, once).
function Run:runs(id)
    local ids = self._running
    if not ids then
        ids = {}
        for _, d in ipairs(self.checks) do ids[d.id] = true end
        self._running = ids
    end
    return ids[id] == true
end

--- Evidence about this vantage point (docs/json-schema.md, vantage).
function Run:saw_answer(port) self.vantage:answered(port) end
function Run:vantage_evidence() return self.vantage:evidence() end

local function run_server(run, result, srv)
    -- politeness: a slot of this remote address for the probe's whole life
    local release, code, detail = run.limits:enter(srv.address, loop.now() + 3600)
    if not release then
        srv.findings[#srv.findings + 1] = context.domain(run, result):make_finding(
            "CHECK_ERROR", { check = "engine", error = ("waiting for a probe slot: %s %s"):format(code, detail or "") }, "engine")
        return
    end
    local ctx = context.server(run, result, srv)
    for _, def in ipairs(run.checks) do
        if def.scope ~= "domain" then ctx:run_check(def) end
    end
    ctx:close()
    release()
end

local function lua_deep_copy(v)
    if type(v) ~= "table" then return v end
    local o = {}
    for k, x in pairs(v) do o[k] = lua_deep_copy(x) end
    return setmetatable(o, getmetatable(v))
end
M.lua_deep_copy = lua_deep_copy -- the reference of core.copy.deep (tests/spec/copy_spec.lua)

-- core.copy.deep makes the same copy in C (issue 15: the copy was the
-- largest part of a shared domain's Lua work); it answers nothing for
-- what only the Lua copy does (__metatable, __pairs, very deep nesting).
local c_deep = core.copy and core.copy.deep
local function deep_copy(v)
    if type(v) ~= "table" then return v end
    if c_deep then
        local o = c_deep(v)
        if o ~= nil then return o end
    end
    return lua_deep_copy(v)
end

-- With sharing on, one probe per (address, port, MX host name) for the
-- whole run: later domains join the probe already done or in flight and get
-- their own copy, which their summaries and rules may then adjust.  The MX
-- host name is in the key because it is the SNI and the name certificates
-- are matched against.
function Run:_server_task(result, srv)
    if not self.share then
        self.counters.probes = self.counters.probes + 1
        return loop.spawn(run_server, self, result, srv), srv
    end
    -- (concatenated: a format per server of every domain cost more)
    local key = srv.address .. "|" .. srv.port .. "|" .. srv.host
    -- Two generations of SHARED_MAX (1024) entries each (a hit moves an entry to
    -- the new one): the big providers' probes stay, the long tail's are
    -- let go, so memory follows the work in flight, not the number of
    -- distinct servers of the input (issue 15: 12,000 tail servers held
    -- 650 MB).  A server that comes back after its probe was let go is
    -- probed again.
    local entry = self.shared[key]
    if not entry then
        entry = self.shared_old[key]
        if entry then self.shared_old[key] = nil; self:_share(key, entry) end
    end
    if entry then
        self.counters.shared = self.counters.shared + 1
    else
        local probe = { host = srv.host, address = srv.address, family = srv.family, port = srv.port,
                        facts = {}, findings = {}, transcript = {} }
        -- domain/mode: of the domain that started the probe; the relay check's
        -- RCPT TO postmaster@<domain> needs one (its findings name the address)
        local stub = { domain = result.domain, mode = result.mode, findings = {}, servers = {}, dns = { findings = {}, mx = {} } }
        entry = { probe = probe, task = loop.spawn(run_server, self, stub, probe) }
        self:_share(key, entry)
        self.counters.probes = self.counters.probes + 1
    end
    return entry.task, entry.probe
end

M.SHARED_MAX = 1024

function Run:_share(key, entry)
    if self.shared[key] == nil then
        if self.shared_n >= M.SHARED_MAX then
            self.shared_old, self.shared, self.shared_n = self.shared, {}, 0
        end
        self.shared_n = self.shared_n + 1
    end
    self.shared[key] = entry
end

--- Counters of the run: probes made, probes shared, peak open sessions,
-- and the vantage evidence (docs/json-schema.md).
function Run:stats()
    return { probes = self.counters.probes, shared = self.counters.shared,
             sessions_open_peak = self.limits.peak, sessions_open = self.limits.open,
             vantage = self.vantage:evidence() }
end

-- Shared findings: each domain gets its own list and its own table per
-- finding (its summaries and rules may re-judge a finding: severity,
-- override, rule), while the evidence, which nothing re-judges, is the
-- probe's, frozen, so it is neither copied nor encoded again for every
-- domain (issue 15: the deep copy and the evidence's JSON were a fifth of a
-- shared domain's instructions).  A finding whose evidence has a metatable
-- of its own is copied whole.
-- Once per probe: freezes the evidence, and lists the findings whose
-- evidence cannot be shared (probe.evidence_own: their indices; usually
-- none, so a domain's copy is one C call).
local function share_evidence(probe)
    if probe.evidence_own then return probe.evidence_own end
    local own = {}
    for i, f in ipairs(probe.findings) do
        local ev = type(f) == "table" and f.evidence
        if type(ev) == "table" then
            if getmetatable(ev) == nil then frozen.mark(ev) end
            if not frozen.is(ev) then own[#own + 1] = i end
        end
    end
    probe.evidence_own = own
    return own
end

local function copy_findings(probe)
    local own = share_evidence(probe)
    local out = core.copy.rows(probe.findings)
    for _, i in ipairs(own) do out[i].evidence = deep_copy(out[i].evidence) end
    return out
end

-- The probe's findings list itself, for every domain that uses the server
-- (runtime.findings.own: what changes them for one domain copies them
-- first), or nil when a finding cannot be frozen (a metatable of its own,
-- evidence that cannot be shared).  Frozen once per probe.
local function shared_findings(probe)
    local l = probe.findings
    if frozen.is(l) then return l end
    if probe.findings_unshared then return nil end
    if #share_evidence(probe) > 0 then probe.findings_unshared = true; return nil end
    for _, f in ipairs(l) do
        local mt = type(f) == "table" and getmetatable(f)
        if type(f) ~= "table" or (mt ~= nil and mt ~= frozen.mt) then probe.findings_unshared = true; return nil end
    end
    for _, f in ipairs(l) do frozen.mark(f) end
    return frozen.mark(l)
end

-- Whether a domain may take a shared probe's findings list as it is: when
-- nothing of this run's policy or checks can change a server's findings
-- for one domain without findings.own (policy rules and functions get the
-- whole result; a check file of a site's may summarize anything).  The
-- stock summaries and the sender matrix take their own copy when they
-- change one.  Decided once per run.
function Run:_shares_findings()
    local v = self._share_findings
    if v == nil then
        local pol = self.policy
        v = not (pol.score or pol.grade or pol.verdict or (type(pol.rules) == "table" and next(pol.rules) ~= nil))
        for _, def in ipairs(self.checks) do
            if def.summarize and def.dir ~= paths.checks then v = false end
        end
        self._share_findings = v
    end
    return v
end

function Run:_probe(result, dctx)
    -- one server record per address to probe
    for _, tgt in ipairs(dctx:targets() or {}) do
        local addrs = {}
        for _, a in ipairs(tgt.addresses or {}) do addrs[#addrs + 1] = a.address end
        result.dns.mx[#result.dns.mx + 1] = {
            preference = tgt.preference, host = tgt.host, addresses = addrs, implicit = tgt.implicit or nil,
        }
        for _, a in ipairs(tgt.addresses or {}) do
            if a.probe ~= false then
                result.servers[#result.servers + 1] = {
                    host = tgt.host, address = a.address, family = a.family, port = self.config.port,
                    preference = tgt.preference, facts = {}, findings = {}, transcript = {},
                }
            end
        end
    end
    local tasks, probes = {}, {}
    for i, srv in ipairs(result.servers) do tasks[i], probes[i] = self:_server_task(result, srv) end
    for i, t in ipairs(tasks) do
        local ok, code, detail = loop.join(t)
        local srv = result.servers[i]
        if probes[i] ~= srv then
            -- the facts and the transcript (what the server said) are final
            -- once the probe is done and the same for every domain: shared,
            -- not copied, and encoded once (issue 15).  So are the findings
            -- when nothing changes them per domain (_shares_findings), else
            -- each domain gets a copy its policy's rules may change.
            srv.facts = frozen.mark(probes[i].facts)
            srv.findings = self:_shares_findings() and shared_findings(probes[i]) or copy_findings(probes[i])
            srv.transcript, srv.shared = frozen.mark(probes[i].transcript), true
            srv.not_run, srv.untested = deep_copy(probes[i].not_run), probes[i].untested
        end
        if ok == nil and code then
            local own = findings.own(srv)
            own[#own + 1] = dctx:make_finding("CHECK_ERROR", { check = "engine", error = detail or code }, "engine")
        end
    end
end

function Run:_finish(result, dctx)
    -- the evidence the summaries judge by is the evidence the result states
    result.vantage = self.vantage:evidence()
    for _, def in ipairs(self.checks) do
        if def.summarize then dctx:run_summary(def) end
    end
    -- judging (rules, senders) comes after the network work: loading it
    -- with the engine was 4 % of the time from process start to the first
    -- DNS question (issue 15 (d))
    -- lazy: needed only once a domain's checks are done
    require("mxprobe.policy.judge").judge(self, result, dctx)
    result.duration_s = math.floor((loop.now() - result.t0) * 1000 + 0.5) / 1000
    result.t0 = nil
    return result
end

--- Check a domain.  Must run inside a task (loop.run / loop.spawn).
function Run:check_domain(domain)
    if type(domain) ~= "string" then error("bad argument #1 to 'check_domain' (string expected)", 2) end
    domain = domain:lower()
    if domain:byte(-1) == 46 then domain = domain:sub(1, -2) end -- without its final dot
    local result = new_result(self, domain)
    local dctx = context.domain(self, result)
    self.vantage:check_once(self)
    local problem = domain_name.problem(domain)
    if problem then
        dctx:add_finding("DOMAIN_INVALID", { domain = domain, reason = problem }, "engine")
        return self:_finish(result, dctx)
    end
    for _, def in ipairs(self.checks) do
        if def.scope == "domain" then dctx:run_check(def) end
    end
    self:_probe(result, dctx)
    return self:_finish(result, dctx)
end

--- Test one host directly (like the seed's telnet): no MX lookup.
function Run:check_host(host, port)
    if port then self.config.port = port end
    host = host:lower():gsub("%.$", "")
    local result = new_result(self, host)
    result.mode = "host"
    local dctx = context.domain(self, result)
    self.vantage:check_once(self)
    -- the target is given: a check that looks targets up finds them set
    dctx:set_targets { { host = host, preference = 0 } }
    for _, def in ipairs(self.checks) do
        if def.scope == "domain" then dctx:run_check(def) end
    end
    self:_probe(result, dctx)
    return self:_finish(result, dctx)
end

return M
