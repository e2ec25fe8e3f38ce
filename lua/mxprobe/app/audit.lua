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
local json = require "mxprobe.report.json"
local csv = require "mxprobe.report.csv"
local text = require "mxprobe.report.text"
local domain = require "mxprobe.net.domain"
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

local VERDICTS = { "ok", "warning", "critical", "inconclusive" }

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

--- One line of an input file.  Comments start with '#' (whole lines or
-- after the name); blank lines are skipped; CR, a UTF-8 BOM and spaces
-- around the name are ignored.
-- @return nil for nothing, or an entry:
--   { name = "xn--bcher-kva.example", input = "bücher.example" (when it
--     differs from name), line = n } or
--   { input = "not a domain", error = "why", line = n }
function M.parse_line(line, lineno)
    if lineno == 1 then line = line:gsub("^\239\187\191", "") end
    line = line:gsub("#.*", ""):match("^%s*(.-)%s*$")
    if line == "" then return nil end
    local name, why = M.normalize(line)
    if not name then return { input = line, error = why, line = lineno } end
    local e = { name = name, line = lineno }
    if line ~= name then e.input = line end
    return e
end

--- The key that identifies an entry (duplicates, shards, resume): the
-- normalised name, or the text as given when it is not a domain name.
function M.key(e) return e.name or e.input end

