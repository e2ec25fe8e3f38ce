--- mxprobe.app.audit: many domains through one engine run (docs/audits.md).
--
--   local audit = require "mxprobe.app.audit"
--   local summary = audit.run {
--       input = "domains.txt",                    -- or domains = { "a.example", ... }
--       output = "results.jsonl",                 -- a path or a file (default io.stdout)
--       config = { ca_file = "...", timeouts = { connect = 10 } },
--       limits = { sessions_per_address = 2 },    -- over the policy's probe.limits
--   }
--
-- One engine run checks every domain, so DNS answers are cached for the
-- whole audit and, with sharing on (the default), every (address, port, MX
-- name) is probed once and its session results shared by all the domains
-- that use it.  Records are written and flushed as each domain completes
-- (completion order, not input order), one per input domain: a result, or
-- a record with an `error` field.  Duplicates are checked and written once.
--
-- Ctrl-C (with signals = true, the default): no new domain starts, the
-- domains in flight are cancelled and left out of the output (they have no
-- record, so `resume` picks them up), the summary says how many were not
-- checked, and the exit code is 3.  A second Ctrl-C exits at once.
--
-- Everything here is also what `mxprobe audit` (mxprobe.app.cli) runs.
local loop = require "mxprobe.runtime.loop"
local vocab = require "mxprobe.runtime.vocab"
local findings = require "mxprobe.runtime.findings"
local frozen = require "mxprobe.runtime.frozen"
local core = require "mxprobe.core"
local json = require "mxprobe.report.json"
local csv = require "mxprobe.report.csv"
local text = require "mxprobe.report.text"
local domain = require "mxprobe.net.domain"
local runner = require "mxprobe.app.runner"
local sink = require "mxprobe.app.sink"
local formats = require "mxprobe.app.formats"
local cjson = require "cjson"

local M = {}

M.DEFAULT_PARALLEL = 1000      -- domains in flight (limits.max_domains)
M.DEFAULT_DNS_QUERIES = 128    -- DNS queries in flight: the default policy's limits.max_dns_queries
M.PROGRESS_INTERVAL = 0.5      -- seconds between progress line updates
M.RATE_WINDOW = 30             -- the progress line's rate: domains per second over the last 30 s

--- The ETA of the progress line, in seconds (nil: unknown).  left: domains
-- without a record; in_flight: those being tested; rate: domains per
-- second lately; acts: loop.activities() (what the tests wait for, with
-- deadlines).  Honest during time-outs: while every remaining domain is in
-- flight, the run cannot end before the last of their deadlines; while
-- nothing completes (rate 0: all waiting on dead servers), not before the
-- first one.
function M.eta(left, in_flight, rate, acts, now)
    if left <= 0 then return 0 end
    local eta = rate and rate > 0 and left / rate or nil
    local first, last
    for _, a in ipairs(acts or {}) do
        if a.deadline then
            local d = math.max(0, a.deadline - now)
            first = first and math.min(first, d) or d
            last = last and math.max(last, d) or d
        end
    end
    if left <= in_flight and last then eta = math.max(eta or 0, last) end
    if (not rate or rate <= 0) and first then eta = math.max(eta or 0, first) end
    return eta
end

