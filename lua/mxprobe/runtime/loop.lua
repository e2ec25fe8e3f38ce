--- mxprobe.runtime.loop: tasks (coroutines) on the C event loop.
--
-- This is the only module that yields.  C bindings do one non-blocking step
-- and answer nil, "again", events; wrappers call loop.wait(obj, events,
-- deadline), which parks the current task until the fd is ready, the
-- deadline passes, or C code (a c-ares callback) wakes it.  The C side
-- (core.loop) only queues wake-ups; tasks are resumed here, after dispatch.
--
-- Deadlines are absolute monotonic seconds (loop.now() + seconds).
-- Public API: run, spawn, join, sleep, wait, cancel, current, now,
-- set_deadline, semaphore, on_signal, interrupted; doing, activities (what
-- tasks wait for, for status lines).

local core = require "mxprobe.core"
local C = core.loop

local M = {}

-- Host yields carry this value, so a check's own coroutines can tell them
-- from their own yields (see the coroutine wrappers at the bottom).
local SENTINEL = setmetatable({}, { __name = "mxprobe.yield", __tostring = function() return "mxprobe.yield" end })

local co_create, co_resume, co_yield, co_status, co_running =
    coroutine.create, coroutine.resume, coroutine.yield, coroutine.status, coroutine.running

local tasks = {}          -- token -> task
local free_tokens = {}    -- tokens ready for reuse
local quarantine = {}     -- tokens freed since the last step (a queued wake may still name them)
local next_token = 1
local runq, runq_head, runq_tail = {}, 1, 0
local current = nil       -- the task being resumed
local running = false
local signal_handler = nil
-- mxprobe.runtime.budget's, once it uses core.watchdog (M.use_watchdog):
-- slice(co) marks co running and gives the time; inherit(child) hands the
-- spawner's budget on
local slice, inherit = C.now, nil

function M.use_watchdog(slice_fn, inherit_fn)
    slice, inherit = slice_fn, inherit_fn
end

M.now = C.now
M.wall = C.wall
M.interrupted = false

