-- What a start costs before the first DNS question (bench/domain; limit
-- 10 ms): nothing is read, loaded or compiled there that the run may not
-- need.  (The precompiled Lua files: bytecode_spec.lua.)
local config_errors = require "mxprobe.runtime.config_errors"

local function exe()
    return "/proc/" .. assert(io.open("/proc/self/stat")):read("n") .. "/exe"
end

local function write(path, text)
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
end

describe("start-up", function()
    it("reads a configuration file's lines only when a message needs them", function()
        local p = os.tmpname()
        write(p, "return {\n  a = 1, -- one\n}\n")
        local lines = config_errors.read_lines(p)
        -- what the file holds when a message is made is what it names
        write(p, "return {\n  b = 'x--y', -- two\n  c = 3,\n}\n")
        assert.are.equal(4, #lines)
        assert.are.equal("  b = 'x--y', ", lines[2])
        assert.are.equal(3, config_errors.find_line(lines, { "c" }))
        local seen = {}
        for i, l in ipairs(lines) do seen[i] = l end
        assert.are.same({ "return {", "  b = 'x--y', ", "  c = 3,", "}" }, seen)
        assert.is_nil(lines[5])
        os.remove(p)
        assert.is_nil(config_errors.read_lines(p))
    end)

    it("loads libcurl on the first MTA-STS fetch, not at start", function()
        local script = os.tmpname()
        write(script, [[
local function curl_mapped()
    for l in io.lines("/proc/self/maps") do
        if l:find("libcurl", 1, true) then return true end
    end
    return false
end
require "mxprobe.app.cli"
require "mxprobe.engine"
local http = require "mxprobe.net.http"
io.write(tostring(curl_mapped()), " ")
io.write(tostring(http.curl_version:match("^%d+%.%d+") ~= nil), " ")
io.write(tostring(curl_mapped()), "\n")
]])
        local p = assert(io.popen(exe() .. " " .. script .. " 2>&1"))
        local out = p:read("a")
        p:close()
        os.remove(script)
        assert.are.equal("false true true\n", out)
    end)
end)
