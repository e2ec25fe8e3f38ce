--- mxprobe.app.cli.probe: `mxprobe [OPTIONS] DOMAIN...` (docs/cli.md):
-- test domains or hosts and print a report per target, in the order of
-- the command line; or --list-checks, --explain, --version.
--
-- env (specs and embedders replace the outside world with it):
--   engine  the engine module (default: require "mxprobe.engine")
--   stdout, stderr  objects with :write(...) (default: io.stdout, io.stderr)
--   getenv  function(name) -> string|nil (default: os.getenv)
--   tty     whether stdout is a terminal (default: isatty(stdout) when it is a file)
--   loop    the event loop module
--
-- Exit codes follow the monitoring-plugin convention: 0 OK, 1 warning,
-- 2 critical, 3 could not test (also: usage errors, a bad policy or check
-- file, an interrupted run).  Over several targets the worst one wins,
-- ranked critical > could not test > warning > OK.
local parser = require "mxprobe.app.cli.parser"
local options = require "mxprobe.app.cli.options"
local common = require "mxprobe.app.cli.common"
local runner = require "mxprobe.app.runner"
local formats = require "mxprobe.app.formats"
local sink = require "mxprobe.app.sink"
local json = require "mxprobe.report.json"
-- lazy: the catalogue's renderers only for --list-checks and --explain
local function explain() return require "mxprobe.report.explain" end
local escape = require "mxprobe.runtime.escape"
local toolbox = require "mxprobe.app.cli.toolbox"
local loop = require "mxprobe.runtime.loop"

local M = {}

-- The output formats a flag asks for (app/formats.lua has the formats):
-- { args field, format name }; none of them: text.
M.FORMAT_FLAGS = { { "json", "json" }, { "csv", "csv" } }

local function format_of(args)
    local chosen
    for _, f in ipairs(M.FORMAT_FLAGS) do
        if args[f[1]] then
            if chosen then return nil, ("--%s and --%s: choose one"):format(chosen[1], f[1]) end
            chosen = f
        end
    end
    return chosen and chosen[2] or "text"
end

