-- fuzz/lua/keyset.lua: core.keyset (core/l_keyset.c) against a Lua table.
-- The input is a list of operations: a byte (its low two bits: add, get,
-- grow, check all), a length byte (0-63) and that many key bytes, a tag
-- byte.  "grow" adds 1,000 keys made from the key, so that the slot table
-- grows with keys of every shape in it.
-- Invariants: get answers what the table holds (a tag, or nil for a key
-- never added), count is the table's size, every key the table holds is
-- found with its last tag, bytes grows with the keys.
package.path = package.path .. ";" .. require("mxprobe.runtime.paths").root .. "/fuzz/lua/?.lua"
local common = require "common"
local core = require "mxprobe.core"
common.disarm()

local inv = common.invariant

return function(bytes)
  local s, ref, n = core.keyset.new(), {}, 0
  local function add(k, tag)
    if ref[k] == nil then n = n + 1 end
    ref[k] = tag
    s:add(k, tag)
  end
  local i = 1
  while i <= #bytes do
    local op = bytes:byte(i) % 4
    local len = (bytes:byte(i + 1) or 0) % 64
    local key = bytes:sub(i + 2, i + 1 + len)
    local tag = bytes:byte(i + 2 + len) or 0
    i = i + 3 + len
    if op == 0 then
      add(key, tag)
    elseif op == 1 then
      inv(s:get(key) == ref[key], "get(%q) is %s, the table says %s", key, tostring(s:get(key)), tostring(ref[key]))
    elseif op == 2 then
      for j = 1, 1000 do add(key .. string.pack("<I2", j), (tag + j) % 256) end
    else
      for k, t in pairs(ref) do inv(s:get(k) == t, "key %q lost its tag %d (%s)", k, t, tostring(s:get(k))) end
    end
    inv(s:count() == n, "count %d, the table has %d", s:count(), n)
  end
  for k, t in pairs(ref) do inv(s:get(k) == t, "key %q lost its tag %d (%s)", k, t, tostring(s:get(k))) end
  inv(s:bytes() >= 0, "bytes is negative")
end
