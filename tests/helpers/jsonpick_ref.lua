-- The reference of core.jsonpick (core/l_jsonpick.c): cjson's value with
-- only the members a spec names (true: the value whole; a table: those
-- keys of an object, of each object over an array; "*": any other key).
-- Shared by tests/spec/jsonpick_spec.lua and fuzz/lua/jsonpick.lua.
local cjson = require "cjson"

local function filter(v, spec)
  if spec == true or type(v) ~= "table" or v == cjson.null then return v end
  local out = {}
  if #v > 0 or next(v) == nil then
    -- an array (or an empty object: the same Lua value)
    local arr = true
    for k in pairs(v) do if math.type(k) ~= "integer" then arr = false end end
    if arr then
      for i, x in ipairs(v) do out[i] = filter(x, spec) end
      return out
    end
  end
  for k, x in pairs(v) do
    local sub = spec[k]
    if sub == nil then sub = spec["*"] end
    if sub ~= nil then out[k] = filter(x, sub) end
  end
  return out
end

return { filter = filter }
