-- MTA-STS (RFC 8461): what a sender that does MTA-STS makes of the domain.
--
-- run(): the _mta-sts TXT record (exactly one "v=STSv1", id syntax), then
-- the policy fetch from https://mta-sts.<domain>/.well-known/mta-sts.txt in
-- a task of its own, so that it runs while the SMTP probes do.  Curl
-- (net/http) connects to the addresses c-ares found, verifies the policy
-- host (PKIX, SNI, name), follows no redirect, reads at most max_bytes and
-- stops at the deadline.
-- summarize(): the policy is parsed strictly, its mx patterns compared with
-- the real MX set, and every address of every matching MX judged as an
-- MTA-STS sender would: STARTTLS, TLS 1.2 or later, a PKIX-valid
-- certificate naming the MX host.  Mode "enforce": a failure stops mail to
-- that MX (critical); "testing": senders report and deliver anyway.
-- A TXT record without a usable policy is a warning: senders then ignore
-- MTA-STS.  No TXT record: no finding (the fact says none).
local P = require "mxprobe.net.mta_sts_policy"
local http = require "mxprobe.net.http"
local loop = require "mxprobe.runtime.loop"
local vocab = require "mxprobe.runtime.vocab"

-- opts: timeout, max_bytes, ca_file (read in run(): the task runs later,
-- when ctx belongs to another check)
local function fetch(ctx, domain, fact, opts)
  local host = "mta-sts." .. domain
  local url = "https://" .. host .. (opts.port == 443 and "" or (":" .. opts.port)) .. "/.well-known/mta-sts.txt"
  fact.url = url
  local deadline = loop.now() + opts.timeout
  local addrs, code, detail = ctx.dns:addresses(host, nil, deadline)
  if not addrs or #addrs == 0 then
    return nil, "MTA_STS_POLICY_HOST_MISSING", { host = host, reason = addrs and "no A or AAAA record"
                                                  or ("%s %s"):format(code, detail or "") }
  end
  local list = {}
  for i, a in ipairs(addrs) do list[i] = a.address end
  local res
  res, code, detail = http.get(url, { addresses = list, max_bytes = opts.max_bytes, ca_file = opts.ca_file }, deadline)
  if not res then
    local which = ({ tls = "MTA_STS_POLICY_TLS", timeout = "MTA_STS_POLICY_TIMEOUT", limit = "MTA_STS_POLICY_TOO_LARGE" })[code]
                  or "MTA_STS_POLICY_FETCH_FAILED"
    return nil, which, { url = url, reason = detail or code, max = opts.max_bytes }
  end
  fact.status, fact.content_type, fact.seconds = res.status, res.content_type, res.seconds
  -- when senders without a cached copy can no longer fetch it (policy/senders.lua: when it breaks)
  fact.host_not_after, fact.fetched_at = res.not_after, os.time()
  if res.status >= 300 and res.status < 400 then
    return nil, "MTA_STS_POLICY_REDIRECT", { url = url, status = res.status, location = res.location or "?" }
  end
  if res.status ~= 200 then return nil, "MTA_STS_POLICY_HTTP_STATUS", { url = url, status = res.status } end
  return res
end

-- As an MTA-STS sender judges one address: nil (delivers) or the reason.
local function sender_problem(srv)
  local f = srv.facts or {}
  local st = f.starttls
  if not st then return "not tested (no SMTP session)" end
  if not st.offered then return "no STARTTLS" end
  if not st.version then return "the TLS handshake failed" end
  if (vocab.TLS_RANK[st.version] or 0) < vocab.TLS_RANK["TLSv1.2"] then return st.version .. " (below TLS 1.2)" end
  local c = f.certificate
  if not c then return "no certificate" end
  if not c.verified then return "the certificate chain does not verify" end
  if not c.name_match then return "the certificate does not name " .. srv.host end
  if math.type(c.not_after) and c.not_after < os.time() then return "the certificate has expired" end
  return nil
end

