--- mxprobe.app.cli: the command line (docs/cli.md).
--
--   cli.main(argv [, env]) -> exit code
--
-- env lets specs and embedders replace the outside world:
--   engine  the engine module (default: require "mxprobe.engine")
--   stdout, stderr  objects with :write(...) (default: io.stdout, io.stderr)
--   getenv  function(name) -> string|nil (default: os.getenv)
--   tty     whether stdout is a terminal (default: asked once with
--           `test -t 1` when stdout is the real one, false otherwise)
--
-- Exit codes follow the monitoring-plugin convention: 0 OK, 1 warning,
-- 2 critical, 3 could not test (also: usage errors, a bad policy or check
-- file, an interrupted run).  Over several targets the worst one wins,
-- ranked critical > could not test > warning > OK.
local argparse = require "argparse"
local domain = require "mxprobe.net.domain"
local vocab = require "mxprobe.runtime.vocab"
local audit_mod = require "mxprobe.app.audit"
local json = require "mxprobe.report.json"
local text = require "mxprobe.report.text"
local explain = require "mxprobe.report.explain"

local M = {}

M.DEFAULT_PARALLEL = 16

-- Kinds of non-global addresses (mxprobe.net.iputil.classify) that the address
-- check skips unless --allow-reserved names them.
M.RESERVED_KINDS = vocab.RESERVED_KINDS
M.RESERVED_KIND_SET = {}
for _, k in ipairs(M.RESERVED_KINDS) do M.RESERVED_KIND_SET[k] = true end

---------------------------------------------------------------- validators
-- Each returns the normalised value, or nil and what is wrong.

