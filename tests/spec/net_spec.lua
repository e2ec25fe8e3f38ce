-- core.net (raw non-blocking TCP) and mxprobe.net.socket (the cosocket wrapper).
-- Loopback only.
local loop = require "mxprobe.runtime.loop"
local socket = require "mxprobe.net.socket"
local core = require "mxprobe.core"
local net = core.net

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/spec"
local fake = dofile(here .. "/../helpers/fake_smtp.lua")

-- a loopback port with nothing listening on it
local function dead_port()
  local l = assert(net.listen("127.0.0.1", 0))
  local _, port = l:local_addr()
  l:close()
  return port
end

-- a connection to listener l on lport: the client socket and the accepted one
local function connect_pair(l, lport)
  local c = assert(net.connect("127.0.0.1", lport))
  while not c:connect_result() do assert(loop.wait(c, "w", loop.now() + 2)) end
  local a
  repeat
    local code, ev
    a, code, ev = l:accept()
    if not a then assert.equal("again", code); assert(loop.wait(l, ev, loop.now() + 2)) end
  until a
  return c, a
end

describe("core.net", function()
  it("connects, accepts, sends and reads lines (CRLF and bare LF)", function()
    local l = assert(net.listen("127.0.0.1", 0))
    local lip, lport = l:local_addr()
    assert.equal("127.0.0.1", lip)
    assert.is_true(lport > 0)
    local c, a = connect_pair(l, lport)
    assert.equal("open", c:state())
    local pip, pport = a:peer()
    local cip, cport = c:local_addr()
    assert.equal(cip, pip); assert.equal(cport, pport)
    assert.equal(lport, select(2, c:peer()))
    assert.equal(11, a:send("one\r\ntwo\nxx"))
    assert.equal(5, a:send("ABCDEFG", 3)) -- from the 3rd byte
    local lines = {}
    while #lines < 2 do
      local line, code, ev = c:read_line()
      if line then lines[#lines + 1] = line
      else assert.equal("again", code); assert(loop.wait(c, ev, loop.now() + 2)) end
    end
    assert.same({ "one", "two" }, lines)
    while c:buffered() < 7 do
      if not c:fill() then assert(loop.wait(c, "r", loop.now() + 2)) end
    end
    assert.equal(7, c:buffered())
    assert.equal("xxC", c:read_bytes(3))
    assert.equal("DEFG", c:take_buffered())
    assert.equal(0, c:buffered())
    local created, connected, bin, bout = c:timings()
    assert.is_true(connected >= created)
    assert.equal(16, bin); assert.equal(0, bout)
    a:close()
    assert(loop.wait(c, "r", loop.now() + 2))
    assert.same({ nil, "closed", "connection closed by the peer" }, { c:fill() })
    c:close(); l:close()
  end)

  -- loop.wait on a core socket leaves its read interest registered in
  -- epoll between waits (MX_KEEP, core/loop.c): what comes while nobody
  -- waits must still wake the next wait, and a closed socket's fd number,
  -- reused by the next socket, must be waited on afresh
  it("a socket's kept read interest: data between two waits, and a reused fd number", function()
    local l = assert(net.listen("127.0.0.1", 0))
    local _, lport = l:local_addr()
    local c, a = connect_pair(l, lport)
    -- a wait that times out parks the interest
    local ok, code = loop.wait(c, "r", loop.now() + 0.05)
    assert.same({ nil, "timeout" }, { ok, code })
    a:send("x\r\n")
    loop.sleep(0.05) -- the loop steps while the data waits and nobody waits for it
    local t0 = loop.now()
    assert.is_true(loop.wait(c, "r", t0 + 2))
    assert.is_true(loop.now() - t0 < 1)
    assert.equal("x", (c:read_line()))
    local fd = c:getfd()
    c:close(); a:close()
    local c2, a2 = connect_pair(l, lport)
    assert.equal(fd, c2:getfd()) -- the same number, a new socket
    a2:send("y\r\n")
    t0 = loop.now()
    assert.is_true(loop.wait(c2, "r", t0 + 2))
    assert.is_true(loop.now() - t0 < 1)
    assert.equal("y", (c2:read_line()))
    c2:close(); a2:close(); l:close()
  end)

  it("read_line: limit without LF within maxlen, closed with the partial line", function()
    local srv = fake.start({ "0123456789abcdef\r\n", "tail-no-newline", { close = true } })
    local s = assert(socket.connect(srv.ip, srv.port, { timeout = 2 }))
    local raw = s:raw()
    assert(loop.wait(raw, "r", loop.now() + 2))
    local r, code, detail
    repeat r, code, detail = raw:read_line(10) until code ~= "again" or not loop.wait(raw, "r", loop.now() + 2)
    assert.is_nil(r); assert.equal("limit", code); assert.matches("10 bytes", detail)
    assert.equal("0123456789abcdef", raw:read_line(100))
    r, code, detail = s:read_line(loop.now() + 2)
    assert.is_nil(r); assert.equal("closed", code); assert.equal("tail-no-newline", detail)
    s:close(); srv:stop()
  end)

  it("fill stops at the input buffer cap with limit", function()
    local srv = fake.start({ string.rep("x", 1000), { hold = 1 } })
    local s = assert(socket.connect(srv.ip, srv.port, { timeout = 2, limit = 100 }))
    local raw = s:raw()
    local r, code, detail
    for _ = 1, 50 do
      r, code, detail = raw:fill()
      if code == "limit" then break end
      if code == "again" then loop.wait(raw, detail, loop.now() + 2) end
    end
    assert.equal("limit", code)
    assert.equal("input buffer full (100 bytes)", detail)
    assert.equal(100, raw:buffered())
    assert.equal("limit", select(2, s:read_bytes(200)))
    s:close(); srv:stop()
  end)

  it("refused: nothing listens on the port (fast, code refused)", function()
    local port = dead_port()
    local t0 = loop.now()
    local s, code, detail = socket.connect("127.0.0.1", port, { timeout = 3 })
    assert.is_nil(s)
    assert.equal("refused", code)
    assert.matches("127.0.0.1:" .. port, detail, 1, true)
    assert.is_true(loop.now() - t0 < 1)
  end)

  it("timeout: a listener whose accept queue is full drops SYNs; connect ends at the deadline", function()
    local l = assert(net.listen("127.0.0.1", 0, 1)) -- never accepts
    local _, port = l:local_addr()
    local held, timed_out, took = {}, false, nil
    for _ = 1, 8 do -- the queue takes backlog+1 connections; the next SYN is dropped
      local t0 = loop.now()
      local s, code = socket.connect("127.0.0.1", port, { timeout = 0.3 })
      if s then held[#held + 1] = s
      else
        assert.equal("timeout", code)
        timed_out, took = true, loop.now() - t0
        break
      end
    end
    assert.is_true(timed_out, "no connect timed out")
    assert.is_true(took >= 0.29 and took < 0.6, "took " .. tostring(took))
    for _, s in ipairs(held) do s:close() end
    l:close()
  end)

  it("sends megabytes through partial writes", function()
    local payload = string.rep("0123456789abcdef", 256 * 1024) -- 4 MiB
    local got = 0
    local srv = fake.start({ function(c)
      c:raw():set_limit(1 << 20)
      while got < #payload do
        loop.sleep(0.001)
        local n = c:buffered()
        local r, code = c:read_bytes(math.min(65536, #payload - got))
        if not r then return nil, code end
        got = got + #r
      end
    end })
    local s = assert(socket.connect(srv.ip, srv.port, { timeout = 2 }))
    assert.equal(#payload, s:send(payload, loop.now() + 20))
    srv:wait()
    assert.equal(#payload, got)
    assert.same({}, srv.errors)
    s:close()
  end)

  it("peer reset is reported as reset", function()
    local srv = fake.start({ "220-partial\r\n", { sleep = 0.05 }, { reset = true } })
    local s = assert(socket.connect(srv.ip, srv.port, { timeout = 2 }))
    local r, code
    repeat r, code = s:read_line(loop.now() + 2) until not r
    assert.equal("reset", code)
    s:close(); srv:stop()
  end)

  it("IPv6 loopback works when ::1 is configured", function()
    local l, code = net.listen("::1", 0)
    if not l then pending("no ::1 here (" .. tostring(code) .. ")"); return end
    l:close()
    local srv = fake.start({ "hello6\r\n" }, { ip = "::1" })
    local s = assert(socket.connect("::1", srv.port, { timeout = 2 }))
    assert.equal("hello6", s:read_line(loop.now() + 2))
    assert.equal("::1", (s:peer()))
    assert.matches("%[::1%]", tostring(s))
    s:close(); srv:stop()
  end)

  it("close is idempotent; a closed socket answers closed; <close> and __gc release", function()
    local srv = fake.start({ { hold = 1 } }, { connections = 3 })
    local s = assert(socket.connect(srv.ip, srv.port, { timeout = 2 }))
    assert.is_number(s:getfd())
    s:close(); s:close()
    assert.is_nil(s:getfd())
    assert.same({ nil, "closed", "the socket is closed" }, { s:send("x") })
    assert.equal("closed", select(2, s:read_line()))
    local fd
    do
      local s2 <close> = assert(socket.connect(srv.ip, srv.port, { timeout = 2 }))
      fd = s2:getfd()
    end
    -- the fd was closed by __close: the next socket may get the same number and works
    local s3 = assert(socket.connect(srv.ip, srv.port, { timeout = 2 }))
    assert.equal(fd, s3:getfd())
    s3 = nil
    collectgarbage(); collectgarbage()
    srv:stop()
  end)

  it("closing a socket another task waits on wakes that task, which finds it closed", function()
    local l = assert(net.listen("127.0.0.1", 0))
    local c = assert(net.connect(l:local_addr()))
    while not c:connect_result() do assert(loop.wait(c, "w", loop.now() + 2)) end
    local reader = loop.spawn(function()
      local t0 = loop.now()
      local ok = loop.wait(c, "r", loop.now() + 1)
      return ok, loop.now() - t0, select(2, c:fill())
    end)
    loop.sleep(0.02)
    c:close()
    -- before the fix the reader's wait (and its own deadline) was dropped: it never woke
    local ok, waited, code = loop.join(reader, loop.now() + 3)
    assert.is_true(ok)
    assert.is_true(waited < 0.5, "waited " .. tostring(waited))
    assert.equal("closed", code)
    l:close()
  end)

  it("raises on misuse, naming the function", function()
    assert.has_error(function() net.connect("foo", 25) end,
      "bad argument #1 to 'connect' (numeric IPv4 or IPv6 address expected, got 'foo')")
    assert.has_error(function() socket.connect("mx.example.org", 25) end,
      "bad argument #1 to 'connect' (numeric IPv4 or IPv6 address expected, got 'mx.example.org')")
    assert.has_error(function() net.connect(nil, 25) end,
      "bad argument #1 to 'connect' (numeric IPv4 or IPv6 address expected, got nil)")
    assert.has_error(function() net.connect("127.0.0.1", "smtp") end,
      "bad argument #2 to 'connect' (port number expected, got string)")
    assert.has_error(function() net.connect("127.0.0.1", 70000) end,
      "bad argument #2 to 'connect' (port must be 1..65535, got 65536)")
    assert.has_error(function() socket.connect(25) end)
    assert.has_error(function() socket.connect("127.0.0.1", 25, { timout = 1 }) end,
      "bad argument #3 to 'connect' (unknown option timout)")
    local l = assert(net.listen("127.0.0.1", 0))
    assert.has_error(function() l:send("x") end, "send: not allowed on a listening socket")
    assert.has_error(function() l:read_line() end, "read_line: not allowed on a listening socket")
    assert.has_error(function() l.getfd("x") end, "bad argument #1 to 'getfd' (mxprobe.sock expected, got string)")
    assert.has_error(function() net.listen("127.0.0.1", 0, -1) end, "bad argument #3 to 'listen' (backlog must be 0..65535)")
    local srv = fake.start({ { hold = 1 } })
    local s = assert(socket.connect(srv.ip, srv.port, { timeout = 2 }))
    assert.has_error(function() s:send(42) end, "bad argument #1 to 'send' (string expected, got number)")
    assert.has_error(function() s.send("x") end)
    assert.has_error(function() s:read_bytes("*l") end, "bad argument #1 to 'read_bytes' (a byte count expected, got *l)")
    -- names borrowed from OpenResty keep their meaning or are not used (docs/api.md)
    assert.is_nil(s.receive); assert.is_nil(s.settimeouts); assert.is_nil(s.sslhandshake)
    assert.has_error(function() s:read_line("soon") end)
    assert.has_error(function() s:raw():read_line(0) end, "bad argument #1 to 'read_line' (maxlen must be 1..1073741824)")
    assert.has_error(function() s:raw():send("x", 0) end, "bad argument #2 to 'send' (start index must be 1..9223372036854775807)")
    assert.has_error(function() s:set_limit("big") end, "bad argument #1 to 'set_limit' (limit: integer expected, got string)")
    s:close(); l:close(); srv:stop()
  end)

  it("refuses I/O where Lua cannot yield (table.sort, require) with a clear error", function()
    local srv = fake.start({ { hold = 1 } })
    local s = assert(socket.connect(srv.ip, srv.port, { timeout = 2 }))
    local ok, err = pcall(table.sort, { 3, 1, 2 }, function(a, b) s:read_line(); return a < b end)
    assert.is_false(ok)
    assert.matches("read_line: cannot do I/O here %(inside require", err)
    package.preload["mxprobe_spec_io_at_load"] = function() return s:send("EHLO x\r\n") end
    ok, err = pcall(require, "mxprobe_spec_io_at_load")
    package.preload["mxprobe_spec_io_at_load"] = nil
    assert.is_false(ok)
    assert.matches("send: cannot do I/O here", err)
    s:close(); srv:stop()
  end)

  it("200 concurrent connections overlap (200 x 0.2 s server delay in well under 40 s)", function()
    local N = 200
    local srv = fake.start({ { sleep = 0.2 }, "220 ok\r\n", { expect = "^QUIT" } }, { connections = N })
    local t0 = loop.now()
    local tasks, inflight, peak = {}, 0, 0
    for i = 1, N do
      tasks[i] = loop.spawn(function()
        local s, code, detail = socket.connect(srv.ip, srv.port, { timeout = 5 })
        if not s then return nil, code, detail end
        inflight = inflight + 1
        peak = math.max(peak, inflight)
        s:set_deadline(loop.now() + 5)
        local r, c2, d2 = s:receive_reply()
        inflight = inflight - 1
        if not r then s:close(); return nil, c2, d2 end
        s:send("QUIT\r\n")
        s:close()
        return r.code
      end)
    end
    for i = 1, N do assert.equal(220, loop.join(tasks[i])) end
    local dt = loop.now() - t0
    assert.is_true(dt < 2, "took " .. dt)
    assert.is_true(peak > N / 2, "peak concurrency " .. peak)
    srv:wait()
    assert.same({}, srv.errors)
  end)
end)
