--- mxprobe.runtime.findings: the one walker over every finding of a result
-- (schema 1, docs/json-schema.md): the DNS findings, the domain's, then
-- each server's, in that order.
--
--   for f, srv in findings.each(result) do ... end     -- srv: nil for DNS and domain ones
--   for f, srv in findings.each(result, "TLS_OK") do ... end  -- only this code
--
-- Tolerant of odd results (a missing list is an empty one), because
-- reports and user scripts walk results that did not come from the engine.
local M = {}

local function list(t) return type(t) == "table" and t or {} end

function M.each(result, code)
    local lists = { { list(list(result.dns).findings) }, { list(result.findings) } }
    for _, srv in ipairs(list(result.servers)) do
        if type(srv) == "table" then lists[#lists + 1] = { list(srv.findings), srv } end
    end
    local li, fi = 1, 0
    return function()
        while lists[li] do
            local l, srv = lists[li][1], lists[li][2]
            fi = fi + 1
            local f = l[fi]
            if f == nil then
                li, fi = li + 1, 0
            elseif code == nil or (type(f) == "table" and f.code == code) then
                return f, srv
            end
        end
    end
end

--- The server (an entry of result.servers) that holds finding f, or nil.
function M.server_of(result, f)
    for x, srv in M.each(result) do
        if x == f then return srv end
    end
end

return M
