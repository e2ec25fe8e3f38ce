-- STARTTLS command injection (CVE-2011-0411 and its relatives): does the
-- server execute plaintext that was pipelined after STARTTLS as if it had
-- arrived inside TLS?  An attacker in the path could then inject commands
-- into the encrypted session.  Probed on a session of its own:
--   send "STARTTLS\r\nRCPT TO:<...>\r\n" in one write, do the handshake,
--   send EHLO.  A fixed server discards the pipelined RCPT, so the first
--   reply inside TLS answers our EHLO (250).  A vulnerable one answers the
--   injected RCPT first (503 "need MAIL", or a 5xx), then our EHLO.
-- The STARTTLS step is mxprobe.smtp.dialog.starttls with a payload.
-- The handshake resumes the main session's TLS session when the server
-- allows it (facts: session_offered, resumed): this probe observes command
-- handling, not the handshake, and a full one costs a second certificate
-- chain and key exchange per address.  A server that does not resume gets
-- a full handshake, with the same verdict.
local loop = require "mxprobe.runtime.loop"
local iputil = require "mxprobe.net.iputil"
local dialog = require "mxprobe.smtp.dialog"
local reply = require "mxprobe.smtp.reply"

local INJECTED = "RCPT TO:<injection-test@mxprobe.invalid>"

return {
  id = "starttls_injection",
  description = "Whether plaintext pipelined after STARTTLS is executed inside the TLS session (CVE-2011-0411 class)",
  categories = { "tls", "security" },
  scope = "session",
  requires = { "starttls" },
  findings = {
    STARTTLS_INJECTION_SAFE = { severity = "ok", message = "Plaintext pipelined after STARTTLS was not executed inside TLS" },
    STARTTLS_COMMAND_INJECTION = { severity = "critical",
      message = "Plaintext pipelined after STARTTLS was executed inside TLS (reply {code} {text}): commands can be injected into the encrypted session",
      hint = "Upgrade the MTA: the fix discards input buffered before the TLS handshake (CVE-2011-0411 and later variants)." },
  },

  applies = function(ctx)
    local t, b = ctx.facts.starttls, ctx.facts.banner
    if not (t and t.handshake == true) then return false, "no TLS handshake on the main session" end
    -- a slow greeting would be waited for twice: skip, the report says why not
    local slow = ctx:threshold("greeting_slow_s") or 30
    if not (b and b.seconds < slow) then
      return false, ("the greeting was slow (%s s; greeting_slow_s = %s)"):format(b and b.seconds or "?", slow)
    end
    -- implicit TLS has no STARTTLS to inject after
    if t.implicit then return false, "implicit TLS: there is no STARTTLS" end
    return true
  end,

  run = function(ctx)
    local s = ctx:extra_session()
    if not s then return end -- the main session already told what connecting does
    local g = dialog.greet(s, { deadline = ctx:deadline("greeting") })
    if not g or g.code ~= 220 then return s:close() end
    local e = dialog.ehlo(s, ctx.config.helo, { deadline = ctx:deadline("command") })
    if not e or e.code ~= 250 then dialog.report(ctx, { s }); return dialog.quit(s) end
    local sni = not iputil.is_literal(ctx.host) and ctx.host or nil
    -- Offered: the main session's TLS session (this server context's only:
    -- same address, port and MX name).  Resumed, the certificate is not
    -- verified again; that is fine, the certificate check reads the main
    -- session's chain (ctx:tls()), never this one's.
    local offer = ctx:tls_session()
    local fact = ctx:fact { session_offered = offer ~= nil, resumed = false }
    -- the injected line travels in the same write as STARTTLS; bytes answered
    -- in plaintext before the handshake are not this bug (allow_buffered)
    local r, info = dialog.starttls(s, { sni = sni, verify_name = ctx.host, ca_file = ctx.config.ca_file,
      allow_buffered = true, payload = INJECTED .. "\r\n", session = offer,
      deadline = ctx:deadline("command"), tls_deadline = ctx:deadline("tls") })
    dialog.report(ctx, { s })
    if not r or not info then return s:close() end
    fact.resumed = info.resumed == true
    -- a vulnerable server answers the injected RCPT inside TLS, maybe even
    -- before our EHLO is sent: read raw replies here, the pairing is this check's
    if not s:send_line("EHLO " .. ctx.config.helo, ctx:deadline("command")) then return s:close() end
    local first = s:read_reply(ctx:deadline("command"))
    if not first then return s:close() end
    if first.code == 250 then
      ctx:finding("STARTTLS_INJECTION_SAFE", {})
    else
      -- the reply to our EHLO must follow: then the first one answered the injection
      local second = s:read_reply(loop.now() + 2)
      if second and second.code == 250 then
        ctx:finding("STARTTLS_COMMAND_INJECTION", { code = first.code, text = reply.text(first) })
      end
    end
    dialog.quit(s)
  end,
}
