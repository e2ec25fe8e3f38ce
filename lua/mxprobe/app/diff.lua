--- mxprobe.app.diff: `mxprobe diff OLD.jsonl NEW.jsonl`, what changed
-- between two audits, per domain (docs/audits.md, "Comparing two audits").
--
--   local d = require("mxprobe.app.diff").compare("old.jsonl", "new.jsonl", { expiring_days = 30 })
--   io.write(require("mxprobe.app.diff").text(d))
--
-- A change is what a reader acts on: the verdict, the codes with a severity
-- above ok (added, removed, or judged at another severity), a certificate
-- renewed (another fingerprint), newly expiring or expired, another TLS
-- version, MX hosts added or removed, an error that appeared or went.
-- Messages, evidence values and timings (seconds, durations, days left
-- that merely count down) are not compared: two runs a week apart always
-- differ there.  Both files are streamed into one small digest per domain
-- (memory grows with the number of domains, not with record sizes).
local common = require "mxprobe.app.cli.common"
local argparse = require "argparse"
local cjson = require "cjson"
local json = require "mxprobe.report.json"

local M = {}

M.EXPIRING_DAYS = 30
M.SCHEMA = 1

local RANK = { ok = 0, info = 1, warning = 2, inconclusive = 3, error = 3, critical = 4 }

local function each_finding(r, fn)
    local dns = type(r.dns) == "table" and r.dns or {}
    for _, f in ipairs(type(dns.findings) == "table" and dns.findings or {}) do fn(f) end
    for _, f in ipairs(type(r.findings) == "table" and r.findings or {}) do fn(f) end
    for _, s in ipairs(type(r.servers) == "table" and r.servers or {}) do
        for _, f in ipairs(type(s.findings) == "table" and s.findings or {}) do fn(f) end
    end
end

local function str(v) return type(v) == "string" and v or nil end
local function num(v) return type(v) == "number" and v or nil end

--- The part of a record a diff compares: { verdict, error, codes = {code
-- -> worst severity}, mx = {"PREF HOST" -> true}, certs = {host -> {
-- fingerprint, not_after, days_left }}, tls = {host -> version} }.
function M.digest(r)
    local d = { verdict = str(r.verdict) or "inconclusive", error = str(r.error), codes = {}, mx = {}, certs = {}, tls = {},
                hosts = {} }
    each_finding(r, function(f)
        if type(f) ~= "table" or type(f.code) ~= "string" then return end
        local sev = str(f.severity) or "info"
        if sev == "ok" then return end
        local had = d.codes[f.code]
        if not had or (RANK[sev] or 0) > (RANK[had] or 0) then d.codes[f.code] = sev end
    end)
    local dns = type(r.dns) == "table" and r.dns or {}
    for _, mx in ipairs(type(dns.mx) == "table" and dns.mx or {}) do
        if type(mx) == "table" and str(mx.host) then
            -- cjson reads numbers as floats: 10.0 is written "10"
            local pref = type(mx.preference) == "number" and (math.tointeger(mx.preference) or mx.preference) or "?"
            d.mx[("%s %s"):format(tostring(pref), mx.host)] = true
        end
    end
    -- one certificate and TLS version per MX host: its first address that
    -- has one (the addresses of one host normally serve the same)
    for _, s in ipairs(type(r.servers) == "table" and r.servers or {}) do
        local facts = type(s) == "table" and type(s.facts) == "table" and s.facts or {}
        local host = str(s.host) or str(s.address) or "?"
        d.hosts[host] = true
        local c = type(facts.certificate) == "table" and facts.certificate or nil
        if c and not d.certs[host] and (str(c.fingerprint_sha256) or num(c.not_after)) then
            d.certs[host] = { fingerprint = str(c.fingerprint_sha256), not_after = num(c.not_after),
                              days_left = num(c.days_left) }
        end
        local st = type(facts.starttls) == "table" and facts.starttls or nil
        if st and str(st.version) and not d.tls[host] then d.tls[host] = st.version end
    end
    return d
end

