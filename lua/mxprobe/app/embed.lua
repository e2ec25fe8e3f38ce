--- mxprobe.app.embed: the Lua side of the C embedding API (core/mxprobe.h).
-- Every function returns a value, or nil and a message (never raises), so
-- the C side can hand the message to its caller.

local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local json = require "mxprobe.report.json"
local runner = require "mxprobe.app.runner"
local cli = require "mxprobe.app.cli.options"
local core = require "mxprobe.core"

local M = {}

local TIMEOUTS = { timeout_connect = "connect", timeout_greeting = "greeting",
                   timeout_command = "command", timeout_tls = "tls", timeout_dns = "dns" }

function M.new()
    return { config = { timeouts = {} }, policy = nil, run = nil }
end

local KNOWN = { resolver = true, helo = true, port = true, ca_file = true, allow_reserved = true, relay = true }
for k in pairs(TIMEOUTS) do KNOWN[k] = true end

-- Values are checked as the command line checks them (mxprobe.cli's
-- parsers), so an embedding program cannot smuggle CR/LF into the EHLO
-- line or an infinite timeout into the loop.
function M.set_option(h, name, value)
    if type(name) ~= "string" or not KNOWN[name] then
        return nil, ("unknown option %q"):format(tostring(name))
    end
    if h.run then return nil, "set_option: options must be set before the first check" end
    if type(value) ~= "string" then return nil, name .. ": a value is needed" end
    if value:find("%c") then
        return nil, ("%s: %q: control characters (CR, LF, NUL, ...) are not allowed"):format(name, value)
    end
    local function parsed(v, err)
        if v == nil then error({ msg = name .. ": " .. tostring(err) }) end
        return v
    end
    local ok, err = pcall(function()
        local c = h.config
        if name == "resolver" then
            c.resolvers = c.resolvers or {}
            c.resolvers[#c.resolvers + 1] = parsed(cli.parse_resolver(value))
        elseif name == "helo" then
            c.helo = parsed(cli.parse_helo(value))
        elseif name == "ca_file" then
            parsed(core.tls.load_ca(value))
            c.ca_file = value
        elseif name == "port" then
            c.port = parsed(cli.parse_port(value))
        elseif name == "allow_reserved" then
            if value ~= "all" and not cli.RESERVED_KIND_SET[value] then
                parsed(nil, ("'%s' is not one of all, %s"):format(value, table.concat(cli.RESERVED_KINDS, ", ")))
            end
            c.allow_reserved = c.allow_reserved or {}
            if value == "all" then
                for _, k in ipairs(cli.RESERVED_KINDS) do c.allow_reserved[#c.allow_reserved + 1] = k end
            else
                c.allow_reserved[#c.allow_reserved + 1] = value
            end
        elseif name == "relay" then
            if value ~= "off" and value ~= "on" then parsed(nil, "\"on\" or \"off\" expected") end
            -- the relay check's switch: turned off like any check
            c.disable = value == "off" and { "relay" } or nil
        else -- a timeout: finite, more than 0, at most a day
            c.timeouts[TIMEOUTS[name]] = parsed(cli.parse_seconds(value))
        end
    end)
    if not ok then return nil, type(err) == "table" and err.msg or tostring(err) end
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