return {
  id = "mta_sts",
  description = "MTA-STS (RFC 8461): the _mta-sts TXT record, the policy fetched over HTTPS, its mx patterns against the MX set, and each matching MX as an MTA-STS sender judges it",
  categories = { "tls", "policy" },
  scope = "domain",
  requires = { "mx" },
  -- timeout: seconds for resolving and fetching the policy; max_bytes: the
  -- policy size cap (RFC 8461 3.3 suggests senders stop at 64 KiB)
  -- port: 443 as RFC 8461 says; test worlds without port 443 change it
  options = { timeout = 15, max_bytes = 65536, port = 443 },
  findings = {
    MTA_STS_OK = { severity = "ok",
      message = "MTA-STS policy {mode} (id {id}, max_age {max_age} s): every MX that senders may use passes ({hosts})" },
    MTA_STS_TXT_MULTIPLE = { severity = "warning",
      message = "{count} \"v=STSv1\" TXT records at _mta-sts.{domain}: senders treat the domain as having no MTA-STS policy",
      hint = "Publish exactly one \"v=STSv1; id=...\" record at _mta-sts.{domain}." },
    MTA_STS_TXT_INVALID = { severity = "warning",
      message = "The TXT record at _mta-sts.{domain} is invalid ({reason}): senders ignore MTA-STS",
      hint = "The record is \"v=STSv1; id=<1 to 32 letters and digits>\" (RFC 8461 3.1); change the id whenever the policy changes." },
    MTA_STS_POLICY_HOST_MISSING = { severity = "warning",
      message = "_mta-sts.{domain} announces a policy, but {host} has no address ({reason}): senders ignore MTA-STS",
      hint = "Publish an A/AAAA record for {host} and serve the policy over HTTPS there." },
    MTA_STS_POLICY_TLS = { severity = "warning",
      message = "The policy host of {url} fails certificate verification ({reason}): senders cannot fetch the policy and ignore MTA-STS",
      hint = "Serve a certificate from a public CA that names the policy host (mta-sts.<domain>), with its full chain." },
    MTA_STS_POLICY_TIMEOUT = { severity = "warning",
      message = "Fetching {url} did not finish in time ({reason}): senders give up and ignore MTA-STS",
      hint = "Check the web server of the policy host: it must answer promptly." },
    MTA_STS_POLICY_TOO_LARGE = { severity = "warning",
      message = "The policy at {url} is larger than {max} bytes: senders stop reading and ignore it",
      hint = "A policy is a few lines; check what the server sends at that URL." },
    MTA_STS_POLICY_FETCH_FAILED = { severity = "warning",
      message = "Fetching {url} failed ({reason}): senders ignore MTA-STS",
      hint = "Check that the policy host answers HTTPS on port 443." },
    MTA_STS_POLICY_REDIRECT = { severity = "warning",
      message = "{url} answers {status} (redirect to {location}): senders do not follow redirects (RFC 8461 3.3) and ignore MTA-STS",
      hint = "Serve the policy at that URL itself with status 200." },
    MTA_STS_POLICY_HTTP_STATUS = { severity = "warning",
      message = "{url} answers HTTP {status}, not 200: senders ignore MTA-STS",
      hint = "Serve the policy file at /.well-known/mta-sts.txt on the policy host." },
    MTA_STS_POLICY_CONTENT_TYPE = { severity = "warning",
      message = "The policy is served as {content_type}, not text/plain (RFC 8461 3.2): strict senders ignore it",
      hint = "Serve /.well-known/mta-sts.txt with Content-Type: text/plain." },
    MTA_STS_POLICY_INVALID = { severity = "warning",
      message = "The policy at {url} is invalid ({reason}): senders ignore MTA-STS",
      hint = "A policy is \"version: STSv1\", \"mode: enforce|testing|none\", one \"mx:\" line per MX pattern and \"max_age: <seconds>\" (RFC 8461 3.2)." },
    MTA_STS_POLICY_DUPLICATE_KEY = { severity = "warning",
      message = "The policy repeats the key {key} (line {line}): senders may read either value",
      hint = "Give each key but mx once." },
    MTA_STS_POLICY_UNKNOWN_KEY = { severity = "info",
      message = "The policy has keys senders do not know ({keys}); they are ignored" },
    MTA_STS_MODE_NONE = { severity = "info",
      message = "The MTA-STS policy has mode none: senders stop applying MTA-STS to {domain}" },
    MTA_STS_MX_NOT_IN_POLICY = { severity = "critical",
      message = "The MX {host} matches no mx pattern of the {mode} policy ({patterns}): MTA-STS senders will not deliver to it",
      hint = "Add \"mx: {host}\" (or a matching \"*.\" pattern) to the policy, change its id in the TXT record, and wait for max_age to pass for cached copies." },
    MTA_STS_MX_FAILS = { severity = "critical",
      message = "{host} ({address}) fails what MTA-STS senders require ({reason}): under mode enforce they will not deliver to it",
      hint = "MTA-STS senders need STARTTLS, TLS 1.2 or later and a certificate from a public CA naming {host}." },
    MTA_STS_TESTING_FAILS = { severity = "info",
      message = "{host} ({address}) would fail MTA-STS ({reason}); the policy is in testing mode, so senders report it (TLS-RPT) and deliver anyway",
      hint = "Fix this before switching the policy to mode enforce." },
    MTA_STS_TESTING_MX_NOT_IN_POLICY = { severity = "info",
      message = "The MX {host} matches no mx pattern of the testing policy ({patterns}); senders report it (TLS-RPT) and deliver anyway",
      hint = "Add \"mx: {host}\" before switching the policy to mode enforce." },
    MTA_STS_TXT_DNS_FAIL = { severity = "inconclusive", message = "The TXT query for _mta-sts.{domain} failed ({reason})" },
  },

  -- a mail domain only: with --mx HOST there is no domain whose policy counts
  applies = function(ctx)
    if ctx.domain == nil or ctx:mode() == "host" then return false, "a host, not a domain, is tested" end
    return true
  end,

  run = function(ctx)
    local domain = ctx.domain
    local fact = { domain = domain, txt = "none" }
    ctx:fact(fact)
    local ans, code, detail = ctx.dns:query("_mta-sts." .. domain, "TXT", ctx:deadline("dns"))
    if not ans then
      fact.txt = "failed"
      return ctx:finding("MTA_STS_TXT_DNS_FAIL", { domain = domain, reason = ("%s %s"):format(code, detail or "") })
    end
    local sts = {}
    for _, rr in ipairs(ans.answers or {}) do
      if rr.type == "TXT" and (rr.text or ""):match("^v=STSv1") then sts[#sts + 1] = rr.text end
    end
    if #sts == 0 then return end
    if #sts > 1 then
      fact.txt = "multiple"
      return ctx:finding("MTA_STS_TXT_MULTIPLE", { domain = domain, count = #sts })
    end
    local fields, why = P.parse_txt(sts[1])
    if not fields then
      fact.txt = "invalid"
      return ctx:finding("MTA_STS_TXT_INVALID", { domain = domain, reason = why, record = sts[1] })
    end
    fact.txt, fact.id = "ok", fields.id
    -- the fetch overlaps the SMTP probes; summarize() waits for it
    fact.task = loop.spawn(fetch, ctx, domain, fact, {
      timeout = ctx:option("timeout"), max_bytes = ctx:option("max_bytes"), port = ctx:option("port"),
      ca_file = type(ctx.config.ca_file) == "string" and ctx.config.ca_file or nil })
  end,

  summarize = function(dctx)
    local fact = dctx.facts.mta_sts
    if not fact or not fact.task then return end
    local res, code, ev = loop.join(fact.task)
    fact.task = nil
    if not res then
      fact.usable = false
      if code == "error" then error(ev, 0) end
      return dctx:finding(code, ev)
    end
    local ct = (res.content_type or ""):lower()
    if not ct:match("^text/plain%s*;?") then
      dctx:finding("MTA_STS_POLICY_CONTENT_TYPE", { content_type = res.content_type or "(none)" })
    end
    local policy, problems = P.parse_policy(res.body)
    for _, p in ipairs(problems) do
      p.evidence.url = fact.url
      dctx:finding(p.code, p.evidence)
    end
    if not policy then fact.usable = false; return end
    fact.usable, fact.policy = true, { mode = policy.mode, max_age = policy.max_age, mx = policy.mx }
    if policy.mode == "none" then return dctx:finding("MTA_STS_MODE_NONE", { domain = dctx.domain }) end

    -- the MX set against the patterns, then each matching MX as a sender sees it
    local matched, ok_hosts, ok_seen, failed = {}, {}, {}, false
    fact.mx = {}
    local hosts, seen = {}, {}
    for _, srv in ipairs(dctx:servers() or {}) do
      if not seen[srv.host] then seen[srv.host] = true; hosts[#hosts + 1] = srv.host end
    end
    for _, h in ipairs(hosts) do
      local m = false
      for _, pat in ipairs(policy.mx) do if P.matches(pat, h) then m = true end end
      matched[h] = m
      fact.mx[h] = { matches = m }
      if not m then
        failed = true
        if policy.mode == "enforce" then
          dctx:finding("MTA_STS_MX_NOT_IN_POLICY", { host = h, mode = policy.mode, patterns = policy.mx })
        else
          dctx:finding("MTA_STS_TESTING_MX_NOT_IN_POLICY", { host = h, patterns = policy.mx })
        end
      end
    end
    for _, srv in ipairs(dctx:servers() or {}) do
      if matched[srv.host] then
        local why = sender_problem(srv)
        fact.mx[srv.host][srv.address] = why or "delivers"
        if why then
          failed = true
          local code2 = policy.mode == "enforce" and "MTA_STS_MX_FAILS" or "MTA_STS_TESTING_FAILS"
          dctx:finding(code2, { host = srv.host, address = srv.address, reason = why })
        elseif not ok_seen[srv.host] then
          ok_seen[srv.host] = true
          ok_hosts[#ok_hosts + 1] = srv.host
        end
      end
    end
    if not failed then
      dctx:finding("MTA_STS_OK", { mode = policy.mode, id = fact.id, max_age = policy.max_age, hosts = ok_hosts })
    end
  end,
}
