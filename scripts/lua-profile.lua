-- scripts/lua-profile.lua: where the Lua instructions of an mxprobe run go.
--
--   build/mxprobe scripts/lua-profile.lua [MXPROBE ARGUMENTS...]
--   e.g. ip netns exec mxprobe-lab build/mxprobe scripts/lua-profile.lua \
--          audit domains.txt --allow-reserved documentation -o /dev/null
--
-- Runs the command line as `mxprobe ARGUMENTS` would, with a count hook in
-- the root task and in every coroutine the loop makes, and writes to
-- $PROF_OUT (default lua-profile.txt) the functions by share of samples,
-- inclusive (the function or anything it called in the same coroutine)
-- and self.  For development only: the hook slows the run down several
-- times, and time spent in C (JSON, DNS decoding, TLS) is not counted.
--
-- Why the count is drawn at random (mean $PROF_N, default 97): Lua counts
-- hook instructions per coroutine, and an audit's short-lived coroutines
-- each start a fresh count, so with a fixed count every sample of one falls
-- the same number of instructions into it (a fixed 1,000 put 10 % of the
-- time on a six-line function).  A count drawn anew at each sample
-- (uniform in 1..2N-1) has no such bias.
local N = tonumber(os.getenv("PROF_N") or "97")
local out_path = os.getenv("PROF_OUT") or "lua-profile.txt"
local loop = require "mxprobe.runtime.loop"

local self_c, incl_c, total = {}, {}, 0
local getinfo, random, sethook = debug.getinfo, math.random, debug.sethook

local function key(i) return i.short_src .. ":" .. i.linedefined end

local hook
hook = function()
    sethook(hook, "", random(1, 2 * N - 1))
    local info = getinfo(2, "S")
    if not info then return end
    total = total + 1
    local k = key(info)
    self_c[k] = (self_c[k] or 0) + 1
    local seen = { [k] = true }
    incl_c[k] = (incl_c[k] or 0) + 1
    local level = 3
    while true do
        local i = getinfo(level, "S")
        if not i then break end
        local kk = key(i)
        if not seen[kk] then seen[kk] = true; incl_c[kk] = (incl_c[kk] or 0) + 1 end
        level = level + 1
    end
end

-- the loop makes its coroutines with its own local copy of
-- coroutine.create (an upvalue shared by its functions): replace it there
local replaced = false
for _, f in pairs(loop) do
    if type(f) == "function" and not replaced then
        for u = 1, 255 do
            local name = debug.getupvalue(f, u)
            if not name then break end
            if name == "co_create" then
                debug.setupvalue(f, u, function(fn)
                    local co = coroutine.create(fn)
                    sethook(co, hook, "", random(1, 2 * N - 1))
                    return co
                end)
                replaced = true
                break
            end
        end
    end
end
if not replaced then
    io.stderr:write("lua-profile: the loop's co_create was not found (mxprobe.runtime.loop changed?)\n")
    return 3
end

sethook(hook, "", random(1, 2 * N - 1))
local args = {}
for i = 1, #arg do args[i] = arg[i] end
local rc = require("mxprobe.app.cli").main(args)
sethook()

local f, err = io.open(out_path, "w")
if not f then
    io.stderr:write("lua-profile: cannot write ", tostring(err), "\n")
    return 3
end
local keys = {}
for k in pairs(incl_c) do keys[#keys + 1] = k end
table.sort(keys, function(a, b)
    if incl_c[a] ~= incl_c[b] then return incl_c[a] > incl_c[b] end
    return a < b
end)
f:write(("total %d samples (one per %d Lua instructions on average)\n"):format(total, N))
f:write("  incl    self  function (file:line defined)\n")
for i = 1, math.min(#keys, 200) do
    local k = keys[i]
    f:write(("%6.2f%% %6.2f%%  %s\n"):format(incl_c[k] * 100 / total, (self_c[k] or 0) * 100 / total, k))
end
f:close()
return rc
