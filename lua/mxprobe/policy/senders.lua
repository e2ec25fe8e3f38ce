--- mxprobe.policy.senders: what each kind of sender does with this domain,
-- computed from the facts the checks left (issue 10, section 4).
--
--   local m = senders.compute(result, domain_facts [, now [, ran]])
--   m.kinds                   { "opportunistic", "mta_sts", "dane", "strict" }
--   m.mx[i] = { host, preference, addresses = { { address,
--               opportunistic = cell, mta_sts = cell, dane = cell, strict = cell }, ... } }
--   m.domain[kind] = cell     the domain as a sender sees it: MX in preference
--                             order, the next one when one fails
--   m.breaks = { { kind, host, date, reason [, text, cached_until] }, ... }
--                             earliest first: when a kind stops delivering to
--                             an MX (or, for MTA-STS, authenticating: the
--                             policy host's certificate) if nothing changes
--   cell = { outcome = OUTCOME, reason = "..." [, via = host] }
--
-- OUTCOME: "authenticated" (delivers encrypted and authenticated),
-- "encrypted" (encrypted, not authenticated), "plaintext", "defers",
-- "no_delivery", "inconclusive" (not tested, or the tester cannot tell).
--
-- Kinds: opportunistic (most MTAs; Postfix "may": STARTTLS when offered,
-- any certificate, plaintext otherwise); mta_sts (only with a usable
-- policy: policy-matching MX, TLS 1.2+, PKIX certificate for the MX name;
-- mode testing reports and delivers); dane (only with secure TLSA records:
-- must match); strict (OpenSSL 3 defaults: TLS 1.2+, PKIX chain and name).
-- No judging here: the policy and its rules read the matrix (api.senders).
local vocab = require "mxprobe.runtime.vocab"
local frozen = require "mxprobe.runtime.frozen"
local P = require "mxprobe.net.mta_sts_policy"

local M = {}

M.KINDS = { "opportunistic", "mta_sts", "dane", "strict" }
M.OUTCOMES = { "authenticated", "encrypted", "plaintext", "defers", "no_delivery", "inconclusive" }
M.TEXT = {
  authenticated = "delivers encrypted and authenticated", encrypted = "delivers encrypted, not authenticated",
  plaintext = "delivers in plaintext", defers = "defers", no_delivery = "does not deliver",
  inconclusive = "inconclusive",
}
local DELIVERS = { authenticated = true, encrypted = true, plaintext = true }

local function cell(outcome, reason) return { outcome = outcome, reason = reason } end

-- the checks whose absence the matrix says (compute's ran)
local OFF_IDS = { "banner", "ehlo", "starttls", "certificate", "dane", "mta_sts" }

-- dates by time: a provider's certificate dates the breaks of each of its
-- domains (issue 15); two generations of 256 keep the cache small
local dates, dates_old, dates_n = {}, {}, 0
local function date(t)
  if not math.type(t) then return nil end
  local d = dates[t] or dates_old[t]
  if d == nil then
    d = os.date("!%Y-%m-%d", t)
    if dates_n >= 256 then dates_old, dates, dates_n = dates, {}, 0 end
    dates[t], dates_n = d, dates_n + 1
  end
  return d
end
local policy_host_break -- below

-- checks that did not run at all (turned off, or --checks named others):
-- what they would have observed is not tested, not absent (set by compute)
local off = {}
local function untested(id) return off[id] and cell("inconclusive", id .. " not tested") or nil end

-- Before TLS: does a session get as far as MAIL at all?  nil, or the cell.
local function session_problem(f)
  local c = f.connect
  if not c then return cell("inconclusive", "not probed") end
  local u = untested("banner") or untested("ehlo")
  if u then return u end
  if c.state ~= "connected" then
    if c.state == "timeout" then return cell("defers", "connection timed out") end
    return cell("defers", "connection " .. tostring(c.state))
  end
  local b = f.banner or {}
  if not b.ok then
    if math.type(b.code) and b.code >= 500 then return cell("no_delivery", ("greeting %d"):format(b.code)) end
    if math.type(b.code) and b.code >= 400 then return cell("defers", ("greeting %d"):format(b.code)) end
    return cell("defers", "no valid greeting" .. (b.error and (" (" .. tostring(b.error) .. ")") or ""))
  end
  local e = f.ehlo
  if not e or e.failed then
    return cell("defers", e and e.throttled and "421 to EHLO" or "EHLO failed")
  end
end

local function tls_ok(f) local s = f.starttls; return s and s.offered and s.handshake == true end

local function opportunistic(f)
  local p = session_problem(f) or untested("starttls")
  if p then return p end
  local s = f.starttls or {}
  if not s.offered then return cell("plaintext", "no STARTTLS") end
  if s.throttled then return cell("defers", "421 to STARTTLS") end
  if not s.handshake then return cell("plaintext", "the TLS handshake failed; opportunistic senders retry in plaintext") end
  return cell("encrypted", (s.version or "TLS") .. ", certificate not checked")
end

-- the time compute() judges at (its `now`; one upvalue, not a closure per call)
local clock_now
local function clock() return clock_now or os.time() end

-- PKIX as a verifying sender sees it: nil (fine) or the reason
local function pkix_problem(f, host)
  local s = f.starttls or {}
  if (vocab.TLS_RANK[s.version] or 0) < vocab.TLS_RANK["TLSv1.2"] then return (s.version or "?") .. " is below TLS 1.2" end
  local c = f.certificate
  if not c then return "no certificate" end
  if math.type(c.not_after) and c.not_after < clock() then return "the certificate expired on " .. date(c.not_after) end
  if not c.verified then return "the certificate chain does not verify" end
  if not c.name_match then return "the certificate does not name " .. host end
end

local function strict(f, host)
  local p = session_problem(f) or untested("starttls") or untested("certificate")
  if p then return p end
  local s = f.starttls or {}
  if not s.offered then return cell("no_delivery", "no STARTTLS") end
  if s.throttled then return cell("defers", "421 to STARTTLS") end
  if not s.handshake then return cell("no_delivery", "the TLS handshake failed") end
  local why = pkix_problem(f, host)
  if why then return cell("no_delivery", why) end
  return cell("authenticated", (s.version or "TLS") .. ", PKIX chain and name verified")
end

-- Whether the domain's MTA-STS policy applies to senders.  Without one
-- the matrix depends on the servers alone, which the memos below rely on.
local function policy_applies(sts)
  return sts and sts.usable and sts.policy and sts.policy.mode ~= "none" or false
end

local function mta_sts(f, host, sts, opp)
  if not policy_applies(sts) then
    local c = cell(opp.outcome, (off.mta_sts and "MTA-STS not tested: " or "no usable MTA-STS policy: ") .. opp.reason)
    c.as = "opportunistic"
    return c
  end
  local pol = sts.policy
  local matches = false
  for _, pat in ipairs(pol.mx or {}) do if P.matches(pat, host) then matches = true end end
  local why
  if not matches then why = "the MX is not in the policy"
  else
    local p = session_problem(f) or untested("starttls") or untested("certificate")
    if p then return p end
    local s = f.starttls or {}
    if not s.offered then why = "no STARTTLS"
    elseif not s.handshake then why = "the TLS handshake failed"
    else why = pkix_problem(f, host) end
  end
  if not why then return cell("authenticated", "policy " .. pol.mode .. ", PKIX verified") end
  if pol.mode == "testing" then
    return cell(opp.outcome, "testing mode: would fail (" .. why .. "), delivers as opportunistic")
  end
  return cell("no_delivery", why .. " (policy enforce)")
end

local DANE_CELL = {
  match = { "authenticated", "TLSA matches" },
  mismatch = { "no_delivery", "no TLSA record matches" },
  no_tls = { "no_delivery", "TLSA published but no TLS" },
  unusable = { "encrypted", "TLSA records unusable: TLS required, nothing authenticated" },
  bogus = { "defers", "DNSSEC bogus: TLSA lookup fails" },
  inconclusive = { "inconclusive", "DANE result inconclusive" },
}

local function dane(f, opp)
  local d = f.dane
  local c = d and DANE_CELL[d.result]
  if not c then
    local why = d and d.result == "insecure" and "TLSA not DNSSEC-secure" or off.dane and "DANE not tested"
      or "no TLSA records"
    local x = cell(opp.outcome, why .. ": " .. opp.reason)
    x.as = "opportunistic"
    return x
  end
  if d.result == "match" or d.result == "unusable" then
    local p = session_problem(f) or untested("starttls")
    if p then return p end
  end
  return cell(c[1], c[2])
end

-- the domain row: MX in preference order, each address; the first that
-- delivers is where mail goes; otherwise defers if any address defers
local function domain_cell(mx, kind)
  local defer, inconclusive, last
  for _, m in ipairs(mx) do
    for _, a in ipairs(m.addresses) do
      local c = a[kind]
      if DELIVERS[c.outcome] then
        local out = cell(c.outcome, c.reason)
        out.via, out.as = m.host, c.as
        return out
      end
      if c.outcome == "defers" then defer = defer or { m.host, c.reason } end
      if c.outcome == "inconclusive" then inconclusive = inconclusive or { m.host, c.reason } end
      last = { m.host, c.reason }
    end
  end
  if defer then return cell("defers", ("%s: %s"):format(defer[1], defer[2])) end
  if inconclusive then return cell("inconclusive", ("%s: %s"):format(inconclusive[1], inconclusive[2])) end
  if last then return cell("no_delivery", ("%s: %s"):format(last[1], last[2])) end
  return cell("no_delivery", "no MX address to try")
end

-- MTA-STS senders need the policy (RFC 8461 3.3, 5.1): once the policy
-- host's certificate expires, a sender without a cached copy cannot fetch
-- it and delivers as if there were none, unauthenticated; one that fetched
-- it before keeps enforcing it until its copy's max_age runs out (10.2),
-- at the latest max_age after the certificate's end.  Only for an enforce
-- policy that authenticates delivery today.
function policy_host_break(sts, cell, now)
  local na = sts and sts.host_not_after
  local pol = sts and sts.usable and sts.policy
  if not (math.type(na) and na >= now and pol and pol.mode == "enforce" and cell.outcome == "authenticated") then return nil end
  local age = math.type(pol.max_age) and pol.max_age or 0
  local host = sts.url and sts.url:match("^https://([^/:]+)") or "the policy host"
  return { kind = "mta_sts", host = host, date = date(na), at = na, reason = "policy host certificate expiry",
           cached_until = date(na + age),
           text = ("from %s MTA-STS senders that have not cached the policy cannot fetch it (the certificate of %s expires)"
             .. " and deliver without authentication; cached copies expire by %s (max_age %d)"):format(date(na), host,
             date(na + age), age) }
end

-- The cells of an address whose facts are a shared probe's (frozen: the
-- same table for every domain that uses the server) are the same for every
-- such domain without a usable MTA-STS policy of its own: they are made
-- once and shared, frozen, so their JSON is encoded once too (issue 15: the
-- matrix was 8 % of a shared domain's Lua work).  What else they depend on
-- is in the entry: the checks that did not run, and whether the
-- certificate has expired by the time judged at.
local cell_memo = setmetatable({}, { __mode = "k" }) -- facts -> { host -> entry }

local function address_cells(f, host, sts, offsig)
  local c = f.certificate
  local expired = c and math.type(c.not_after) and c.not_after < clock() or false
  local usable = policy_applies(sts)
  local by_host = not usable and frozen.is(f) and cell_memo[f]
  if by_host == nil then by_host = {}; cell_memo[f] = by_host end
  local e = by_host and by_host[host]
  if e and e.offsig == offsig and e.expired == expired then return e.opp, e.strict, e.mta_sts, e.dane end
  local opp = opportunistic(f)
  local st, ms, da = strict(f, host), mta_sts(f, host, sts, opp), dane(f, opp)
  if by_host then
    frozen.mark(opp); frozen.mark(st); frozen.mark(ms); frozen.mark(da)
    by_host[host] = { offsig = offsig, expired = expired, opp = opp, strict = st, mta_sts = ms, dane = da }
  end
  return opp, st, ms, da
end

local off_memo = setmetatable({}, { __mode = "k" }) -- ran set -> { off, sig }

-- The checks that did not run: the same for every domain of a run (its ran
-- set is made once), so worked out once per set.  { off = { id -> bool },
-- sig = "id id " } (sig: the ids turned off, a key for the memos).
local function off_set(ran)
  local memo = ran and off_memo[ran]
  if memo then return memo end
  local o, sig = {}, ""
  for _, id in ipairs(ran and OFF_IDS or {}) do
    o[id] = not ran[id]
    if o[id] then sig = sig .. id .. " " end
  end
  memo = { off = o, sig = sig }
  if ran then off_memo[ran] = memo end
  return memo
end

local function by_preference(x, y)
  if (x.preference or 0) ~= (y.preference or 0) then return (x.preference or 0) < (y.preference or 0) end
  return x.host < y.host
end

local function by_date(x, y)
  if x.at ~= y.at then return x.at < y.at end
  if x.kind ~= y.kind then return x.kind < y.kind end
  return x.host < y.host
end

-- The whole matrix of a domain whose servers are all shared probes (their
-- facts frozen) and that has no usable MTA-STS policy of its own is the
-- same for every domain with the same servers in the same order: a
-- provider's domains (issue 15: the matrix was the largest part of a
-- shared domain's Lua work left).  It is made once, frozen (its JSON is
-- then encoded once), and found again by its key: each server's host,
-- address, preference and facts (by a number given to that facts table,
-- never reused), whether its certificate's end has passed at `now`, and
-- the checks that did not run.  Two generations of 1,024 keys keep it
-- small: a provider paired with many distinct backup MX makes a key per
-- pairing, and those come and go.
local fact_ids, fact_n = setmetatable({}, { __mode = "k" }), 0
local matrices, matrices_old, matrices_n = {}, {}, 0
local GENERATION = 1024

local function fact_id(f)
  local id = fact_ids[f]
  if not id then fact_n = fact_n + 1; id = fact_n; fact_ids[f] = id end
  return id
end

-- The key of a result's matrix, or nil when it cannot be shared.
local function matrix_key(servers, sts, offsig, now)
  if policy_applies(sts) then return nil end
  local parts = { offsig }
  for i, srv in ipairs(servers) do
    local f = srv.facts
    if not (f and frozen.is(f)) or type(srv.host) ~= "string" then return nil end
    local na = f.certificate and f.certificate.not_after
    parts[i + 1] = ("%s %s %s %d %s"):format(srv.host, tostring(srv.address), tostring(srv.preference), fact_id(f),
      not math.type(na) and "-" or na >= now and "v" or "x")
  end
  return table.concat(parts, "\n")
end

local function freeze_matrix(out)
  for _, m in ipairs(out.mx) do
    for _, a in ipairs(m.addresses) do
      for _, k in ipairs(M.KINDS) do frozen.mark(a[k]) end
      frozen.mark(a)
    end
    frozen.mark(m.addresses); frozen.mark(m)
  end
  for _, k in ipairs(M.KINDS) do frozen.mark(out.domain[k]) end
  for _, b in ipairs(out.breaks) do frozen.mark(b) end
  frozen.mark(out.mx); frozen.mark(out.domain); frozen.mark(out.breaks)
  return frozen.mark(out)
end

local compute -- below

--- The matrix for one result.  facts: the domain checks' facts (mta_sts);
-- ran (optional): { check id -> true } of the checks the run has; share
-- (optional): nothing changes the matrix once made (no policy rules or
-- functions: the run's findings are shared), so a provider's domains may
-- get the same frozen one.
function M.compute(result, facts, now, ran, share)
  now = now or os.time()
  if not (share and ran) then return compute(result, facts, now, ran) end
  local key = matrix_key(result.servers or {}, facts and facts.mta_sts, off_set(ran).sig, now)
  if not key then return compute(result, facts, now, ran) end
  local out = matrices[key] or matrices_old[key]
  if out then return out end
  out = freeze_matrix(compute(result, facts, now, ran))
  if matrices_n >= GENERATION then matrices_old, matrices, matrices_n = matrices, {}, 0 end
  matrices[key], matrices_n = out, matrices_n + 1
  return out
end

function compute(result, facts, now, ran)
  clock_now = now
  local memo = off_set(ran)
  off = memo.off
  local offsig = memo.sig
  facts = facts or {}
  local sts = facts.mta_sts
  local mx, by_host = {}, {}
  for _, srv in ipairs(result.servers or {}) do
    local m = by_host[srv.host]
    if not m then
      m = { host = srv.host, preference = srv.preference, addresses = {} }
      by_host[srv.host] = m
      mx[#mx + 1] = m
    end
    local opp, st, ms, da = address_cells(srv.facts or {}, srv.host, sts, offsig)
    m.addresses[#m.addresses + 1] = { address = srv.address, opportunistic = opp, strict = st, mta_sts = ms, dane = da }
  end
  if #mx > 1 then table.sort(mx, by_preference) end
  local out = { kinds = M.KINDS, mx = mx, domain = {}, breaks = {} }
  for _, k in ipairs(M.KINDS) do out.domain[k] = domain_cell(mx, k) end

  -- when it breaks: certificate expiry for kinds that check dates, where
  -- they deliver today (DANE-EE ignores dates; opportunistic senders too)
  local seen = {}
  for _, srv in ipairs(result.servers or {}) do
    local f = srv.facts or {}
    local na = f.certificate and f.certificate.not_after
    if math.type(na) and na >= now then
      local function add(kind, why, at)
        local key = kind .. "|" .. srv.host
        if seen[key] then return end
        seen[key] = true
        at = at or na
        out.breaks[#out.breaks + 1] = { kind = kind, host = srv.host, date = date(at), at = at, reason = why }
      end
      for _, m in ipairs(mx) do
        if m.host == srv.host then
          for _, a in ipairs(m.addresses) do
            if a.address == srv.address then
              if a.strict.outcome == "authenticated" then add("strict", "certificate expiry") end
              -- testing mode: MTA-STS senders report the failure and deliver all the same
              if a.mta_sts.outcome == "authenticated" and sts.policy.mode == "enforce" then
                add("mta_sts", "certificate expiry")
              end
              local d = f.dane
              if a.dane.outcome == "authenticated" and d and d.matched and d.matched:match("^2 ") then
                local ta = d.anchor_not_after
                if math.type(ta) and ta < na then
                  add("dane", "expiry of the DANE-TA trust anchor", ta)
                else
                  add("dane", "certificate expiry (DANE-TA checks dates)")
                end
              end
            end
          end
        end
      end
    end
  end
  local b = policy_host_break(sts, out.domain.mta_sts, now)
  if b then out.breaks[#out.breaks + 1] = b end
  if #out.breaks > 1 then table.sort(out.breaks, by_date) end
  for _, b in ipairs(out.breaks) do b.at = nil end
  return out
end

local LABEL = { opportunistic = "opportunistic", mta_sts = "MTA-STS", dane = "DANE", strict = "strict client" }
M.LABEL = LABEL

local WHO = { opportunistic = "opportunistic senders", mta_sts = "MTA-STS senders", dane = "DANE senders",
              strict = "strict clients" }

--- "MTA-STS senders stop delivering to mx1 on 2026-12-06 (certificate expiry)"
function M.break_text(b)
  if type(b.text) == "string" then return b.text end -- a break that needs its own sentence (the MTA-STS policy host)
  -- tostring: a report may render a record read back from a file
  return ("%s stop delivering to %s on %s (%s)"):format(WHO[b.kind] or tostring(b.kind), tostring(b.host), tostring(b.date),
    tostring(b.reason))
end

return M
