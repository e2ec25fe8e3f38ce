-- The whiteboard: the folders of lua/mxprobe/ are layers, and a module may
-- require only its own layer or a lower one (docs/design.md, "Layers").
-- The stock checks sit beside the engine: they may use the runtime, the
-- network and SMTP layers, never the engine, the policy, reports or the app.
-- No module may be part of a require cycle, lazy or not.  A lazy require
-- (one inside a function, not at the top level of its file) says why on
-- the line before it, in a comment starting "-- lazy:".
package.path = "tests/helpers/?.lua;" .. package.path
local source = require "lua_source"

local LAYERS = { runtime = 1, net = 2, smtp = 3, policy = 4, engine = 5, report = 6, app = 7 }
local CHECKS_MAY_USE = { runtime = true, net = true, smtp = true }

local function read(path)
    local f = assert(io.open(path))
    local s = f:read("a")
    f:close()
    return s
end

-- Every require of a mxprobe module in a source text, lazy or not
-- (comments, where usage examples live, are left out).
local function requires_of(src)
    local out = {}
    src = src:gsub("%-%-%[(=*)%[.-%]%1%]", ""):gsub("%-%-[^\n]*", "")
    for _, pat in ipairs { "require%s*%(?%s*\"(mxprobe[%w_.]*)\"", "require%s*%(?%s*'(mxprobe[%w_.]*)'" } do
        for name in src:gmatch(pat) do out[#out + 1] = name end
    end
    return out
end

local function layer_of(module)
    if module == "mxprobe.core" then return 0, "core" end
    local folder = module:match("^mxprobe%.([%w_]+)")
    return LAYERS[folder], folder
end

-- The graph: module name -> list of required module names, for every Lua
-- file under lua/mxprobe (module names from paths) and checks/.
local function graph()
    local g, files = {}, {}
    local p = io.popen("find lua/mxprobe checks -name '*.lua' | sort") -- test-only: the tree is ours
    for path in p:lines() do files[#files + 1] = path end
    p:close()
    for _, path in ipairs(files) do
        local name
        if path:match("^checks/") then
            name = "checks:" .. path
        else
            name = path:gsub("^lua/", ""):gsub("/init%.lua$", ""):gsub("%.lua$", ""):gsub("/", ".")
        end
        g[name] = requires_of(read(path))
    end
    return g
end

-- Upward edges: a list of "A requires B (layer X above layer Y)".
local function violations(g)
    local bad = {}
    for from, reqs in pairs(g) do
        for _, to in ipairs(reqs) do
            local lt, ft = layer_of(to)
            if from:match("^checks:") then
                if to ~= "mxprobe.core" and not CHECKS_MAY_USE[ft] then
                    bad[#bad + 1] = ("%s requires %s (checks may use runtime, net and smtp only)"):format(from, to)
                end
            else
                local lf, ff = layer_of(from)
                if not lt then
                    bad[#bad + 1] = ("%s requires %s, which is in no layer"):format(from, to)
                elseif lf and lt > lf then
                    bad[#bad + 1] = ("%s (layer %s) requires %s (layer %s, higher)"):format(from, ff, to, ft)
                end
            end
        end
    end
    table.sort(bad)
    return bad
end

-- Cycles, as "a -> b -> a" strings.
local function cycles(g)
    local found, state, stack = {}, {}, {}
    local function visit(n)
        state[n] = "open"
        stack[#stack + 1] = n
        for _, m in ipairs(g[n] or {}) do
            if state[m] == "open" then
                local i = #stack
                while stack[i] ~= m do i = i - 1 end
                local c = {}
                for k = i, #stack do c[#c + 1] = stack[k] end
                c[#c + 1] = m
                found[#found + 1] = table.concat(c, " -> ")
            elseif not state[m] and g[m] then
                visit(m)
            end
        end
        stack[#stack] = nil
        state[n] = "done"
    end
    local names = {}
    for n in pairs(g) do names[#names + 1] = n end
    table.sort(names)
    for _, n in ipairs(names) do if not state[n] then visit(n) end end
    return found
end

-- "path:line" of every lazy require without a "-- lazy:" reason on the line before.
local function unexplained_lazy(path, src)
  local bad = {}
  local _, lazy, comments = source.scan(src)
  for _, l in ipairs(lazy) do
    if not (comments[l.line - 1] or ""):find("%-%- lazy:") then bad[#bad + 1] = ("%s:%d"):format(path, l.line) end
  end
  return bad
end

describe("layers", function()
  it("the checker sees a lazy require without a reason, and not one with a reason", function()
    local src = 'local top = require "mxprobe.net.dns"\n'
      .. "local function f()\n  return require('mxprobe.engine')\nend\n"
      .. "local function g()\n  -- lazy: only --list-checks needs it\n  return require('mxprobe.engine')\nend\n"
      .. "local function h() return pcall(require, 'x') end\n"
      .. "local t = { require = 1 }; local function k() return t.require end\n"
    assert.same({ "x.lua:3", "x.lua:9" }, unexplained_lazy("x.lua", src))
  end)

  it("every lazy require says why on the line before (-- lazy: ...)", function()
    local bad = {}
    for _, root in ipairs { "lua/mxprobe", "checks" } do
      for _, path in ipairs(source.files(root)) do
        for _, b in ipairs(unexplained_lazy(path, source.read(path))) do bad[#bad + 1] = b end
      end
    end
    assert.same({}, bad)
  end)

    it("the checker itself sees an upward edge and a cycle", function()
        local g = {
            ["mxprobe.net.dns"] = { "mxprobe.engine" },
            ["mxprobe.engine"] = { "mxprobe.net.dns" },
            ["checks:checks/x.lua"] = { "mxprobe.policy" },
        }
        assert.same({
            "checks:checks/x.lua requires mxprobe.policy (checks may use runtime, net and smtp only)",
            "mxprobe.net.dns (layer net) requires mxprobe.engine (layer engine, higher)",
        }, violations(g))
        assert.same({ "mxprobe.engine -> mxprobe.net.dns -> mxprobe.engine" }, cycles(g))
    end)

    it("every module is in a layer folder", function()
        for name in pairs(graph()) do
            if not name:match("^checks:") then
                assert.is_truthy(layer_of(name), name .. " is not under a layer folder of lua/mxprobe")
            end
        end
    end)

    it("no module requires a higher layer", function()
        assert.same({}, violations(graph()))
    end)

    it("no require cycles", function()
        assert.same({}, cycles(graph()))
    end)
end)
