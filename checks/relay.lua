-- Step 7 of the seed: does the server relay for strangers?  MAIL FROM and
-- RCPT TO an address in an external domain, never DATA, then RSET (QUIT
-- follows when the server's checks end).  Reading the RCPT reply:
--   2xx open relay; 450/451 deferred (greylisting, not a relay);
--   421 the server is closing on us (throttling): inconclusive, whatever
--   its enhanced code or text say;
--   550/551/553, or any reply with 5.7.1 / "relay" in it: denied;
--   554 otherwise: rejected for another reason (blacklist, policy).

local function text_of(r) return table.concat(r.lines or {}, " ") end

local function relay_refusal(r)
  local t = text_of(r):lower()
  return (r.enhanced and r.enhanced:match("^[45]%.7%.1$")) or t:find("relay", 1, true)
end

-- A fresh plaintext session when the main one is gone (TLS failed, ...).
local function reopen(ctx)
  local s = ctx:open_session()
  if not s then return nil, "cannot reconnect" end
  local g = s:read_reply(ctx:deadline("greeting"))
  if not g or g.code ~= 220 then return nil, "no greeting on reconnect" end
  local r = s:command("EHLO " .. ctx.config.helo, ctx:deadline("command"))
  if not r or r.code ~= 250 then
    r = s:command("HELO " .. ctx.config.helo, ctx:deadline("command"))
    if not r or r.code ~= 250 then return nil, "EHLO/HELO refused on reconnect" end
  end
  return s
end

return {
  id = "relay",
  description = "Open relay probe: MAIL FROM and RCPT TO an external domain (never DATA), then RSET",
  categories = { "smtp", "security" },
  scope = "session",
  requires = { "ehlo" },
  findings = {
    RELAY_DENIED = { severity = "ok", message = "Relaying to <{to}> refused ({code} {text})" },
    RELAY_OPEN = { severity = "critical", message = "OPEN RELAY: RCPT TO:<{to}> accepted from a stranger ({code} {text})",
      hint = "Fix it now: spammers find open relays within hours. Postfix: smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination; Exchange: check the receive connectors." },
    RELAY_DEFERRED = { severity = "info", message = "RCPT deferred ({code} {text}): greylisting or a temporary check, not an open relay" },
    RELAY_REJECTED = { severity = "info", message = "RCPT rejected for another reason ({code} {text}): blacklist or policy, not an open relay" },
    RELAY_MAIL_REJECTED = { severity = "inconclusive", message = "MAIL FROM:<{from}> was refused ({code} {text}): relaying could not be tested" },
    RELAY_INCONCLUSIVE = { severity = "inconclusive", message = "The relay probe could not finish: {detail}" },
  },

  applies = function(ctx)
    local e = ctx.facts.ehlo
    -- on a submission port (--submission) the submission_unauth check asks
    -- the stricter question: is MAIL without AUTH refused at all?
    return ctx.config.relay.enabled ~= false and not ctx.config.submission and e ~= nil and not e.failed
  end,

  run = function(ctx)
    local cfg = ctx.config.relay
    local from, to = cfg.from, cfg.to
    local sess = ctx:session()
    if not sess then
      local err
      sess, err = reopen(ctx)
      if not sess then return ctx:finding("RELAY_INCONCLUSIVE", { detail = err }) end
    end
    local fact = { from = from, to = to, tls = sess.tls ~= nil }
    ctx:fact(fact)
    local m, code, detail = sess:command(("MAIL FROM:<%s>"):format(from), ctx:deadline("command"))
    if not m then return ctx:finding("RELAY_INCONCLUSIVE", { detail = ("MAIL FROM: %s %s"):format(code, detail or "") }) end
    if m.code ~= 250 then
      fact.mail_code = m.code
      return ctx:finding("RELAY_MAIL_REJECTED", { from = from, code = m.code, text = text_of(m) })
    end
    local r, rcode, rdetail = sess:command(("RCPT TO:<%s>"):format(to), ctx:deadline("command"))
    if not r then return ctx:finding("RELAY_INCONCLUSIVE", { detail = ("RCPT TO: %s %s"):format(rcode, rdetail or "") }) end
    sess:command("RSET", ctx:deadline("command"))
    fact.code, fact.enhanced, fact.text = r.code, r.enhanced, text_of(r)
    local ev = { to = to, code = r.code, text = text_of(r), enhanced = r.enhanced }
    local c = r.code
    if c >= 200 and c < 300 then
      fact.verdict = "open"; return ctx:finding("RELAY_OPEN", ev)
    elseif c == 421 then
      -- "421 4.7.1 try later" is a throttle, not a relaying decision
      fact.verdict = "throttled"
      return ctx:finding("RELAY_INCONCLUSIVE", { detail = ("RCPT TO: 421 %s (the server is throttling the tester)"):format(text_of(r)) })
    elseif c == 450 or c == 451 then
      fact.verdict = "deferred"; return ctx:finding("RELAY_DEFERRED", ev)
    elseif c == 550 or c == 551 or c == 553 or ((c >= 400 and c < 600) and relay_refusal(r)) then
      fact.verdict = "denied"; return ctx:finding("RELAY_DENIED", ev)
    elseif c == 554 or (c >= 500 and c < 600) then
      fact.verdict = "rejected"; return ctx:finding("RELAY_REJECTED", ev)
    end
    fact.verdict = "unknown"
    ctx:finding("RELAY_INCONCLUSIVE", { detail = ("unexpected reply %d %s"):format(c, text_of(r)) })
  end,
}
