--- mxprobe.smtp.dialog: the SMTP client dialog as named steps.
--
-- Model: nmap nselib/smtp.lua (one function per command) and Postfix
-- posttls-finger (greeting, EHLO, STARTTLS as steps).  Every verb takes a
-- session (mxprobe.smtp.session) and returns the parsed reply (plus extra
-- information) or nil, code, detail:
--
--   local r = dialog.greet(s)                        -- the 220 (or 421, 554 ...)
--   local r, info = dialog.ehlo(s, "probe.example", { fallback = true })
--   local r, tls = dialog.starttls(s, { sni = "mx.example.org", payload = "RCPT TO:<x@y>\r\n" })
--   dialog.mail(s, "probe@example.org"); dialog.rcpt(s, "x@example.net")
--   dialog.rset(s); dialog.quit(s)
--
-- What a reply means is decided by mxprobe.smtp.reply (classify).
--
-- Keeping replies matched to commands (issue 16): before each command,
-- whatever the server already sent is pulled in without waiting.  A second
-- greeting before the first command (a proxy banner, then the real one) is
-- noted and dropped: nothing was asked yet, so the dialog stays in step.
-- Any other reply that arrives before its command was sent means the
-- server answers ahead of the dialog: the session is marked out of step
-- and later verbs return nil, "unsolicited" instead of pairing a command
-- with a reply that was not its own (that pairing made a 554 to RCPT look
-- like an open relay).  A 220 read where only the greeting or STARTTLS can
-- produce one is a late extra greeting, also noted and skipped.
-- These events, and reply lines over RFC 5321's 512 octets, are kept on the
-- session; dialog.report(ctx) turns them into findings (declared by the
-- banner check from M.FINDINGS).
local loop = require "mxprobe.runtime.loop"
local session = require "mxprobe.smtp.session"
local extensions = require "mxprobe.smtp.extensions"
local reply = require "mxprobe.smtp.reply"
local iputil = require "mxprobe.net.iputil"

local M = {}

M.RFC_LINE_MAX = 512 -- RFC 5321 4.5.3.1.5, CRLF included
M.LATE_GREETING_WAIT = 3 -- seconds to wait for the real reply after a late second greeting

M.FINDINGS = {
  SMTP_UNSOLICITED_REPLY = { severity = "warning",
    message = "The server sent {what} before {before} was sent ({reply}); no reply was taken for another command's",
    hint = "Something answers ahead of the dialog: a proxy or load balancer with a banner of its own, or an MTA that ignores RFC 5321 section 4.2. Check what listens in front of the MTA." },
  SMTP_LINE_TOO_LONG = { severity = "warning",
    message = "A line of the {context} is {length} octets long, over the 512 of RFC 5321 section 4.5.3.1.5{cut}",
    hint = "Shorten the MTA's greeting or reply texts; strict clients close the connection on an overlong line." },
}

-- ---------------------------------------------------------------- events

local function event(s, code, ev)
  s.events = s.events or {}
  if #s.events < 20 then s.events[#s.events + 1] = { code = code, evidence = ev } end
end

--- Report the protocol events of the context's sessions not reported yet.
-- Called by every stock check that speaks through these verbs; a custom
-- check may call it too.  ctx:add_finding attributes them to the check
-- that declares the codes (banner), whichever check saw them.
function M.report(ctx, sessions)
  sessions = sessions or ctx.sessions or { ctx:session() }
  for _, s in ipairs(sessions) do
    for _, e in ipairs(s.events or {}) do
      if not e.reported then
        e.reported = true
        ctx:add_finding(e.code, e.evidence, "banner")
      end
    end
  end
end

local function short(r)
  local t = reply.text(r)
  if #t > 80 then t = t:sub(1, 80) .. "..." end
  return session.escape(("%d %s"):format(r.code, t))
end

-- Read one reply and note an overlong line (the parser kept its head).
local function read(s, deadline, context)
  local r, code, detail = s:read_reply(deadline)
  if not r then return nil, code, detail end
  if r.longest and r.longest > M.RFC_LINE_MAX then
    event(s, "SMTP_LINE_TOO_LONG", {
      context = context, length = r.longest, line = r.longest_line,
      cut = r.cut and (" (its first %d octets kept, the rest read and dropped)"):format(r.cut) or "",
    })
  end
  return r