--- 95 -> "1m35s", 3725 -> "1h02m", nil -> "?"
function M.duration(s)
    if not s then return "?" end
    s = math.ceil(s)
    if s < 60 then return ("%ds"):format(s) end
    if s < 3600 then return ("%dm%02ds"):format(s // 60, s % 60) end
    return ("%dh%02dm"):format(s // 3600, (s % 3600) // 60)
end

local VERDICTS = vocab.VERDICTS

----------------------------------------------------------------- input

--- A domain name as written in an input file, to the name that is
-- checked: internationalised names become A-labels (libidn2), a trailing
-- dot goes, ASCII is lower-cased.  The rules of `mxprobe DOMAIN`.
-- @return name | nil, why
function M.normalize(s)
    if type(s) ~= "string" then error(("bad argument #1 to 'normalize' (string expected, got %s)"):format(type(s)), 2) end
    local name, err = domain.parse(s)
    if not name then return nil, err end
    return name:lower()
end

--- The text of an input line that is not a domain name, as its record
-- stores it (the record's `domain`, and the key `--resume` reads back):
-- every byte that is not part of a valid UTF-8 sequence, every control
-- character and the backslash itself become the four characters \xNN.
-- Why all three: JSON and CSV must be UTF-8, CSV turns CR into a space, and
-- escaping the backslash too makes the text one-to-one with the bytes, so
-- two different lines ("\255" and the four characters "\xFF") can never
-- share a record, and a resumed run finds every record it wrote.
-- Text without any of these comes back unchanged.
function M.input_text(s)
    if utf8.len(s) and not s:find("[%z\1-\31\127\\]") then return s end
    local out, i, n = {}, 1, #s
    while i <= n do
        local b = s:byte(i)
        local ok, cp = pcall(utf8.codepoint, s, i)
        if ok and b >= 0x20 and b ~= 0x7f and b ~= 0x5c then
            local len = #utf8.char(cp)
            out[#out + 1] = s:sub(i, i + len - 1)
            i = i + len
        else
            out[#out + 1] = ("\\x%02X"):format(b)
            i = i + 1
        end
    end
    return table.concat(out)
end

--- One line of an input file.  Comments start with '#' (whole lines or
-- after the name); blank lines are skipped; CR, a UTF-8 BOM and spaces
-- around the name are ignored.
-- @return nil for nothing, or an entry:
--   { name = "xn--bcher-kva.example", input = "bücher.example" (when it
--     differs from name), line = n } or
--   { input = "not a domain" (as M.input_text writes it), error = "why", line = n }
-- %s: space, \t, \n, \v, \f, \r
local function is_space(b) return b == 32 or (b ~= nil and b >= 9 and b <= 13) end

function M.parse_line(line, lineno)
    if lineno == 1 then line = line:gsub("^\239\187\191", "") end
    -- most lines are a bare name: no pattern runs over them (Lua's matcher
    -- tries "%s*$" at every position; issue 15 (c))
    local hash = line:find("#", 1, true)
    if hash then line = line:sub(1, hash - 1) end
    if is_space(line:byte(1)) or is_space(line:byte(-1)) then line = line:match("^%s*(.-)%s*$") end
    if line == "" then return nil end
    local name, why = M.normalize(line)
    if not name then return { input = M.input_text(line), error = why, line = lineno } end
    local e = { name = name, line = lineno }
    if line ~= name then e.input = line end
    return e
end

--- The key that identifies an entry (duplicates, shards, resume): the
-- normalised name, or the text as given when it is not a domain name.
function M.key(e) return e.name or e.input end

--- Entries of a path, "-" (stdin), an open file, or a list of strings, one
-- at a time: the input is never held in memory as a whole.
-- @return stream { next = function() -> entry | nil at the end,
--   lines = lines read so far, close = function() }  | nil, "io", detail
-- Reading stdin blocks the whole run while the producer is silent (Lua has
-- no non-blocking line reads); give a file for inputs made slowly.
function M.stream(source)
    local st = { lines = 0, finite = true } -- finite: a list or a named file, not a pipe
    if type(source) == "table" and getmetatable(source) == nil then
        for i, s in ipairs(source) do -- a bad list fails at once, not in mid-run
            if type(s) ~= "string" then error(("domains[%d]: string expected, got %s"):format(i, type(s)), 3) end
        end
        function st.next()
            while st.lines < #source do
                st.lines = st.lines + 1
                local e = M.parse_line(source[st.lines], st.lines)
                if e then return e end
            end
        end
        function st.close() end
        return st
    end
    local f, close
    if source == "-" then
        f, st.finite = io.stdin, false
    elseif type(source) == "string" then
        local err
        f, err = io.open(source, "r")
        if not f then return nil, "io", ("cannot read '%s': %s"):format(source, (err:gsub("^[^:]*: ", ""))) end
        -- a directory opens, then fails to read: say so now, plainly
        local _, rerr = f:read(0)
        if rerr then
            f:close()
            return nil, "io", ("cannot read '%s': %s"):format(source, (tostring(rerr):gsub("^[^:]*: ", "")))
        end
        close = true
    elseif io.type(source) == "file" then
        f, st.finite = source, false
    else
        error(("bad argument #1 to 'read' (path, '-', file or list expected, got %s)"):format(type(source)), 3)
    end
    local eof = false
    function st.next()
        while not eof do
            local line = f:read("l")
            if not line then
                eof = true
                st.close()
                return nil
            end
            st.lines = st.lines + 1
            local e = M.parse_line(line, st.lines)
            if e then return e end
        end
    end
    function st.close()
        if close then close = false; f:close() end
    end
    return st
end

--- Read all entries of a path, "-" (stdin), an open file, or a list of
-- strings (M.stream, collected).  @return entries, lines | nil, "io", detail
function M.read(source)
    local st, code, detail = M.stream(source)
    if not st then return nil, code, detail end
    local entries = {}
    for e in st.next do entries[#entries + 1] = e end
    return entries, st.lines
end

----------------------------------------------------------------- shards

--- Which of n shards key belongs to (1..n): FNV-1a (32 bits) of the key's
-- bytes, modulo n.  Depends on nothing but the key, so the same domain
-- lands in the same shard whatever the order of the file, on any machine.
function M.shard_of(key, n)
    local h = 2166136261
    for i = 1, #key do
        h = ((h ~ key:byte(i)) * 16777619) & 0xffffffff
    end
    return h % n + 1
end

--- "K/N" -> k, n (1 <= K <= N) | nil, why
function M.parse_shard(s)
    local k, n = tostring(s):match("^(%d+)/(%d+)$")
    k, n = tonumber(k), tonumber(n)
    if not k or n < 1 or n > 1000000 or k < 1 or k > n then
        return nil, ("'%s' is not K/N with 1 <= K <= N (for example 3/8: the third of eight shares)"):format(tostring(s))
    end
    return math.tointeger(k), math.tointeger(n)
end

----------------------------------------------------------------- resume

-- The end (index of the closing quote) of the JSON string starting at i.
local function json_string_end(s, i)
    local j = i + 1
    while true do
        j = s:find('["\\]', j)
        if not j then return nil end
        if s:byte(j) == 34 then return j end
        j = j + 2 -- an escape: skip the escaped character
    end
end

-- The end of the JSON value starting at i (nested values are skipped by
-- counting brackets outside strings; nothing is decoded).
local function json_value_end(s, i)
    local c = s:byte(i)
    if c == 34 then return json_string_end(s, i) end
    if c == 123 or c == 91 then -- { [
        local depth, j = 1, i + 1
        while true do
            j = s:find('[][{}"]', j)
            if not j then return nil end
            local b = s:byte(j)
            if b == 34 then
                j = json_string_end(s, j)
                if not j then return nil end
            elseif b == 123 or b == 91 then depth = depth + 1
            else
                depth = depth - 1
                if depth == 0 then return j end
            end
            j = j + 1
        end
    end
    local j = s:find("[,} \t\r\n]", i)
    return j and j - 1 or nil
end

--- The string value of top-level key `want` of one JSON object line,
-- found without decoding the record: the other values are skipped over,
-- and only that string (and a key with escapes in it) is decoded.  Where a
-- key appears twice the last one counts, as with cjson.  nil when the line
-- is not an object or has no such string.
function M.json_field(s, want)
    if s:byte(1) ~= 123 then return nil end
    local i, found = 2, nil
    while true do
        i = s:find("[^ \t\r\n,]", i)
        if not i then return nil end
        if s:byte(i) == 125 then return found end -- "}": the end of the object
        if s:byte(i) ~= 34 then return nil end
        local kend = json_string_end(s, i)
        if not kend then return nil end
        local key = s:sub(i + 1, kend - 1)
        if key:find("\\", 1, true) then
            local ok, k = pcall(cjson.decode, s:sub(i, kend))
            key = ok and k or key
        end
        i = s:find("[^ \t\r\n]", kend + 1)
        if not i or s:byte(i) ~= 58 then return nil end -- ":"
        i = s:find("[^ \t\r\n]", i + 1)
        if not i then return nil end
        local vend = json_value_end(s, i)
        if not vend then return nil end
        if key == want then
            found = nil
            if s:byte(i) == 34 then
                local ok, v = pcall(cjson.decode, s:sub(i, vend))
                if ok and type(v) == "string" then found = v end
            end
            -- A second such key can only come later, spelt plainly or with
            -- \u escapes; without either, the rest of the record (most of
            -- it: servers, transcripts) need not be walked.
            if not s:find('"' .. want .. '"', vend + 1, true) and not s:find("\\u", vend + 1, true) then
                return found
            end
        end
        i = vend + 1
    end
end

-- The first field of a CSV line as report.csv writes it.
local function csv_first(line)
    if line:byte(1) ~= 34 then return line:match("^[^,]*") end
    return csv.parse_line(line)[1]
end

-- The domain of one output line: JSON Lines (a record's "domain") or CSV
-- (the first field).  `first`: the file's first line, where a CSV header
-- is; `csv_file`: that header was seen.  A CSV record may start with "{"
-- too (the text of a line that is not a domain name), but never holds a
-- JSON object with a string in it unquoted (a '"' makes the field quoted).
local function recorded_domain(line, first, csv_file)
    if line:byte(1) == 123 then
        local d = M.json_field(line, "domain")
        if d or not csv_file then return d end
    end
    if first and line:sub(1, 7) == "domain," then return nil, "header" end
    local d = csv_first(line)
    if d and d ~= "" then return d end
end

--- The domains an earlier output (JSON Lines or CSV, as written by an
-- audit) already has records for, read line by line: only each record's
-- domain is kept, in one table.  A missing file is an empty one.  A last
-- line without its newline (the writer was killed mid-line) does not count.
-- @return set (domain -> true), info { records =, unreadable =, partial = bytes, size = bytes }
--   | nil, "io", detail
-- into: a core.keyset to fill instead (each domain tagged M.RECORDED), what
-- the audit itself uses: the names stay out of the Lua heap.
function M.recorded(path, into)
    local set, info = {}, { records = 0, unreadable = 0, partial = 0, size = 0 }
    if into then set = into end
    local f, err = io.open(path, "rb")
    if not f then
        if err:find("No such file", 1, true) then return set, info end
        return nil, "io", ("cannot read '%s': %s"):format(path, (err:gsub("^[^:]*: ", "")))
    end
    local first, csv_file = true, false
    while true do
        local line, rerr = f:read("L")
        if not line then
            if rerr then f:close(); return nil, "io", ("cannot read '%s': %s"):format(path, rerr) end
            break
        end
        info.size = info.size + #line
        if line:byte(-1) ~= 10 then
            info.partial = #line -- only the last line can lack its newline
            break
        end
        line = line:sub(1, -2)
        if line:find("%S") then
            local d, header = recorded_domain(line, first, csv_file)
            if header then csv_file = true end
            if d and into then
                if not into:get(d) then info.records = info.records + 1 end
                into:add(d, M.RECORDED)
            elseif d then
                if not set[d] then info.records = info.records + 1 end
                set[d] = true
            elseif not header then
                info.unreadable = info.unreadable + 1
            end
        end
        first = false
    end
    f:close()
    return set, info
end

-- Cut a partial last line (a writer killed mid-record) off, in place, so
-- that appending starts on a line of its own.
local function drop_partial_line(path, info)
    if info.partial == 0 then return true end
    local ok, _, detail = core.fs.truncate(path, info.size - info.partial)
    if not ok then return nil, detail end
    return true
end

----------------------------------------------------------------- plan

-- The names seen are a core.keyset (l_keyset.c: outside the Lua heap, so
-- a million names cost their bytes, not the collector's multiple of a
-- table's); `done` is one too (tags M.RECORDED) or a caller's Lua set
-- (domain -> true).
M.RECORDED, M.SEEN = 1, 2

--- A chooser of what to check: entries of this shard, first occurrences
-- only, minus those already recorded.
-- opts: shard = { k, n } | nil, done = set | nil,
--   own_done = true: `done` is this run's own table, and records the keys
--   seen too (one table for both: half the memory of two)
-- @return want(entry) -> true (check it) | false, counts { entries,
--   duplicates, other_shard, already_recorded, invalid }
function M.selector(opts)
    opts = opts or {}
    local k, n = opts.shard and opts.shard[1], opts.shard and opts.shard[2]
    local done = opts.done
    local seen = opts.own_done and done or core.keyset.new()
    local done_set = done ~= nil and type(done) ~= "table" -- a keyset
    local RECORDED, SEEN = M.RECORDED, M.SEEN
    local c = { entries = 0, duplicates = 0, other_shard = 0, already_recorded = 0, invalid = 0 }
    local function want(e)
        c.entries = c.entries + 1
        local key = M.key(e)
        if n and M.shard_of(key, n) ~= k then
            c.other_shard = c.other_shard + 1
            return false
        end
        local tag = seen:get(key)
        if tag == SEEN then
            c.duplicates = c.duplicates + 1
            return false
        end
        local recorded
        if done_set then
            recorded = (seen == done and tag or done:get(key)) == RECORDED
        else
            recorded = done ~= nil and done[key] == true
        end
        seen:add(key, SEEN)
        if recorded then
            c.already_recorded = c.already_recorded + 1
            return false
        end
        if e.error then c.invalid = c.invalid + 1 end
        return true
    end
    return want, c
end

--- Choose what to check from a list of entries (M.selector over a list).
-- @return todo (entries), counts { lines, entries, duplicates, other_shard,
--   already_recorded, invalid }
function M.select(entries, opts)
    opts = opts or {}
    local want, c = M.selector { shard = opts.shard, done = opts.done }
    local todo = {}
    for _, e in ipairs(entries) do
        if want(e) then todo[#todo + 1] = e end
    end
    return todo, c
end

----------------------------------------------------------------- records

--- The record of an entry that got no result: the one shape of error
-- records (mxprobe.app.runner.error_record, docs/json-schema.md).
function M.error_record(e, message)
    return runner.error_record(M.target(e), message)
end

--- An input entry as a target of mxprobe.app.runner.
function M.target(e)
    return { kind = "domain", name = e.name, input = e.name and e.input or e.input, error = e.error, entry = e }
end

----------------------------------------------------------------- provenance and compact records
-- What a record needs to say how it was made, so that two audits can be
-- compared honestly (mxprobe diff) and an old file explained: the program's
-- version and every option that shapes results.  Computed once per run and
-- shared by every record (the encoder writes it into each line).

M.SUMMARY_SCHEMA = 1           -- the shape of the summary document (--summary, --summarize)
M.TRANSCRIPTS = { none = true, failing = true, all = true }

local function file_digest(path)
    if type(path) ~= "string" then return nil end
    return (core.digest.file(path)) -- unreadable: no digest (the record still says which file)
end

local function version()
    return core.version or "unknown"
end
M.version = version

local function list_copy(t)
    if type(t) ~= "table" then return nil end
    local o = json.array()
    for i, v in ipairs(t) do o[i] = v end
    return o
end

--- The provenance object of the records of one run (docs/json-schema.md):
-- { mxprobe, ehlo, policy = { name, file, sha256 }, ca_file = { path, sha256 },
--   options = { port, families, timeouts, relay, checks, allow_reserved,
--   resolvers, share, transcripts }, vantage }.  run: an engine run.
function M.provenance(run, extra)
    extra = extra or {}
    local cfg = type(run.config) == "table" and run.config or {}
    local pol = type(run.policy) == "table" and run.policy or {}
    local p = { mxprobe = version(), ehlo = cfg.helo }
    p.policy = json.object { name = pol.name, file = type(pol.file) == "string" and pol.file or nil,
                             sha256 = file_digest(pol.file) }
    if cfg.ca_file then p.ca_file = json.object { path = cfg.ca_file, sha256 = file_digest(cfg.ca_file) } end
    -- the relay probe's envelope: the relay check's options (config over policy)
    local relay = {}
    for _, src in ipairs { (type(pol.options) == "table" and pol.options.relay) or {}, (type(cfg.options) == "table" and cfg.options.relay) or {} } do
        for k, v in pairs(src) do relay[k] = v end
    end
    for _, id in ipairs(type(cfg.disable) == "table" and cfg.disable or {}) do if id == "relay" then relay.enabled = false end end
    local timeouts = json.object()
    for k, v in pairs(type(cfg.timeouts) == "table" and cfg.timeouts or {}) do timeouts[k] = v end
    p.options = json.object {
        port = cfg.port, families = list_copy(cfg.families), timeouts = timeouts,
        relay = json.object { enabled = relay.enabled ~= false, from = relay.from, to = relay.to },
        checks = list_copy(cfg.only), allow_reserved = list_copy(cfg.allow_reserved),
        resolvers = list_copy(cfg.resolvers or (type(cfg.resolver) == "table" and cfg.resolver.servers) or nil),
        share = run.share and true or false, transcripts = extra.transcripts,
    }
    -- where the probes came from, when the configuration says (a vantage
    -- name, source addresses): results from two vantages are not comparable
    if cfg.vantage ~= nil then p.vantage = cfg.vantage end
    return json.object(p)
end

-- Severities of a server's findings that make it "failing" for
-- --transcripts=failing: the ones a reader would want the dialogue of.
local FAILING = { warning = true, critical = true, inconclusive = true, error = true }

--- Whether a server (of a result) has a finding worse than info.
function M.failing_server(srv)
    for _, f in ipairs(type(srv.findings) == "table" and srv.findings or {}) do
        if type(f) == "table" and FAILING[f.severity] then return true end
    end
    return false
end

-- a copy of t without key: core.copy.without makes it at its final size
-- (the Lua loop grew it key by key, for every server of every record)
local without = core.copy and core.copy.without or function(t, key)
    local c = {}
    for k, v in pairs(t) do if k ~= key then c[k] = v end end
    return c
end

--- The record to write for result r: without the transcripts (mode
-- "none"), with them for failing servers only ("failing"), or all ("all").
-- Copies what it changes: r itself (what on_result gets) keeps everything.
function M.compact(r, mode)
    if mode == "all" or type(r.servers) ~= "table" then return r end
    local drop = false
    for _, srv in ipairs(r.servers) do
        if type(srv) == "table" and srv.transcript ~= nil and not (mode == "failing" and M.failing_server(srv)) then
            drop = true
            break
        end
    end
    if not drop then return r end
    local out = {}
    for k, v in pairs(r) do out[k] = v end
    local servers = json.array()
    for i, srv in ipairs(r.servers) do
        if type(srv) == "table" and not (mode == "failing" and M.failing_server(srv)) then
            servers[i] = without(srv, "transcript")
        else
            servers[i] = srv
        end
    end
    out.servers = servers
    return out
end

----------------------------------------------------------------- summary

local function new_summary()
    local s = {
        domains = 0, records = 0, errors = 0, not_checked = 0, interrupted = false,
        verdicts = {}, codes = {},
    }
    for _, v in ipairs(VERDICTS) do s.verdicts[v] = 0 end
    return s
end

-- The codes the summary counts: those of the CSV `codes` column
-- (report.csv's codes: every code whose finding is not "ok"), each once
-- per record.  Walked here without sorting or an iterator call per
-- finding: it runs for every record of an audit (issue 15).
local QUIET = { ok = true }
local function count_codes(codes, seen, list)
    if type(list) ~= "table" then return end
    for _, f in ipairs(list) do
        if type(f) == "table" then
            local c = f.code
            if type(c) == "string" and not QUIET[f.severity] and not seen[c] then
                seen[c] = true
                codes[c] = (codes[c] or 0) + 1
            end
        end
    end
end

-- A shared probe's findings list (runtime.findings.own), the same table in
-- every record that uses the server: its counted codes are listed once.
local shared_codes = setmetatable({}, { __mode = "k" })
local function count_shared(codes, seen, list)
    local l = shared_codes[list]
    if not l then
        l = {}
        local mine = {}
        count_codes(mine, {}, list)
        for c in pairs(mine) do l[#l + 1] = c end
        shared_codes[list] = l
    end
    for i = 1, #l do
        local c = l[i]
        if not seen[c] then
            seen[c] = true
            codes[c] = (codes[c] or 0) + 1
        end
    end
end

local function count(summary, r)
    summary.records = summary.records + 1
    local v = type(r.verdict) == "string" and r.verdict or "inconclusive"
    summary.verdicts[v] = (summary.verdicts[v] or 0) + 1
    if r.error then summary.errors = summary.errors + 1 end
    local codes, seen = summary.codes, {}
    count_codes(codes, seen, type(r.dns) == "table" and r.dns.findings)
    count_codes(codes, seen, r.findings)
    if type(r.servers) == "table" then
        for _, srv in ipairs(r.servers) do
            if type(srv) == "table" then
                local l = srv.findings
                if findings.is_shared(l) then count_shared(codes, seen, l) else count_codes(codes, seen, l) end
            end
        end
    end
end

-- for mxprobe audit --summarize (mxprobe.app.audit_summarize): the same counting
M.new_summary, M.count = new_summary, count

--- Codes by number of domains, most frequent first: { {code, n}, ... }
function M.codes_by_count(codes)
    local list = {}
    for c, n in pairs(codes) do list[#list + 1] = { c, n } end
    table.sort(list, function(a, b)
        if a[2] ~= b[2] then return a[2] > b[2] end
        return a[1] < b[1]
    end)
    return list
end

--- The summary as text (what goes to stderr).
function M.summary_text(s)
    local out = {}
    local function add(fmt, ...) out[#out + 1] = fmt:format(...) end
    add("mxprobe audit: %d %s, %d %s written in %.1f s (%.0f domains/s)%s",
        s.domains, s.domains == 1 and "domain" or "domains", s.records, s.records == 1 and "record" or "records",
        s.elapsed_s or 0, s.rate or 0, s.shard and (", shard " .. s.shard) or "")
    if s.interrupted then
        add("  INTERRUPTED: %d not checked (no record); run again with --resume to finish", s.not_checked)
    elseif s.write_error then
        add("  STOPPED: cannot write the output (%s); %d not checked", s.write_error, s.not_checked)
    end
    local v = s.verdicts
    add("  verdicts: %d ok, %d warning, %d critical, %d inconclusive (%d with an error)",
        v.ok or 0, v.warning or 0, v.critical or 0, v.inconclusive or 0, s.errors)
    local i = s.input or {}
    add("  input: %d lines, %d names; %d duplicates, %d not domain names, %d already recorded, %d in other shards",
        i.lines or 0, i.entries or 0, i.duplicates or 0, i.invalid or 0, i.already_recorded or 0, i.other_shard or 0)
    if (i.already_recorded or 0) > 0 then
        -- these figures are this run's: the whole file's come from --summarize
        add("  resumed: the %d records of earlier attempts are not in these figures; "
            .. "mxprobe audit --summarize FILE counts them all", i.already_recorded)
    end
    if s.probes then
        add("  probes: %d made, %d shared; at most %d sessions open at once",
            s.probes, s.shared or 0, s.sessions_open_peak or 0)
    end
    if type(s.vantage) == "table" then add("  %s", text.vantage_line(s.vantage)) end
    local codes = M.codes_by_count(s.codes)
    if #codes > 0 then
        add("  domains by code (severity above ok):")
        for _, c in ipairs(codes) do add("    %-28s %d", c[1], c[2]) end
    end
    return table.concat(out, "\n") .. "\n"
end

--- The summary as one JSON document (what --summary FILE gets).
function M.summary_json(s)
    local copy = {}
    for k, v in pairs(s) do copy[k] = v end
    copy.codes = json.object(s.codes)
    copy.verdicts = json.object(s.verdicts)
    copy.kind = "mxprobe-audit-summary"
    copy.schema = M.SUMMARY_SCHEMA
    return json.encode(copy) .. "\n"
end

----------------------------------------------------------------- output

-- The terminal's width for the progress line (stderr), or nil.
local function term_width(f)
    if f ~= io.stderr then return nil end
    return (core.term.size(2))
end

-- s cut to fit width - 1 columns (the cursor's), by display width.
local function cut_to(s, width)
    if not width then return s end
    if text.width(s) <= width - 1 then return s end
    local line = text.wrap(s, width - 2)[1]
    while text.width(line) > width - 2 do line = line:sub(1, -2) end
    return line .. "…"
end

local function open_output(opts)
    local out = opts.output
    if out == nil then out = io.stdout end
    if out == false then return sink.null, nil, true end
    if type(out) == "function" then return out, nil, true end
    if io.type(out) == "file" then
        return sink.of(out), nil, true
    end
    if type(out) ~= "string" then
        error(("audit: output: a path, a file, a function or false expected, got %s"):format(type(out)), 3)
    end
    local append = opts.resume_path == out
    if append and opts.resume_info then
        local ok, err = drop_partial_line(out, opts.resume_info)
        if not ok then return nil, ("cannot repair '%s': %s"):format(out, tostring(err)) end
    end
    local write, f = sink.open(out, append and "a" or "w")
    if not write then return nil, f end
    local fresh = not append or (f:seek("end") == 0)
    return write, f, fresh
end

----------------------------------------------------------------- the run

-- The engine merges config.limits over the policy's probe.limits, so the
-- caller's limits (flags) go into the config of runs made here.
local function run_config(opts)
    local cfg = {}
    for k, v in pairs(opts.config or {}) do cfg[k] = v end
    local limits = {}
    for k, v in pairs(cfg.limits or {}) do limits[k] = v end
    for k, v in pairs(opts.limits or {}) do limits[k] = v end
    cfg.limits = limits
    return cfg
end

local RUN_KEYS = {
    input = true, domains = true, entries = true, output = true, format = true, map = true, on_result = true,
    columns = true, shard = true, resume = true, progress = true, summary = true, signals = true,
    engine = true, run = true, policy = true, checks_dirs = true, config = true, limits = true,
    share = true, parallel = true, stderr = true, transcripts = true,
}

--- Run an audit.  Inside a task (mxprobe run SCRIPT, busted specs) it runs
-- there; outside, it starts the loop itself.
--
-- opts (all optional except one of input/domains/entries):
--   input      path, "-" (stdin) or an open file: one domain per line
--   domains    a list of names (instead of input)
--   output     path (truncated; appended to when it is also `resume`), an
--              open file, a function(line), or false; default io.stdout
--   format     "jsonl" (default) or "csv"; columns: csv columns (report.csv)
--   map        function(result, entry) -> table (written in `format`),
--              string (written as is, a newline added if missing) or nil
--              (nothing written for this domain): shape the output
--   on_result  function(result, entry): called for every record, after it
--              is written (count, collect, alert...)
--   shard      "K/N" or { K, N }: only the domains of this share
--   resume     path of an earlier output: skip the domains it has
--   progress   true/false; default: when stderr is a terminal
--   summary    where the summary goes: a path (JSON), an open file (text),
--              false, or nil (stderr, text)
--   signals    handle Ctrl-C as described above (default true)
--   engine     the engine module (default mxprobe.engine); run: an engine
--              run to use instead of making one from policy, checks_dirs,
--              config and share (default true)
--   limits     { max_domains, max_dns_queries, sessions_per_address,
--              connects_per_second_per_address, max_sessions } over the
--              policy's probe.limits; parallel: same as limits.max_domains
--   stderr     where progress and messages go (default io.stderr)
--   transcripts  which SMTP transcripts the written records keep: "none"
--              (the default: compact records), "failing" (servers with a
--              finding worse than info) or "all"; map and on_result get
--              the full result either way
-- @return summary (exit_code inside: 0 every domain has a record, 3 not)
--   | nil, "io", detail (an input or output that cannot be opened)
-- What to check: the entries of this shard, first occurrences, minus what
-- `resume` already has.  @return todo, counts, resume_info | nil, "io", detail
local function plan_input(opts)
    -- read one entry at a time as workers ask (M.stream): memory follows
    -- what is in flight, not the size of the input
    local stream
    if opts.entries then
        local list, i = opts.entries, 0
        stream = { lines = #list, finite = true, close = function() end,
                   next = function() i = i + 1; return list[i] end }
    else
        local src = opts.input or opts.domains
        if src == nil then error("audit.run: give input (a path, '-' or a file) or domains (a list)", 3) end
        local code, detail
        stream, code, detail = M.stream(src)
        if not stream then return nil, code, detail end
    end
    local shard
    if opts.shard then
        local k, n
        if type(opts.shard) == "table" then k, n = opts.shard[1], opts.shard[2]
        else k, n = M.parse_shard(opts.shard) end
        if not k or math.type(k) ~= "integer" or math.type(n) ~= "integer" or k < 1 or k > n then
            error(("audit.run: shard: %s"):format(n or "{ K, N } with 1 <= K <= N expected"), 3)
        end
        shard = { k, n }
    end
    local done, resume_info
    if type(opts.resume) == "table" then
        done = opts.resume
    elseif opts.resume then
        local code, detail
        done, code, detail = M.recorded(opts.resume, core.keyset.new())
        if not done then return nil, code, detail end
        resume_info = code
    end
    local want, counts = M.selector { shard = shard, done = done, own_done = resume_info ~= nil }
    counts.lines = 0
    counts.shard = shard
    -- todo: entries handed out so far (n); complete: the input was read to its end
    local todo = { n = 0, complete = false, finite = stream.finite }
    function todo.next()
        while not todo.complete do
            local e = stream.next()
            counts.lines = stream.lines
            if e == nil then todo.complete = true; stream.close(); break end
            if want(e) then todo.n = todo.n + 1; return e end
        end
    end
    return todo, counts, resume_info
end

-- The engine run and how many domains it may have in flight.
local function engine_run(opts)
    local run = opts.run
    if not run then
        -- lazy: a caller that brings its own run (opts.run) or engine need not load the stock one
        local engine = opts.engine or require "mxprobe.engine"
        run = engine.new { policy = opts.policy, checks_dirs = opts.checks_dirs, config = run_config(opts),
                           share = opts.share ~= false }
    end
    local limits = type(run.config) == "table" and run.config.limits or opts.limits or {}
    local parallel = opts.parallel or limits.max_domains or M.DEFAULT_PARALLEL
    if math.type(parallel) ~= "integer" or parallel < 1 then
        error("audit.run: parallel (limits.max_domains): an integer >= 1 expected", 3)
    end
    return run, parallel
end

-- The progress line on stderr: only on a terminal, unless asked.
local function progress_line(opts, stderr, summary, todo, t_start)
    local progress = opts.progress
    if progress == nil then progress = stderr == io.stderr and core.term.isatty(io.stderr) end
    if not progress then return nil end
    local samples = {} -- { time, records } of the last M.RATE_WINDOW seconds
    local width = term_width(stderr)
    return function(final)
        local now = loop.now()
        samples[#samples + 1] = { now, summary.records }
        while #samples > 2 and now - samples[1][1] > M.RATE_WINDOW do table.remove(samples, 1) end
        local el = now - t_start
        local overall = el > 0 and summary.records / el or 0
        local dt = now - samples[1][1]
        local recent = dt > 0 and (summary.records - samples[1][2]) / dt or overall
        -- handed out but not recorded: in flight (the input is read as workers ask)
        local in_flight = math.max(0, todo.n - summary.records)
        local acts = loop.activities()
        local eta = todo.complete and M.duration(M.eta(in_flight, in_flight, recent > 0 and recent or overall, acts, now)) or "?"
        local line = ("%d/%d%s domains  " .. (recent < 10 and "%.1f" or "%.0f") .. "/s  ETA %s"):format(
            summary.records, todo.n, todo.complete and "" or "+", recent, eta)
        if in_flight > 0 then
            line = line .. ("  %d in flight"):format(in_flight)
            if acts[1] then
                line = line .. ("; waiting %d s for %s"):format(math.floor(now - acts[1].since), acts[1].what)
            end
        end
        line = cut_to(line, width)
        stderr:write("\r\27[K" .. line, final and "\r\27[K" or "")
        if stderr.flush then stderr:flush() end
    end
end

-- write(result, target) for the runner: map, encode, write, count, on_result.
-- opts.transcripts, checked: "none" (the default), "failing" or "all".
local function transcripts_of(opts)
    local t = opts.transcripts or "none"
    if not M.TRANSCRIPTS[t] then
        error(("audit.run: transcripts: 'none', 'failing' or 'all' expected, got %q"):format(tostring(t)), 3)
    end
    return t
end

local function record_writer(opts, write, encode, summary, stderr, clear_line, provenance, transcripts)
    return function(r, target)
        local e = target.entry
        -- every audit record says how it was made, error records too
        r.provenance = provenance
        local v = r
        if opts.map then
            local ok, m = pcall(opts.map, r, e)
            if not ok then
                stderr:write(("mxprobe: audit: map failed for %s: %s\n"):format(M.key(e), tostring(m)))
                m = r
            end
            v = m
        end
        if v == r then v = M.compact(r, transcripts) end
        if v ~= nil then
            if clear_line then stderr:write("\r\27[K") end
            local ok, err = write(encode(v))
            if not ok then return nil, err end
        end
        count(summary, r)
        if opts.on_result then
            local ok, err = pcall(opts.on_result, r, e)
            if not ok then stderr:write(("mxprobe: audit: on_result failed for %s: %s\n"):format(M.key(e), tostring(err))) end
        end
        return true
    end
end

-- Counters of the run and the DNS into the summary.
local function run_stats(summary, run)
    if type(run.stats) == "function" then
        local ok, st = pcall(run.stats, run)
        if ok and type(st) == "table" then
            summary.probes, summary.shared, summary.sessions_open_peak = st.probes, st.shared, st.sessions_open_peak
            summary.vantage = st.vantage -- whether a timeout could be this machine's port 25
        end
    end
    if type(run.dns) == "table" and type(run.dns.stats) == "function" then
        local ok, st = pcall(run.dns.stats, run.dns)
        if ok and type(st) == "table" then summary.dns = { sent = st.sent, cached = st.cached, coalesced = st.coalesced } end
    end
end

local function write_summary(opts, summary, stderr)
    local sdest = opts.summary
    if sdest == nil then sdest = stderr end
    if type(sdest) == "string" then
        local f, err = io.open(sdest, "w")
        if f then f:write(M.summary_json(summary)); f:close()
        else stderr:write(("mxprobe: audit: cannot write the summary to '%s': %s\n"):format(sdest, (tostring(err):gsub("^[^:]*: ", "")))) end
    elseif sdest then
        sdest:write(M.summary_text(summary))
        if sdest.flush then sdest:flush() end
    end
end

-- opts.format: the writer of records (mxprobe.app.formats).
local function format_of(opts)
    local format = opts.format or "jsonl"
    if format ~= "jsonl" and format ~= "csv" then
        error(("audit.run: format: 'jsonl' or 'csv' expected, got %q"):format(tostring(format)), 3)
    end
    return formats.get(format)
end

local function check_run_opts(opts)
    if type(opts) ~= "table" then error(("bad argument #1 to 'run' (table expected, got %s)"):format(type(opts)), 3) end
    for k in pairs(opts) do
        if not RUN_KEYS[k] then error(("audit.run: unknown option '%s'"):format(tostring(k)), 3) end
    end
end

function M.run(opts)
    check_run_opts(opts)
    if not loop.current() then
        loop.catch_signals()
        return loop.run(M.run, opts)
    end
    local stderr = opts.stderr or io.stderr
    local t_start = loop.now()
    local todo, counts, resume_info = plan_input(opts)
    if not todo then return nil, counts, resume_info end
    local run, parallel = engine_run(opts)
    local transcripts = transcripts_of(opts)

    local fmt, fopts = format_of(opts), { columns = opts.columns }
    local write, out_file, fresh = open_output {
        output = opts.output, resume_path = type(opts.resume) == "string" and opts.resume or nil,
        resume_info = resume_info,
    }
    if not write then return nil, "io", out_file end
    local function encode(v)
        if type(v) == "string" then return v:sub(-1) == "\n" and v or v .. "\n" end
        return fmt.record(v, fopts, 1)
    end

    local summary = new_summary()
    summary.domains = 0 -- counted as the input is read
    summary.input = counts
    summary.shard = counts.shard and ("%d/%d"):format(counts.shard[1], counts.shard[2]) or nil
    counts.shard = nil
    summary.output = type(opts.output) == "string" and opts.output or nil
    summary.share = run.share
    -- in every record, frozen: encoded once (it has keys: no object marker needed)
    summary.provenance = frozen.mark(setmetatable(M.provenance(run, { transcripts = transcripts }), nil))
    local provenance = summary.provenance

    local header = fresh and not opts.map and fmt.header(fopts)
    if header then
        local ok, err = write(header)
        if not ok then
            if out_file then out_file:close() end
            return nil, "io", "cannot write the output: " .. tostring(err)
        end
    end

    local progress = progress_line(opts, stderr, summary, todo, t_start)
    local to_stdout = opts.output == nil or opts.output == io.stdout
    local ticker
    if progress then
        ticker = loop.spawn(function()
            while loop.sleep(M.PROGRESS_INTERVAL) do progress(false) end
        end)
    end
    local outcome = runner.run(run, {
        next = function()
            local e = todo.next()
            return e and M.target(e)
        end,
        parallel = parallel, ordered = false,
        signals = opts.signals ~= false,
        notice = function(line) stderr:write(progress and "\r\27[K" or "", line) end,
        write = record_writer(opts, write, encode, summary, stderr, progress and to_stdout, provenance, transcripts),
    })
    -- Stopped early: count what was left unchecked (the summary says how
    -- many). Not from stdin or a given file, which may be a terminal or a
    -- pipe that never ends: there the count is of the entries read.
    if todo.finite then while todo.next() do end end
    summary.domains = todo.n
    if ticker then loop.cancel(ticker); progress(true) end
    if out_file and out_file ~= io.stdout then out_file:close() end

    summary.interrupted = outcome.interrupted
    if outcome.write_error then summary.write_error = outcome.write_error end
    summary.not_checked = todo.n - summary.records
    summary.elapsed_s = math.floor((loop.now() - t_start) * 1000 + 0.5) / 1000
    summary.rate = summary.elapsed_s > 0 and summary.records / summary.elapsed_s or 0
    run_stats(summary, run)
    summary.exit_code = (summary.not_checked == 0 and not summary.interrupted and not summary.write_error) and 0 or 3
    write_summary(opts, summary, stderr)
    return summary
end

return M
