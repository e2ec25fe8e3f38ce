-- --submission (port 587, RFC 6409; 465 with --implicit-tls, RFC 8314):
-- authentication must wait for TLS.  AUTH offered before STARTTLS lets a
-- client send its password in plaintext; a submission server that offers
-- no AUTH even inside TLS cannot be used by anyone.  (STARTTLS itself is
-- judged by the starttls check: STARTTLS_NOT_OFFERED is critical.)
local extensions = require "mxprobe.smtp.extensions"

local function auth_of(list)
  if type(list) ~= "table" then return nil end
  return extensions.parse(list).auth
end

return {
  id = "submission_auth",
  description = "Submission (--submission): AUTH offered only after TLS, and offered inside TLS",
  categories = { "smtp", "security", "submission" },
  scope = "session",
  requires = { "starttls" },
  findings = {
    SUBMISSION_AUTH_OK = { severity = "ok", message = "AUTH {mechanisms} is offered only inside TLS" },
    SUBMISSION_AUTH_BEFORE_TLS = { severity = "critical", message = "AUTH {mechanisms} is offered before STARTTLS on a submission port: passwords can cross the network in plaintext",
      hint = "Offer AUTH only after TLS (Postfix, in master.cf's submission service: -o smtpd_tls_security_level=encrypt -o smtpd_tls_auth_only=yes)." },
    SUBMISSION_NO_AUTH = { severity = "warning", message = "No AUTH is offered, even inside TLS: mail clients cannot authenticate to submit",
      hint = "Enable SMTP AUTH on the submission service (Postfix: -o smtpd_sasl_auth_enable=yes, with a SASL backend such as Dovecot)." },
  },

  applies = function(ctx)
    local t = ctx.facts.starttls
    return ctx.config.submission == true and t ~= nil
  end,

  run = function(ctx)
    local plain, t = ctx.facts.ehlo or {}, ctx.facts.starttls
    -- with implicit TLS the first EHLO was already inside TLS
    local before = not t.implicit and plain.auth or nil
    local inside = t.implicit and plain.auth or auth_of(t.ehlo_after)
    ctx:fact { before_tls = before or {}, inside_tls = inside or {} }
    if before and #before > 0 then
      return ctx:finding("SUBMISSION_AUTH_BEFORE_TLS", { mechanisms = table.concat(before, " ") })
    end
    if not t.handshake then return end -- no TLS: starttls said why; nothing to judge inside it
    if not inside or #inside == 0 then return ctx:finding("SUBMISSION_NO_AUTH", {}) end
    ctx:finding("SUBMISSION_AUTH_OK", { mechanisms = table.concat(inside, " ") })
  end,
}
