-- The domain's duration next to its slowest server's probe, from one
-- mxprobe --json record.  A probe can be more than one session (the
-- STARTTLS injection check opens its own); a transcript's times start again
-- at 0 with each "--- new session ---", so a probe's time is the sum of its
-- sessions' last times (the last time alone once reported a 2 ms session
-- for a probe whose relay test waited a second for the server).
local cjson = require "cjson"
local f = assert(io.open(arg[1]))
local r = cjson.decode(f:read("a"))
f:close()
local slowest, sessions_of_slowest = 0, 0
for _, s in ipairs(r.servers) do
  local total, last, sessions = 0, 0, 1
  for _, e in ipairs(s.transcript) do
    if e.dir == "*" and e.text == "--- new session ---" then
      total, last, sessions = total + last, 0, sessions + 1
    elseif type(e.t) == "number" and e.t > last then
      last = e.t
    end
  end
  total = total + last
  if total > slowest then slowest, sessions_of_slowest = total, sessions end
end
print(("  inside mxprobe: domain %.1f ms, slowest server's probe %.1f ms (%d sessions; %d servers, verdict %s)")
  :format(r.duration_s * 1000, slowest * 1000, sessions_of_slowest, #r.servers, r.verdict))
