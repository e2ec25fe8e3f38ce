--- mxprobe.app.cli.options: validators of option values, shared by
-- `mxprobe DOMAIN...` and `mxprobe audit`, and the step from parsed
-- arguments to the engine's config.
--
-- Each validator returns the normalised value, or nil and what is wrong
-- (one plain line, the value echoed escaped and capped).
--
--   options.config(args) -> config, plan | nil, message (naming the option)
--   options.audit(args)  -> audit options | nil, message
local domain = require "mxprobe.net.domain"
local iputil = require "mxprobe.net.iputil"
local vocab = require "mxprobe.runtime.vocab"
local escape = require "mxprobe.runtime.escape"
local vantage_mod = require "mxprobe.engine.vantage"

local M = {}

M.RESERVED_KINDS = vocab.RESERVED_KINDS
M.RESERVED_KIND_SET = vocab.set_of(vocab.RESERVED_KINDS)
M.MAX_RESOLVERS = 16 -- what the DNS core takes (core/l_dns.c MAX_SERVERS)

local function shown(s) return escape.for_display(s, escape.MAX_ECHO) end

function M.parse_port(s)
    local bad = ("'%s' is not a port number (1-65535)"):format(shown(s))
    if type(s) ~= "string" or not s:match("^%d+$") then return nil, bad end
    local n = tonumber(s)
    if n < 1 or n > 65535 then return nil, bad end
    return math.tointeger(n)
end

-- A positive number written in decimal ("10", "2.5", ".5"); not 1e3, inf or nan.
local function decimal(s)
    return type(s) == "string" and (s:match("^%d+%.?%d*$") or s:match("^%.%d+$")) and tonumber(s)
end

function M.parse_seconds(s)
    local n = decimal(s)
    if not n then return nil, ("'%s' is not a number of seconds"):format(shown(s)) end
    if n <= 0 then return nil, ("'%s': the timeout must be more than 0 seconds"):format(s) end
    if n > 86400 then return nil, ("'%s': the timeout must be at most 86400 seconds"):format(s) end
    return n
end

--- A whole number from lo to 100000.
function M.whole(lo)
    return function(s)
        if type(s) ~= "string" or not s:match("^%d+$") or tonumber(s) < lo or tonumber(s) > 100000 then
            return nil, ("'%s' is not a whole number from %d to 100000"):format(shown(s), lo)
        end
        return math.tointeger(tonumber(s))
    end
end
M.parse_positive_integer = M.whole(1)

--- Connections per second: more than 0, at most 100000.
function M.per_second(s)
    local n = decimal(s)
    if not n or n <= 0 or n > 100000 then
        return nil, ("'%s' is not a rate (connections per second, more than 0, at most 100000)"):format(shown(s))
    end
    return n
end

--- IP[:PORT] for a DNS server; IPv6 as ADDR or [ADDR] or [ADDR]:PORT.
-- @return "ip:port" (IPv6 as "[ip]:port"), the port defaulting to 53
function M.parse_resolver(s)
    local bad = ("'%s' is not IP[:PORT] (IPv6: [ADDR]:PORT)"):format(shown(s))
    local host, port
    if s:sub(1, 1) == "[" then
        host, port = s:match("^%[([^%]]+)%]:(%d+)$")
        if not host then host = s:match("^%[([^%]]+)%]$") end
        if iputil.family(host) ~= 6 then return nil, bad end
    elseif iputil.family(s) == 6 then
        host = s
    else
        host, port = s:match("^([%d%.]+):([^:]*)$")
        if not host then host = s end
        if iputil.family(host) ~= 4 then return nil, bad end
    end
    local p = 53
    if port then
        local err
        p, err = M.parse_port(port)
        if not p then return nil, ("'%s': %s"):format(shown(s), err) end
    end
    if host:find(":", 1, true) then return ("[%s]:%d"):format(host:lower(), p) end
    return ("%s:%d"):format(host, p)
end

--- A domain name as given on the command line (mxprobe.net.domain.parse).
M.parse_domain = domain.parse

--- A host for --mx: a host name, an IPv4 address, or an IPv6 address
-- (bare or in brackets).
function M.parse_host(s)
    local bare = s:match("^%[(.*)%]$")
    if bare and iputil.family(bare) == 6 then return bare:lower() end
    local fam = iputil.family(s)
    if fam then return fam == 6 and s:lower() or s end
    local name, err = domain.parse(s)
    if not name then
        return nil, (err:gsub("a domain name", "a host name or IP address"):gsub("; to test a server by address: %-%-mx ADDRESS", ""))
    end
    return name
end