-- Compare the parts of the provenance that change results.
local function provenance_changes(a, b)
    if type(a) ~= "table" or type(b) ~= "table" then return {} end
    local out = {}
    local function get(p, path)
        for _, k in ipairs(path) do
            if type(p) ~= "table" then return nil end
            p = p[k]
        end
        return p ~= nil and p ~= cjson.null and p or nil
    end
    for _, f in ipairs {
        { "mxprobe", { "mxprobe" } }, { "ehlo", { "ehlo" } }, { "policy", { "policy", "name" } },
        { "policy sha256", { "policy", "sha256" } }, { "CA file sha256", { "ca_file", "sha256" } },
        { "vantage", { "vantage" } },
    } do
        local x, y = get(a, f[2]), get(b, f[2])
        if type(x) == "table" then x = json.encode(x) end
        if type(y) == "table" then y = json.encode(y) end
        if x ~= y then out[#out + 1] = { what = f[1], from = x, to = y } end
    end
    return out
end

local function sorted_keys(t)
    local l = {}
    for k in pairs(t) do l[#l + 1] = k end
    table.sort(l)
    return l
end

--- What changed from digest a to digest b.  @return change table | nil (nothing)
function M.compare_digests(domain, a, b, expiring_days)
    expiring_days = expiring_days or M.EXPIRING_DAYS
    local c = { domain = domain }
    local any = false
    if a.verdict ~= b.verdict then c.verdict = { from = a.verdict, to = b.verdict }; any = true end
    if a.error ~= b.error then c.error = { from = a.error, to = b.error }; any = true end
    local added, removed, sev = json.array(), json.array(), json.array()
    for _, code in ipairs(sorted_keys(b.codes)) do
        if not a.codes[code] then added[#added + 1] = { code = code, severity = b.codes[code] }
        elseif a.codes[code] ~= b.codes[code] then sev[#sev + 1] = { code = code, from = a.codes[code], to = b.codes[code] } end
    end
    for _, code in ipairs(sorted_keys(a.codes)) do
        if not b.codes[code] then removed[#removed + 1] = { code = code, severity = a.codes[code] } end
    end
    if #added > 0 then c.codes_added = added; any = true end
    if #removed > 0 then c.codes_removed = removed; any = true end
    if #sev > 0 then c.severity_changed = sev; any = true end

    local certs = json.array()
    for _, host in ipairs(sorted_keys(b.certs)) do
        local o, n = a.certs[host], b.certs[host]
        local change
        if o and o.fingerprint and n.fingerprint and o.fingerprint ~= n.fingerprint then
            change = "renewed"
        elseif n.days_left and n.days_left < 0 and not (o and o.days_left and o.days_left < 0) then
            change = "expired"
        elseif n.days_left and n.days_left <= expiring_days
            and not (o and o.days_left and o.days_left <= expiring_days) then
            change = "expiring"
        end
        if change then
            certs[#certs + 1] = { host = host, change = change, days_left = n.days_left,
                                  from = o and { not_after = o.not_after, fingerprint = o.fingerprint } or nil,
                                  to = { not_after = n.not_after, fingerprint = n.fingerprint } }
        end
    end
    if #certs > 0 then c.certificates = certs; any = true end

    local tls = json.array()
    local hosts = {}
    for h in pairs(a.tls) do hosts[h] = true end
    for h in pairs(b.tls) do hosts[h] = true end
    for _, h in ipairs(sorted_keys(hosts)) do
        -- only hosts tested both times: a host gone from the MX set is an
        -- MX change, not a TLS one; no version on one side is TLS lost or won
        if a.hosts[h] and b.hosts[h] and a.tls[h] ~= b.tls[h] then
            tls[#tls + 1] = { host = h, from = a.tls[h], to = b.tls[h] }
        end
    end
    if #tls > 0 then c.tls = tls; any = true end

    local mx_added, mx_removed = json.array(), json.array()
    for _, m in ipairs(sorted_keys(b.mx)) do if not a.mx[m] then mx_added[#mx_added + 1] = m end end
    for _, m in ipairs(sorted_keys(a.mx)) do if not b.mx[m] then mx_removed[#mx_removed + 1] = m end end
    if #mx_added > 0 then c.mx_added = mx_added; any = true end
    if #mx_removed > 0 then c.mx_removed = mx_removed; any = true end
    return any and c or nil
end

-- Stream the records of a file: fn(record) for each; counts what is not one.
local function each_record(path, fn)
    local f, err = io.open(path, "rb")
    if not f then return nil, ("cannot read '%s': %s"):format(path, (tostring(err):gsub("^[^:]*: ", ""))) end
    local info = { records = 0, unreadable = 0, duplicates = 0 }
    for line in f:lines() do
        if line:find("%S") then
            local ok, r = pcall(cjson.decode, line)
            if ok and type(r) == "table" and type(r.domain) == "string" then
                info.records = info.records + 1
                fn(r, info)
            else
                info.unreadable = info.unreadable + 1
            end
        end
    end
    f:close()
    return info
end

--- Compare two audit outputs (JSON Lines).
-- opts: expiring_days (default 30): a certificate that enters this many
-- days before its end is "expiring".
-- @return diff { old = {file, records, unreadable, duplicates}, new = {...},
--   changed = { change... } (by domain), only_old, only_new (sorted
--   domains), unchanged = n, provenance = { {what, from, to}... } } | nil, detail
function M.compare(old_path, new_path, opts)
    opts = opts or {}
    local days = opts.expiring_days or M.EXPIRING_DAYS
    local old, old_prov = {}, nil
    local oinfo, err = each_record(old_path, function(r, info)
        if old[r.domain] then info.duplicates = info.duplicates + 1 end
        old[r.domain] = M.digest(r) -- the last record of a domain wins, as a reader of the file sees it last
        old_prov = old_prov or r.provenance
    end)
    if not oinfo then return nil, err end
    local changed, only_new, seen, unchanged, new_prov = {}, json.array(), {}, 0, nil
    local ninfo
    ninfo, err = each_record(new_path, function(r, info)
        new_prov = new_prov or r.provenance
        if seen[r.domain] then info.duplicates = info.duplicates + 1 end
        seen[r.domain] = M.digest(r)
    end)
    if not ninfo then return nil, err end
    for domain, nd in pairs(seen) do
        local od = old[domain]
        if not od then
            only_new[#only_new + 1] = domain
        else
            local c = M.compare_digests(domain, od, nd, days)
            if c then changed[#changed + 1] = c else unchanged = unchanged + 1 end
        end
    end
    local only_old = json.array()
    for domain in pairs(old) do if not seen[domain] then only_old[#only_old + 1] = domain end end
    table.sort(only_old); table.sort(only_new)
    table.sort(changed, function(x, y) return x.domain < y.domain end)
    oinfo.file, ninfo.file = old_path, new_path
    return {
        kind = "mxprobe-diff", schema = M.SCHEMA, old = oinfo, new = ninfo, expiring_days = days,
        changed = json.array(changed), unchanged = unchanged, only_old = only_old, only_new = only_new,
        provenance = json.array(provenance_changes(old_prov, new_prov)),
    }
end

local function day(t)
    return t and os.date("!%Y-%m-%d", math.floor(t)) or "?"
end

--- The diff as text for people.
function M.text(d)
    local out = {}
    local function add(fmt, ...) out[#out + 1] = fmt:format(...) end
    local both = #d.changed + d.unchanged
    add("mxprobe diff %s %s: %d %s in both, %d changed, %d unchanged; %d only in the old, %d only in the new",
        d.old.file, d.new.file, both, both == 1 and "domain" or "domains", #d.changed, d.unchanged,
        #d.only_old, #d.only_new)
    for _, side in ipairs { "old", "new" } do
        local i = d[side]
        if i.unreadable > 0 or i.duplicates > 0 then
            add("  %s: %d lines that are not records, %d domains recorded twice (the last record counts)",
                i.file, i.unreadable, i.duplicates)
        end
    end
    for _, p in ipairs(d.provenance) do
        add("  made differently: %s %s -> %s", p.what, tostring(p.from or "(none)"), tostring(p.to or "(none)"))
    end
    for _, c in ipairs(d.changed) do
        add("")
        add("%s%s", c.domain, c.verdict and (": verdict %s -> %s"):format(c.verdict.from, c.verdict.to) or "")
        if c.error then add("  error: %s -> %s", c.error.from or "(none)", c.error.to or "(none)") end
        for _, x in ipairs(c.codes_added or {}) do add("  + %s (%s)", x.code, x.severity) end
        for _, x in ipairs(c.codes_removed or {}) do add("  - %s (%s)", x.code, x.severity) end
        for _, x in ipairs(c.severity_changed or {}) do add("  ~ %s %s -> %s", x.code, x.from, x.to) end
        for _, x in ipairs(c.certificates or {}) do
            if x.change == "renewed" then
                add("  certificate of %s renewed: ends %s -> %s", x.host, day(x.from and x.from.not_after), day(x.to.not_after))
            else
                add("  certificate of %s %s: ends %s (%s days left)", x.host, x.change, day(x.to.not_after),
                    x.days_left and tostring(math.tointeger(x.days_left) or x.days_left) or "?")
            end
        end
        for _, x in ipairs(c.tls or {}) do
            add("  TLS on %s: %s -> %s", x.host, x.from or "(none)", x.to or "(none)")
        end
        for _, m in ipairs(c.mx_added or {}) do add("  MX + %s", m) end
        for _, m in ipairs(c.mx_removed or {}) do add("  MX - %s", m) end
    end
    local function list(label, t)
        if #t == 0 then return end
        add("")
        add("only in %s (%d):", label, #t)
        for _, dm in ipairs(t) do add("  %s", dm) end
    end
    list(d.old.file, d.only_old)
    list(d.new.file, d.only_new)
    return table.concat(out, "\n") .. "\n"
end

local function parser()
    local p = argparse("mxprobe diff")
    p:description("What changed between two audits (JSON Lines outputs of mxprobe audit), per domain: "
        .. "the verdict, codes added and removed or judged at another severity, certificates renewed, "
        .. "expiring or expired, TLS versions, MX hosts; and the domains only in one of them. "
        .. "Messages, evidence values and timings are not compared.")
    p:epilog("Exit status: 0 no change, 1 changes (or domains in one file only), 3 an error.\n\n"
        .. "Example:\n  mxprobe diff last-week.jsonl today.jsonl\n  mxprobe diff --json a.jsonl b.jsonl | jq '.changed[].domain'\n\n"
        .. "Full documentation: docs/audits.md")
    p:add_help(false):usage_max_width(80):help_max_width(80):help_description_margin(30)
    p:argument("old", "The earlier audit."):args(1)
    p:argument("new", "The later audit."):args(1)
    p:flag("--json", "One JSON document instead of text.")
    p:option("--expiring-days", ("A certificate that gets this close to its end is reported as expiring "
        .. "(default %d)."):format(M.EXPIRING_DAYS)):argname("<n>")
    p:flag("-h --help", "Show this help and exit.")
    return p
end
M.parser = parser

--- argv: the arguments after "diff".  env: stdout, stderr.  @return exit code
function M.main(argv, env)
    local args, stdout, stderr, fail = common.subcommand("diff", parser, argv, env)
    if not args then return stdout end -- the exit code: help shown, or a usage error
    local days
    if args.expiring_days then
        days = args.expiring_days:match("^%d+$") and tonumber(args.expiring_days)
        if not days or days > 3650 then
            return fail(("--expiring-days: '%s' is not a whole number of days from 0 to 3650"):format(args.expiring_days))
        end
        days = math.tointeger(days)
    end
    local d, err = M.compare(args.old, args.new, { expiring_days = days })
    if not d then return fail(err) end
    if args.json then stdout:write(json.encode(d), "\n") else stdout:write(M.text(d)) end
    if stdout.flush then stdout:flush() end
    local differs = #d.changed > 0 or #d.only_old > 0 or #d.only_new > 0
    return differs and 1 or 0
end

return M
