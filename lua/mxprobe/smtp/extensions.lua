--- mxprobe.smtp.extensions: parse the lines of an EHLO reply (RFC 5321 4.1.1.1):
-- the first line greets, each further line is "KEYWORD params".
local M = {}

function M.parse(lines)
  local f = { extensions = {}, keywords = {} }
  for i = 2, #lines do
    local ext = lines[i]
    local kw, params = ext:match("^([%w%-]+)%s*(.*)$")
    if kw then
      kw = kw:upper()
      f.extensions[#f.extensions + 1] = ext
      f.keywords[kw] = params
      -- a SIZE too large for an integer (more than 18 digits) is no limit
      -- we can state: the keyword stays, the number is left out (a float
      -- would print as 1e+20 in the record)
      if kw == "SIZE" then
        local digits = params:match("^0*(%d+)")
        f.size = digits and #digits <= 18 and math.tointeger(tonumber(digits)) or nil
      end
      if kw == "AUTH" then
        f.auth = {}
        for m in params:gmatch("%S+") do f.auth[#f.auth + 1] = m:upper() end
      end
    end
  end
  f.starttls = f.keywords.STARTTLS ~= nil
  return f
end

--- Keywords in a but not in b (sorted).
function M.missing(a, b)
  local out = {}
  for kw in pairs(a.keywords) do if b.keywords[kw] == nil then out[#out + 1] = kw end end
  table.sort(out)
  return out
end

return M
