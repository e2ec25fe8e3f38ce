--- mxprobe.app.embed: the Lua side of the C embedding API (core/mxprobe.h).
-- Every function returns a value, or nil and a message (never raises), so
-- the C side can hand the message to its caller.

local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local json = require "mxprobe.report.json"

local M = {}

local TIMEOUTS = { timeout_connect = "connect", timeout_greeting = "greeting",
                   timeout_command = "command", timeout_tls = "tls", timeout_dns = "dns" }

function M.new()
    return { config = { timeouts = {} }, policy = nil, run = nil }
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
        -- the relay check's switch: turned off like any check
        c.disable = value == "off" and { "relay" } or nil
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

function M.check_domain(h, domain)
    local ok, res = pcall(function()
        local run = get_run(h)
        return loop.run(function() return run:check_domain(domain) end)
    end)
    if not ok then return nil, tostring(res) end
    return json.encode(res)
end

return M