end
M.read = read

-- ---------------------------------------------------------------- in step

-- Pull in without waiting what the kernel already holds.
local function pull(s)
  local raw = s.sock:raw()
  for _ = 1, 64 do
    if not raw:fill() then break end -- "again", closed, or the buffer cap
  end
  return s.sock:buffered()
end

-- Before `before` is sent: nothing may be waiting.  Returns true, or nil,
-- "unsolicited", detail when the session is out of step.
local function in_step(s, before)
  if s.out_of_step then return nil, "unsolicited", s.out_of_step end
  if s.ended then return nil, "closed", s.ended end
  if pull(s) == 0 then return true end
  local got, dl = {}, loop.now() + 1
  while s.sock:buffered() > 0 and #got < 5 do
    local r = read(s, dl, "unsolicited reply")
    if not r then break end
    got[#got + 1] = r
  end
  local junk = 0
  if s.sock:buffered() > 0 then
    junk = #(s.sock:take_buffered() or "")
    s:note("!", ("%d more unsolicited bytes dropped"):format(junk))
  end
  -- A 421 may come at any time: RFC 5321 section 3.8 lets a server that
  -- must shut the session down send it "asynchronously from command
  -- receipt", then close (Postfix under stress does after one error:
  -- smtpd_hard_error_limit = ${stress?1}{20}).  That is the end of the
  -- session, not a dialog out of step: no command is sent after it.
  local ended = #got > 0 and junk == 0
  for _, r in ipairs(got) do if r.code ~= 421 then ended = false end end
  if ended then
    s.ended = ("the server ended the session (%s) before %s was sent"):format(short(got[1]), before)
    s:note("!", s.ended)
    return nil, "closed", s.ended
  end
  local greeting = (s.commands or 0) == 0 and #got > 0
  for _, r in ipairs(got) do if r.code ~= 220 then greeting = false end end
  local ev = { before = before, what = greeting and "another greeting" or "a reply nobody asked for",
               reply = got[1] and short(got[1]) or "unparsable bytes", count = #got }
  event(s, "SMTP_UNSOLICITED_REPLY", ev)
  s:note("!", ("%s before %s: not taken as its reply"):format(ev.what, before))
  if greeting then return true end
  s.out_of_step = ("the server sent %s (%s) before %s was sent: later replies cannot be matched to commands")
    :format(ev.what, ev.reply, before)
  return nil, "unsolicited", s.out_of_step
end

local function verb_of(line) return (line:match("^(%S+)") or line):upper() end

--- Send one command and read its reply (the deadline covers both).
-- opts.deadline (absolute); the reply gets .seconds and .class.
function M.command(s, line, opts)
  if type(line) ~= "string" or line:find("[\r\n]") then
    error("bad argument #2 to 'command' (a command line without CR or LF expected)", 2)
  end
  opts = opts or {}
  if s.closed then return nil, "closed", "the session is closed" end
  local verb = verb_of(line)
  local ok, code, detail = in_step(s, verb)
  if not ok then return nil, code, detail end
  local deadline = opts.deadline or (loop.now() + (s.timeouts.command or 30))
  local t0 = loop.now()
  ok, code, detail = s:send_line(line, deadline)
  if not ok then return nil, code, detail end
  s.commands = (s.commands or 0) + 1
  local r
  r, code, detail = read(s, deadline, ("reply to %s"):format(verb))
  -- 220 answers only the connection and STARTTLS: to the first command it
  -- is a second greeting that came late, if another reply follows soon;
  -- if none does, the 220 was this server's (odd) answer after all
  if r and r.code == 220 and verb ~= "STARTTLS" and s.commands == 1 then
    local nxt, c2, d2 = read(s, math.min(deadline, loop.now() + M.LATE_GREETING_WAIT), ("reply to %s"):format(verb))
    if nxt then
      event(s, "SMTP_UNSOLICITED_REPLY", { before = ("the reply to %s"):format(verb), what = "another greeting",
                                           reply = short(r), count = 1 })
      s:note("!", ("another greeting before the reply to %s: skipped"):format(verb))
      r = nxt
    elseif c2 ~= "timeout" then
      r, code, detail = nil, c2, d2
    end
  end
  if not r then return nil, code, detail end
  r.seconds = loop.now() - t0
  r.class = reply.classify(r).class
  return r
end

-- ---------------------------------------------------------------- verbs

--- The greeting.  opts.deadline (default: now + timeouts.greeting).
-- @return reply (any code; .seconds) | nil, code, detail
function M.greet(s, opts)
  opts = opts or {}
  local t0 = loop.now()
  local r, code, detail = read(s, opts.deadline or (t0 + (s.timeouts.greeting or 30)), "greeting")
  if not r then return nil, code, detail end
  r.seconds = loop.now() - t0
  r.class = reply.classify(r).class
  return r
end

--- EHLO name; with opts.fallback, HELO when EHLO is refused (not after a
-- 421: the server is closing).  Returns the last reply and
-- { verb = "EHLO"|"HELO", extensions = (parsed EHLO reply), ehlo = (the
-- refused EHLO reply, after a fall back) }.
function M.ehlo(s, name, opts)
  opts = opts or {}
  local r, code, detail = M.command(s, "EHLO " .. name, opts)
  if not r then return nil, code, detail, { verb = "EHLO" } end
  if r.code == 250 then
    local f = extensions.parse(r.lines or {})
    s.keywords = f.keywords -- what this session may use (M.pipeline)
    return r, { verb = "EHLO", extensions = f }
  end
  if r.class == "throttled" or not opts.fallback then return r, { verb = "EHLO" } end
  local h
  h, code, detail = M.command(s, "HELO " .. name, opts)
  if not h then return nil, code, detail, { verb = "HELO", ehlo = r } end
  return h, { verb = "HELO", ehlo = r }
end

local TLS_KEYS = { sni = "sni", verify_name = "verify_name", ca_file = "ca_file", min_version = "min",
                   max_version = "max", ciphers = "ciphers", ciphersuites = "ciphersuites",
                   security_level = "security_level", allow_buffered = "allow_buffered", chain = "chain",
                   sigalgs = "sigalgs", groups = "groups", session = "session" }

--- STARTTLS, then the TLS handshake after a 220.
-- opts: sni, verify_name, ca_file, min_version, max_version ("TLSv1" ..
-- "TLSv1.3"), ciphers, ciphersuites, security_level, sigalgs, groups, chain, allow_buffered,
-- session (a session:tls_session() of this server, offered for resumption:
-- TLS info's resumed says whether it was taken),
-- payload (bytes written in the same write as STARTTLS: the probe of
-- CVE-2011-0411), deadline (command), tls_deadline (handshake).
-- @return the 220 reply, TLS info (protocol, cipher, chain, handshake_s)
--       | the refusing reply (not 220), nil
--       | nil, code, detail, extra  (extra.reply: the 220 when the handshake
--         failed; extra.injected: escaped plaintext that followed the 220)
function M.starttls(s, opts)
  opts = opts or {}
  local topts = {}
  for k, v in pairs(opts) do
    if TLS_KEYS[k] then topts[TLS_KEYS[k]] = v
    elseif k ~= "payload" and k ~= "deadline" and k ~= "tls_deadline" then
      error(("bad argument #2 to 'starttls' (unknown option '%s')"):format(tostring(k)), 2)
    end
  end
  local payload = opts.payload
  if payload ~= nil and type(payload) ~= "string" then error("bad argument #2 to 'starttls' (payload must be a string)", 2) end
  if s.closed then return nil, "closed", "the session is closed" end
  local ok, code, detail = in_step(s, "STARTTLS")
  if not ok then return nil, code, detail, {} end
  local deadline = opts.deadline or (loop.now() + (s.timeouts.command or 30))
  local r
  if payload and payload ~= "" then
    -- one write: the pipelined bytes travel with STARTTLS, as an attacker's would
    s:note(">", "STARTTLS")
    for l in payload:gmatch("[^\r\n]+") do s:note(">", l .. "   (pipelined on purpose)") end
    ok, code, detail = s.sock:send("STARTTLS\r\n" .. payload, deadline)
    if not ok then s:note("!", ("%s: %s"):format(code, detail or "")); return nil, code, detail, {} end
    s.commands = (s.commands or 0) + 1
    r, code, detail = read(s, deadline, "reply to STARTTLS")
  else
    r, code, detail = M.command(s, "STARTTLS", { deadline = deadline })
  end
  if not r then return nil, code, detail, {} end
  r.class = r.class or reply.classify(r).class
  if r.code ~= 220 then return r, nil end
  local info, tcode, tdetail, raw = s:starttls(topts, opts.tls_deadline or (loop.now() + (s.timeouts.tls or 30)))
  if not info then return nil, tcode, tdetail, { reply = r, injected = raw } end
  s.keywords = nil -- forgotten inside TLS until EHLO is asked again (RFC 3207 4.2)
  -- replies to the payload, if the server executes it, come inside TLS:
  -- the caller reads them (the verbs would call them unsolicited)
  return r, info
end

-- The commands RFC 2920 section 3.1 lets a client group: those that only
-- change the mail transaction (not EHLO, STARTTLS, AUTH, DATA or QUIT).
local GROUPABLE = { MAIL = true, RCPT = true, RSET = true }

--- RFC 2920 pipelining: the commands in one write, then their replies in
-- order.  Only where the session's last EHLO offered PIPELINING (the
-- caller asks s.keywords.PIPELINING) and only MAIL, RCPT and RSET: the
-- relay probe's four commands cost one round trip instead of four, and
-- nothing that could deliver (DATA) is ever grouped.
-- @return the replies in order (each with .seconds, .class); when one is
--   missing, the ones read before it, then code, detail
function M.pipeline(s, lines, opts)
  if type(lines) ~= "table" or #lines == 0 then error("bad argument #2 to 'pipeline' (a list of commands expected)", 2) end
  for i, line in ipairs(lines) do
    if type(line) ~= "string" or line:find("[\r\n]") then
      error(("bad argument #2 to 'pipeline' (command %d: a line without CR or LF expected)"):format(i), 2)
    end
    if not GROUPABLE[verb_of(line)] then
      error(("bad argument #2 to 'pipeline' (%s cannot be pipelined: MAIL, RCPT and RSET can)"):format(verb_of(line)), 2)
    end
  end
  opts = opts or {}
  if s.closed then return {}, "closed", "the session is closed" end
  local ok, code, detail = in_step(s, verb_of(lines[1]))
  if not ok then return {}, code, detail end
  local deadline = opts.deadline or (loop.now() + (s.timeouts.command or 30))
  local t0 = loop.now()
  ok, code, detail = s:send_lines(lines, deadline)
  if not ok then return {}, code, detail end
  s.commands = (s.commands or 0) + #lines
  local replies = {}
  for i, line in ipairs(lines) do
    local r
    r, code, detail = read(s, deadline, ("reply to %s"):format(verb_of(line)))
    if not r then return replies, code, detail end
    r.seconds = loop.now() - t0
    r.class = reply.classify(r).class
    replies[i] = r
  end
  -- more replies than commands: which answered what cannot be known
  -- (one at a time, the next command's in_step would tell)
  if pull(s) > 0 then
    ok, code, detail = in_step(s, ("the command after %s"):format(verb_of(lines[#lines])))
    if not ok and code == "unsolicited" then return {}, code, detail end
  end
  return replies
end

--- MAIL FROM:<from> (from = "" gives the null sender <>).
function M.mail(s, from, opts) return M.command(s, ("MAIL FROM:<%s>"):format(from), opts) end
--- RCPT TO:<to>.
function M.rcpt(s, to, opts) return M.command(s, ("RCPT TO:<%s>"):format(to), opts) end
--- RSET: end the mail transaction (nothing is ever delivered).
function M.rset(s, opts) return M.command(s, "RSET", opts) end

--- QUIT (bounded, 2 s by default), then close.  Returns the reply or nil,
-- code, detail; the session is closed either way.
function M.quit(s, opts)
  if s.closed then return nil, "closed", "the session is closed" end
  -- the server said 421 and closed (in_step): nobody is left to hear QUIT
  if s.ended then s:close(); return nil, "closed", s.ended end
  local deadline = (opts and opts.deadline) or (loop.now() + 2)
  local r, code, detail
  if s:send_line("QUIT", deadline) then r, code, detail = read(s, deadline, "reply to QUIT") end
  s:close()
  if not r then return nil, code or "closed", detail end
  return r
end

-- ---------------------------------------------------------------- one call

local function phase(timeouts, name) return loop.now() + ((timeouts or {})[name] or 30) end

--- Connect, greet, EHLO, STARTTLS with tls_opts, read the certificate,
-- QUIT: one fresh session per call (TLS version enumeration calls it once
-- per version).  target: a check context (its extra_session, its host as
-- SNI and name to verify, its helo and ca_file) or a table { address,
-- port, host, helo, timeouts, limits, ca_file }.  tls_opts as starttls.
-- @return TLS info (protocol, cipher, bits, chain, handshake_s), probe
--       | nil, code, detail, probe
-- probe = { stage = "connect"|"greeting"|"ehlo"|"starttls"|"handshake"|"done",
--           greeting =, ehlo =, starttls = (replies), transcript =, session = }
-- The session's protocol events are not reported here (an enumeration
-- would report them once per call): dialog.report(ctx, { probe.session }).
function M.tls_probe(target, tls_opts)
  local is_ctx = type(target.extra_session) == "function"
  local host = target.host
  local helo = is_ctx and target.config.helo or target.helo or "mxprobe.invalid"
  local timeouts = is_ctx and target.config.timeouts or target.timeouts or {}
  local probe = { stage = "connect" }
  local s, code, detail
  if is_ctx then s, code, detail = target:extra_session()
  else
    s, code, detail = session.open(target.address, target.port or 25, {
      connect_timeout = timeouts.connect, timeouts = timeouts, limits = target.limits })
  end
  if not s then return nil, code, detail, probe end
  probe.transcript, probe.session = s.transcript, s -- dialog.report(ctx, { probe.session }) reports its events
  local function fail(c, d)
    -- QUIT where the dialog is still intact; a 421 or a broken handshake: just close
    if s.closed then return nil, c, d, probe end
    -- nothing is sent before a complete greeting, not even QUIT
    if c == "throttled" or probe.stage == "handshake" or probe.stage == "greeting" then s:close() else M.quit(s) end
    return nil, c, d, probe
  end
  probe.stage = "greeting"
  local g
  g, code, detail = M.greet(s, { deadline = phase(timeouts, "greeting") })
  probe.greeting = g
  if not g then return fail(code, detail) end
  if g.code ~= 220 then return fail(g.class, ("greeting %s"):format(short(g))) end
  probe.stage = "ehlo"
  local e
  e, code, detail = M.ehlo(s, helo, { deadline = phase(timeouts, "command") })
  probe.ehlo = e
  if not e then return fail(code, detail) end
  if e.code ~= 250 then return fail(e.class, ("EHLO %s"):format(short(e))) end
  probe.stage = "starttls"
  local opts = {}
  for k, v in pairs(tls_opts or {}) do opts[k] = v end
  local literal = host == nil or iputil.is_literal(host)
  if opts.sni == nil and not literal then opts.sni = host end
  if opts.verify_name == nil then opts.verify_name = host end
  if opts.ca_file == nil then opts.ca_file = is_ctx and target.config.ca_file or target.ca_file end
  opts.deadline = opts.deadline or phase(timeouts, "command")
  opts.tls_deadline = opts.tls_deadline or phase(timeouts, "tls")
  local r, tls, extra
  r, tls, detail, extra = M.starttls(s, opts)
  probe.starttls = r or (extra and extra.reply)
  if not r then probe.stage = probe.starttls and "handshake" or "starttls"; return fail(tls, detail) end
  if not tls then return fail(r.class, ("STARTTLS %s"):format(short(r))) end
  probe.stage = "done"
  M.quit(s)
  return tls, probe
end

return M
