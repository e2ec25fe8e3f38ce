--- mxprobe.net.socket: cosockets over core.net.
--
-- Names: where a name is OpenResty's or LuaSocket's, it means what it
-- means there; where our meaning differs, the name is our own.
--   connect, send, close, getfd, listen, accept  as there, except that
--     a deadline (absolute) may follow the usual arguments and errors are
--     nil, code, detail (code: "timeout", "closed", "refused", ...)
--   read_line, read_bytes  not OpenResty's receive: data a failed read got
--     stays in the buffer (OpenResty hands it back as `partial` and drops it)
--   tls_handshake(opts)  not sslhandshake(reused_session, server_name,
--     verify): one options table, and it returns the TLS info table
--   set_deadline  our own: one absolute deadline for every later operation
--     (OpenResty's settimeouts takes milliseconds per operation; there is
--     no equivalent here, so there is no such name)
--
-- Each method loops over a one-step C binding and parks the task with
-- loop.wait(sock, events, deadline) when it answers nil, "again", events.
-- Outcomes are value | nil, code, detail; misuse raises naming the function.
--
-- Deadlines are absolute (loop.now() + seconds).  set_deadline(abs) bounds
-- every later operation on the socket (a per-phase deadline: a server that
-- drips one byte per second cannot hold a session past it); each operation
-- also takes an optional deadline of its own, and the task's deadline (see
-- loop.set_deadline) applies as well.  The earliest one wins.
--
--   local s, code, detail = socket.connect("192.0.2.10", 25, { timeout = 10 })
--   s:set_deadline(loop.now() + 30)
--   local line = s:read_line()
--   s:send("EHLO probe.example\r\n")
--   local reply = s:receive_reply()        -- { code=, lines=, text=, enhanced=, raw= }
local loop = require "mxprobe.runtime.loop"
local core = require "mxprobe.core"
local tls = require "mxprobe.net.tls"
local net, csmtp = core.net, core.smtp

local M = {}

local Socket = {}
Socket.__index = Socket
Socket.__name = "mxprobe.net.socket"

local Server = {}
Server.__index = Server
Server.__name = "mxprobe.server"

local DEFAULT_LINE_MAX = 4096

