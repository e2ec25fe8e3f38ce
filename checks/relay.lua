-- Step 7 of the seed: does the server relay for strangers?  MAIL FROM and
-- RCPT TO an address in an external domain, never DATA, then RSET (QUIT
-- follows when the server's checks end).  Reading the RCPT reply:
--   2xx open relay; 450/451 deferred (greylisting, not a relay);
--   421 the server is closing on us (throttling): inconclusive, whatever
--   its enhanced code or text say;
--   550/551/553, or any reply with 5.7.1 / "relay" in it: denied;
--   554 otherwise: rejected for another reason (blacklist, policy).
-- Then, in the same transaction, RCPT TO a local address of the domain
-- (postmaster@<domain>, RFC 5321 4.5.1 requires it): 451 shows greylisting
-- of real mail, 550 a missing postmaster, 250 is fine.
-- Where the server offers PIPELINING the four commands go in one write
-- (RFC 2920; issue 15: three round trips fewer per address), and a relay
-- that looks open is asked again one command at a time before it is said.
-- The replies' classes are mxprobe.smtp.reply's; the steps mxprobe.smtp.dialog's.
local loop = require "mxprobe.runtime.loop"
local dialog = require "mxprobe.smtp.dialog"
local reply = require "mxprobe.smtp.reply"

local text_of = reply.text


-- A fresh plaintext session when the main one is gone (TLS failed, ...).
local function reopen(ctx)
  local s = ctx:open_session()
  if not s then return nil, "cannot reconnect" end
  local g = dialog.greet(s, { deadline = ctx:deadline("greeting") })
  if not g or g.code ~= 220 then return nil, "no greeting on reconnect" end
  local r = dialog.ehlo(s, ctx.config.helo, { fallback = true, deadline = ctx:deadline("command") })
  if not r or r.code ~= 250 then return nil, "EHLO/HELO refused on reconnect" end
  return s
end

local function verdict(r)
  local k = reply.classify(r)
  local c = r.code
  if k.class == "ok" then return "open", "RELAY_OPEN" end
  -- "421 4.7.1 try later" is a throttle, not a relaying decision
  if k.class == "throttled" then return "throttled" end
  if c == 450 or c == 451 then return "deferred", "RELAY_DEFERRED" end
  if c == 550 or c == 551 or c == 553 or reply.relay_refusal(r) then return "denied", "RELAY_DENIED" end
  if k.class == "permanent" then return "rejected", "RELAY_REJECTED" end
  return "unknown"
end

-- The local address to try after the relay probe (what the domain's own
-- mail meets), or nil with fact.local_rcpt saying why not.
local function local_target(ctx, fact)
  local template = ctx:option("local_rcpt")
  if template == "" then return end
  -- a shared probe (audits) tries the domain that started it, and says so
  -- in the evidence; --mx HOST tests a host, not a domain
  if not ctx.domain then fact.local_rcpt = { skipped = "no domain" }; return end
  if ctx:mode() == "host" then fact.local_rcpt = { skipped = "a host, not a domain, is tested" }; return end
  -- postmaster is the MX service's duty (RFC 5321 4.5.1), not a submission port's
  if ctx.config.submission or ctx.config.implicit_tls then
    fact.local_rcpt = { skipped = "a submission service, not the MX service" }; return
  end
  return (template:gsub("{domain}", ctx.domain))
end

-- The reply to RCPT TO the local address (or why there is none).
local function judge_local(ctx, fact, to, r, code, detail)
  local lf = { to = to }
  fact.local_rcpt = lf
  if not r then lf.error = ("%s %s"):format(code, detail or ""); return end
  lf.code, lf.enhanced, lf.text = r.code, r.enhanced, text_of(r)
  local ev = { to = to, code = r.code, text = text_of(r) }
  local class = reply.classify(r).class
  lf.class = class
  if class == "temporary" then ctx:finding("RELAY_LOCAL_GREYLISTED", ev)
  elseif class == "permanent" then ctx:finding("RELAY_POSTMASTER_REJECTED", ev) end
end

-- The probe's replies, one command at a time: MAIL, RCPT (relay), RCPT
-- (local, not after a throttle: the server is closing), RSET.  Returns
-- m, r, l (replies or nil) and the first error's code, detail.
local function one_by_one(ctx, sess, from, to, lto)
  local dl = function() return ctx:deadline("command") end
  local m, code, detail = dialog.mail(sess, from, { deadline = dl() })
  if not m then return nil, nil, nil, code, detail end
  if m.code ~= 250 then return m end
  local r, l
  r, code, detail = dialog.rcpt(sess, to, { deadline = dl() })
  if r and lto and verdict(r) ~= "throttled" then
    local lcode, ldetail
    l, lcode, ldetail = dialog.rcpt(sess, lto, { deadline = dl() })
    if not l then l = { error = { lcode, ldetail } } end
  end
  dialog.rset(sess, { deadline = dl() })
  return m, r, l, code, detail
end

-- The same four commands in one write (RFC 2920) where the server offers
-- PIPELINING: one round trip instead of four.  After a refused MAIL the
-- RCPTs are answered 503 and ignored; after a 421 the server closes and
-- the local RCPT's reply, if any, is not judged (as one_by_one never asks).
local function pipelined(ctx, sess, from, to, lto)
  local lines = { ("MAIL FROM:<%s>"):format(from), ("RCPT TO:<%s>"):format(to) }
  if lto then lines[#lines + 1] = ("RCPT TO:<%s>"):format(lto) end
  lines[#lines + 1] = "RSET"
  local got, code, detail = dialog.pipeline(sess, lines, { deadline = ctx:deadline("command") })
  local m, r = got[1], got[2]
  if not m or m.code ~= 250 then return m, nil, nil, code, detail end
  if not r then return m, nil, nil, code, detail end
  local l
  if lto and verdict(r) ~= "throttled" then
    l = got[3] or { error = { code, detail } }
  end
  return m, r, l
end

return {
  id = "relay",
  description = "Open relay probe: MAIL FROM and RCPT TO an external domain (never DATA), then RCPT TO postmaster of the domain, then RSET",
  categories = { "smtp", "security" },
  scope = "session",
  requires = { "ehlo" },
  -- the envelope of the probe (--relay-from, --relay-to; policy options.relay),
  -- and local_rcpt: the local address tried after the relay probe ("" skips it)
  options = { from = "mxprobe@mxprobe.example", to = "relay-test@example.com", local_rcpt = "postmaster@{domain}" },
  check_option = function(name, value)
    if name == "local_rcpt" and value == "" then return nil end
    if not value:match("^[^@%s<>]+@[^@%s<>]+$") or value:find("%c") then
      return ("%q is not a mail address (local@domain)"):format(value)
    end
  end,
  findings = {
    RELAY_DENIED = { severity = "ok", message = "Relaying to <{to}> refused ({code} {text})" },
    RELAY_OPEN = { severity = "critical", message = "OPEN RELAY: RCPT TO:<{to}> accepted from a stranger ({code} {text})",
      hint = "Fix it now: spammers find open relays within hours. Postfix: smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination; Exchange: check the receive connectors." },
    RELAY_DEFERRED = { severity = "info", message = "RCPT deferred ({code} {text}): greylisting or a temporary check, not an open relay" },
    RELAY_REJECTED = { severity = "info", message = "RCPT rejected for another reason ({code} {text}): blacklist or policy, not an open relay" },
    RELAY_MAIL_REJECTED = { severity = "inconclusive", message = "MAIL FROM:<{from}> was refused ({code} {text}): relaying could not be tested" },
    RELAY_INCONCLUSIVE = { severity = "inconclusive", message = "The relay probe could not finish: {detail}" },
    RELAY_LOCAL_GREYLISTED = { severity = "info",
      message = "RCPT TO:<{to}> deferred ({code} {text}): greylisting active, first mail from a new sender is delayed",
      hint = "Normal for greylisting; legitimate senders retry. Whitelist known senders if the delay matters." },
    RELAY_POSTMASTER_REJECTED = { severity = "warning",
      message = "RCPT TO:<{to}> rejected ({code} {text}): the domain must accept mail for postmaster (RFC 5321 section 4.5.1)",
      hint = "Accept mail for postmaster@ the domain (an alias to a person who reads it); reports about mail problems go there." },
  },

  applies = function(ctx)
    local e = ctx.facts.ehlo
    if e == nil or e.failed then return false, "EHLO and HELO failed" end
    -- on a submission port (--submission) the submission_unauth check asks
    -- the stricter question: is MAIL without AUTH refused at all?
    if ctx.config.submission then return false, "a submission port: submission_unauth asks instead" end
    return true
  end,

  run = function(ctx)
    local from, to = ctx:option("from"), ctx:option("to")
    local t0 = loop.now()
    local sess = ctx:session()
    if not sess then
      local err
      sess, err = reopen(ctx)
      if not sess then return ctx:finding("RELAY_INCONCLUSIVE", { detail = err }) end
    end
    local fact = { from = from, to = to, tls = sess.tls ~= nil }
    ctx:fact(fact)
    local function finish(code, ev)
      fact.seconds = loop.now() - t0
      dialog.report(ctx, { sess })
      if code then ctx:finding(code, ev) end
    end
    local lto = local_target(ctx, fact)
    local probe = sess.keywords and sess.keywords.PIPELINING and pipelined or one_by_one
    fact.pipelined = probe == pipelined
    local m, r, l, code, detail = probe(ctx, sess, from, to, lto)
    -- an open relay is only said on replies read in step: a pipelined 250
    -- might be a reply shifted by one the server sent unasked, so the
    -- verdict is asked again one command at a time (rare: open relays are)
    if probe == pipelined and m and m.code == 250 and r and verdict(r) == "open" then
      fact.confirmed_one_by_one = true
      m, r, l, code, detail = one_by_one(ctx, sess, from, to, lto)
    end
    if not m then return finish("RELAY_INCONCLUSIVE", { detail = ("MAIL FROM: %s %s"):format(code, detail or "") }) end
    if m.code ~= 250 then
      fact.mail_code = m.code
      return finish("RELAY_MAIL_REJECTED", { from = from, code = m.code, text = text_of(m) })
    end
    if not r then
      -- "unsolicited": the detail says what came before RCPT was sent
      local d = code == "unsolicited" and detail or ("RCPT TO: %s %s"):format(code, detail or "")
      return finish("RELAY_INCONCLUSIVE", { detail = d })
    end
    fact.code, fact.enhanced, fact.text = r.code, r.enhanced, text_of(r)
    local v, vcode = verdict(r)
    fact.verdict = v
    if l then
      if l.error then judge_local(ctx, fact, lto, nil, l.error[1], l.error[2])
      else judge_local(ctx, fact, lto, l) end
    end
    local ev = { to = to, code = r.code, text = text_of(r), enhanced = r.enhanced }
    if v == "throttled" then
      return finish("RELAY_INCONCLUSIVE", { detail = ("RCPT TO: 421 %s (the server is throttling the tester)"):format(text_of(r)) })
    end
    if not vcode then return finish("RELAY_INCONCLUSIVE", { detail = ("unexpected reply %d %s"):format(r.code, text_of(r)) }) end
    finish(vcode, ev)
  end,
}
