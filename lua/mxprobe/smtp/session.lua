--- mxprobe.smtp.session: one SMTP client session as the session-scope checks
-- see it: a socket, the replies, a transcript, per-phase deadlines.
--
-- Protocol rules (GUIDE section 5): nothing is sent before the complete
-- greeting; replies are read whole; after STARTTLS nothing buffered in
-- plaintext is fed into TLS (the TLS layer refuses and we report it).

local loop = require "mxprobe.runtime.loop"
local socket = require "mxprobe.net.socket"
local core = require "mxprobe.core"
local goodbye = require "mxprobe.smtp.goodbye"

local M = {}
local Session = {}
Session.__index = Session

local escape = core.smtp.escape or function(s) return (s:gsub("[%z\1-\31\127-\255]", function(c) return ("\\x%02x"):format(c:byte()) end)) end
M.escape = escape

--- Connect to ip:port.  Returns a session, nil, nil, seconds or nil, code, detail, seconds.
-- opts.limits (mxprobe.engine.limits) caps the connection rate and open sockets;
-- opts.source: the local address to connect from; opts.implicit_tls: TLS
-- options ({ sni, verify_name, ca_file }) for a handshake right after the
-- connect (port 465), failing as nil, "tls", detail.
function M.open(ip, port, opts)
    opts = opts or {}
    local release
    if opts.limits then
        local code, detail
        -- waiting for our own limits is not the server's connect time
        loop.doing(("a connection slot for %s (mxprobe's own limits)"):format(ip))
        release, code, detail = opts.limits:connect(ip, loop.now() + 300)
        loop.doing(nil)
        if not release then return nil, code, detail, 0 end
    end
    local t0 = loop.now()
    -- for status lines (loop.doing): the host name when the caller knows it
    local name = opts.host and ("%s (%s)"):format(opts.host, ip) or ip
    loop.doing("the TCP connection to %s port %s", name, port)
    local sock, code, detail = socket.connect(ip, port, { deadline = t0 + (opts.connect_timeout or 10), source = opts.source })
    loop.doing(nil) -- a label holds only while its wait lasts
    local seconds = loop.now() - t0
    if not sock then
        if release then release() end
        return nil, code, detail, seconds
    end
    -- implicit TLS (port 465, RFC 8314): the handshake comes before the
    -- greeting, so it belongs to opening the session
    local implicit
    if opts.implicit_tls then
        loop.doing("the TLS handshake with " .. name)
        local tls_timeout = (opts.timeouts or {}).tls or 20
        local tcode, tdetail, raw
        implicit, tcode, tdetail, raw = sock:tls_handshake(opts.implicit_tls, loop.now() + tls_timeout)
        loop.doing(nil)
        if not implicit then
            sock:close()
            if release then release() end
            if tcode == "injection" then
                -- bytes before any handshake: a plaintext server (a 220 greeting, say)
                local preview = tostring(raw or "")
                if #preview > 60 then preview = preview:sub(1, 60) .. "..." end
                return nil, "tls", ("the server speaks plaintext, not TLS: %s"):format(preview), seconds
            end
            if tostring(tdetail):find("wrong version number", 1, true) then
                -- what OpenSSL says when the first bytes back are not a TLS record
                return nil, "tls", "the server speaks plaintext, not TLS (OpenSSL: wrong version number)", seconds
            end
            return nil, "tls", ("%s: %s"):format(tostring(tcode), tostring(tdetail or "")), seconds
        end
    end
    local s = setmetatable({
        sock = sock, ip = ip, port = port, t0 = t0, connect_seconds = seconds,
        transcript = {}, timeouts = opts.timeouts or {}, tls = nil, release = release,
        name = name, waiting_for = "the greeting of " .. name,
    }, Session)
    s:note("*", ("connected to %s port %d in %.6f s"):format(ip, port, seconds))
    if implicit then
        s.tls, s.implicit_tls = implicit, true
        s:note("*", ("TLS established before the greeting (implicit TLS): %s %s"):format(implicit.protocol or "?", implicit.cipher or "?"))
    end
    goodbye.track(s) -- a cancelled run still says QUIT (mxprobe.smtp.goodbye)
    -- the seconds on success too: the connect check reports them (it showed
    -- 0.0 ms everywhere while this returned the session alone)
    return s, nil, nil, seconds
end

