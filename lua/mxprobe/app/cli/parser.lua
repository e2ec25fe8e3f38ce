--- mxprobe.app.cli.parser: the argparse parsers of `mxprobe [OPTIONS]
-- DOMAIN...` and `mxprobe audit FILE [OPTIONS]`.
--
--   parser.build(mode)        -> an argparse parser (mode nil or "audit")
--   parser.parse(argv, mode)  -> args | nil, one-line message
--   parser.help(mode)         -> the --help text
--
-- The options of what to test, the network and the policy are the same in
-- both; each group is a list of rows { kind, names, help, argname, count }
-- so that adding an option is one row here and one in cli/options.lua.
local argparse = require "argparse"
local toolbox = require "mxprobe.app.cli.toolbox"
local vocab = require "mxprobe.runtime.vocab"

local M = {}

M.DEFAULT_PARALLEL = 16      -- mxprobe DOMAIN...: targets at once
M.AUDIT_PARALLEL = 1000      -- mxprobe audit: domains in flight
M.AUDIT_DNS_QUERIES = 128    -- mxprobe audit: DNS queries in flight

local PROBE_DESCRIPTION = "Test the mail servers (MX) of domains: DNS, TCP port 25, the 220 greeting, "
    .. "EHLO, STARTTLS and the TLS version, the certificate and open relay. Each finding "
    .. "has a diagnostic code (mxprobe --explain CODE), each server a score and each "
    .. "domain a verdict."
local PROBE_EPILOG = "Exit status: 0 OK, 1 warning, 2 critical, 3 could not test (or a usage error). "
    .. "With several targets the worst wins (critical > could not test > warning > OK).\n\n"
    .. "Examples:\n"
    .. "  mxprobe example.org\n"
    .. "  mxprobe --json example.org example.net > results.jsonl\n"
    .. "  mxprobe --csv example.org example.net > results.csv\n"
    .. "  mxprobe --mx mx1.example.org --port 2525 -v\n"
    .. "  mxprobe --explain TLS_VERSION_DEPRECATED\n"
    .. "  mxprobe audit domains.txt -o results.jsonl   (many domains; mxprobe audit --help)\n"
    .. "  mxprobe report results.jsonl -o report.html  (one page to read)\n"
    .. "  mxprobe diff old.jsonl new.jsonl             (what changed)\n\n"
    .. "Full documentation: man mxprobe"
local AUDIT_DESCRIPTION = "Test the mail servers of many domains, one per line of FILE (- for stdin; "
    .. "'#' comments and blank lines allowed; internationalised names are converted "
    .. "to A-labels). One record per domain is written and flushed as the domain "
    .. "completes: JSON Lines (the schema of --json) or CSV. Session results are "
    .. "probed once per (address, port, MX name) and shared between domains; DNS "
    .. "answers are cached for the run. A summary goes to stderr at the end."
local AUDIT_EPILOG = "Exit status: 0 every domain has a record; 3 otherwise (usage error, interrupted, "
    .. "output not writable). Verdicts are in the records and the summary.\n\n"
    .. "Examples:\n"
    .. "  mxprobe audit domains.txt -o results.jsonl\n"
    .. "  mxprobe audit domains.txt --resume results.jsonl      # after Ctrl-C or a crash\n"
    .. "  mxprobe audit domains.txt --shard 3/8 -o part-3.jsonl  # the 3rd of 8 jobs\n"
    .. "  mxprobe audit - --csv < domains.txt > results.csv\n\n"
    .. "Full documentation: man mxprobe (section AUDIT), docs/audits.md"

