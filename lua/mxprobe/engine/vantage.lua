--- mxprobe.engine.vantage: what a run knows about its own network.
--
-- A connect timeout is the server's fault only if this machine can reach
-- port 25 at all (many ISPs and clouds block it outbound).  Two kinds of
-- evidence, for the whole run (every domain of an audit shares them):
--   * passive: how many servers answered on the probe port so far (any
--     answer proves the port is not blocked here);
--   * active: --vantage-check HOST[:PORT] (policy probe.vantage_check),
--     one connection to a reference host when the run starts.
-- evidence() sums them up: state "open" (not blocked), "blocked" (the
-- reference host timed out or is unreachable and nothing answered) or
-- "unknown" (no evidence either way).
local loop = require "mxprobe.runtime.loop"
local session = require "mxprobe.smtp.session"
local iputil = require "mxprobe.net.iputil"

local M = {}
local V = {}
V.__index = V

--- Parse "HOST[:PORT]", "[v6]:PORT" or a bare address: host, port or nil, why.
function M.parse(spec, default_port)
    if type(spec) ~= "string" or spec == "" or spec:find("[%s%c]") then return nil, "HOST or HOST:PORT expected" end
    local host, port = spec:match("^%[([^%]]+)%]:?(%d*)$")
    if not host then
        if select(2, spec:gsub(":", "")) > 1 then host, port = spec, "" -- a bare IPv6 address
        else host, port = spec:match("^([^:]+):?(%d*)$") end
    end
    if not host or host == "" then return nil, "HOST or HOST:PORT expected" end
    port = port ~= "" and tonumber(port) or default_port or 25
    if math.type(port) ~= "integer" or port < 1 or port > 65535 then return nil, "the port must be 1-65535" end
    if not iputil.is_literal(host) and not host:match("^[%w][%w%.%-_]*$") then
        return nil, ("%q is not a host name or address"):format(host)
    end
    return host:lower():gsub("%.$", ""), port
end

function M.new(config)
    return setmetatable({ count = 0, spec = config.vantage_check, config = config }, V)
end

-- the probe port as the run has it now (check_host may set it)
function V:port() return self.config.port or 25 end

function V:answered(port)
    if port == self:port() then self.count = self.count + 1 end
end

local function resolve(run, host)
    if iputil.is_literal(host) then return (host:gsub("^%[", ""):gsub("%]$", "")) end
    local timeout = (run.config.timeouts or {}).dns or 5
    local why
    for _, fam in ipairs(run.config.families or { 4, 6 }) do
        local ans, code, detail = run.dns:query(host, fam == 6 and "AAAA" or "A", loop.now() + timeout)
        if ans then
            for _, rr in ipairs(ans.answers or {}) do
                if rr.type == (fam == 6 and "AAAA" or "A") then return rr.address end
            end
            why = ans.rcode ~= "NOERROR" and ans.rcode or "no address"
        else
            why = ("%s %s"):format(code, detail or "")
        end
    end
    return nil, why
end

local function probe(self, run)
    local host, port = M.parse(self.spec, 25)
    local c = { target = ("%s:%d"):format(host, port) }
    local ip, why = resolve(run, host)
    if not ip then c.state, c.detail = "dns", why; return c end
    c.address = ip
    local s, code, detail, seconds = session.open(ip, port, {
        connect_timeout = (run.config.timeouts or {}).connect or 10, timeouts = run.config.timeouts,
    })
    c.seconds = math.floor((seconds or 0) * 1000 + 0.5) / 1000
    if not s then
        c.state = ({ timeout = "timeout", refused = "refused", unreachable = "unreachable" })[code] or "error"
        c.detail = detail
        return c
    end
    c.state = "answered"
    -- polite: the greeting, then QUIT
    s:read_reply(loop.now() + math.min(10, (run.config.timeouts or {}).greeting or 10))
    s:quit()
    return c
end

--- Run the active check once per run; every domain waits for the first.
function V:check_once(run)
    if not self.spec then return end
    if not self.task then self.task = loop.spawn(probe, self, run) end
    if not self.check then
        local c, code, detail = loop.join(self.task)
        if type(c) == "table" then self.check = c
        else self.check = { target = self.spec, state = "error", detail = ("%s %s"):format(code, detail or "") } end
    end
end

--- The evidence so far (a fresh table: results keep their own copy).
function V:evidence()
    local e = { port = self:port(), answered = self.count }
    local c = self.check
    if c then
        e.check = {}
        for k, v in pairs(c) do e.check[k] = v end
    end
    if self.count > 0 or (c and c.state == "answered") then e.state = "open"
    elseif c and (c.state == "timeout" or c.state == "unreachable") then e.state = "blocked"
    else e.state = "unknown" end
    return e
end

return M
