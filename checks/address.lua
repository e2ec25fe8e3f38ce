-- Step 1 (continued): the A and AAAA records of every MX host.  Every
-- address is tested on its own later; addresses senders on the internet
-- cannot reach are reported and not probed.
local iputil = require "mxprobe.net.iputil"
local dns = require "mxprobe.net.dns"
local loop = require "mxprobe.runtime.loop"

local KIND_CODE = {
  loopback = "ADDRESS_LOOPBACK", private = "ADDRESS_PRIVATE", linklocal = "ADDRESS_RESERVED",
  documentation = "ADDRESS_RESERVED", shared = "ADDRESS_RESERVED", multicast = "ADDRESS_RESERVED",
  unspecified = "ADDRESS_RESERVED", reserved = "ADDRESS_RESERVED",
}

-- IPv4 first, then IPv6, each in answer order made stable
local function before(a, b)
  if a.family ~= b.family then return a.family < b.family end
  return a.address < b.address
end

-- the families of config.families (4, 6) as dns.addresses names them
local function families(config)
  local fams = {}
  for _, f in ipairs(config.families) do fams[#fams + 1] = f == 6 and "ipv6" or "ipv4" end
  return fams
end

local QTYPES = { { "ipv4", "A" }, { "ipv6", "AAAA" } }

local function resolve(ctx, tgt)
  local res = { addresses = {}, cnames = {}, errors = {} }
  local fams = families(ctx.config)
  local list, info, detail = dns.addresses(ctx.dns, tgt.host, fams, ctx:deadline("dns"))
  if not list then -- every family failed
    for _, fam in ipairs(fams) do
      res.errors[#res.errors + 1] = ("%s: %s %s"):format(fam == "ipv6" and "AAAA" or "A", info, detail or "")
    end
    return res
  end
  local errors = info.errors
  for _, fq in ipairs(QTYPES) do
    local fam, qtype = fq[1], fq[2]
    local e, ans = errors and errors[fam], info.answers[fam]
    if e then res.errors[#res.errors + 1] = ("%s: %s %s"):format(qtype, e.code, e.detail or "") end
    if ans and ans.rcode ~= "NOERROR" and ans.rcode ~= "NXDOMAIN" then
      res.errors[#res.errors + 1] = ("%s: %s"):format(qtype, ans.rcode)
    end
  end
  local addrs = res.addresses
  for i, a in ipairs(list) do
    addrs[i] = { address = a.address, family = a.family == "ipv6" and 6 or 4 }
  end
  for _, c in ipairs(info.cname) do res.cnames[c] = true end
  if #addrs > 1 then table.sort(addrs, before) end
  return res
end

return {
  id = "address",
  description = "A and AAAA records of every MX host; unreachable (loopback, private, reserved) addresses",
  categories = { "dns" },
  scope = "domain",
  requires = { "mx" },
  findings = {
    ADDRESS_OK = { severity = "ok", message = "{host}: {addresses}" },
    ADDRESS_NONE = { severity = "warning", message = "MX host {host} has no A or AAAA record: senders skip it",
      hint = "Publish an A (and AAAA) record for {host}, or remove the MX record." },
    ADDRESS_NONE_ALL = { severity = "critical", message = "No MX host has a usable address: {domain} cannot receive mail",
      hint = "Publish A/AAAA records for the MX hosts." },
    ADDRESS_CNAME = { severity = "warning", message = "MX host {host} is an alias (CNAME to {target}); RFC 2181 section 10.3 forbids MX targets that are aliases",
      hint = "Point the MX record at the canonical name {target}." },
    ADDRESS_NO_IPV6 = { severity = "info", message = "MX host {host} has no IPv6 address" },
    ADDRESS_LOOPBACK = { severity = "critical", message = "MX host {host} resolves to {address}, a loopback address: senders would deliver to themselves",
      hint = "Fix the A/AAAA record of {host}." },
    ADDRESS_PRIVATE = { severity = "critical", message = "MX host {host} resolves to {address}, a private address unreachable from the internet",
      hint = "Publish the public address of {host}; keep private addresses in an internal view." },
    ADDRESS_RESERVED = { severity = "critical", message = "MX host {host} resolves to {address}, a {kind} address that is not routed on the internet",
      hint = "Fix the A/AAAA record of {host}." },
    ADDRESS_TOO_MANY = { severity = "info", message = "MX host {host} has {count} addresses; only {max} are tested" },
    ADDRESS_DNS_FAIL = { severity = "inconclusive", message = "Resolving MX host {host} failed ({reason}): the tester could not tell" },
  },

  run = function(ctx)
    local targets = ctx:targets() or {}
    local tasks = {}
    -- MX hosts are resolved at once, a task each; one host needs no task
    local to_resolve = 0
    for _, tgt in ipairs(targets) do
      if not tgt.skip and not iputil.is_literal(tgt.host) then to_resolve = to_resolve + 1 end
    end
    for i, tgt in ipairs(targets) do
      if not tgt.skip then
        if iputil.is_literal(tgt.host) then -- --mx with an address
          local v = tgt.host:gsub("^%[", ""):gsub("%]$", "")
          local _, fam = iputil.classify(v)
          tgt.literal = true
          tgt.resolved = { addresses = { { address = v, family = fam } }, cnames = {}, errors = {} }
        elseif to_resolve == 1 then
          tgt.resolved = resolve(ctx, tgt)
        else
          tasks[i] = loop.spawn(resolve, ctx, tgt)
        end
      end
    end
    local usable, any_failed = 0, false
    -- kinds of non-global addresses the user asked to probe anyway (test networks)
    local allowed = {}
    for _, k in ipairs(ctx.config.allow_reserved or {}) do allowed[k] = true end
    local max = ctx:threshold("max_addresses") or 8
    -- a host whose lookup task raised (a resolver's bug, the time budget):
    -- the other hosts are judged first, then the error is the check's, as
    -- when the only host's lookup raises in this task
    local raised
    for i, tgt in ipairs(targets) do
      local res = tgt.resolved
      if tasks[i] then
        local r, code, detail = loop.join(tasks[i])
        if r == nil and code then raised = raised or detail or code else res = r end
      end
      tgt.addresses = {}
      if res then
        for target in pairs(res.cnames) do ctx:finding("ADDRESS_CNAME", { host = tgt.host, target = target }) end
        if #res.addresses == 0 then
          if #res.errors > 0 then
            any_failed = true
            ctx:finding("ADDRESS_DNS_FAIL", { host = tgt.host, reason = table.concat(res.errors, "; ") })
          else
            ctx:finding("ADDRESS_NONE", { host = tgt.host })
          end
        else
          if #res.addresses > max then
            ctx:finding("ADDRESS_TOO_MANY", { host = tgt.host, count = #res.addresses, max = max })
            for j = #res.addresses, max + 1, -1 do res.addresses[j] = nil end
          end
          local list, has6, has4, host_usable = {}, false, false, 0
          for _, a in ipairs(res.addresses) do
            local kind = iputil.classify(a.address)
            if a.family == 6 then has6 = true else has4 = true end
            list[#list + 1] = a.address
            if kind ~= "global" and not allowed[kind] then
              a.probe = false
              ctx:finding(KIND_CODE[kind] or "ADDRESS_RESERVED", { host = tgt.host, address = a.address, kind = kind })
            else
              usable, host_usable = usable + 1, host_usable + 1
            end
            tgt.addresses[#tgt.addresses + 1] = a
          end
          if host_usable > 0 then ctx:finding("ADDRESS_OK", { host = tgt.host, addresses = list }) end
          local want6 = false
          for _, f in ipairs(ctx.config.families) do if f == 6 then want6 = true end end
          if has4 and not has6 and want6 and not tgt.literal then ctx:finding("ADDRESS_NO_IPV6", { host = tgt.host }) end
        end
      end
    end
    if raised ~= nil then error(raised, 0) end
    if #targets > 0 and usable == 0 and not any_failed then
      ctx:finding("ADDRESS_NONE_ALL", { domain = ctx.domain })
    end
  end,
}