--- The EHLO name: a host name or an address literal such as [192.0.2.1].
function M.parse_helo(s)
    local bad = ("'%s' is not a host name or address literal"):format(shown(s))
    if s == "" or #s > 255 or s:find("[^%w%-%._%[%]:]") then return nil, bad end
    local lit = s:match("^%[(.*)%]$")
    if lit then
        if iputil.family(lit) == 4 or (lit:match("^IPv6:") and iputil.family(lit:sub(6)) == 6) then return s end
        return nil, ("'%s' is not an address literal ([192.0.2.1] or [IPv6:2001:db8::1])"):format(s)
    end
    if s:find("[%[%]:]") then return nil, bad end
    if iputil.family(s) then return nil, ("'%s': an address is written in brackets: [%s]"):format(s, s) end
    return domain.parse(s)
end

--- An envelope address for the relay probe: local@domain, printable
-- ASCII, no spaces or angle brackets.
function M.parse_mailbox(s)
    local l, d = s:match("^([^@]+)@([^@]+)$")
    if not l or s:find("[^!-~]") or s:find("[<>]") then
        return nil, ("'%s' is not a mail address (local@domain)"):format(shown(s))
    end
    if not domain.parse(d) and not d:match("^%[.*%]$") then
        return nil, ("'%s': '%s' is not a domain name"):format(s, d)
    end
    return s
end

local function io_reason(err) return (tostring(err):gsub("^[^:]*: ", "")) end

function M.readable_file(path)
    local f, err = io.open(path, "r")
    if not f then return nil, ("cannot read '%s': %s"):format(shown(path), io_reason(err)) end
    local ok, rerr = f:read(0)
    f:close()
    if ok == nil and rerr then return nil, ("cannot read '%s': %s"):format(shown(path), io_reason(rerr)) end
    return path
end

function M.directory(path)
    local f = io.open(path .. "/.", "r")
    if not f then return nil, ("'%s' is not a directory"):format(shown(path)) end
    f:close()
    return path
end

--- A path we will write: not a directory.
function M.writable_path(path)
    local f = io.open(path .. "/.", "r")
    if f then f:close(); return nil, ("'%s' is a directory"):format(shown(path)) end
    return path
end

