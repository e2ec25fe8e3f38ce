-- bench/core.d/hold_server.lua N PORTFILE ADDR... : accept N connections on
-- each ADDR (port 0, the ports written to PORTFILE as "addr port" lines),
-- greet each with a 220 line and hold them, silent, until the process is
-- stopped or LIFETIME (300 s) passes.  Runs inside mxprobe.
local loop = require "mxprobe.runtime.loop"
local net = require("mxprobe.core").net

local n = tonumber(arg[1])
local portfile = arg[2]
local addrs = { table.unpack(arg, 3) }
local LIFETIME = 300
local deadline = loop.now() + LIFETIME
local held, accepted = {}, 0
local lines, tasks = {}, {}
for i, a in ipairs(addrs) do
  local l = assert(net.listen(a, 0, 4096))
  local _, port = l:local_addr()
  lines[#lines + 1] = a .. " " .. port
  tasks[i] = loop.spawn(function()
    while accepted < n do
      local c, code, ev = l:accept()
      if c then
        accepted = accepted + 1
        held[#held + 1] = c
        c:send("220 bench.lab.test ESMTP\r\n")
      elseif code == "again" then
        if not loop.wait(l, ev, deadline) then return end
      else
        io.stderr:write("hold_server: accept: ", tostring(code), "\n")
        loop.sleep(0.01)
      end
    end
  end)
end
local f = assert(io.open(portfile .. ".tmp", "w"))
f:write(table.concat(lines, "\n"), "\n")
f:close()
os.rename(portfile .. ".tmp", portfile)
for _, t in ipairs(tasks) do loop.join(t) end
loop.sleep(math.max(0, deadline - loop.now()))
