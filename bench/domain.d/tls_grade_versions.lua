-- bench/domain helper: the TLS versions the tls_offer check found in a
-- --json result file, one line "TLSv1 TLSv1.1 ..." (empty when none, exit 1
-- when the check did not run or the file is not a result).
local cjson = require "cjson"
local f = assert(io.open(arg[1]))
local ok, r = pcall(cjson.decode, f:read("a"))
f:close()
if not ok or type(r) ~= "table" then io.stderr:write("not a JSON result\n") os.exit(1) end
local res = r.results and r.results[1] or r
for _, s in ipairs(res.servers or {}) do
  local o = s.facts and s.facts.tls_offer
  if o and o.versions then print(table.concat(o.versions, " ")) os.exit(0) end
end
io.stderr:write("no tls_offer facts in the result\n")
os.exit(1)
