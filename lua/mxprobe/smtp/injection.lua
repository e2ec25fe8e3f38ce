--- mxprobe.smtp.injection: the STARTTLS command injection probe
-- (CVE-2011-0411 class), shared by the two checks that make it.
--
-- The probe: "STARTTLS\r\n" and a harmless RCPT in one write, the
-- handshake, then EHLO.  A fixed server discards the pipelined RCPT, so the
-- first reply inside TLS answers our EHLO (250); a vulnerable one answers
-- the injected RCPT first (503 "need MAIL", or a 5xx), then our EHLO.
--
-- Where it runs (issue 15, bench/audit (b)): the `starttls` check carries
-- the RCPT on the main session's own STARTTLS, so an address session makes
-- one TLS handshake, not two; whatever that dialog cannot settle (a refusal,
-- bytes after the 220, a failed handshake, an odd EHLO) makes `starttls`
-- start over on a clean session, and `starttls_injection` probes on a
-- session of its own, as before.  facts.starttls.injection_probe says what
-- the carried probe found (docs/json-schema.md).
local loop = require "mxprobe.runtime.loop"
local extensions = require "mxprobe.smtp.extensions"
local reply = require "mxprobe.smtp.reply"
local dialog = require "mxprobe.smtp.dialog"

local M = {}

M.LINE = "RCPT TO:<injection-test@mxprobe.invalid>"
M.PAYLOAD = M.LINE .. "\r\n"
M.SECOND_WAIT = 2 -- seconds to wait for our EHLO's reply after a non-250 first one

--- Why the probe is not made on this server (nil: it is).  ctx: a server
-- context after the ehlo check; `tls_done` false asks before STARTTLS.
function M.not_here(ctx, tls_done)
  local t, b = ctx.facts.starttls, ctx.facts.banner
  if tls_done and not (t and t.handshake == true) then return "no TLS handshake on the main session" end
  -- a slow greeting would be waited for twice (a session of its own): skip,
  -- the report says why not
  local slow = ctx:threshold("greeting_slow_s") or 30
  if not (b and b.seconds < slow) then
    return ("the greeting was slow (%s s; greeting_slow_s = %s)"):format(b and b.seconds or "?", slow)
  end
  -- implicit TLS has no STARTTLS to inject after
  if (t and t.implicit) or ctx.config.implicit_tls then return "implicit TLS: there is no STARTTLS" end
end

--- After the handshake of a STARTTLS that carried M.PAYLOAD: send EHLO and
-- read what answers.  The replies are read raw (a vulnerable server may
-- answer the RCPT before our EHLO is sent: the dialog's in-step rule would
-- call that unsolicited), so the pairing is done here.
-- @return the reply to our EHLO (with .seconds, .class and, for a 250,
--         .extensions), verdict, injected
--   verdict "discarded": the first reply was the EHLO's 250;
--           "executed": a non-250 came first and then our EHLO's 250
--           (injected = that first reply);
--           nil: the first reply was not a 250 and no 250 followed (the
--           EHLO's own refusal, most likely: nothing can be concluded)
--   | nil, code, detail
function M.ehlo_after(s, helo, deadline)
  local t0 = loop.now()
  local ok, code, detail = s:send_line("EHLO " .. helo, deadline)
  if not ok then return nil, code, detail end
  s.commands = (s.commands or 0) + 1
  local first
  first, code, detail = dialog.read(s, deadline, "reply to EHLO")
  if not first then return nil, code, detail end
  local r, verdict, injected = first, nil, nil
  if first.code == 250 then
    verdict = "discarded"
  else
    local second = dialog.read(s, math.min(deadline, loop.now() + M.SECOND_WAIT), "reply to EHLO")
    if second and second.code == 250 then r, verdict, injected = second, "executed", first end
  end
  r.seconds = loop.now() - t0
  r.class = reply.classify(r).class
  if r.code == 250 then
    r.extensions = extensions.parse(r.lines or {})
    s.keywords = r.extensions.keywords
  end
  return r, verdict, injected
end

return M
