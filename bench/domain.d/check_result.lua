-- bench/domain helper: is this --json result the healthy diagnosis the
-- figure is about?  check_result.lua FILE SERVERS VERDICT CODE...
-- Exit 0 and print "ok" when the file is one result with verdict VERDICT,
-- exactly SERVERS servers and every CODE on every server; otherwise exit 1
-- and print what is wrong (a bench must not time a run that failed: a
-- domain that does not resolve is fast, and its ratio is a lie).
local cjson = require "cjson"
local path, want_servers, want_verdict = arg[1], tonumber(arg[2]), arg[3]
local f = io.open(path)
if not f then print("no result file " .. tostring(path)) os.exit(1) end
local text = f:read("a")
f:close()
local ok, r = pcall(cjson.decode, text)
if not ok or type(r) ~= "table" then print("not a JSON result (" .. #text .. " bytes)") os.exit(1) end
local problems = {}
if r.verdict ~= want_verdict then
  problems[#problems + 1] = ("verdict %s (want %s)"):format(tostring(r.verdict), want_verdict)
end
local servers = type(r.servers) == "table" and r.servers or {}
if #servers ~= want_servers then
  problems[#problems + 1] = ("%d servers (want %d)"):format(#servers, want_servers)
end
for _, s in ipairs(servers) do
  local have = {}
  for _, x in ipairs(s.findings or {}) do have[x.code] = true end
  for i = 4, #arg do
    if not have[arg[i]] then
      problems[#problems + 1] = ("%s %s lacks %s"):format(tostring(s.host), tostring(s.address), arg[i])
    end
  end
end
for _, x in ipairs(r.findings or {}) do
  if x.severity == "critical" then problems[#problems + 1] = "domain finding " .. tostring(x.code) end
end
if #problems > 0 then print(table.concat(problems, "; ")) os.exit(1) end
print("ok")
