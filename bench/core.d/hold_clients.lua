-- bench/core.d/hold_clients.lua N PORTFILE : open N connections to the
-- listeners named in PORTFILE, read each greeting, and keep every
-- connection open in its own task waiting for the next line; then print
-- the connect rate and the memory per held connection.  Runs inside mxprobe.
local loop = require "mxprobe.runtime.loop"
local socket = require "mxprobe.net.socket"

local n = tonumber(arg[1])
local targets = {}
for line in io.lines(arg[2]) do
  local a, p = line:match("^(%S+) (%d+)$")
  if a then targets[#targets + 1] = { a, tonumber(p) } end
end

local function status(key)
  for line in io.lines("/proc/self/status") do
    local v = line:match("^" .. key .. ":%s+(%d+) kB")
    if v then return tonumber(v) end
  end
end

collectgarbage()
local rss0, hwm0 = status("VmRSS"), status("VmHWM")
local sem = loop.semaphore(512)   -- connects in flight (the listen backlog is 4096)
local connected, failed, greeted = 0, {}, 0
local release = false
local t0 = loop.now()
local tasks = {}
for i = 1, n do
  tasks[i] = loop.spawn(function()
    sem:acquire()
    local tgt = targets[(i - 1) % #targets + 1]
    local s, code = socket.connect(tgt[1], tgt[2], { timeout = 20 })
    sem:release()
    if not s then failed[code] = (failed[code] or 0) + 1; return end
    connected = connected + 1
    local r = s:receive_reply(nil, loop.now() + 30)
    if r and r.code == 220 then greeted = greeted + 1 end
    -- hold: wait for a line that never comes, until released
    s:read_line(loop.now() + 120)
    s:close()
  end)
end
-- wait until every task holds its connection (bounded)
local until_ = loop.now() + 90
while greeted + (function() local k = 0 for _, v in pairs(failed) do k = k + v end return k end)() < n
  and loop.now() < until_ do
  loop.sleep(0.05)
end
local t_all = loop.now() - t0
collectgarbage(); collectgarbage()
local rss1, hwm1 = status("VmRSS"), status("VmHWM")
local fails = {}
for k, v in pairs(failed) do fails[#fails + 1] = k .. "=" .. v end
print(("  held:        %d connections open (%d greeted), failed: %s"):format(connected, greeted,
  #fails > 0 and table.concat(fails, " ") or "none"))
print(("  setup:       %.2f s for all, %.0f connections/s (connect + 220 greeting)"):format(t_all, connected / t_all))
print(("  memory:      RSS %d KiB before, %d KiB holding them (VmHWM peak %d KiB)"):format(rss0, rss1, hwm1))
print(("  per conn:    %.2f KiB RSS per held connection (user space: task, socket object, buffers; kernel socket memory not included)")
  :format((rss1 - rss0) / math.max(1, connected)))
print(("  lua heap:    %.0f KiB (%.2f KiB per connection)"):format(collectgarbage("count"),
  collectgarbage("count") / math.max(1, connected)))
os.exit(0, false) -- the tasks' sockets die with the process; no need to unwind 10k tasks