-- "a, b,c" -> { "a", "b", "c" }
local function list(s)
    local out = {}
    for item in (s .. ","):gmatch("([^,]*),") do out[#out + 1] = item:match("^%s*(.-)%s*$") end
    return out
end

function M.parse_checks(s)
    local only = {}
    for _, item in ipairs(list(s)) do
        if not item:match("^[a-z][a-z0-9_]*$") then
            return nil, ("'%s' is not a check id (see mxprobe --list-checks)"):format(shown(item))
        end
        only[#only + 1] = item
    end
    return only
end

function M.parse_reserved(s)
    local kinds = {}
    for _, item in ipairs(list(s)) do
        if item == "all" then
            for _, k in ipairs(M.RESERVED_KINDS) do kinds[#kinds + 1] = k end
        elseif M.RESERVED_KIND_SET[item] then
            kinds[#kinds + 1] = item
        else
            return nil, ("'%s' is not an address kind (%s, or all)"):format(shown(item), table.concat(M.RESERVED_KINDS, ", "))
        end
    end
    return kinds
end

----------------------------------------------------------------- config

-- One option: { field of args, the option's name, validator, where it goes }
-- where: a function(config, value).  Adding an option is one row.
local function set(key) return function(c, v) c[key] = v end end
local function timeout(k) return function(c, v) c.timeouts[k] = v end end
-- the relay flags are the relay check's options (one place maps them)
local function relay(k)
    return function(c, v)
        c.options = c.options or {}
        c.options.relay = c.options.relay or {}
        c.options.relay[k] = v
    end
end
local function vantage(s)
    local ok, why = vantage_mod.parse(s)
    if not ok then return nil, why end
    return s
end

M.ENGINE_OPTIONS = {
    { "port", "--port", M.parse_port, set "port" },
    { "helo", "--helo", M.parse_helo, set "helo" },
    { "timeout_connect", "--timeout-connect", M.parse_seconds, timeout "connect" },
    { "timeout_greeting", "--timeout-greeting", M.parse_seconds, timeout "greeting" },
    { "timeout_command", "--timeout-command", M.parse_seconds, timeout "command" },
    { "timeout_tls", "--timeout-tls", M.parse_seconds, timeout "tls" },
    { "timeout_dns", "--timeout-dns", M.parse_seconds, timeout "dns" },
    { "ca_file", "--ca-file", M.readable_file, set "ca_file" },
    { "checks", "--checks", M.parse_checks, set "only" },
    { "allow_reserved", "--allow-reserved", M.parse_reserved, set "allow_reserved" },
    { "relay_from", "--relay-from", M.parse_mailbox, relay "from" },
    { "relay_to", "--relay-to", M.parse_mailbox, relay "to" },
    { "vantage_check", "--vantage-check", vantage, set "vantage_check" },
}

-- Apply rows of { field, name, validator, where } to args; nil, message on the first bad one.
function M.apply(rows, args, target)
    for _, o in ipairs(rows) do
        local v = args[o[1]]
        if v ~= nil then
            local r, err = o[3](v)
            if r == nil then return nil, o[2] .. ": " .. err end
            o[4](target, r)
        end
    end
    return target
end

local function resolvers(args)
    local list_ = args.resolver or {}
    if #list_ == 0 then return nil end
    if #list_ > M.MAX_RESOLVERS then
        return nil, ("--resolver: at most %d DNS servers, %d given"):format(M.MAX_RESOLVERS, #list_)
    end
    local servers = {}
    for _, r in ipairs(list_) do
        local s, err = M.parse_resolver(r)
        if not s then return nil, "--resolver: " .. err end
        servers[#servers + 1] = s
    end
    return { servers = servers }
end

--- The engine's config from parsed arguments.
-- @return config | nil, message
function M.engine_config(args)
    local config = { timeouts = {} }
    if args.no_relay and (args.relay_from or args.relay_to) then
        return nil, "--no-relay: cannot be combined with " .. (args.relay_from and "--relay-from" or "--relay-to")
    end
    local ok, err = M.apply(M.ENGINE_OPTIONS, args, config)
    if not ok then return nil, err end
    if args.ipv4 and not args.ipv6 then config.families = { 4 }
    elseif args.ipv6 and not args.ipv4 then config.families = { 6 } end
    local res, rerr = resolvers(args)
    if rerr then return nil, rerr end
    config.resolver = res
    -- only --no-relay says anything about enabling: a policy may turn the probe off
    if args.no_relay then config.disable = { "relay" } end
    config.verbose = args.verbose and true or false
    if next(config.timeouts) == nil then config.timeouts = nil end
    return config
end

-- What to run and with which files: checks dirs, policy, parallel, targets.
local function plan_of(args)
    local plan = { checks_dirs = {}, targets = {} }
    for _, d in ipairs(args.checks_dir or {}) do
        local dir, err = M.directory(d)
        if not dir then return nil, "--checks-dir: " .. err end
        plan.checks_dirs[#plan.checks_dirs + 1] = dir
    end
    if args.policy then
        local f, err = M.readable_file(args.policy)
        if not f then return nil, "--policy: " .. err end
        plan.policy = f
    end
    if args.parallel then
        local n, err = M.parse_positive_integer(args.parallel)
        if not n then return nil, "--parallel: " .. err end
        plan.parallel = n
    end
    for _, d in ipairs(args.domain or {}) do
        local name, given = domain.parse(d)
        if not name then return nil, given end
        plan.targets[#plan.targets + 1] = { kind = "domain", name = name, input = given }
    end
    for _, h in ipairs(args.mx or {}) do
        local host, err = M.parse_host(h)
        if not host then return nil, "--mx: " .. err end
        plan.targets[#plan.targets + 1] = { kind = "host", name = host }
    end
    return plan
end

--- Validate the parsed arguments and turn them into the engine's config.
-- @return config, plan | nil, message (naming the option)
function M.config(args)
    local config, err = M.engine_config(args)
    if not config then return nil, err end
    local plan, perr = plan_of(args)
    if not plan then return nil, perr end
    if args.list_checks and args.explain then
        return nil, "--list-checks and --explain: choose one"
    end
    if (args.list_checks or args.explain) and #plan.targets > 0 then
        return nil, (args.list_checks and "--list-checks" or "--explain") .. ": takes no DOMAIN or --mx"
    end
    for _, t in ipairs(plan.targets) do t.port = config.port end
    return config, plan
end

----------------------------------------------------------------- audit

local function set_limit(key) return function(a, v) a.limits[key] = v end end

M.AUDIT_OPTIONS = {
    { "max_sessions", "--max-sessions", M.whole(1), set_limit "max_sessions" },
    { "max_dns_queries", "--max-dns-queries", M.whole(1), set_limit "max_dns_queries" },
    { "sessions_per_address", "--sessions-per-address", M.whole(1), set_limit "sessions_per_address" },
    { "connects_per_second", "--connects-per-second", M.per_second, set_limit "connects_per_second_per_address" },
    { "resume", "--resume", M.writable_path, function() end },
    { "output", "--output", function(p) if p == "-" then return p end return M.writable_path(p) end, function() end },
    { "summary", "--summary", M.writable_path, function() end },
}

--- Validate the options only `mxprobe audit` has.
-- @return options for mxprobe.app.audit.run | nil, message (naming the option)
function M.audit(args, parse_shard)
    local a = { limits = {} }
    if args.shard then
        local k, n = parse_shard(args.shard)
        if not k then return nil, "--shard: " .. n end
        a.shard = { k, n }
    end
    local ok, err = M.apply(M.AUDIT_OPTIONS, args, a)
    if not ok then return nil, err end
    if args.file ~= "-" then
        local f, ferr = io.open(args.file, "r")
        if not f then return nil, ("cannot read '%s': %s"):format(shown(args.file), io_reason(ferr)) end
        f:close()
    end
    if args.json and args.csv then return nil, "--json and --csv: choose one" end
    return a
end

return M
