--- mxprobe.runtime.frozen: mark a table as final, so that it can be shared
-- by reference instead of copied, and its JSON encoded once.
--
-- With sharing on, an audit hands every domain that uses a server the
-- session of one probe.  The transcript of that session (what was said,
-- 10-20 KB of text per server) is the same for all of them and never
-- changes once the probe is done, so the engine shares the table itself and
-- report.json caches its encoding (issue 15: the copy and the encoding were
-- most of the CPU per shared domain).  Adding a key to a frozen table is an
-- error, so a check that appended to a shared transcript would fail loudly
-- instead of leaving a stale encoding; a frozen table is never changed.
local M = {}

M.mt = {
    __name = "mxprobe.frozen",
    __newindex = function(_, k)
        error(("a frozen table cannot change (key %s): it is shared between domains"):format(tostring(k)), 2)
    end,
}

--- Mark t as frozen (idempotent; refuses a table with another metatable).
-- Returns t.
function M.mark(t)
    local mt = getmetatable(t)
    if mt ~= nil and mt ~= M.mt then error("frozen.mark: the table already has a metatable", 2) end
    return setmetatable(t, M.mt)
end

--- Is t a frozen table?
function M.is(t) return getmetatable(t) == M.mt end

return M