local Task = {}
Task.__index = Task
Task.__name = "mxprobe.task"
-- the name (the source of the task's function) is looked up only when a
-- task is printed: debug.getinfo on every spawn cost a table and strings
function Task:__tostring()
    local name = self.fn and debug.getinfo(self.fn, "S").short_src or "?"
    return ("task %d (%s)"):format(self.token or 0, name)
end
-- a task is what loop.join waits on (loop.wait's protocol for objects)
function Task.set_waiter() end
function Task:done() return self.status == "done" end

-- The run queue: tasks and the one value each resume passes (a wake
-- reason, or the task itself for its first run), in two arrays: a table
-- per wake-up was a good part of a shared domain's garbage (issue 15).
local runq_arg = {}
local function enqueue(t, arg)
    runq_tail = runq_tail + 1
    runq[runq_tail], runq_arg[runq_tail] = t, arg
end

local function alloc_token()
    local n = #free_tokens
    if n > 0 then
        local tok = free_tokens[n]
        free_tokens[n] = nil
        return tok
    end
    local tok = next_token
    next_token = next_token + 1
    return tok
end

local function traceback(err)
    if type(err) == "string" then return debug.traceback(err, 2) end
    return err
end

-- A task's coroutine body: its function and arguments are on the task
-- (one closure and no argument table fewer per task than a closure over them).
local function task_body(t)
    local fn, args = t.fn, t.args
    t.args = nil
    if args then return xpcall(fn, traceback, table.unpack(args, 1, args.n)) end
    return xpcall(fn, traceback)
end

--- Start fn(...) as a new task; it first runs at the next scheduling round.
-- @return task
function M.spawn(fn, ...)
    if type(fn) ~= "function" then
        error(("bad argument #1 to 'spawn' (function expected, got %s)"):format(type(fn)), 2)
    end
    -- joiners and children are made when first needed: most tasks have none
    local t = setmetatable({ status = "ready", parent = current, fn = fn }, Task)
    if select("#", ...) > 0 then t.args = table.pack(...) end
    t.token = alloc_token()
    t.co = co_create(task_body)
    -- a task spawned under a budget (mxprobe.runtime.budget) runs under
    -- it too: the watchdog's, or a Lua hook (Lua 5.4 copies only C hooks
    -- into new coroutines)
    if inherit then inherit(t.co) end
    local hook, mask, count = debug.gethook()
    if type(hook) == "function" then debug.sethook(t.co, hook, mask, count) end
    if current then
        local children = current.children
        if not children then children = {}; current.children = children end
        children[t] = true
        -- a child never outlives its parent's deadline
        t.deadline = current.deadline
    end
    tasks[t.token] = t
    enqueue(t, t)
    return t
end

--- The running task, or nil outside tasks.
function M.current() return current end

--- Give the task t (default: the current one) an absolute deadline; every
-- wait it makes ends with nil, "timeout" once it passes.  nil removes it.
function M.set_deadline(t, deadline)
    t = t or current
    if not t then error("set_deadline: no task", 2) end
    t.deadline = deadline
end

local function check_can_wait(fname)
    if not current then
        error(("%s: not inside a task (wrap the code in loop.run or loop.spawn)"):format(fname), 3)
    end
    if not coroutine.isyieldable() then
        error(("%s: cannot wait here (inside require, a metamethod, or a C function such as string.gsub or table.sort)"):format(fname), 3)
    end
end

--- Say what the current task is about to wait for, in words a status
-- line can show ("the greeting of mx.example.org (192.0.2.1)"); nil
-- clears it.  Nothing else reads it: a label costs a few fields.  With
-- arguments, what is a format (string.format's) made into words only when
-- a status line asks (issue 15: a format per DNS question of an audit).
function M.doing(what, a, b)
    local t = current
    if not t then return end
    if what == nil then -- cleared: no time to take (a DNS question sets and clears one)
        t.doing, t.doing_a, t.doing_b, t.doing_since = nil, nil, nil, nil
        return
    end
    t.doing, t.doing_a, t.doing_b, t.doing_since = what, a, b, C.now()
end

local function doing_text(t)
    if t.doing_a == nil then return t.doing end
    return t.doing:format(tostring(t.doing_a), tostring(t.doing_b))
end

--- What the parked tasks that said so (M.doing) wait for: a list of
-- { what =, since =, deadline = } (absolute monotonic times; deadline
-- nil when none), the longest waiting first.
function M.activities()
    local out = {}
    for _, t in pairs(tasks) do
        if t.doing and t.status == "waiting" then
            out[#out + 1] = { what = doing_text(t), since = t.doing_since, deadline = t.wait_deadline }
        end
    end
    table.sort(out, function(a, b) return a.since < b.since end)
    return out
end

--- Park the current task.
-- obj: nil (sleep until deadline), an integer fd, an object with :getfd()
-- (sockets), or an object with :set_waiter(token) and :done() (DNS queries).
-- @return true, or nil, "timeout"|"cancelled", detail
function M.wait(obj, events, deadline)
    check_can_wait("loop.wait")
    local t = current
    if t.cancelled then return nil, "cancelled", "the task was cancelled" end
    local dl, by_task = deadline, false
    if t.deadline and (not dl or t.deadline < dl) then dl, by_task = t.deadline, true end
    if dl and dl <= C.now() then
        return nil, "timeout", by_task and "the task deadline passed" or "the deadline passed"
    end
    local tok = t.token
    if obj == nil then
        if not dl then error("loop.wait: nothing to wait for (no object and no deadline)", 2) end
        C.wait_timer(tok, dl)
    elseif math.type(obj) == "integer" then
        C.wait_fd(tok, obj, events or "r", dl)
    elseif type(obj) == "table" or type(obj) == "userdata" then
        if obj.getfd then
            local fd = obj:getfd()
            if not fd then return nil, "closed", "the socket is closed" end
            -- keep: a core socket's close takes its fd out of the loop, so
            -- its read interest may stay registered between waits
            C.wait_fd(tok, fd, events or "r", dl, true)
        elseif obj.set_waiter then
            if obj:done() then return true end
            obj:set_waiter(tok)
            C.wait_external(tok, dl)
        else
            error("bad argument #1 to 'wait' (socket, query, fd or nil expected)", 2)
        end
    else
        error(("bad argument #1 to 'wait' (socket, query, fd or nil expected, got %s)"):format(type(obj)), 2)
    end
    t.status = "waiting"
    t.wait_deadline = dl
    local reason = co_yield(SENTINEL)
    if reason == "cancelled" then return nil, "cancelled", "the task was cancelled" end
    if obj == nil then -- a sleep: its timer firing is success unless it was the task's deadline
        if by_task then return nil, "timeout", "the task deadline passed" end
        return true
    end
    if reason == "ready" then return true end
    return nil, "timeout", by_task and "the task deadline passed" or "the deadline passed"
end

--- Sleep for s seconds.
function M.sleep(s)
    if type(s) ~= "number" then error("bad argument #1 to 'sleep' (number expected)", 2) end
    return M.wait(nil, nil, C.now() + s)
end

--- Wait for task t to finish.
-- @return its results, or nil, "error", message | nil, "timeout" | nil, "cancelled"
function M.join(t, deadline)
    if getmetatable(t) ~= Task then error("bad argument #1 to 'join' (task expected)", 2) end
    while t.status ~= "done" do
        check_can_wait("loop.join")
        if t == current then error("join: a task cannot join itself", 2) end
        local me = current
        local joiners = t.joiners
        if not joiners then joiners = {}; t.joiners = joiners end
        joiners[me] = true
        local ok, code, detail = M.wait(t, nil, deadline)
        joiners[me] = nil
        if not ok then return nil, code, detail end
    end
    if t.cancelled then return nil, "cancelled", "the task was cancelled" end
    if not t.ok then return nil, "error", t.err end
    return table.unpack(t.results, 1, t.results.n)
end

--- Cancel task t and its children: their current and future waits return
-- nil, "cancelled".  A task cannot cancel itself (return instead).
function M.cancel(t)
    if getmetatable(t) ~= Task then error("bad argument #1 to 'cancel' (task expected)", 2) end
    if t.status == "done" or t.cancelled then return end
    t.cancelled = true
    for child in pairs(t.children or {}) do M.cancel(child) end
    if t.status == "waiting" then
        C.disarm(t.token)
        t.status = "ready"
        enqueue(t, "cancelled")
    end
end

local function finish(t, ok, ...)
    t.status = "done"
    if ok then
        local inner_ok = ...
        if inner_ok then
            t.ok, t.results = true, table.pack(select(2, ...))
        else
            t.ok, t.err = false, select(2, ...)
        end
    else
        t.ok, t.err = false, ...
    end
    local parent = t.parent
    if parent and parent.children then parent.children[t] = nil end
    if t.joiners then for j in pairs(t.joiners) do C.wake(j.token) end end
    C.disarm(t.token)
    tasks[t.token] = nil
    quarantine[#quarantine + 1] = t.token
end

-- what a resume returned, without packing it into a table
local function resumed(t, prev, ok, ...)
    current = prev
    if co_status(t.co) == "dead" then
        finish(t, ok, ...)
    elseif ok and ... ~= SENTINEL then
        -- the task body called coroutine.yield itself, outside a coroutine of its own
        t.status = "done"
        finish(t, false, "a task yielded a value outside loop.wait (use coroutine.wrap for generators)")
    end
end

local function resume(t, arg)
    if t.status == "done" then return end
    local prev = current
    current = t
    t.status = "running"
    t.resumed_at = slice(t.co) -- mxprobe.runtime.budget measures the slice from here
    return resumed(t, prev, co_resume(t.co, arg))
end

--- Run fn(...) as the root task and drive the loop until it finishes.
-- Other tasks still running at that point are cancelled.
-- @return fn's results; raises fn's error
function M.run(fn, ...)
    if running then error("loop.run: the loop is already running (use loop.spawn inside tasks)", 2) end
    running = true
    M.interrupted = false
    -- signals up to here are old news (mxprobe.runtime.budget compares)
    M.signals_handled = C.signals_caught and C.signals_caught() or 0
    local root = M.spawn(fn, ...)
    local ok, err = pcall(function()
        while root.status ~= "done" do
            while runq_head <= runq_tail do
                local t, arg = runq[runq_head], runq_arg[runq_head]
                runq[runq_head], runq_arg[runq_head] = nil, nil
                runq_head = runq_head + 1
                resume(t, arg)
            end
            if root.status == "done" then break end
            local w = C.step(nil)
            for i = 1, #quarantine do free_tokens[#free_tokens + 1] = quarantine[i]; quarantine[i] = nil end
            if #w == 0 and C.armed() == 0 and runq_head > runq_tail then
                error("deadlock: every task waits for another task and nothing else can wake them")
            end
            for i = 1, #w, 2 do
                local tok, reason = w[i], w[i + 1]
                if tok == 0 then
                    M.interrupted = true
                    M.signals_handled = C.signals_caught and C.signals_caught() or 0
                    if signal_handler then signal_handler() else M.cancel(root) end
                else
                    local t = tasks[tok]
                    if t and t.status == "waiting" then
                        t.status = "ready"
                        enqueue(t, reason)
                    end
                end
            end
        end
    end)
    -- leave nothing armed behind for a later run
    for _, t in pairs(tasks) do
        C.disarm(t.token)
        t.status, t.ok, t.err = "done", false, "the loop stopped"
        tasks[t.token] = nil
    end
    runq, runq_arg, runq_head, runq_tail = {}, {}, 1, 0
    running = false
    M.signals_handled = nil
    if not ok then error(err, 0) end
    if not root.ok then error(root.err, 0) end
    return table.unpack(root.results, 1, root.results.n)
end

--- Handle SIGINT/SIGTERM (after catch_signals) yourself: fn() is called
-- from the scheduler (not a task) on each signal.  Default: cancel the
-- root task, so every wait returns "cancelled" and the run unwinds.
function M.on_signal(fn) signal_handler = fn end
function M.catch_signals() return C.catch_signals() end

-- A task queued on a semaphore, as loop.wait sees it: done once granted;
-- release wakes the task by its token, so set_waiter has nothing to keep.
local Queued = {}
Queued.__index = Queued
function Queued.set_waiter() end
function Queued:done() return self.granted == true end

--- A counting semaphore, for caps (sockets, queries in flight, sessions
-- per remote address).  acquire(deadline) -> true | nil, code, detail.
function M.semaphore(n)
    local s = { count = n, waiters = {}, head = 1, tail = 0 }
    function s.acquire(_, deadline)
        if s.count > 0 then
            s.count = s.count - 1
            return true
        end
        check_can_wait("semaphore.acquire")
        -- the queue entry is what loop.wait waits on: one table per wait,
        -- no closures (issue 15: an audit queues most DNS questions here)
        local me = setmetatable({ task = current }, Queued)
        s.tail = s.tail + 1
        s.waiters[s.tail] = me
        local ok, code, detail = M.wait(me, nil, deadline)
        if me.granted then return true end -- granted in the same round as a timeout
        me.gone = true
        return ok, code, detail
    end
    function s.release()
        while s.head <= s.tail do
            local w = s.waiters[s.head]
            s.waiters[s.head] = nil
            s.head = s.head + 1
            if not w.gone and w.task.status ~= "done" then
                w.granted = true
                C.wake(w.task.token)
                return
            end
        end
        s.count = s.count + 1
    end
    return s
end

-- Coroutines of a check's own must pass host yields through: a wait made
-- inside them reaches the scheduler, and the answer comes back to them.
local function pass(co, ok, ...)
    if ok and ... == SENTINEL then
        return pass(co, co_resume(co, co_yield(...)))
    end
    return ok, ...
end

function coroutine.resume(co, ...)
    return pass(co, co_resume(co, ...))
end

function coroutine.wrap(f)
    local co = co_create(f)
    return function(...)
        local function unwrap(ok, ...)
            if not ok then
                local err = ...
                error(err, 0)
            end
            return ...
        end
        return unwrap(coroutine.resume(co, ...))
    end
end

M.SENTINEL = SENTINEL
return M
