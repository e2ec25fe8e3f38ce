-- fuzz/lua/writers.lua: the JSON and CSV writers (mxprobe.report.json,
-- mxprobe.report.csv) on values built from the input bytes: nested tables
-- (arrays, objects, the array/object markers, empty ones under array keys),
-- strings of arbitrary bytes, integers, floats (NaN and infinities
-- included), booleans, functions.
-- Invariants: json.render gives one line that cjson decodes, in which every
-- string is valid UTF-8; csv.render gives exactly one line; a CSV field
-- reads back (csv.parse_line) as the text json.valid_utf8 makes of it
-- (CR and LF as spaces); valid_utf8 returns valid UTF-8 and leaves valid
-- UTF-8 unchanged.
package.path = package.path .. ";" .. require("mxprobe.runtime.paths").root .. "/fuzz/lua/?.lua"
local common = require "common"
local json = require "mxprobe.report.json"
local csv = require "mxprobe.report.csv"
local cjson = require "cjson"
common.disarm()

local KEYS = { "domain", "verdict", "findings", "servers", "mx", "code", "text", "evidence", "addresses",
               "transcript", "1", "x", "", "\255", "a\0b" }

-- a reader of the input: byte(), take(n)
local function reader(s)
  local i = 1
  local r = {}
  function r.byte() local b = s:byte(i) or 0; i = i + 1; return b end
  function r.take(n) local t = s:sub(i, i + n - 1); i = i + n; return t end
  function r.left() return #s - i + 1 end
  return r
end

local function build(r, depth)
  local b = r.byte()
  local kind = b % 9
  if r.left() <= 0 then kind = 0 end
  if kind == 0 then return r.take(b % 24) end
  if kind == 1 then return (b * 7919) - 100000 end
  if kind == 2 then
    local f = { 0 / 0, math.huge, -math.huge, 0.1, -0.0, 2 ^ 53, 1e308, 5e-324 }
    return f[b % #f + 1]
  end
  if kind == 3 then return b % 2 == 0 end
  if kind == 4 then return function() end end
  if depth > 6 then return r.take(3) end
  local t = {}
  if kind == 5 or kind == 6 then -- an array, maybe marked
    for n = 1, r.byte() % 5 do t[n] = build(r, depth + 1) end
    if kind == 6 then json.array(t) end
  else -- an object
    for _ = 1, r.byte() % 5 do
      local k = r.byte() % 3 == 0 and r.take(r.byte() % 6) or KEYS[r.byte() % #KEYS + 1]
      t[k] = build(r, depth + 1)
    end
    if kind == 8 then json.object(t) end
  end
  return t
end

local function all_strings_utf8(v, depth)
  if type(v) == "string" then return utf8.len(v) ~= nil end
  if type(v) == "table" and depth < 100 then
    for k, x in pairs(v) do
      if not all_strings_utf8(k, depth + 1) or not all_strings_utf8(x, depth + 1) then return false end
    end
  end
  return true
end

return function(bytes)
  local r = reader(bytes)
  local v = build(r, 0)
  local result = type(v) == "table" and v or { domain = v }

  local ok, out = pcall(json.render, result)
  common.invariant(ok, "json.render raised: %s", tostring(out))
  common.invariant(out:sub(-1) == "\n" and not out:sub(1, -2):find("\n"), "json.render is not one line")
  local dok, back = pcall(cjson.decode, out)
  common.invariant(dok, "cjson cannot decode json.render's output: %s", tostring(back))
  common.invariant(all_strings_utf8(back, 0), "a decoded JSON string is not UTF-8")

  local cok, line = pcall(csv.render, result)
  common.invariant(cok, "csv.render raised: %s", tostring(line))
  common.invariant(line:sub(-1) == "\n" and not line:sub(1, -2):find("[\r\n]"), "csv.render is not one line")

  for _, s in ipairs { bytes, type(v) == "string" and v or "" } do
    local u = json.valid_utf8(s)
    common.invariant(utf8.len(u) ~= nil, "valid_utf8 gave invalid UTF-8")
    if utf8.len(s) then common.invariant(u == s, "valid_utf8 changed valid UTF-8") end
    local field = csv.field(s)
    local parsed = csv.parse_line(field .. "\n")
    common.invariant(#parsed == 1 and parsed[1] == (u:gsub("[\r\n]", " ")),
      "csv.field does not read back: %q -> %q", s:sub(1, 80), field:sub(1, 80))
  end
end