local function is_ipv4(s)
    local parts = { s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
    if #parts ~= 4 then return false end
    for _, p in ipairs(parts) do
        if #p > 1 and p:sub(1, 1) == "0" then return false end -- 010 is ambiguous (octal?)
        if tonumber(p) > 255 then return false end
    end
    return true
end
M.is_ipv4 = is_ipv4

local function is_ipv6(s)
    if not s:find(":", 1, true) or s:find("[^%x:%.]") then return false end
    local groups_needed = 8
    local v4 = s:match(":(%d+%.%d+%.%d+%.%d+)$")
    if v4 then
        if not is_ipv4(v4) then return false end
        s = s:sub(1, #s - #v4) .. "0:0" -- count the IPv4 tail as two groups
    end
    if s:find(":::", 1, true) then return false end
    local dc = select(2, s:gsub("::", "::"))
    if dc > 1 then return false end
    local function groups(part)
        if part == "" then return 0 end
        local n = 0
        for g in (part .. ":"):gmatch("([^:]*):") do
            if not g:match("^%x%x?%x?%x?$") then return nil end
            n = n + 1
        end
        return n
    end
    if dc == 1 then
        local left, right = s:match("^(.-)::(.*)$")
        local a, b = groups(left), groups(right)
        return a ~= nil and b ~= nil and a + b <= groups_needed - 1
    end
    return groups(s) == groups_needed
end
M.is_ipv6 = is_ipv6

function M.parse_port(s)
    if type(s) ~= "string" or not s:match("^%d+$") then return nil, ("'%s' is not a port number (1-65535)"):format(s) end
    local n = tonumber(s)
    if n < 1 or n > 65535 then return nil, ("'%s' is not a port number (1-65535)"):format(s) end
    return math.tointeger(n)
end

function M.parse_seconds(s)
    if type(s) ~= "string" or not (s:match("^%d+%.?%d*$") or s:match("^%.%d+$")) then
        return nil, ("'%s' is not a number of seconds"):format(s)
    end
    local n = tonumber(s)
    if n <= 0 then return nil, ("'%s': the timeout must be more than 0 seconds"):format(s) end
    if n > 86400 then return nil, ("'%s': the timeout must be at most 86400 seconds"):format(s) end
    return n
end

function M.parse_positive_integer(s)
    if type(s) ~= "string" or not s:match("^%d+$") or tonumber(s) < 1 or tonumber(s) > 100000 then
        return nil, ("'%s' is not a whole number from 1 to 100000"):format(s)
    end
    return math.tointeger(tonumber(s))
end

--- IP[:PORT] for a DNS server; IPv6 as ADDR or [ADDR] or [ADDR]:PORT.
-- @return "ip:port" (IPv6 as "[ip]:port"), the port defaulting to 53
function M.parse_resolver(s)
    local bad = ("'%s' is not IP[:PORT] (IPv6: [ADDR]:PORT)"):format(s)
    local host, port
    if s:sub(1, 1) == "[" then
        host, port = s:match("^%[([^%]]+)%]:(%d+)$")
        if not host then host = s:match("^%[([^%]]+)%]$") end
        if not host or not is_ipv6(host) then return nil, bad end
    elseif is_ipv6(s) then
        host = s
    else
        host, port = s:match("^([%d%.]+):([^:]*)$")
        if not host then host = s end
        if not is_ipv4(host) then return nil, bad end
    end
    local p = 53
    if port then
        local err
        p, err = M.parse_port(port)
        if not p then return nil, ("'%s': %s"):format(s, err) end
    end
    if host:find(":", 1, true) then return ("[%s]:%d"):format(host:lower(), p) end
    return ("%s:%d"):format(host, p)
end

--- A domain name as given on the command line (mxprobe.net.domain.parse).
M.parse_domain = domain.parse

--- A host for --mx: a host name, an IPv4 address, or an IPv6 address
-- (bare or in brackets).
function M.parse_host(s)
    local inner = s:match("^%[(.*)%]$")
    if inner and is_ipv6(inner) then return inner:lower() end
    if is_ipv4(s) then return s end
    if is_ipv6(s) then return s:lower() end
    local name, err = M.parse_domain(s)
    if not name then return nil, (err:gsub("a domain name", "a host name or IP address")) end
    return name
end

--- The EHLO name: a host name or an address literal such as [192.0.2.1].
function M.parse_helo(s)
    if s == "" or #s > 255 or s:find("[^%w%-%._%[%]:]") then
        return nil, ("'%s' is not a host name or address literal"):format(text.escape(s))
    end
    local lit = s:match("^%[(.*)%]$")
    if lit then
        if is_ipv4(lit) or (lit:match("^IPv6:") and is_ipv6(lit:sub(6))) then return s end
        return nil, ("'%s' is not an address literal ([192.0.2.1] or [IPv6:2001:db8::1])"):format(s)
    end
    if s:find("[%[%]:]") then return nil, ("'%s' is not a host name or address literal"):format(s) end
    local name, err = M.parse_domain(s)
    if not name then return nil, err end
    return name
end

--- An envelope address for the relay probe: local@domain, printable
-- ASCII, no spaces or angle brackets.
function M.parse_mailbox(s)
    local l, d = s:match("^([^@]+)@([^@]+)$")
    if not l or s:find("[^!-~]") or s:find("[<>]") then
        return nil, ("'%s' is not a mail address (local@domain)"):format(text.escape(s))
    end
    if not M.parse_domain(d) and not d:match("^%[.*%]$") then
        return nil, ("'%s': '%s' is not a domain name"):format(s, d)
    end
    return s
end

local function readable_file(path)
    local f, err = io.open(path, "r")
    if not f then return nil, ("cannot read '%s': %s"):format(path, (err:gsub("^[^:]*: ", ""))) end
    local ok, rerr = f:read(0)
    f:close()
    if ok == nil and rerr then return nil, ("cannot read '%s': %s"):format(path, rerr) end
    return path
end

local function directory(path)
    local f = io.open(path .. "/.", "r")
    if not f then return nil, ("'%s' is not a directory"):format(path) end
    f:close()
    return path
end

---------------------------------------------------------- toolbox (issue 13)
-- Every option issue 13 ("in the admin's toolbox") added, and its
-- handling, in this one block (so it can move whole when cli.lua is
-- split): --implicit-tls, --submission, --source; --format
-- nagios|openmetrics with -w/-c/-t; --color, -q; --completion; the
-- library versions of --version; the default policy files; the width of
-- the text report; the status line.  The hooks outside the block:
--   build_parser        calls toolbox.options(p, mode) last
--   M.config(args, env) calls toolbox.config(args, config, plan, env) last
--   M.main              toolbox.early (--completion, --version) after parsing;
--                       plan.width = toolbox.width(env)
--   M.want_color        --color and --format
--   run_targets         toolbox.start / toolbox.status / toolbox.finish, and
--                       the text options (width, quiet) of each report
local toolbox = {}
M.toolbox = toolbox

toolbox.SHELLS = { "bash", "zsh", "fish" }
toolbox.FORMATS = { "text", "json", "nagios", "openmetrics" }
toolbox.COLORS = { "auto", "always", "never" }
-- formats that render all results at once, at the end (one status line;
-- one metric family per name)
toolbox.COLLECTED = { nagios = "mxprobe.report.nagios", openmetrics = "mxprobe.report.openmetrics" }

local function days(s)
    if type(s) ~= "string" or not s:match("^%d+$") or tonumber(s) > 100000 then
        return nil, ("'%s' is not a number of days (0 to 100000)"):format(text.escape(tostring(s)))
    end
    return math.tointeger(tonumber(s))
end

--- The policy to judge with when --policy is not given (docs/policies.md,
-- "Which policy"): $MXPROBE_POLICY (empty: none of the files below, the
-- stock policy), else the user's $XDG_CONFIG_HOME/mxprobe/policy.lua
-- (default ~/.config), else the system's /etc/mxprobe/policy.lua, else
-- the stock policy.  A file that is named by MXPROBE_POLICY must be
-- readable; the user and system files are used when they exist (one that
-- exists but cannot be read is an error, not silently skipped).
-- env.getenv, env.system_policy: replaceable by specs.
-- @return path | nil, where it came from | nil, nil, message
toolbox.SYSTEM_POLICY = "/etc/mxprobe/policy.lua"
function toolbox.default_policy(env)
    local getenv = env.getenv or os.getenv
    local named = getenv("MXPROBE_POLICY")
    if named ~= nil then
        if named == "" then return nil, "MXPROBE_POLICY" end
        local f, err = readable_file(named)
        if not f then return nil, nil, "MXPROBE_POLICY: " .. err end
        return f, "MXPROBE_POLICY"
    end
    local candidates = {}
    local xdg = getenv("XDG_CONFIG_HOME")
    if not xdg or xdg == "" or xdg:sub(1, 1) ~= "/" then -- the XDG spec: a relative value is ignored
        local home = getenv("HOME")
        xdg = home and home ~= "" and (home .. "/.config") or nil
    end
    if xdg then candidates[#candidates + 1] = { xdg .. "/mxprobe/policy.lua", "user" } end
    candidates[#candidates + 1] = { env.system_policy or toolbox.SYSTEM_POLICY, "system" }
    for _, c in ipairs(candidates) do
        local f, ferr = io.open(c[1], "r")
        if f then
            f:close()
            local ok, err = readable_file(c[1])
            if not ok then return nil, nil, ("the %s policy: %s"):format(c[2], err) end
            return c[1], c[2]
        elseif ferr and not ferr:find("No such file", 1, true) and not ferr:find("Not a directory", 1, true) then
            return nil, nil, ("the %s policy: cannot read '%s': %s"):format(c[2], c[1], (ferr:gsub("^[^:]*: ", "")))
        end
    end
    return nil
end

--- Validate issue 13's options into plan (and args.json for --format json).
-- @return true | nil, message naming the option
function toolbox.config(args, config, plan, env)
    if args.implicit_tls then config.implicit_tls = true end
    if args.submission then config.submission = true end
    if not config.port and (args.implicit_tls or args.submission) then
        config.port = args.implicit_tls and 465 or 587
    end
    if args.submission and args.no_relay then
        return nil, "--no-relay: there is no relay probe with --submission (it tries MAIL without AUTH instead)"
    end
    if args.source and #args.source > 0 then
        local src = {}
        for _, a in ipairs(args.source) do
            local inner = a:match("^%[(.*)%]$") or a
            local fam = M.is_ipv4(inner) and 4 or (M.is_ipv6(inner) and 6) or nil
            if not fam then
                return nil, ("--source: '%s' is not an IPv4 or IPv6 address"):format(text.escape(a))
            end
            if src[fam] then return nil, ("--source: two IPv%d addresses (%s and %s)"):format(fam, src[fam], inner) end
            src[fam] = fam == 6 and inner:lower() or inner
        end
        config.source = src
        if not (src[4] and src[6]) then
            local only = src[4] and 4 or 6
            if config.families and config.families[1] ~= only then
                return nil, ("--source: an IPv%d address, but -%d asks for IPv%d only"):format(only, config.families[1], config.families[1])
            end
            config.families = { only }
        end
    end
    if not plan.policy then
        local path, src, perr = toolbox.default_policy(env)
        if perr then return nil, perr end
        plan.policy, plan.policy_source = path, src
    end
    local fmt = args.format
    if fmt and not toolbox.COLLECTED[fmt] and fmt ~= "text" and fmt ~= "json" then
        return nil, ("--format: '%s' is not a format (%s)"):format(text.escape(fmt), table.concat(toolbox.FORMATS, ", "))
    end
    if fmt and args.json and fmt ~= "json" then return nil, "--json and --format " .. fmt .. ": choose one" end
    if fmt == "json" then args.json = true end
    plan.format = fmt or (args.json and "json") or "text"
    if args.color and args.no_color and args.color ~= "never" then
        return nil, "--no-color and --color " .. args.color .. ": choose one"
    end
    plan.color = args.color or (args.no_color and "never") or "auto"
    for _, o in ipairs { { "warning", "-w" }, { "critical", "-c" } } do
        local v = args[o[1]]
        if v ~= nil then
            if plan.format ~= "nagios" then return nil, o[2] .. ": only with --format nagios" end
            local n, err = days(v)
            if not n then return nil, o[2] .. ": " .. err end
            plan[o[1] .. "_days"] = n
        end
    end
    if plan.warning_days and plan.critical_days and plan.critical_days > plan.warning_days then
        return nil, ("-c %d is more than -w %d: a certificate would be critical before it is a warning"):format(
            plan.critical_days, plan.warning_days)
    end
    if args.quiet then
        if plan.format ~= "text" then return nil, "-q: only with the text report (not --format " .. plan.format .. ")" end
        if args.verbose then return nil, "-q and -v: choose one" end
        plan.quiet = true
    end
    if args.timeout then
        local t, err = M.parse_seconds(args.timeout)
        if not t then return nil, "-t: " .. err end
        plan.deadline = t
    end
    if toolbox.COLLECTED[plan.format] and (args.list_checks or args.explain) then
        return nil, "--format " .. plan.format .. ": not with " .. (args.list_checks and "--list-checks" or "--explain")
    end
    return true
end

--- The width of the text report: the terminal's (TIOCGWINSZ on stdout),
-- else COLUMNS, else 80.  env.columns (specs) wins; a stdout that is not
-- the process's own has no terminal size.
function toolbox.width(env)
    if math.type(env.columns) == "integer" and env.columns > 0 then return env.columns end
    if env.stdout == nil or env.stdout == io.stdout then
        local ok, core = pcall(require, "mxprobe.core")
        if ok and type(core) == "table" and core.term then
            local cols = core.term.size(1)
            if cols and cols > 0 then return cols end
        end
    end
    local c = (env.getenv or os.getenv)("COLUMNS")
    local n = c and c:match("^%s*(%d+)%s*$") and tonumber(c)
    if n and n >= 20 and n <= 10000 then return math.tointeger(n) end
    return 80
end

--- The status line: on stderr, only on a terminal (and not with -q or
-- TERM=dumb), while targets are tested: what the longest wait is for and
-- how long it has lasted, "[2/5] waiting 12 s for the greeting of
-- mx.example.org (192.0.2.1); gives up in 18 s (+3 more)".  It is cleared
-- before each report is written (stdout may be the same terminal) and at
-- the end.  env.status: true/false forces it (specs).
toolbox.STATUS_FIRST, toolbox.STATUS_EVERY = 0.5, 0.25
function toolbox.want_status(plan, env)
    if env.status ~= nil then return env.status end
    if plan.quiet then return false end
    local term = (env.getenv or os.getenv)("TERM")
    if not term or term == "" or term == "dumb" then return false end
    if env.stderr ~= nil and env.stderr ~= io.stderr then return false end
    local ok, core = pcall(require, "mxprobe.core")
    return ok and type(core) == "table" and core.term and core.term.isatty(2) or false
end

--- One status line (plain text, at most width columns), from
-- loop.activities() at now.  done, total: targets finished, in all.
function toolbox.status_text(acts, now, done, total, width)
    local s
    local a = acts[1]
    if a then
        s = ("waiting %d s for %s"):format(math.floor(now - a.since), a.what)
        if a.deadline then
            s = s .. ("; gives up in %d s"):format(math.max(0, math.ceil(a.deadline - now)))
        end
        if #acts > 1 then s = s .. (" (+%d more)"):format(#acts - 1) end
    else
        s = "testing"
    end
    if total > 1 then s = ("[%d/%d] "):format(done, total) .. s end
    s = text.escape(s)
    if width and text.width(s) > width - 1 then
        s = text.wrap(s, width - 2)[1]
        while text.width(s) > width - 2 do s = s:sub(1, -2) end
        s = s .. "…"
    end
    return s
end

function toolbox.status(loop, plan, env, err, total)
    local st = { done = 0, shown = false }
    function st.clear()
        if st.shown then err("\r\27[K"); st.shown = false end
    end
    function st.stop()
        if st.task then loop.cancel(st.task); st.task = nil end
        st.clear()
    end
    if not toolbox.want_status(plan, env) then return st end
    local width = plan.width
    local ok, core = pcall(require, "mxprobe.core")
    if ok and core.term and (env.stderr == nil or env.stderr == io.stderr) then width = core.term.size(2) or width end
    st.task = loop.spawn(function()
        -- nothing for a quick run: a line that flashes is noise
        if not loop.sleep(toolbox.STATUS_FIRST) then return end
        repeat
            err("\r\27[K" .. toolbox.status_text(loop.activities(), loop.now(), st.done, total, width))
            st.shown = true
        until not loop.sleep(toolbox.STATUS_EVERY)
    end)
    return st
end

--- Run-time state of the output: the results of a collected format, and
-- the -t watchdog.  run_targets calls these.
function toolbox.start(loop, plan, on_deadline)
    local st = { collected = toolbox.COLLECTED[plan.format] and {} or nil }
    if plan.deadline then
        st.watchdog = loop.spawn(function()
            if loop.sleep(plan.deadline) then
                st.timed_out = plan.deadline
                on_deadline()
            end
        end)
    end
    return st
end

--- After the run: stop the watchdog; write a collected format.
-- @return the exit code to use instead of worst, or nil
function toolbox.finish(loop, st, plan, out, flush, worst, n, err)
    if st.watchdog then loop.cancel(st.watchdog) end
    if st.collected then
        local mod = require(toolbox.COLLECTED[plan.format])
        local s, code = mod.render_all(st.collected, {
            warning = plan.warning_days, critical = plan.critical_days, timed_out = st.timed_out, targets = n,
            interrupted = st.interrupted,
        })
        out(s)
        flush()
        if plan.format == "nagios" then return code end
        if st.timed_out or st.interrupted then return M.worst(worst, 3) end
        return worst
    end
    if st.timed_out then
        local missing = n - (st.printed or 0)
        err(("mxprobe: stopped after %s s (-t); %d of %d %s not checked\n"):format(
            tostring(st.timed_out), missing, n, n == 1 and "target" or "targets"))
        return M.worst(worst, 3)
    end
    return nil
end

--- Add issue 13's options to parser p (mode: nil, or "audit").
function toolbox.options(p, mode)
    p:group("Service and source",
        p:flag("--implicit-tls", "TLS before the greeting (port 465, RFC 8314); the port defaults to 465."),
        p:flag("--submission", "Test a submission service (RFC 6409): STARTTLS before AUTH, AUTH only inside TLS, "
            .. "MAIL without AUTH refused instead of the relay probe; the port defaults to 587 (465 with --implicit-tls)."),
        p:option("--source", "Connect from this local address (one IPv4 and one IPv6 at most; with only one family "
            .. "given, only that family is tested)."):argname("<address>"):count("*")
    )
    if mode == "audit" then return end
    p:group("Output format and terminal",
        p:option("--format", "Output format: text (the default), json (as --json), nagios (a monitoring plugin: "
            .. "one status line with performance data, exit status 0-3), openmetrics (for the node_exporter "
            .. "textfile collector)."):argname("<format>"):choices(toolbox.FORMATS),
        p:option("--color", "Colours in the text report: auto (on a terminal, unless NO_COLOR is set; the default), "
            .. "always, never."):argname("<when>"):choices(toolbox.COLORS),
        p:flag("-q --quiet", "Text: only the summary line of each target (domain, verdict, the decisive reason); "
            .. "no status line on the terminal.")
    )
    p:group("Monitoring plugin (--format nagios)",
        p:option("-w --warning", "WARNING when a certificate is valid for fewer than this many days."):argname("<days>"),
        p:option("-c --critical", "CRITICAL when a certificate is valid for fewer than this many days."):argname("<days>"),
        p:option("-t --timeout", "Stop the whole run after this many seconds (any format; nagios: UNKNOWN)."):argname("<s>")
    )
    p:group("Shell",
        p:option("--completion", "Print the completion script for this shell (bash, zsh or fish) and exit; "
            .. "installed ones are in share/bash-completion, share/zsh/vendor-completions and "
            .. "share/fish/vendor_completions.d."):argname("<shell>"):choices(toolbox.SHELLS)
    )
end

--- The completion script for shell, from the --help parsers (mxprobe and
-- its audit command).  @return script | nil, message
function toolbox.completion(shell, build)
    local known = false
    for _, s in ipairs(toolbox.SHELLS) do known = known or s == shell end
    if not known then
        return nil, ("--completion: '%s' is not a shell (bash, zsh or fish)"):format(text.escape(shell))
    end
    local p = build()
    build("audit", "audit", p:command("audit", "Test the mail servers of many domains (mxprobe audit --help)."))
    return p["get_" .. shell .. "_complete"](p)
end

--- What --version prints: mxprobe's version and those of the libraries
-- in use (asked at run time where the library can say).
function toolbox.version_text()
    local ok, paths = pcall(require, "mxprobe.runtime.paths")
    local lines = { "mxprobe " .. (ok and type(paths) == "table" and paths.version or "(unknown version)") }
    local cok, core = pcall(require, "mxprobe.core")
    local libs = cok and type(core) == "table" and core.libs or {}
    for _, l in ipairs { { "Lua", "lua" }, { "OpenSSL", "openssl" }, { "c-ares", "cares" }, { "libidn2", "idn2" } } do
        local v = libs[l[2]]
        if v then
            v = tostring(v):gsub("^" .. l[1]:gsub("%-", "%%-") .. " ", "")
            lines[#lines + 1] = ("  %-8s %s"):format(l[1], v)
        end
    end
    return table.concat(lines, "\n") .. "\n"
end

--- Options that act before any validation: --completion and --version.
-- @return exit code, when the command line is done | nil
function toolbox.early(args, out, fail)
    if args.completion then
        local script, err = toolbox.completion(args.completion, M.parser)
        if not script then return fail(err) end
        out(script)
        return 0
    end
    if args.version then
        out(toolbox.version_text())
        return 0
    end
    return nil
end
-------------------------------------------------------- end of toolbox block

------------------------------------------------------------------ parser

-- mode: nil (mxprobe [OPTIONS] DOMAIN...) or "audit" (mxprobe audit FILE):
-- the options of what to test, the network and the policy are the same.
-- into: an argparse command to fill instead of a new parser (the
-- completion scripts see `audit` as a command of mxprobe).
local function build_parser(name, mode, into)
    local audit = mode == "audit"
    local p = into or argparse(name or (audit and "mxprobe audit" or "mxprobe"))
    if audit then
        p:description("Test the mail servers of many domains, one per line of FILE (- for stdin; "
            .. "'#' comments and blank lines allowed; internationalised names are converted "
            .. "to A-labels). One record per domain is written and flushed as the domain "
            .. "completes: JSON Lines (the schema of --json) or CSV. Session results are "
            .. "probed once per (address, port, MX name) and shared between domains; DNS "
            .. "answers are cached for the run. A summary goes to stderr at the end.")
        p:epilog("Exit status: 0 every domain has a record; 3 otherwise (usage error, interrupted, "
            .. "output not writable). Verdicts are in the records and the summary.\n\n"
            .. "Examples:\n"
            .. "  mxprobe audit domains.txt -o results.jsonl\n"
            .. "  mxprobe audit domains.txt --resume results.jsonl      # after Ctrl-C or a crash\n"
            .. "  mxprobe audit domains.txt --shard 3/8 -o part-3.jsonl  # the 3rd of 8 jobs\n"
            .. "  mxprobe audit - --csv < domains.txt > results.csv\n\n"
            .. "Full documentation: man mxprobe (section AUDIT), docs/audits.md")
    else
        p:description("Test the mail servers (MX) of domains: DNS, TCP port 25, the 220 greeting, "
            .. "EHLO, STARTTLS and the TLS version, the certificate and open relay. Each finding "
            .. "has a diagnostic code (mxprobe --explain CODE), each server a score and each "
            .. "domain a verdict.")
        p:epilog("Exit status: 0 OK, 1 warning, 2 critical, 3 could not test (or a usage error). "
            .. "With several targets the worst wins (critical > could not test > warning > OK).\n\n"
            .. "Examples:\n"
            .. "  mxprobe example.org\n"
            .. "  mxprobe --json example.org example.net > results.jsonl\n"
            .. "  mxprobe --mx mx1.example.org --port 2525 -v\n"
            .. "  mxprobe --explain TLS_VERSION_DEPRECATED\n"
            .. "  mxprobe audit domains.txt -o results.jsonl   (many domains; mxprobe audit --help)\n\n"
            .. "Full documentation: man mxprobe")
    end
    p:add_help(false)
        :usage_max_width(80)
        :help_max_width(80)
        :help_description_margin(30)
    if audit then
        p:argument("file", "File of domains, one per line (- for stdin)."):args(1)
        p:group("Output",
            p:option("-o --output", "Write the records to this file (default: stdout)."):argname("<file>"),
            p:flag("--csv", "CSV rows (one per domain, with a header) instead of JSON Lines."),
            p:option("--resume", "Skip the domains this earlier output already has; append to it "
                .. "(unless -o names another file)."):argname("<file>"),
            p:option("--summary", "Write the summary as JSON to this file instead of text on stderr."):argname("<file>"),
            p:flag("--no-progress", "No progress line on stderr (shown only on a terminal anyway)."),
            p:flag("-v --verbose", "Keep the tracebacks of failing checks in the records.")
        )
    else
        p:argument("domain", "Domain(s) whose MX servers to test."):args("*")
        p:group("Output",
            p:flag("--json", "One JSON document per target, one per line (JSON Lines; docs/json-schema.md)."),
            p:flag("-v --verbose", "Show each server's facts and the SMTP transcript."),
            p:flag("--no-color", "No colours (also: NO_COLOR set to anything non-empty).")
        )
    end
    local what = {}
    if not audit then
        what[#what + 1] = p:option("--mx", "Test this mail server directly instead of a domain's MX (repeatable)."):argname("<host>"):count("*")
    end
    what[#what + 1] = p:option("--port", "SMTP port (default 25)."):argname("<n>")
    what[#what + 1] = p:flag("-4", "IPv4 only."):target("ipv4")
    what[#what + 1] = p:flag("-6", "IPv6 only (-4 -6: both, the default)."):target("ipv6")
    what[#what + 1] = p:option("--checks", "Run only these checks (and what they require), comma-separated."):argname("<id,...>")
    what[#what + 1] = p:flag("--no-relay", "Skip the open relay probe.")
    what[#what + 1] = p:option("--relay-from", "MAIL FROM address of the relay probe."):argname("<addr>")
    what[#what + 1] = p:option("--relay-to", "RCPT TO address (an external domain) of the relay probe."):argname("<addr>")
    what[#what + 1] = p:option("--allow-reserved", "Probe these non-global address kinds anyway (test networks), comma-separated: "
            .. "documentation, private, loopback, linklocal, shared, reserved, or all."):argname("<kind,...>")
    if not audit then
        what[#what + 1] = p:option("--parallel", ("Test at most this many targets at once (default %d)."):format(M.DEFAULT_PARALLEL)):argname("<n>")
    end
    p:group("What to test", table.unpack(what))
    if audit then
        p:group("Audit: shares and limits",
            p:option("--shard", "Check only share K of N (1 <= K <= N), chosen by a hash of each name: "
                .. "N jobs with K = 1..N cover the input once."):argname("<K/N>"),
            p:flag("--no-share", "Probe every address again for every domain instead of sharing session results."),
            p:option("--parallel", ("Domains in flight at once (default %d; policy probe.limits.max_domains)."):format(
                audit_mod.DEFAULT_PARALLEL)):argname("<n>"),
            p:option("--max-sessions", "Open SMTP connections at once, in all (default: no cap)."):argname("<n>"),
            p:option("--max-dns-queries", ("DNS queries in flight at once (default %d)."):format(
                audit_mod.DEFAULT_DNS_QUERIES)):argname("<n>"),
            p:option("--sessions-per-address", "Probes at once per remote address (default 2)."):argname("<n>"),
            p:option("--connects-per-second", "New connections per second per remote address (default: no cap)."):argname("<r>")
        )
    end
    p:group("Network",
        p:option("--helo", "EHLO name to announce."):argname("<name>"),
        p:option("--resolver", "DNS server to ask instead of the system's (repeatable)."):argname("<ip[:port]>"):count("*"),
        p:option("--ca-file", "Trust anchors (PEM) for certificate verification."):argname("<path>"),
        p:option("--timeout-connect", "TCP connect timeout, seconds."):argname("<s>"),
        p:option("--timeout-greeting", "Wait for the 220 greeting, seconds."):argname("<s>"),
        p:option("--timeout-command", "Wait for the reply to each command, seconds."):argname("<s>"),
        p:option("--timeout-tls", "TLS handshake timeout, seconds."):argname("<s>"),
        p:option("--timeout-dns", "Each DNS query, seconds."):argname("<s>")
    )
    if audit then
        p:group("Policy and checks",
            p:option("--policy", "Judge with this policy file instead of the default."):argname("<file>"),
            p:option("--checks-dir", "Load more checks from this directory (repeatable)."):argname("<dir>"):count("*")
        )
        p:group("Other", p:flag("-h --help", "Show this help and exit."))
    else
        p:group("Policy and checks",
            p:option("--policy", "Judge with this policy file instead of the default."):argname("<file>"),
            p:option("--checks-dir", "Load more checks from this directory (repeatable)."):argname("<dir>"):count("*"),
            p:flag("--list-checks", "List the checks and exit."),
            p:option("--explain", "Explain a diagnostic code and exit."):argname("<code>")
        )
        p:group("Other",
            p:flag("-h --help", "Show this help and exit."),
            p:flag("--version", "Show the version and the libraries' versions and exit.")
        )
    end
    toolbox.options(p, mode)
    return p
end
M.parser = build_parser

--- Parse argv (a list of strings) into the raw argparse result.
-- @return args | nil, one-line message
function M.parse(argv)
    local ok, r = build_parser():pparse(argv)
    if not ok then
        -- argparse adds "\nDid you mean '--port'?": keep it on one line
        return nil, (tostring(r):gsub("\n+Did you mean", "; did you mean"):gsub("\n", "; "))
    end
    return r
end

--- Validate the parsed arguments and turn them into the engine's config.
-- @return config, plan | nil, message (naming the option)
function M.config(args, env)
    local config = { timeouts = {} }
    local function opt(name, v, parse)
        if v == nil then return true end
        local r, err = parse(v)
        if r == nil then return nil, name .. ": " .. err end
        return r
    end
    local function need(v, err) if v == nil then error({ msg = err }, 0) end return v end
    local ok, e = pcall(function()
        if args.port then config.port = need(opt("--port", args.port, M.parse_port)) end
        if args.helo then config.helo = need(opt("--helo", args.helo, M.parse_helo)) end
        for _, k in ipairs { "connect", "greeting", "command", "tls", "dns" } do
            local v = args["timeout_" .. k]
            if v then config.timeouts[k] = need(opt("--timeout-" .. k, v, M.parse_seconds)) end
        end
        if args.ipv4 and not args.ipv6 then config.families = { 4 }
        elseif args.ipv6 and not args.ipv4 then config.families = { 6 } end
        if args.resolver and #args.resolver > 0 then
            local servers = {}
            for _, r in ipairs(args.resolver) do servers[#servers + 1] = need(opt("--resolver", r, M.parse_resolver)) end
            config.resolver = { servers = servers }
        end
        if args.ca_file then config.ca_file = need(opt("--ca-file", args.ca_file, readable_file)) end
        if args.checks then
            local only = {}
            for item in (args.checks .. ","):gmatch("([^,]*),") do
                item = item:match("^%s*(.-)%s*$")
                if not item:match("^[a-z][a-z0-9_]*$") then
                    need(nil, ("--checks: '%s' is not a check id (see mxprobe --list-checks)"):format(text.escape(item)))
                end
                only[#only + 1] = item
            end
            config.only = only
        end
        if args.allow_reserved then
            local kinds = {}
            for item in (args.allow_reserved .. ","):gmatch("([^,]*),") do
                item = item:match("^%s*(.-)%s*$")
                if item == "all" then
                    for _, k in ipairs(M.RESERVED_KINDS) do kinds[#kinds + 1] = k end
                elseif M.RESERVED_KIND_SET[item] then
                    kinds[#kinds + 1] = item
                else
                    need(nil, ("--allow-reserved: '%s' is not an address kind (%s, or all)"):format(
                        text.escape(item), table.concat(M.RESERVED_KINDS, ", ")))
                end
            end
            config.allow_reserved = kinds
        end
        if args.no_relay and (args.relay_from or args.relay_to) then
            need(nil, "--no-relay: cannot be combined with " .. (args.relay_from and "--relay-from" or "--relay-to"))
        end
        -- only --no-relay says anything about enabling: a policy may turn the probe off
        config.relay = {}
        if args.no_relay then config.relay.enabled = false end
        if args.relay_from then config.relay.from = need(opt("--relay-from", args.relay_from, M.parse_mailbox)) end
        if args.relay_to then config.relay.to = need(opt("--relay-to", args.relay_to, M.parse_mailbox)) end
        config.verbose = args.verbose and true or false
    end)
    if not ok then
        if type(e) == "table" then return nil, e.msg end
        error(e, 0)
    end
    if next(config.timeouts) == nil then config.timeouts = nil end

    local plan = { checks_dirs = {}, targets = {} }
    for _, d in ipairs(args.checks_dir or {}) do
        local dir, err = directory(d)
        if not dir then return nil, "--checks-dir: " .. err end
        plan.checks_dirs[#plan.checks_dirs + 1] = dir
    end
    if args.policy then
        local f, err = readable_file(args.policy)
        if not f then return nil, "--policy: " .. err end
        plan.policy = f
    end
    if args.parallel then
        local n, err = M.parse_positive_integer(args.parallel)
        if not n then return nil, "--parallel: " .. err end
        plan.parallel = n
    end
    for _, d in ipairs(args.domain or {}) do
        local name, given = M.parse_domain(d)
        if not name then return nil, given end
        plan.targets[#plan.targets + 1] = { kind = "domain", name = name, input = given }
    end
    for _, h in ipairs(args.mx or {}) do
        local host, err = M.parse_host(h)
        if not host then return nil, "--mx: " .. err end
        plan.targets[#plan.targets + 1] = { kind = "host", name = host }
    end
    if args.list_checks and args.explain then
        return nil, "--list-checks and --explain: choose one"
    end
    if (args.list_checks or args.explain) and #plan.targets > 0 then
        return nil, (args.list_checks and "--list-checks" or "--explain") .. ": takes no DOMAIN or --mx"
    end
    local tok, terr = toolbox.config(args, config, plan, env or {})
    if not tok then return nil, terr end
    return config, plan
end

------------------------------------------------------------------- output

local VERDICT_EXIT = { ok = 0, warning = 1, critical = 2, inconclusive = 3 }
-- the monitoring convention's "worst": critical, then could not test, then warning
local EXIT_RANK = { [0] = 0, [1] = 1, [3] = 2, [2] = 3 }

--- The exit code of one result: its exit_code, or derived from the verdict.
function M.exit_code_of(result)
    local c = type(result) == "table" and result.exit_code
    if math.type(c) == "integer" and EXIT_RANK[c] then return c end
    if type(c) == "number" and EXIT_RANK[math.tointeger(c) or -1] then return math.tointeger(c) end
    return VERDICT_EXIT[type(result) == "table" and result.verdict] or 3
end

--- The worst of exit codes a and b.
function M.worst(a, b)
    if a == nil then return b end
    if b == nil then return a end
    return (EXIT_RANK[b] or 2) > (EXIT_RANK[a] or 2) and b or a
end

-- A write function for a file-like object: returns false once writing
-- failed (stdout closed: `mxprobe --json ... | head -1`).
local function writer(f)
    return function(...)
        local ok, msg = f:write(...)
        return ok ~= nil and ok ~= false, msg
    end
end

-- Flush f if it can be flushed; false when that failed.
local function flusher(f)
    return function()
        if f.flush then
            local ok, msg = f:flush()
            return ok ~= nil and ok ~= false, msg
        end
        return true
    end
end

local function default_tty()
    local ok = os.execute("test -t 1")
    return ok == true
end

--- Whether to colour the text report.
function M.want_color(args, env)
    if args.json or (args.format and args.format ~= "text") then return false end
    if args.color == "always" then return true end -- asked for: wins over NO_COLOR and TERM
    if args.no_color or args.color == "never" then return false end
    local getenv = env.getenv or os.getenv
    local nc = getenv("NO_COLOR")
    if nc and nc ~= "" then return false end
    local term = getenv("TERM")
    if not term or term == "" or term == "dumb" then return false end
    local tty = env.tty
    if tty == nil then tty = (env.stdout == nil or env.stdout == io.stdout) and default_tty() end
    return tty and true or false
end

------------------------------------------------------------------- the run

local function failed_result(target, message)
    return {
        schema = 1,
        domain = target.name,
        verdict = "inconclusive",
        exit_code = 3,
        error = message,
        servers = json.array(),
        findings = json.array(),
    }
end

-- Run the targets concurrently (at most plan.parallel at once) and print
-- each report in the order of the command line as soon as it and every
-- report before it are done.  Must run inside a task.
local function run_targets(loop, run, plan, args, io_, color, own_loop)
    local out, err, flush_out = io_.out, io_.err, io_.flush
    local targets = plan.targets
    local n = #targets
    local results, done, printed = {}, {}, 0
    local worst = nil
    local finished = {} -- the verdicts printed, for the summary line
    local tasks, interrupted, output_closed, write_error = {}, false, false, nil
    local function stop_all()
        for i, t in ipairs(tasks) do
            if not done[i] then loop.cancel(t) end
        end
    end
    local tb = toolbox.start(loop, plan, stop_all) -- issue 13: collected formats, -t
    local status = toolbox.status(loop, plan, io_.env or {}, err, n) -- issue 13: the status line
    local function emit(i)
        local r = results[i]
        results[i] = nil -- thousands of domains: keep no result once printed
        local ok, msg
        status.done = status.done + 1
        status.clear()
        if tb.collected then
            tb.collected[#tb.collected + 1] = r
            ok = true
        elseif args.json then
            ok, msg = out(json.render(r))
        else
            ok, msg = out((#finished > 0 and not plan.quiet and "\n" or "")
                .. text.render(r, { color = color, verbose = args.verbose, width = plan.width, quiet = plan.quiet }))
        end
        -- each report leaves at once: pipelines see results as they come
        if ok then ok, msg = flush_out() end
        write_error = write_error or msg
        finished[#finished + 1] = { verdict = r.verdict }
        tb.printed = #finished
        worst = M.worst(worst, M.exit_code_of(r))
        if not ok and not output_closed then
            output_closed = true -- nobody reads any more: stop probing
            stop_all()
        end
    end
    local function flush()
        while printed < n and done[printed + 1] do
            printed = printed + 1
            if results[printed] then emit(printed) end
        end
    end

    local sem = loop.semaphore(plan.parallel or M.DEFAULT_PARALLEL)
    for i, target in ipairs(targets) do
        tasks[i] = loop.spawn(function()
            local got = sem:acquire()
            if not got then done[i] = true; return end -- cancelled while queued
            local ok, r
            if target.kind == "host" then
                ok, r = pcall(run.check_host, run, target.name, plan.port) -- nil: the policy's port
            else
                ok, r = pcall(run.check_domain, run, target.name)
            end
            sem:release()
            if interrupted or output_closed or tb.timed_out then done[i] = true; return end
            if not ok or type(r) ~= "table" then
                local msg = not ok and tostring(r) or ("the engine returned a %s, not a result"):format(type(r))
                if not args.verbose then msg = msg:gsub("\nstack traceback:.*", "") end
                err(("mxprobe: %s: internal error: %s\n"):format(target.name, text.escape(msg)))
                r = failed_result(target, "internal error: " .. msg)
            end
            if target.input then r.input = target.input end -- the name as given (U-labels)
            results[i], done[i] = r, true
            flush()
        end)
    end
    if own_loop then
        loop.on_signal(function()
            if interrupted then
                err("mxprobe: interrupted again; exiting now\n")
                os.exit(3, false)
            end
            interrupted = true
            stop_all()
        end)
    end
    for i = 1, n do loop.join(tasks[i]) end
    status.stop()
    if own_loop then loop.on_signal(nil) end
    -- after an interrupt: print what did finish, in order
    for i = 1, n do done[i] = true end
    if not output_closed then flush() end
    if output_closed then
        -- a reader that went away (| head) is not worth a message; a full
        -- disk is
        if not tostring(write_error):find("Broken pipe", 1, true) then
            err(("mxprobe: cannot write the report: %s; stopped\n"):format(tostring(write_error or "write failed")))
        end
        return 3
    end
    if interrupted then
        local missing = n - #finished
        err(("mxprobe: interrupted; %d of %d %s not checked\n"):format(missing, n, n == 1 and "target" or "targets"))
        worst = M.worst(worst, 3)
    end
    tb.interrupted = interrupted
    local tcode = toolbox.finish(loop, tb, plan, out, flush_out, worst, n, err)
    if tcode then return tcode end
    if not args.json and not plan.quiet and #finished > 1 then
        out("\n" .. text.summary(finished))
        flush_out()
    end
    return worst or 3
end

local function load_engine(env)
    if env.engine then return env.engine end
    local ok, e = pcall(require, "mxprobe.engine")
    if not ok then return nil, "cannot load the engine (mxprobe.engine): " .. tostring(e):gsub("\n.*", "") end
    return e
end

------------------------------------------------------------------- audit

-- A whole number from lo to 100000.
local function whole(lo)
    return function(s)
        if type(s) ~= "string" or not s:match("^%d+$") or tonumber(s) < lo or tonumber(s) > 100000 then
            return nil, ("'%s' is not a whole number from %d to 100000"):format(s, lo)
        end
        return math.tointeger(tonumber(s))
    end
end

local function per_second(s)
    local n = type(s) == "string" and (s:match("^%d+%.?%d*$") or s:match("^%.%d+$")) and tonumber(s)
    if not n or n <= 0 or n > 100000 then
        return nil, ("'%s' is not a rate (connections per second, more than 0, at most 100000)"):format(s)
    end
    return n
end

--- Validate the options only `mxprobe audit` has.
-- @return options for mxprobe.app.audit.run | nil, message (naming the option)
function M.audit_options(args)
    local a = { limits = {} }
    if args.shard then
        local k, n = audit_mod.parse_shard(args.shard)
        if not k then return nil, "--shard: " .. n end
        a.shard = { k, n }
    end
    for _, o in ipairs {
        { "max_sessions", "--max-sessions", whole(1), "max_sessions" },
        { "max_dns_queries", "--max-dns-queries", whole(1), "max_dns_queries" },
        { "sessions_per_address", "--sessions-per-address", whole(1), "sessions_per_address" },
        { "connects_per_second", "--connects-per-second", per_second, "connects_per_second_per_address" },
    } do
        local v = args[o[1]]
        if v ~= nil then
            local r, err = o[3](v)
            if r == nil then return nil, o[2] .. ": " .. err end
            a.limits[o[4]] = r
        end
    end
    if args.file ~= "-" then
        local f, err = io.open(args.file, "r")
        if not f then return nil, ("cannot read '%s': %s"):format(text.escape(args.file), (err:gsub("^[^:]*: ", ""))) end
        f:close()
    end
    if args.resume then
        local f = io.open(args.resume .. "/.", "r")
        if f then f:close(); return nil, ("--resume: '%s' is a directory"):format(args.resume) end
    end
    if args.output and args.output ~= "-" then
        local f = io.open(args.output .. "/.", "r")
        if f then f:close(); return nil, ("--output: '%s' is a directory"):format(args.output) end
    end
    if args.summary then
        local f = io.open(args.summary .. "/.", "r")
        if f then f:close(); return nil, ("--summary: '%s' is a directory"):format(args.summary) end
    end
    return a
end

--- mxprobe audit FILE [OPTIONS] (docs/audits.md).  argv: the arguments
-- after "audit".  @return exit code: 0 every domain has a record, else 3
function M.audit_main(argv, env)
    env = env or {}
    local stdout = env.stdout or io.stdout
    local out = writer(stdout)
    local err = writer(env.stderr or io.stderr)
    local function fail(msg)
        msg = tostring(msg):gsub("^%s+", ""):gsub("\n.*", ""):gsub(":%s*$", "")
        err("mxprobe: audit: ", msg, "\n")
        return 3
    end
    for _, a in ipairs(argv) do
        if a == "--" then break end
        if a == "-h" or a == "--help" then
            out(build_parser("mxprobe audit", "audit"):get_help(), "\n")
            return 0
        end
    end
    local ok, args = build_parser("mxprobe audit", "audit"):pparse(argv)
    if not ok then
        return fail((tostring(args):gsub("\n+Did you mean", "; did you mean"):gsub("\n", "; ")) .. " (see mxprobe audit --help)")
    end
    local config, plan = M.config(args, env)
    if not config then return fail(plan) end
    local a, aerr = M.audit_options(args)
    if not a then return fail(aerr) end

    -- where the records go: -o FILE, else the --resume file (appended to),
    -- else stdout
    local output = args.output
    if output == "-" then output = nil end
    output = output or args.resume
    if output == nil then
        if io.type(stdout) == "file" then
            output = stdout
        else -- a spec's buffer: a sink that reports write failures
            local flush = flusher(stdout)
            output = function(line)
                local wok, msg = out(line)
                if wok then wok, msg = flush() end
                if not wok then return nil, msg end
                return true
            end
        end
    end

    local loop = env.loop or require "mxprobe.runtime.loop"
    local function body(own_loop)
        local engine, lerr = load_engine(env)
        if not engine then return fail(lerr) end
        local audit = audit_mod
        local rok, summary, code, detail = pcall(audit.run, {
            input = args.file, output = output, format = args.csv and "csv" or "jsonl",
            shard = a.shard, resume = args.resume, summary = args.summary,
            progress = args.no_progress and false or nil, signals = own_loop,
            engine = engine, policy = plan.policy, checks_dirs = plan.checks_dirs, config = config,
            share = not args.no_share, limits = a.limits, parallel = plan.parallel,
            stderr = env.stderr or io.stderr,
        })
        if not rok then return fail(summary) end
        if not summary then return fail(detail or code) end
        return summary.exit_code or 3
    end
    if loop.current() then return body(false) end
    loop.catch_signals()
    return loop.run(body, true)
end

--- The command line.  argv: list of strings (without the program name).
-- @return exit code
function M.main(argv, env)
    env = env or {}
    argv = argv or {}
    if argv[1] == "audit" then return M.audit_main({ table.unpack(argv, 2) }, env) end
    local out = writer(env.stdout or io.stdout)
    local err = writer(env.stderr or io.stderr)
    -- one line on stderr; an error with a traceback or a module search
    -- list keeps its first line
    local function fail(msg)
        msg = tostring(msg):gsub("^%s+", ""):gsub("\n.*", ""):gsub(":%s*$", "")
        err("mxprobe: ", msg, "\n")
        return 3
    end

    -- --help wins over everything else, even over mistakes elsewhere
    for _, a in ipairs(argv) do
        if a == "--" then break end
        if a == "-h" or a == "--help" then
            out(build_parser():get_help(), "\n")
            return 0
        end
    end
    local args, perr = M.parse(argv)
    if not args then return fail(perr .. " (see mxprobe --help)") end
    local early = toolbox.early(args, out, fail)
    if early then return early end
    local config, plan = M.config(args, env)
    if not config then return fail(plan) end
    plan.port = config.port
    plan.width = toolbox.width(env)
    if not args.list_checks and not args.explain and #plan.targets == 0 then
        return fail("no domain given (usage: mxprobe [OPTIONS] DOMAIN...; see mxprobe --help)")
    end

    local loop = env.loop or require "mxprobe.runtime.loop"
    -- own_loop: we started the loop, so Ctrl-C is ours to handle
    local function body(own_loop)
        local engine, lerr = load_engine(env)
        if not engine then return fail(lerr) end
        local spec = { checks_dirs = plan.checks_dirs, policy = plan.policy, config = config }
        local ok, run = pcall(engine.new, spec)
        -- an unknown id in --checks: say so in our words, whether the
        -- engine raised about it or not (it knows the ids once loaded)
        local all = ok and type(run) == "table" and (run.all_checks or run.checks)
        if config.only and not all then
            local saved = config.only
            config.only = nil
            local ok2, run2 = pcall(engine.new, spec)
            config.only = saved
            if ok2 and type(run2) == "table" then all = run2.all_checks or run2.checks end
        end
        if config.only and all then
            local known, ids = {}, {}
            for _, c in ipairs(all) do known[c.id] = true; ids[#ids + 1] = c.id end
            for _, id in ipairs(config.only) do
                if not known[id] then
                    return fail(("--checks: unknown check '%s' (known: %s)"):format(id, table.concat(ids, ", ")))
                end
            end
        end
        if not ok then return fail(run) end
        if type(run) ~= "table" then return fail("the engine did not start") end

        -- every check the engine loaded, and the ones that would run
        local checks = run.all_checks or run.checks or {}
        local active = nil
        if run.all_checks and run.checks then
            active = {}
            for _, c in ipairs(run.checks) do active[c.id] = true end
        end

        if args.list_checks then
            if args.json then out(json.encode(explain.checks_table(checks, active)), "\n")
            else out(explain.render_checks(checks, args.verbose, active)) end
            return 0
        end
        if args.explain then
            local cok, catalog = pcall(engine.catalog, run)
            if not cok then return fail(catalog) end
            local entry, code = explain.lookup(catalog, args.explain)
            if not entry then
                local msg = ("--explain: unknown code '%s'"):format(text.escape(args.explain))
                if #code > 0 then msg = msg .. " (did you mean " .. table.concat(code, ", ") .. "?)" end
                return fail(msg .. "; mxprobe --list-checks -v lists them all")
            end
            local check = explain.find_check(checks, entry.check)
            if args.json then out(json.encode(explain.code_table(code, entry, check)), "\n")
            else out(explain.render_code(code, entry, check)) end
            return 0
        end

        local io_ = { out = out, err = err, flush = flusher(env.stdout or io.stdout), env = env }
        return run_targets(loop, run, plan, args, io_, M.want_color(args, env), own_loop)
    end

    if loop.current() then return body(false) end
    loop.catch_signals()
    return loop.run(body, true)
end

return M
