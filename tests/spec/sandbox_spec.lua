-- Policies run in a restricted environment and program files that others
-- can write are refused (issue 16, item 9; docs/policies.md "What a policy
-- may do", docs/writing-checks.md "What a check file may do").
local policy = require "mxprobe.policy"
local checks = require "mxprobe.engine.checks"

local tmp = assert(io.popen("mktemp -d /tmp/mxprobe-sandbox.XXXXXX")):read("l")
local function write(name, text, mode)
  local path = tmp .. "/" .. name
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  assert(os.execute(("chmod %s '%s'"):format(mode or "644", path)))
  return path
end
local function load_error(path)
  local ok, err = pcall(policy.load, path)
  assert.is_false(ok, "loaded")
  return tostring(err)
end

describe("a policy file's environment", function()
  it("has no io, os.execute, require, load, dofile, debug or print", function()
    local p = write("probe.lua", [[
      local seen = {}
      for _, name in ipairs { "io", "require", "load", "loadfile", "dofile", "debug", "print",
                              "collectgarbage", "package", "coroutine" } do
        if _G[name] ~= nil or _ENV[name] ~= nil then seen[#seen + 1] = name end
      end
      for _, name in ipairs { "execute", "exit", "getenv", "remove", "rename", "tmpname", "setlocale" } do
        if os[name] ~= nil then seen[#seen + 1] = "os." .. name end
      end
      if string.dump then seen[#seen + 1] = "string.dump" end
      if getmetatable("") ~= nil then seen[#seen + 1] = "the string metatable" end
      return { params = { reachable = table.concat(seen, " "), later = function() return io, require, load end,
                          clock = type(os.time()), fmt = ("%d"):format(3) } }
    ]])
    local pol = policy.load(p)
    assert.equal("", pol.params.reachable)
    assert.same({}, { pol.params.later() }) -- functions of the policy (rules) keep the same environment
    assert.equal("number", pol.params.clock)
    assert.equal("3", pol.params.fmt)
  end)

  it("reports a forbidden call as a plain load error naming the line", function()
    local p = write("exec.lua", "os.execute('touch " .. tmp .. "/pwned')\nreturn {}\n")
    local err = load_error(p)
    assert.equal(p .. ":1: attempt to call a nil value (field 'execute')", err)
    assert.is_nil(io.open(tmp .. "/pwned"))
    err = load_error(write("io.lua", "local f = io.open('/etc/passwd')\nreturn {}\n"))
    assert.matches(":1: attempt to index a nil value %(global 'io'%)$", err)
    err = load_error(write("req.lua", "local x = require('os')\nreturn {}\n"))
    assert.matches(":1: attempt to call a nil value %(global 'require'%)$", err)
  end)

  it("cannot change the libraries the engine uses", function()
    local p = write("mutate.lua", [[
      string.format = function() return "pwned" end
      table.concat = nil
      math.floor = nil
      return {}
    ]])
    policy.load(p)
    assert.equal("1", ("%d"):format(1))
    assert.is_function(table.concat)
    assert.is_function(math.floor)
  end)

  it("still has what judging needs: string, table, math, utf8, os.time/date, pcall", function()
    local p = write("ok.lua", [[
      local t = { "b", "a" }
      table.sort(t)
      return { name = table.concat(t) .. math.floor(1.5) .. utf8.char(65) .. (os.date("!%Y", 0)),
               rules = { { name = "r", check = function(r, api) return pcall(string.rep, "x", 2) end } } }
    ]])
    local pol = policy.load(p)
    assert.equal("ab1A1970", pol.name)
    assert.is_true((pol.rules[1].check()))
  end)
end)

describe("files the Lua parser gives up on (found by fuzzing)", function()
  local deep = "return " .. string.rep("(", 300) .. "1" .. string.rep(")", 300) .. "\n"
  it("a policy: the message names the file", function()
    local p = write("deep.lua", deep)
    local err = load_error(p)
    assert.equal(p .. ": ", err:sub(1, #p + 2))
  end)
  it("a check file: the message names the file", function()
    os.execute(("mkdir -p '%s/deep'"):format(tmp))
    local p = tmp .. "/deep/deep.lua"
    local f = assert(io.open(p, "w")); f:write(deep); f:close()
    local ok, err = pcall(checks.load_file, p)
    assert.is_false(ok)
    assert.equal(p .. ": ", tostring(err):sub(1, #p + 2))
  end)
end)

describe("program files others can write", function()
  it("refuses a world-writable or group-writable policy file", function()
    local p = write("open.lua", "return {}\n", "666")
    assert.equal(p .. ": refusing a policy file that everybody can write (mode rw-rw-rw-): "
      .. "make it writable by its owner only (chmod go-w " .. p .. ")", load_error(p))
    p = write("group.lua", "return {}\n", "664")
    assert.matches("refusing a policy file that its group can write %(mode rw%-rw%-r%-%-%)", load_error(p))
    p = write("fine.lua", "return {}\n", "644")
    assert.is_table(policy.load(p))
  end)

  it("refuses a world-writable check file in a checks directory", function()
    os.execute(("mkdir -p '%s/checks'"):format(tmp))
    local p = tmp .. "/checks/extra.lua"
    local f = assert(io.open(p, "w"))
    f:write('return { id = "extra", description = "d", scope = "address", findings = { X_OK = { severity = "ok", message = "m" } }, run = function() end }\n')
    f:close()
    os.execute(("chmod 646 '%s'"):format(p))
    local ok, err = pcall(checks.load, { tmp .. "/checks" })
    assert.is_false(ok)
    assert.equal(p .. ": refusing a check file that everybody can write (mode rw-r--rw-): "
      .. "make it writable by its owner only (chmod go-w " .. p .. ")", tostring(err))
    os.execute(("chmod 644 '%s'"):format(p))
    ok, err = pcall(checks.load, { tmp .. "/checks" })
    assert.is_true(ok, err)
  end)

  teardown(function() os.execute("rm -rf '" .. tmp .. "'") end)
end)
