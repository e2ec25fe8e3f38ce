--- mxprobe.app.sink: where records go.  A sink is a function(s) -> true |
-- nil, err that writes s whole and flushes it, so that a pipeline sees
-- each record as it comes and a kill loses at most the line being written.
--
--   sink.of(f)             an open file or any object with :write (and :flush)
--   sink.open(path, mode)  "w" (truncate) or "a" (append) -> sink, file | nil, message
--   sink.null              writes nothing
local escape = require "mxprobe.runtime.escape"

local M = {}

function M.of(f)
    return function(s)
        local ok, err = f:write(s)
        if ok and f.flush then ok, err = f:flush() end
        if not ok then return nil, err or "write failed" end
        return true
    end
end

function M.open(path, mode)
    local f, err = io.open(path, (mode or "w") .. "b")
    -- Each string is flushed whole, so a buffer only splits it: with the C
    -- library's 4 KiB a 14 kB audit record went out in three writes (issue
    -- 15).  Unbuffered, each string is one write.  (A larger buffer cannot
    -- be asked for from Lua: glibc ignores setvbuf's size without a buffer.)
    -- Set before the first write, as setvbuf must be; stdout is left alone.
    if f then f:setvbuf("no") end
    if not f then
        return nil, ("cannot write '%s': %s"):format(escape.for_display(path, escape.MAX_ECHO), (tostring(err):gsub("^[^:]*: ", "")))
    end
    return M.of(f), f
end

function M.null() return true end

return M
