-- fuzz/lua/jsonpick.lua: core.jsonpick (core/l_jsonpick.c), the partial
-- JSON decoder `mxprobe report` reads audit records with, against
-- lua-cjson on the same bytes.
-- Input: byte 0 picks one of the specs below; bytes 1 and 2 cut the text
-- (a start offset and an end trim, so ranges inside a larger text are
-- read); the rest is the JSON text.
-- Invariants: pick never accepts a text cjson refuses, and what it returns
-- is exactly cjson's value with the members outside the spec left out
-- (the contract in l_jsonpick.c's header); pick raises nothing on any
-- text or range.
local root = require("mxprobe.runtime.paths").root
package.path = package.path .. ";" .. root .. "/fuzz/lua/?.lua;" .. root .. "/?.lua"
local common = require "common"
local cjson = require "cjson"
local jp = require("mxprobe.core").jsonpick
common.disarm()

local inv = common.invariant

local SPECS = {
  { domain = true },
  { domain = true, verdict = true, servers = { address = true, facts = { connect = true }, findings = { code = true } } },
  { ["*"] = true },
  { code = {}, facts = { ["*"] = { a = true } } },
  { senders = { domain = { ["*"] = { outcome = true } } }, dns = { mx = { host = true } } },
}
local compiled = {}
for i, s in ipairs(SPECS) do compiled[i] = jp.compile(s) end

-- cjson's value with only the spec's members (the reference of pick)
local filter = require("tests.helpers.jsonpick_ref").filter

local function same(a, b, path)
  if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) ~= "table" or a == cjson.null or b == cjson.null then
    if a == b then return true end
    return false, ("%s: %s vs %s"):format(path, tostring(a), tostring(b))
  end
  for k, x in pairs(a) do
    local ok, why = same(x, b[k], path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) .. ": only in cjson's" end
  end
  return true
end

return function(bytes)
  if #bytes < 3 then return end
  local which = bytes:byte(1) % #SPECS + 1
  local text = bytes:sub(4)
  local i = bytes:byte(2) % 8 + 1
  local j = #text - bytes:byte(3) % 8
  local ok, got = pcall(compiled[which].pick, compiled[which], text, i, j, cjson.null)
  inv(ok, "pick raised: %s", tostring(got))
  if got == nil then return end
  local dok, whole = pcall(cjson.decode, text:sub(i, j))
  inv(dok, "pick accepted a text cjson refuses (%s): %q", tostring(whole), text:sub(i, j):sub(1, 200))
  local eq, why = same(got, filter(whole, SPECS[which]), "$")
  inv(eq, "pick differs from cjson at %s", tostring(why))
end
