-- The reports: text layout (alignment, hints, escaping, colour), JSON
-- encoding (empty arrays, sorted keys, odd values), the format dispatcher
-- and the code catalog renderings of mxprobe.report.explain.  No network.
local cjson = require "cjson"
local text = require "mxprobe.report.text"
local json = require "mxprobe.report.json"
local report = require "mxprobe.report"
local explain = require "mxprobe.report.explain"

local function sample()
  return {
    schema = 1, domain = "good.lab.test", verdict = "warning", exit_code = 1,
    policy = "default", started = "2026-11-28T09:00:00Z", duration_s = 0.084,
    decided_by = { code = "TLS_VERSION_DEPRECATED", rule = "worst finding" },
    dns = {
      mx = {
        { preference = 10, host = "mx1.good.lab.test", addresses = { "192.0.2.10", "2001:db8::10" } },
        { preference = 20, host = "mx2.good.lab.test", addresses = {} },
      },
      findings = {},
    },
    servers = {
      { host = "mx1.good.lab.test", address = "192.0.2.10", family = 4, port = 25, preference = 10,
        score = 92, grade = "A",
        facts = {
          connect = { state = "connected", seconds = 0.001 },
          banner = { code = 220, text = "mx1.good.lab.test ESMTP \27[31mevil", seconds = 0.02 },
          ehlo = { extensions = { "PIPELINING", "SIZE 10240000", "STARTTLS" }, size = 10240000, starttls = true },
          certificate = { subject = "CN=mx1.good.lab.test", not_after = 1798761600, days_left = 80, verified = true },
        },
        findings = {
          { code = "CONNECT_OK", check = "connect", severity = "ok", message = "Connected in 0.001 s", hint = "never shown" },
          { code = "TLS_VERSION_DEPRECATED", check = "starttls", severity = "warning",
            message = "TLS 1.0 negotiated", hint = "Disable TLS 1.0 and 1.1.", evidence = {} },
          { code = "BANNER_NO_HOSTNAME", check = "banner", severity = "info", message = "Greeting without a host name" },
        },
        transcript = {
          { dir = "<", text = "220 mx1.good.lab.test ESMTP \27]0;pwned\7", t = 0.002 },
          { dir = ">", text = "EHLO probe.lab.test", t = 0.003 },
        } },
      { host = "mx1.good.lab.test", address = "2001:db8::10", family = 6, port = 25, preference = 10,
        score = 40, grade = "D", facts = {},
        findings = {
          { code = "CONNECT_TIMEOUT", check = "connect", severity = "critical", message = "No answer on port 25 within 10 s",
            hint = "A firewall drops port 25." },
        }, transcript = {} },
    },
    findings = {},
  }
end

