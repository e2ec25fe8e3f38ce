-- Cancelled sessions still say QUIT (issue 16, item 10): an audit that is
-- interrupted (Ctrl-C) or whose output fails, and mxprobe.smtp.goodbye on
-- its own.  The server is a scripted one in this process that records what
-- it receives; the interrupted audit runs in a process of its own, so that
-- its loop really ends (the drop happened when the root task returned).
-- Loopback only, and a fake DNS.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local fake = require "tests.helpers.fake_smtp"
local fake_dns = require "tests.helpers.fake_resolver"
local goodbye = require "mxprobe.smtp.goodbye"
local audit = require "mxprobe.app.audit"

-- A server that answers the greeting and EHLO, takes MAIL FROM and then
-- never answers it: the client is stuck in the relay check until cancelled.
local function stuck_server(connections)
  return fake.start({
    "220 mx.test ESMTP\r\n", { expect = "^EHLO" }, "250 mx.test\r\n",
    { expect = "^MAIL" }, { read = true }, "221 2.0.0 bye\r\n",
  }, { connections = connections or 1, lifetime = 8 })
end

local function config(port)
  return { allow_reserved = { "loopback" }, port = port, helo = "t.test",
           timeouts = { connect = 2, greeting = 5, command = 5 } }
end

-- wait (bounded) until the server has seen n connections end
local function wait_served(srv, n, seconds)
  local dl = loop.now() + seconds
  while loop.now() < dl do
    local ended = 0
    for i = 1, n do
      local got = srv.received[i]
      if got and (got[#got] == "QUIT" or #srv.errors > 0) then ended = ended + 1 end
    end
    if ended == n then return end
    loop.sleep(0.05)
  end
end

describe("QUIT after a cancellation", function()
  it("an interrupted audit (SIGINT, its own process) QUITs the session in flight", function()
    local srv = stuck_server()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(([[
      package.path = "./?.lua;" .. package.path
      local audit = require "mxprobe.app.audit"
      local engine = require "mxprobe.engine"
      local fake_dns = require "tests.helpers.fake_resolver"
      local eng = { new = function(spec) spec.dns = fake_dns; return engine.new(spec) end }
      local s = audit.run { domains = { "a.test" }, output = false, summary = false, progress = false,
                            engine = eng, config = %s }
      return s.interrupted and 0 or 1
    ]]):format(("{ allow_reserved = { 'loopback' }, port = %d, helo = 't.test', timeouts = { connect = 2, greeting = 5, command = 5 } }"):format(srv.port)))
    f:close()
    local exe = assert(io.open("/proc/self/exe")) and "/proc/" .. assert(io.open("/proc/self/stat")):read("n") .. "/exe"
    local pidfile = os.tmpname()
    -- in the background: the server runs in this process's loop meanwhile
    os.execute(("%s run %s >/dev/null 2>&1 & echo $! >%s"):format(exe, script, pidfile))
    local pid = assert(io.open(pidfile)):read("n")
    -- until the client waits for its MAIL reply
    local dl = loop.now() + 5
    while loop.now() < dl and not (srv.received[1] and srv.received[1][2]) do loop.sleep(0.02) end
    assert.equal("MAIL FROM:<mxprobe@mxprobe.example>", srv.received[1] and srv.received[1][2])
    os.execute(("kill -INT %d"):format(math.tointeger(pid)))
    wait_served(srv, 1, 4)
    srv:stop()
    os.remove(script); os.remove(pidfile)
    assert.same({ "EHLO t.test", "MAIL FROM:<mxprobe@mxprobe.example>", "QUIT" }, srv.received[1])
  end)

  it("an audit whose output fails (a full disk) QUITs the other sessions in flight", function()
    local srv = stuck_server(2)
    local fast = fake.start({ "220 fast.test ESMTP\r\n", { expect = "^EHLO" }, "250 fast.test\r\n",
                              { expect = "^MAIL" }, "250 ok\r\n", { expect = "^RCPT" }, "550 no\r\n",
                              { expect = "^RSET" }, "250 ok\r\n", { expect = "^QUIT" }, "221 bye\r\n" })
    local eng = { new = function(spec)
      spec.dns = fake_dns
      local run = engine.new(spec)
      local check = run.check_domain
      run.check_domain = function(self, d)
        if d == "fast.test" then loop.sleep(0.3); self.config.port = fast.port end
        return check(self, d)
      end
      return run
    end }
    local s = audit.run { domains = { "a.test", "fast.test" }, summary = false, progress = false, signals = false,
                          engine = eng, config = config(srv.port), share = false,
                          output = function() return nil, "No space left on device" end }
    assert.equal("No space left on device", s.write_error)
    -- no yield since audit.run returned: what the server has now was sent before
    wait_served(srv, 1, 2)
    srv:stop(); fast:stop()
    assert.same({ "EHLO t.test", "MAIL FROM:<mxprobe@mxprobe.example>", "QUIT" }, srv.received[1])
  end)
end)

describe("mxprobe.smtp.goodbye", function()
  it("waits for the 221 within its budget, and only for sessions under the given tasks", function()
    local srv = stuck_server()
    local run = engine.new { dns = fake_dns, config = config(srv.port) }
    local t = loop.spawn(function() return run:check_domain("a.test") end)
    local dl = loop.now() + 5
    while loop.now() < dl and not (srv.received[1] and srv.received[1][2]) do loop.sleep(0.02) end
    assert.equal(1, goodbye.count({ t }))
    assert.equal(0, goodbye.count({ loop.spawn(function() end) }))
    loop.cancel(t)
    local t0 = loop.now()
    assert.equal(1, goodbye.all(1, { t }))
    assert.is_true(loop.now() - t0 < 1.2)
    assert.equal(0, goodbye.count({ t }))
    wait_served(srv, 1, 2)
    srv:stop()
    assert.equal("QUIT", srv.received[1][3])
  end)

  it("is bounded when the server never answers QUIT", function()
    local srv = fake.start({ "220 mx.test ESMTP\r\n", { expect = "^EHLO" }, "250 mx.test\r\n",
                             { expect = "^MAIL" }, { hold = 5 } }, { lifetime = 8 })
    local run = engine.new { dns = fake_dns, config = config(srv.port) }
    local t = loop.spawn(function() return run:check_domain("a.test") end)
    local dl = loop.now() + 5
    while loop.now() < dl and not (srv.received[1] and srv.received[1][2]) do loop.sleep(0.02) end
    -- the probe's own task is stopped for good: only goodbye can end the session
    loop.cancel(t)
    local t0 = loop.now()
    goodbye.all(0.5, { t })
    local took = loop.now() - t0
    srv:stop()
    assert.is_true(took < 0.8, ("took %.2f s"):format(took))
    assert.equal(0, goodbye.count({ t }))
  end)
end)

describe("a session closed by a cancelled task", function()
  local session = require "mxprobe.smtp.session"
  local function cancelled_close(script, steps)
    local srv = fake.start(script, { lifetime = 5 })
    local t
    t = loop.spawn(function()
      local s = assert(session.open(srv.ip, srv.port, { connect_timeout = 2 }))
      steps(s) -- ends in a command that the server never answers
      local r, code = s:command("NOOP", loop.now() + 5)
      assert(r == nil and code == "cancelled", code)
      s:close() -- what the checks do with any failed command
    end)
    loop.sleep(0.3)
    loop.cancel(t)
    loop.join(t)
    wait_served(srv, 1, 2)
    srv:stop()
    return srv.received[1]
  end

  it("says QUIT before closing, after the greeting", function()
    local got = cancelled_close({ "220 mx.test ESMTP\r\n", { expect = "^EHLO" }, "250 mx.test\r\n",
                                  { expect = "^NOOP" }, { read = true } }, function(s)
      assert(s:read_reply(loop.now() + 2))
      assert(s:command("EHLO t.test", loop.now() + 2))
    end)
    assert.same({ "EHLO t.test", "NOOP", "QUIT" }, got)
  end)

  it("sends no QUIT while a STARTTLS handshake is due", function()
    local got = cancelled_close({ "220 mx.test ESMTP\r\n", { expect = "^STARTTLS" }, { read = true } }, function(s)
      assert(s:read_reply(loop.now() + 2))
      assert(s:send_line("STARTTLS", loop.now() + 2))
    end)
    assert.same({ "STARTTLS", "NOOP" }, got) -- then the connection closed: no QUIT inside what should be TLS
  end)
end)
