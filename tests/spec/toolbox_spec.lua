-- Issue 13, the admin's toolbox: --version with the libraries' versions,
-- the completion scripts and the man page, made from the parser that
-- --help prints.  (Installed paths: tests/install_smoke; the Debian
-- package: tests/deb_smoke.)
local cli = require "mxprobe.app.cli"
local manpage = require "mxprobe.app.manpage"

local function buffer()
  local b = { parts = {} }
  function b:write(...)
    for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring((select(i, ...))) end
    return self
  end
  function b:text() return table.concat(self.parts) end
  return b
end

local function run(argv, env)
  local out, err = buffer(), buffer()
  env = env or {}
  env.stdout, env.stderr = out, err
  env.engine = env.engine or { new = function() error("no engine in this spec", 0) end }
  local code = cli.main(argv, env)
  return code, out:text(), err:text()
end

-- every long option a parser knows, from argparse's own tables
local function long_options(p)
  local names = {}
  for _, o in ipairs(p._options) do
    for _, a in ipairs(o._aliases) do
      if a:match("^%-%-") then names[#names + 1] = a end
    end
  end
  return names
end

describe("toolbox: --version", function()
  it("names the versions of Lua, OpenSSL, c-ares and libidn2 in use", function()
    local code, out = run({ "--version" })
    assert.equal(0, code)
    local libs = require("mxprobe.core").libs
    assert.matches("^mxprobe %d+%.%d+%.%d+\n", out)
    assert.matches("\n  Lua      5%.4%.%d+\n", out)
    assert.matches("\n  OpenSSL  3%.%d+%.%d+", out)
    assert.matches("\n  c%-ares   %d+%.%d+%.%d+\n", out)
    assert.matches("\n  libidn2  %d+%.%d+", out)
    -- asked at run time, not the headers' numbers: the same strings the libraries give
    assert.matches(libs.cares, out, 1, true)
    assert.matches((libs.openssl:gsub("^OpenSSL ", "")), out, 1, true)
  end)
end)

describe("toolbox: --help points to the man page", function()
  it("mxprobe and mxprobe audit", function()
    local _, out = run({ "--help" })
    assert.matches("Full documentation: man mxprobe\n?$", out)
    assert.not_matches("docs/cli.md", out, 1, true)
    _, out = run({ "audit", "--help" })
    assert.matches("man mxprobe", out, 1, true)
  end)
end)

describe("toolbox: --completion", function()
  it("bash: every option of mxprobe and of the audit command", function()
    local code, out = run({ "--completion", "bash" })
    assert.equal(0, code)
    assert.matches("^_mxprobe%(%)", out)
    for _, o in ipairs(long_options(cli.parser())) do assert.matches("[ \"]" .. o:gsub("%-", "%%-") .. "[ \"]", out) end
    for _, o in ipairs(long_options(cli.parser("mxprobe audit", "audit"))) do
      assert.matches(o, out, 1, true)
    end
    assert.matches("audit", out, 1, true)
  end)

  it("zsh and fish", function()
    local code, out = run({ "--completion", "zsh" })
    assert.equal(0, code)
    assert.matches("^#compdef mxprobe", out)
    assert.matches("--resolver", out, 1, true)
    code, out = run({ "--completion", "fish" })
    assert.equal(0, code)
    assert.matches("complete -c mxprobe", out, 1, true)
    assert.matches("-l shard", out, 1, true) -- an audit option
  end)

  it("an unknown shell is a usage error", function()
    local code, out, err = run({ "--completion", "tcsh" })
    assert.equal(3, code)
    assert.equal("", out)
    assert.matches("^mxprobe: .*%-%-completion.*bash.*\n$", err)
  end)
end)

describe("toolbox: the man page", function()
  local page = manpage.render("9.8.7", "2026-12-01")

  it("has the sections of a man page, the version and the date", function()
    assert.matches('^%.TH MXPROBE 1 "2026%-12%-01" "mxprobe 9%.8%.7"', page)
    for _, s in ipairs { "NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "AUDIT", "EXIT STATUS", "EXAMPLES", "ENVIRONMENT", "FILES" } do
      assert.matches("\n%.SH " .. s .. "\n", page)
    end
  end)

  it("documents every option of --help and of audit --help, with its help text", function()
    for _, p in ipairs { cli.parser(), cli.parser("mxprobe audit", "audit") } do
      for _, o in ipairs(p._options) do
        local name = o._aliases[#o._aliases]
        assert.matches("\\fB" .. name:gsub("%-", "\\-") .. "\\fR", page, 1, true)
        local first = (o._description or ""):match("^[^%(%.:,]+")
        local flat = page:gsub("\n", " "):gsub("\\%-", "-")
        if first then assert.matches(first, flat, 1, true) end
      end
    end
  end)

  it("escapes roff: no line starts with a stray . or '", function()
    for line in page:gmatch("[^\n]+") do
      if line:match("^[.']") then
        local req = line:match("^%.(%a%a?)")
        assert.truthy(({ TH = 1, SH = 1, SS = 1, TP = 1, PP = 1, nf = 1, fi = 1, RS = 1, RE = 1, B = 1, I = 1 })[req], line)
      end
    end
    assert.equal(".PP\n\\&.dotted", manpage.escape(".PP\n.dotted"):gsub("^\\&", ""))
    assert.equal("a\\eb", manpage.escape("a\\b"))
  end)

  it("man renders it without warnings", function()
    local tmp = os.tmpname()
    local f = assert(io.open(tmp, "w")); f:write(page); f:close()
    local p = assert(io.popen("MANWIDTH=80 man --warnings -l " .. tmp .. " 2>&1 >/dev/null"))
    local warnings = p:read("a"); p:close()
    os.remove(tmp)
    assert.equal("", warnings)
  end)
end)

------------------------------------------------------------ monitoring formats

local nagios = require "mxprobe.report.nagios"
local openmetrics = require "mxprobe.report.openmetrics"

local function server(o)
  o = o or {}
  return {
    host = o.host or "mx1.example.org", address = o.address or "192.0.2.1", family = 4, port = 25, preference = 10,
    score = o.score or 100, grade = "A",
    facts = {
      connect = { state = "connected", seconds = 0.01 },
      banner = { seconds = 0.011 },
      starttls = o.tls == false and { offered = false } or { offered = true, handshake = true, version = o.tls or "TLSv1.3" },
      certificate = o.tls ~= false and { days_left = o.days or 85, not_after = o.not_after or 1800000000 } or nil,
    },
    findings = o.findings or { { check = "connect", code = "CONNECT_OK", severity = "ok", message = "ok" } },
    transcript = {},
  }
end

local function result(o)
  o = o or {}
  return {
    schema = 1, domain = o.domain or "example.org", verdict = o.verdict or "ok",
    exit_code = ({ ok = 0, warning = 1, critical = 2, inconclusive = 3 })[o.verdict or "ok"],
    started = "2026-11-28T09:00:00Z", duration_s = 0.25, decided_by = o.decided_by,
    dns = { mx = {}, findings = {} }, servers = o.servers or { server() }, findings = {},
  }
end

describe("toolbox: --format nagios (rendering)", function()
  it("OK: status line, performance data in the guidelines' syntax, one long line per server", function()
    local s, code = nagios.render(result())
    assert.equal(0, code)
    assert.equal("MXPROBE OK - example.org: no problem found on 1 server|'time'=0.25s;;;0 'mx1_time'=0.021s;;;0 "
      .. "'mx1_cert_days'=85;;;0 'mx1_tls_version'=1.3;;;0 'mx1_score'=100;;;0;100\n"
      .. "mx1 mx1.example.org 192.0.2.1:25: score 100, TLSv1.3, certificate 85 days\n", s)
  end)

  it("the decisive finding, with a | and a control character from the network made harmless", function()
    local f = { check = "banner", code = "BANNER_554", severity = "critical", message = "554 go away | now\27[2J" }
    local r = result { verdict = "critical", servers = { server { findings = { f }, score = 40 } },
                       decided_by = { code = "BANNER_554", check = "banner", host = "mx1.example.org", address = "192.0.2.1" } }
    local s, code = nagios.render(r)
    assert.equal(2, code)
    local first = s:match("^[^\n]*")
    assert.equal("MXPROBE CRITICAL - example.org: BANNER_554 on mx1.example.org (192.0.2.1): 554 go away / now\\x1B[2J", first:match("^[^|]*"))
    assert.equal(1, select(2, first:gsub("|", "|")))
  end)

  it("-w/-c: certificate days below a threshold raise the status, and say so; the policy's worse verdict stays", function()
    local s, code = nagios.render(result { servers = { server(), server { host = "mx2.example.org", days = 9 } } },
                                  { warning = 30, critical = 5 })
    assert.equal(1, code)
    assert.matches("^MXPROBE WARNING %- example%.org: the certificate of mx2 mx2%.example%.org %(192%.0%.2%.1%) expires in 9 days %(%-w 30%)|", s)
    assert.matches("'mx2_cert_days'=9;30;5;0", s, 1, true)
    _, code = nagios.render(result { servers = { server { days = 4 } } }, { warning = 30, critical = 5 })
    assert.equal(2, code)
    _, code = nagios.render(result { verdict = "critical", servers = { server { days = 60 } } }, { warning = 30, critical = 5 })
    assert.equal(2, code)
  end)

  it("no TLS is tls_version 0; inconclusive is UNKNOWN; several targets: counts and prefixed labels", function()
    local s = nagios.render(result { servers = { server { tls = false } } })
    assert.matches("'mx1_tls_version'=0;;;0", s, 1, true)
    assert.not_matches("cert_days", s)
    local _, code = nagios.render(result { verdict = "inconclusive" })
    assert.equal(3, code)
    s, code = nagios.render_all({ result(), result { domain = "example.net", verdict = "warning",
      decided_by = { code = "X" } } })
    assert.equal(1, code)
    assert.matches("^MXPROBE WARNING %- 2 targets %(1 warning, 1 ok%); example%.net: X|", s)
    assert.matches("'example.org mx1_score'=100", s, 1, true)
    assert.matches("'example.net mx1_score'=100", s, 1, true)
  end)

  it("-t: UNKNOWN, with what was done", function()
    local s, code = nagios.render_all({}, { timed_out = 2, targets = 1 })
    assert.equal(3, code)
    assert.equal("MXPROBE UNKNOWN - timed out after 2 s (-t)\n", s)
  end)
end)

describe("toolbox: --format openmetrics (rendering)", function()
  it("gauges with HELP and TYPE, one family per name, escaped label values, # EOF", function()
    local r1 = result { domain = 'we"ird\\.example' }
    local r2 = result { domain = "example.net", servers = { server { not_after = 1800000001 }, server { host = "mx2.example.net" } } }
    local s = openmetrics.render_all({ r1, r2 })
    assert.matches("\n# EOF\n$", s)
    local seen = {}
    for name in s:gmatch("# TYPE (%S+) gauge\n") do
      assert.is_nil(seen[name], name .. " twice")
      seen[name] = true
      assert.matches("# HELP " .. name:gsub("_", "%%_") .. " ", s)
    end
    for _, n in ipairs { "mxprobe_domain_verdict", "mxprobe_server_score", "mxprobe_server_certificate_expiry_timestamp_seconds",
                         "mxprobe_server_tls_version_info", "mxprobe_domain_test_timestamp_seconds" } do
      assert.truthy(seen[n], n)
    end
    assert.matches('mxprobe_domain_verdict{domain="we\\"ird\\\\.example",verdict="ok"} 1\n', s, 1, true)
    assert.matches('mxprobe_server_certificate_expiry_timestamp_seconds{domain="example.net",mx="mx1.example.org",address="192.0.2.1",port="25"} 1800000001\n', s, 1, true)
    assert.matches('mxprobe_domain_test_timestamp_seconds{domain="example.net"} 1795856400\n', s, 1, true)
    -- every sample line: name{labels} value
    for line in s:gmatch("[^\n]+") do
      if not line:match("^#") then assert.matches('^[a-z_]+{[a-z_]+=".*"} %-?[%d.e+-]+$', line) end
    end
  end)

  it("epoch: UTC whatever the local time zone", function()
    assert.equal(0, openmetrics.epoch("1970-01-01T00:00:00Z"))
    assert.equal(951782400, openmetrics.epoch("2000-02-29T00:00:00Z"))
    assert.equal(1795856400, openmetrics.epoch("2026-11-28T09:00:00Z"))
    assert.is_nil(openmetrics.epoch("yesterday"))
  end)
end)

describe("toolbox: the options", function()
  local function fails(argv, pattern)
    local code, out, err = run(argv)
    assert.equal(3, code)
    assert.equal("", out)
    assert.matches(pattern, err)
  end
  it("reject what cannot work, naming the option", function()
    fails({ "--format", "xml", "example.org" }, "%-%-format")
    fails({ "--format", "nagios", "--json", "example.org" }, "%-%-json and %-%-format nagios: choose one")
    fails({ "-w", "30", "example.org" }, "^mxprobe: %-w: only with %-%-format nagios\n$")
    fails({ "--format", "nagios", "-w", "thirty", "example.org" }, "^mxprobe: %-w: 'thirty' is not a number of days")
    fails({ "--format", "nagios", "-w", "10", "-c", "20", "example.org" }, "^mxprobe: %-c 20 is more than %-w 10")
    fails({ "-t", "0", "example.org" }, "^mxprobe: %-t: ")
    fails({ "--color", "sometimes", "example.org" }, "%-%-color")
    fails({ "--color", "always", "--no-color", "example.org" }, "choose one")
  end)

  it("--color always wins over NO_COLOR and a pipe; never over a terminal", function()
    local env = { getenv = function(k) return ({ NO_COLOR = "1", TERM = "xterm" })[k] end, tty = false }
    assert.is_true(cli.want_color({ color = "always" }, env))
    assert.is_false(cli.want_color({ color = "auto" }, env))
    env = { getenv = function(k) return ({ TERM = "xterm" })[k] end, tty = true }
    assert.is_true(cli.want_color({}, env))
    assert.is_false(cli.want_color({ color = "never" }, env))
    assert.is_false(cli.want_color({ color = "always", format = "nagios" }, env))
  end)
end)

------------------------------------------------------------ the text report

local text = require "mxprobe.report.text"

-- display columns counted by hand: ASCII 1, the CJK ideographs below 2,
-- combining marks 0 (independent of the code under test)
local function columns_of(s)
  local n = 0
  for _, c in utf8.codes(s) do
    if c >= 0x300 and c <= 0x36f then n = n + 0
    elseif c >= 0x3040 and c <= 0x9fff then n = n + 2
    else n = n + 1 end
  end
  return n
end

local function lines(s)
  local t = {}
  for l in s:gmatch("([^\n]*)\n") do t[#t + 1] = l end
  return t
end

local function problem_result()
  local long = "The certificate for CN=mx1.example.org expires in 9 days (2026-12-11), and the chain sent "
    .. "by the server lacks its intermediate certificate"
  return result {
    verdict = "warning",
    decided_by = { code = "CERT_EXPIRING", check = "certificate", host = "mx2.example.org", address = "192.0.2.2" },
    servers = {
      server { findings = {
        { check = "connect", code = "CONNECT_OK", severity = "ok", message = "Port 25 open" },
        { check = "banner", code = "BANNER_OK", severity = "ok", message = "Greeting in 0 s" } } },
      server { host = "mx2.example.org", address = "192.0.2.2", score = 90, findings = {
        { check = "connect", code = "CONNECT_OK", severity = "ok", message = "Port 25 open" },
        { check = "banner", code = "BANNER_NO_PTR", severity = "info", message = "No PTR record" },
        { check = "certificate", code = "CERT_EXPIRING", severity = "warning", message = long,
          hint = "Renew it before it expires (certbot renew), and check that automatic renewal runs." } } },
    },
  }
end

describe("toolbox: the text report fits the terminal", function()
  it("display width: wide characters count 2 columns, combining marks 0", function()
    assert.equal(6, text.width("日本語"))
    assert.equal(4, text.width("cafe\u{301}"))
    assert.equal(3, text.width("abc"))
    assert.same({ "日本語 日本語", "日本語" }, text.wrap("日本語 日本語 日本語", 13))
    assert.same({ "日本語日", "本語" }, text.wrap("日本語日本語", 8)) -- a word longer than the line is cut, not a character
  end)

  it("no line is wider than the width, at 80, 60 and 40 columns; nothing is lost", function()
    for _, w in ipairs { 80, 60, 40 } do
      local out = text.render(problem_result(), { width = w, verbose = true })
      for _, l in ipairs(lines(out)) do
        assert.truthy(columns_of(l) <= w, ("%d columns at width %d: %q"):format(columns_of(l), w, l))
      end
      local flat = out:gsub("%s+", " ")
      assert.matches("lacks its intermediate certificate", flat, 1, true)
      assert.matches("hint: Renew it before it expires (certbot renew), and check that automatic renewal runs.", flat, 1, true)
    end
  end)

  it("wraps the message column under itself, wide characters by their width", function()
    local r = problem_result()
    r.servers[2].findings[3].message = ("証明書の期限切れ "):rep(8)
    local out = text.render(r, { width = 70 })
    local l = lines(out)
    local first, col
    for i, s in ipairs(l) do if s:find("CERT_EXPIRING  証明書", 1, true) then first = i; col = s:find("証明書", 1, true) end end
    assert.truthy(first, out)
    local msg_cols = columns_of(l[first]:sub(1, col - 1))
    assert.equal(msg_cols, #l[first + 1]:match("^ *"))  -- the continuation starts under the message
    assert.matches("^ +証明書", l[first + 1])
    for i = first, first + 2 do assert.truthy(columns_of(l[i]) <= 70, l[i]) end
    -- 16 + 1 + 16 columns do not fit in the 30 left: one word a line (counting
    -- one column per character, two would have fitted, and overflowed)
    assert.equal("証明書の期限切れ", l[first + 1]:match("^ *(.-)%s*$"))
  end)

  it("starts with one summary line giving the decisive reason, problems first, ok rows folded", function()
    local out = text.render(problem_result(), { width = 300 })
    local l = lines(out)
    assert.equal("example.org  WARNING  CERT_EXPIRING on mx2.example.org (192.0.2.2): The certificate for "
      .. "CN=mx1.example.org expires in 9 days (2026-12-11), and the chain sent by the server lacks its intermediate "
      .. "certificate", l[1])
    -- the server with a problem comes first, its warning above its info, the ok rows in one line
    local mx2 = out:find("\nmx2.example.org  192.0.2.2:25", 1, true)
    local mx1 = out:find("\nmx1.example.org  192.0.2.1:25", 1, true)
    assert.truthy(mx2 and mx1 and mx2 < mx1, out)
    local warn, info = out:find("CERT_EXPIRING  The", 1, true), out:find("BANNER_NO_PTR", 1, true)
    assert.truthy(warn < info)
    assert.matches("\n  ok  CONNECT_OK\n", out, 1, true)
    assert.matches("\n  ok  CONNECT_OK BANNER_OK\n", out, 1, true)
    assert.is_nil(out:find("Port 25 open", 1, true))
    -- -v: every row
    local v = text.render(problem_result(), { width = 200, verbose = true })
    assert.matches("connect  +ok +CONNECT_OK +Port 25 open", v)
    assert.is_nil(v:find("\n  ok  ", 1, true))
  end)

  it("a wrapped summary line continues indented by 4", function()
    local l = lines(text.render(problem_result(), { width = 50 }))
    assert.equal("example.org  WARNING  CERT_EXPIRING on", l[1])
    assert.matches("^    mx2%.example%.org %(192%.0%.2%.2%): The", l[2])
  end)

  it("-q: only the summary line; an ok domain says how many servers were tested", function()
    assert.equal("example.org  OK  1 server tested, no problem found\n", text.render(result(), { quiet = true, width = 80 }))
  end)

  it("shows the U-label next to an IDN's A-label (domain and MX hosts)", function()
    local r = result { domain = "xn--bcher-kva.example", servers = { server { host = "mx.xn--bcher-kva.example" } } }
    r.input = "bücher.example"
    r.dns.mx = { { preference = 10, host = "mx.xn--bcher-kva.example", addresses = { "192.0.2.1" } } }
    local out = text.render(r, { width = 100 })
    assert.matches("^xn%-%-bcher%-kva%.example %(bücher%.example%)  OK", out)
    assert.matches("\nmx.xn--bcher-kva.example (mx.bücher.example)  192.0.2.1:25", out, 1, true)
    assert.matches("10    mx.xn--bcher-kva.example (mx.bücher.example)  192.0.2.1", out, 1, true)
    -- a name without A-labels, or a broken one, is shown as it is
    assert.equal("mx.example.org", text.name("mx.example.org"))
    assert.equal("xn--zz.example", text.name("xn--zz.example"))
  end)
end)

describe("toolbox: the CLI's width: TIOCGWINSZ, then COLUMNS, then 80", function()
  it("COLUMNS when stdout is not a terminal; 80 without it; a nonsense COLUMNS is ignored", function()
    assert.equal(100, cli.toolbox.width({ stdout = {}, getenv = function(k) return k == "COLUMNS" and "100" or nil end }))
    assert.equal(80, cli.toolbox.width({ stdout = {}, getenv = function() return nil end }))
    assert.equal(80, cli.toolbox.width({ stdout = {}, getenv = function(k) return k == "COLUMNS" and "wide" or nil end }))
    assert.equal(80, cli.toolbox.width({ stdout = {}, getenv = function(k) return k == "COLUMNS" and "3" or nil end }))
  end)

  it("the terminal's size, asked with TIOCGWINSZ (core.term.size)", function()
    local term = require("mxprobe.core").term
    local cols, why = term.size(0 + 99) -- not an open descriptor
    assert.is_nil(cols)
    assert.equal("term", why)
    -- a pseudo-terminal of 57 columns: script(1) gives the command one
    local p = assert(io.popen([[script -qec "stty cols 57 rows 20; ]] .. arg[-1]:gsub('"', '\\"') .. [[ -e 'print(require(\"mxprobe.core\").term.size(1))' 2>&1" /dev/null 2>&1]]))
    local out = p:read("a")
    p:close()
    if out:find("57", 1, true) == nil then
      -- the host may not run -e: run a script file instead
      local f = os.tmpname()
      local h = assert(io.open(f, "w")); h:write('print(require("mxprobe.core").term.size(1))\n'); h:close()
      p = assert(io.popen(("script -qec 'stty cols 57 rows 20; %s %s' /dev/null 2>&1"):format(arg[-1], f)))
      out = p:read("a")
      p:close()
      os.remove(f)
    end
    assert.matches("^57%s+20", out:gsub("^[^%d]*", ""))
  end)
end)

------------------------------------------------------------ default policy

describe("toolbox: the default policy files", function()
  local tmp
  before_each(function()
    tmp = os.tmpname()
    os.remove(tmp)
    assert(os.execute("mkdir -p " .. tmp .. "/xdg/mxprobe " .. tmp .. "/etc " .. tmp .. "/home/.config/mxprobe"))
  end)
  after_each(function() os.execute("rm -rf " .. tmp) end)

  local function write(path, body)
    local f = assert(io.open(path, "w")); f:write(body or "return { name = 'x' }\n"); f:close()
    return path
  end

  -- the policy the engine is given, with these environment variables
  local function policy_used(vars, argv)
    local seen
    local engine = { new = function(spec)
      seen = spec.policy
      return { checks = {}, check_domain = function(_, d) return result { domain = d } end }
    end }
    local env = { engine = engine, getenv = function(k) return vars[k] end, system_policy = tmp .. "/etc/policy.lua" }
    local args = argv or {}
    args[#args + 1] = "example.org"
    local code, _, err = run(args, env)
    return seen, code, err
  end

  it("none of them: the stock policy", function()
    local p, code = policy_used({ HOME = tmp .. "/home" })
    assert.is_nil(p)
    assert.equal(0, code)
  end)

  it("precedence: --policy, then MXPROBE_POLICY, then the user's, then the system's", function()
    local system = write(tmp .. "/etc/policy.lua")
    local user = write(tmp .. "/xdg/mxprobe/policy.lua")
    local named = write(tmp .. "/named.lua")
    local given = write(tmp .. "/given.lua")
    local vars = { XDG_CONFIG_HOME = tmp .. "/xdg", MXPROBE_POLICY = named }
    assert.equal(given, (policy_used(vars, { "--policy", given })))
    assert.equal(named, (policy_used(vars)))
    vars.MXPROBE_POLICY = nil
    assert.equal(user, (policy_used(vars)))
    os.remove(user)
    assert.equal(system, (policy_used(vars)))
    -- MXPROBE_POLICY set but empty: none of the files
    vars.MXPROBE_POLICY = ""
    assert.is_nil((policy_used(vars)))
  end)

  it("XDG_CONFIG_HOME unset (or relative): ~/.config", function()
    local user = write(tmp .. "/home/.config/mxprobe/policy.lua")
    assert.equal(user, (policy_used({ HOME = tmp .. "/home" })))
    assert.equal(user, (policy_used({ HOME = tmp .. "/home", XDG_CONFIG_HOME = "relative/dir" })))
  end)

  it("a MXPROBE_POLICY that cannot be read, or a user policy that is a directory: one line naming it", function()
    local p, code, err = policy_used({ MXPROBE_POLICY = tmp .. "/missing.lua" })
    assert.is_nil(p)
    assert.equal(3, code)
    assert.equal("mxprobe: MXPROBE_POLICY: cannot read '" .. tmp .. "/missing.lua': No such file or directory\n", err)
    assert(os.execute("mkdir " .. tmp .. "/xdg/mxprobe/policy.lua"))
    _, code, err = policy_used({ XDG_CONFIG_HOME = tmp .. "/xdg" })
    assert.equal(3, code)
    assert.matches("^mxprobe: the user policy: cannot read '" .. tmp:gsub("%p", "%%%0") .. "/xdg/mxprobe/policy%.lua'", err)
  end)

  it("audits use it too", function()
    local user = write(tmp .. "/xdg/mxprobe/policy.lua")
    local list = write(tmp .. "/domains.txt", "example.org\n")
    local args, plan = cli.config(select(2, cli.parser("mxprobe audit", "audit"):pparse({ list })),
      { getenv = function(k) return k == "XDG_CONFIG_HOME" and tmp .. "/xdg" or nil end, system_policy = tmp .. "/etc/p.lua" })
    assert.truthy(args)
    assert.equal(user, plan.policy)
  end)
end)

------------------------------------------------------------ signs of life

describe("toolbox: the status line", function()
  local loop = require "mxprobe.runtime.loop"
  local session = require "mxprobe.smtp.session"
  local fake = dofile("tests/helpers/fake_smtp.lua")

  it("loop.activities: what parked tasks said they wait for, longest first; gone when the wait ends", function()
    local t1 = loop.spawn(function() loop.doing("the first thing"); loop.sleep(0.3); loop.doing(nil); loop.sleep(0.3) end)
    loop.sleep(0.05)
    local t2 = loop.spawn(function() loop.doing("the second thing"); loop.sleep(0.1) end)
    loop.sleep(0.05)
    local acts = loop.activities()
    assert.equal(2, #acts)
    assert.equal("the first thing", acts[1].what)
    assert.equal("the second thing", acts[2].what)
    assert.truthy(acts[1].deadline > loop.now())
    loop.join(t2)
    loop.sleep(0.3)
    assert.equal(0, #loop.activities()) -- t1 waits again, without a label
    loop.join(t1)
  end)

  it("an SMTP session names what it waits for: the greeting, then the reply to a command", function()
    local srv = fake.start({ { sleep = 0.3 }, "220 mx.test ESMTP\r\n", { expect = "^EHLO" }, { sleep = 0.3 },
                             "250 mx.test\r\n", { expect = "^QUIT" }, "221 bye\r\n" }, { lifetime = 5 })
    local seen = {}
    local watcher = loop.spawn(function()
      for _ = 1, 20 do
        for _, a in ipairs(loop.activities()) do seen[a.what] = true end
        loop.sleep(0.05)
      end
    end)
    local s = assert(session.open(srv.ip, srv.port, { host = "mx.test", connect_timeout = 2 }))
    assert(s:read_reply(loop.now() + 2))
    assert(s:command("EHLO tester.test", loop.now() + 2))
    s:quit()
    loop.join(watcher)
    srv:wait()
    local where = "mx.test (" .. srv.ip .. ")"
    assert.truthy(seen["the greeting of " .. where], next(seen))
    assert.truthy(seen["the reply to EHLO from " .. where])
  end)

  it("says how long, what for, when it gives up, and fits its width", function()
    local acts = { { what = "the greeting of mx.example.org (192.0.2.1)", since = 88, deadline = 118 },
                   { what = "the DNS answer for example.net MX", since = 95 } }
    assert.equal("[2/5] waiting 12 s for the greeting of mx.example.org (192.0.2.1); gives up in 18 s (+1 more)",
      cli.toolbox.status_text(acts, 100.2, 2, 5, 200))
    assert.equal("waiting 5 s for the DNS answer for example.net MX", cli.toolbox.status_text({ acts[2] }, 100.2, 0, 1, 80))
    local s = cli.toolbox.status_text(acts, 100.2, 2, 5, 40)
    assert.truthy(text.width(s) <= 39, s)
    assert.matches("…$", s)
    assert.equal("testing", cli.toolbox.status_text({}, 1, 0, 1, 80))
  end)

  it("on a terminal: shown while waiting, cleared before each report; never with -q or off a terminal", function()
    local both = buffer() -- stdout and stderr on one terminal
    local engine = { new = function()
      return { checks = {}, check_domain = function(_, d)
        loop.doing("the greeting of mx." .. d)
        loop.sleep(d == "slow.test" and 1.2 or 0.01)
        loop.doing(nil)
        return result { domain = d }
      end }
    end }
    local code = cli.main({ "fast.test", "slow.test" }, { engine = engine, stdout = both, stderr = both, status = true })
    assert.equal(0, code)
    local out = both:text()
    assert.matches("\r\27%[K%[1/2%] waiting 0 s for the greeting of mx%.slow%.test", out)
    assert.matches("\r\27%[K%[1/2%] waiting 1 s for the greeting of mx%.slow%.test", out)
    -- the report of slow.test starts on a cleared line, and nothing follows the last report but the totals
    assert.matches("\r\27%[K\nslow%.test  OK", out)
    assert.matches("\n2 targets: 2 ok\n$", out)
    -- not a terminal (the default for a spec's buffers), or -q: no status line at all
    local plain = buffer()
    cli.main({ "slow.test" }, { engine = engine, stdout = plain, stderr = plain })
    assert.is_nil(plain:text():find("\27", 1, true))
    plain = buffer()
    cli.main({ "-q", "slow.test" }, { engine = engine, stdout = plain, stderr = plain, getenv = function(k) return k == "TERM" and "xterm" or nil end })
    assert.is_nil(plain:text():find("waiting", 1, true))
  end)
end)

describe("toolbox: the audit's progress line", function()
  local audit = require "mxprobe.app.audit"
  it("an ETA that stays honest during time-outs", function()
    -- plenty left, a steady rate: left / rate
    assert.equal(100, audit.eta(1000, 10, 10, {}, 0))
    -- the last domains are all in flight, waiting on a dead server until
    -- t = 50: not before, whatever the rate says
    local acts = { { what = "x", since = 0, deadline = 50 }, { what = "y", since = 5, deadline = 20 } }
    assert.equal(40, audit.eta(5, 5, 10, acts, 10))
    -- nothing completes lately (every worker waits on a time-out): not
    -- before the first of them can end, and unknown without deadlines
    assert.equal(10, audit.eta(1000, 10, 0, acts, 10))
    assert.is_nil(audit.eta(1000, 10, 0, {}, 10))
    assert.equal(0, audit.eta(0, 0, 0, {}, 10))
  end)
  it("durations", function()
    assert.equal("?", audit.duration(nil))
    assert.equal("45s", audit.duration(44.2))
    assert.equal("1m35s", audit.duration(95))
    assert.equal("1h02m", audit.duration(3725))
  end)
end)

------------------------------------------------------------ --source

describe("toolbox: --source (core.net.connect's source address)", function()
  local loop = require "mxprobe.runtime.loop"
  local net = require("mxprobe.core").net
  local session = require "mxprobe.smtp.session"
  local fake = dofile("tests/helpers/fake_smtp.lua")

  it("the server sees the connection come from the source address", function()
    local peer
    local srv = fake.start({ function(conn) peer = conn:peer() end, "220 hi\r\n", { expect = "^QUIT" }, "221 bye\r\n" },
                           { lifetime = 5 })
    local s = assert(session.open(srv.ip, srv.port, { source = "127.0.0.2", connect_timeout = 2 }))
    assert(s:read_reply(loop.now() + 2))
    s:quit()
    srv:wait()
    assert.matches("^127%.0%.0%.2", tostring(peer))
  end)

  it("a source of the other family, or not of this machine: nil, \"source\", a sentence naming it", function()
    local ok, code, detail = net.connect("127.0.0.1", 9, "::1")
    assert.is_nil(ok)
    assert.equal("source", code)
    assert.equal("the source address ::1 is IPv6 and 127.0.0.1 is IPv4", detail)
    ok, code, detail = net.connect("127.0.0.1", 9, "192.0.2.77")
    assert.is_nil(ok)
    assert.equal("source", code)
    assert.matches("^cannot bind to the source address 192%.0%.2%.77: ", detail)
    assert.has_error(function() net.connect("127.0.0.1", 9, "nope") end)
  end)

  it("the options: families follow the source; bad combinations are usage errors", function()
    local _, plan = cli.config(assert(cli.parse({ "--source", "192.0.2.1", "example.org" })), {})
    local config = select(1, cli.config(assert(cli.parse({ "--source", "192.0.2.1", "example.org" })), {}))
    assert.same({ 4 }, config.families)
    assert.same({ [4] = "192.0.2.1" }, config.source)
    assert.truthy(plan)
    config = cli.config(assert(cli.parse({ "--source", "192.0.2.1", "--source", "[2001:DB8::1]", "example.org" })), {})
    assert.same({ [4] = "192.0.2.1", [6] = "2001:db8::1" }, config.source)
    assert.is_nil(config.families)
    local _, err = cli.config(assert(cli.parse({ "--source", "192.0.2.1", "--source", "192.0.2.2", "example.org" })), {})
    assert.matches("two IPv4 addresses", err)
    _, err = cli.config(assert(cli.parse({ "--source", "192.0.2.1", "-6", "example.org" })), {})
    assert.matches("^%-%-source: an IPv4 address, but %-6", err)
    -- the ports of the services
    assert.equal(587, cli.config(assert(cli.parse({ "--submission", "example.org" })), {}).port)
    assert.equal(465, cli.config(assert(cli.parse({ "--implicit-tls", "example.org" })), {}).port)
    assert.equal(465, cli.config(assert(cli.parse({ "--implicit-tls", "--submission", "example.org" })), {}).port)
    assert.equal(2465, cli.config(assert(cli.parse({ "--implicit-tls", "--port", "2465", "example.org" })), {}).port)
    _, err = cli.config(assert(cli.parse({ "--submission", "--no-relay", "example.org" })), {})
    assert.matches("^%-%-no%-relay: there is no relay probe with %-%-submission", err)
  end)
end)

describe("toolbox: nagios after an interruption", function()
  it("UNKNOWN, saying how much was done", function()
    local s, code = nagios.render_all({ result() }, { interrupted = true, targets = 3 })
    assert.equal(3, code)
    assert.matches("^MXPROBE UNKNOWN %- interrupted; 1 of 3 targets done|", s)
  end)
end)
