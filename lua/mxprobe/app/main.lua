--- mxprobe.app.main: what the executable runs with argv.
--
--   mxprobe run SCRIPT [ARGS...]   run a Lua script inside the host
--   mxprobe PATH/SCRIPT [ARGS...]  the same, when the first argument is a
--                                  path (contains "/" or ends in ".lua")
--   mxprobe [OPTIONS] DOMAIN...    the command line (mxprobe.app.cli)
--
-- Scripts run as the root task of the loop, so they (and busted specs) can
-- use sockets and DNS as if they were blocking.
local loop = require "mxprobe.runtime.loop"
local budget = require "mxprobe.runtime.budget"

local function is_file(path)
    local f = io.open(path, "r")
    if not f then return false end
    local ok = f:read(0) ~= nil or true
    f:close()
    return ok
end

local function run_script(path, ...)
    local chunk, err = loadfile(path)
    if not chunk then
        io.stderr:write("mxprobe: cannot load script: ", err, "\n")
        return 3
    end
    -- like the stock interpreter: arg[0] is the script, arg[1..] its arguments
    local script_args = table.pack(...)
    local a = { [0] = path, [-1] = arg and arg[0] }
    for i = 1, script_args.n do a[i] = script_args[i] end
    _G.arg = a
    loop.catch_signals()
    local r = loop.run(chunk, ...)
    return math.type(r) == "integer" and r or 0
end

-- The collector's pause: a cycle starts when the heap has grown to
-- GC_PAUSE % of what the last one left alive (Lua's default: 200).  An
-- audit makes about 55 kB of garbage per domain (the record, its findings)
-- while the live heap is mostly the domains in flight; at 200 the
-- collector was a third of an audit's CPU.  At 400 it is about 15% less
-- CPU per domain for about 1.8x the resident memory (bench/audit: 257
-- against 142 MB per process, 1000 domains in flight; issue 15).  Only the
-- executable sets it: a host embedding mxprobe keeps its own settings.
local GC_PAUSE, GC_STEPMUL = 400, 100

-- argv: the arguments without the program name, as a list (argv.n may
-- give its length).
local function main(argv)
    collectgarbage("incremental", GC_PAUSE, GC_STEPMUL)
    -- runaway Lua is stopped by a watchdog thread, not an instruction hook
    -- (mxprobe.runtime.budget); a host embedding mxprobe keeps the hook
    local ok, why = budget.use_watchdog()
    if not ok then io.stderr:write("mxprobe: ", tostring(why), " (the Lua time budget polls instead)\n") end
    local n = argv.n or #argv
    local first = argv[1]
    if first == "run" then
        if not argv[2] then
            io.stderr:write("mxprobe: run needs a script: mxprobe run SCRIPT [ARGS...]\n")
            return 3
        end
        return run_script(table.unpack(argv, 2, n))
    end
    if first and (first:find("/", 1, true) or first:match("%.lua$")) and is_file(first) then
        return run_script(table.unpack(argv, 1, n))
    end
    -- lazy: `mxprobe run SCRIPT` must not pay for loading the command line
    return require("mxprobe.app.cli").main(table.move(argv, 1, n, 1, {}))
end

-- core/main.c passes argv as one table (any number of arguments: the Lua
-- stack has a limit, a table has not); a host that passes the strings
-- themselves works too.
return function(first, ...)
    if type(first) == "table" then return main(first) end
    return main(table.pack(first, ...))
end
