-- Step 3 of the seed: the 220 greeting.  Wait for the complete (possibly
-- multi-line) greeting before sending anything.  421 means "throttled,
-- come back later": inconclusive, never "broken".
local loop = require "mxprobe.runtime.loop"
local iputil = require "mxprobe.net.iputil"
local core = require "mxprobe.core"

-- The first word of the greeting when it is a host name, or an address
-- literal such as [192.0.2.1] or [IPv6:2001:db8::1] (RFC 5321 4.1.3 allows
-- one where the server has no name).
local function hostname_of(text)
  local first = (text or ""):match("^(%S+)")
  if not first then return nil end
  local literal = first:match("^%[IPv6:([%x:%.]+)%]$") or first:match("^%[([%d%.]+)%]$")
  if literal and iputil.classify(literal) then return first end
  if first:find("%.") and first:match("^[%w%.%-_]+$") and not first:match("^%d+%.%d+$") then
    return (first:lower():gsub("%.$", ""))
  end
end

-- Addresses whose PTR the machine's resolver must not be asked for: they
-- mean nothing outside this host or network (loopback, link-local), or
-- are reserved for examples (documentation, RFC 5737 / RFC 3849), so the
-- question can only leak to the tester's upstream DNS which address is
-- being probed.  They are asked for only when the resolver was chosen for
-- this run (--resolver, a policy's resolvers, or a resolver the caller
-- gave the engine): the test world's own DNS serves such PTRs.
local NO_SYSTEM_PTR = { loopback = true, linklocal = true, documentation = true, unspecified = true, multicast = true }

local function ptr_wanted(ctx)
  if NO_SYSTEM_PTR[iputil.classify(ctx.address) or "global"] == nil then return true end
  local named = ctx.config.resolvers ~= nil or ctx.config.resolver ~= nil
  return named or (ctx.run ~= nil and ctx.run.dns_named == true)
end

return {
  id = "banner",
  description = "The 220 greeting: present, timely, with a host name that matches the MX name and the PTR",
  categories = { "smtp" },
  scope = "session",
  requires = { "connect" },
  findings = {
    BANNER_OK = { severity = "ok", message = "Greeting in {seconds} s: {text}" },
    BANNER_SLOW = { severity = "warning", message = "The greeting took {seconds} s (more than {threshold} s)",
      hint = "Senders may give up or retry later; check server load, greeting delays (postscreen, greet_pause) and slow PTR lookups in the MTA." },
    BANNER_TIMEOUT = { severity = "critical", message = "No complete greeting within {timeout} s",
      hint = "The server accepts connections but does not speak SMTP in time; check the MTA and any tarpitting." },
    BANNER_CLOSED = { severity = "critical", message = "The connection closed before a greeting ({detail})",
      hint = "The server drops connections: check the MTA's logs, connection limits and access rules." },
    BANNER_MALFORMED = { severity = "critical", message = "The greeting is not a valid SMTP reply ({code}: {detail})",
      hint = "Something that is not an SMTP server listens on port 25, or the reply breaks the protocol." },
    BANNER_421 = { severity = "inconclusive", message = "421 greeting: the server is busy or throttling the tester ({text})",
      hint = "Test again later or from another address; 421 is temporary and not a fault by itself." },
    BANNER_554 = { severity = "critical", message = "554 greeting: the server refuses the session ({text})",
      hint = "If the tester is blacklisted this is expected; if every client gets it, the MTA refuses all mail." },
    BANNER_UNEXPECTED = { severity = "critical", message = "Unexpected greeting code {code}: {text}" },
    BANNER_NO_HOSTNAME = { severity = "warning", message = "The greeting does not start with a host name (RFC 5321 section 4.3.1): {text}",
      hint = "Set the MTA's host name (Postfix: myhostname; smtpd_banner = $myhostname ESMTP)." },
    BANNER_HOSTNAME_MISMATCH = { severity = "info", message = "The greeting names {banner_host}; the MX name is {host}" },
    BANNER_PTR_MISSING = { severity = "warning", message = "{address} has no PTR record",
      hint = "Ask the owner of the address block to publish a PTR record naming {host}; many receivers distrust hosts without one." },
    BANNER_PTR_MISMATCH = { severity = "info", message = "The PTR of {address} is {ptr}, not {host}" },
  },

  applies = function(ctx) return ctx:session() ~= nil end,

  run = function(ctx)
    local sess = ctx:session()
    local timeout = ctx:timeout("greeting")
    local t0 = loop.now()
    -- the PTR lookup runs while we wait for the greeting
    local ptr_task = loop.spawn(function()
      if not ptr_wanted(ctx) then return nil end
      local name = core.dns.reverse_name(ctx.address)
      return ctx.dns:query(name, "PTR", ctx:deadline("dns"))
    end)
    local r, code, detail = sess:read_reply(t0 + timeout)
    local seconds = math.floor((loop.now() - t0) * 1000 + 0.5) / 1000
    local fact = { seconds = seconds }
    ctx:fact(fact)
    if not r then
      fact.error = code
      loop.cancel(ptr_task)
      if code == "timeout" then ctx:finding("BANNER_TIMEOUT", { timeout = timeout, seconds = seconds })
      elseif code == "closed" or code == "reset" then ctx:finding("BANNER_CLOSED", { detail = detail or code })
      else ctx:finding("BANNER_MALFORMED", { code = code, detail = detail or "" }) end
      sess:close()
      return
    end
    local text = table.concat(r.lines or {}, " / ")
    fact.code, fact.text = r.code, core.smtp.escape(text)
    local ev = { seconds = seconds, text = fact.text, code = r.code, host = ctx.host, address = ctx.address }
    if r.code ~= 220 then
      loop.cancel(ptr_task)
      if r.code == 421 then ctx:finding("BANNER_421", ev); sess:close(); return end
      ctx:finding(r.code == 554 and "BANNER_554" or "BANNER_UNEXPECTED", ev)
      sess:quit()
      return
    end
    fact.ok = true
    ctx:finding("BANNER_OK", ev)
    local slow = ctx:threshold("greeting_slow_s") or 30
    if seconds > slow then ctx:finding("BANNER_SLOW", { seconds = seconds, threshold = slow }) end

    local bhost = hostname_of(r.lines and r.lines[1])
    fact.hostname = bhost
    if not bhost then
      ctx:finding("BANNER_NO_HOSTNAME", ev)
    elseif bhost ~= ctx.host and not iputil.is_literal(ctx.host) then
      ev.banner_host = bhost
      ctx:finding("BANNER_HOSTNAME_MISMATCH", ev)
    end
    local ans = loop.join(ptr_task)
    local ptrs = {}
    for _, rr in ipairs(ans and ans.answers or {}) do
      if rr.type == "PTR" then ptrs[#ptrs + 1] = (rr.host or ""):lower():gsub("%.$", "") end
    end
    fact.ptr = ptrs[1]
    if ans and #ptrs == 0 then
      ctx:finding("BANNER_PTR_MISSING", ev)
    elseif #ptrs > 0 and (bhost or not iputil.is_literal(ctx.host)) then
      -- with --mx ADDRESS there is no MX name to compare the PTR with
      local match = false
      for _, p in ipairs(ptrs) do if p == ctx.host or p == bhost then match = true end end
      if not match then ev.ptr = ptrs[1]; ctx:finding("BANNER_PTR_MISMATCH", ev) end
    end
  end,
}
