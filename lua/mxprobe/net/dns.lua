--- mxprobe.net.dns: DNS lookups that read like blocking calls inside tasks.
--
--   local dns = require "mxprobe.net.dns"
--   local r = dns.new{ servers = {"127.0.0.1:5300"}, timeout = 2, tries = 2 }
--   local res, code, detail = r:query("example.org", "MX", loop.now() + 5)
--   local mxs, res = r:mx("example.org")
--   local addrs, info = r:addresses("mx1.example.org")      -- A and AAAA at once
--   local hosts, res = r:ptr("192.0.2.10")
--
-- A query's result is the answer table of core.dns (rcode, aa, ad, tc,
-- answers, authority, negative_ttl...): NXDOMAIN and NODATA are answers.
-- Every query sets the AD bit (RFC 6840 5.7; dnssec = false: not), and
-- every answer carries `secure`: true when the resolver set AD, i.e. it
-- validated the data with DNSSEC.  Only a validating resolver ever says so:
-- M.validates(resolver, name) tells whether this one does (asked once).
-- Failures are nil, code, detail with code "timeout" (no answer in time),
-- "refused" (ICMP port unreachable), "cancelled", "dns" (malformed answer,
-- CNAME loop, other c-ares failures) or "limit" (CNAME chain too long).
--
-- One resolver is meant to live for one run: it caches NOERROR and
-- NXDOMAIN answers by (lowercased name, type), ignoring TTLs, and a
-- question already in flight is not asked twice (the second asker waits
-- for the first answer).  The cache holds the max_cached (16384) latest
-- answers and up to as many older ones (two generations; a hit moves an
-- answer to the new one): a million-domain audit asks each domain's MX once
-- and would otherwise keep a million answers, while the providers'
-- addresses, asked again and again, stay (issue 15: memory bounded by the
-- work in flight, not by the input).  Cached answers are shared tables:
-- read them, do not change them.  At most max_inflight queries are sent
-- and waited for at once; the other askers wait for a slot.
--
-- Without `servers`, the nameservers come from /etc/resolv.conf (or the
-- `resolv_conf` file), read by c-ares.

local core = require "mxprobe.core"
local loop = require "mxprobe.runtime.loop"
local C = core.dns

local M = {}

M.reverse_name = C.reverse_name
M.types = C.types

local TYPE_LIST = "MX, A, AAAA, CNAME, TXT, PTR, TLSA, NS or SOA"
local NEW_KEYS = {
    servers = true, timeout = true, tries = true, resolv_conf = true, max_records = true, max_cached = true,
    max_inflight = true, max_cname_depth = true, dnssec = true,
}
-- answers worth remembering for the run; SERVFAIL, REFUSED... are asked again
local CACHEABLE = { NOERROR = true, NXDOMAIN = true }
local FAMILY_TYPE = { ipv4 = "A", ipv6 = "AAAA" }
local DEFAULT_CNAME_DEPTH = 8 -- CNAMEs addresses() follows, unless the resolver says

local Resolver = {}
Resolver.__index = Resolver
Resolver.__name = "mxprobe.net.dns.resolver"

local function argerror(n, fname, msg, level)
    error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), (level or 2) + 1)
end

-- "Mail.Example.ORG." -> "mail.example.org"
local function norm(name)
    name = name:lower()
    if #name > 1 and name:byte(-1) == 46 then name = name:sub(1, -2) end -- a final "."
    return name
end

-- Returns the name normalised (norm), which query keys its cache by.
local function check_name(name, n, fname)
    if type(name) ~= "string" then argerror(n, fname, "string expected, got " .. type(name), 2) end
    if name == "" then argerror(n, fname, "empty name", 2) end
    if name:find("\0", 1, true) then argerror(n, fname, "name contains a NUL byte", 2) end
    local normed = norm(name)
    if #normed > 253 then argerror(n, fname, "name longer than 253 characters", 2) end
    return normed
end

local function check_deadline(deadline, n, fname)
    if deadline ~= nil and type(deadline) ~= "number" then
        argerror(n, fname, "deadline: number or nil expected, got " .. type(deadline), 2)
    end
end

