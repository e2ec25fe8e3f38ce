-- core.smtp.read_reply / escape, mxprobe.net.socket:receive_reply and the
-- mxprobe.smtp.session (the SMTP session the checks use), against the scripted server (loopback only).
local loop = require "mxprobe.runtime.loop"
local socket = require "mxprobe.net.socket"
local session = require "mxprobe.smtp.session"
local core = require "mxprobe.core"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/spec"
local fake = dofile(here .. "/../helpers/fake_smtp.lua")

-- connect to a server playing script; returns the socket and the server
local function against(script, opts)
  local srv = fake.start(script, opts)
  local s = assert(socket.connect(srv.ip, srv.port, { timeout = 2 }))
  s:set_deadline(loop.now() + 5)
  return s, srv
end

describe("smtp replies", function()
  it("reads a multi-line greeting", function()
    local s, srv = against({ "220-mx.lab.test ESMTP\r\n220-second line\r\n220 2.0.0 last\r\n" })
    local r = assert(s:receive_reply())
    assert.equal(220, r.code)
    assert.same({ "mx.lab.test ESMTP", "second line", "2.0.0 last" }, r.lines)
    assert.equal("mx.lab.test ESMTP\nsecond line\n2.0.0 last", r.text)
    assert.is_nil(r.enhanced) -- taken from the first line only
    assert.equal("220-mx.lab.test ESMTP\r\n220-second line\r\n220 2.0.0 last\r\n", r.raw)
    s:close(); srv:stop()
  end)

  it("accepts a bare 250, bare LF line ends, and pipelined replies", function()
    local s, srv = against({ "250\r\n250-a\n250 b\n354 go ahead\r\n550 5.1.1 no such user\r\n" })
    local r = assert(s:receive_reply())
    assert.equal(250, r.code); assert.same({ "" }, r.lines); assert.equal("", r.text)
    r = assert(s:receive_reply())
    assert.same({ "a", "b" }, r.lines)
    r = assert(s:receive_reply())
    assert.equal(354, r.code); assert.is_nil(r.enhanced)
    r = assert(s:receive_reply())
    assert.equal(550, r.code); assert.equal("5.1.1", r.enhanced); assert.equal("5.1.1 no such user", r.text)
    s:close(); srv:stop()
  end)

  it("extracts enhanced status codes only when well-formed and of the same class", function()
    local s, srv = against({ "250 2.1.0 ok\r\n451 4.7.1 greylisted\r\n250 5.1.1 wrong class\r\n250 2.1000.0 too long\r\n" })
    assert.equal("2.1.0", s:receive_reply().enhanced)
    assert.equal("4.7.1", s:receive_reply().enhanced)
    assert.is_nil(s:receive_reply().enhanced)
    assert.is_nil(s:receive_reply().enhanced)
    s:close(); srv:stop()
  end)

  it("rejects codes that differ between lines, and lines without a code (protocol)", function()
    local s, srv = against({ "250-a\r\n251 b\r\n" })
    local r, code, detail = s:receive_reply()
    assert.is_nil(r); assert.equal("protocol", code)
    assert.matches("different codes at line 2: 251 b", detail, 1, true)
    s:close(); srv:stop()
    s, srv = against({ "hello there\r\n" })
    r, code, detail = s:receive_reply()
    assert.equal("protocol", code); assert.matches("malformed", detail)
    s:close(); srv:stop()
  end)

  it("stops an overlong line at the line cap (limit)", function()
    local s, srv = against({ "220 " .. string.rep("x", 10000) .. "\r\n" })
    local r, code, detail = s:receive_reply()
    assert.is_nil(r); assert.equal("limit", code)
    assert.matches("reply line too long (over 4096 bytes) at line 1", detail, 1, true)
    s:close(); srv:stop()
    s, srv = against({ "220 " .. string.rep("y", 600) .. "\r\n" })
    r, code = s:receive_reply({ max_line = 512 })
    assert.equal("limit", code)
    s:close(); srv:stop()
  end)

  it("ends endless continuation lines with limit, quickly", function()
    local s, srv = against({ "250-first\r\n", { repeat_send = "250-again and again\r\n", count = 100000 } })
    local t0 = loop.now()
    local r, code, detail = s:receive_reply()
    assert.is_nil(r); assert.equal("limit", code)
    assert.equal("too many lines in one reply (over 100 lines)", detail)
    assert.is_true(loop.now() - t0 < 2)
    s:close(); srv:stop()
    s, srv = against({ { repeat_send = "250-" .. string.rep("z", 1000) .. "\r\n", count = 1000 } })
    r, code, detail = s:receive_reply({ max_lines = 1000, max_bytes = 20000 })
    assert.equal("limit", code); assert.equal("reply too large (over 20000 bytes)", detail)
    s:close(); srv:stop()
  end)

  it("a one-byte-per-second drip ends at the phase deadline, not later", function()
    local s, srv = against({ { drip = "220 slowly, very slowly, dripping\r\n", interval = 1 } })
    local t0 = loop.now()
    s:set_deadline(t0 + 2.5)
    local r, code, detail = s:receive_reply()
    local dt = loop.now() - t0
    assert.is_nil(r); assert.equal("timeout", code)
    assert.matches("receive a reply %(%d bytes buffered%)", detail)
    assert.is_true(dt >= 2.45 and dt < 2.9, "ended after " .. dt .. " s")
    s:close(); srv:stop()
  end)

  it("resumes parsing across many small reads (fast drip of a multi-line reply)", function()
    local text = "250-mx.lab.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
    local s, srv = against({ { drip = text, interval = 0.002 } })
    local r = assert(s:receive_reply())
    assert.same({ "mx.lab.test", "PIPELINING", "SIZE 10240000", "STARTTLS", "8BITMIME" }, r.lines)
    assert.equal(text, r.raw)
    s:close(); srv:stop()
  end)

  it("keeps NUL and garbage bytes, escaped for display", function()
    local s, srv = against({ "220 a\0b\1\127\255 caf\195\169 \226\128\174evil\r\n" })
    local r = assert(s:receive_reply())
    assert.equal(220, r.code)
    assert.equal("a\0b\1\127\255 caf\195\169 \226\128\174evil", r.text) -- nothing truncated
    assert.equal("a\\x00b\\x01\\x7f\\xff caf\195\169 \\u{202e}evil", core.smtp.escape(r.text))
    s:close(); srv:stop()
  end)

  it("reports a reset mid-reply as reset and a close mid-reply as closed", function()
    local s, srv = against({ "250-partial\r\n250-more", { sleep = 0.05 }, { reset = true } })
    local r, code = s:receive_reply()
    assert.is_nil(r); assert.equal("reset", code)
    s:close(); srv:stop()
    s, srv = against({ "250-partial\r\n250-more", { close = true } })
    local detail
    r, code, detail = s:receive_reply()
    assert.equal("closed", code)
    assert.matches("in the middle of a reply", detail)
    s:close(); srv:stop()
  end)

  it("escape: printable ASCII and UTF-8 stay, the rest is escaped", function()
    local e = core.smtp.escape
    assert.equal("plain text 123", e("plain text 123"))
    assert.equal("\\x00\\x1b[31m\\r\\n\\t\\\\", e("\0\27[31m\r\n\t\\"))
    assert.equal("\208\191\209\128\208\184\208\178\208\181\209\130 \240\159\152\128", e("\208\191\209\128\208\184\208\178\208\181\209\130 \240\159\152\128"))
    assert.equal("\\xc0\\xaf", e("\192\175"))          -- overlong
    assert.equal("\\xed\\xa0\\x80", e("\237\160\128"))  -- surrogate
    assert.equal("\\xe2\\x82", e("\226\130"))           -- truncated
    assert.equal("\\u{0085}\\u{200b}\\u{feff}", e("\194\133\226\128\139\239\187\191"))
    assert.has_error(function() e(nil) end, "bad argument #1 to 'escape' (string expected, got nil)")
  end)

  it("read_reply raises on misuse, naming the function", function()
    assert.has_error(function() core.smtp.read_reply("x") end,
      "bad argument #1 to 'read_reply' (mxprobe.sock expected, got string)")
    local s, srv = against({ { hold = 1 } })
    assert.has_error(function() core.smtp.read_reply(s:raw(), { max_lins = 3 }) end,
      "bad argument #2 to 'read_reply' (unknown limit max_lins; expected max_line, max_lines, max_bytes, discard_max)")
    assert.has_error(function() core.smtp.read_reply(s:raw(), { max_line = 0 }) end,
      "bad argument #2 to 'read_reply' (limits.max_line must be an integer 1..2^30)")
    assert.has_error(function() s:receive_reply(5) end,
      "bad argument #1 to 'receive_reply' (limits table or nil expected, got number)")
    s:close(); srv:stop()
  end)
end)

