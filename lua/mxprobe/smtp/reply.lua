--- mxprobe.smtp.reply: what an SMTP reply means, decided in one place.
--
-- Model: Postfix smtp_trouble.c.  A reply is one of
--   "ok"           2xx: the command was accepted
--   "intermediate" 3xx: go on (354 to DATA; mxprobe never sends DATA)
--   "throttled"    421: the server is closing on this client ("try later");
--                  whatever the text or enhanced code say, nothing was
--                  decided about the command: inconclusive, never "broken"
--   "temporary"    other 4xx (450/451 greylisting, 452 ...)
--   "permanent"    5xx
--   "invalid"      anything else (1xx, 6xx ...: RFC 5321 4.2.1 has no such class)
-- plus the RFC 3463 enhanced status code of the first line when present
-- ("5.7.1": class 5, subject 7, detail 1).
local M = {}

--- The reply's lines joined with sep (default " ").
function M.text(r, sep)
  if not r then return "" end
  return table.concat(r.lines or {}, sep or " ")
end

--- Classify a reply: { class=, code=, enhanced=, subject=, detail=, text= }.
function M.classify(r)
  local c = r and r.code
  local out = { code = c, enhanced = r and r.enhanced, text = M.text(r) }
  if math.type(c) ~= "integer" then out.class = "invalid"
  elseif c == 421 then out.class = "throttled"
  elseif c >= 200 and c < 300 then out.class = "ok"
  elseif c >= 300 and c < 400 then out.class = "intermediate"
  elseif c >= 400 and c < 500 then out.class = "temporary"
  elseif c >= 500 and c < 600 then out.class = "permanent"
  else out.class = "invalid" end
  if out.enhanced then
    local s, d = out.enhanced:match("^%d%.(%d+)%.(%d+)$")
    out.subject, out.detail = tonumber(s), tonumber(d)
  end
  return out
end

function M.ok(r) return M.classify(r).class == "ok" end
function M.throttled(r) return r ~= nil and r.code == 421 end

--- Whether a refusal is about relaying (RFC 3463 X.7.1 "delivery not
-- authorized", or the word "relay" in the text): Postfix's
-- reject_unauth_destination says "554 5.7.1 ... Relay access denied".
function M.relay_refusal(r)
  local k = M.classify(r)
  if k.class ~= "temporary" and k.class ~= "permanent" then return false end
  return (k.enhanced and k.enhanced:match("^[45]%.7%.1$") ~= nil) or k.text:lower():find("relay", 1, true) ~= nil
end

-- Words of a refusal that is about the client (its address is listed on a
-- blocklist or has a bad reputation), not about every sender.
-- The names of lists come first: "blocked using zen.spamhaus.org" names spamhaus.
local LISTED = { "spamhaus", "spamcop", "barracuda", "barracudacentral", "sorbs", "uceprotect", "psbl", "mailspike",
                 "abuseat", "senderscore", "cbl", "dnsbl", "rbl", "blocklist", "blacklist", "block list", "black list",
                 "reputation", "listed", "blocked" }

--- The blocklist word a reply names, if any (a 554 greeting that says
-- "blocked using zen.spamhaus.org" refuses this tester, not all mail).
function M.names_blocklist(r)
  local t = M.text(r):lower()
  for _, w in ipairs(LISTED) do
    -- whole words only: "rbl" must not match "verbless"
    local s, e = t:find(w, 1, true)
    while s do
      local before, after = t:sub(s - 1, s - 1), t:sub(e + 1, e + 1)
      if not before:match("%w") and not after:match("%w") then return w end
      s, e = t:find(w, e + 1, true)
    end
  end
  return nil
end

return M