-- The engine run, or nil and a message.  An unknown id in --checks is
-- named in our words, whether the engine raised about it or not (it knows
-- the ids once loaded).
local function start(engine, plan, config)
    -- several targets share the probes of common MX addresses, as audits do
    -- (one target has nothing to share, and its servers stay unmarked)
    local spec = { checks_dirs = plan.checks_dirs, policy = plan.policy, config = config,
                   share = #plan.targets > 1 }
    local ok, run = pcall(engine.new, spec)
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
                return nil, ("--checks: unknown check '%s' (known: %s)"):format(id, table.concat(ids, ", "))
            end
        end
    end
    if not ok then return nil, run end
    if type(run) ~= "table" then return nil, "the engine did not start" end
    return run
end

-- --list-checks: every check the engine loaded, marking those that would not run.
local function list_checks(run, args, out)
    local checks = run.all_checks or run.checks or {}
    local active = nil
    if run.all_checks and run.checks then
        active = {}
        for _, c in ipairs(run.checks) do active[c.id] = true end
    end
    if args.json then out(json.encode(explain().checks_table(checks, active)), "\n")
    else out(explain().render_checks(checks, args.verbose, active)) end
    return 0
end

local function explain_code(engine, run, args, out, fail)
    local cok, catalog = pcall(engine.catalog, run)
    if not cok then return fail(catalog) end
    local entry, code = explain().lookup(catalog, args.explain)
    if not entry then
        local msg = ("--explain: unknown code '%s'"):format(escape.for_display(args.explain, escape.MAX_ECHO))
        if #code > 0 then msg = msg .. " (did you mean " .. table.concat(code, ", ") .. "?)" end
        return fail(msg .. "; mxprobe --list-checks -v lists them all")
    end
    local check = explain().find_check(run.all_checks or run.checks or {}, entry.check)
    if args.json then out(json.encode(explain().code_table(code, entry, check)), "\n")
    else out(explain().render_code(code, entry, check)) end
    return 0
end

-- Test the targets; print each report in command-line order as soon as
-- it and every report before it are done.  @return exit code
local function test_targets(run, plan, args, env, fmt, format_name)
    local stderr = env.stderr or io.stderr
    local write = sink.of(env.stdout or io.stdout)
    local fopts = { color = common.want_color(args, env), verbose = args.verbose, width = plan.width, quiet = plan.quiet,
                    warning_days = plan.warning_days, critical_days = plan.critical_days, targets = #plan.targets }
    -- on a terminal: what the run waits for, until each report is written
    local status = toolbox.status(loop, plan, env, function(s) stderr:write(s) end, #plan.targets)
    local seen, worst = {}, nil
    local function emit(s)
        if s == nil then return true end
        return write(s)
    end
    local ok, werr = emit(fmt.header(fopts))
    local outcome = { write_error = not ok and werr or nil, interrupted = false, written = 0 }
    if ok then
        outcome = runner.run(run, {
            targets = plan.targets, parallel = plan.parallel or parser.DEFAULT_PARALLEL, ordered = true,
            signals = env.own_loop, verbose = args.verbose, deadline = plan.deadline,
            notice = function(line) status.clear(); stderr:write(line) end,
            write = function(r)
                status.done = status.done + 1
                status.clear()
                local wok, e = emit(fmt.record(r, fopts, #seen + 1))
                -- what a footer may sum up (a summary line, a monitoring status)
                seen[#seen + 1] = { domain = r.domain, verdict = r.verdict, exit_code = r.exit_code,
                                    decided_by = r.decided_by }
                worst = common.worst(worst, common.exit_code_of(r))
                return wok, e
            end,
        })
    end
    status.stop()
    if outcome.write_error then
        -- a reader that went away (| head) is not worth a message; a full disk is
        if not outcome.write_error:find("Broken pipe", 1, true) then
            stderr:write(("mxprobe: cannot write the report: %s; stopped\n"):format(common.plain(outcome.write_error)))
        end
        return 3
    end
    local n = #plan.targets
    fopts.interrupted, fopts.timed_out = outcome.interrupted, outcome.timed_out
    if outcome.interrupted and not fopts.collected then
        stderr:write(("mxprobe: interrupted; %d of %d %s not checked\n"):format(
            n - #seen, n, n == 1 and "target" or "targets"))
    end
    if outcome.timed_out and not fopts.collected and format_name ~= "nagios" then
        stderr:write(("mxprobe: stopped after %s s (-t); %d of %d %s not checked\n"):format(
            tostring(outcome.timed_out), n - #seen, n, n == 1 and "target" or "targets"))
    end
    if outcome.interrupted or outcome.timed_out then worst = common.worst(worst, 3) end
    emit(fmt.footer(seen, fopts))
    -- a monitoring plugin's status is its own (nagios: 0-3 from the status line)
    if fopts.exit_code then return fopts.exit_code end
    return worst or 3
end

--- mxprobe [OPTIONS] DOMAIN...; argv without the program name.  @return exit code
function M.main(argv, env)
    local out = common.writer(env.stdout or io.stdout)
    local fail = common.failer(common.writer(env.stderr or io.stderr))
    -- --help wins over everything else, even over mistakes elsewhere
    if parser.wants_help(argv) then out(parser.help(), "\n"); return 0 end
    local args, perr = parser.parse(argv)
    if not args then return fail(perr .. " (see mxprobe --help)") end
    -- --completion and --version act before any validation
    local early = toolbox.early(args, out, fail, parser.build)
    if early then return early end
    local format, ferr = format_of(args)
    if not format then return fail(ferr) end
    local config, plan = options.config(args)
    if not config then return fail(plan) end
    local tok, terr = toolbox.config(args, config, plan, env)
    if not tok then return fail(terr) end
    -- --format (text, json, nagios, openmetrics) against --json/--csv
    if plan.format ~= "text" and format ~= "text" and plan.format ~= format then
        return fail(("--%s and --format %s: choose one"):format(format, plan.format))
    end
    if plan.format ~= "text" then format = plan.format end
    plan.width = toolbox.width(env)
    if not args.list_checks and not args.explain and #plan.targets == 0 then
        return fail("no domain given (usage: mxprobe [OPTIONS] DOMAIN...; see mxprobe --help)")
    end
    return common.in_loop(env, function(own_loop)
        local engine, lerr = common.load_engine(env)
        if not engine then return fail(lerr) end
        local run, rerr = start(engine, plan, config)
        if not run then return fail(rerr) end
        if args.list_checks then return list_checks(run, args, out) end
        if args.explain then return explain_code(engine, run, args, out, fail) end
        local e = setmetatable({ own_loop = own_loop }, { __index = env })
        return test_targets(run, plan, args, e, formats.get(format), format)
    end)
end

return M
