-- Step 5 of the seed: STARTTLS and the negotiated TLS version.  After the
-- 220 to STARTTLS, bytes already buffered are an injection: they are never
-- fed into TLS, they are reported.  After TLS, EHLO again (RFC 3207 4.2).
-- A 421 (to STARTTLS or to the EHLO inside TLS) is a throttle: inconclusive
-- (mxprobe.smtp.reply decides).  The steps are mxprobe.smtp.dialog's.
-- When the starttls_injection check runs here, this STARTTLS carries its
-- pipelined RCPT (mxprobe.smtp.injection): one TLS handshake per address
-- instead of two.  Whatever that cannot settle starts over on a clean
-- session, so this check's findings never rest on the pipelined bytes.
local extensions = require "mxprobe.smtp.extensions"
local dialog = require "mxprobe.smtp.dialog"
local reply = require "mxprobe.smtp.reply"
local iputil = require "mxprobe.net.iputil"
local loop = require "mxprobe.runtime.loop"
local vocab = require "mxprobe.runtime.vocab"
local injection = require "mxprobe.smtp.injection"

local VERSION_RANK = vocab.TLS_RANK

-- The version and cipher findings of an established TLS session.
local function judge_version(ctx, info)
  local v = info.protocol
  local ev = { version = v, cipher = info.cipher, bits = info.bits }
  if v == "TLSv1.3" then ctx:finding("TLS_VERSION_13", ev)
  elseif v == "TLSv1.2" then ctx:finding("TLS_VERSION_12", ev)
  elseif v == "TLSv1" or v == "TLSv1.1" then ctx:finding("TLS_VERSION_DEPRECATED", ev)
  else ctx:finding("TLS_VERSION_BROKEN", ev) end
  local min = ctx:threshold("min_tls")
  if min and VERSION_RANK[min] and VERSION_RANK[v] and VERSION_RANK[v] < VERSION_RANK[min]
     and VERSION_RANK[v] >= VERSION_RANK["TLSv1.2"] then
    ev.min = min
    ctx:finding("TLS_VERSION_BELOW_POLICY", ev)
  end
  if info.bits and info.bits < 128 then ctx:finding("TLS_WEAK_CIPHER", ev) end
end

-- A reply for the probe's fact: { code, text (80 characters at most) }.
local function brief(r)
  local t = reply.text(r)
  return r.code, #t > 80 and t:sub(1, 80) .. "..." or t
end

-- What a STARTTLS that carried the injection probe leaves unsettled, as
-- the probe's fact { result, code, text, why }, or nil when its outcome stands
-- for the main session's: a completed handshake, a 421 (a throttle is
-- not asked twice) or a time-out (a server that hangs is not waited for
-- twice).  A refusal may be the pipelining's (Postfix's
-- smtpd_forbid_unauth_pipelining: 554 and close); bytes after the 220, a
-- failed handshake or a closed connection may be too.
local function unsettled(r, info, tdetail, extra)
  if r and info then return nil end
  local answer = r or (extra and extra.reply)
  if answer and reply.throttled(answer) then return nil end
  if r then
    local code, text = brief(r)
    return { result = "refused", code = code, text = text }
  end
  if info == "timeout" then return nil end
  return { result = "unsettled", why = ("%s%s"):format(info or "?", tdetail and (": " .. tdetail) or "") }
end

