-- fuzz/lua/ehlo.lua: the EHLO extension parser (mxprobe.smtp.extensions)
-- on the lines of a reply made of the input bytes (split at LF, a CR
-- before it dropped, as the reply parser hands them over; the first line
-- is the greeting), and the facts the ehlo check records from it, as the
-- JSON writer puts them into a record.
-- Invariants: every extension kept is one of the reply's lines after the
-- first, verbatim; keywords are upper case letters, digits and '-'; SIZE
-- is absent or a non-negative integer; AUTH mechanisms are upper case
-- words; starttls says whether STARTTLS was offered; missing() is sorted,
-- has every keyword against an empty reply and none against itself; the
-- facts render as one line of JSON that cjson decodes.
package.path = package.path .. ";" .. require("mxprobe.runtime.paths").root .. "/fuzz/lua/?.lua"
local common = require "common"
local extensions = require "mxprobe.smtp.extensions"
local json = require "mxprobe.report.json"
local cjson = require "cjson"
common.disarm()

local inv = common.invariant

return function(bytes)
  local lines = {}
  for line in (bytes .. "\n"):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line:gsub("\r$", "")
    if #lines >= 512 then break end
  end
  local f = extensions.parse(lines)
  local offered = {}
  for i = 2, #lines do offered[lines[i]] = true end
  for _, ext in ipairs(f.extensions) do inv(offered[ext], "extension %q is not a line of the reply", ext) end
  local n = 0
  for kw, params in pairs(f.keywords) do
    n = n + 1
    inv(type(kw) == "string" and kw:match("^[%u%d%-]+$"), "keyword %q is not upper case", tostring(kw))
    inv(type(params) == "string", "keyword %s has %s parameters", kw, type(params))
  end
  inv(n <= #f.extensions, "%d keywords from %d extensions", n, #f.extensions)
  inv(f.size == nil or (math.type(f.size) == "integer" and f.size >= 0),
    "SIZE is %s (%s)", tostring(f.size), math.type(f.size) or type(f.size))
  for _, m in ipairs(f.auth or {}) do
    inv(not m:find("%s") and m == m:upper(), "AUTH mechanism %q", m)
  end
  inv(f.starttls == (f.keywords.STARTTLS ~= nil), "starttls is %s", tostring(f.starttls))
  local all = extensions.missing(f, { keywords = {} })
  inv(#all == n, "missing() against nothing has %d of %d keywords", #all, n)
  for i = 2, #all do inv(all[i - 1] < all[i], "missing() is not sorted") end
  inv(#extensions.missing(f, f) == 0, "missing() against itself is not empty")
  -- the facts as the ehlo check records them (checks/ehlo.lua)
  local line = json.encode({ extensions = f.extensions, keywords = f.keywords, size = f.size, auth = f.auth,
                             starttls = f.starttls })
  inv(not line:find("\n"), "the facts span lines")
  local ok, back = pcall(cjson.decode, line)
  inv(ok and type(back) == "table", "the facts do not decode: %s", tostring(back))
end
