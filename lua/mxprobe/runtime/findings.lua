--- mxprobe.runtime.findings: the one walker over every finding of a result
-- (schema 1, docs/json-schema.md): the DNS findings, the domain's, then
-- each server's, in that order.
--
--   for f, srv in findings.each(result) do ... end     -- srv: nil for DNS and domain ones
--   for f, srv in findings.each(result, "TLS_OK") do ... end  -- only this code
--
-- Tolerant of odd results (a missing list is an empty one), because
-- reports and user scripts walk results that did not come from the engine.
local frozen = require "mxprobe.runtime.frozen"

local M = {}

local function list(t) return type(t) == "table" and t or {} end

-- The lists in walking order: 1 the DNS findings, 2 the domain's, 2 + i
-- server i's.  No table of lists is made (issue 15: the walk runs several
-- times per domain of an audit).
local function list_at(result, servers, li)
    if li == 1 then
        local dns = result.dns
        return list(type(dns) == "table" and dns.findings), nil
    elseif li == 2 then
        return list(result.findings), nil
    end
    local srv = servers[li - 2]
    if srv == nil then return nil end
    if type(srv) ~= "table" then return false end
    return list(srv.findings), srv
end

function M.each(result, code)
    local servers = list(result.servers)
    local li, fi = 1, 0
    local l, srv = list_at(result, servers, 1)
    return function()
        while l ~= nil do
            if l then
                fi = fi + 1
                local f = l[fi]
                if f ~= nil then
                    if code == nil or (type(f) == "table" and f.code == code) then return f, srv end
                    goto next
                end
            end
            li, fi = li + 1, 0
            l, srv = list_at(result, servers, li)
            ::next::
        end
    end
end

--- The server (an entry of result.servers) that holds finding f, or nil.
function M.server_of(result, f)
    for x, srv in M.each(result) do
        if x == f then return srv end
    end
end

--- A server's findings list that this domain may change.  With sharing on
-- and a policy that changes no findings (mxprobe.engine: no rules, no
-- score, grade or verdict function, only stock summaries), every domain
-- that uses a server gets the probe's list itself, frozen with its
-- findings, so that it is judged and encoded once per probe (issue 15).
-- Whatever changes a server's findings for one domain (a summary's
-- set_severity, the sender matrix's certificate_defects, an engine error)
-- takes them with own() first: the list is replaced by a copy (new list,
-- new finding tables, the evidence still shared).  Returns srv.findings.
local rows
function M.own(srv)
    local l = srv.findings
    if getmetatable(l) ~= frozen.mt then return l end
    if rows == nil then
        -- reports and scripts walk results with this module where nothing
        -- loaded the core, and most never own a list
        -- lazy: only a list taken to be changed needs core.copy
        local core = require "mxprobe.core"
        rows = core.copy and core.copy.rows or false
    end
    local out
    if rows then
        out = rows(l) -- keeps the metatables: taken off below
    else
        out = {}
        for i, f in ipairs(l) do
            local c = {}
            for k, v in pairs(f) do c[k] = v end
            out[i] = setmetatable(c, getmetatable(f))
        end
    end
    setmetatable(out, nil)
    for i = 1, #out do
        if getmetatable(out[i]) == frozen.mt then setmetatable(out[i], nil) end
    end
    srv.findings = out
    return out
end

--- Is this findings list a shared probe's (frozen, see own)?
function M.is_shared(l) return getmetatable(l) == frozen.mt end

return M
