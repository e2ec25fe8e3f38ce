-- bench/audit.d/expect.lua SUMMARY.json N DEAD LIVE_VERDICT [DEAD_VERDICT DEAD_CODE]:
-- did the run give the answer the internet-shaped lab must give?  N
-- records, DEAD of them DEAD_VERDICT (inconclusive) with DEAD_CODE
-- (CONNECT_ALL_TIMEOUT), the rest LIVE_VERDICT, no error.  Prints "ok", or
-- what is wrong (exit 1): no figure comes from a failed run.
local cjson = require "cjson"
local path, n, dead, live = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4]
local dead_verdict, dead_code = arg[5] or "inconclusive", arg[6] or "CONNECT_ALL_TIMEOUT"
local f = io.open(path)
if not f then print("no summary " .. tostring(path)) os.exit(1) end
local ok, s = pcall(cjson.decode, f:read("a"))
f:close()
if not ok or type(s) ~= "table" then print("the summary is not JSON") os.exit(1) end
local v, c, bad = s.verdicts or {}, s.codes or {}, {}
local function want(what, got, exp)
  if got ~= exp then bad[#bad + 1] = ("%s %s (want %s)"):format(what, tostring(got), tostring(exp)) end
end
want("records", s.records, n)
want("errors", s.errors or 0, 0)
if dead_verdict == live then
    want(live, v[live] or 0, n)
else
    want(dead_verdict, v[dead_verdict] or 0, dead)
    want(live, v[live] or 0, n - dead)
end
want(dead_code, c[dead_code] or 0, dead)
want("MX_DNS_FAIL", c.MX_DNS_FAIL or 0, 0)
if #bad > 0 then print(table.concat(bad, "; ")) os.exit(1) end
print("ok")
