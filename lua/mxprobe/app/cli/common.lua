--- mxprobe.app.cli.common: what every subcommand needs: one-line user
-- errors, the engine, the event loop, the terminal and exit codes.
local core = require "mxprobe.core"
local escape = require "mxprobe.runtime.escape"
local vocab = require "mxprobe.runtime.vocab"
local default_loop = require "mxprobe.runtime.loop"

local M = {}

--- A message as one plain line for a user: the first line, without the
-- "/path/lua/mxprobe/x.lua:12: " of a Lua error raised inside mxprobe and
-- without "bad argument #1 to 'new' (...)" around what is wrong.  A file
-- the user gave (a policy, a check) keeps its name and line: that is
-- where the mistake is.
function M.plain(msg)
    msg = tostring(msg):gsub("^%s+", ""):gsub("\n.*", ""):gsub(":%s*$", "")
    for _ = 1, 3 do
        -- our modules: .../lua/mxprobe/... (a source tree) or .../lua/5.4/mxprobe/... (an install)
        local rest = msg:match("^[^:\n]-lua/mxprobe/[%w_/]+%.lua:%d+: (.*)$")
            or msg:match("^[^:\n]-lua/5%.%d/mxprobe/[%w_/]+%.lua:%d+: (.*)$")
            or msg:match("^%[C%]: (.*)$")
        if not rest then break end
        msg = rest
    end
    msg = msg:match("^bad argument #%d+ to '[^']*' %((.*)%)$") or msg
    return escape.for_display(msg)
end

--- fail(err, prefix)(msg) -> 3, after "mxprobe: <prefix>msg" on err.
function M.failer(err, prefix)
    return function(msg)
        err("mxprobe: " .. (prefix or "") .. M.plain(msg) .. "\n")
        return 3
    end
end

--- A write function for a file-like object: true, or false and a message
-- once writing failed (stdout closed: `mxprobe --json ... | head -1`).
function M.writer(f)
    return function(...)
        local ok, msg = f:write(...)
        return ok ~= nil and ok ~= false, msg
    end
end

function M.load_engine(env)
    if env.engine then return env.engine end
    -- lazy: --help, --version and usage errors must not pay for loading the engine and its checks
    local ok, e = pcall(require, "mxprobe.engine")
    if not ok then return nil, "cannot load the engine (mxprobe.engine): " .. tostring(e):gsub("\n.*", "") end
    return e
end

--- Run body(own_loop) in a task: in the caller's when there is one (specs,
-- scripts), else in a loop started here; own_loop: Ctrl-C is ours.
function M.in_loop(env, body)
    local loop = env.loop or default_loop
    if loop.current() then return body(false) end
    loop.catch_signals()
    return loop.run(body, true)
end

--- Whether f (a file, or an object standing for one in a spec) is a terminal.
function M.isatty(f)
    return io.type(f) == "file" and core.term.isatty(f)
end

--- Whether to colour the text report: not with --no-color, NO_COLOR set,
-- TERM unset or dumb, or stdout not a terminal (env.tty overrides that).
function M.want_color(args, env)
    if args.json or args.csv or (args.format and args.format ~= "text") then return false end
    if args.color == "always" then return true end -- asked for: wins over NO_COLOR and TERM
    if args.no_color or args.color == "never" then return false end
    local getenv = env.getenv or os.getenv
    local nc = getenv("NO_COLOR")
    if nc and nc ~= "" then return false end
    local term = getenv("TERM")
    if not term or term == "" or term == "dumb" then return false end
    local tty = env.tty
    if tty == nil then tty = M.isatty(env.stdout or io.stdout) end
    return tty and true or false
end

local VERDICT_EXIT = vocab.VERDICT_EXIT
-- the monitoring convention's "worst": critical, then could not test, then warning
local EXIT_RANK = { [0] = 0, [1] = 1, [3] = 2, [2] = 3 }

--- The exit code of one result: its exit_code, or derived from the verdict.
function M.exit_code_of(result)
    local c = type(result) == "table" and result.exit_code
    if type(c) == "number" and EXIT_RANK[math.tointeger(c) or -1] then return math.tointeger(c) end
    return VERDICT_EXIT[type(result) == "table" and result.verdict] or 3
end

--- The worst of exit codes a and b.
function M.worst(a, b)
    if a == nil then return b end
    if b == nil then return a end
    return (EXIT_RANK[b] or 2) > (EXIT_RANK[a] or 2) and b or a
end

--- The start of a subcommand with an argparse parser of its own (report,
-- diff, audit --summarize): --help, parsing, and one-line errors.
-- @return args, stdout, stderr, fail | nil, exit code (help shown, or a
--   usage error reported)
function M.subcommand(name, build, argv, env)
    env = env or {}
    local stdout, stderr = env.stdout or io.stdout, env.stderr or io.stderr
    local function fail(msg)
        stderr:write("mxprobe: ", name, ": ", (tostring(msg):gsub("\n.*", "")), "\n")
        return 3
    end
    for _, a in ipairs(argv) do
        if a == "--" then break end
        if a == "-h" or a == "--help" then stdout:write(build():get_help(), "\n"); return nil, 0 end
    end
    local ok, args = build():pparse(argv)
    if not ok then return nil, fail(tostring(args):gsub("\n", "; ") .. (" (see mxprobe %s --help)"):format(name)) end
    return args, stdout, stderr, fail
end

return M
