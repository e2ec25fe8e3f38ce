--- A scripted SMTP server for specs: tasks in the same loop, listening on
-- 127.0.0.1 (or ::1) port 0.  Each accepted connection plays the script:
--
--   "text"                            send text as is
--   { send = "..." }                  send
--   { expect = "^EHLO" }              read a line; it must match (Lua pattern)
--   { read = true }                   read a line, whatever it is
--   { sleep = s }                     pause
--   { drip = "...", interval = s }    send one byte every interval seconds
--   { repeat_send = "...", count = n } send n times (stops when the peer goes)
--   { hold = s }                      keep the connection open, silent
--   { close = true }                  close (FIN)
--   { reset = true }                  close with RST
--   function(conn, server, i)         anything else (conn is a mxprobe.net.socket)
--
--   local fake = dofile("tests/helpers/fake_smtp.lua")
--   local srv = fake.start({ "220 hi\r\n", { expect = "^QUIT" }, "221 bye\r\n" })
--   ... connect to srv.ip, srv.port ...
--   srv:stop()
--
-- Everything is bounded: opts.lifetime (default 10 s) caps the server.
local loop = require "mxprobe.runtime.loop"
local socket = require "mxprobe.net.socket"

local M = {}

local Server = {}
Server.__index = Server

local function note(self, i, msg)
  self.errors[#self.errors + 1] = ("conn %d: %s"):format(i, msg)
end

local function play(self, c, script, i, deadline)
  c:set_deadline(deadline)
  local got = {}
  self.received[i] = got
  local closed = false
  for n, step in ipairs(script) do
    local ok, code, detail = true, nil, nil
    if type(step) == "string" then
      ok, code, detail = c:send(step)
    elseif type(step) == "function" then
      ok, code, detail = step(c, self, i)
      if ok == nil and code == nil then ok = true end
    elseif step.send then
      ok, code, detail = c:send(step.send)
    elseif step.expect or step.read then
      local line
      line, code, detail = c:read_line()
      if line then
        got[#got + 1] = line
        if step.expect and not line:find(step.expect) then
          ok, code, detail = nil, "unexpected", ("step %d: expected %s, got %q"):format(n, step.expect, line)
        end
      else
        ok = nil
      end
    elseif step.sleep or step.hold then
      ok, code, detail = loop.sleep(step.sleep or step.hold)
    elseif step.drip then
      local interval = step.interval or 1
      for k = 1, #step.drip do
        ok, code, detail = c:send(step.drip:sub(k, k))
        if not ok then break end
        if k < #step.drip then
          ok, code, detail = loop.sleep(interval)
          if not ok then break end
        end
      end
    elseif step.repeat_send then
      for _ = 1, step.count or 1 do
        ok, code, detail = c:send(step.repeat_send)
        if not ok then break end
      end
    elseif step.close then
      c:close(); closed = true
    elseif step.reset then
      c:abort(); closed = true
    else
      error("fake_smtp: unknown step " .. n)
    end
    if not ok then
      note(self, i, ("step %d: %s %s"):format(n, tostring(code), tostring(detail)))
      break
    end
    if closed then break end
  end
  if not closed then c:close() end
end

--- Start a server.  opts: ip ("127.0.0.1"), connections (how many to
-- accept, default 1), lifetime (seconds, default 10), backlog.
function M.start(script, opts)
  opts = opts or {}
  local srv = assert(socket.listen(opts.ip or "127.0.0.1", 0, opts.backlog or 511))
  local ip, port = srv:local_addr()
  local self = setmetatable({ ip = ip, port = port, received = {}, errors = {}, served = 0, listener = srv }, Server)
  local deadline = loop.now() + (opts.lifetime or 10)
  self.task = loop.spawn(function()
    local workers = {}
    for i = 1, opts.connections or 1 do
      local c, code, detail = srv:accept(deadline)
      if not c then
        if code ~= "cancelled" then note(self, i, "accept: " .. tostring(code) .. " " .. tostring(detail)) end
        break
      end
      self.served = i
      workers[#workers + 1] = loop.spawn(play, self, c, script, i, deadline)
    end
    srv:close()
    for _, w in ipairs(workers) do loop.join(w) end
  end)
  return self
end

--- Wait until every connection's script has ended (bounded by lifetime).
function Server:wait() return loop.join(self.task) end

--- Stop at once: cancel the tasks, close the listener.
function Server:stop()
  loop.cancel(self.task)
  self.listener:close()
end

return M
