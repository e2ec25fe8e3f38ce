--- mxprobe.app.audit_summarize: `mxprobe audit --summarize FILE...`, the
-- summary of an audit computed from its records (docs/audits.md).
--
--   local s = require("mxprobe.app.audit_summarize").summarize({ "part-1.jsonl", "part-2.jsonl" },
--                                                             { input = "domains.txt" })
--
-- The summary an audit prints counts what that one run wrote.  After a
-- `--resume`, or over the parts of a sharded audit, the truth is in the
-- files: this reads them (JSON Lines or CSV, as audits write them) a line
-- at a time and counts every record once.  Memory grows with the number of
-- distinct domains (one set entry each), never with the size of a record.
-- With the input list it also says which input domains have no record
-- (`missing`) and which records are not in the input (`extra`): in = out.
local common = require "mxprobe.app.cli.common"
local argparse = require "argparse"
local cjson = require "cjson"
local audit = require "mxprobe.app.audit"
local csv = require "mxprobe.report.csv"
local json = require "mxprobe.report.json"

local M = {}

-- A CSV row back to the few fields the summary counts.
local function csv_record(fields, header)
    local r = {}
    for i, name in ipairs(header) do r[name] = fields[i] end
    local codes = {}
    for c in (r.codes or ""):gmatch("%S+") do codes[#codes + 1] = { code = c, severity = "warning" } end
    return { domain = r.domain, verdict = r.verdict, error = (r.error ~= nil and r.error ~= "") and r.error or nil,
             findings = codes }
end

--- Summarize the records of files (paths; "-" is stdin).
-- opts: input = path of the domain list (for missing/extra), shard = { k, n }
-- (only that share of the input is expected).
-- @return summary | nil, "io", detail
function M.summarize(paths, opts)
    opts = opts or {}
    if type(paths) ~= "table" or #paths == 0 then error("summarize: a list of files expected", 2) end
    local s = audit.new_summary()
    s.files, s.duplicates, s.unreadable, s.partial = #paths, 0, 0, 0
    s.provenance_variants = 0
    local seen, variants, first_prov = {}, {}, nil
    for _, path in ipairs(paths) do
        local f, err
        if path == "-" then f = io.stdin else f, err = io.open(path, "rb") end
        if not f then return nil, "io", ("cannot read '%s': %s"):format(path, (tostring(err):gsub("^[^:]*: ", ""))) end
        local header
        -- the last line of a file whose writer was killed has no newline
        -- and is no record (as --resume sees it): "L" keeps the newline
        local function line_of(line)
            if not line:find("%S") then return end
            local r
            if line:sub(1, 1) == "{" then
                local ok, v = pcall(cjson.decode, line)
                if ok and type(v) == "table" and type(v.domain) == "string" then r = v end
            elseif line:sub(1, 7) == "domain," then
                header = csv.parse_line(line)
                return
            elseif header then
                local fields = csv.parse_line(line)
                if fields[1] and fields[1] ~= "" then r = csv_record(fields, header) end
            end
            if not r then s.unreadable = s.unreadable + 1; return end
            if seen[r.domain] then s.duplicates = s.duplicates + 1; return end
            seen[r.domain] = true
            audit.count(s, r)
            if type(r.provenance) == "table" then
                -- records of one audit share their provenance; more than one
                -- means the files were made with other options or versions
                local p = r.provenance
                local key = json.encode(p)
                if not variants[key] then
                    variants[key] = true
                    s.provenance_variants = s.provenance_variants + 1
                    first_prov = first_prov or p
                end
            end
        end
        for line in f:lines("L") do
            if line:sub(-1) == "\n" then line_of(line:sub(1, -2)) else s.partial = s.partial + 1 end
        end
        if f ~= io.stdin then f:close() end
    end
    s.domains = s.records
    s.provenance = first_prov
    if opts.input then
        local entries, code, detail = audit.read(opts.input)
        if not entries then return nil, code, detail end
        local todo, counts = audit.select(entries, { shard = opts.shard })
        counts.lines = code
        s.input = counts
        local want, missing = {}, 0
        for _, e in ipairs(todo) do
            local k = audit.key(e)
            want[k] = true
            if not seen[k] then missing = missing + 1 end
        end
        local extra = 0
        for d in pairs(seen) do if not want[d] then extra = extra + 1 end end
        s.domains, s.missing, s.extra = #todo, missing, extra
        s.not_checked = missing
    end
    s.exit_code = (s.unreadable == 0 and (s.missing or 0) == 0) and 0 or 3
    return s
end

--- The summary as text.
function M.text(s)
    local out = {}
    local function add(fmt, ...) out[#out + 1] = fmt:format(...) end
    add("mxprobe audit --summarize: %d %s, %d %s (%d duplicates, %d unreadable lines, %d cut short)",
        s.files, s.files == 1 and "file" or "files", s.records, s.records == 1 and "record" or "records",
        s.duplicates, s.unreadable, s.partial)
    if s.missing then
        local i = s.input
        add("  input: %d lines, %d domains to check%s; %d missing (no record), %d extra (not in the input)",
            i.lines or 0, s.domains, i.other_shard > 0 and (", %d in other shards"):format(i.other_shard) or "",
            s.missing, s.extra)
    end
    local v = s.verdicts
    add("  verdicts: %d ok, %d warning, %d critical, %d inconclusive (%d with an error)",
        v.ok or 0, v.warning or 0, v.critical or 0, v.inconclusive or 0, s.errors)
    if s.provenance_variants > 1 then
        add("  NOTE: the records were made %d different ways (mxprobe version or options differ)", s.provenance_variants)
    end
    local codes = audit.codes_by_count(s.codes)
    if #codes > 0 then
        add("  domains by code (severity above ok):")
        for _, c in ipairs(codes) do add("    %-28s %d", c[1], c[2]) end
    end
    return table.concat(out, "\n") .. "\n"
end

local function parser()
    local p = argparse("mxprobe audit --summarize")
    p:description("The summary of an audit computed from its records: every record of every FILE "
        .. "(JSON Lines or CSV, as mxprobe audit writes them) counted once. Use it after --resume "
        .. "and over the parts of a sharded audit.")
    p:epilog("Exit status: 0 every line is a record (and, with --input, every input domain has one); "
        .. "3 otherwise.\n\nExample:\n  mxprobe audit --summarize part-*.jsonl --input domains.txt "
        .. "--summary summary.json\n\nFull documentation: docs/audits.md")
    p:add_help(false):usage_max_width(80):help_max_width(80):help_description_margin(30)
    p:argument("files", "Outputs of mxprobe audit (- for stdin)."):args("+")
    p:flag("--summarize", "Summarize FILE... (this mode).")
    p:option("--input", "The domain list of the audit: report the domains without a record."):argname("<file>")
    p:option("--shard", "With --input: only share K of N was audited."):argname("<K/N>")
    p:option("--summary", "Write the summary as JSON to this file (- for stdout) instead of text."):argname("<file>")
    p:flag("-h --help", "Show this help and exit.")
    return p
end
M.parser = parser

--- argv: the arguments after "audit" (--summarize among them).
-- env: stdout, stderr (objects with :write).  @return exit code
function M.main(argv, env)
    local args, stdout, stderr, fail = common.subcommand("audit --summarize", parser, argv, env)
    if not args then return stdout end -- the exit code: help shown, or a usage error
    local shard
    if args.shard then
        if not args.input then return fail("--shard: only with --input") end
        local k, n = audit.parse_shard(args.shard)
        if not k then return fail("--shard: " .. n) end
        shard = { k, n }
    end
    local s, code, detail = M.summarize(args.files, { input = args.input, shard = shard })
    if not s then return fail(detail or code) end
    if args.summary == "-" then
        stdout:write(audit.summary_json(s))
    elseif args.summary then
        local f, err = io.open(args.summary, "w")
        if not f then return fail(("cannot write '%s': %s"):format(args.summary, (tostring(err):gsub("^[^:]*: ", "")))) end
        f:write(audit.summary_json(s))
        f:close()
    else
        stdout:write(M.text(s))
    end
    return s.exit_code
end

return M
