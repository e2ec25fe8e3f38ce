-- "One way to do each thing" (issue 9, section 3), held by reading the
-- source: checks ask DNS for MX, A/AAAA and PTR through the mxprobe.net.dns
-- helpers; nothing but mxprobe.net.iputil parses IP literals; nothing in
-- lua/ or checks/ runs a shell for file-system or terminal questions.
package.path = "tests/helpers/?.lua;" .. package.path
local source = require "lua_source"

local function sources(roots)
  local out = {}
  for _, root in ipairs(roots) do
    for _, p in ipairs(source.files(root)) do out[#out + 1] = { path = p, text = source.read(p) } end
  end
  return out
end

-- code without comments (usage examples live there)
local function code_of(text) return (text:gsub("%-%-%[(=*)%[.-%]%1%]", ""):gsub("%-%-[^\n]*", "")) end

describe("one way to do each thing", function()
  it("checks look up MX, A, AAAA and PTR with the dns helpers, not raw queries", function()
    local bad = {}
    for _, f in ipairs(sources { "checks" }) do
      for qtype in code_of(f.text):gmatch(":query%([^\n]-,%s*\"(%u+)\"") do
        if qtype == "MX" or qtype == "A" or qtype == "AAAA" or qtype == "PTR" then bad[#bad + 1] = f.path .. ": " .. qtype end
      end
    end
    assert.same({}, bad)
  end)

  it("only mxprobe.net.iputil parses IP address literals", function()
    local bad = {}
    for _, f in ipairs(sources { "lua/mxprobe", "checks" }) do
      if f.path ~= "lua/mxprobe/net/iputil.lua" then
        local code = code_of(f.text)
        if code:find("%%d+)%.(%%d+)%.(%%d+)%.(%%d+)", 1, true) or code:find("is_ipv[46]") then bad[#bad + 1] = f.path end
      end
    end
    assert.same({}, bad)
  end)

  it("no shell: no io.popen or os.execute in lua/ or checks/", function()
    local bad = {}
    for _, f in ipairs(sources { "lua/mxprobe", "checks" }) do
      local code = code_of(f.text)
      if code:find("io.popen", 1, true) or code:find("os.execute", 1, true) then bad[#bad + 1] = f.path end
    end
    assert.same({}, bad)
  end)

  it("one display escaping: report modules print through runtime.escape.for_display", function()
    local text = require "mxprobe.report.text"
    local escape = require "mxprobe.runtime.escape"
    assert.equal(escape.for_display, text.escape)
    local bad = {}
    for _, f in ipairs(sources { "lua/mxprobe" }) do
      if f.path ~= "lua/mxprobe/runtime/escape.lua" and code_of(f.text):find("local function escape_cp", 1, true) then
        bad[#bad + 1] = f.path
      end
    end
    assert.same({}, bad)
  end)
end)
