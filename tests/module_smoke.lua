-- Run by a stock lua5.4 (not the mxprobe host): the C module and the Lua
-- engine load as ordinary modules, the loop runs, the checks are found.
local core = require "mxprobe.core"
assert(type(core.version) == "string", "core.version")
for _, t in ipairs { "loop", "net", "smtp", "dns", "tls", "x509" } do
  assert(type(core[t]) == "table", "core." .. t .. " missing")
end
local loop = require "mxprobe.runtime.loop"
local socket = require "mxprobe.net.socket"
local engine = require "mxprobe.engine"
local n = loop.run(function()
  local srv = assert(socket.listen("127.0.0.1", 0))
  local _, port = srv:local_addr()
  local t = loop.spawn(function()
    local c = assert(srv:accept(loop.now() + 2))
    assert(c:send("hello\r\n"))
    c:close()
  end)
  local s = assert(socket.connect("127.0.0.1", port, { timeout = 2 }))
  assert(s:read_line() == "hello")
  s:close()
  loop.join(t)
  srv:close()
  return #engine.new({ dns = {} }).checks
end)
assert(n >= 8, "checks loaded: " .. tostring(n))
print(("module smoke test: core %s, %d checks, loop and sockets work"):format(core.version, n))
