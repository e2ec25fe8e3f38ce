--- mxprobe.report.reason: the decisive reason of a result in one phrase,
-- shared by the summary line of the text report, --format nagios and
-- --format openmetrics (so they cannot tell different stories).
--
--   reason.finding(result)  -> the finding that decided the verdict, or nil
--   reason.phrase(result)   -> "CERT_EXPIRING on mx.example.org (192.0.2.1): The certificate ..."
--                              | "no problem found on 2 servers" | the error
--   reason.tls_number(v)    -> "TLSv1.3" -> 1.3, "TLSv1" -> 1.0, nil when unknown
--   reason.server_time(s)   -> connect + greeting seconds (check_smtp's "response time"), or nil
--
-- The strings are not escaped: each format escapes for its own medium.
local M = {}

local function list(t) return type(t) == "table" and t or {} end

local function matches(f, d)
    return type(f) == "table" and f.code == d.code and (d.check == nil or f.check == nil or f.check == d.check)
end

--- The finding decided_by names: on its server when it names one, else
-- among the domain's and the DNS findings (then anywhere, first match).
function M.finding(result)
    local d = type(result) == "table" and result.decided_by
    if type(d) ~= "table" or not d.code then return nil end
    for _, s in ipairs(list(result.servers)) do
        if (d.address == nil or s.address == d.address) and (d.host == nil or s.host == d.host) then
            for _, f in ipairs(list(s.findings)) do
                if matches(f, d) then return f, s end
            end
        end
    end
    for _, fs in ipairs { list(result.findings), list(type(result.dns) == "table" and result.dns.findings) } do
        for _, f in ipairs(fs) do
            if matches(f, d) then return f end
        end
    end
    for _, s in ipairs(list(result.servers)) do
        for _, f in ipairs(list(s.findings)) do
            if matches(f, d) then return f, s end
        end
    end
    return nil
end

--- One phrase saying why the verdict is what it is.
function M.phrase(result)
    if type(result) ~= "table" then return "no result" end
    if result.error then return tostring(result.error) end
    local d = type(result.decided_by) == "table" and result.decided_by or nil
    if d and (d.code or d.reason) then
        local s = d.code or ""
        if d.host or d.address then
            s = s .. " on " .. tostring(d.host or d.address)
            if d.host and d.address then s = s .. " (" .. tostring(d.address) .. ")" end
        end
        local f = M.finding(result)
        local msg = f and f.message or d.reason
        if msg and msg ~= "" then s = (s ~= "" and (s .. ": ") or "") .. tostring(msg) end
        if d.rule and d.rule ~= "verdict" and d.rule ~= "worst" then s = s .. " (rule " .. tostring(d.rule) .. ")" end
        return s
    end
    local n = #list(result.servers)
    if n == 0 then return "no server was tested" end
    return ("no problem found on %d %s"):format(n, n == 1 and "server" or "servers")
end

function M.tls_number(v)
    if type(v) ~= "string" then return nil end
    if v == "SSLv3" then return 0.3 end
    local major, minor = v:match("^TLSv(%d)%.(%d)$")
    if major then return tonumber(major .. "." .. minor) end
    if v:match("^TLSv(%d)$") then return tonumber(v:match("^TLSv(%d)$") .. ".0") end
    return nil
end

function M.server_time(s)
    local f = type(s) == "table" and type(s.facts) == "table" and s.facts or {}
    local c = type(f.connect) == "table" and f.connect or nil
    if not c or c.state ~= "connected" or type(c.seconds) ~= "number" then return nil end
    local b = type(f.banner) == "table" and f.banner or nil
    return c.seconds + ((b and type(b.seconds) == "number") and b.seconds or 0)
end

return M
