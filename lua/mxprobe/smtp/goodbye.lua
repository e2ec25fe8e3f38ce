--- mxprobe.smtp.goodbye: a short best-effort QUIT for sessions a cancelled
-- run leaves open (Ctrl-C, a reader that went away, a full disk).
--
-- Why this is needed: cancelling a task cancels its children, and every
-- wait of a cancelled task returns at once; a domain task that is cancelled
-- finishes before its probes have unwound, and when the run's root task
-- returns, the loop drops every task still queued.  Their sessions were
-- then closed by process exit, without QUIT: rude to the server, and it
-- shows up in its logs as a lost connection.  Sessions register here while
-- open; `M.all()` at the end of a run gives them BUDGET seconds in all.
--
--   local goodbye = require "mxprobe.smtp.goodbye"
--   goodbye.all()      -- in the run's (not cancelled) root task, before it returns
local loop = require "mxprobe.runtime.loop"

local M = {}

M.BUDGET = 1 -- seconds for every open session together

-- session -> the task that opened it; weak keys: a lost session is not kept alive
local open = setmetatable({}, { __mode = "k" })

function M.track(s) open[s] = loop.current() or false end
function M.untrack(s) open[s] = nil end

-- Was task t started (directly or not) by one of roots (a set)?
local function under(t, roots)
    while t do
        if roots[t] then return true end
        t = t.parent
    end
    return false
end

-- The open sessions opened under roots (a list of tasks; nil: all).
local function selected(roots)
    local set
    if roots then
        set = {}
        for _, r in ipairs(roots) do set[r] = true end
    end
    local list = {}
    for s, t in pairs(open) do
        if not set or (t and under(t, set)) then list[#list + 1] = s end
    end
    return list
end

--- How many sessions are open (under roots, a list of tasks, when given).
function M.count(roots) return #selected(roots) end

local function can_wait()
    local t = loop.current()
    return t ~= nil and not t.cancelled and coroutine.isyieldable()
end

--- QUIT every open session, bounded by budget seconds (default BUDGET) in
-- all.  First the cancelled probes get the chance to unwind and QUIT their
-- own sessions (they send QUIT without waiting for the answer); what is
-- still open then gets QUIT and up to the rest of the budget for the 221,
-- all at once.  Outside a task, or in a cancelled one, nothing can wait:
-- QUIT is written if the socket takes it at once, then the session closes.
-- roots: only the sessions opened by these tasks or tasks they started (a
-- run inside a larger script must not end sessions that are not its own).
-- @return the number of sessions that were still open
function M.all(budget, roots)
    local n = M.count(roots)
    if n == 0 then return 0 end
    budget = budget or M.BUDGET
    if can_wait() then
        local deadline = loop.now() + budget
        local unwind = loop.now() + budget / 4
        while M.count(roots) > 0 and loop.now() < unwind do loop.sleep(0.005) end
        local tasks = {}
        for _, s in ipairs(selected(roots)) do
            tasks[#tasks + 1] = loop.spawn(function() s:quit(deadline) end)
        end
        for _, t in ipairs(tasks) do loop.join(t, deadline + 0.05) end
    end
    for _, s in ipairs(selected(roots)) do s:quit_now() end
    return n
end

return M