function Session:note(dir, text)
    local t = self.transcript
    if #t < 400 then -- a hostile server must not grow the report without bound
        t[#t + 1] = { dir = dir, text = escape(text), t = math.floor((loop.now() - self.t0) * 1000 + 0.5) / 1000 }
    end
end

-- A line over the parser's 4096 bytes keeps its head and loses the rest,
-- up to 1 MiB per reply (posttls-finger and swaks read past a 1 MiB
-- greeting too): the reply carries longest/cut and the dialog reports it.
M.READ_LIMITS = { discard_max = 1024 * 1024 }

--- Read one complete reply before the deadline (absolute).
function Session:read_reply(deadline)
    loop.doing(self.waiting_for or ("a reply from " .. tostring(self.name or self.ip)))
    self.waiting_for = nil
    local r, code, detail = self.sock:receive_reply(M.READ_LIMITS, deadline)
    loop.doing(nil)
    if not r then
        self:note("!", ("%s: %s"):format(code, detail or ""))
        return nil, code, detail
    end
    local lines = r.lines or {}
    for i, l in ipairs(lines) do
        self:note("<", ("%d%s%s"):format(r.code, i < #lines and "-" or " ", l))
    end
    if #lines == 0 then self:note("<", tostring(r.code)) end
    self.greeted = true -- (goodbye) a reply was read: the greeting is behind us
    return r
end

-- Write bytes (command lines already noted); a failure goes into the
-- transcript too, as read_reply's do.
local function write(self, bytes, deadline)
    local ok, code, detail = self.sock:send(bytes, deadline)
    if not ok then
        self:note("!", ("%s: %s"):format(code, detail or ""))
        return nil, code, detail
    end
    return true
end

function Session:send_line(line, deadline)
    if type(line) ~= "string" then error("bad argument #1 to 'send_line' (string expected)", 2) end
    -- a configured name with CR/LF in it would smuggle a second command
    if line:find("[\r\n]") then error("bad argument #1 to 'send_line' (a command line must not contain CR or LF)", 2) end
    self:note(">", line)
    -- (goodbye) until TLS is up, the server may expect a TLS handshake, not a QUIT
    if line:upper():find("^STARTTLS") then self.starttls_pending = true end
    return write(self, line .. "\r\n", deadline)
end

--- Send several command lines in one write (mxprobe.smtp.dialog.pipeline).
function Session:send_lines(lines, deadline)
    for i, line in ipairs(lines) do
        if type(line) ~= "string" or line:find("[\r\n]") then
            error(("bad argument #1 to 'send_lines' (line %d: a command line without CR or LF expected)"):format(i), 2)
        end
        self:note(">", line)
    end
    return write(self, table.concat(lines, "\r\n") .. "\r\n", deadline)
end

--- Send a command and read its reply; the deadline covers both.
function Session:command(line, deadline)
    if type(line) ~= "string" or line:find("[\r\n]") then
        error("bad argument #1 to 'command' (a command line without CR or LF expected)", 2)
    end
    deadline = deadline or (loop.now() + (self.timeouts.command or 30))
    self.waiting_for = ("the reply to %s from %s"):format(line:match("^%S+"):upper(), tostring(self.name or self.ip))
    local ok, code, detail = self:send_line(line, deadline)
    if not ok then return nil, code, detail end
    local r, rcode, rdetail = self:read_reply(deadline)
    if r and r.code ~= 220 and self.starttls_pending and not self.tls then self.starttls_pending = nil end -- refused: still plaintext
    return r, rcode, rdetail
end

--- Upgrade to TLS (after a 220 to STARTTLS).  Returns the TLS info or
-- nil, code, detail ("injection" when plaintext was buffered).
function Session:starttls(opts, deadline)
    loop.doing("the TLS handshake with " .. tostring(self.name or self.ip))
    local info, code, detail, extra = self.sock:tls_handshake(opts, deadline)
    loop.doing(nil)
    if not info then
        self:note("!", ("TLS %s: %s"):format(code, detail or ""))
        return nil, code, detail, extra
    end
    self.tls = info
    self.starttls_pending = nil
    self:note("*", ("TLS established: %s %s"):format(info.protocol or "?", info.cipher or "?"))
    return info
end

--- The TLS session negotiated by starttls, for one resumption with this
-- server (after the EHLO inside TLS: TLS 1.3 tickets come after the
-- handshake).  Returns the session or nil, code, detail.
function Session:tls_session()
    if self.closed then return nil, "closed", "the session is closed" end
    if not self.tls then return nil, "tls", "no TLS on this session" end
    return self.sock:tls_session()
end

function Session:buffered() return self.sock:buffered() end

--- QUIT politely (bounded: by deadline, default 2 s from now), then close.
-- Once only: a session being quit by one task is left alone by another.
function Session:quit(deadline)
    if self.closed or self.quitting then return end
    if not self.greeted or self.starttls_pending then return self:quit_now() end -- QUIT makes no sense yet
    self.quitting = true
    deadline = deadline or loop.now() + 2
    if self:send_line("QUIT", deadline) then self:read_reply(deadline) end
    self:close()
end

--- QUIT without waiting (no task can wait: the run is over), then close.
function Session:quit_now()
    if self.closed then return end
    local wanted = not self.quitting and self.greeted and not self.starttls_pending
    self.quitting = true
    if wanted then
        self:note(">", "QUIT")
        pcall(self.sock._sock.send, self.sock._sock, "QUIT\r\n", 1)
    end
    self:close()
end

--- Close.  A session closed by a task that was cancelled (Ctrl-C, a failed
-- output) says QUIT first, without waiting for the answer, when QUIT makes
-- sense: after the greeting, and not while a STARTTLS handshake is due.
-- Checks close a session on any failed command, "cancelled" included.
function Session:close()
    if self.closed then return end
    local t = loop.current()
    if t and t.cancelled and not self.quitting then return self:quit_now() end
    self.closed = true
    goodbye.untrack(self)
    self.sock:close()
    if self.release then self.release() end
end

return M
