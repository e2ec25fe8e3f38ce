-- STARTTLS command injection (CVE-2011-0411 and its relatives): does the
-- server execute plaintext that was pipelined after STARTTLS as if it had
-- arrived inside TLS?  An attacker in the path could then inject commands
-- into the encrypted session.  Probed on a session of its own:
--   send "STARTTLS\r\nRCPT TO:<...>\r\n" in one write, do the handshake,
--   send EHLO.  A fixed server discards the pipelined RCPT, so the first
--   reply inside TLS answers our EHLO (250).  A vulnerable one answers the
--   injected RCPT first (503 "need MAIL", or a 5xx), then our EHLO.
local loop = require "mxprobe.runtime.loop"
local iputil = require "mxprobe.net.iputil"

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
    -- a slow greeting would be waited for twice: skip, the report says why not
    -- (implicit TLS has no STARTTLS to inject after)
    return t and t.handshake == true and not t.implicit and b and b.seconds < (ctx:threshold("greeting_slow_s") or 30)
  end,

  run = function(ctx)
    local s = ctx:extra_session()
    if not s then return end -- the main session already told what connecting does
    local g = s:read_reply(ctx:deadline("greeting"))
    if not g or g.code ~= 220 then return s:close() end
    local e = s:command("EHLO " .. ctx.config.helo, ctx:deadline("command"))
    if not e or e.code ~= 250 then return s:quit() end
    local dl = ctx:deadline("command")
    -- one write: the injected line travels in the same segment as STARTTLS
    s:note(">", "STARTTLS")
    s:note(">", INJECTED .. "   (pipelined on purpose)")
    local ok = s.sock:send("STARTTLS\r\n" .. INJECTED .. "\r\n", dl)
    if not ok then return s:close() end
    local r = s:read_reply(dl)
    if not r or r.code ~= 220 then return s:close() end
    local sni = not iputil.is_literal(ctx.host) and ctx.host or nil
    -- bytes answered in plaintext before the handshake are not this bug
    local info = s:starttls({ sni = sni, verify_name = ctx.host, ca_file = ctx.config.ca_file,
                              allow_buffered = true }, ctx:deadline("tls"))
    if not info then return s:close() end
    if not s:send_line("EHLO " .. ctx.config.helo, ctx:deadline("command")) then return s:close() end
    local first = s:read_reply(ctx:deadline("command"))
    if not first then return s:close() end
    if first.code == 250 then
      ctx:finding("STARTTLS_INJECTION_SAFE", {})
    else
      -- the reply to our EHLO must follow: then the first one answered the injection
      local second = s:read_reply(loop.now() + 2)
      if second and second.code == 250 then
        ctx:finding("STARTTLS_COMMAND_INJECTION", { code = first.code, text = table.concat(first.lines or {}, " ") })
      end
    end
    s:quit()
  end,
}
