-- mxprobe report AUDIT.jsonl -o report.html: the page is rendered by a real
-- headless Chromium (Debian's chromium, in a network namespace of its own:
-- it cannot reach anything, which also proves the page needs nothing), a
-- screenshot is taken, and the numbers on the page, read from the DOM
-- after the page's script ran, are compared with counts made here from the
-- JSON Lines.  A small hand-made input; bench/report does 100,000 records.
local cjson = require "cjson"
local cli = require "mxprobe.app.cli"
local rh = require "mxprobe.app.report_html"

local SHOT = os.getenv("MXPROBE_REPORT_SHOT") or "/tmp/mxprobe-report-spec.png"

local function tmpfile(content)
  local p = os.tmpname()
  local f = assert(io.open(p, "wb")); f:write(content or ""); f:close()
  return p
end

local function slurp(p)
  local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s
end

local function buffer()
  local b = { parts = {} }
  function b:write(...)
    for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring((select(i, ...))) end
    return self
  end
  function b:text() return table.concat(self.parts) end
  return b
end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Chromium, isolated: its own empty network namespace (root, or a user
-- namespace), its own profile directory, no background services.
local function chromium(args)
  local profile = os.tmpname(); os.remove(profile)
  local base = "chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking "
    .. "--disable-component-update --disable-sync --disable-extensions --user-data-dir=" .. sh_quote(profile) .. " " .. args
  local out
  for _, wrap in ipairs { "unshare --net ", "unshare --map-root-user --net " } do
    local p = io.popen(wrap .. base .. " 2>/dev/null")
    out = p:read("a")
    local ok = p:close()
    if ok and (out ~= "" or args:find("--screenshot", 1, true)) then break end
    out = nil
  end
  os.execute("rm -rf " .. sh_quote(profile))
  return out
end

local T0 = 1796000000 -- 2026-11-29T...
local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end