describe("mxprobe.smtp.session (the engine's SMTP session)", function()
  it("waits for the whole greeting before sending, records the transcript", function()
    local early
    local srv = fake.start({
      "220-mx.lab.test ESMTP\r\n",
      function(c)
        -- the client must not talk before the greeting is complete
        local line = c:read_line(loop.now() + 0.3)
        early = line
      end,
      "220 ready\r\n",
      { expect = "^EHLO probe%.test$" },
      "250-mx.lab.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
      { expect = "^QUIT$" },
      "221 2.0.0 bye\r\n",
    })
    local s = assert(session.open(srv.ip, srv.port, { connect_timeout = 3 }))
    local g = assert(s:read_reply(loop.now() + 3))
    assert.is_nil(early)
    assert.equal(220, g.code)
    assert.same({ "mx.lab.test ESMTP", "ready" }, g.lines)
    local r = assert(s:command("EHLO probe.test"))
    assert.equal(250, r.code)
    assert.same({ "mx.lab.test", "STARTTLS", "8BITMIME" }, r.lines)
    assert.has_error(function() s:command("NOOP\r\nRSET") end,
      "bad argument #1 to 'command' (a command line without CR or LF expected)")
    s:quit()
    srv:wait()
    assert.same({}, srv.errors)
    local dirs, texts = {}, {}
    for i, e in ipairs(s.transcript) do
      dirs[i], texts[i] = e.dir, e.text
      assert.is_number(e.t)
    end
    assert.same({ "*", "<", "<", ">", "<", "<", "<", ">", "<" }, dirs)
    assert.same({ "220-mx.lab.test ESMTP", "220 ready", "EHLO probe.test", "250-mx.lab.test",
                  "250-STARTTLS", "250 8BITMIME", "QUIT", "221 2.0.0 bye" }, { table.unpack(texts, 2) })
  end)

  it("escapes garbage in the transcript and ends a greeting that never ends at its deadline", function()
    local srv = fake.start({ "220-\0\27[2J junk\r\n", { hold = 3 } })
    local t0 = loop.now()
    local s = assert(session.open(srv.ip, srv.port))
    local r, code = s:read_reply(loop.now() + 0.5)
    assert.is_nil(r)
    assert.equal("timeout", code)
    assert.is_true(loop.now() - t0 < 1.5)
    s:close()
    srv:stop()
  end)

  it("a non-220 greeting is returned for the caller to judge", function()
    local srv = fake.start({ "554 5.7.1 go away\r\n", { expect = "^QUIT" }, "221 bye\r\n" })
    local s = assert(session.open(srv.ip, srv.port))
    local g = assert(s:read_reply(loop.now() + 3))
    assert.equal(554, g.code)
    assert.equal("5.7.1", g.enhanced)
    s:quit()
    srv:wait()
    assert.same({}, srv.errors)
  end)

  it("refused connections come back as refused", function()
    local l = assert(core.net.listen("127.0.0.1", 0))
    local _, port = l:local_addr()
    l:close()
    local s, code = session.open("127.0.0.1", port)
    assert.is_nil(s); assert.equal("refused", code)
  end)
end)
