--- mxprobe.engine.limits: politeness towards remote servers and caps on our own
-- resources, shared by every domain of a run.
--
--   sessions_per_address      probe tasks at once per remote address (default 2)
--   connects_per_second_per_address   new connections per second per address (0: no cap)
--   max_sessions              open SMTP sockets in the whole run (0: no cap)
--
-- A probe task holds one slot of its address for its whole life and opens
-- its sessions one after the other, so slots cannot deadlock.
local loop = require "mxprobe.runtime.loop"

local M = {}
local L = {}
L.__index = L

function M.new(cfg)
    cfg = cfg or {}
    local self = setmetatable({
        per_address = cfg.sessions_per_address or 2,
        rate = cfg.connects_per_second_per_address or 0,
        max_sessions = cfg.max_sessions or 0,
        slots = {}, next_connect = {}, open = 0, peak = 0,
    }, L)
    if self.max_sessions > 0 then self.sockets = loop.semaphore(self.max_sessions) end
    return self
end

--- Take a probe slot for address (waits; bounded by deadline).
-- Returns a release function, or nil, code, detail.
function L:enter(address, deadline)
    if self.per_address <= 0 then return function() end end
    local sem = self.slots[address]
    if not sem then
        sem = loop.semaphore(self.per_address)
        self.slots[address] = sem
    end
    local ok, code, detail = sem:acquire(deadline)
    if not ok then return nil, code, detail end
    local done = false
    return function()
        if not done then done = true; sem:release() end
    end
end

--- Before a new connection: respect the per-address rate and the global
-- socket cap.  Returns a release function for the socket, or nil, code.
function L:connect(address, deadline)
    if self.rate > 0 then
        local now = loop.now()
        local at = math.max(now, self.next_connect[address] or 0)
        self.next_connect[address] = at + 1 / self.rate
        if at > now then
            local ok, code, detail = loop.wait(nil, nil, math.min(at, deadline or at))
            if not ok then return nil, code, detail end
            if deadline and at > deadline then return nil, "timeout", "connection rate limit" end
        end
    end
    if self.sockets then
        local ok, code, detail = self.sockets:acquire(deadline)
        if not ok then return nil, code, detail end
    end
    self.open = self.open + 1
    if self.open > self.peak then self.peak = self.open end
    local done = false
    return function()
        if done then return end
        done = true
        self.open = self.open - 1
        if self.sockets then self.sockets:release() end
    end
end

return M