local function argerr(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

-- I/O where Lua cannot yield (require, table.sort, gsub callbacks,
-- metamethods) is a bug in the check; say so even when no wait is needed.
local function check_io(fname)
  if not loop.current() then
    error(("%s: not inside a task (wrap the code in loop.run or loop.spawn)"):format(fname), 3)
  end
  if not coroutine.isyieldable() then
    error(("%s: cannot do I/O here (inside require, a metamethod, or a C function such as "
      .. "table.sort or string.gsub); do I/O from the check's run function"):format(fname), 3)
  end
end

local function check_self(self, fname)
  if getmetatable(self) ~= Socket then
    error(("bad argument #1 to '%s' (mxprobe.net.socket expected, got %s; call it as sock:%s(...))")
      :format(fname, type(self), fname), 3)
  end
end

local function check_deadline(d, n, fname)
  if d ~= nil and type(d) ~= "number" then
    argerr(n, fname, "absolute deadline (number) or nil expected, got " .. type(d))
  end
end

local function earliest(a, b)
  if a == nil then return b end
  if b == nil then return a end
  return a < b and a or b
end

local function label(ip, port)
  if ip and ip:find(":", 1, true) then return ("[%s]:%d"):format(ip, port) end
  return ("%s:%s"):format(tostring(ip), tostring(port))
end

-- Park until events on raw, or return nil, code, detail naming the operation.
local function wait(raw, events, deadline, what)
  local ok, code, detail = loop.wait(raw, events, deadline)
  if ok then return true end
  if code == "timeout" then
    return nil, "timeout", ("%s: %s"):format(what, detail or "the deadline passed")
  end
  return nil, code, detail
end

local function wrap(raw, extra)
  local self = setmetatable({ _sock = raw, _deadline = nil, _line_max = DEFAULT_LINE_MAX, _phases = {} }, Socket)
  if extra then for k, v in pairs(extra) do self[k] = v end end
  return self
end

--- Connect to a numeric address.
-- opts: deadline (absolute) or timeout (seconds) for the connect;
--       limit (input buffer cap, bytes), line_max (read_line cap),
--       source (a local address to connect from).
-- @return socket | nil, code, detail  (refused, unreachable, timeout, reset, limit, ...)
function M.connect(ip, port, opts)
  if type(ip) ~= "string" then argerr(1, "connect", "numeric IPv4 or IPv6 address expected, got " .. type(ip)) end
  if math.type(port) ~= "integer" then argerr(2, "connect", "port number expected, got " .. (math.type(port) or type(port))) end
  if opts ~= nil and type(opts) ~= "table" then argerr(3, "connect", "options table or nil expected, got " .. type(opts)) end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "deadline" and k ~= "timeout" and k ~= "limit" and k ~= "line_max" and k ~= "source" then
      argerr(3, "connect", "unknown option " .. tostring(k))
    end
  end
  check_deadline(opts.deadline, 3, "connect")
  if opts.timeout ~= nil and type(opts.timeout) ~= "number" then argerr(3, "connect", "timeout must be seconds") end
  check_io("connect")
  local deadline = opts.deadline
  if opts.timeout then deadline = earliest(deadline, loop.now() + opts.timeout) end
  local t0 = loop.now()
  if opts.source ~= nil and type(opts.source) ~= "string" then argerr(3, "connect", "source must be a numeric address") end
  -- source: bind this local address first (--source); nil, "source", detail when it cannot be
  local raw, code, detail = net.connect(ip, port, opts.source) -- raises on a name instead of an address
  if not raw then return nil, code, detail end
  while true do
    local ok, c, d = raw:connect_result()
    if ok then break end
    if c ~= "again" then raw:close(); return nil, c, d end
    local w, wc, wd = loop.wait(raw, d, deadline)
    if not w then
      raw:close()
      if wc == "timeout" then
        return nil, "timeout", ("connect to %s: no answer within %.3f s (%s)"):format(label(ip, port), loop.now() - t0, wd)
      end
      return nil, wc, wd
    end
  end
  local self = wrap(raw)
  self._phases.connect = loop.now() - t0
  if opts.limit then raw:set_limit(opts.limit) end
  if opts.line_max then self._line_max = opts.line_max end
  return self
end

--- Wrap a raw core.net socket (an accepted one, say).
function M.wrap(raw)
  if getmetatable(raw) == nil or type(raw) ~= "userdata" then argerr(1, "wrap", "core.net socket expected") end
  return wrap(raw)
end

--- A deadline for every later operation (absolute; nil removes it).
function Socket:set_deadline(deadline)
  check_self(self, "set_deadline")
  check_deadline(deadline, 1, "set_deadline")
  self._deadline = deadline
  return true
end

function Socket:_dl(explicit)
  return earliest(self._deadline, explicit)
end

--- Send all of data.
-- @return bytes sent | nil, code, detail
function Socket:send(data, deadline)
  check_self(self, "send")
  if type(data) ~= "string" then argerr(1, "send", "string expected, got " .. type(data)) end
  check_deadline(deadline, 2, "send")
  check_io("send")
  local raw = self._sock
  local dl = self:_dl(deadline)
  local i, n = 1, #data
  while i <= n do
    local sent, code, detail = raw:send(data, i)
    if sent then
      i = i + sent
    elseif code == "again" then
      local ok, c, d = wait(raw, detail, dl, ("send (%d of %d bytes sent)"):format(i - 1, n))
      if not ok then return nil, c, d end
    else
      return nil, code, detail
    end
  end
  return n
end

-- Drive a one-step reader until it yields a value.
local function read_loop(self, what, dl, step, ...)
  local raw = self._sock
  while true do
    local v, code, detail = step(raw, ...)
    if v ~= nil then return v end
    if code ~= "again" then return nil, code, detail end
    local ok, c, d = wait(raw, detail, dl, ("%s (%d bytes buffered)"):format(what, raw:buffered()))
    if not ok then return nil, c, d end
  end
end

--- One line, without its CRLF (or bare LF), at most line_max bytes.
-- @return line | nil, code, detail ("closed": detail holds the partial
--   line; "limit": the line is longer than line_max)
function Socket:read_line(deadline)
  check_self(self, "read_line")
  check_deadline(deadline, 1, "read_line")
  check_io("read_line")
  return read_loop(self, "read a line", self:_dl(deadline), self._sock.read_line, self._line_max)
end

--- Exactly n bytes.
-- @return data | nil, code, detail ("closed": detail holds what came)
function Socket:read_bytes(n, deadline)
  check_self(self, "read_bytes")
  if math.type(n) ~= "integer" or n < 0 then
    argerr(1, "read_bytes", "a byte count expected, got " .. tostring(n))
  end
  check_deadline(deadline, 2, "read_bytes")
  check_io("read_bytes")
  return read_loop(self, ("read %d bytes"):format(n), self:_dl(deadline), self._sock.read_bytes, n)
end

--- Read one complete SMTP reply (multi-line aware, capped).
-- limits = { max_line=4096, max_lines=100, max_bytes=65536 }
-- @return { code=, lines=, text=, enhanced=, raw= } | nil, code, detail
function Socket:receive_reply(limits, deadline)
  check_self(self, "receive_reply")
  if limits ~= nil and type(limits) ~= "table" then argerr(1, "receive_reply", "limits table or nil expected, got " .. type(limits)) end
  check_deadline(deadline, 2, "receive_reply")
  check_io("receive_reply")
  return read_loop(self, "receive a reply", self:_dl(deadline), csmtp.read_reply, limits)
end

--- STARTTLS: delegate to mxprobe.net.tls, which swaps the socket's io to TLS.
-- @return tls info | nil, code, detail[, injected]
function Socket:tls_handshake(opts, deadline)
  check_self(self, "tls_handshake")
  check_deadline(deadline, 2, "tls_handshake")
  check_io("tls_handshake")
  local t0 = loop.now()
  -- every value passes through (for "injection" a 4th carries the bytes)
  local r = table.pack(tls.handshake(self._sock, opts, self:_dl(deadline)))
  self._phases.tls = loop.now() - t0
  return table.unpack(r, 1, r.n)
end

--- The negotiated TLS session, to offer to this server again (mxprobe.net.tls).
-- @return session | nil, code, detail
function Socket:tls_session()
  check_self(self, "tls_session")
  if not tls.is_tls(self._sock) then return nil, "tls", "the socket does not speak TLS" end
  return tls.session(self._sock)
end

function Socket:close()
  check_self(self, "close")
  self._sock:close()
  return true
end
Socket.__close = Socket.close

--- Close with a TCP RST (for test servers simulating a crash or reset).
function Socket:abort()
  check_self(self, "abort")
  self._sock:abort()
  return true
end

function Socket:getfd() return self._sock:getfd() end
function Socket:peer() return self._sock:peer() end
function Socket:local_addr() return self._sock:local_addr() end
function Socket:buffered() return self._sock:buffered() end
function Socket:take_buffered() return self._sock:take_buffered() end
function Socket:set_limit(n) return self._sock:set_limit(n) end
function Socket:raw() return self._sock end
function Socket:__tostring() return "mxprobe.net.socket " .. tostring(self._sock) end

--- Timings and counters: { created=, connected=, connect= (seconds the
-- connect took), tls= (handshake seconds, once done), bytes_in=, bytes_out= }
function Socket:timings()
  check_self(self, "timings")
  local created, connected, bin, bout = self._sock:timings()
  local t = { created = created, connected = connected, bytes_in = bin, bytes_out = bout }
  for k, v in pairs(self._phases) do t[k] = v end
  return t
end

--- Record the duration of a phase of your own (ehlo, starttls...).
function Socket:mark(phase, seconds)
  self._phases[phase] = seconds
end

---------------------------------------------------------------------------
-- Servers, for in-loop test servers.

--- socket.listen(ip, port, backlog) -> server | nil, code, detail.  Port 0: ephemeral.
function M.listen(ip, port, backlog)
  if type(ip) ~= "string" then argerr(1, "listen", "numeric IPv4 or IPv6 address expected, got " .. type(ip)) end
  if math.type(port) ~= "integer" then argerr(2, "listen", "port number expected, got " .. (math.type(port) or type(port))) end
  local raw, code, detail = net.listen(ip, port, backlog)
  if not raw then return nil, code, detail end
  return setmetatable({ _sock = raw }, Server)
end

--- server:accept(deadline) -> socket | nil, code, detail
function Server:accept(deadline)
  if getmetatable(self) ~= Server then argerr(1, "accept", "server expected") end
  check_deadline(deadline, 1, "accept")
  check_io("accept")
  local raw = self._sock
  while true do
    local c, code, detail = raw:accept()
    if c then return wrap(c) end
    if code ~= "again" then return nil, code, detail end
    local ok, wc, wd = wait(raw, detail, deadline, "accept")
    if not ok then return nil, wc, wd end
  end
end

function Server:local_addr() return self._sock:local_addr() end
function Server:getfd() return self._sock:getfd() end
function Server:close() self._sock:close(); return true end
Server.__close = Server.close

return M
