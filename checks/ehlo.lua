-- Step 4 of the seed: EHLO and the extensions the server offers, with a
-- fall back to HELO when EHLO is refused (mxprobe.smtp.dialog.ehlo).  A 421
-- is the server closing on a throttled client: inconclusive, and no HELO
-- after it (mxprobe.smtp.reply decides).
local dialog = require "mxprobe.smtp.dialog"
local reply = require "mxprobe.smtp.reply"

local function auth_before_tls(ctx, f)
  if not (f.auth and #f.auth > 0) then return end
  for _, m in ipairs(f.auth) do
    if m == "PLAIN" or m == "LOGIN" then
      return ctx:finding("EHLO_AUTH_BEFORE_TLS", { mechanisms = table.concat(f.auth, " ") })
    end
  end
end

-- The reply to EHLO could not be read at all: say what happened to EHLO,
-- not that HELO (never sent) failed too.
local function unreadable(code, detail)
  local lines = (detail or ""):match("too many lines in one reply %(over (%d+) lines%)")
  if lines then return ("EHLO reply exceeded %s lines"):format(lines) end
  return ("%s %s"):format(code, detail or "")
end

return {
  id = "ehlo",
  description = "EHLO (or HELO as a fall back) and the extensions offered: PIPELINING, SIZE, STARTTLS, 8BITMIME, SMTPUTF8, CHUNKING, ENHANCEDSTATUSCODES, REQUIRETLS, AUTH",
  categories = { "smtp" },
  scope = "session",
  requires = { "banner" },
  findings = {
    EHLO_OK = { severity = "ok", message = "EHLO accepted; extensions: {extensions}" },
    EHLO_HELO_ONLY = { severity = "warning", message = "EHLO refused ({code} {text}); HELO accepted: no extensions, so no STARTTLS",
      hint = "Enable ESMTP in the MTA; without EHLO, senders cannot use STARTTLS, SIZE or 8BITMIME." },
    EHLO_FAILED = { severity = "critical", message = "Neither EHLO nor HELO was accepted ({code} {detail})",
      hint = "The server refuses the session after the greeting; check its HELO/EHLO restrictions and logs." },
    EHLO_UNREADABLE = { severity = "critical", message = "The reply to EHLO could not be read: {detail}",
      hint = "The server's EHLO reply breaks the protocol or the client's limits (RFC 5321 4.5.3.1); check what answers on port 25." },
    EHLO_AUTH_BEFORE_TLS = { severity = "warning", message = "AUTH {mechanisms} is offered before STARTTLS: passwords could cross the network in plaintext",
      hint = "Offer AUTH only after TLS (Postfix: smtpd_tls_auth_only = yes), or not at all on port 25." },
    EHLO_NO_8BITMIME = { severity = "info", message = "8BITMIME is not offered" },
    EHLO_421 = { severity = "inconclusive", message = "421 to {command}: the server is busy or throttling the tester ({text})",
      hint = "Test again later or from another address; 421 is temporary and not a fault by itself." },
  },

  applies = function(ctx)
    if not (ctx.facts.banner and ctx.facts.banner.ok) then return false, "no 220 greeting" end
    if ctx:session() == nil then return false, "the session was closed" end
    return true
  end,

  run = function(ctx)
    local sess = ctx:session()
    -- a reply and its info, or nil, code, detail and the info
    local r, code, detail, info = dialog.ehlo(sess, ctx.config.helo, { fallback = true, deadline = ctx:deadline("command") })
    if r then info = code end
    dialog.report(ctx, { sess })
    if r and r.code == 250 and info.verb == "EHLO" then
      local f = info.extensions
      f.seconds = r.seconds
      ctx:fact(f)
      ctx:finding("EHLO_OK", { extensions = #f.extensions > 0 and f.extensions or { "(none)" } })
      -- inside implicit TLS AUTH is where it belongs; on a submission port
      -- the submission_auth check judges it (more severely)
      if not sess.implicit_tls and not ctx.config.submission then auth_before_tls(ctx, f) end
      if not f.keywords["8BITMIME"] then ctx:finding("EHLO_NO_8BITMIME", {}) end
      return
    end
    local ehlo_reply = info and info.ehlo or (info and info.verb == "EHLO" and r) or nil
    if not r then
      ctx:fact { failed = true, error = code }
      if info and info.verb == "HELO" then
        -- EHLO was refused, then HELO went unanswered
        return ctx:finding("EHLO_FAILED", { code = code, detail = ("EHLO %d %s; HELO: %s"):format(
          ehlo_reply.code, reply.text(ehlo_reply), detail or "") })
      end
      return ctx:finding("EHLO_UNREADABLE", { code = code, detail = unreadable(code, detail) })
    end
    if reply.throttled(r) then
      ctx:fact { failed = true, throttled = true }
      ctx:not_tested(("421 to %s: the server is throttling the tester"):format(info.verb))
      return ctx:finding("EHLO_421", { command = info.verb, code = 421, text = reply.text(r) })
    end
    if r.code == 250 then
      ctx:fact { extensions = {}, keywords = {}, starttls = false, helo_only = true, seconds = r.seconds }
      return ctx:finding("EHLO_HELO_ONLY", { code = ehlo_reply.code, text = reply.text(ehlo_reply) })
    end
    ctx:fact { failed = true }
    ctx:finding("EHLO_FAILED", { code = r.code, detail = reply.text(r) })
  end,
}
