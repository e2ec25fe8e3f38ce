-- --format nagios and --format openmetrics against the test world, the
-- command line run in-process (mxprobe.app.cli) inside the lab's namespace.
-- nagios is compared with check_smtp from monitoring-plugins-basic, run
-- against the same lab servers: the same status words, " - " separator,
-- performance data after "|" in the guidelines' syntax, and the same exit
-- status for the same situation.  openmetrics is validated by promtool
-- (Debian prometheus).  scripts/install-deps --monitoring installs both
-- (scripts/run-tests runs it before entering the namespace).
local cli = require "mxprobe.app.cli"
local loop = require "mxprobe.runtime.loop"

local world = dofile("tests/lab/world.lua")
local state = os.getenv("MXLAB_STATE") or world.state_dir
local CHECK_SMTP = "/usr/lib/nagios/plugins/check_smtp"

local function buffer()
  local b = { parts = {} }
  function b:write(...)
    for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring((select(i, ...))) end
    return self
  end
  function b:text() return table.concat(self.parts) end
  return b
end

local function mxprobe(args)
  local argv = { "--resolver", world.resolver, "--ca-file", state .. "/ca/ca.pem", "--allow-reserved", "documentation",
                 "--timeout-greeting", "10" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local out, err = buffer(), buffer()
  local code = cli.main(argv, { stdout = out, stderr = err })
  return code, out:text(), err:text()
end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

-- A plugin's output by the guidelines: "[SERVICE ]STATUS - text|perfdata"
-- then long lines; each perfdata item 'label'=value[UOM];[warn];[crit];[min];[max].
local STATUS = { OK = 0, WARNING = 1, CRITICAL = 2, UNKNOWN = 3 }
local function parse_plugin(s)
  local first = s:match("^[^\n]*")
  local head, perf = first:match("^(.-)|(.*)$")
  head = head or first
  local service, status, text = head:match("^(%u+) (%u+) %- (.*)$")
  if not STATUS[status or ""] then service, status, text = nil, head:match("^(%u+) %- (.*)$") end
  if not STATUS[status or ""] then return nil, "no status word in " .. first end
  local items = {}
  for item in (perf or ""):gmatch("%S+") do
    local label, value, uom, rest = item:match("^'?([^'=]+)'?=(%-?[%d.]+)([%a%%]*);?(.*)$")
    if not label then return nil, "bad performance data item " .. item end
    local th = {}
    for f in (rest .. ";"):gmatch("([^;]*);") do th[#th + 1] = f end
    for _, f in ipairs(th) do
      if f ~= "" and not tonumber(f) then return nil, "bad threshold in " .. item end
    end
    items[#items + 1] = { label = label, value = tonumber(value), uom = uom, warn = th[1], crit = th[2], min = th[3], max = th[4] }
  end
  return { service = service, status = status, text = text, perf = items }
end

local function perf(p, label)
  for _, i in ipairs(p.perf) do if i.label == label then return i end end
end

describe("--format nagios, next to check_smtp", function()
  setup(function()
    assert(os.execute("scripts/install-deps --monitoring >/dev/null"), "scripts/install-deps --monitoring failed")
    assert(io.open(CHECK_SMTP, "r"), CHECK_SMTP .. " is missing (monitoring-plugins-basic)"):close()
  end)

  it("a good server: OK, exit 0, the response time as check_smtp gives it", function()
    local ccode, cout = sh(CHECK_SMTP .. " -H 192.0.2.10")
    local c = assert(parse_plugin(cout))
    assert.equal("SMTP", c.service)
    assert.equal("OK", c.status)
    assert.equal(0, ccode)
    assert.equal("s", perf(c, "time").uom)

    local code, out, err = mxprobe({ "--format", "nagios", "good.lab.test" })
    assert.equal("", err)
    local m = assert(parse_plugin(out))
    assert.equal("MXPROBE", m.service)
    assert.equal("OK", m.status)
    assert.equal(0, code)
    assert.matches("^good%.lab%.test: ", m.text)
    local t = assert(perf(m, "mx1_time"))
    assert.equal("s", t.uom)      -- seconds, as check_smtp's time
    assert.equal("0", t.min)      -- ;;;0 as check_smtp
    assert.truthy(t.value < 1)
    assert.equal(1.3, perf(m, "mx1_tls_version").value)
    assert.equal(100, perf(m, "mx1_score").value)
    assert.equal("100", perf(m, "mx1_score").max)
    assert.truthy(perf(m, "mx1_cert_days").value > 300)
    assert.truthy(perf(m, "time"))
    -- the long output: one line per server
    assert.matches("\nmx1 good%.mx%.lab%.test 192%.0%.2%.10:25: score 100, TLSv1%.3, certificate %d+ days\n$", out)
  end)

  it("an expiring certificate: -w/-c as check_smtp's -D warn,crit", function()
    local ccode, cout = sh(CHECK_SMTP .. " -H 198.51.100.26 -S -D 30,5")
    local c = assert(parse_plugin(cout))
    assert.equal("WARNING", c.status)
    assert.equal(1, ccode)
    local code, out = mxprobe({ "--format", "nagios", "-w", "30", "-c", "5", "expiring.lab.test" })
    local m = assert(parse_plugin(out))
    assert.equal("WARNING", m.status)
    assert.equal(1, code)
    local d = assert(perf(m, "mx1_cert_days"))
    assert.equal("30", d.warn)
    assert.equal("5", d.crit)
    assert.truthy(d.value >= 8 and d.value <= 10, tostring(d.value))

    -- a critical threshold above the days left: CRITICAL, and it says why
    ccode, cout = sh(CHECK_SMTP .. " -H 198.51.100.26 -S -D 30,20")
    assert.equal("CRITICAL", assert(parse_plugin(cout)).status)
    assert.equal(2, ccode)
    code, out = mxprobe({ "--format", "nagios", "-w", "30", "-c", "20", "expiring.lab.test" })
    m = assert(parse_plugin(out))
    assert.equal("CRITICAL", m.status)
    assert.equal(2, code)
    assert.matches("expires in %d+ days %(%-c 20%)", m.text)
  end)

  it("nothing listens: CRITICAL, exit 2, as check_smtp", function()
    local ccode, cout = sh(CHECK_SMTP .. " -H 203.0.113.97")
    assert.equal(2, ccode)
    assert.equal("CRITICAL", assert(parse_plugin(cout:match("[^\n]*\n?$"))).status) -- after its "connect to ..." line
    local code, out = mxprobe({ "--format", "nagios", "refused.lab.test" })
    local m = assert(parse_plugin(out))
    assert.equal("CRITICAL", m.status)
    assert.equal(2, code)
    -- the sender matrix's reason decides: what senders do, and why
    assert.matches("SENDERS_OPPORTUNISTIC_FAIL: Opportunistic senders (most MTAs) defer mail to refused.lab.test (refused.mx.lab.test: connection refused)", m.text, 1, true)
    assert.is_nil(perf(m, "mx1_time")) -- no response time for a server that did not answer
  end)

  it("-t: a server that drops packets makes the run UNKNOWN at the deadline, exit 3", function()
    local t0 = loop.now()
    local code, out = mxprobe({ "--format", "nagios", "-t", "1", "--timeout-connect", "30", "timeout.lab.test" })
    local took = loop.now() - t0
    local m = assert(parse_plugin(out))
    assert.equal("UNKNOWN", m.status)
    assert.equal(3, code)
    assert.matches("timed out after 1 s %(%-t%)", m.text)
    assert.truthy(took < 3, ("took %.1f s"):format(took))
  end)
end)

describe("--format openmetrics", function()
  setup(function()
    assert(os.execute("scripts/install-deps --monitoring >/dev/null"), "scripts/install-deps --monitoring failed")
  end)

  local function promtool(text)
    local tmp = os.tmpname()
    local f = assert(io.open(tmp, "w")); f:write(text); f:close()
    local code, out = sh("promtool check metrics < " .. tmp)
    os.remove(tmp)
    return code, out
  end

  it("passes promtool check metrics for several domains, and has what an alert needs", function()
    local code, out, err = mxprobe({ "--format", "openmetrics", "good.lab.test", "expiring.lab.test",
                                     "no-starttls.lab.test", "refused.lab.test", "two-mx.lab.test" })
    assert.equal("", err)
    assert.equal(2, code) -- the worst verdict, as for the other formats
    local pcode, pout = promtool(out)
    assert.equal("", pout)
    assert.equal(0, pcode)
    assert.matches("\n# EOF\n$", out)
    assert.matches('\nmxprobe_domain_verdict{domain="expiring.lab.test",verdict="warning"} 1\n', out, 1, true)
    assert.matches('\nmxprobe_domain_verdict{domain="good.lab.test",verdict="ok"} 1\n', out, 1, true)
    assert.matches('\nmxprobe_server_tls_version_info{domain="no-starttls.lab.test",mx="no-starttls.mx.lab.test",address="198.51.100.23",port="25",version="none"} 1\n', out, 1, true)
    local expiry = tonumber(out:match('\nmxprobe_server_certificate_expiry_timestamp_seconds{domain="expiring.lab.test"[^}]*} (%d+)\n'))
    assert.truthy(expiry, "no expiry timestamp for expiring.lab.test")
    local days = (expiry - os.time()) / 86400
    assert.truthy(days > 8 and days < 11, tostring(days))
    -- one family per name: two-mx's servers are in the same family as the others'
    local _, types = out:gsub("\n# TYPE mxprobe_server_score gauge\n", "")
    assert.equal(1, types)
  end)

  it("promtool is a real judge: it rejects a family written twice", function()
    local code, out = mxprobe({ "--format", "openmetrics", "good.lab.test" })
    assert.equal(0, code)
    local pcode, pout = promtool(out:gsub("# EOF\n$", "") .. out)
    assert.not_equal(0, pcode)
    assert.matches("second HELP line", pout, 1, true)
  end)
end)
