--- mxprobe.policy.sender_verdict: the verdict from the sender matrix
-- (mxprobe.policy.senders), the default policy's judgement (issue 10, 4):
--
-- * Certificate defects that every verifying sender treats alike
--   (expired, not yet valid, self-signed, untrusted, wrong name) get one
--   severity, policy.senders.certificate_defects (default "warning"): an
--   opportunistic sender delivers encrypted whatever the defect, and an
--   MTA-STS sender or a strict client refuses every one of them the same
--   way.  The finding's override says which senders fail at that address.
-- * Who fails decides (SENDERS_* codes, severities from their declaration
--   or the policy's findings table): a mechanism the domain opted into
--   (MTA-STS enforce, secure TLSA records) or the opportunistic senders
--   failing is critical; only the strict client failing is a warning.
-- * "When it breaks" within thresholds.expiry_warning_days: a warning
--   naming the date (SENDERS_BREAK_SOON).
--
-- It runs before the policy's rules, so a site rule reads and may re-judge
-- these findings like any other (api.set_severity).
local P = require "mxprobe.policy"
-- the matrix module is needed only when a verdict is made (after the
-- network work): required then, not when the engine loads this file for
-- FINDINGS (issue 15 (d): the time to the first DNS question)
local senders_mod
local function senders()
    -- lazy: only a verdict needs the matrix module, not the engine's FINDINGS
    senders_mod = senders_mod or require "mxprobe.policy.senders"
    return senders_mod
end
local paths = require "mxprobe.runtime.paths"
local config_errors = require "mxprobe.runtime.config_errors"
local findings = require "mxprobe.runtime.findings"

local M = {}

local TLS_HINT = "MTA-STS senders and strict clients need STARTTLS, TLS 1.2 or later and a certificate from a public CA naming the MX host."

-- Declared here, listed by the engine's catalog as the pseudo-check
-- "senders" (--explain, docs/codes.md).
M.FINDINGS = {
  SENDERS_OPPORTUNISTIC_FAIL = { severity = "critical",
    message = "Opportunistic senders (most MTAs) {what} to {domain} ({reason}): no sender gets mail through",
    hint = "Every MX address failed before mail could be handed over; see the findings of each server." },
  SENDERS_MTA_STS_FAIL = { severity = "critical",
    message = "MTA-STS senders {what} to {domain} ({reason}): the domain's enforce policy forbids them to deliver without an authenticated TLS connection",
    hint = TLS_HINT .. " Fix the MX or list it in the policy; publish mode: testing while you fix it." },
  SENDERS_DANE_FAIL = { severity = "critical",
    message = "DANE senders {what} to {domain} ({reason}): the domain's DNSSEC-signed TLSA records forbid them to deliver otherwise",
    hint = "Publish TLSA records that match the certificate in use (the current key's 3 1 1) or fix the DNSSEC answers; a new key's TLSA goes out before the key." },
  SENDERS_STRICT_FAIL = { severity = "warning",
    message = "Senders that always verify certificates {what} to {domain} ({reason}); opportunistic senders still deliver {opportunistic}",
    hint = TLS_HINT },
  SENDERS_BREAK_SOON = { severity = "warning",
    message = "{text}, unless something changes",
    hint = "Renew before {date} (a DANE-TA anchor: publish the next one's TLSA first; an MTA-STS policy host: renew its certificate)." },
}

local KIND_CODE = { opportunistic = "SENDERS_OPPORTUNISTIC_FAIL", mta_sts = "SENDERS_MTA_STS_FAIL",
                    dane = "SENDERS_DANE_FAIL", strict = "SENDERS_STRICT_FAIL" }
local PLURAL = { opportunistic = "opportunistic senders", mta_sts = "MTA-STS senders", dane = "DANE senders",
                 strict = "strict clients" }
local FAILS = { no_delivery = "do not deliver", defers = "defer mail" }
M.ALIKE = { CERT_EXPIRED = true, CERT_NOT_YET_VALID = true, CERT_SELF_SIGNED = true, CERT_UNTRUSTED = true,
            CERT_NAME_MISMATCH = true }
-- the checks whose inconclusive findings mean "the tester could not tell"
-- (a 421 greeting, a time-out judged as a blocked vantage): a failure
-- seen there is no sender's failure
local SESSION_CHECKS = { connect = true, banner = true, ehlo = true, starttls = true }

local function render(s, ev)
  return (s:gsub("{([%w_]+)}", function(k) return ev[k] ~= nil and tostring(ev[k]) or "{" .. k .. "}" end))
end

local function make(pol, code, ev)
  local d = M.FINDINGS[code]
  local over = (pol.findings or {})[code] or {}
  return { code = code, check = "senders", severity = over.severity or d.severity, message = render(d.message, ev),
           hint = render(d.hint, ev), evidence = ev,
           override = over.severity and P.override(pol, code, d.severity) or nil }
end

local function unsure(srv)
  for _, f in ipairs(srv.findings or {}) do
    if f.severity == "inconclusive" and SESSION_CHECKS[f.check] then return true end
  end
  -- (srv.untested is no reason: a refused connection has no score, and
  -- senders defer all the same)
  return false
end

-- Does some address that fails for this kind fail conclusively?
local function conclusive(result, m, kind)
  local by = {}
  for _, s in ipairs(result.servers or {}) do by[s.host .. "|" .. s.address] = s end
  for _, x in ipairs(m.mx) do
    for _, a in ipairs(x.addresses) do
      local s = by[x.host .. "|" .. a.address]
      if FAILS[a[kind].outcome] and s and not unsure(s) then return true end
    end
  end
  return false
end

-- What each kind does at one address: "strict clients do not deliver to
-- mx1 (192.0.2.1): the certificate expired on ...; opportunistic senders
-- deliver encrypted"
local function at_address(m, srv)
  for _, x in ipairs(m.mx) do
    if x.host == srv.host then
      for _, a in ipairs(x.addresses) do
        if a.address == srv.address then
          local fail, ok = {}, {}
          for _, k in ipairs(senders().KINDS) do
            local c = a[k]
            if not c.as then
              if FAILS[c.outcome] then fail[#fail + 1] = PLURAL[k] .. " " .. FAILS[c.outcome] .. " (" .. c.reason .. ")"
              else ok[#ok + 1] = PLURAL[k] .. " " .. senders().TEXT[c.outcome]:gsub("^delivers", "deliver") end
            end
          end
          return table.concat(fail, ", "), table.concat(ok, ", ")
        end
      end
    end
  end
end

-- Where certificate_defects is set: the site's policy file when it sets it,
-- else the stock default's line (found once).
local default_where
local function where(pol)
  local seg = { "senders", "certificate_defects" }
  for _, l in ipairs(pol.lines or {}) do -- comments stripped: the file sets it
    if l:find("certificate_defects", 1, true) then return pol.name, P.where(pol, seg) end
  end
  if not default_where then
    local path = paths.checks .. "/policy/default.lua"
    local line = config_errors.find_line(config_errors.read_lines(path), seg)
    default_where = line and ("%s:%d"):format(path, line) or path
  end
  return "default", default_where
end

-- Whether a list holds a finding certificate_defects may re-judge; for a
-- shared probe's list (runtime.findings) asked once (weak: it goes with
-- the list), so that a provider's domains do not walk it each (issue 15).
local alike_memo = setmetatable({}, { __mode = "k" })
local function has_alike(l)
  if not findings.is_shared(l) then return true end
  local v = alike_memo[l]
  if v == nil then
    v = false
    for _, f in ipairs(l) do if M.ALIKE[f.code] then v = true break end end
    alike_memo[l] = v
  end
  return v
end

local function certificate_defects(pol, result, m)
  local sev = (pol.senders or {}).certificate_defects
  if sev == false or sev == nil then return end
  local name, source = where(pol)
  for _, srv in ipairs(result.servers or {}) do
    for i, f in ipairs(has_alike(srv.findings or {}) and srv.findings or {}) do
      -- the site's own findings table wins: it asked for that severity
      local by_policy = f.override and f.override.policy
      if M.ALIKE[f.code] and f.severity ~= sev and not by_policy then
        local fail, ok = at_address(m, srv)
        local why = "every verifying sender refuses this certificate alike"
          .. (fail ~= "" and (": " .. fail) or "") .. (ok ~= "" and ("; " .. ok) or "")
        f = findings.own(srv)[i] -- a shared probe's finding: this domain's copy
        f.override = { from = f.severity, policy = name, source = source, why = why }
        f.severity = sev
      end
    end
  end
end

-- The date (UTC) of a time, as breaks are dated; the last one made is kept
-- (an audit judges thousands of domains within the same second).
local last_t, last_date
local function limit_date(t)
  if t ~= last_t then last_t, last_date = t, os.date("!%Y-%m-%d", t) end
  return last_date
end

--- Judge the result from its sender matrix (result.senders).  config: the
-- run's; a submission or implicit-TLS probe is no MX delivery, which is
-- what the matrix describes.
function M.apply(pol, result, now, config)
  local cfg = pol.senders or {}
  local m = result.senders
  if cfg.judge == false or not m or #m.mx == 0 then return end -- no MX address: the DNS findings judge
  if config and (config.submission or config.implicit_tls) then return end
  certificate_defects(pol, result, m)
  local out = result.findings
  local opp = m.domain.opportunistic
  if FAILS[opp.outcome] then
    -- every kind fails with it; one finding says so
    if conclusive(result, m, "opportunistic") then
      out[#out + 1] = make(pol, KIND_CODE.opportunistic, { domain = result.domain, what = FAILS[opp.outcome], reason = opp.reason })
    end
  else
    for _, kind in ipairs({ "mta_sts", "dane", "strict" }) do
      local c = m.domain[kind]
      -- a kind with nothing to apply acts as an opportunistic sender
      if not c.as and FAILS[c.outcome] and conclusive(result, m, kind) then
        out[#out + 1] = make(pol, KIND_CODE[kind], { domain = result.domain, what = FAILS[c.outcome], reason = c.reason,
                                                      opportunistic = senders().TEXT[opp.outcome]:gsub("^delivers ", "") })
      end
    end
  end
  local horizon = (pol.thresholds or {}).expiry_warning_days or 30
  local limit = limit_date((now or os.time()) + horizon * 86400)
  for _, b in ipairs(m.breaks or {}) do
    if b.date <= limit then
      out[#out + 1] = make(pol, "SENDERS_BREAK_SOON", { text = senders().break_text(b):gsub("^%l", string.upper), kind = b.kind, host = b.host,
                                                       date = b.date, reason = b.reason })
    end
  end
end

return M