-- A clean session in place of the main one, up to where STARTTLS is sent
-- (greeting and EHLO: their checks judged the first session's), or nil.
local function start_over(ctx)
  local s = ctx:open_session()
  if not s then return nil end
  local g = dialog.greet(s, { deadline = ctx:deadline("greeting") })
  local e = g and g.code == 220 and dialog.ehlo(s, ctx.config.helo, { deadline = ctx:deadline("command") })
  dialog.report(ctx, { s })
  if not (e and e.code == 250) then s:close(); return nil end
  return s
end

return {
  id = "starttls",
  description = "STARTTLS: advertised, accepted, handshake, negotiated version and cipher, EHLO after TLS, plaintext injection",
  categories = { "smtp", "tls" },
  scope = "session",
  requires = { "ehlo" },
  -- false: the main STARTTLS never carries the injection probe's RCPT
  -- (starttls_injection then probes on a session of its own)
  options = { carry_injection = true },
  findings = {
    STARTTLS_NOT_OFFERED = { severity = "critical", message = "STARTTLS is not offered: mail to this server travels in plaintext",
      hint = "Enable STARTTLS with a certificate (Postfix: smtpd_tls_security_level = may, smtpd_tls_chain_files = key.pem, fullchain.pem)." },
    STARTTLS_REJECTED = { severity = "critical", message = "STARTTLS is advertised but the command was refused ({code} {text})",
      hint = "The MTA offers TLS it cannot start: check that its certificate and key files exist and are readable." },
    STARTTLS_PLAINTEXT_BUFFERED = { severity = "critical", message = "{bytes} bytes of plaintext followed the STARTTLS 220 reply ({preview}); TLS was not started over them",
      hint = "Something between the tester and the server injects data into the SMTP stream (CVE-2011-0411 class); inspect middleboxes and the MTA." },
    STARTTLS_HANDSHAKE_FAILED = { severity = "critical", message = "STARTTLS was accepted but the TLS handshake failed ({code}: {detail})",
      hint = "Check the certificate and key configured in the MTA, file permissions, and the protocol versions it allows." },
    TLS_VERSION_13 = { severity = "ok", message = "TLS 1.3 negotiated ({cipher})" },
    TLS_VERSION_12 = { severity = "ok", message = "TLS 1.2 negotiated ({cipher}): acceptable; TLS 1.3 is better" },
    TLS_VERSION_DEPRECATED = { severity = "warning", message = "{version} negotiated: deprecated by RFC 8996",
      hint = "Allow TLS 1.2 and 1.3 only (Postfix: smtpd_tls_protocols = >=TLSv1.2)." },
    TLS_VERSION_BROKEN = { severity = "critical", message = "{version} negotiated: broken",
      hint = "Disable SSL 2 and 3 in the MTA." },
    TLS_VERSION_BELOW_POLICY = { severity = "warning", message = "{version} is below the policy minimum {min}" },
    TLS_WEAK_CIPHER = { severity = "warning", message = "Weak cipher {cipher} ({bits} bits)",
      hint = "Remove ciphers below 128 bits from the MTA's configuration." },
    TLS_EHLO_FAILED = { severity = "critical", message = "EHLO after STARTTLS failed ({code} {detail})",
      hint = "The server breaks down after TLS is up; check its TLS session handling." },
    TLS_EHLO_CHANGED = { severity = "info", message = "Extensions after TLS differ: added {added}; removed {removed}" },
    STARTTLS_421 = { severity = "inconclusive", message = "421 to {command}: the server is busy or throttling the tester ({text})",
      hint = "Test again later or from another address; 421 is temporary and not a fault by itself." },
  },

  applies = function(ctx)
    local e = ctx.facts.ehlo
    if not e or e.failed then return false, "EHLO and HELO failed" end
    if ctx:session() == nil then return false, "the session was closed" end
    return true
  end,

  run = function(ctx)
    local sess = ctx:session()
    local plain = ctx.facts.ehlo
    if sess.implicit_tls then
      -- --implicit-tls: TLS came before the greeting (the session did it);
      -- the same facts and version findings, and no second EHLO
      local info = sess.tls
      ctx:fact { implicit = true, handshake = true, version = info.protocol, cipher = info.cipher, bits = info.bits }
      ctx:set_tls(info)
      return judge_version(ctx, info)
    end
    local fact = { offered = plain.starttls == true }
    ctx:fact(fact)
    if not plain.starttls then return ctx:finding("STARTTLS_NOT_OFFERED", {}) end

    local sni = not iputil.is_literal(ctx.host) and ctx.host or nil
    local t0 = loop.now()
    local function attempt(s, payload)
      local r, info, tdetail, extra = dialog.starttls(s, {
        sni = sni, verify_name = ctx.host, ca_file = ctx.config.ca_file, payload = payload,
        deadline = ctx:deadline("command"), tls_deadline = ctx:deadline("tls"),
      })
      dialog.report(ctx, { s })
      return r, info, tdetail, extra
    end
    local carry = ctx:option("carry_injection") == true and ctx:will_run("starttls_injection")
      and injection.not_here(ctx, false) == nil
    local r, info, tdetail, extra = attempt(sess, carry and injection.PAYLOAD or nil)
    local probe = carry and unsettled(r, info, tdetail, extra)
    if probe then
      fact.injection_probe = probe
      local clean = start_over(ctx)
      -- no clean session: the carried attempt's outcome is all there is
      if clean then
        sess = clean
        r, info, tdetail, extra = attempt(sess, nil)
      end
    end
    local answer = r or extra.reply
    if not answer then
      -- no reply to STARTTLS at all
      fact.accepted = false
      sess:close()
      return ctx:finding("STARTTLS_REJECTED", { code = info, text = tdetail or "" })
    end
    if reply.throttled(answer) then
      fact.throttled = true
      sess:close()
      ctx:not_tested("421 to STARTTLS: TLS could not be tested")
      return ctx:finding("STARTTLS_421", { command = "STARTTLS", text = reply.text(answer) })
    end
    if answer.code ~= 220 then
      fact.accepted = false
      sess:close()
      return ctx:finding("STARTTLS_REJECTED", { code = answer.code, text = reply.text(answer) })
    end
    fact.accepted = true
    if not r then
      local tcode = info
      sess:close()
      fact.seconds = loop.now() - t0
      if tcode == "injection" then
        -- count after the refusal: the TLS layer also pulls in bytes that
        -- were still in the kernel when it looked; `injected` is escaped
        fact.injection = true
        local bytes = tonumber((tdetail or ""):match("^(%d+) bytes")) or sess:buffered()
        local preview = extra.injected or ""
        if #preview > 60 then preview = preview:sub(1, 60) .. "..." end
        return ctx:finding("STARTTLS_PLAINTEXT_BUFFERED", { bytes = bytes, preview = preview })
      end
      fact.handshake = false
      return ctx:finding("STARTTLS_HANDSHAKE_FAILED", { code = tcode, detail = tdetail or "" })
    end
    fact.handshake = true
    fact.version, fact.cipher, fact.bits = info.protocol, info.cipher, info.bits
    fact.handshake_seconds = info.handshake_s
    ctx:set_tls(info) -- the certificate check reads the chain through ctx:tls()
    judge_version(ctx, info)

    -- forget the plaintext capabilities; ask again inside TLS
    local r2, c2, d2
    if carry and not probe then
      -- the injected RCPT's reply, if the server ran it, comes first
      local verdict, injected
      r2, verdict, injected = injection.ehlo_after(sess, ctx.config.helo, ctx:deadline("command"))
      if not r2 then
        c2, d2 = verdict, injected
        probe = { result = "unsettled", why = ("EHLO inside TLS: %s"):format(tostring(c2)) }
      elseif verdict then
        c2 = { extensions = r2.extensions }
        probe = { result = verdict }
        if injected then probe.code, probe.text = brief(injected) end
      else
        probe = { result = "unsettled", why = ("the reply to EHLO inside TLS was %d %s"):format(brief(r2)) }
      end
      fact.injection_probe = probe
    else
      r2, c2, d2 = dialog.ehlo(sess, ctx.config.helo, { deadline = ctx:deadline("command") })
    end
    dialog.report(ctx, { sess })
    fact.seconds = loop.now() - t0
    if r2 and reply.throttled(r2) then
      fact.throttled = true
      sess:close()
      return ctx:finding("STARTTLS_421", { command = "EHLO after STARTTLS", text = reply.text(r2) })
    end
    if not r2 or r2.code ~= 250 then
      sess:close()
      return ctx:finding("TLS_EHLO_FAILED", { code = r2 and r2.code or c2, detail = r2 and reply.text(r2) or (d2 or "") })
    end
    -- the TLS session for this server's later probe to resume
    -- (starttls_injection, when the carried probe settled nothing): taken
    -- now, because TLS 1.3 tickets come after the handshake and were read
    -- with this reply.  The main session itself always makes a full
    -- handshake (nothing is offered to it).
    if not (probe and probe.result ~= "unsettled") then
      local resumable = sess:tls_session()
      if resumable then ctx:set_tls_session(resumable) end
    end
    local after = c2.extensions -- with a reply, the second value is the EHLO info
    fact.ehlo_after = after.extensions
    local added, removed = extensions.missing(after, plain), extensions.missing(plain, after)
    for i = #removed, 1, -1 do if removed[i] == "STARTTLS" then table.remove(removed, i) end end
    -- on a submission port AUTH appearing inside TLS is the point (submission_auth says so)
    if ctx.config.submission then
      for i = #added, 1, -1 do if added[i] == "AUTH" then table.remove(added, i) end end
    end
    if #added > 0 or #removed > 0 then
      ctx:finding("TLS_EHLO_CHANGED", { added = #added > 0 and added or { "none" }, removed = #removed > 0 and removed or { "none" } })
    end
  end,
}
