-- STARTTLS command injection (CVE-2011-0411 and its relatives): does the
-- server execute plaintext that was pipelined after STARTTLS as if it had
-- arrived inside TLS?  An attacker in the path could then inject commands
-- into the encrypted session.  The probe (mxprobe.smtp.injection):
--   send "STARTTLS\r\nRCPT TO:<...>\r\n" in one write, do the handshake,
--   send EHLO.  A fixed server discards the pipelined RCPT, so the first
--   reply inside TLS answers our EHLO (250).  A vulnerable one answers the
--   injected RCPT first (503 "need MAIL", or a 5xx), then our EHLO.
-- Made on the main session where it can be (issue 15): the starttls check
-- carries the RCPT on its own STARTTLS and records what came back
-- (facts.starttls.injection_probe); this check judges it.  A server that
-- refused the pipelined STARTTLS but took a plain one (Postfix's
-- smtpd_forbid_unauth_pipelining) did not execute it either.  What the
-- carried probe could not settle, or a run with carry_injection = false,
-- is probed here on a session of its own.  Its handshake resumes the main
-- session's TLS session when the server allows it (facts: session_offered,
-- resumed): this probe observes command handling, not the handshake, and a
-- full one costs a second certificate chain and key exchange per address.  A server that does not resume gets
-- a full handshake, with the same verdict.
local iputil = require "mxprobe.net.iputil"
local dialog = require "mxprobe.smtp.dialog"
local reply = require "mxprobe.smtp.reply"
local injection = require "mxprobe.smtp.injection"

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
    local why = injection.not_here(ctx, true)
    if why then return false, why end
    return true
  end,

  run = function(ctx)
    local carried = ctx.facts.starttls.injection_probe
    if carried and carried.result ~= "unsettled" then
      ctx:fact { carried = true }
      if carried.result == "executed" then
        return ctx:finding("STARTTLS_COMMAND_INJECTION", { code = carried.code, text = carried.text })
      end
      return ctx:finding("STARTTLS_INJECTION_SAFE", {})
    end
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
      allow_buffered = true, payload = injection.PAYLOAD, session = offer,
      deadline = ctx:deadline("command"), tls_deadline = ctx:deadline("tls") })
    dialog.report(ctx, { s })
    if not r or not info then return s:close() end
    fact.resumed = info.resumed == true
    -- a vulnerable server answers the injected RCPT inside TLS, maybe even
    -- before our EHLO is sent: the pairing is mxprobe.smtp.injection's
    local r2, verdict, injected = injection.ehlo_after(s, ctx.config.helo, ctx:deadline("command"))
    if not r2 then return s:close() end
    if verdict == "discarded" then
      ctx:finding("STARTTLS_INJECTION_SAFE", {})
    elseif verdict == "executed" then
      ctx:finding("STARTTLS_COMMAND_INJECTION", { code = injected.code, text = reply.text(injected) })
    end
    dialog.quit(s)
  end,
}
