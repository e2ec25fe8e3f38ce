-- bench/audit.d/count.lua INPUT OUTPUT: the count check of bench/audit.
-- Reads the input as mxprobe audit does (comments, duplicates, IDN) and the
-- JSON Lines output, and prints one line:
--   in=N out=M missing=A extra=B twice=C addresses=ADDR,ADDR,...
-- (addresses, with WANT_ADDRESSES=1: every server address the records name,
-- sorted, for nmap).
local audit = require "mxprobe.app.audit"
local cjson = require "cjson"
local input, output = arg[1], arg[2]
local entries = assert(audit.read(input))
local todo = audit.select(entries)
local want = {}
for _, e in ipairs(todo) do want[audit.key(e)] = true end
local got, twice, extra, out, addrs = {}, 0, 0, 0, {}
-- A record's own "domain" is the top-level key just before "duration_s"
-- (keys are sorted; nested objects have no "duration_s"): read it without
-- decoding 30 KB of JSON per line, unless the addresses are wanted
-- (WANT_ADDRESSES=1; a line the pattern misses is decoded, never skipped).
local full = os.getenv("WANT_ADDRESSES") == "1"
for line in assert(io.open(output)):lines() do
  local d = not full and line:match('"domain":"([^"]*)","duration_s":')
  if not d then
    local r = cjson.decode(line)
    d = r.domain
    for _, s in ipairs(r.servers or {}) do addrs[s.address] = true end
  end
  out = out + 1
  if got[d] then twice = twice + 1 end
  got[d] = true
  if not want[d] then extra = extra + 1 end
end
local missing = 0
for d in pairs(want) do if not got[d] then missing = missing + 1 end end
local list = {}
for a in pairs(addrs) do list[#list + 1] = a end
table.sort(list)
print(("in=%d out=%d missing=%d extra=%d twice=%d addresses=%s"):format(
  #todo, out, missing, extra, twice, table.concat(list, ",")))