-- o: verdict, codes {{code, severity, message}}, host, tls, days (certificate), error, senders
local function rec(domain, o)
  o = o or {}
  local host = o.host or ("mx." .. domain)
  local findings = { { code = "CONNECT_OK", severity = "ok", check = "connect", message = "Port 25 open (0.01 s)" } }
  for _, c in ipairs(o.codes or {}) do
    findings[#findings + 1] = { code = c[1], severity = c[2], check = "x", message = c[3] or (c[1] .. " on " .. host) }
  end
  local facts = { connect = { state = o.unreachable and "timeout" or "connected" } }
  if o.tls then facts.starttls = { offered = true, handshake = true, version = o.tls } end
  if o.days then
    facts.certificate = { not_after = T0 + o.days * 86400 + 3600, days_left = o.days,
                          fingerprint_sha256 = o.fp or ("fp-" .. domain) }
  end
  local r = {
    schema = 1, domain = domain, verdict = o.verdict or "ok", started = iso(T0), duration_s = 0.2,
    dns = { mx = o.error and {} or { { preference = 10, host = host, addresses = { "192.0.2.10" } } }, findings = {} },
    servers = o.error and {} or { { host = host, address = "192.0.2.10", score = o.score or 100, grade = o.grade or "A",
                                    facts = facts, findings = findings } },
    findings = {}, error = o.error, senders = o.senders,
    provenance = { mxprobe = "test", ehlo = "probe.example", policy = { name = "default", sha256 = ("ab"):rep(32) } },
  }
  return cjson.encode(r) .. "\n"
end

local INPUT = table.concat {
  rec("a.example", { tls = "TLSv1.3", days = 200, host = "mx1.bigmail.example" }),
  rec("b.example", { tls = "TLSv1.3", days = 200, host = "mx2.bigmail.example", fp = "fp-a.example" }),
  rec("c.example", { verdict = "warning", tls = "TLSv1.2", days = 12, host = "in.bigmail.example",
                     codes = { { "CERT_EXPIRING", "warning" } }, score = 85, grade = "B",
                     senders = { kinds = { "opportunistic", "strict" },
                                 domain = { opportunistic = { outcome = "encrypted", reason = "TLSv1.2, certificate not checked" },
                                            strict = { outcome = "defers", reason = "certificate expires" } } } }),
  rec("d.example", { verdict = "warning", tls = "TLSv1", days = 45, codes = { { "TLS_VERSION_DEPRECATED", "warning" } },
                     senders = { kinds = { "opportunistic", "strict" },
                                 domain = { opportunistic = { outcome = "encrypted" }, strict = { outcome = "authenticated" } } } }),
  rec("e.example", { verdict = "critical", tls = "TLSv1.2", days = -3,
                     codes = { { "CERT_EXPIRED", "critical", "ended </script><b>3 days ago</b>" } }, score = 40, grade = "D" }),
  rec("f.example", { verdict = "critical", codes = { { "STARTTLS_NOT_OFFERED", "critical" }, { "CERT_EXPIRING", "info" } },
                     host = "smtp.other.example", score = 30, grade = "E" }),
  rec("g.example", { verdict = "inconclusive", codes = { { "CONNECT_TIMEOUT", "inconclusive" } }, host = "smtp.other.example",
                     unreachable = true }),
  rec("h.example", { verdict = "ok", tls = "TLSv1.3", days = 89, host = "mx.small.example" }),
  rec("not a domain", { verdict = "inconclusive", error = "not a domain name: two words" }),
  rec("a.example", { verdict = "critical" }), -- again: the first record counts
  "this line is not JSON\n",
}

-- The counts, made here from the JSON Lines (not by the module under test).
local function expected(text)
  local e = { total = 0, verdicts = { ok = 0, warning = 0, critical = 0, inconclusive = 0 }, codes = {}, seen = {},
              findings = {}, by_code = {} }
  for line in text:gmatch("([^\n]*)\n") do
    local ok, r = pcall(cjson.decode, line)
    if ok and type(r) == "table" and not e.seen[r.domain] then
      e.seen[r.domain] = true
      e.total = e.total + 1
      e.verdicts[r.verdict] = e.verdicts[r.verdict] + 1
      local set, n = {}, 0
      for _, s in ipairs(r.servers) do
        for _, f in ipairs(s.findings) do
          n = n + 1
          if f.severity ~= "ok" and not set[f.code] then set[f.code] = true; e.codes[f.code] = (e.codes[f.code] or 0) + 1 end
        end
      end
      e.findings[r.domain] = n
    end
  end
  return e
end

local function pat(s) return (s:gsub("%p", "%%%0")) end
local function attr_count(dom, id)
  return tonumber(dom:match('id="' .. pat(id) .. '"[^>]-data%-count="(%d+)"'))
end
local function text_of(dom, id)
  return dom:match('id="' .. pat(id) .. '"[^>]*>([^<]*)<')
end

describe("mxprobe report", function()
  local input, page, dom, dom_detail, dom_filter
  local want = expected(INPUT)

  setup(function()
    input = tmpfile(INPUT)
    local base = os.tmpname()
    os.remove(base)
    page = base .. ".html" -- the extension says it is HTML (file:// has no content type)
    local err = buffer()
    assert.equal(0, cli.main({ "report", input, "-o", page, "--title", "Spec portfolio" }, { stdout = buffer(), stderr = err }))
    assert.equal("", err:text())
    local url = "file://" .. page
    dom = chromium("--dump-dom " .. sh_quote(url))
    dom_detail = chromium("--dump-dom " .. sh_quote(url .. "#d/e.example"))
    dom_filter = chromium("--dump-dom " .. sh_quote(url .. "#q/code:cert_expiring"))
    chromium("--window-size=1400,2000 --screenshot=" .. sh_quote(SHOT) .. " " .. sh_quote(url))
    -- and one of a domain's findings, the panel over the page
    chromium("--window-size=1400,900 --screenshot=" .. sh_quote(SHOT:gsub("%.png$", "-detail.png")) .. " "
      .. sh_quote(url .. "#d/e.example"))
  end)
  teardown(function() os.remove(input); os.remove(page) end)

  it("is one file that needs nothing from elsewhere: no src, no link, no url(), no import", function()
    local html = slurp(page)
    assert.is_nil(html:find("<script src", 1, true))
    assert.is_nil(html:find("<link", 1, true))
    assert.is_nil(html:find("url(", 1, true))
    assert.is_nil(html:find("@import", 1, true))
    assert.is_nil(html:find('href="http', 1, true))
    assert.is_nil(html:find('src="', 1, true))
    assert.truthy(html:find("default-src 'none'", 1, true)) -- and the browser is told so
    -- a message cannot close the data's script element
    assert.is_nil(html:find("</script><b>", 1, true))
    assert.truthy(html:find("\\u003cb>3 days ago", 1, true)) -- every < of the data is \u003c
  end)

  it("renders in Chromium, and its script ran", function()
    assert.truthy(dom, "chromium did not run (scripts/install-deps installs it)")
    assert.matches('data%-ready="1"', dom)
  end)

  it("shows the verdict counts of the JSON Lines, as written and as the script counts its rows", function()
    assert.equal(want.total, attr_count(dom, "count-total"))
    assert.equal(9, want.total)
    assert.equal(tostring(want.total), text_of(dom, "js-total"))
    assert.equal(tostring(want.total), text_of(dom, "matching"))
    for v, n in pairs(want.verdicts) do
      assert.equal(n, attr_count(dom, "count-" .. v), v)
      assert.equal(tostring(n), text_of(dom, "js-" .. v), v)
    end
    -- the table shows every row (fewer than a page)
    local _, rows = dom:match('<table id="domains">(.-)</table>'):gsub("<tr>", "")
    assert.equal(want.total + 1, rows) -- and the header
  end)

  it("counts domains per code above ok, TLS versions, providers, certificate ends", function()
    for code, n in pairs(want.codes) do
      assert.equal(n, tonumber(dom:match('data%-code="' .. code .. '">(%d+)<')), code)
    end
    assert.equal(2, want.codes.CERT_EXPIRING) -- c (warning) and f (info: above ok)
    local tls = {}
    for v, n in dom:gmatch('data%-tls="([^"]+)">(%d+)<') do tls[v] = tonumber(n) end
    assert.same({ ["TLSv1.3"] = 3, ["TLSv1.2"] = 2, ["TLSv1.1"] = 0, ["TLSv1"] = 1, ["no TLS"] = 1, ["not tested"] = 2 }, tls)
    local bigmail = dom:match('<tr data%-provider="bigmail.example">(.-)</tr>')
    local nums = {}
    for n in bigmail:gmatch('class="num">(%d+)<') do nums[#nums + 1] = tonumber(n) end
    assert.same({ 3, 2, 1, 0, 0, 0 }, nums) -- domains, ok, warning, critical, inconclusive, no TLS
    -- g.example timed out: not "no TLS" (f.example answered without STARTTLS)
    nums = {}
    for n in dom:match('<tr data%-provider="other.example">(.-)</tr>'):gmatch('class="num">(%d+)<') do nums[#nums + 1] = tonumber(n) end
    assert.same({ 2, 0, 0, 1, 1, 1 }, nums)
    -- 6 distinct certificates (a and b share one): 12, 45 and 89 days ahead; one ended
    assert.equal(3, attr_count(dom, "cert-expiring"))
    assert.equal(1, attr_count(dom, "cert-expired"))
  end)

  it("shows the sender matrix when records have senders: kinds by the outcome for the domain", function()
    assert.equal(2, tonumber(dom:match('data%-sender="opportunistic" data%-outcome="encrypted">(%d+)<')))
    assert.equal(1, tonumber(dom:match('data%-sender="strict" data%-outcome="defers">(%d+)<')))
    assert.equal(1, tonumber(dom:match('data%-sender="strict" data%-outcome="authenticated">(%d+)<')))
    assert.equal(0, tonumber(dom:match('data%-sender="strict" data%-outcome="encrypted">(%d+)<')))
    -- kinds in the records' order, outcomes from best to worst
    local table_html = dom:match('<table id="senders%-table">(.-)</table>')
    assert.truthy(table_html:find("opportunistic.-strict"))
    assert.truthy(table_html:find("authenticated.-encrypted.-defers"))
  end)

  it("links each domain to its findings (#d/NAME)", function()
    assert.matches('href="#d/e.example"', dom)
    local box = dom_detail:match('<section id="detail"[^>]*>(.-)</section>')
    assert.truthy(box, "the detail section")
    local _, n = box:gsub('<tr class="finding">', "")
    assert.equal(want.findings["e.example"], n)
    assert.truthy(box:find("CERT_EXPIRED", 1, true))
    -- the message is text, not markup
    assert.truthy(box:find("ended &lt;/script&gt;&lt;b&gt;3 days ago&lt;/b&gt;", 1, true))
  end)

  it("filters the table (#q/code:...)", function()
    assert.equal(tostring(want.codes.CERT_EXPIRING), text_of(dom_filter, "matching"))
  end)

  it("takes a screenshot of the page", function()
    local png = slurp(SHOT)
    assert.equal("\137PNG\r\n\26\n", png:sub(1, 8))
    local w, h = string.unpack(">I4I4", png, 17)
    assert.equal(1400, w); assert.equal(2000, h)
    assert.truthy(#png > 20000, "a blank page compresses to almost nothing")
    png = slurp((SHOT:gsub("%.png$", "-detail.png")))
    assert.equal("\137PNG\r\n\26\n", png:sub(1, 8))
    assert.truthy(#png > 20000, "the detail screenshot is blank")
  end)

  it("pages through every domain, sorted (#t/KEY/DIR/PAGE), and filters across pages", function()
    local lines, names, per_provider = {}, {}, {}
    for i = 1, 250 do
      local name = ("p%03d.example"):format(i)
      local prov = ("prov%d.example"):format(i % 3)
      names[#names + 1] = name
      per_provider[prov] = (per_provider[prov] or 0) + 1
      lines[#lines + 1] = rec(name, { verdict = rh.VERDICTS[i % 4 + 1], tls = "TLSv1.3", days = i % 120,
                                      host = "mx." .. prov })
    end
    local p = tmpfile(table.concat(lines))
    local html = os.tmpname() .. ".html"
    assert.equal(0, cli.main({ "report", p, "-o", html }, { stdout = buffer(), stderr = buffer() }))
    local shown = {}
    for page = 1, 3 do
      local d = chromium("--dump-dom " .. sh_quote(("file://%s#t/0/1/%d"):format(html, page)))
      assert.truthy(d, "chromium did not run")
      assert.equal(("%d / 3"):format(page), text_of(d, "page"))
      local body = d:match('<table id="domains">(.-)</table>')
      for name in body:gmatch('href="#d/([^"]+)"') do shown[#shown + 1] = name end
    end
    table.sort(names)
    assert.same(names, shown) -- every domain once, in order, over the three pages
    local d = chromium("--dump-dom " .. sh_quote(("file://%s#q/provider:prov1.example"):format(html)))
    assert.equal(tostring(per_provider["prov1.example"]), text_of(d, "matching"))
    assert.equal("1 / 1", text_of(d, "page"))
    os.remove(p); os.remove(html)
  end)

  it("makes the same page from picked records as from records decoded whole by cjson", function()
    local extra = table.concat {
      '{"dom\\u0061in":"escaped-key.example","verdict":"warning","servers":[]}\n', -- a key with an escape
      '{"domain":"tab.example","verdict":"ok","findings":[{"code":"X_OK","severity":"ok","message":"raw\ttab"}]}\n',
      '{"domain":"nan.example","verdict":"critical","duration_s":NaN}\n', -- cjson takes NaN, pick leaves it to cjson
      '{"domain":"u.example","verdict":"critical","findings":[{"code":"Y","severity":"critical","message":"\\u00e9\\ud83d\\ude00 <b>"}]}\n',
    }
    local p = tmpfile(INPUT .. extra)
    local picked = assert(rh.aggregate(p))
    local whole = rh.new_agg()
    for line in (INPUT .. extra):gmatch("([^\n]*)\n") do
      if line:find("%S") then
        local ok, r = pcall(cjson.decode, line)
        if ok then rh.add(whole, r) else whole.unreadable = whole.unreadable + 1 end
      end
    end
    rh.finish(whole, p)
    assert.equal(13, picked.records)
    local o = { generated = 0 }
    assert.equal(rh.render(whole, o), rh.render(picked, o))
    os.remove(p)
  end)

  it("reads records across the blocks it reads (a line in several blocks, a cut last line)", function()
    local p = tmpfile(INPUT .. '{"domain":"cut.example"')
    local whole = assert(rh.aggregate(p))
    local saved = rh.BLOCK
    for _, size in ipairs { 1, 7, 100, 4096 } do
      rh.BLOCK = size
      local ok, a = pcall(rh.aggregate, p)
      rh.BLOCK = saved
      assert.is_true(ok, a)
      assert.same({ whole.records, whole.duplicates, whole.unreadable, whole.partial, whole.verdicts },
                  { a.records, a.duplicates, a.unreadable, a.partial, a.verdicts }, "block of " .. size)
      local o = { generated = 0 }
      assert.equal(rh.render(whole, o), rh.render(a, o), "block of " .. size)
    end
    assert.equal(9, whole.records); assert.equal(1, whole.partial); assert.equal(1, whole.unreadable)
    os.remove(p)
  end)

  it("takes the parts of a sharded audit: every part's records, a domain once", function()
    local p1 = tmpfile(rec("a.example", { tls = "TLSv1.3" }) .. rec("b.example", { verdict = "critical" }))
    local p2 = tmpfile(rec("c.example", { verdict = "warning" }) .. rec("a.example", { verdict = "critical" }) .. '{"domain":')
    local a = assert(rh.aggregate({ p1, p2 }))
    assert.equal(3, a.records); assert.equal(1, a.duplicates); assert.equal(1, a.partial)
    assert.same({ ok = 1, warning = 1, critical = 1, inconclusive = 0 }, a.verdicts)
    local out = os.tmpname()
    assert.equal(0, cli.main({ "report", p1, p2, "-o", out }, { stdout = buffer(), stderr = buffer() }))
    assert.truthy(slurp(out):find('id="count-total" data-count="3"', 1, true))
    os.remove(p1); os.remove(p2); os.remove(out)
  end)

  it("leaves the sender section out when no record has senders", function()
    local p = tmpfile(rec("a.example", { tls = "TLSv1.3" }))
    local html = rh.render(assert(rh.aggregate(p)))
    assert.is_nil(html:find('id="senders"', 1, true))
    os.remove(p)
  end)

  it("refuses an input without records, and an unreadable one, precisely", function()
    local p = tmpfile("junk\n")
    local err = buffer()
    assert.equal(3, cli.main({ "report", p, "-o", "/dev/null" }, { stdout = buffer(), stderr = err }))
    assert.equal(("mxprobe: report: '%s' has no audit records (1 lines that are not records)\n"):format(p), err:text())
    err = buffer()
    assert.equal(3, cli.main({ "report", "/nonexistent.jsonl" }, { stdout = buffer(), stderr = err }))
    assert.equal("mxprobe: report: cannot read '/nonexistent.jsonl': No such file or directory\n", err:text())
    err = buffer()
    assert.equal(3, cli.main({ "report", input, "-o", "/nonexistent/dir/r.html" }, { stdout = buffer(), stderr = err }))
    assert.equal("mxprobe: report: cannot write '/nonexistent/dir/r.html': No such file or directory\n", err:text())
    os.remove(p)
  end)
end)