--- The c-ares try timeout for questions that each get `query_s` seconds
-- (their deadline).  c-ares sends a question again only after a try's
-- timeout, so a try as long as the deadline means one lost datagram fails
-- the question: CI once saw the A and AAAA of one MX host time out for
-- seven domains that shared the lookup.  A try of 0.4 x the deadline leaves
-- the first retransmission (to the next server, or the same one) well inside
-- it; with tries = 2 and one server, c-ares itself gives up at 1.2 x, after
-- the deadline, so the deadline is what ends a question that gets no answer.
function M.try_timeout(query_s)
    if type(query_s) ~= "number" or query_s ~= query_s or query_s <= 0 then
        argerror(1, "try_timeout", "seconds > 0 expected, got " .. tostring(query_s))
    end
    return query_s * 0.4
end

--- Create a resolver.
-- opts: servers = {"ip", "ip:port", "[ipv6]:port", ...}, timeout = seconds
-- per try (2), tries = n (2), resolv_conf = path (used without servers),
-- max_records = records decoded per answer (512), max_inflight = queries
-- in flight (64), max_cname_depth = CNAMEs followed by addresses() (8).
-- @return resolver, or nil, "dns", detail when c-ares cannot start.
-- Raises on bad options (naming the option).
function M.new(opts)
    if opts ~= nil and type(opts) ~= "table" then argerror(1, "new", "table expected, got " .. type(opts)) end
    opts = opts or {}
    for k in pairs(opts) do
        if not NEW_KEYS[k] then argerror(1, "new", ("unknown option '%s'"):format(tostring(k))) end
    end
    local max_inflight = opts.max_inflight or 64
    if math.type(max_inflight) ~= "integer" or max_inflight < 1 then
        argerror(1, "new", "max_inflight: integer >= 1 expected")
    end
    if opts.dnssec ~= nil and type(opts.dnssec) ~= "boolean" then
        argerror(1, "new", "dnssec: boolean expected, got " .. type(opts.dnssec))
    end
    local max_cached = opts.max_cached or 16384
    if math.type(max_cached) ~= "integer" or max_cached < 1 then
        argerror(1, "new", "max_cached: integer >= 1 expected")
    end
    local depth = opts.max_cname_depth or DEFAULT_CNAME_DEPTH
    if math.type(depth) ~= "integer" or depth < 0 or depth > 64 then
        argerror(1, "new", "max_cname_depth: integer 0 to 64 expected")
    end
    local ok, r, code, detail = pcall(C.resolver, {
        servers = opts.servers, timeout = opts.timeout, tries = opts.tries,
        resolv_conf = opts.resolv_conf, max_records = opts.max_records,
    })
    if not ok then error((tostring(r):gsub("to 'resolver'", "to 'new'", 1)), 2) end
    if not r then return nil, code, detail end
    return setmetatable({
        core = r,
        sem = loop.semaphore(max_inflight),
        max_inflight = max_inflight,
        max_cname_depth = depth,
        flags = opts.dnssec ~= false and "ad" or nil,
        cache = {},     -- key -> answer (the new generation)
        cache_old = {}, -- the previous generation
        cached_n = 0, max_cached = max_cached,
        flights = {},   -- key -> core query in flight (or done, not yet settled)
        -- query -> its packed outcome, so that every asker of a coalesced
        -- question gets the same table
        outcomes = setmetatable({}, { __mode = "k" }),
        counts = { sent = 0, cached = 0, coalesced = 0 },
    }, Resolver)
end

local function cache_put(self, key, answer)
    if self.cache[key] == nil then
        if self.cached_n >= self.max_cached then
            self.cache_old, self.cache, self.cached_n = self.cache, {}, 0
        end
        self.cached_n = self.cached_n + 1
    end
    self.cache[key] = answer
end

local function cache_get(self, key)
    local hit = self.cache[key]
    if hit == nil then
        hit = self.cache_old[key]
        if hit ~= nil then
            self.cache_old[key] = nil
            cache_put(self, key, hit)
        end
    end
    return hit
end

-- Take a finished query's outcome; the first to do so decodes and files it.
local function settle(self, key, q)
    local o = self.outcomes[q]
    if not o then
        o = table.pack(q:result())
        if o[1] then o[1].secure = self.flags == "ad" and o[1].ad == true end
        self.outcomes[q] = o
    end
    if self.flights[key] == q then
        self.flights[key] = nil
        if o[1] and CACHEABLE[o[1].rcode] then cache_put(self, key, o[1]) end
    end
    return o[1], o[2], o[3]
end

