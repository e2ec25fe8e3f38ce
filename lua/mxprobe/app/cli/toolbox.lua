--- mxprobe.app.cli.toolbox: the options of the admin's toolbox (issue 13)
-- and their handling: --implicit-tls, --submission, --source; --format
-- nagios|openmetrics with -w/-c/-t; --color, -q; --completion; the library
-- versions of --version; the default policy files; the width of the text
-- report; the status line.  The hooks: cli/parser.lua adds the options
-- (toolbox.options), cli/options.lua validates them (toolbox.config),
-- cli/probe.lua runs the early options and the status line (toolbox.early,
-- .status); -t is the runner's deadline, the collected formats (nagios,
-- openmetrics) are app/formats.lua's.
local options = require "mxprobe.app.cli.options"
local common = require "mxprobe.app.cli.common"
local iputil = require "mxprobe.net.iputil"
local escape = require "mxprobe.runtime.escape"
local core = require "mxprobe.core"

local M = {}
local readable_file = options.readable_file
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
local toolbox = M

toolbox.SHELLS = { "bash", "zsh", "fish" }
toolbox.FORMATS = { "text", "json", "nagios", "openmetrics" }
toolbox.COLORS = { "auto", "always", "never" }
-- formats that render all results at once, at the end (one status line;
-- one metric family per name)
toolbox.COLLECTED = { nagios = "mxprobe.report.nagios", openmetrics = "mxprobe.report.openmetrics" }

local function days(s)
    if type(s) ~= "string" or not s:match("^%d+$") or tonumber(s) > 100000 then
        return nil, ("'%s' is not a number of days (0 to 100000)"):format(escape.for_display(tostring(s)))
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
            local fam = iputil.family(inner)
            if not fam then
                return nil, ("--source: '%s' is not an IPv4 or IPv6 address"):format(escape.for_display(a))
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
        return nil, ("--format: '%s' is not a format (%s)"):format(escape.for_display(fmt), table.concat(toolbox.FORMATS, ", "))
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
        local t, err = options.parse_seconds(args.timeout)
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
        local cols = core.term.size(1)
        if cols and cols > 0 then return cols end
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
    return core.term.isatty(2)
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
    s = escape.for_display(s)
    -- lazy: the terminal's widths only for a status line on a terminal
    local text = require "mxprobe.report.text"
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
    if env.stderr == nil or env.stderr == io.stderr then width = core.term.size(2) or width end
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
        return nil, ("--completion: '%s' is not a shell (bash, zsh or fish)"):format(escape.for_display(shell))
    end
    local p = build()
    build("audit", p:command("audit", "Test the mail servers of many domains (mxprobe audit --help)."))
    return p["get_" .. shell .. "_complete"](p)
end

--- What --version prints: mxprobe's version and those of the libraries
-- in use (asked at run time where the library can say).
function toolbox.version_text()
    -- lazy: --version must answer even when the install is broken
    local ok, paths = pcall(require, "mxprobe.runtime.paths")
    local lines = { "mxprobe " .. (ok and type(paths) == "table" and paths.version or "(unknown version)") }
    local libs = core.libs or {}
    for _, l in ipairs { { "Lua", "lua" }, { "OpenSSL", "openssl" }, { "c-ares", "cares" }, { "libidn2", "idn2" }, { "malloc", "malloc" } } do
        local v = libs[l[2]]
        if v then
            v = tostring(v):gsub("^" .. l[1]:gsub("%-", "%%-") .. " ", "")
            lines[#lines + 1] = ("  %-8s %s"):format(l[1], v)
        end
    end
    return table.concat(lines, "\n") .. "\n"
end

--- Options that act before any validation: --completion and --version.
-- build: the parser builder (cli/parser.lua's build(mode, into)).
-- @return exit code, when the command line is done | nil
function toolbox.early(args, out, fail, build)
    if args.completion then
        local script, err = toolbox.completion(args.completion, build)
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

return M
