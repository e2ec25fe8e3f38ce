-- core.jsonpick (core/l_jsonpick.c) against lua-cjson: whatever pick
-- returns must be what cjson.decode returns with the members outside the
-- spec left out, and pick must never take a text cjson refuses (it may
-- refuse more: the caller then asks cjson).  Random documents with every
-- kind of value, escapes, surrogate pairs and odd whitespace, then
-- mutations of them (bytes changed, cut short).
local cjson = require "cjson"
local jp = require("mxprobe.core").jsonpick

-- cjson's value with only the spec's members (the reference of pick)
local filter = require("tests.helpers.jsonpick_ref").filter

local rnd
local function rstring()
  local parts = {}
  for _ = 1, rnd(0, 6) do
    local c = rnd(1, 12)
    if c == 1 then parts[#parts + 1] = "\\\""
    elseif c == 2 then parts[#parts + 1] = "\\\\"
    elseif c == 3 then parts[#parts + 1] = "\\/"
    elseif c == 4 then parts[#parts + 1] = ({ "\\b", "\\f", "\\n", "\\r", "\\t" })[rnd(1, 5)]
    elseif c == 5 then parts[#parts + 1] = ("\\u%04x"):format(rnd(0, 0xD7FF))
    elseif c == 6 then parts[#parts + 1] = "\\ud83d\\ude00" -- a surrogate pair
    elseif c == 7 then parts[#parts + 1] = "é€" -- raw UTF-8
    elseif c == 8 then parts[#parts + 1] = "{[]}:,"
    else parts[#parts + 1] = ({ "domain", "code", "a", "mx", "x y", "" })[rnd(1, 6)] end
  end
  return '"' .. table.concat(parts) .. '"'
end
local KEYS = { '"domain"', '"code"', '"servers"', '"facts"', '"a"', '"b"', '"dom\\u0061in"', '"*"', '""' }
local function ws() return ({ "", "", "", " ", "\t", "\r\n ", "\n" })[rnd(1, 7)] end
local function rvalue(depth)
  local c = rnd(1, depth > 4 and 6 or 9)
  if c == 1 then return rstring()
  elseif c == 2 then return ({ "0", "-0", "12", "-3.25", "1e3", "2.5E-2", "123456789012", "1E+2" })[rnd(1, 8)]
  elseif c == 3 then return "true"
  elseif c == 4 then return "false"
  elseif c == 5 then return "null"
  elseif c == 6 then return rstring()
  elseif c <= 8 then
    local m = {}
    for i = 1, rnd(0, 5) do m[i] = ws() .. KEYS[rnd(1, #KEYS)] .. ws() .. ":" .. ws() .. rvalue(depth + 1) .. ws() end
    return "{" .. table.concat(m, ",") .. ws() .. "}"
  else
    local m = {}
    for i = 1, rnd(0, 5) do m[i] = ws() .. rvalue(depth + 1) .. ws() end
    return "[" .. table.concat(m, ",") .. ws() .. "]"
  end
end

local SPECS = {
  { domain = true },
  { domain = true, servers = { facts = true, code = true }, a = { b = true, ["*"] = { code = true } } },
  { ["*"] = true },
  { code = {}, facts = { ["*"] = { a = true } } },
}

describe("core.jsonpick", function()
  it("returns what cjson returns, less what the spec leaves out, for random documents", function()
    rnd = math.random
    math.randomseed(14)
    local taken = 0
    for n = 1, 3000 do
      local text = ws() .. rvalue(0) .. ws()
      local want = cjson.decode(text)
      for si, s in ipairs(SPECS) do
        local got = jp.compile(s):pick(text, 1, #text, cjson.null)
        assert.is_not_nil(got, "strict JSON refused: " .. text)
        assert.same(filter(want, s), got, ("document %d, spec %d: %s"):format(n, si, text))
        taken = taken + 1
      end
    end
    assert.equal(3000 * #SPECS, taken)
  end)

  it("never takes a text that cjson refuses: mutated and cut documents", function()
    rnd = math.random
    math.randomseed(1414)
    local refused, picked = 0, 0
    local BYTES = { "\"", "\\", "{", "}", "[", "]", ",", ":", "u", "0", "-", ".", "e", "\0", "\31", "n", " ", "x" }
    for _ = 1, 20000 do
      local text = rvalue(0)
      if rnd(1, 2) == 1 and #text > 1 then
        local i = rnd(1, #text)
        text = text:sub(1, i - 1) .. BYTES[rnd(1, #BYTES)] .. text:sub(i + 1)
      else
        text = text:sub(1, rnd(0, #text))
      end
      local ok, want = pcall(cjson.decode, text)
      local s = SPECS[rnd(1, #SPECS)]
      local got = jp.compile(s):pick(text, 1, #text, cjson.null)
      if got ~= nil then
        picked = picked + 1
        assert.is_true(ok, "taken, but cjson refuses it: " .. text)
        assert.same(filter(want, s), got, text)
      else
        refused = refused + 1
      end
    end
    assert.truthy(refused > 1000 and picked > 1000, ("refused %d, picked %d"):format(refused, picked))
  end)

  it("reads the range it is given, and refuses what cjson takes beyond strict JSON", function()
    local p = jp.compile { a = true }
    local text = 'xx{"a":1,"b":[2]}  \n{"a":2}'
    assert.same({ a = 1 }, p:pick(text, 3, 19, cjson.null))
    assert.same({ a = 2 }, p:pick(text, 21, #text, cjson.null))
    assert.is_nil(p:pick(text, 3, 10, cjson.null)) -- cut short
    assert.is_nil(p:pick('{"a":1} x', 1, 9, cjson.null)) -- not only whitespace after it
    assert.equal(cjson.null, jp.compile({ a = true }):pick('{"a":null}', 1, 10, cjson.null).a)
    -- cjson takes these; pick leaves them to it
    for _, t in ipairs { '{"a":"tab\there"}', '{"a":NaN}', '{"a":0x10}', '{"a":"\\ud800"}', ('['):rep(100) .. (']'):rep(100) } do
      assert.is_nil(p:pick(t, 1, #t, cjson.null), t)
    end
    -- numbers are floats, as cjson makes them
    assert.equal("float", math.type(p:pick('{"a":10}', 1, 8, cjson.null).a))
    -- a key with escapes is compared decoded; the last of two keys counts
    assert.same({ a = 3 }, p:pick('{"\\u0061":2,"b":1,"a":3}', 1, 24, cjson.null))
  end)

  it("refuses a spec it cannot use, with a message", function()
    assert.has_error(function() jp.compile { a = 1 } end, "jsonpick: spec value of 'a' is neither true nor a table")
    assert.has_error(function() jp.compile { [1] = true } end, "jsonpick: a spec key is not a string")
    assert.has_error(function() jp.compile { a = false } end, "jsonpick: spec value of 'a' is neither true nor a table")
  end)
end)