--- Ask one question.  deadline: absolute (loop.now() + s) or nil (then
-- c-ares's timeout and tries bound the wait).
-- @return answer table | nil, code, detail
function Resolver:query(name, qtype, deadline)
    local normed = check_name(name, 1, "query")
    -- (the helpers ask in capitals: no new string for them)
    local up = C.types[qtype] and qtype or type(qtype) == "string" and qtype:upper()
    if not up or not C.types[up] then
        argerror(2, "query", ("unknown type '%s' (expected %s)"):format(tostring(qtype), TYPE_LIST))
    end
    check_deadline(deadline, 3, "query")
    if self.closed then error("query: the resolver is closed", 2) end
    qtype = up
    local key = qtype .. " " .. normed
    local counts = self.counts

    local hit = cache_get(self, key)
    if hit then
        counts.cached = counts.cached + 1
        return hit
    end
    -- refuse before sending anything or taking a slot
    if not loop.current() then
        error("query: not inside a task (wrap the code in loop.run or loop.spawn)", 2)
    end
    if not coroutine.isyieldable() then
        error("query: cannot wait here (inside require, a metamethod, or a C function such as table.sort)", 2)
    end
    local q, owner = self.flights[key], false
    if q then
        counts.coalesced = counts.coalesced + 1
    else
        -- The time spent queueing for a slot is the tester's own load, not
        -- the name server's slowness: it does not count against the
        -- question's deadline (an audit with thousands of domains in flight
        -- otherwise reports MX_DNS_FAIL "timeout" for healthy domains, issue
        -- 15).  The wait is bounded: every query holding a slot is.
        local t0 = loop.now()
        local ok, code, detail = self.sem:acquire()
        if not ok then return nil, code, detail end
        if deadline then deadline = deadline + (loop.now() - t0) end
        -- while we waited for a slot, someone else may have asked
        hit = cache_get(self, key)
        q = self.flights[key]
        if hit or q then
            self.sem:release()
            if hit then
                counts.cached = counts.cached + 1
                return hit
            end
            counts.coalesced = counts.coalesced + 1
        else
            local sent, err = pcall(self.core.query, self.core, name, qtype, self.flags)
            if not sent then
                self.sem:release()
                error(err, 2)
            end
            q, owner = err, true
            self.flights[key] = q
            counts.sent = counts.sent + 1
        end
    end
    loop.doing("the DNS answer for %s %s", name, qtype)
    local ok, code, detail = loop.wait(q, nil, deadline)
    loop.doing(nil) -- a label holds only while its wait lasts
    local me = loop.current()
    if me then q:clear_waiter(me.token) end -- a late answer must not wake a reused token
    if owner then self.sem:release() end
    if not ok then return nil, code, detail end
    return settle(self, key, q)
end

