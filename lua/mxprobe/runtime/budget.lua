--- mxprobe.runtime.budget: a time budget for Lua that never waits.
--
--   local ok, a, b = budget.call(seconds, fn, ...)   -- like xpcall(fn, debug.traceback, ...)
--
-- Checks, policy rules and policy functions are Lua written by others; one
-- that loops without waiting would stop every task of the run (they share
-- one thread) and, since signals only wake the event loop, make Ctrl-C
-- useless.  Once the running task has gone `seconds` without waiting
-- (time since the scheduler last resumed it), or a SIGINT/SIGTERM arrived
-- since the call began, the call raises an error naming the file and line
-- that was running.  The error is a table { budget = true, message,
-- location, traceback } whose tostring is the message, so plain pcall
-- users still read a line.  Waiting (sockets, DNS, loop.sleep) ends the
-- slice, so only Lua that computes counts.  Tasks spawned meanwhile are
-- bounded the same way, each by its own slices.
--
-- Who looks at the clock: in the executable, core.watchdog (a thread that
-- signals when one slice has run a tick too long; then a one-instruction
-- hook runs the check below).  Lua runs untraced: an instruction hook on
-- every check and policy function was 7 % of an audited domain's
-- instructions (issue 15).  Elsewhere (a host embedding mxprobe, whose
-- signals are its own) an instruction-count hook looks every EVERY
-- instructions, as before.
local loop = require "mxprobe.runtime.loop"
local C = require("mxprobe.core").loop

local M = {}

M.DEFAULT = 10       -- seconds (policy: probe.timeouts.cpu)
M.EVERY = 10000      -- instructions between two looks at the clock (hook mode)
M.TICK = 0.05        -- seconds between two looks of the watchdog

local W = require("mxprobe.core").watchdog
local running, now, traceback = coroutine.running, C.now, debug.traceback
-- (the watchdog's enter: no call in hook mode)
local enter = W and W.enter
-- "watchdog" once M.use_watchdog() started it, else "hook"
M.mode = "hook"

local Overrun = { __tostring = function(e) return e.message end }

local function signals() return C.signals_caught and C.signals_caught() or 0 end

-- level 4: raise, over, the hook (or check), the code that was running
local function raise(message)
    local info = debug.getinfo(4, "Sl")
    local where = info and info.currentline and info.currentline > 0
        and ("%s:%d"):format(info.short_src, info.currentline) or "?"
    error(setmetatable({
        budget = true, location = where, message = ("%s: %s"):format(where, message),
        traceback = debug.traceback(("%s: %s"):format(where, message), 4),
    }, Overrun), 0)
end

-- The budget a thread runs under (watchdog mode): seconds, start and the
-- signal count at its start, by coroutine; a nested call saves and
-- restores its caller's.
local b_sec = setmetatable({}, { __mode = "k" })
local b_start = setmetatable({}, { __mode = "k" })
local b_sig = setmetatable({}, { __mode = "k" })

local function over(seconds, start, sig0)
    local t = loop.current()
    local since = t and t.resumed_at and t.resumed_at > start and t.resumed_at or start
    local ran = C.now() - since
    if ran > seconds then
        raise(("ran %.1f s of Lua without waiting (the budget is %g s: probe.timeouts.cpu)"):format(ran, seconds))
    end
    if signals() > (loop.signals_handled or sig0) then raise("interrupted by a signal") end
end

-- what the watchdog's hook calls in the running thread
local function check()
    local co = coroutine.running()
    local seconds = b_sec[co]
    if seconds then over(seconds, b_start[co], b_sig[co]) end
end

-- a task spawned under a budget runs under it too (loop.spawn calls this)
local function inherit(child)
    local co = coroutine.running()
    local seconds = b_sec[co]
    if seconds then b_sec[child], b_start[child], b_sig[child] = seconds, b_start[co], b_sig[co] end
end

--- Start the watchdog (the executable does, once, at start): true, or
-- nil and why (the hook stays).
function M.use_watchdog(tick)
    if M.mode == "watchdog" then return true end
    if not W then return nil, "no core.watchdog" end
    local ok, why = W.start(tick or M.TICK)
    if not ok then return nil, why end
    W.set_check(check)
    loop.use_watchdog(W.slice, inherit)
    M.mode = "watchdog"
    return true
end

local function restore(co, sec, start, sig, ...)
    b_sec[co], b_start[co], b_sig[co] = sec, start, sig
    return ...
end

-- the end of an outermost call: no budget (check() reads b_start and b_sig
-- only under a b_sec)
local function clear(co, ...)
    b_sec[co] = nil
    return ...
end

local function hook_call(seconds, fn, ...)
    local co = coroutine.running()
    local old_hook, old_mask, old_count = debug.gethook(co)
    -- a signal the scheduler has not handled yet interrupts (outside
    -- loop.run: one that arrives during the call)
    local start, sig0 = C.now(), loop.signals_handled or signals()
    local function hook() over(seconds, start, sig0) end
    debug.sethook(co, hook, "", M.EVERY)
    local r = table.pack(xpcall(fn, debug.traceback, ...))
    if old_hook then debug.sethook(co, old_hook, old_mask, old_count) else debug.sethook(co) end
    return table.unpack(r, 1, r.n)
end

--- Call fn(...) under the budget; returns true and fn's results, or false
-- and the error (a string with traceback, or the overrun table).
function M.call(seconds, fn, ...)
    seconds = seconds or M.DEFAULT
    if M.mode ~= "watchdog" then return hook_call(seconds, fn, ...) end
    local co = running()
    local sec = b_sec[co]
    if sec == nil then
        -- the outermost call (a check's, a rule's: a dozen per audited
        -- domain) has no caller's budget to restore
        b_sec[co], b_start[co], b_sig[co] = seconds, now(), loop.signals_handled or signals()
        enter()
        return clear(co, xpcall(fn, traceback, ...))
    end
    local start, sig = b_start[co], b_sig[co]
    b_sec[co], b_start[co], b_sig[co] = seconds, now(), loop.signals_handled or signals()
    enter()
    return restore(co, sec, start, sig, xpcall(fn, traceback, ...))
end

return M
