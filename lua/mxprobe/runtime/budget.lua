--- mxprobe.runtime.budget: a time budget for Lua that never waits.
--
--   local ok, a, b = budget.call(seconds, fn, ...)   -- like xpcall(fn, debug.traceback, ...)
--
-- Checks, policy rules and policy functions are Lua written by others; one
-- that loops without waiting would stop every task of the run (they share
-- one thread) and, since signals only wake the event loop, make Ctrl-C
-- useless.  An instruction-count hook looks at the clock every EVERY
-- instructions: once the running task has gone `seconds` without waiting
-- (time since the scheduler last resumed it), or a SIGINT/SIGTERM arrived
-- since the call began, it raises an error naming the file and line that
-- was running.  The error is a table { budget = true, message, location,
-- traceback } whose tostring is the message, so plain pcall users still
-- read a line.  Waiting (sockets, DNS, loop.sleep) ends the slice, so only
-- Lua that computes counts.  Tasks spawned meanwhile get the hook too
-- (loop.spawn copies it) and are bounded the same way, each by its own
-- slices.
local loop = require "mxprobe.runtime.loop"
local C = require("mxprobe.core").loop

local M = {}

M.DEFAULT = 10       -- seconds (policy: probe.timeouts.cpu)
M.EVERY = 10000      -- instructions between two looks at the clock

local Overrun = { __tostring = function(e) return e.message end }

local function signals() return C.signals_caught and C.signals_caught() or 0 end

local function raise(message)
    local info = debug.getinfo(3, "Sl")
    local where = info and info.currentline and info.currentline > 0
        and ("%s:%d"):format(info.short_src, info.currentline) or "?"
    error(setmetatable({
        budget = true, location = where, message = ("%s: %s"):format(where, message),
        traceback = debug.traceback(("%s: %s"):format(where, message), 3),
    }, Overrun), 0)
end

--- Call fn(...) under the budget; returns true and fn's results, or false
-- and the error (a string with traceback, or the overrun table).
function M.call(seconds, fn, ...)
    seconds = seconds or M.DEFAULT
    local co = coroutine.running()
    local old_hook, old_mask, old_count = debug.gethook(co)
    -- a signal the scheduler has not handled yet interrupts (outside
    -- loop.run: one that arrives during the call)
    local start, sig0 = C.now(), loop.signals_handled or signals()
    local function hook()
        local t = loop.current()
        local since = t and t.resumed_at and t.resumed_at > start and t.resumed_at or start
        local ran = C.now() - since
        if ran > seconds then
            raise(("ran %.1f s of Lua without waiting (the budget is %g s: probe.timeouts.cpu)"):format(ran, seconds))
        end
        if signals() > (loop.signals_handled or sig0) then raise("interrupted by a signal") end
    end
    debug.sethook(co, hook, "", M.EVERY)
    local r = table.pack(xpcall(fn, debug.traceback, ...))
    if old_hook then debug.sethook(co, old_hook, old_mask, old_count) else debug.sethook(co) end
    return table.unpack(r, 1, r.n)
end

return M
