--- mxprobe.smtp: a small SMTP client session over mxprobe.socket.
--
--   local smtp = require "mxprobe.smtp"
--   local s, code, detail = smtp.session("192.0.2.10", 25, { greeting_timeout = 30 })
--   if s then
--     print(s.greeting.code, s.greeting.text)
--     local r = s:command("EHLO probe.example.org")
--     s:close()            -- QUIT (bounded), then close
--   end
--
-- The session reads the complete greeting (possibly multi-line 220-) before
-- it returns, so nothing is ever sent before the greeting (postscreen drops
-- early talkers).  Every command is a phase with its own deadline.  The
-- transcript records each line sent and received, escaped for display:
--   { dir = ">" | "<", text = "EHLO probe\\r..." , t = seconds since start }
local loop = require "mxprobe.loop"
local socket = require "mxprobe.socket"
local core = require "mxprobe.core"

local escape = core.smtp.escape

local M = {}
M.escape = escape

local Session = {}
Session.__index = Session
Session.__name = "mxprobe.smtp.session"

local DEFAULTS = {
  connect_timeout = 10,   -- seconds for the TCP connect
  greeting_timeout = 30,  -- seconds for the whole greeting
  command_timeout = 30,   -- seconds for each command and its reply
  quit_timeout = 2,       -- seconds for the polite QUIT in close()
  deadline = nil,         -- absolute deadline for the whole session
  limits = nil,           -- reply caps: { max_line=, max_lines=, max_bytes= }
  transcript = true,      -- record the transcript
  max_transcript = 1000,  -- entries kept (the rest are counted, not stored)
}

local function argerr(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

local function earliest(a, b)
  if a == nil then return b end
  if b == nil then return a end
  return a < b and a or b
end

function Session:_record(dir, text)
  if not self.opts.transcript then return end
  local tr = self.transcript
  if #tr >= self.opts.max_transcript then
    self.transcript_dropped = (self.transcript_dropped or 0) + 1
    return
  end
  tr[#tr + 1] = { dir = dir, text = escape(text), t = loop.now() - self.started }
end

function Session:_record_reply(reply)
  -- one entry per line as received (code and separator included)
  for line in reply.raw:gmatch("([^\n]*)\n") do
    self:_record("<", (line:gsub("\r$", "")))
  end
end

--- Open a session: connect, then read the greeting.
-- opts: see DEFAULTS.  @return session | nil, code, detail, session_or_nil
-- (the session, when the connection was made, carries the transcript).
function M.session(ip, port, opts)
  if opts ~= nil and type(opts) ~= "table" then argerr(3, "session", "options table or nil expected, got " .. type(opts)) end
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = v end
  for k, v in pairs(opts or {}) do
    if DEFAULTS[k] == nil and k ~= "deadline" and k ~= "limits" then argerr(3, "session", "unknown option " .. tostring(k)) end
    o[k] = v
  end
  local self = setmetatable({ opts = o, transcript = {}, started = loop.now(), ip = ip, port = port }, Session)
  local sock, code, detail = socket.connect(ip, port, { deadline = earliest(o.deadline, loop.now() + o.connect_timeout) })
  if not sock then return nil, code, detail end
  self.sock = sock
  self.connect_time = loop.now() - self.started
  sock:set_deadline(earliest(o.deadline, loop.now() + o.greeting_timeout))
  local reply, rc, rd = sock:receive_reply(o.limits)
  if not reply then
    local partial = sock:buffered() > 0 and sock:take_buffered() or nil
    if partial then self:_record("<", partial) end
    sock:close()
    self.closed = true
    return nil, rc, "greeting: " .. tostring(rd), self
  end
  self:_record_reply(reply)
  self.greeting = reply
  self.greeting_time = loop.now() - self.started - self.connect_time
  return self
end

--- Read one reply without sending (after a command sent by send_line).
function Session:reply(timeout)
  if self.closed then return nil, "closed", "the session is closed" end
  local sock = self.sock
  sock:set_deadline(earliest(self.opts.deadline, loop.now() + (timeout or self.opts.command_timeout)))
  local reply, code, detail = sock:receive_reply(self.opts.limits)
  if not reply then return nil, code, detail end
  self:_record_reply(reply)
  return reply
end

--- Send one command line (CRLF is added).  @return bytes | nil, code, detail
function Session:send_line(line)
  if getmetatable(self) ~= Session then argerr(1, "send_line", "session expected (call it as s:send_line(...))") end
  if type(line) ~= "string" then argerr(1, "send_line", "string expected, got " .. type(line)) end
  if line:find("[\r\n]") then argerr(1, "send_line", "a command line must not contain CR or LF") end
  if self.closed then return nil, "closed", "the session is closed" end
  if not self.greeting then error("send_line: the greeting was not received yet", 2) end
  self:_record(">", line)
  local sock = self.sock
  sock:set_deadline(earliest(self.opts.deadline, loop.now() + self.opts.command_timeout))
  return sock:send(line .. "\r\n")
end

--- Send a command and read its reply, within command_timeout.
-- @return reply { code=, lines=, text=, enhanced=, raw= } | nil, code, detail
function Session:command(line, timeout)
  if getmetatable(self) ~= Session then argerr(1, "command", "session expected (call it as s:command(...))") end
  if type(line) ~= "string" then argerr(1, "command", "string expected, got " .. type(line)) end
  if line:find("[\r\n]") then argerr(1, "command", "a command line must not contain CR or LF") end
  if timeout ~= nil and type(timeout) ~= "number" then argerr(2, "command", "timeout in seconds or nil expected") end
  if self.closed then return nil, "closed", "the session is closed" end
  local t0 = loop.now()
  local ok, code, detail = self:send_line(line)
  if not ok then return nil, code, detail end
  local reply, rc, rd = self:reply(timeout and math.max(0, timeout - (loop.now() - t0)) or nil)
  if not reply then return nil, rc, rd end
  return reply
end

--- QUIT (bounded by quit_timeout) unless quit == false, then close.
function Session:close(quit)
  if self.closed then return true end
  if quit ~= false and self.greeting and coroutine.isyieldable() then
    local ok = self:send_line("QUIT")
    if ok then self:reply(self.opts.quit_timeout) end
  end
  self.sock:close()
  self.closed = true
  return true
end
Session.__close = function(self) self:close(false) end

function Session:timings()
  local t = self.sock and self.sock:timings() or {}
  t.greeting = self.greeting_time
  return t
end

return M
