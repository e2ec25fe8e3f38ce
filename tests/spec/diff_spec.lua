-- mxprobe diff OLD.jsonl NEW.jsonl (mxprobe.app.diff) on small hand-made
-- pairs of audit outputs: what counts as a change and what does not.
local cjson = require "cjson"
local diff = require "mxprobe.app.diff"
local cli = require "mxprobe.app.cli"

local function tmpfile(content)
  local p = os.tmpname()
  local f = assert(io.open(p, "wb")); f:write(content or ""); f:close()
  return p
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

-- A record: o.verdict, o.codes { {code, severity, evidence} }, o.mx { "10 host" },
-- o.cert = { fp, not_after, days_left }, o.tls = "TLSv1.3", o.duration
local function rec(domain, o)
  o = o or {}
  local findings = { { code = "CONNECT_OK", severity = "ok", check = "connect", message = "open (0.01 s)",
                       evidence = { seconds = o.duration or 0.01 } } }
  for _, c in ipairs(o.codes or {}) do
    findings[#findings + 1] = { code = c[1], severity = c[2], check = "x", message = "m " .. tostring(o.duration),
                                evidence = c[3] or {} }
  end
  local mx, servers = {}, {}
  for _, m in ipairs(o.mx or { "10 mx." .. domain }) do
    local pref, host = m:match("^(%d+) (.*)$")
    mx[#mx + 1] = { preference = tonumber(pref), host = host, addresses = { "192.0.2.10" } }
    local facts = { connect = { state = "connected", seconds = o.duration or 0.01 } }
    if o.cert then
      facts.certificate = { fingerprint_sha256 = o.cert[1], not_after = o.cert[2], days_left = o.cert[3] }
    end
    if o.tls then facts.starttls = { version = o.tls, offered = true } end
    servers[#servers + 1] = { host = host, address = "192.0.2.10", facts = facts, findings = findings,
                              score = 100, grade = "A" }
  end
  local r = { schema = 1, domain = domain, verdict = o.verdict or "ok", duration_s = o.duration or 0.1,
              started = o.started or "2026-11-28T09:00:00Z", dns = { mx = mx, findings = {} },
              servers = servers, findings = {}, error = o.error, provenance = o.provenance }
  return cjson.encode(r) .. "\n"
end

local function pair(old, new)
  return tmpfile(table.concat(old)), tmpfile(table.concat(new))
end

local function compare(old, new, opts)
  local a, b = pair(old, new)
  local d = assert(diff.compare(a, b, opts))
  os.remove(a); os.remove(b)
  return d
end

local T0 = 1796000000

describe("mxprobe diff", function()
  it("reports nothing when only timings, messages and evidence values differ", function()
    local d = compare(
      { rec("a.test", { duration = 0.01, codes = { { "BANNER_SLOW", "warning", { seconds = 12 } } }, verdict = "warning",
                        cert = { "AA", T0, 40 }, tls = "TLSv1.3", started = "2026-11-01T00:00:00Z" }) },
      { rec("a.test", { duration = 9.99, codes = { { "BANNER_SLOW", "warning", { seconds = 31 } } }, verdict = "warning",
                        cert = { "AA", T0, 33 }, tls = "TLSv1.3", started = "2026-11-08T00:00:00Z" }) })
    assert.same({}, d.changed)
    assert.equal(1, d.unchanged)
    assert.same({}, d.only_old); assert.same({}, d.only_new)
  end)

  it("reports the verdict and codes added, removed and judged at another severity", function()
    local d = compare(
      { rec("a.test", { verdict = "warning", codes = { { "CERT_EXPIRING", "warning" }, { "BANNER_SLOW", "info" } } }) },
      { rec("a.test", { verdict = "critical", codes = { { "CERT_EXPIRED", "critical" }, { "BANNER_SLOW", "warning" } } }) })
    assert.equal(1, #d.changed)
    local c = d.changed[1]
    assert.same({ from = "warning", to = "critical" }, c.verdict)
    assert.same({ { code = "CERT_EXPIRED", severity = "critical" } }, c.codes_added)
    assert.same({ { code = "CERT_EXPIRING", severity = "warning" } }, c.codes_removed)
    assert.same({ { code = "BANNER_SLOW", from = "info", to = "warning" } }, c.severity_changed)
  end)

  it("reports a renewed certificate, one that starts to expire, and one that expired", function()
    local d = compare(
      { rec("renew.test", { cert = { "AA", T0, 5 } }), rec("soon.test", { cert = { "BB", T0, 45 } }),
        rec("gone.test", { cert = { "CC", T0, 3 } }), rec("still.test", { cert = { "DD", T0, 20 } }) },
      { rec("renew.test", { cert = { "A2", T0 + 90 * 86400, 95 } }), rec("soon.test", { cert = { "BB", T0, 25 } }),
        rec("gone.test", { cert = { "CC", T0, -1 } }), rec("still.test", { cert = { "DD", T0, 13 } }) })
    local by = {}
    for _, c in ipairs(d.changed) do by[c.domain] = c end
    assert.equal("renewed", by["renew.test"].certificates[1].change)
    assert.equal(T0, by["renew.test"].certificates[1].from.not_after)
    assert.equal(T0 + 90 * 86400, by["renew.test"].certificates[1].to.not_after)
    assert.equal("expiring", by["soon.test"].certificates[1].change)
    assert.equal("expired", by["gone.test"].certificates[1].change)
    assert.is_nil(by["still.test"]) -- already inside the window last time: counting down is no change
    local text = diff.text(d)
    assert.matches("certificate of mx.soon.test expiring: ends %d+%-%d+%-%d+ %(25 days left%)", text)
    assert.matches("certificate of mx.renew.test renewed: ends 2026%-11%-30 %-> 2027%-02%-28", text)
    -- the window is an option
    d = compare({ rec("soon.test", { cert = { "BB", T0, 45 } }) }, { rec("soon.test", { cert = { "BB", T0, 25 } }) },
                { expiring_days = 10 })
    assert.same({}, d.changed)
  end)

  it("reports TLS versions and MX hosts added and removed", function()
    local d = compare(
      { rec("a.test", { tls = "TLSv1", mx = { "10 mx1.test", "20 mx2.test" } }), rec("b.test", { tls = "TLSv1.3" }) },
      { rec("a.test", { tls = "TLSv1.3", mx = { "10 mx1.test", "30 mx3.test" } }), rec("b.test", {}) })
    local a, b = d.changed[1], d.changed[2]
    assert.equal("a.test", a.domain)
    assert.same({ { host = "mx1.test", from = "TLSv1", to = "TLSv1.3" } }, a.tls) -- mx2 and mx3: MX changes only
    assert.same({ "30 mx3.test" }, a.mx_added)
    assert.same({ "20 mx2.test" }, a.mx_removed)
    assert.same({ { host = "mx.b.test", from = "TLSv1.3" } }, b.tls) -- STARTTLS lost
  end)

  it("lists the domains only in one file, and errors that came or went", function()
    local d = compare({ rec("a.test"), rec("old.test"), rec("e.test") },
                      { rec("a.test"), rec("new1.test"), rec("new0.test"), rec("e.test", { error = "internal error: x" }) })
    assert.same({ "old.test" }, d.only_old)
    assert.same({ "new0.test", "new1.test" }, d.only_new)
    assert.same({ to = "internal error: x" }, d.changed[1].error)
  end)

  it("says when the two audits were made differently (another policy digest)", function()
    local p1 = { mxprobe = "1.0", ehlo = "x.test", policy = { name = "default", sha256 = "aaa" } }
    local p2 = { mxprobe = "1.0", ehlo = "x.test", policy = { name = "strict", sha256 = "bbb" } }
    local d = compare({ rec("a.test", { provenance = p1 }) }, { rec("a.test", { provenance = p2 }) })
    assert.same({ { what = "policy", from = "default", to = "strict" }, { what = "policy sha256", from = "aaa", to = "bbb" } },
                d.provenance)
  end)

  it("as a command: text by default, one JSON document with --json; exit 0 same, 1 changed, 3 trouble", function()
    local a, b = pair({ rec("a.test"), rec("x.test", { verdict = "warning", codes = { { "CERT_EXPIRING", "warning" } } }) },
                      { rec("a.test"), rec("x.test", { verdict = "critical", codes = { { "CERT_EXPIRED", "critical" } } }),
                        rec("y.test") })
    local out, err = buffer(), buffer()
    assert.equal(1, cli.main({ "diff", a, b }, { stdout = out, stderr = err }))
    assert.equal("", err:text())
    local t = out:text()
    assert.matches("2 domains in both, 1 changed, 1 unchanged; 0 only in the old, 1 only in the new", t, 1, true)
    assert.matches("\nx.test: verdict warning -> critical\n  + CERT_EXPIRED (critical)\n  - CERT_EXPIRING (warning)\n", t, 1, true)
    assert.matches("only in " .. b .. " (1):\n  y.test\n", t, 1, true)
    out = buffer()
    assert.equal(1, cli.main({ "diff", "--json", a, b }, { stdout = out, stderr = err }))
    local j = cjson.decode(out:text())
    assert.equal("mxprobe-diff", j.kind); assert.equal(1, j.schema)
    assert.equal("x.test", j.changed[1].domain)
    assert.same({ "y.test" }, j.only_new)
    assert.same({}, j.only_old) -- an empty list is [], not {}
    assert.matches('"only_old":[]', out:text(), 1, true)
    assert.equal(0, cli.main({ "diff", a, a }, { stdout = buffer(), stderr = err }))
    err = buffer()
    assert.equal(3, cli.main({ "diff", a, "/nonexistent/b.jsonl" }, { stdout = buffer(), stderr = err }))
    assert.equal("mxprobe: diff: cannot read '/nonexistent/b.jsonl': No such file or directory\n", err:text())
    err = buffer()
    assert.equal(3, cli.main({ "diff", a }, { stdout = buffer(), stderr = err }))
    assert.matches("missing argument 'new'", err:text(), 1, true)
    err = buffer()
    assert.equal(3, cli.main({ "diff", a, b, "--expiring-days", "soon" }, { stdout = buffer(), stderr = err }))
    assert.equal("mxprobe: diff: --expiring-days: 'soon' is not a whole number of days from 0 to 3650\n", err:text())
    os.remove(a); os.remove(b)
  end)

  it("counts lines that are not records and domains written twice (the last one counts)", function()
    local d = compare({ rec("a.test", { verdict = "critical" }), "garbage\n", rec("a.test", { verdict = "ok" }) },
                      { rec("a.test", { verdict = "ok" }) })
    assert.same({}, d.changed)
    assert.equal(1, d.old.unreadable); assert.equal(1, d.old.duplicates)
    assert.matches("1 lines that are not records, 1 domains recorded twice", diff.text(d), 1, true)
  end)
end)
