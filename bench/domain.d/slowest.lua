-- The domain's duration next to its slowest server's probe, from one
-- mxprobe --json record (the last transcript time of each server).
local cjson = require "cjson"
local f = assert(io.open(arg[1]))
local r = cjson.decode(f:read("a"))
f:close()
local slowest = 0
for _, s in ipairs(r.servers) do
  local last = s.transcript[#s.transcript]
  if last and last.t > slowest then slowest = last.t end
end
print(("  inside mxprobe: domain %.1f ms, slowest server's session %.1f ms (%d servers, verdict %s)")
  :format(r.duration_s * 1000, slowest * 1000, #r.servers, r.verdict))
