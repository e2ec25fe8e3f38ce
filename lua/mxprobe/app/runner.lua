--- mxprobe.app.runner: the one runner of a list of targets through one
-- engine run, for `mxprobe DOMAIN...`, `mxprobe audit` and the embedding
-- API (mxprobe.app.embed).  Must run inside a task.
--
--   local outcome = runner.run(run, {
--       next     = function() -> target | nil,  -- or: targets = { target, ... }
--       parallel = 16,          -- targets in flight at once (a pool of workers)
--       ordered  = true,        -- write in the order of the targets (the CLI)
--                               -- instead of as each completes (audits)
--       write    = function(result, target) -> true | nil, err
--                               -- a failure stops the run (nobody reads)
--       signals  = true,        -- Ctrl-C: stop; a second one exits at once
--       notice   = function(line),  -- messages (default: stderr)
--       verbose  = false,       -- keep tracebacks in internal-error records
--       deadline = nil,         -- seconds: stop the whole run then (-t)
--   })
--   --> { started =, written =, interrupted = bool, timed_out = seconds|nil,
--         write_error = msg|nil }
--
-- A target is { kind = "domain" | "host", name =, port = (hosts),
-- input = the name as given (when it differs), error = why it is not a
-- name (then no probe: an error record) }.
--
-- Every target that gets no result gets one record shape,
-- runner.error_record (docs/json-schema.md, "Error records"): the engine
-- crashed on it ("internal error: ..."), or its input is not a name.
--
-- Stopping (Ctrl-C, an output nobody reads): no new target starts, the
-- ones in flight are cancelled and get no record (a resumed audit redoes
-- them); with `ordered`, what finished before is still written, in order.
local loop = require "mxprobe.runtime.loop"
local json = require "mxprobe.report.json"
local goodbye = require "mxprobe.smtp.goodbye"

local M = {}

M.DEFAULT_PARALLEL = 16

--- The record of a target that got no result: the shape of a result
-- (schema 1), verdict inconclusive, exit code 3, and `error` saying why.
function M.error_record(target, message)
    return {
        schema = 1,
        domain = target.name or target.input,
        input = target.name and target.input or nil,
        mode = target.kind == "host" and "host" or nil,
        verdict = "inconclusive",
        exit_code = 3,
        error = message,
        dns = { mx = json.array(), findings = json.array() },
        servers = json.array(),
        findings = json.array(),
    }
end

--- Check one target through run.  Never raises.
-- @return result | nil, message (an internal error: the first line of the
--   engine's error, with its traceback when verbose)
function M.check(run, target, verbose)
    local ok, r
    if target.kind == "host" then
        ok, r = pcall(run.check_host, run, target.name, target.port) -- nil port: the policy's
    else
        ok, r = pcall(run.check_domain, run, target.name)
    end
    if ok and type(r) == "table" then
        if target.input then r.input = target.input end -- the name as given (U-labels)
        return r
    end
    local msg = not ok and tostring(r) or ("the engine returned a %s, not a result"):format(type(r))
    if not verbose then msg = msg:gsub("\nstack traceback:.*", "") end
    return nil, msg
end

-- The targets as a function that hands out the next one (nil: no more).
local function source_of(opts)
    if opts.next then return opts.next end
    local list, i = opts.targets, 0
    return function()
        i = i + 1
        return list[i]
    end
end

-- One run of the runner: its options, counters and what waits to be written.
local Job = {}
Job.__index = Job

function Job:stop()
    if self.stopping then return end
    self.stopping = true
    for _, w in ipairs(self.workers) do loop.cancel(w) end
end

function Job:write(r, target)
    local ok, err = self.opts.write(r, target)
    if ok then
        self.st.written = self.st.written + 1
    elseif not self.st.write_error then
        self.st.write_error = tostring(err or "write failed")
        self:stop()
    end
end

-- ordered: write what is done, up to the first that is not
function Job:flush()
    while self.waiting[self.next_out] and not self.st.write_error do
        local w = self.waiting[self.next_out]
        self.waiting[self.next_out] = nil -- thousands of targets: keep no result once written
        self.next_out = self.next_out + 1
        if w.result then self:write(w.result, w.target) end
    end
end

-- The seq-th target is done: r its result, or nil (cancelled: no record).
function Job:finished(seq, target, r)
    if self.opts.ordered then
        self.waiting[seq] = { result = r, target = target }
        self:flush()
    elseif r then
        self:write(r, target)
    end
end

function Job:one(seq, target)
    local r, msg
    if target.error then
        r = M.error_record(target, target.error)
    else
        r, msg = M.check(self.run, target, self.opts.verbose)
    end
    if self.stopping then return self:finished(seq, target, nil) end -- cancelled mid-way: no record
    if not r then
        self.notice(("mxprobe: %s: internal error: %s\n"):format(target.name, msg))
        r = M.error_record(target, "internal error: " .. msg)
    end
    self:finished(seq, target, r)
end

function Job:worker()
    while not self.stopping do
        local target = self.next_target()
        if target == nil then return end
        self.st.started = self.st.started + 1
        self:one(self.st.started, target)
    end
end

-- Ctrl-C: stop; a second one while stopping exits at once.
function Job:on_signal()
    if self.stopping then
        self.notice("mxprobe: interrupted again; exiting now\n")
        os.exit(3, false)
    end
    self.st.interrupted = true
    self:stop()
end

--- Run the targets; see the top of this file.
function M.run(run, opts)
    local job = setmetatable({
        run = run, opts = opts, next_target = source_of(opts), workers = {}, stopping = false,
        notice = opts.notice or function(line) io.stderr:write(line) end,
        st = { started = 0, written = 0, interrupted = false, write_error = nil },
        waiting = {}, next_out = 1, -- ordered: results by sequence number, the next to write
    }, Job)
    if opts.signals then loop.on_signal(function() job:on_signal() end) end
    local n = opts.parallel or M.DEFAULT_PARALLEL
    if opts.targets then n = math.max(1, math.min(n, #opts.targets)) end
    for i = 1, n do job.workers[i] = loop.spawn(Job.worker, job) end
    local watchdog
    if opts.deadline then
        watchdog = loop.spawn(function()
            if loop.sleep(opts.deadline) then job.st.timed_out = opts.deadline; job:stop() end
        end)
    end
    for _, w in ipairs(job.workers) do loop.join(w) end
    if watchdog then loop.cancel(watchdog) end
    -- stopped (Ctrl-C, nobody reads): the cancelled probes still say QUIT,
    -- within a second in all, and only this run's sessions
    if job.stopping then goodbye.all(nil, job.workers) end
    if opts.signals then loop.on_signal(nil) end
    if opts.ordered and not job.st.write_error then
        -- after a stop: what did finish, in order, skipping the cancelled
        for seq = job.next_out, job.st.started do job.waiting[seq] = job.waiting[seq] or {} end
        job:flush()
    end
    return job.st
end

return M
