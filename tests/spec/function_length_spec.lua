-- No function in lua/ is longer than 80 lines, unless its first line says
-- why with a `-- long:` comment (issue 9: "no function in lua/ longer than
-- about 80 lines without a reason").  Lengths count every line from
-- `function` to its `end`, nested functions included.
package.path = "tests/helpers/?.lua;" .. package.path
local source = require "lua_source"

local MAX = 80

-- "path:line (N lines)" for every function over MAX without a reason.
local function too_long(path, src)
  local bad = {}
  local fns, _, comments, balanced = source.scan(src)
  assert(balanced, path .. ": the scanner lost track of its blocks")
  for _, f in ipairs(fns) do
    if f.length > MAX and not (comments[f.line] or ""):find("%-%- long:") then
      bad[#bad + 1] = ("%s:%d (%d lines)"):format(path, f.line, f.length)
    end
  end
  return bad
end

describe("function lengths", function()
  it("the measure sees a long function, a nested one, and a reason", function()
    local body = ("    x = x + 1\n"):rep(85)
    local src = "local function short() return 1 end\n"
      .. "local function long()\n  local t = { f = function() end }\n" .. body .. "end\n"
      .. "local function excused() -- long: a table of 85 rows reads best whole\n" .. body .. "end\n"
      .. "local s = [[ function not code ]] -- function in a comment\n"
      .. "local u = ... if u then repeat u = nil until true end\n"
    assert.same({ "x.lua:2 (88 lines)" }, too_long("x.lua", src))
  end)

  it("no function in lua/ is longer than 80 lines without a `-- long:` reason", function()
    local bad = {}
    for _, path in ipairs(source.files("lua")) do
      for _, b in ipairs(too_long(path, source.read(path))) do bad[#bad + 1] = b end
    end
    assert.same({}, bad)
  end)
end)
