-- Messages say what happened (issue 12 item 5): every lab scenario through
-- the stock checks, then each finding's message is held against the
-- server's transcript:
--   * every SMTP command its message template names was sent (a message
--     that says "Neither EHLO nor HELO was accepted" needs a HELO on the
--     wire), apart from the mentions that say a command was not sent or
--     not offered (listed below, with the reason);
--   * a reply code it quotes ({code}) is one the server sent;
--   * a reply text it quotes ({text}) is in a line the server sent.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"

local world = dofile("tests/lab/world.lua")
local state = os.getenv("MXLAB_STATE") or world.state_dir

local VERBS = { "EHLO", "HELO", "MAIL FROM", "RCPT TO", "STARTTLS", "RSET", "VRFY", "DATA", "QUIT" }

-- code -> verbs its template names without claiming they were sent
local NOT_SENT = {
  STARTTLS_NOT_OFFERED = { STARTTLS = "not offered, so never sent" },
  EHLO_HELO_ONLY = { STARTTLS = "\"no STARTTLS\": the consequence, not a command sent" },
  EHLO_AUTH_BEFORE_TLS = { STARTTLS = "\"before STARTTLS\": offered before it, whether sent or not" },
  SMTP_UNSOLICITED_REPLY = { EHLO = "\"before {before} was sent\"", ["RCPT TO"] = "idem", ["MAIL FROM"] = "idem" },
}

local run = engine.new {
  config = {
    resolvers = { world.resolver }, ca_file = state .. "/ca/ca.pem", allow_reserved = { "documentation" },
    timeouts = { connect = 5, greeting = 40, command = 10, tls = 10, dns = 3 },
  },
}

local results = {}
do
  local tasks = {}
  for _, d in ipairs(world.domains) do
    tasks[d.name] = loop.spawn(function() return run:check_domain(d.name) end)
  end
  for name, t in pairs(tasks) do
    local r, code, detail = loop.join(t)
    results[name] = r or { error = tostring(code) .. ": " .. tostring(detail) }
  end
end

local catalog = engine.catalog(run)

local function sent_verbs(transcript)
  local set = {}
  for _, e in ipairs(transcript) do
    if e.dir == ">" then
      for _, v in ipairs(VERBS) do
        if e.text:upper():sub(1, #v) == v then set[v] = true end
      end
    end
  end
  return set
end

local function received(transcript)
  local lines = {}
  for _, e in ipairs(transcript) do if e.dir == "<" then lines[#lines + 1] = e.text end end
  return lines
end

-- The problems with one finding of one server, as strings.
local function problems(f, transcript)
  local out = {}
  local template = (catalog[f.code] or {}).message or ""
  local bare = template:gsub("{[%w_]+}", "")
  local sent = sent_verbs(transcript)
  for _, v in ipairs(VERBS) do
    local pat = "%f[%w]" .. v:gsub(" ", "%%s") .. "%f[^%w]"
    if bare:find(pat) and not sent[v] and not (NOT_SENT[f.code] or {})[v] then
      out[#out + 1] = ("%s names %s, which was never sent: %s"):format(f.code, v, f.message)
    end
  end
  local lines = received(transcript)
  local ev = f.evidence or {}
  if template:find("{code}", 1, true) and math.type(ev.code) == "integer" then
    local seen = false
    for _, l in ipairs(lines) do if l:sub(1, 3) == tostring(ev.code) then seen = true end end
    if not seen then out[#out + 1] = ("%s quotes reply code %d, which the server never sent: %s"):format(f.code, ev.code, f.message) end
  end
  if template:find("{text}", 1, true) and type(ev.text) == "string" and ev.text ~= "" then
    local head = ev.text:match("^(.-) / ") or ev.text
    head = head:sub(1, 40)
    local seen = false
    for _, l in ipairs(lines) do if l:find(head, 1, true) then seen = true end end
    if not seen then out[#out + 1] = ("%s quotes %q, which is in no line the server sent"):format(f.code, head) end
  end
  return out
end

describe("every lab finding agrees with its transcript", function()
  for _, d in ipairs(world.domains) do
    it(d.name, function()
      local r = results[d.name]
      assert.is_nil(r.error)
      local all = {}
      for _, s in ipairs(r.servers) do
        for _, f in ipairs(s.findings) do
          for _, p in ipairs(problems(f, s.transcript)) do all[#all + 1] = ("%s %s"):format(s.address, p) end
        end
      end
      assert.same({}, all)
    end)
  end

  it("would catch a message that names a command never sent", function()
    -- the check itself can fail: EHLO_FAILED with no HELO on the wire
    local f = { code = "EHLO_FAILED", message = "Neither EHLO nor HELO was accepted (limit ...)", evidence = {} }
    local p = problems(f, { { dir = ">", text = "EHLO probe.test" } })
    assert.equal(1, #p)
    assert.matches("names HELO", p[1], 1, true)
    local q = problems({ code = "RELAY_DENIED", message = "x", evidence = { code = 554, text = "nope", to = "a@b" } },
      { { dir = ">", text = "MAIL FROM:<a@b>" }, { dir = ">", text = "RCPT TO:<a@b>" }, { dir = "<", text = "550 no" } })
    assert.equal(2, #q) -- 554 never sent, "nope" in no line
  end)

  it("ehlo-flood: the EHLO reply over 100 lines is said as such, and no HELO was sent", function()
    local s = results["ehlo-flood.lab.test"].servers[1]
    local msg
    for _, f in ipairs(s.findings) do if f.code == "EHLO_UNREADABLE" then msg = f.message end end
    assert.equal("The reply to EHLO could not be read: EHLO reply exceeded 100 lines", msg)
    assert.is_nil(sent_verbs(s.transcript).HELO)
  end)

  it("long-greeting: the length quoted is the greeting line's real length", function()
    local s = results["long-greeting.lab.test"].servers[1]
    local f
    for _, x in ipairs(s.findings) do if x.code == "SMTP_LINE_TOO_LONG" then f = x end end
    -- "220 long-greeting.mx.lab.test ESMTP " + 700 KiB of x + CRLF (tests/lab/fakesmtp.py)
    assert.equal(#"220 long-greeting.mx.lab.test ESMTP " + 700 * 1024 + 2, f.evidence.length)
    assert.truthy(s.facts.relay and s.facts.relay.verdict == "denied")
  end)
end)