-- the start (1-based display column) of each header word in a table line
local function columns(header, words)
  local cols = {}
  for _, w in ipairs(words) do cols[#cols + 1] = assert(header:find(w, 1, true), w) end
  return cols
end

local function lines_of(s)
  local t = {}
  for l in s:gmatch("([^\n]*)\n") do t[#t + 1] = l end
  return t
end

describe("report.text", function()
  it("starts with the domain, the verdict and what decided it", function()
    local out = text.render(sample(), { color = false })
    local l = lines_of(out)
    -- the summary line: the decisive finding and its message
    assert.equal("good.lab.test  WARNING  TLS_VERSION_DEPRECATED: TLS 1.0 negotiated (rule worst finding)", l[1])
    assert.matches("policy default", l[2], 1, true)
    assert.matches("took 0.084 s", l[2], 1, true)
    assert.equal("  decided by TLS_VERSION_DEPRECATED (rule: worst finding)", l[3])
    local r = sample()
    r.decided_by.host, r.decided_by.address = "mx1.good.lab.test", "192.0.2.10"
    l = lines_of(text.render(r, {}))
    assert.equal("good.lab.test  WARNING  TLS_VERSION_DEPRECATED on mx1.good.lab.test (192.0.2.10): TLS 1.0 negotiated "
      .. "(rule worst finding)", l[1])
    assert.equal("  decided by TLS_VERSION_DEPRECATED on mx1.good.lab.test (192.0.2.10) (rule: worst finding)", l[3])
    -- no rule, no policy entry: the summary line says it all
    r.decided_by.rule = nil
    l = lines_of(text.render(r, {}))
    assert.equal("good.lab.test  WARNING  TLS_VERSION_DEPRECATED on mx1.good.lab.test (192.0.2.10): TLS 1.0 negotiated", l[1])
    assert.equal("", l[3])
  end)

  it("lists the MX hosts with preference and addresses, aligned", function()
    local out = text.render(sample(), { color = false })
    local l = lines_of(out)
    local i = 1
    while l[i] ~= "DNS" do i = i + 1 end
    local cols = columns(l[i + 1], { "PREF", "MX", "ADDRESSES" })
    assert.equal(cols[2], l[i + 2]:find("mx1.good.lab.test", 1, true))
    assert.equal(cols[3], l[i + 2]:find("192.0.2.10, 2001:db8::10", 1, true))
    assert.equal(cols[2], l[i + 3]:find("mx2.good.lab.test", 1, true))
    assert.matches("(no addresses)", l[i + 3], 1, true)
    assert.matches("^%s+10%s", l[i + 2])
  end)

  it("prints one aligned table per server with score and grade", function()
    local out = text.render(sample(), { color = false })
    local l = lines_of(out)
    local head
    for i, s in ipairs(l) do if s:find("^mx1.good.lab.test  192.0.2.10:25") then head = i end end
    assert.truthy(head, out)
    assert.matches("preference 10  score 92  grade A", l[head], 1, true)
    local cols = columns(l[head + 1], { "CHECK", "SEVERITY", "CODE", "MESSAGE" })
    -- problems first (worst first), the hint under its finding, the ok
    -- findings folded into one line
    local rows = { l[head + 2], l[head + 4] }
    local want = {
      { "starttls", "warning", "TLS_VERSION_DEPRECATED", "TLS 1.0 negotiated" },
      { "banner", "info", "BANNER_NO_HOSTNAME", "Greeting without a host name" },
    }
    assert.equal("  ok  CONNECT_OK", l[head + 5])
    for r, row in ipairs(rows) do
      for c, word in ipairs(want[r]) do
        assert.equal(cols[c], row:find(word, 1, true), ("row %d col %d in %q"):format(r, c, row))
        assert.equal(" ", row:sub(cols[c] - 1, cols[c] - 1))
      end
    end
    -- IPv6 endpoints in brackets
    assert.matches("mx1.good.lab.test  [2001:db8::10]:25  preference 10  score 40  grade D", out, 1, true)
  end)

  it("puts hints under non-ok findings only, in the message column", function()
    local out = text.render(sample(), { color = false })
    local l = lines_of(out)
    local hint_line
    for i, s in ipairs(l) do if s:find("TLS_VERSION_DEPRECATED  TLS 1.0", 1, true) then hint_line = l[i + 1] end end
    assert.truthy(hint_line)
    local msg_col -- of the table the hint is in: the last header above it
    for _, s in ipairs(l) do
      if s:find("CHECK", 1, true) and s:find("MESSAGE", 1, true) then msg_col = s:find("MESSAGE", 1, true) end
      if s == hint_line then break end
    end
    assert.equal(msg_col, hint_line:find("hint: Disable TLS 1.0 and 1.1.", 1, true))
    assert.is_nil(out:find("never shown", 1, true))
    assert.matches("hint: A firewall drops port 25.", out, 1, true)
  end)

  it("shows facts and the transcript only with verbose, escaped", function()
    local quiet = text.render(sample(), { color = false })
    assert.is_nil(quiet:find("transcript", 1, true))
    assert.is_nil(quiet:find("EHLO probe", 1, true))
    local out = text.render(sample(), { color = false, verbose = true })
    assert.matches("transcript", out, 1, true)
    assert.matches("  0.003 > EHLO probe.lab.test", out, 1, true)
    assert.matches("< 220 mx1.good.lab.test ESMTP \\x1B]0;pwned\\x07", out, 1, true)
    assert.matches("ESMTP \\x1B[31mevil", out, 1, true)
    assert.matches("extensions=[PIPELINING, SIZE 10240000, STARTTLS]", out, 1, true)
    assert.matches("certificate  days_left=80 not_after=2027-01-01T00:00:00Z subject=CN=mx1.good.lab.test verified=yes", out, 1, true)
    assert.is_nil(out:find("\27", 1, true), "no raw ESC may reach the terminal")
    assert.is_nil(out:find("\7", 1, true))
  end)

  it("colours only when asked, and never breaks the alignment", function()
    local plain = text.render(sample(), { color = false })
    assert.is_nil(plain:find("\27", 1, true))
    local coloured = text.render(sample(), { color = true })
    assert.matches("\27[33mwarning\27[0m", coloured, 1, true)
    assert.matches("\27[1;31mcritical\27[0m", coloured, 1, true)
    -- removing the colour gives back the plain report
    assert.equal(plain, (coloured:gsub("\27%[[%d;]*m", "")))
  end)

  it("copes with a result that has almost nothing", function()
    local out = text.render({ domain = "x.test", verdict = "inconclusive", error = "internal error: boom" }, {})
    assert.matches("^x.test  INCONCLUSIVE  error: internal error: boom\n", out)
    assert.matches("error: internal error: boom", out, 1, true)
  end)

  it("sums several results up in one line", function()
    assert.equal("3 targets: 1 ok, 1 warning, 1 critical\n",
      text.summary({ { verdict = "critical" }, { verdict = "ok" }, { verdict = "warning" } }))
  end)
end)

describe("report.text.escape", function()
  it("escapes C0, DEL, C1 and bidi controls and invalid UTF-8, keeps text", function()
    assert.equal("a\\x1B[0mb", text.escape("a\27[0mb"))
    assert.equal("tab\\tnl\\ncr\\r", text.escape("tab\tnl\ncr\r"))
    assert.equal("\\x00\\x7F", text.escape("\0\127"))
    assert.equal("\\u009B", text.escape("\u{9b}"))
    assert.equal("x\\u202Ey", text.escape("x\u{202e}y"))
    assert.equal("\\xFF\\xC3", text.escape("\255\195"))
    assert.equal("café ✓", text.escape("café ✓"))
    assert.equal("plain", text.escape("plain"))
  end)
end)

describe("report.json", function()
  it("round-trips a result through cjson", function()
    local r = sample()
    r.servers[1].facts.banner.text = "clean"
    r.servers[1].transcript[1].text = "220 ok"
    local s = json.render(r)
    assert.equal("\n", s:sub(-1))
    assert.is_nil(s:sub(1, -2):find("\n", 1, true), "one line")
    local back = cjson.decode(s)
    assert.equal(1, back.schema)
    assert.equal("good.lab.test", back.domain)
    assert.equal("TLS_VERSION_DEPRECATED", back.servers[1].findings[2].code)
    assert.equal(92, back.servers[1].score)
    assert.equal(0.084, back.duration_s)
  end)

  it("encodes empty lists as [] and empty maps as {}", function()
    local s = json.render(sample())
    assert.matches('"findings":[]', s, 1, true)
    assert.matches('"addresses":[]', s, 1, true)
    assert.matches('"transcript":[]', s, 1, true)
    assert.matches('"facts":{}', s, 1, true)
    assert.matches('"evidence":{}', s, 1, true)
    assert.equal("[]", json.encode(json.array()))
    assert.equal("{}", json.encode(json.object(), "findings"))
    assert.equal("{}", json.encode({}))
    assert.equal('{"servers":[]}', json.encode({ servers = {} }))
  end)

  it("sorts keys, so equal results give equal bytes", function()
    assert.equal('{"a":1,"b":{"c":true,"d":null},"z":"x"}', json.encode({ z = "x", a = 1, b = { d = cjson.null, c = true } }))
  end)

  it("never fails on odd values", function()
    assert.equal('{"inf":null,"nan":null}', json.encode({ nan = 0 / 0, inf = math.huge }))
    assert.equal("9223372036854775807", json.encode(math.maxinteger))
    assert.equal("1700000000", json.encode(1.7e9))
    assert.equal('"\\\\xFFok"', json.encode("\255ok"))
    assert.equal('{"1":"a","3":"c"}', json.encode({ [1] = "a", [3] = "c" }))
    assert.equal('"function"', json.encode(print))
    local t = {}; t.self = t
    assert.has_error(function() json.encode(t) end)
    -- and the encoder is usable again after an error
    assert.equal('{"a":[1,2]}', json.encode({ a = { 1, 2 } }))
  end)

  it("writes plain strings itself and escapes the rest as cjson does", function()
    for _, s in ipairs({ "plain text 220 ok", "a/b", 'q"q', "back\\slash", "tab\tnl\ncr\r", "\0nul", "del\127",
                         "ü é", "" }) do
      assert.equal(cjson.encode(s), json.encode(s))
    end
  end)

  it("prefers the string key when a number key has the same text", function()
    assert.equal('{"1":"string","2":"number"}', json.encode({ [1] = "number?", ["1"] = "string", [2] = "number" }))
  end)

  it("keeps more distinct keys than its key cache holds", function()
    local t, want = {}, {}
    for i = 1, 5000 do t[("k%05d"):format(i)] = i; want[#want + 1] = ('"k%05d":%d'):format(i, i) end
    assert.equal("{" .. table.concat(want, ",") .. "}", json.encode(t))
    assert.equal('{"k00001":1}', json.encode({ k00001 = 1 }))
  end)
end)

describe("report", function()
  it("dispatches on the format name", function()
    assert.equal(json.render(sample()), report.render(sample(), "json"))
    assert.equal(text.render(sample(), { color = false }), report.render(sample(), "text", { color = false }))
    assert.has_error(function() report.render(sample(), "xml") end)
  end)
end)

describe("explain", function()
  local checks = {
    { id = "connect", description = "TCP connection to port 25", scope = "address", categories = { "transport" }, requires = {},
      findings = { CONNECT_OK = { severity = "ok", message = "Connected" },
                   CONNECT_REFUSED = { severity = "critical", message = "Refused | closed", hint = "Start the MTA" } } },
    { id = "banner", description = "The 220 greeting", scope = "session", categories = {}, requires = { "connect" },
      findings = { BANNER_OK = { severity = "ok", message = "220 received" } } },
  }
  local catalog = {}
  for _, c in ipairs(checks) do
    for code, f in pairs(c.findings) do
      catalog[code] = { check = c.id, severity = f.severity, message = f.message, hint = f.hint }
    end
  end

  it("finds codes whatever their case, and suggests near misses", function()
    local e, code = explain.lookup(catalog, "connect_refused")
    assert.equal("CONNECT_REFUSED", code)
    assert.equal("connect", e.check)
    local none, near = explain.lookup(catalog, "CONNECT_REFUSE")
    assert.is_nil(none)
    assert.same({ "CONNECT_REFUSED" }, near)
    assert.same({}, select(2, explain.lookup(catalog, "NOTHING_LIKE_IT")))
  end)

  it("writes docs/codes.md grouped by check, severity first", function()
    local md = explain.markdown(checks, catalog)
    assert.matches("## connect\n\nTCP connection to port 25\n", md, 1, true)
    assert.matches("Scope: `session`; requires: [connect](#connect).", md, 1, true)
    local ok_at = md:find("`CONNECT_OK`", 1, true)
    local refused_at = md:find("`CONNECT_REFUSED`", 1, true)
    assert.truthy(ok_at < refused_at)
    assert.matches("| `CONNECT_REFUSED` | critical | Refused \\| closed | Start the MTA |", md, 1, true)
    assert.matches("2 checks, 3 codes.", md, 1, true)
  end)

  it("documents the catalog's codes that no check declares (the engine's own)", function()
    local cat = {}
    for k, v in pairs(catalog) do cat[k] = v end
    cat.CHECK_ERROR = { check = "engine", severity = "error", message = "The check {check} failed", description = "reported by the engine itself" }
    local md = explain.markdown(checks, cat)
    assert.matches("## engine\n\nreported by the engine itself\n\nReported by the engine itself, not by a check file.", md, 1, true)
    assert.matches("| `CHECK_ERROR` | error | The check {check} failed |  |", md, 1, true)
    assert.matches("3 checks, 4 codes.", md, 1, true)
    assert.equal(2, #checks, "the caller's list is not changed")
    local text_out = explain.render_code("CHECK_ERROR", cat.CHECK_ERROR, nil)
    assert.matches("\ncheck:     engine: reported by the engine itself\n", text_out, 1, true)
  end)

  it("lists checks in an aligned table", function()
    local l = lines_of(explain.render_checks(checks, false))
    local cols = columns(l[1], { "ID", "SCOPE", "REQUIRES", "CODES", "DESCRIPTION" })
    assert.equal(3, #l)
    assert.equal(cols[5], l[2]:find("TCP connection", 1, true))
    assert.equal(cols[3], l[3]:find("connect", 1, true))
    assert.equal(cols[5], l[3]:find("The 220 greeting", 1, true))
    local verbose = explain.render_checks(checks, true)
    assert.matches("    critical     CONNECT_REFUSED", verbose, 1, true)
  end)
end)

describe("docs/codes.md", function()
  it("is what scripts/gen-codes-doc makes from the checks today", function()
    local ok, engine = pcall(require, "mxprobe.engine")
    local run, why = nil, engine
    if ok then
      ok, run = pcall(engine.new, {})
      why = run
    end
    if not ok then
      pending("the engine cannot start here: " .. tostring(why):match("^[^\n]*"))
      return
    end
    local path = require("mxprobe.runtime.paths").root .. "/docs/codes.md"
    local f = assert(io.open(path))
    local committed = f:read("a")
    f:close()
    local fresh = explain.markdown(run.all_checks or run.checks, engine.catalog(run))
    assert.is_true(committed == fresh,
      "docs/codes.md is stale: run ./build/mxprobe scripts/gen-codes-doc > docs/codes.md")
  end)
end)