--- MX records of domain, sorted by preference then host.  The helpers
-- (mx, addresses, ptr) give names in lower case without the final dot; the
-- answer tables keep names as they came (servers copy the question's case).
-- @return { {preference=, host=, ttl=}, ... }, answer | nil, code, detail
-- The list is empty for NXDOMAIN and NODATA (look at answer.rcode); a null
-- MX (RFC 7505) is { preference = 0, host = "." }.
function Resolver:mx(domain, deadline)
    check_name(domain, 1, "mx")
    check_deadline(deadline, 2, "mx")
    local res, code, detail = self:query(domain, "MX", deadline)
    if not res then return nil, code, detail end
    local list = {}
    for _, rr in ipairs(res.answers) do
        if rr.type == "MX" then
            list[#list + 1] = { preference = rr.preference, host = norm(rr.host), ttl = rr.ttl }
        end
    end
    table.sort(list, function(a, b)
        if a.preference ~= b.preference then return a.preference < b.preference end
        return a.host < b.host
    end)
    return list, res
end

-- The addresses an answer gives for a name it answers itself (no CNAME
-- followed), by answer, then by the name as asked: an audit asks the A and
-- AAAA of a provider's MX host once per domain of the provider, and each
-- time the same cached answer (a shared table that nobody changes) gave
-- the same list, walked again (issue 15: a sixth of a shared domain's Lua
-- went to its MX hosts' addresses).  Weak keys: an answer the cache has let
-- go takes its list with it.  Each asker gets tables of its own.
local family_memo = setmetatable({}, { __mode = "k" })

local function copy_addrs(list)
    local out = {}
    for i = 1, #list do
        local a = list[i]
        out[i] = { family = a.family, address = a.address, ttl = a.ttl, name = a.name }
    end
    return out
end

-- One family: the A or AAAA records of name, following CNAMEs (inside an
-- answer and across queries) up to max_cname_depth.  first: the answer to
-- the first question, when the caller found it in the cache (counted as
-- the query would have counted it).
-- @return addrs, chain, answer | nil, code, detail
local function resolve_family(self, name, family, deadline, first)
    local qtype = FAMILY_TYPE[family]
    local code, detail
    if first then
        self.counts.cached = self.counts.cached + 1
    else
        first, code, detail = self:query(name, qtype, deadline)
        if not first then return nil, code, detail end
    end
    -- (a stand-in resolver's answers are not known to be kept unchanged)
    local memoize = getmetatable(self) == Resolver
    local memo = memoize and family_memo[first]
    local known = memo and memo[name]
    if known then return copy_addrs(known), {}, first end
    local chain, seen, hops = {}, { [norm(name)] = true }, 0
    local cur, res = name, first
    while true do
        if not res then
            res, code, detail = self:query(cur, qtype, deadline)
            if not res then return nil, code, detail end
        end
        local cnames, found = {}, {}
        for _, rr in ipairs(res.answers) do
            local owner = norm(rr.name or cur) -- a record without its name (a stand-in's) answers the question
            if rr.type == "CNAME" then
                cnames[owner] = rr.target
            elseif rr.type == qtype then
                found[owner] = found[owner] or {}
                table.insert(found[owner], rr)
            end
        end
        local n = norm(cur)
        while cnames[n] do
            hops = hops + 1
            local max_depth = self.max_cname_depth or DEFAULT_CNAME_DEPTH
            if hops > max_depth then
                return nil, "limit", ("%s: CNAME chain longer than %d"):format(name, max_depth)
            end
            local target = norm(cnames[n])
            chain[#chain + 1] = target
            n = target
            if seen[n] then return nil, "dns", ("%s: CNAME loop at %s"):format(name, target) end
            seen[n] = true
        end
        if found[n] or n == norm(cur) then
            local addrs = {}
            for _, rr in ipairs(found[n] or {}) do
                addrs[#addrs + 1] = { family = family, address = rr.address, ttl = rr.ttl, name = n }
            end
            if #chain == 0 and memoize then -- the first answer alone made the list
                if not memo then memo = {}; family_memo[first] = memo end
                memo[name] = copy_addrs(addrs)
            end
            return addrs, chain, res
        end
        cur, res = chain[#chain], nil -- the chain leaves this answer: ask for its end
    end
end

-- the lists addresses() walks (read only: never handed out)
local FAMILY_LISTS = { both = { "ipv4", "ipv6" }, ipv4 = { "ipv4" }, ipv6 = { "ipv6" } }

-- The families to ask, as a list that is only read: the caller's own list
-- once it is found good (a list a caller changes later is read no more).
local function check_families(families)
    if families == nil then return FAMILY_LISTS.both end
    if type(families) == "string" and FAMILY_LISTS[families] then return FAMILY_LISTS[families] end
    if type(families) == "table" and #families > 0 then
        for i, f in ipairs(families) do
            if not FAMILY_TYPE[f] then return nil, ("families[%d]: 'ipv4' or 'ipv6' expected"):format(i) end
        end
        return families
    end
    return nil, "'ipv4', 'ipv6', 'both' or a list of them expected"
end

--- Addresses of name: A and AAAA asked concurrently, CNAMEs followed.
-- families: "ipv4" | "ipv6" | "both" (default) | { "ipv4", "ipv6" }.
-- @return { {family=, address=, ttl=, name=}, ... } (IPv4 first), info
--   info = { cname = {targets...}, rcode = rcode of the first family
--            answered, answers = {ipv4 = answer, ipv6 = answer},
--            errors = {ipv6 = {code=, detail=}} | nil }
--   or nil, code, detail when every family failed.
function Resolver:addresses(name, families, deadline)
    local normed = check_name(name, 1, "addresses")
    local fams, why = check_families(families)
    if not fams then argerror(2, "addresses", why) end
    check_deadline(deadline, 3, "addresses")
    -- The families are asked at once, a task each, unless every first
    -- question is answered from the cache: then in this task, one after the
    -- other (a provider's MX host is asked about by each of its domains;
    -- two tasks per domain were a good part of its CPU, issue 15).
    -- (a stand-in resolver without this cache: a task each)
    -- The cached first answers are handed to resolve_family, which does
    -- not ask for them again.
    local tasks, cached, firsts = {}, getmetatable(self) == Resolver and not self.closed, {}
    for i, fam in ipairs(fams) do
        local hit = cached and cache_get(self, FAMILY_TYPE[fam] .. " " .. normed)
        if not hit then cached = false; break end
        firsts[i] = hit
    end
    if not cached then
        for i, fam in ipairs(fams) do tasks[i] = loop.spawn(resolve_family, self, name, fam, deadline) end
    end
    local list, info, nerr, first_err = {}, { cname = {}, answers = {} }, 0, nil
    for i, fam in ipairs(fams) do
        local addrs, chain, res
        if cached then
            addrs, chain, res = resolve_family(self, name, fam, deadline, firsts[i])
        else
            addrs, chain, res = loop.join(tasks[i])
        end
        if addrs then
            for _, a in ipairs(addrs) do list[#list + 1] = a end
            if #chain > #info.cname then info.cname = chain end
            info.answers[fam] = res
            info.rcode = info.rcode or res.rcode
        else
            local code, detail = chain, res
            if code == "error" then
                for j = i + 1, #tasks do loop.cancel(tasks[j]) end
                error(detail, 0)
            end
            info.errors = info.errors or {}
            info.errors[fam] = { code = code, detail = detail }
            nerr = nerr + 1
            first_err = first_err or info.errors[fam]
        end
    end
    if nerr == #fams then return nil, first_err.code, first_err.detail end
    return list, info
end

--- Names of ip (a numeric IPv4 or IPv6 address) from its PTR records.
-- @return { "host", ... }, answer | nil, code, detail
function Resolver:ptr(ip, deadline)
    if type(ip) ~= "string" then argerror(1, "ptr", "string expected, got " .. type(ip)) end
    check_deadline(deadline, 2, "ptr")
    local ok, rname = pcall(C.reverse_name, ip)
    if not ok then argerror(1, "ptr", ("not an IPv4 or IPv6 address: '%s'"):format(ip)) end
    local res, code, detail = self:query(rname, "PTR", deadline)
    if not res then return nil, code, detail end
    local hosts = {}
    for _, rr in ipairs(res.answers) do
        if rr.type == "PTR" then hosts[#hosts + 1] = norm(rr.host) end
    end
    return hosts, res
end

-- resolver -> outcome of its self-test, so that it is asked once per run
local probes = setmetatable({}, { __mode = "k" })

--- Does this resolver validate DNSSEC?  As Postfix's dnssec_probe: ask a
-- name known to be signed (default ". NS", the root zone) and look at AD.
-- Asked once per resolver (one run); concurrent askers share the question.
-- Works with any object that has :query (spec stand-ins too).
-- @return true | false, reason   (false also when the probe itself failed)
function M.validates(resolver, name, qtype, deadline)
    name, qtype = name or ".", qtype or "NS"
    local key = qtype .. " " .. norm(name)
    local memo = probes[resolver]
    if not memo then memo = {}; probes[resolver] = memo end
    local o = memo[key]
    if not o then
        local res, code, detail = resolver:query(name, qtype, deadline)
        if memo[key] then o = memo[key] -- another asker finished first
        else
            if not res then
                o = { false, ("the DNSSEC probe %s %s failed: %s %s"):format(name, qtype, tostring(code), detail or "") }
            elseif res.ad ~= true then
                o = { false, ("this resolver does not validate DNSSEC (no AD bit for the signed name %s %s, rcode %s)")
                    :format(name, qtype, tostring(res.rcode)) }
            else
                o = { true }
            end
            memo[key] = o
        end
    end
    return o[1], o[2]
end

--- Counters: sent (queries on the wire), cached (answered from the
-- cache), coalesced (joined a query in flight), pending (c-ares queries
-- not finished, abandoned ones included).
function Resolver:stats()
    local c = self.counts
    return { sent = c.sent, cached = c.cached, coalesced = c.coalesced,
             pending = self.closed and 0 or self.core:pending() }
end

--- The servers in use, as "ip:port" / "[ipv6]:port".
function Resolver:servers()
    if self.closed then error("servers: the resolver is closed", 2) end
    return self.core:servers()
end

--- Close: queries in flight end with nil, "cancelled".
function Resolver:close()
    if self.closed then return end
    self.closed = true
    self.core:close()
end
Resolver.__close = Resolver.close

function Resolver:__tostring()
    return ("mxprobe.net.dns resolver (%s)"):format(self.closed and "closed" or "open")
end

--- The helpers as functions of any object with a :query method (the
-- run's resolver, or a spec's stand-in): what checks call, so that a check
-- reads MX, A/AAAA and PTR answers one way.
--   dns.mx(r, domain, deadline), dns.addresses(r, name, families, deadline),
--   dns.ptr(r, ip, deadline): as the methods above.
M.mx = Resolver.mx
M.addresses = Resolver.addresses
M.ptr = Resolver.ptr

return M
