--- mxprobe.app.cli: the command line (docs/cli.md).
--
--   cli.main(argv [, env]) -> exit code
--
-- argv: the arguments without the program name.  The first one may name a
-- subcommand (cli.COMMANDS); anything else is `mxprobe [OPTIONS]
-- DOMAIN...` (mxprobe.app.cli.probe).  env: see mxprobe.app.cli.probe.
--
-- The pieces: cli/parser.lua (the argparse parsers), cli/options.lua (the
-- validators shared by every command, the engine's config), cli/common.lua
-- (one-line errors, the loop, exit codes), cli/probe.lua and cli/audit.lua
-- (the commands), app/runner.lua (targets through the engine).
local probe = require "mxprobe.app.cli.probe"
local options = require "mxprobe.app.cli.options"
local parser = require "mxprobe.app.cli.parser"
local common = require "mxprobe.app.cli.common"

local M = {}

--- Subcommands: name -> function(argv after the name, env) -> exit code.
-- A new subcommand is one entry (and a module of its own).
M.toolbox = require "mxprobe.app.cli.toolbox"

M.COMMANDS = {
    audit = function(argv, env)
        -- lazy: a subcommand's module is loaded only when asked for
        return require("mxprobe.app.cli.audit").main(argv, env)
    end,
    -- subcommands with parsers of their own (issue 14)
    report = function(argv, env)
        -- lazy: a subcommand's module is loaded only when asked for
        return require("mxprobe.app.report_html").main(argv, env)
    end,
    diff = function(argv, env)
        -- lazy: a subcommand's module is loaded only when asked for
        return require("mxprobe.app.diff").main(argv, env)
    end,
}

function M.main(argv, env)
    env = env or {}
    argv = argv or {}
    local command = M.COMMANDS[argv[1]]
    if command then return command({ table.unpack(argv, 2) }, env) end
    return probe.main(argv, env)
end

-- For specs and scripts that read the pieces through this module.
M.DEFAULT_PARALLEL = parser.DEFAULT_PARALLEL
M.RESERVED_KINDS = options.RESERVED_KINDS
M.parse = parser.parse
-- parser([name,] mode [, into]): the argparse parser (older callers give a name first)
function M.parser(a, b, c)
    if a == "mxprobe audit" or a == "mxprobe" then return parser.build(b, c) end
    return parser.build(a, b)
end
--- The engine's config and the plan from parsed arguments, with the
-- toolbox's options (for specs and scripts; the commands do the same).
function M.config(args, env)
    local config, plan = options.config(args)
    if not config then return nil, plan end
    local ok, err = M.toolbox.config(args, config, plan, env or {})
    if not ok then return nil, err end
    return config, plan
end
M.exit_code_of = common.exit_code_of
M.worst = common.worst
M.want_color = common.want_color
for _, k in ipairs { "parse_port", "parse_seconds", "parse_positive_integer", "parse_resolver",
                     "parse_domain", "parse_host", "parse_helo", "parse_mailbox" } do
    M[k] = options[k]
end
function M.audit_main(argv, env) return M.COMMANDS.audit(argv, env or {}) end

return M
