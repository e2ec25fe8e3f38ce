--- mxprobe.app.cli.audit: `mxprobe audit FILE [OPTIONS]` (docs/audits.md),
-- the command line of mxprobe.app.audit.  env as in mxprobe.app.cli.probe.
local parser = require "mxprobe.app.cli.parser"
local options = require "mxprobe.app.cli.options"
local common = require "mxprobe.app.cli.common"
local audit = require "mxprobe.app.audit"
local sink = require "mxprobe.app.sink"
local escape = require "mxprobe.runtime.escape"
local toolbox = require "mxprobe.app.cli.toolbox"

local M = {}

-- Where the records go: -o FILE, else the --resume file (appended to),
-- else stdout (a spec's buffer: a sink that reports write failures).
local function output_of(args, stdout)
    local output = args.output
    if output == "-" then output = nil end
    output = output or args.resume
    if output ~= nil then return output end
    if io.type(stdout) == "file" then return stdout end
    return sink.of(stdout)
end

-- Records and summaries (issue 14): --summarize is a mode of its own
-- (mxprobe.app.audit_summarize); --transcripts=WHICH is taken out of argv
-- because an optional argument would swallow the FILE after a bare
-- --transcripts.  @return argv without it, which | nil, message | "summarize"
local function take_transcripts(argv)
    local rest, which = {}, nil
    for i, a in ipairs(argv) do
        if a == "--" then table.move(argv, i, #argv, #rest + 1, rest); break end
        if a == "--summarize" then return nil, nil, "summarize" end
        local w = a:match("^%-%-transcripts=(.*)$")
        if w then
            if w ~= "all" and w ~= "failing" and w ~= "none" then
                return nil, ("--transcripts=%s: 'all', 'failing' or 'none' expected"):format(escape.for_display(w))
            end
            which = w
        else
            rest[#rest + 1] = a
        end
    end
    return rest, which
end

--- argv: the arguments after "audit".  @return exit code: 0 every domain
-- has a record, else 3
function M.main(argv, env)
    local stdout = env.stdout or io.stdout
    local out = common.writer(stdout)
    local fail = common.failer(common.writer(env.stderr or io.stderr), "audit: ")
    local rest, transcripts, mode = take_transcripts(argv)
    -- lazy: a mode of its own, loaded only when asked for
    if mode == "summarize" then return require("mxprobe.app.audit_summarize").main(argv, env) end
    if not rest then return fail(transcripts) end
    argv = rest
    if parser.wants_help(argv) then out(parser.help("audit"), "\n"); return 0 end
    local args, perr = parser.parse(argv, "audit")
    if not args then return fail(perr .. " (see mxprobe audit --help)") end
    local config, plan = options.config(args)
    if not config then return fail(plan) end
    local tok, terr = toolbox.config(args, config, plan, env)
    if not tok then return fail(terr) end
    local a, aerr = options.audit(args, audit.parse_shard)
    if not a then return fail(aerr) end
    if args.transcripts then transcripts = transcripts or "all" end
    local output = output_of(args, stdout)
    return common.in_loop(env, function(own_loop)
        local engine, lerr = common.load_engine(env)
        if not engine then return fail(lerr) end
        local rok, summary, code, detail = pcall(audit.run, {
            input = args.file, output = output, format = args.csv and "csv" or "jsonl",
            shard = a.shard, resume = args.resume, summary = args.summary,
            progress = args.no_progress and false or nil, signals = own_loop,
            engine = engine, policy = plan.policy, checks_dirs = plan.checks_dirs, config = config,
            share = not args.no_share, limits = a.limits, parallel = plan.parallel,
            stderr = env.stderr or io.stderr, transcripts = transcripts,
        })
        if not rok then return fail(summary) end
        if not summary then return fail(detail or code) end
        return summary.exit_code or 3
    end)
end

return M