-- Rows: { "flag" | "option", names, help, argname (options), count ("*": repeatable), target }
local PROBE_OUTPUT = {
    { "flag", "--json", "One JSON document per target, one per line (JSON Lines; docs/json-schema.md)." },
    { "flag", "--csv", "CSV rows (one per target, with a header; the columns of audits)." },
    { "flag", "-v --verbose", "Show each server's facts and the SMTP transcript." },
    { "flag", "--no-color", "No colours (also: NO_COLOR set to anything non-empty)." },
}
local AUDIT_OUTPUT = {
    { "option", "-o --output", "Write the records to this file (default: stdout).", "<file>" },
    { "flag", "--json", "JSON Lines records (the default)." },
    { "flag", "--csv", "CSV rows (one per domain, with a header) instead of JSON Lines." },
    { "option", "--resume", "Skip the domains this earlier output already has; append to it "
        .. "(unless -o names another file).", "<file>" },
    { "option", "--summary", "Write the summary as JSON to this file instead of text on stderr.", "<file>" },
    { "flag", "--no-progress", "No progress line on stderr (shown only on a terminal anyway)." },
    { "flag", "-v --verbose", "Keep the tracebacks of failing checks in the records." },
}
local WHAT = {
    { "option", "--mx", "Test this mail server directly instead of a domain's MX (repeatable).", "<host>", "*", probe = true },
    { "option", "--port", "SMTP port (default 25).", "<n>" },
    { "flag", "-4", "IPv4 only.", target = "ipv4" },
    { "flag", "-6", "IPv6 only (-4 -6: both, the default).", target = "ipv6" },
    { "option", "--checks", "Run only these checks (and what they require), comma-separated.", "<id,...>" },
    { "flag", "--no-relay", "Skip the open relay probe." },
    { "option", "--relay-from", "MAIL FROM address of the relay probe.", "<addr>" },
    { "option", "--relay-to", "RCPT TO address (an external domain) of the relay probe.", "<addr>" },
    { "option", "--allow-reserved", "Probe these non-global address kinds anyway (test networks), comma-separated: "
        .. table.concat(vocab.RESERVED_KINDS, ", ") .. ", or all.", "<kind,...>" },
    { "option", "--parallel", ("Test at most this many targets at once (default %d)."):format(M.DEFAULT_PARALLEL),
        "<n>", probe = true },
}
local AUDIT_LIMITS = {
    { "option", "--shard", "Check only share K of N (1 <= K <= N), chosen by a hash of each name: "
        .. "N jobs with K = 1..N cover the input once.", "<K/N>" },
    { "flag", "--no-share", "Probe every address again for every domain instead of sharing session results." },
    { "option", "--parallel", ("Domains in flight at once (default %d; policy probe.limits.max_domains)."):format(
        M.AUDIT_PARALLEL), "<n>" },
    { "option", "--max-sessions", "Open SMTP connections at once, in all (default: no cap).", "<n>" },
    { "option", "--max-dns-queries", ("DNS queries in flight at once (default %d)."):format(M.AUDIT_DNS_QUERIES), "<n>" },
    { "option", "--sessions-per-address", "Probes at once per remote address (default 2).", "<n>" },
    { "option", "--connects-per-second", "New connections per second per remote address (default: no cap).", "<r>" },
}
local NETWORK = {
    { "option", "--helo", "EHLO name to announce.", "<name>" },
    { "option", "--resolver", "DNS server to ask instead of the system's (repeatable, at most 16).", "<ip[:port]>", "*" },
    { "option", "--ca-file", "Trust anchors (PEM) for certificate verification.", "<path>" },
    { "option", "--vantage-check", "Connect to this reference host first, to tell a blocked port 25 here from servers that time out.", "<host[:port]>" },
    { "option", "--timeout-connect", "TCP connect timeout, seconds.", "<s>" },
    { "option", "--timeout-greeting", "Wait for the 220 greeting, seconds.", "<s>" },
    { "option", "--timeout-command", "Wait for the reply to each command, seconds.", "<s>" },
    { "option", "--timeout-tls", "TLS handshake timeout, seconds.", "<s>" },
    { "option", "--timeout-dns", "Each DNS query, seconds.", "<s>" },
}
local POLICY = {
    { "option", "--policy", "Judge with this policy file instead of the default.", "<file>" },
    { "option", "--checks-dir", "Load more checks from this directory (repeatable).", "<dir>", "*" },
    { "flag", "--list-checks", "List the checks and exit.", probe = true },
    { "option", "--explain", "Explain a diagnostic code and exit.", "<code>", probe = true },
}
-- records and summaries (issue 14): --transcripts[=failing], --summarize
local AUDIT_RECORDS = {
    { "flag", "--transcripts", "Keep the SMTP transcripts in the records (default: compact records "
        .. "without them); --transcripts=failing: only for servers with a finding worse than info." },
    { "flag", "--summarize", "mxprobe audit --summarize FILE... [--input LIST] [--summary OUT]: the summary "
        .. "of earlier outputs, every record counted once (after --resume, over shards)." },
}
local OTHER = {
    { "flag", "-h --help", "Show this help and exit." },
    { "flag", "--version", "Show the version and the libraries' versions and exit.", probe = true },
}

M.GROUPS = {
    probe = { { "Output", PROBE_OUTPUT }, { "What to test", WHAT }, { "Network", NETWORK },
              { "Policy and checks", POLICY }, { "Other", OTHER } },
    audit = { { "Output", AUDIT_OUTPUT }, { "What to test", WHAT }, { "Audit: shares and limits", AUDIT_LIMITS },
              { "Network", NETWORK }, { "Policy and checks", POLICY }, { "Records and summaries", AUDIT_RECORDS },
              { "Other", OTHER } },
}

local function add_row(p, row, audit)
    if row.probe and audit then return nil end
    local o = p[row[1]](p, row[2], row[3])
    if row[4] then o:argname(row[4]) end
    if row[5] then o:count(row[5]) end
    if row.target then o:target(row.target) end
    return o
end

--- The parser of mode nil (mxprobe [OPTIONS] DOMAIN...) or "audit".
-- into: an argparse command to fill instead of a new parser (the
-- completion scripts see `audit` as a command of mxprobe).
function M.build(mode, into)
    local audit = mode == "audit"
    local p = into or argparse(audit and "mxprobe audit" or "mxprobe")
    p:description(audit and AUDIT_DESCRIPTION or PROBE_DESCRIPTION)
    p:epilog(audit and AUDIT_EPILOG or PROBE_EPILOG)
    p:add_help(false):usage_max_width(80):help_max_width(80):help_description_margin(30)
    if audit then
        p:argument("file", "File of domains, one per line (- for stdin)."):args(1)
    else
        p:argument("domain", "Domain(s) whose MX servers to test."):args("*")
    end
    for _, g in ipairs(M.GROUPS[audit and "audit" or "probe"]) do
        local opts = {}
        for _, row in ipairs(g[2]) do opts[#opts + 1] = add_row(p, row, audit) end
        p:group(g[1], table.unpack(opts))
    end
    toolbox.options(p, mode)
    return p
end

function M.help(mode) return M.build(mode):get_help() end

--- Parse argv (a list of strings) into the raw argparse result.
-- @return args | nil, one-line message
function M.parse(argv, mode)
    local ok, r = M.build(mode):pparse(argv)
    if not ok then
        -- argparse adds "\nDid you mean '--port'?": keep it on one line
        return nil, (tostring(r):gsub("\n+Did you mean", "; did you mean"):gsub("\n", "; "))
    end
    return r
end

--- Whether -h/--help is on the line (before "--"): it wins over every mistake.
function M.wants_help(argv)
    for _, a in ipairs(argv) do
        if a == "--" then return false end
        if a == "-h" or a == "--help" then return true end
    end
    return false
end

return M