--- Read entries from a path, "-" (stdin), an open file, or a list of
-- strings.  @return entries, lines | nil, "io", detail
function M.read(source)
    local f, close
    if type(source) == "table" and getmetatable(source) == nil then
        local entries = {}
        for i, s in ipairs(source) do
            if type(s) ~= "string" then error(("domains[%d]: string expected, got %s"):format(i, type(s)), 2) end
            entries[#entries + 1] = M.parse_line(s, i)
        end
        return entries, #source
    elseif source == "-" then
        f = io.stdin
    elseif type(source) == "string" then
        local err
        f, err = io.open(source, "r")
        if not f then return nil, "io", ("cannot read '%s': %s"):format(source, (err:gsub("^[^:]*: ", ""))) end
        close = true
    elseif io.type(source) == "file" then
        f = source
    else
        error(("bad argument #1 to 'read' (path, '-', file or list expected, got %s)"):format(type(source)), 2)
    end
    local entries, n = {}, 0
    for line in f:lines() do
        n = n + 1
        entries[#entries + 1] = M.parse_line(line, n)
    end
    if close then f:close() end
    return entries, n
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

-- The domain of one output line: JSON Lines (a record's "domain") or CSV
-- (the first field; the header line has "domain").
local function recorded_domain(line)
    if line:sub(1, 1) == "{" then
        local ok, rec = pcall(cjson.decode, line)
        if ok and type(rec) == "table" and type(rec.domain) == "string" then return rec.domain end
        return nil
    end
    local d = csv.parse_line(line)[1]
    if d and d ~= "" and d ~= "domain" then return d end
end

--- The domains an earlier output (JSON Lines or CSV, as written by an
-- audit) already has records for.  A missing file is an empty one.  A last
-- line without its newline (the writer was killed mid-line) does not count.
-- @return set (domain -> true), info { records =, unreadable =, partial = bytes, size = bytes }
--   | nil, "io", detail
function M.recorded(path)
    local set, info = {}, { records = 0, unreadable = 0, partial = 0, size = 0 }
    local f, err = io.open(path, "rb")
    if not f then
        if err:find("No such file", 1, true) then return set, info end
        return nil, "io", ("cannot read '%s': %s"):format(path, (err:gsub("^[^:]*: ", "")))
    end
    local data = f:read("a")
    f:close()
    info.size = #data
    local complete = data:match("^.*\n") or ""
    info.partial = #data - #complete
    for line in complete:gmatch("([^\n]*)\n") do
        if line:find("%S") then
            local d = recorded_domain(line)
            if d then
                if not set[d] then info.records = info.records + 1 end
                set[d] = true
            elseif line:sub(1, 7) ~= "domain," then
                info.unreadable = info.unreadable + 1
            end
        end
    end
    return set, info
end

-- Drop a partial last line (a writer killed mid-record) so that appending
-- starts on a line of its own.
local function drop_partial_line(path, info)
    if info.partial == 0 then return true end
    local f, err = io.open(path, "rb")
    if not f then return nil, err end
    local keep = f:read(info.size - info.partial)
    f:close()
    local tmp = path .. ".mxprobe-tmp"
    local w
    w, err = io.open(tmp, "wb")
    if not w then return nil, err end
    local ok, werr = w:write(keep)
    if ok then ok, werr = w:close() else w:close() end
    if not ok then os.remove(tmp); return nil, werr end
    return os.rename(tmp, path)
end

----------------------------------------------------------------- plan

--- Choose what to check: entries of this shard, first occurrences only,
-- minus those already recorded.
-- opts: shard = { k, n } | nil, done = set | nil
-- @return todo (entries), counts { lines, entries, duplicates, other_shard,
--   already_recorded, invalid }
function M.select(entries, opts)
    opts = opts or {}
    local k, n = opts.shard and opts.shard[1], opts.shard and opts.shard[2]
    local seen, todo = {}, {}
    local c = { entries = #entries, duplicates = 0, other_shard = 0, already_recorded = 0, invalid = 0 }
    for _, e in ipairs(entries) do
        local key = M.key(e)
        if n and M.shard_of(key, n) ~= k then
            c.other_shard = c.other_shard + 1
        elseif seen[key] then
            c.duplicates = c.duplicates + 1
        else
            seen[key] = true
            if opts.done and opts.done[key] then
                c.already_recorded = c.already_recorded + 1
            else
                if e.error then c.invalid = c.invalid + 1 end
                todo[#todo + 1] = e
            end
        end
    end
    return todo, c
end

----------------------------------------------------------------- records

--- The record of an entry that got no result: same shape as a result
-- (schema 1), verdict inconclusive, and `error` saying why.
function M.error_record(e, message)
    return {
        schema = 1, domain = M.key(e), input = e.name and e.input or nil,
        verdict = "inconclusive", exit_code = 3, error = message,
        dns = { mx = json.array(), findings = json.array() },
        servers = json.array(), findings = json.array(),
    }
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

local function count(summary, r)
    summary.records = summary.records + 1
    local v = type(r.verdict) == "string" and r.verdict or "inconclusive"
    summary.verdicts[v] = (summary.verdicts[v] or 0) + 1
    if r.error then summary.errors = summary.errors + 1 end
    for _, code in ipairs(csv.codes(r)) do summary.codes[code] = (summary.codes[code] or 0) + 1 end
end

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
    if s.probes then
        add("  probes: %d made, %d shared; at most %d sessions open at once",
            s.probes, s.shared or 0, s.sessions_open_peak or 0)
    end
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
    return json.encode(copy) .. "\n"
end

----------------------------------------------------------------- output

-- The terminal's width for the progress line (stderr), or nil.
local function term_width(f)
    if f ~= io.stderr then return nil end
    local ok, core = pcall(require, "mxprobe.core")
    if ok and type(core) == "table" and core.term then return core.term.size(2) end
    return nil
end

-- s cut to fit width - 1 columns (the cursor's), by display width.
local function cut_to(s, width)
    if not width then return s end
    if text.width(s) <= width - 1 then return s end
    local line = text.wrap(s, width - 2)[1]
    while text.width(line) > width - 2 do line = line:sub(1, -2) end
    return line .. "…"
end

local function is_tty(fd)
    return os.execute(("test -t %d"):format(fd)) == true
end

-- A sink: write(line) -> true | nil, err  (flushes every call).
local function file_sink(f)
    return function(s)
        local ok, err = f:write(s)
        if ok then ok, err = f:flush() end
        if not ok then return nil, err or "write failed" end
        return true
    end
end

local function open_output(opts)
    local out = opts.output
    if out == nil then out = io.stdout end
    if out == false then return function() return true end, nil, true end
    if type(out) == "function" then return out, nil, true end
    if io.type(out) == "file" then
        return file_sink(out), nil, true
    end
    if type(out) ~= "string" then
        error(("audit: output: a path, a file, a function or false expected, got %s"):format(type(out)), 3)
    end
    local append = opts.resume_path == out
    if append and opts.resume_info then
        local ok, err = drop_partial_line(out, opts.resume_info)
        if not ok then return nil, ("cannot repair '%s': %s"):format(out, tostring(err)) end
    end
    local f, err = io.open(out, append and "ab" or "wb")
    if not f then return nil, ("cannot write '%s': %s"):format(out, (err:gsub("^[^:]*: ", ""))) end
    local fresh = not append or (f:seek("end") == 0)
    return file_sink(f), f, fresh
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
    share = true, parallel = true, stderr = true,
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
-- @return summary (exit_code inside: 0 every domain has a record, 3 not)
--   | nil, "io", detail (an input or output that cannot be opened)
function M.run(opts)
    if type(opts) ~= "table" then error(("bad argument #1 to 'run' (table expected, got %s)"):format(type(opts)), 2) end
    for k in pairs(opts) do
        if not RUN_KEYS[k] then error(("audit.run: unknown option '%s'"):format(tostring(k)), 2) end
    end
    if not loop.current() then
        loop.catch_signals()
        return loop.run(M.run, opts)
    end
    local stderr = opts.stderr or io.stderr
    local t_start = loop.now()

    -- what to check
    local entries, lines = opts.entries, nil
    if not entries then
        local src = opts.input or opts.domains
        if src == nil then error("audit.run: give input (a path, '-' or a file) or domains (a list)", 2) end
        local code, detail
        entries, code, detail = M.read(src)
        if not entries then return nil, code, detail end
        lines = code
    end
    local shard
    if opts.shard then
        local k, n
        if type(opts.shard) == "table" then k, n = opts.shard[1], opts.shard[2]
        else k, n = M.parse_shard(opts.shard) end
        if not k or math.type(k) ~= "integer" or math.type(n) ~= "integer" or k < 1 or k > n then
            error(("audit.run: shard: %s"):format(n or "{ K, N } with 1 <= K <= N expected"), 2)
        end
        shard = { k, n }
    end
    local done, resume_info
    if type(opts.resume) == "table" then
        done = opts.resume
    elseif opts.resume then
        local code, detail
        done, code, detail = M.recorded(opts.resume)
        if not done then return nil, code, detail end
        resume_info = code
    end
    local todo, counts = M.select(entries, { shard = shard, done = done })
    counts.lines = lines or #entries

    -- the engine
    local run = opts.run
    if not run then
        local engine = opts.engine or require "mxprobe.engine"
        local cfg = run_config(opts)
        run = engine.new { policy = opts.policy, checks_dirs = opts.checks_dirs, config = cfg,
                           share = opts.share ~= false }
    end
    local limits = type(run.config) == "table" and run.config.limits or opts.limits or {}
    local parallel = opts.parallel or limits.max_domains or M.DEFAULT_PARALLEL
    if math.type(parallel) ~= "integer" or parallel < 1 then
        error("audit.run: parallel (limits.max_domains): an integer >= 1 expected", 2)
    end

    -- the output
    local format = opts.format or "jsonl"
    if format ~= "jsonl" and format ~= "csv" then
        error(("audit.run: format: 'jsonl' or 'csv' expected, got %q"):format(tostring(format)), 2)
    end
    local write, out_file, fresh = open_output {
        output = opts.output, resume_path = type(opts.resume) == "string" and opts.resume or nil,
        resume_info = resume_info,
    }
    if not write then return nil, "io", out_file end
    local function encode(v)
        if type(v) == "string" then return v:sub(-1) == "\n" and v or v .. "\n" end
        if format == "csv" then return csv.render(v, opts.columns) end
        return json.render(v)
    end

    local summary = new_summary()
    summary.domains = #todo
    summary.input = counts
    summary.shard = shard and ("%d/%d"):format(shard[1], shard[2]) or nil
    summary.output = type(opts.output) == "string" and opts.output or nil
    summary.share = run.share

    local state = { stopping = false, next = 1 }
    local function stop(why)
        if state.stopping then return end
        state.stopping = true
        summary[why] = summary[why] or true
        for _, t in ipairs(state.workers or {}) do loop.cancel(t) end
    end

    if format == "csv" and fresh and not opts.map then
        local ok, err = write(csv.header(opts.columns))
        if not ok then
            if out_file then out_file:close() end
            return nil, "io", "cannot write the output: " .. tostring(err)
        end
    end

    -- progress line: only on a terminal, unless asked
    local progress = opts.progress
    if progress == nil then progress = stderr == io.stderr and is_tty(2) end
    local samples = {} -- { time, records } of the last M.RATE_WINDOW seconds
    local width = progress and term_width(stderr) or nil
    local function progress_line(final)
        local now = loop.now()
        samples[#samples + 1] = { now, summary.records }
        while #samples > 2 and now - samples[1][1] > M.RATE_WINDOW do table.remove(samples, 1) end
        local el = now - t_start
        local overall = el > 0 and summary.records / el or 0
        local dt = now - samples[1][1]
        local recent = dt > 0 and (summary.records - samples[1][2]) / dt or overall
        local left = #todo - summary.records
        local in_flight = math.max(0, (state.next - 1) - summary.records)
        local acts = loop.activities()
        local eta = M.eta(left, in_flight, recent > 0 and recent or overall, acts, now)
        local line = ("%d/%d domains  " .. (recent < 10 and "%.1f" or "%.0f") .. "/s  ETA %s"):format(
            summary.records, #todo, recent, M.duration(eta))
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

    local to_stdout = opts.output == nil or opts.output == io.stdout
    local function emit(e, r)
        if state.stopping then return end
        local v = r
        if opts.map then
            local ok, m = pcall(opts.map, r, e)
            if not ok then
                stderr:write(("mxprobe: audit: map failed for %s: %s\n"):format(M.key(e), tostring(m)))
                m = r
            end
            v = m
        end
        if v ~= nil then
            -- records on the same terminal as the progress line: clear it first
            if progress and to_stdout then stderr:write("\r\27[K") end
            local ok, err = write(encode(v))
            if not ok then
                summary.write_error = tostring(err)
                stop("write_error")
                return
            end
        end
        count(summary, r)
        if opts.on_result then
            local ok, err = pcall(opts.on_result, r, e)
            if not ok then stderr:write(("mxprobe: audit: on_result failed for %s: %s\n"):format(M.key(e), tostring(err))) end
        end
    end

    local function check(e)
        if e.error then return emit(e, M.error_record(e, e.error)) end
        local ok, r = pcall(run.check_domain, run, e.name)
        if state.stopping then return end -- cancelled mid-way: no record, resume redoes it
        if not ok or type(r) ~= "table" then
            local msg = not ok and tostring(r) or ("the engine returned a %s, not a result"):format(type(r))
            msg = msg:gsub("\nstack traceback:.*", "")
            stderr:write(("mxprobe: %s: internal error: %s\n"):format(M.key(e), msg))
            r = M.error_record(e, "internal error: " .. msg)
        elseif e.input then
            r.input = e.input
        end
        emit(e, r)
    end

    local function worker()
        while not state.stopping do
            local i = state.next
            if i > #todo then return end
            state.next = i + 1
            check(todo[i])
        end
    end

    local signals = opts.signals ~= false
    if signals then
        loop.on_signal(function()
            if state.stopping then
                stderr:write("\nmxprobe: interrupted again; exiting now\n")
                os.exit(3, false)
            end
            stop("interrupted")
        end)
    end
    state.workers = {}
    for i = 1, math.min(parallel, #todo) do state.workers[i] = loop.spawn(worker) end
    local ticker
    if progress and #todo > 0 then
        ticker = loop.spawn(function()
            while loop.sleep(M.PROGRESS_INTERVAL) do progress_line(false) end
        end)
    end
    for _, t in ipairs(state.workers) do loop.join(t) end
    if ticker then loop.cancel(ticker); progress_line(true) end
    if signals then loop.on_signal(nil) end
    if out_file and out_file ~= io.stdout then out_file:close() end

    summary.not_checked = #todo - summary.records
    summary.elapsed_s = math.floor((loop.now() - t_start) * 1000 + 0.5) / 1000
    summary.rate = summary.elapsed_s > 0 and summary.records / summary.elapsed_s or 0
    if type(run.stats) == "function" then
        local ok, st = pcall(run.stats, run)
        if ok and type(st) == "table" then
            summary.probes, summary.shared, summary.sessions_open_peak = st.probes, st.shared, st.sessions_open_peak
        end
    end
    if type(run.dns) == "table" and type(run.dns.stats) == "function" then
        local ok, st = pcall(run.dns.stats, run.dns)
        if ok and type(st) == "table" then summary.dns = { sent = st.sent, cached = st.cached, coalesced = st.coalesced } end
    end
    summary.exit_code = (summary.not_checked == 0 and not summary.interrupted and not summary.write_error) and 0 or 3

    local sdest = opts.summary
    if sdest == nil then sdest = stderr end
    if type(sdest) == "string" then
        local f, err = io.open(sdest, "w")
        if f then f:write(M.summary_json(summary)); f:close()
        else stderr:write(("mxprobe: audit: cannot write the summary to '%s': %s\n"):format(sdest, err)) end
    elseif sdest then
        sdest:write(M.summary_text(summary))
        if sdest.flush then sdest:flush() end
    end
    return summary
end

return M
