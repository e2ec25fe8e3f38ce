-- --submission, --implicit-tls and --source against the lab's Postfix
-- submission services (tests/lab/postfix.sh: good has 587 with STARTTLS
-- required and 465 with implicit TLS; no-starttls offers AUTH in
-- plaintext on 587; open-relay takes mail without AUTH on 587).  The
-- command line runs in-process with --json, inside the lab's namespace.
local cjson = require "cjson"
local cli = require "mxprobe.app.cli"

local world = dofile("tests/lab/world.lua")
local state = os.getenv("MXLAB_STATE") or world.state_dir

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
  local argv = { "--json", "--resolver", world.resolver, "--ca-file", state .. "/ca/ca.pem", "--allow-reserved", "documentation",
                 "--timeout-greeting", "10" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local out, err = buffer(), buffer()
  local code = cli.main(argv, { stdout = out, stderr = err })
  local results = {}
  for line in out:text():gmatch("[^\n]+") do results[#results + 1] = cjson.decode(line) end
  return code, results, err:text()
end

local function codes(server)
  local set = {}
  for _, f in ipairs(server.findings) do set[f.code] = f.severity end
  return set
end

describe("--submission (port 587)", function()
  it("a good submission service: STARTTLS, AUTH only inside TLS, MAIL without AUTH refused; no relay probe", function()
    local code, r, err = mxprobe({ "--submission", "good.lab.test" })
    assert.equal("", err)
    assert.equal(0, code)
    local s = r[1].servers[1]
    assert.equal(587, s.port)
    local c = codes(s)
    assert.equal("ok", c.SUBMISSION_AUTH_OK)
    assert.equal("ok", c.SUBMISSION_UNAUTH_REFUSED)
    assert.equal("ok", c.TLS_VERSION_13)
    assert.equal("ok", c.CERT_OK)
    assert.is_nil(c.RELAY_DENIED)          -- the relay probe does not run
    assert.is_nil(c.TLS_EHLO_CHANGED)      -- AUTH appearing inside TLS is the point here
    assert.is_nil(c.EHLO_AUTH_BEFORE_TLS)
    assert.same({ "PLAIN", "LOGIN" }, s.facts.submission_auth.inside_tls)
    assert.same({}, s.facts.submission_auth.before_tls)
    assert.is_true(s.facts.submission_unauth.tls)
    assert.equal("refused", s.facts.submission_unauth.verdict)
    -- Postfix's answer to a stranger on its submission port
    assert.equal(554, s.facts.submission_unauth.code)
    assert.equal("RCPT TO", s.facts.submission_unauth.stage)
    -- never DATA
    for _, l in ipairs(s.transcript) do assert.not_matches("^DATA", l.text) end
  end)

  it("AUTH before STARTTLS (and no STARTTLS at all): critical, both said", function()
    local code, r = mxprobe({ "--submission", "no-starttls.lab.test" })
    assert.equal(2, code)
    local c = codes(r[1].servers[1])
    assert.equal("critical", c.SUBMISSION_AUTH_BEFORE_TLS)
    assert.equal("critical", c.STARTTLS_NOT_OFFERED)
    assert.same({ "PLAIN", "LOGIN" }, r[1].servers[1].facts.submission_auth.before_tls)
  end)

  it("mail accepted without AUTH: critical SUBMISSION_UNAUTH_ACCEPTED, then RSET", function()
    local code, r = mxprobe({ "--submission", "open-relay.lab.test" })
    assert.equal(2, code)
    local s = r[1].servers[1]
    assert.equal("critical", codes(s).SUBMISSION_UNAUTH_ACCEPTED)
    assert.equal("SUBMISSION_UNAUTH_ACCEPTED", r[1].decided_by.code)
    local sent = {}
    for _, l in ipairs(s.transcript) do if l.dir == ">" then sent[#sent + 1] = l.text:match("^%S+") end end
    assert.matches("MAIL RCPT RSET", table.concat(sent, " "), 1, true)
    for _, v in ipairs(sent) do assert.not_equal("DATA", v) end
  end)

  it("a server without a submission service: refused on 587", function()
    local code, r = mxprobe({ "--submission", "expired.lab.test" })
    assert.equal(2, code)
    assert.equal("critical", codes(r[1].servers[1]).CONNECT_REFUSED)
  end)
end)

describe("--implicit-tls (port 465)", function()
  it("TLS before the greeting: version and certificate judged, the banner read inside TLS", function()
    local code, r, err = mxprobe({ "--implicit-tls", "--submission", "good.lab.test" })
    assert.equal("", err)
    assert.equal(0, code)
    local s = r[1].servers[1]
    assert.equal(465, s.port)
    local c = codes(s)
    assert.equal("ok", c.CONNECT_OK)
    assert.equal("ok", c.TLS_VERSION_13)
    assert.equal("ok", c.CERT_OK)
    assert.equal("ok", c.SUBMISSION_AUTH_OK)
    assert.equal("ok", c.SUBMISSION_UNAUTH_REFUSED)
    assert.is_nil(c.STARTTLS_INJECTION_SAFE) -- no STARTTLS to inject after
    assert.is_true(s.facts.starttls.implicit)
    assert.equal("good.mx.lab.test ESMTP mxlab-good", s.facts.banner.text)
    -- the transcript says TLS came first, and no STARTTLS was sent
    assert.matches("before the greeting", s.transcript[2].text, 1, true)
    for _, l in ipairs(s.transcript) do assert.not_equal("STARTTLS", l.text) end
  end)

  it("a plaintext port: CONNECT_TLS_FAILED says the server speaks plaintext", function()
    local code, r = mxprobe({ "--implicit-tls", "--port", "25", "good.lab.test" })
    assert.equal(2, code)
    local f
    for _, x in ipairs(r[1].servers[1].findings) do if x.code == "CONNECT_TLS_FAILED" then f = x end end
    assert.truthy(f)
    -- the greeting arrived before the handshake started, or OpenSSL read it as a bad record
    assert.matches("the server speaks plaintext, not TLS", f.message, 1, true)
  end)
end)

describe("--source", function()
  local function clients(id)
    local seen = {}
    local f = io.open(state .. "/postfix/" .. id .. "/maillog", "r")
    if not f then return seen end
    for line in f:lines() do
      local ip = line:match("connect from [^%[]*%[([%d.]+)%]")
      if ip then seen[ip] = (seen[ip] or 0) + 1 end
    end
    f:close()
    return seen
  end

  it("connects from the given local address: Postfix logs it as the client", function()
    local before = clients("good")["192.0.2.53"] or 0
    local code, r = mxprobe({ "--source", "192.0.2.53", "good.lab.test" })
    assert.equal(0, code)
    assert.equal("ok", codes(r[1].servers[1]).CONNECT_OK)
    -- maillog is written by postlogd: give it a moment
    local after
    for _ = 1, 20 do
      after = clients("good")["192.0.2.53"] or 0
      if after > before then break end
      os.execute("sleep 0.1")
    end
    assert.truthy(after > before, "Postfix saw no client 192.0.2.53")
  end)

  it("an address that is not this machine's: inconclusive, naming it", function()
    local code, r = mxprobe({ "--source", "192.0.2.201", "good.lab.test" })
    assert.equal(3, code)
    local f = r[1].servers[1].findings[1]
    assert.equal("CONNECT_SOURCE", f.code)
    assert.matches("192.0.2.201", f.message, 1, true)
  end)

  it("one family given: only that family is tested", function()
    local _, r = mxprobe({ "--source", "192.0.2.53", "dual.lab.test" })
    for _, s in ipairs(r[1].servers) do assert.equal(4, s.family) end
  end)
end)
