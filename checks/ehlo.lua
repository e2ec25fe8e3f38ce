-- Step 4 of the seed: EHLO and the extensions the server offers, with a
-- fall back to HELO when EHLO is refused.  A 421 is the server closing on
-- a throttled client: inconclusive, and no HELO after it.
local extensions = require "mxprobe.smtp.extensions"

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
    EHLO_AUTH_BEFORE_TLS = { severity = "warning", message = "AUTH {mechanisms} is offered before STARTTLS: passwords could cross the network in plaintext",
      hint = "Offer AUTH only after TLS (Postfix: smtpd_tls_auth_only = yes), or not at all on port 25." },
    EHLO_NO_8BITMIME = { severity = "info", message = "8BITMIME is not offered" },
    EHLO_421 = { severity = "inconclusive", message = "421 to EHLO/HELO: the server is busy or throttling the tester ({text})",
      hint = "Test again later or from another address; 421 is temporary and not a fault by itself." },
  },

  applies = function(ctx)
    return ctx.facts.banner and ctx.facts.banner.ok and ctx:session() ~= nil
  end,

  run = function(ctx)
    local sess = ctx:session()
    local helo = ctx.config.helo
    local r, code, detail = sess:command("EHLO " .. helo, ctx:deadline("command"))
    if r and r.code == 250 then
      local f = extensions.parse(r.lines or {})
      ctx:fact(f)
      ctx:finding("EHLO_OK", { extensions = #f.extensions > 0 and f.extensions or { "(none)" } })
      -- inside implicit TLS AUTH is where it belongs; on a submission port
      -- the submission_auth check judges it (more severely)
      if f.auth and #f.auth > 0 and not sess.implicit_tls and not ctx.config.submission then
        local plain = false
        for _, m in ipairs(f.auth) do if m == "PLAIN" or m == "LOGIN" then plain = true end end
        if plain then ctx:finding("EHLO_AUTH_BEFORE_TLS", { mechanisms = table.concat(f.auth, " ") }) end
      end
      if not f.keywords["8BITMIME"] then ctx:finding("EHLO_NO_8BITMIME", {}) end
      return
    end
    if not r then
      ctx:fact { failed = true }
      return ctx:finding("EHLO_FAILED", { code = code, detail = detail or "" })
    end
    local ehlo_code, ehlo_text = r.code, table.concat(r.lines or {}, " ")
    if ehlo_code == 421 then
      ctx:fact { failed = true, throttled = true }
      return ctx:finding("EHLO_421", { code = ehlo_code, text = ehlo_text })
    end
    local h = sess:command("HELO " .. helo, ctx:deadline("command"))
    if h and h.code == 250 then
      ctx:fact { extensions = {}, keywords = {}, starttls = false, helo_only = true }
      return ctx:finding("EHLO_HELO_ONLY", { code = ehlo_code, text = ehlo_text })
    end
    if h and h.code == 421 then
      ctx:fact { failed = true, throttled = true }
      return ctx:finding("EHLO_421", { code = 421, text = table.concat(h.lines or {}, " ") })
    end
    ctx:fact { failed = true }
    ctx:finding("EHLO_FAILED", { code = h and h.code or ehlo_code, detail = h and table.concat(h.lines or {}, " ") or ehlo_text })
  end,
}
