-- --submission: the relay probe's stricter sibling.  On a submission port
-- every message needs AUTH, so MAIL FROM and RCPT TO (an external domain,
-- as the relay probe) without AUTH must be refused: 530 5.7.0
-- "Authentication required" at MAIL, or a refusal at RCPT.  Never DATA;
-- RSET after (QUIT follows when the server's checks end).  Inside TLS when
-- TLS worked (the session of starttls), else on a fresh session.
local extensions = require "mxprobe.smtp.extensions"

local function text_of(r) return table.concat(r.lines or {}, " ") end

-- A fresh session when the main one is gone (the injection check ends
-- it), inside STARTTLS when the server offers it: the question is whether
-- a client that did everything but AUTH can submit.
local function reopen(ctx)
  local s = ctx:open_session()
  if not s then return nil, "cannot reconnect" end
  local g = s:read_reply(ctx:deadline("greeting"))
  if not g or g.code ~= 220 then return nil, "no greeting on reconnect" end
  local r = s:command("EHLO " .. ctx.config.helo, ctx:deadline("command"))
  if not r or r.code ~= 250 then return nil, "EHLO refused on reconnect" end
  if not s.tls and extensions.parse(r.lines or {}).starttls then
    local st = s:command("STARTTLS", ctx:deadline("command"))
    if not st or st.code ~= 220 then return nil, "STARTTLS refused on reconnect" end
    local literal = ctx.host:find("^[%d.]+$") or ctx.host:find(":", 1, true)
    local info = s:starttls({ sni = not literal and ctx.host or nil, verify_name = ctx.host, ca_file = ctx.config.ca_file },
                            ctx:deadline("tls"))
    if not info then return nil, "the TLS handshake failed on reconnect" end
    r = s:command("EHLO " .. ctx.config.helo, ctx:deadline("command"))
    if not r or r.code ~= 250 then return nil, "EHLO inside TLS refused on reconnect" end
  end
  return s
end

return {
  id = "submission_unauth",
  description = "Submission (--submission): MAIL and RCPT without AUTH are refused (never DATA), then RSET",
  categories = { "smtp", "security", "submission" },
  scope = "session",
  requires = { "starttls" },
  findings = {
    SUBMISSION_UNAUTH_REFUSED = { severity = "ok", message = "Mail without AUTH is refused at {stage} ({code} {text})" },
    SUBMISSION_UNAUTH_ACCEPTED = { severity = "critical", message = "MAIL FROM:<{from}> and RCPT TO:<{to}> were accepted without AUTH ({code} {text}): anyone can submit mail through this server",
      hint = "Require authentication on the submission service (Postfix: -o smtpd_relay_restrictions=permit_sasl_authenticated,reject -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject)." },
    SUBMISSION_UNAUTH_DEFERRED = { severity = "warning", message = "Mail without AUTH is deferred at {stage} ({code} {text}) instead of refused",
      hint = "A submission server should answer 530 5.7.0 (authentication required) to a client that has not authenticated." },
    SUBMISSION_UNAUTH_INCONCLUSIVE = { severity = "inconclusive", message = "Mail without AUTH could not be tried: {detail}" },
  },

  -- the envelope of the probe, as the relay check's (a policy sets both)
  options = { from = "mxprobe@mxprobe.example", to = "relay-test@example.com" },

  applies = function(ctx)
    local e = ctx.facts.ehlo
    if ctx.config.submission ~= true then return false, "not a submission port (--submission)" end
    if e == nil or e.failed then return false, "EHLO and HELO failed" end
    return true
  end,

  run = function(ctx)
    local from, to = ctx:option("from"), ctx:option("to")
    local sess = ctx:session()
    if not sess then
      local err
      sess, err = reopen(ctx)
      if not sess then return ctx:finding("SUBMISSION_UNAUTH_INCONCLUSIVE", { detail = err }) end
    end
    local fact = { from = from, to = to, tls = sess.tls ~= nil }
    ctx:fact(fact)
    local function judge(stage, r)
      fact.stage, fact.code, fact.enhanced, fact.text = stage, r.code, r.enhanced, text_of(r)
      local ev = { stage = stage, code = r.code, text = text_of(r), from = from, to = to }
      if r.code == 421 then
        fact.verdict = "throttled"
        ctx:finding("SUBMISSION_UNAUTH_INCONCLUSIVE", { detail = ("421 at %s: %s"):format(stage, text_of(r)) })
      elseif r.code >= 500 then
        fact.verdict = "refused"
        ctx:finding("SUBMISSION_UNAUTH_REFUSED", ev)
      elseif r.code >= 400 then
        fact.verdict = "deferred"
        ctx:finding("SUBMISSION_UNAUTH_DEFERRED", ev)
      else
        return false -- accepted: go on
      end
      return true
    end
    local m, code, detail = sess:command(("MAIL FROM:<%s>"):format(from), ctx:deadline("command"))
    if not m then return ctx:finding("SUBMISSION_UNAUTH_INCONCLUSIVE", { detail = ("MAIL FROM: %s %s"):format(code, detail or "") }) end
    if judge("MAIL FROM", m) then
      sess:command("RSET", ctx:deadline("command"))
      return
    end
    local r, rcode, rdetail = sess:command(("RCPT TO:<%s>"):format(to), ctx:deadline("command"))
    if not r then return ctx:finding("SUBMISSION_UNAUTH_INCONCLUSIVE", { detail = ("RCPT TO: %s %s"):format(rcode, rdetail or "") }) end
    if not judge("RCPT TO", r) then
      fact.verdict = "accepted"
      ctx:finding("SUBMISSION_UNAUTH_ACCEPTED", { code = r.code, text = text_of(r), from = from, to = to })
    end
    sess:command("RSET", ctx:deadline("command"))
  end,
}
