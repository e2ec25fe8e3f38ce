--- mxprobe.app.manpage: the man page mxprobe(1), rendered in roff from the
-- very argparse parsers that `mxprobe --help` and `mxprobe audit --help`
-- print (mxprobe.app.cli.parser), so the two cannot disagree.  The
-- sections argparse has no place for (environment, files) are below.
--
--   manpage.render(version [, date]) -> roff text
--
-- scripts/gen-man writes it at build time (CMakeLists.txt); it is
-- installed to share/man/man1/mxprobe.1.
local parser = require "mxprobe.app.cli.parser"
local M = {}

-- roff: a backslash is \e, a line must not start with . or ', and a
-- hyphen in an option name is \- (a real minus, copy-pastable).
local function esc(s)
    s = tostring(s):gsub("\\", "\\e")
    s = s:gsub("\n([.'])", "\n\\&%1")
    if s:match("^[.']") then s = "\\&" .. s end
    return s
end
M.escape = esc

local function opt_esc(s) return esc(s):gsub("%-", "\\-") end

-- Option label "\fB\-\-port\fR \fI<n>\fR", aliases joined by ", ".
local function label(el)
    local names = {}
    for _, a in ipairs(el._public_aliases or el._aliases or { el._name }) do
        names[#names + 1] = "\\fB" .. opt_esc(a) .. "\\fR"
    end
    local ok, args = pcall(el._get_argument_list, el)
    local s = table.concat(names, ", ")
    if ok and #args > 0 then
        if el._aliases == nil or el._name == nil or el._name:sub(1, 1) ~= "-" then
            -- a positional argument: its name is its own label
            return "\\fI" .. esc(table.concat(args, " ")) .. "\\fR"
        end
        s = s .. " \\fI" .. esc(table.concat(args, " ")) .. "\\fR"
    end
    return s
end

local function description(el)
    local ok, d = pcall(el._get_description, el)
    return ok and d or el._description or ""
end

local function paragraphs(text)
    local out = {}
    for para in (text .. "\n\n"):gmatch("(.-)\n\n+") do
        if para:find("\n  ", 1, true) or para:match("^  ") then
            -- an indented block (examples): keep its lines
            local head, rest = para:match("^([^\n]*:)\n(.*)$")
            if head and head ~= "Examples:" then out[#out + 1] = ".PP\n" .. esc(head) end
            out[#out + 1] = ".PP\n.nf\n.RS 4\n" .. esc(rest or para):gsub("\n%s+", "\n") :gsub("^%s+", "") .. "\n.RE\n.fi"
        elseif para ~= "" then
            out[#out + 1] = ".PP\n" .. esc(para)
        end
    end
    return table.concat(out, "\n")
end

-- The epilog without its last paragraph ("Full documentation: ..."): a
-- man page does not send its reader to itself.
local function epilog_parts(p)
    local e = p._epilog or ""
    e = e:gsub("\n*Full documentation:[^\n]*$", "")
    local status, rest = e:match("^(Exit status:.-)\n\n(.*)$")
    return status or (e:match("^Exit status:") and e) or nil, rest or (not e:match("^Exit status:") and e) or ""
end

local function item(el) return ".TP\n" .. label(el) .. "\n" .. esc(description(el)) end

-- Positional arguments first, then the option groups in --help's order,
-- then any option no group holds.
local function groups(p)
    local out, seen = {}, {}
    for _, g in ipairs(p._groups or {}) do
        for _, el in ipairs(g) do seen[el] = true end
    end
    local args = {}
    for _, el in ipairs(p._arguments or {}) do
        if not el._hidden then seen[el] = true; args[#args + 1] = item(el) end
    end
    if #args > 0 then out[#out + 1] = ".SS Arguments\n" .. table.concat(args, "\n") end
    for _, g in ipairs(p._groups or {}) do
        out[#out + 1] = ".SS " .. esc(g.name)
        for _, el in ipairs(g) do
            if not el._hidden then out[#out + 1] = item(el) end
        end
    end
    local rest = {}
    for _, el in ipairs(p._options or {}) do
        if not seen[el] and not el._hidden then rest[#rest + 1] = item(el) end
    end
    if #rest > 0 then out[#out + 1] = ".SS Other options\n" .. table.concat(rest, "\n") end
    return table.concat(out, "\n")
end

local function usage(p)
    local u = p:get_usage():gsub("^Usage:%s*", "")
    return ".nf\n" .. opt_esc(u:gsub("\n%s+", "\n    ")) .. "\n.fi"
end

M.ENVIRONMENT = {
    { "NO_COLOR", "When set to anything non-empty, no colours (as --color=never)." },
    { "COLUMNS", "The width of the text report when the terminal does not say (TIOCGWINSZ), or when stdout is not a terminal; 80 otherwise." },
    { "MXPROBE_POLICY", "The policy file to judge with when --policy is not given (see FILES)." },
    { "XDG_CONFIG_HOME", "Where the user's policy is looked for: $XDG_CONFIG_HOME/mxprobe/policy.lua (default ~/.config)." },
    { "MXPROBE_CHECKS_PATH", "Directories of site checks (colon-separated), instead of the installed site-checks directory." },
    { "MXPROBE_HOME", "Where the Lua sources and stock checks are (normally found relative to the executable)." },
}

M.FILES = {
    { "/etc/mxprobe/policy.lua", "The system policy, used when neither --policy, MXPROBE_POLICY nor a user policy is given." },
    { "$XDG_CONFIG_HOME/mxprobe/policy.lua", "The user's policy; wins over the system one." },
}

function M.render(version, date)
    local main, audit = parser.build(), parser.build("audit")
    date = date or os.date("!%Y-%m-%d", tonumber(os.getenv("SOURCE_DATE_EPOCH") or "") or os.time())
    local status, examples = epilog_parts(main)
    local astatus, aexamples = epilog_parts(audit)
    local out = {
        ('.TH MXPROBE 1 "%s" "mxprobe %s" "User Commands"'):format(esc(date), esc(version or "")),
        ".SH NAME",
        "mxprobe \\- test the mail servers of a domain",
        ".SH SYNOPSIS", usage(main), usage(audit),
        ".SH DESCRIPTION", paragraphs(main._description or ""),
        ".SH OPTIONS", groups(main),
        ".SH AUDIT",
        paragraphs(audit._description or ""),
        groups(audit),
    }
    if astatus then out[#out + 1] = paragraphs(astatus) end
    if aexamples ~= "" then out[#out + 1] = paragraphs(aexamples) end
    out[#out + 1] = ".SH EXIT STATUS"
    out[#out + 1] = paragraphs((status or ""):gsub("^Exit status:%s*", ""))
    if examples ~= "" then out[#out + 1] = ".SH EXAMPLES"; out[#out + 1] = paragraphs(examples) end
    out[#out + 1] = ".SH ENVIRONMENT"
    for _, e in ipairs(M.ENVIRONMENT) do out[#out + 1] = ".TP\n.B " .. esc(e[1]) .. "\n" .. opt_esc(e[2]) end
    out[#out + 1] = ".SH FILES"
    for _, f in ipairs(M.FILES) do out[#out + 1] = ".TP\n.I " .. esc(f[1]) .. "\n" .. opt_esc(f[2]) end
    out[#out + 1] = ".SH SEE ALSO"
    out[#out + 1] = "The documentation in /usr/share/doc/mxprobe and docs/ in the source: cli.md, audits.md, policies.md, codes.md, json\\-schema.md. \\fBmxprobe \\-\\-explain\\fR \\fICODE\\fR explains a diagnostic code."
    return table.concat(out, "\n") .. "\n"
end

return M
