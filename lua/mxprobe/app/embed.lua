--- mxprobe.app.embed: the Lua side of the C embedding API (core/mxprobe.h).
-- Every function returns a value, or nil and a message (never raises), so
-- the C side can hand the message to its caller.

local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local json = require "mxprobe.report.json"
local runner = require "mxprobe.app.runner"

local M = {}

local TIMEOUTS = { timeout_connect = "connect", timeout_greeting = "greeting",
                   timeout_command = "command", timeout_tls = "tls", timeout_dns = "dns" }

function M.new()
    return { config = { timeouts = {}, relay = {} }, policy = nil, run = nil }
end

function M.set_option(h, name, value)
    if h.run then return nil, "set_option: options must be set before the first check" end
    local c = h.config
    if name == "resolver" then
        c.resolvers = c.resolvers or {}
        c.resolvers[#c.resolvers + 1] = value
    elseif name == "helo" or name == "ca_file" then
        c[name] = value
    elseif name == "port" then
        local p = tonumber(value)
        if not p or p < 1 or p > 65535 or p % 1 ~= 0 then return nil, "port: an integer 1-65535 expected" end
        c.port = math.tointeger(p)
    elseif name == "allow_reserved" then
        c.allow_reserved = c.allow_reserved or {}
        c.allow_reserved[#c.allow_reserved + 1] = value
    elseif name == "relay" then
        if value ~= "off" and value ~= "on" then return nil, "relay: \"on\" or \"off\" expected" end
        c.relay.enabled = value == "on"
    elseif TIMEOUTS[name] then
        local s = tonumber(value)
        if not s or s <= 0 then return nil, name .. ": a positive number of seconds expected" end
        c.timeouts[TIMEOUTS[name]] = s
    else
        return nil, ("unknown option %q"):format(tostring(name))
    end
    return true
end

local function get_run(h)
    if not h.run then
        h.run = engine.new { policy = h.policy, config = h.config }
    end
    return h.run
end

function M.load_policy(h, path)
    h.policy = path
    h.run = nil
    local ok, err = pcall(get_run, h)
    if not ok then h.policy = nil; return nil, tostring(err) end
    return true
end

-- One domain through the runner the command line and audits use.  The
-- host program owns its signals (signals = false); an internal error of
-- the engine is the API's error, not a record.
local function check(run, domain)
    local got, failure
    runner.run(run, {
        targets = { { kind = "domain", name = domain } }, parallel = 1, signals = false,
        notice = function() end,
        write = function(r)
            if r.error and not got then failure = r.error else got = r end
            return true
        end,
    })
    if not got then return nil, failure or "no result" end
    return got
end

function M.check_domain(h, domain)
    if type(domain) ~= "string" then return nil, "check_domain: a domain name (string) expected" end
    local ok, res, err = pcall(function()
        local run = get_run(h)
        return loop.run(check, run, domain)
    end)
    if not ok then return nil, tostring(res) end
    if not res then return nil, err end
    return json.encode(res)
end

return M
