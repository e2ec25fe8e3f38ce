-- core.tls and mxprobe.net.tls against loopback servers: in-loop STARTTLS
-- servers (net.listen + a server TLS context, run as tasks) and, for a
-- second implementation's view, `openssl s_server` subprocesses.
-- Certificates come from tests/helpers/certs.lua, made at test time.
local loop = require "mxprobe.runtime.loop"
local socket = require "mxprobe.net.socket"
local tls = require "mxprobe.net.tls"
local core = require "mxprobe.core"
local make_certs = require("tests.helpers.certs").make

local C = core.tls

local certs

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function find_error(info, code, depth)
  for _, e in ipairs(info.verify.errors) do
    if e.code == code and (depth == nil or e.depth == depth) then return e end
  end
end

-- An in-loop SMTP-ish server for one connection.  o:
--   leaf = certs leaf name (default "valid"); tls = extra server options (min, max)
--   reply = what to answer STARTTLS (default "220 2.0.0 ready\r\n")
--   late = bytes sent 50 ms after the reply (plaintext injected late)
--   behaviour = "handshake" (default) | "reset" | "close" | "silent"
--   implicit = true: TLS right after accept (no greeting, no STARTTLS)
-- Returns port, task; the task returns a result table
-- { command =, info =, code =, detail =, line = (first line read over TLS) }.
local function serve(o)
  o = o or {}
  local srv = assert(socket.listen(o.ip or "127.0.0.1", 0))
  local _, port = srv:local_addr()
  local dl = loop.now() + (o.time or 5)
  local task = loop.spawn(function()
    local r = {}
    local c, code, detail = srv:accept(dl)
    srv:close()
    if not c then r.code, r.detail = code, detail; return r end
    if not o.implicit then
      c:send("220 mx.test ESMTP test\r\n", dl)
      r.command = c:read_line(dl)
      c:send(o.reply or "220 2.0.0 ready\r\n", dl)
      if o.late then loop.sleep(0.05); c:send(o.late, dl) end
    end
    local b = o.behaviour or "handshake"
    if b == "reset" then
      -- the ClientHello arrives and stays unread: close() then sends RST
      loop.wait(c, "r", dl)
      loop.sleep(0.02)
      c:close()
      return r
    elseif b == "close" then
      loop.wait(c, "r", dl)
      c:raw():fill()           -- take the ClientHello in, then FIN
      c:close()
      return r
    elseif b == "silent" then
      loop.sleep(o.hold or 1)
      c:close()
      return r
    end
    local leaf = certs.leaf[o.leaf or "valid"]
    local sopts = { server = true, cert = leaf.chain, key = leaf.key }
    for k, v in pairs(o.tls or {}) do sopts[k] = v end
    r.info, r.code, r.detail = c:tls_handshake(sopts, dl)
    if r.info then
      r.line = c:read_line(dl)
      if r.line then c:send("250 got " .. r.line .. "\r\n", dl) end
      c:read_line(dl) -- until the client closes
    end
    c:close()
    return r
  end)
  return port, task
end

-- Client side of STARTTLS against serve(): greeting, STARTTLS, 220, then
-- the handshake with opts.  Returns info, code, detail, extra, sock, elapsed.
local function probe(port, opts, o)
  o = o or {}
  local dl = loop.now() + (o.time or 5)
  local s = assert(socket.connect(o.ip or "127.0.0.1", port, { deadline = dl }))
  s:set_deadline(dl)
  assert.matches("^220 ", s:read_line())
  assert(s:send("STARTTLS\r\n"))
  assert.equal("220 2.0.0 ready", s:read_line())
  if o.pause then loop.sleep(o.pause) end
  local t0 = loop.now()
  local info, code, detail, extra = tls.handshake(s:raw(), opts, o.deadline or dl)
  return info, code, detail, extra, s, loop.now() - t0
end

-- The whole exchange: the handshake, then one line over TLS; returns the
-- client's info (or nil, code, detail) and the server's result.
local function session(server_opts, client_opts, o)
  local port, task = serve(server_opts)
  local info, code, detail, extra, s = probe(port, client_opts, o)
  if info then
    assert(s:send("EHLO client.test\r\n"))
    info.echo = s:read_line()
  end
  s:close()
  local r = loop.join(task)
  return info, code, detail, r, extra
end

local function client(extra)
  local o = { sni = "mx.test", ca_file = certs.ca }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- `openssl s_server -www` for one connection (it does not read stdin).
local function s_server(args, naccept)
  local probe_srv = assert(core.net.listen("127.0.0.1", 0))
  local _, port = probe_srv:local_addr()
  probe_srv:close()
  local log = os.tmpname()
  local pidf = os.tmpname()
  os.execute(("(timeout 10 openssl s_server -accept 127.0.0.1:%d -www -naccept %d %s >%s 2>&1 & echo $! >%s)")
    :format(port, naccept or 1, args, sh_quote(log), sh_quote(pidf)))
  local f = io.open(pidf); local pid = f and tonumber(f:read("l")); if f then f:close() end
  os.remove(pidf)
  local ready = false
  for _ = 1, 150 do -- up to 3 s for "ACCEPT"
    local lf = io.open(log)
    local text = lf and lf:read("a") or ""
    if lf then lf:close() end
    if text:find("ACCEPT", 1, true) then ready = true; break end
    loop.sleep(0.02)
  end
  local function stop()
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    local lf = io.open(log)
    local text = lf and lf:read("a") or ""
    if lf then lf:close() end
    os.remove(log)
    return text
  end
  if not ready then error("openssl s_server did not start: " .. stop()) end
  return port, stop
end

-- Plain TLS (no STARTTLS) to port.
local function direct(port, opts, dl)
  dl = dl or loop.now() + 5
  local s = assert(socket.connect("127.0.0.1", port, { deadline = dl }))
  local info, code, detail = tls.handshake(s:raw(), opts, dl)
  s:close()
  return info, code, detail
end

describe("mxprobe.net.tls", function()
  setup(function() certs = make_certs() end)
  teardown(function() if certs then certs.cleanup() end end)

  describe("a chain from the test CA", function()
    it("verifies, matches the MX name, and carries SMTP over TLS afterwards", function()
      local info, code, detail, r = session({}, client())
      assert(info, tostring(code) .. ": " .. tostring(detail))
      assert.equal("STARTTLS", r.command)
      assert.equal("TLSv1.3", info.protocol)
      assert.is_string(info.cipher)
      assert.is_true(info.bits >= 128)
      assert.is_true(info.verify.ok)
      assert.equal(0, info.verify.code)
      assert.equal("ok", info.verify.result)
      assert.same({}, info.verify.errors)
      assert.is_true(info.hostname_match)
      assert.equal("mx.test", info.verify_name)
      assert.equal(2, info.peer_chain_length)
      assert.equal(2, #info.chain)
      assert.equal("CN=mx.test", info.chain[1]:subject())
      assert.equal("CN=mxprobe Test Intermediate CA", info.chain[1]:issuer())
      assert.equal(info.chain[1]:issuer(), info.chain[2]:subject())
      assert.equal(3, info.verified_chain_length)
      assert.is_number(info.handshake_s)
      -- the socket's io now goes through TLS both ways
      assert.equal("250 got EHLO client.test", info.echo)
      assert.equal("EHLO client.test", r.line)
      -- the server saw our SNI
      assert.equal("mx.test", r.info.sni)
      assert.is_true(r.info.server)
    end)

    it("works over ::1 too", function()
      local probe6 = core.net.listen("::1", 0)
      if not probe6 then pending("no IPv6 loopback here") end
      probe6:close()
      local info, code, detail = session({ ip = "::1" }, client(), { ip = "::1" })
      assert(info, tostring(code) .. ": " .. tostring(detail))
      assert.is_true(info.verify.ok)
    end)

    it("matches a wildcard SAN and an IP SAN, never a partial one", function()
      local info = assert(session({}, client({ sni = "a.wild.test" })))
      assert.is_true(info.hostname_match)
      info = assert(session({}, client({ sni = "a.b.wild.test" })))
      assert.is_false(info.hostname_match)
      info = assert(session({}, client({ sni = false, verify_name = "127.0.0.1" })))
      assert.is_true(info.hostname_match)
    end)
  end)

  describe("certificate problems are observed, not fatal", function()
    it("expired: error 10 at depth 0, the handshake completes", function()
      local info, code, detail = session({ leaf = "expired" }, client())
      assert(info, tostring(code) .. ": " .. tostring(detail))
      assert.is_false(info.verify.ok)
      local e = find_error(info, 10, 0)
      assert.truthy(e, "no error 10 at depth 0")
      assert.equal("certificate has expired", e.reason)
      assert.is_true(info.hostname_match)
      assert.equal("250 got EHLO client.test", info.echo)
    end)

    it("wrong name: the chain verifies, the name does not match", function()
      local info = assert(session({ leaf = "wrong" }, client()))
      assert.is_true(info.verify.ok)
      assert.is_false(info.hostname_match)
      assert.same({ "other.test" }, info.chain[1]:sans())
    end)

    it("self-signed: error 18 (or 19) at depth 0", function()
      local info = assert(session({ leaf = "self" }, client()))
      assert.is_false(info.verify.ok)
      local e = find_error(info, 18, 0) or find_error(info, 19, 0)
      assert.truthy(e, "errors: " .. require("pl.pretty").write(info.verify.errors))
      assert.is_true(info.chain[1]:self_signed())
      assert.is_true(info.hostname_match)
    end)

    it("untrusted: without the test CA, unable to get local issuer (20)", function()
      -- the system trust store (the default) does not know the test root
      local info = assert(session({}, { sni = "mx.test" }))
      assert.is_false(info.verify.ok)
      assert.truthy(find_error(info, 20), "errors: " .. require("pl.pretty").write(info.verify.errors))
      assert.equal("unable to get local issuer certificate", find_error(info, 20).reason)
      -- and with no trust anchors at all
      info = assert(session({}, client({ ca_file = false })))
      assert.truthy(find_error(info, 20))
      assert.is_true(info.hostname_match)
    end)

    it("records each error once with its depth (expired and untrusted together)", function()
      local info = assert(session({ leaf = "expired" }, client({ ca_file = false })))
      assert.truthy(find_error(info, 10, 0))
      assert.truthy(find_error(info, 20))
      local seen = {}
      for _, e in ipairs(info.verify.errors) do
        local k = e.code .. "@" .. e.depth
        assert.is_nil(seen[k], "duplicate " .. k)
        seen[k] = true
      end
    end)

    it("a weak leaf (RSA-1024, SHA-1) is observed at security level 0", function()
      if not certs.weak_available then pending("this openssl refused to make an RSA-1024/SHA-1 certificate") end
      local info, code, detail = session({ leaf = "weak", tls = { max = "TLSv1.2" } }, client({ sni = "weak.test" }))
      assert(info, tostring(code) .. ": " .. tostring(detail))
      local ktype, bits = info.chain[1]:key()
      assert.equal("RSA", ktype)
      assert.equal(1024, bits)
      assert.equal("ecdsa-with-SHA1", info.chain[1]:signature_algorithm())
      assert.is_true(info.hostname_match)
    end)
  end)

  describe("versions", function()
    it("a TLS 1.0-only server (in-loop) is observed as TLSv1", function()
      local info, code, detail = session({ tls = { min = "TLSv1", max = "TLSv1" } }, client())
      if not info and code == "tls" and detail:find("no protocols available", 1, true) then
        pending("this OpenSSL build cannot negotiate TLSv1 at security level 0: " .. detail)
      end
      assert(info, tostring(code) .. ": " .. tostring(detail))
      assert.equal("TLSv1", info.protocol)
      assert.is_true(info.verify.ok)
      assert.equal("250 got EHLO client.test", info.echo)
    end)

    it("a TLS 1.0-only openssl s_server is observed as TLSv1", function()
      local l = certs.leaf.valid
      local port, stop = s_server(("-cert %s -key %s -cert_chain %s -tls1 -cipher DEFAULT:@SECLEVEL=0")
        :format(sh_quote(l.cert), sh_quote(l.key), sh_quote(certs.intermediate)))
      local info, code, detail = direct(port, client())
      local log = stop()
      if not info and code == "tls" and (detail .. log):find("no protocols available", 1, true) then
        pending("this OpenSSL build cannot negotiate TLSv1 at security level 0: " .. detail)
      end
      assert(info, tostring(code) .. ": " .. tostring(detail) .. "\n" .. log)
      assert.equal("TLSv1", info.protocol)
      assert.is_true(info.verify.ok)
      assert.equal(2, info.peer_chain_length)
    end)

    it("TLS 1.3 against openssl s_server, plain TLS", function()
      local l = certs.leaf.valid
      local port, stop = s_server(("-cert %s -key %s -cert_chain %s -tls1_3")
        :format(sh_quote(l.cert), sh_quote(l.key), sh_quote(certs.intermediate)))
      local info, code, detail = direct(port, client())
      local log = stop()
      assert(info, tostring(code) .. ": " .. tostring(detail) .. "\n" .. log)
      assert.equal("TLSv1.3", info.protocol)
      assert.is_true(info.verify.ok)
      assert.is_true(info.hostname_match)
    end)

    it("max caps the version we offer", function()
      local info = assert(session({}, client({ max = "TLSv1.2" })))
      assert.equal("TLSv1.2", info.protocol)
      info = assert(session({}, client({ min = "TLSv1.1", max = "TLSv1.1" })))
      assert.equal("TLSv1.1", info.protocol)
    end)

    it("min refuses an older server with a tls error", function()
      local info, code, detail, r = session({ tls = { max = "TLSv1.2" } }, client({ min = "TLSv1.3" }))
      assert.is_nil(info)
      assert.equal("tls", code)
      assert.matches("version", detail)
      assert.is_nil(r.info)
    end)

    it("max refuses a newer-only server with a tls error", function()
      local info, code, detail = session({ tls = { min = "TLSv1.3" } }, client({ max = "TLSv1.2" }))
      assert.is_nil(info)
      assert.equal("tls", code)
      assert.matches("version", detail)
    end)
  end)

  describe("SNI", function()
    it("is sent without the trailing dot and seen by the server", function()
      local info, _, _, r = session({}, client({ sni = "mx.test." }))
      assert.equal("mx.test", r.info.sni)
      assert.equal("mx.test", info.sni)
      assert.is_true(info.hostname_match)
    end)

    it("is not sent when false, nor for an IP literal", function()
      local _, _, _, r = session({}, client({ sni = false, verify_name = "mx.test" }))
      assert.is_nil(r.info.sni)
      _, _, _, r = session({}, client({ sni = "127.0.0.1" }))
      assert.is_nil(r.info.sni)
    end)
  end)

  describe("plaintext injected after the STARTTLS 220", function()
    it("is refused, counted and left in the buffer", function()
      local port, task = serve({ reply = "220 2.0.0 ready\r\n250 injected\r\n" })
      local dl = loop.now() + 5
      local s = assert(socket.connect("127.0.0.1", port, { deadline = dl }))
      s:set_deadline(dl)
      s:read_line()
      s:send("STARTTLS\r\n")
      assert.equal("220 2.0.0 ready", s:read_line())
      local info, code, detail, shown = tls.handshake(s:raw(), client(), dl)
      assert.is_nil(info)
      assert.equal("injection", code)
      assert.matches("^14 bytes of plaintext were buffered after the STARTTLS reply", detail)
      assert.equal("250 injected\\r\\n", shown)
      assert.equal(14, s:buffered())
      assert.equal("250 injected\r\n", s:take_buffered())
      assert.is_false(C.is_tls(s:raw()))
      s:close()
      loop.join(task)
    end)

    it("is refused through the socket wrapper's tls_handshake too", function()
      local port, task = serve({ reply = "220 2.0.0 ready\r\n250 injected\r\n" })
      local dl = loop.now() + 5
      local s = assert(socket.connect("127.0.0.1", port, { deadline = dl }))
      s:set_deadline(dl)
      s:read_line()
      s:send("STARTTLS\r\n")
      s:read_line()
      local ok, code, detail = s:tls_handshake(client())
      assert.is_nil(ok)
      assert.equal("injection", code)
      assert.matches("14 bytes", detail)
      assert.matches("250 injected\\r\\n", detail, 1, true) -- the evidence survives a 3-value wrapper
      s:close()
      loop.join(task)
    end)

    it("bytes that reach the kernel before our ClientHello count too", function()
      local port, task = serve({ late = "250 late\r\n" })
      local info, code, detail, shown, s = probe(port, client(), { pause = 0.15 })
      assert.is_nil(info)
      assert.equal("injection", code)
      assert.matches("^10 bytes", detail)
      assert.equal("250 late\\r\\n", shown)
      s:close()
      loop.join(task)
    end)

    it("allow_buffered = true discards them (tests only)", function()
      local port, task = serve({ reply = "220 2.0.0 ready\r\n250 injected\r\n" })
      local dl = loop.now() + 5
      local s = assert(socket.connect("127.0.0.1", port, { deadline = dl }))
      s:set_deadline(dl)
      s:read_line()
      s:send("STARTTLS\r\n")
      s:read_line()
      local info, code, detail = tls.handshake(s:raw(), client({ allow_buffered = true }), dl)
      assert(info, tostring(code) .. ": " .. tostring(detail))
      assert.equal(0, s:buffered())
      s:close()
      loop.join(task)
    end)
  end)

  describe("a misbehaving server", function()
    it("resetting mid-handshake gives reset (or tls), not a hang", function()
      local port, task = serve({ behaviour = "reset" })
      local info, code, detail, _, s, dt = probe(port, client())
      assert.is_nil(info)
      assert.is_truthy(code == "reset" or code == "tls", tostring(code) .. ": " .. tostring(detail))
      assert.is_true(dt < 2, "took " .. dt)
      s:close()
      loop.join(task)
    end)

    it("closing mid-handshake gives closed", function()
      local port, task = serve({ behaviour = "close" })
      local info, code, detail, _, s, dt = probe(port, client())
      assert.is_nil(info)
      assert.equal("closed", code, tostring(detail))
      assert.is_true(dt < 2, "took " .. dt)
      s:close()
      loop.join(task)
    end)

    it("never answering the ClientHello ends at the deadline", function()
      local port, task = serve({ behaviour = "silent", hold = 1.5 })
      local info, code, detail, _, s, dt = probe(port, client(), { deadline = loop.now() + 0.3 })
      assert.is_nil(info)
      assert.equal("timeout", code)
      assert.matches("TLS handshake", detail)
      assert.is_true(dt >= 0.25 and dt < 1, "took " .. dt)
      s:close()
      loop.join(task)
    end)

    it("speaking plaintext instead of TLS gives a tls error", function()
      -- a server that answers the ClientHello with an SMTP greeting
      local srv = assert(socket.listen("127.0.0.1", 0))
      local _, p2 = srv:local_addr()
      local t2 = loop.spawn(function()
        local c = srv:accept(loop.now() + 5)
        srv:close()
        loop.wait(c, "r", loop.now() + 5)
        c:send("220 this is not TLS at all, sorry about that\r\n")
        loop.sleep(0.2)
        c:close()
      end)
      local info, code, detail = direct(p2, client())
      assert.is_nil(info)
      assert.equal("tls", code)
      assert.matches("wrong version number", detail)
      loop.join(t2)
    end)
  end)

  describe("after the handshake", function()
    it("a close_notify or a bare close reads as closed; shutdown sends ours", function()
      for _, polite in ipairs({ true, false }) do
        local srv = assert(socket.listen("127.0.0.1", 0))
        local _, port = srv:local_addr()
        local dl = loop.now() + 5
        local t = loop.spawn(function()
          local c = assert(srv:accept(dl))
          srv:close()
          c:send("220 mx.test ESMTP\r\n", dl)
          c:read_line(dl)
          c:send("220 2.0.0 ready\r\n", dl)
          local leaf = certs.leaf.valid
          assert(c:tls_handshake({ server = true, cert = leaf.chain, key = leaf.key }, dl))
          c:send("250 one line over TLS\r\n", dl)
          if polite then assert(tls.shutdown(c:raw(), dl)) end
          c:close()
        end)
        local info, code, detail, _, s = probe(port, client())
        assert(info, tostring(code) .. ": " .. tostring(detail))
        assert.equal("250 one line over TLS", s:read_line())
        local line, rcode = s:read_line()
        assert.is_nil(line)
        assert.equal("closed", rcode)
        tls.shutdown(s:raw(), loop.now() + 1) -- must neither raise nor hang
        s:close()
        loop.join(t)
      end
    end)
  end)

  describe("session resumption (tls.session, upgrade's session)", function()
    -- One in-loop STARTTLS server on one port (a session is for its server's
    -- address and port) for n connections; ctx_for(i) is the server context
    -- of connection i.  The task returns the server's infos.
    local function serve_n(n, ctx_for)
      local srv = assert(socket.listen("127.0.0.1", 0))
      local _, port = srv:local_addr()
      local dl = loop.now() + 5
      local task = loop.spawn(function()
        local out = {}
        for i = 1, n do
          local c = assert(srv:accept(dl))
          c:send("220 mx.test ESMTP test\r\n", dl)
          c:read_line(dl)
          c:send("220 2.0.0 ready\r\n", dl)
          out[i] = assert(c:tls_handshake({ ctx = ctx_for(i) }, dl))
          out.server_session_error = select(2, pcall(C.session, c:raw()))
          local line = c:read_line(dl)
          if line then c:send("250 got " .. line .. "\r\n", dl) end
          c:read_line(dl) -- until the client closes
          c:close()
        end
        srv:close()
        return out
      end)
      return port, task
    end
    local function server_ctx()
      local leaf = certs.leaf.valid
      return assert(C.context({ server = true, cert = leaf.chain, key = leaf.key }))
    end
    -- STARTTLS with opts, one line each way; the client's info, then the
    -- session taken after that line (or nil, code, detail), and before it
    -- (table.pack of tls.session right after the handshake)
    local function connect(port, opts)
      local info, code, detail, _, s = probe(port, opts)
      assert(info, tostring(code) .. ": " .. tostring(detail))
      local early = table.pack(tls.session(s:raw()))
      assert(s:send("EHLO client.test\r\n"))
      assert.equal("250 got EHLO client.test", s:read_line())
      local sess, scode, sdetail = tls.session(s:raw())
      s:close() -- no close_notify: the session taken must survive that
      return info, sess, scode, sdetail, early
    end

    it("a session from one handshake is offered on the next and resumed", function()
      local ctx = server_ctx()
      local port, task = serve_n(2, function() return ctx end)
      local full, sess, code, detail, early = connect(port, client())
      assert.is_false(full.resumed)
      assert.equal("TLSv1.3", full.protocol)
      -- TLS 1.3: the ticket comes after the handshake, read with the first reply
      assert.is_nil(early[1])
      assert.equal("unresumable", early[2])
      assert(sess, tostring(code) .. ": " .. tostring(detail))
      assert.equal(("mxprobe.tls_session (TLSv1.3, from 127.0.0.1 port %d, server name 'mx.test')"):format(port),
        tostring(sess))
      local resumed = connect(port, client({ session = sess }))
      local seen = loop.join(task)
      assert.is_true(resumed.resumed)
      assert.is_false(seen[1].resumed)
      assert.is_true(seen[2].resumed)
      assert.equal("TLSv1.3", resumed.protocol)
      -- not verified again: the first handshake's verdict, kept in the session
      assert.is_true(resumed.verify.ok)
      assert.equal(("mxprobe.tls_session (offered; from 127.0.0.1 port %d)"):format(port), tostring(sess))
    end)

    it("a server that does not take it (other ticket keys: a restart) makes a full handshake", function()
      local ctxs = { server_ctx(), server_ctx() }
      local port, task = serve_n(2, function(i) return ctxs[i] end)
      local _, sess = connect(port, client())
      assert(sess)
      local info = connect(port, client({ session = sess }))
      local seen = loop.join(task)
      assert.is_false(info.resumed)
      assert.is_false(seen[2].resumed)
      -- a full handshake: the chain came and was verified again
      assert.is_true(info.verify.ok)
      assert.equal(2, #info.chain)
      assert.is_true(info.hostname_match)
    end)

    it("openssl s_server resumes its own session (TLS 1.3 ticket, TLS 1.2), and without tickets there is none", function()
      local l = certs.leaf.valid
      local base = ("-cert %s -key %s -cert_chain %s"):format(sh_quote(l.cert), sh_quote(l.key), sh_quote(certs.intermediate))
      local function get(port, offer, dl)
        local c = assert(socket.connect("127.0.0.1", port, { deadline = dl }))
        local info, code, detail = tls.handshake(c:raw(), client({ session = offer }), dl)
        assert(info, tostring(code) .. ": " .. tostring(detail))
        assert(c:send("GET / HTTP/1.0\r\n\r\n", dl))
        assert.matches("^HTTP/1.0 200", c:read_line(dl))
        local sess, scode, sdetail = tls.session(c:raw())
        c:close()
        return info, sess, scode, sdetail
      end
      for _, v in ipairs({ { "-tls1_3", "TLSv1.3" }, { "-tls1_2", "TLSv1.2" } }) do
        local port, stop = s_server(base .. " " .. v[1], 2)
        local dl = loop.now() + 5
        local first, sess, code, detail = get(port, nil, dl)
        assert(sess, tostring(code) .. ": " .. tostring(detail))
        local second = get(port, sess, dl)
        local log = stop()
        assert.equal(v[2], first.protocol, log)
        assert.is_false(first.resumed)
        assert.is_true(second.resumed, v[2] .. " was not resumed\n" .. log)
      end
      local port, stop = s_server(base .. " -tls1_3 -num_tickets 0", 1)
      local info, sess, code, detail = get(port, nil, loop.now() + 5)
      stop()
      assert.is_false(info.resumed)
      assert.is_nil(sess)
      assert.equal("unresumable", code)
      assert.equal("the server gave no session ticket or session id to resume with (TLSv1.3)", detail)
    end)

    it("refuses garbage, a session offered twice, one for another server, and server sockets", function()
      local ctx = server_ctx()
      local other_port, other_task = serve_n(1, function() return ctx end)
      local _, foreign = connect(other_port, client())
      loop.join(other_task)
      assert(foreign)
      local port, task = serve_n(3, function() return ctx end)
      local _, sess = connect(port, client())
      assert(sess)
      local again, sess2 = connect(port, client({ session = sess }))
      assert.is_true(again.resumed)
      assert(sess2, "no new ticket after the resumption")
      -- the third connection: every wrong offer raises before any I/O
      local dl = loop.now() + 5
      local s = assert(socket.connect("127.0.0.1", port, { deadline = dl }))
      s:set_deadline(dl)
      assert.matches("^220 ", s:read_line())
      assert(s:send("STARTTLS\r\n"))
      assert.equal("220 2.0.0 ready", s:read_line())
      local raw, cctx = s:raw(), tls.context(client())
      assert.error_matches(function() C.session(raw) end, "session: the socket does not speak TLS")
      assert.error_matches(function() C.session("x") end, "bad argument #1 to 'session'")
      local want = "bad argument #3 to 'upgrade' (option 'session' must be a TLS session from tls.session, got "
      for v, tname in pairs({ ticket = "string", [1] = "number" }) do
        assert.error_matches(function() C.upgrade(raw, cctx, { session = type(v) == "number" and 1 or v }) end,
          want .. tname .. ")", 1, true)
      end
      assert.error_matches(function() C.upgrade(raw, cctx, { session = {} }) end, want .. "table)", 1, true)
      assert.error_matches(function() C.upgrade(raw, cctx, { session = cctx }) end, want .. "mxprobe.tls_context)", 1, true)
      assert.error_matches(function() tls.handshake(raw, client({ session = "x" })) end, want .. "string)", 1, true)
      assert.error_matches(function() C.upgrade(raw, cctx, { sni = "mx.test", session = sess }) end,
        "option 'session': this TLS session was offered already", 1, true)
      assert.error_matches(function() C.upgrade(raw, cctx, { sni = "mx.test", session = foreign }) end,
        ("option 'session': the TLS session is from 127.0.0.1 port %d, server name 'mx.test', and this socket is "
          .. "127.0.0.1 port %d, server name 'mx.test': a session is offered only to the server it came from")
          :format(other_port, port), 1, true)
      assert.error_matches(function() C.upgrade(raw, cctx, { sni = "a.wild.test", session = sess2 }) end,
        "server name 'mx.test', and this socket is 127.0.0.1 port " .. port .. ", server name 'a.wild.test'", 1, true)
      assert.is_false(C.is_tls(raw)) -- nothing was started: the session goes on
      local info, code, detail = tls.handshake(raw, client({ session = sess2 }), dl)
      assert(info, tostring(code) .. ": " .. tostring(detail))
      assert.is_true(info.resumed)
      assert(s:send("EHLO client.test\r\n"))
      assert.equal("250 got EHLO client.test", s:read_line())
      s:close()
      local seen = loop.join(task)
      assert.matches("session: for client sockets", seen.server_session_error)
    end)
  end)

  describe("the chain caps", function()
    it("an oversized chain keeps the handshake and is cut to the cap", function()
      -- before: nil, "limit" and no info at all (STARTTLS_HANDSHAKE_FAILED,
      -- and the certificate check skipped)
      local info = assert(session({ leaf = "long" }, client()))
      assert.equal(13, info.peer_chain_length)
      assert.equal(10, #info.chain)
      assert.equal("CN=mx.test", info.chain[1]:subject())
      assert.is_true(info.verify.ok)
      local t = info.chain_truncated
      assert.equal(13, t.certificates)
      assert.equal(info.peer_chain_bytes, t.bytes)
      assert.equal(10, t.kept)
      assert.same({ certificates = 10, bytes = 65536 }, t.cap)
      local sum = 0
      for _, c in ipairs(info.chain) do sum = sum + #c:der() end
      assert.equal(sum, t.kept_bytes)
    end)

    it("a raised cap takes it, and chain = false skips the objects", function()
      local info = assert(session({ leaf = "long" }, client({ max_chain = 20 })))
      assert.equal(13, info.peer_chain_length)
      assert.equal(13, #info.chain)
      assert.is_nil(info.chain_truncated)
      assert.is_true(info.verify.ok)
      info = assert(session({ leaf = "long" }, client({ chain = false })))
      assert.equal(13, info.peer_chain_length)
      assert.is_nil(info.chain)
      assert.is_true(info.verify.ok)
    end)

    it("caps the chain's bytes too", function()
      local info = assert(session({ leaf = "long" }, client({ max_chain = 20, max_chain_bytes = 4096 })))
      assert.equal(13, info.peer_chain_length)
      local t = assert(info.chain_truncated)
      assert.equal(#info.chain, t.kept)
      assert.is_true(t.kept >= 1 and t.kept < 13)
      assert.is_true(t.kept_bytes <= 4096)
      assert.same({ certificates = 20, bytes = 4096 }, t.cap)
      assert.is_true(info.verify.ok)
    end)

    it("a Certificate message above max_cert_list fails the handshake as limit", function()
      local info, code = session({ leaf = "long" }, client({ max_cert_list = 1024 }))
      assert.is_nil(info)
      assert.equal("limit", code)
    end)
  end)

  describe("load_ca", function()
    local function tmp(content)
      local path = os.tmpname()
      local f = assert(io.open(path, "wb")); f:write(content); f:close()
      return path
    end

    it("counts the trust anchors of a bundle and names a bad file", function()
      local pem = assert(io.open(certs.ca)):read("a")
      local two = tmp(pem .. pem)
      assert.equal(2, C.load_ca(two))
      local text = tmp("this is not a certificate\n")
      local n, err = C.load_ca(text)
      assert.is_nil(n)
      assert.equal(text .. ": no certificate found", err)
      local empty = tmp("")
      n, err = C.load_ca(empty)
      assert.equal(empty .. ": no certificate found", err)
      local broken = tmp(pem:sub(1, 200) .. "\n-----END CERTIFICATE-----\n")
      n, err = C.load_ca(broken)
      assert.is_nil(n)
      assert.matches("^" .. broken:gsub("%p", "%%%0") .. ": cannot parse the certificates: ", err)
      n, err = C.load_ca("/nonexistent/ca.pem")
      assert.equal("/nonexistent/ca.pem: cannot read: No such file or directory", err)
      for _, p in ipairs { two, text, empty, broken } do os.remove(p) end
    end)

    -- the shape is read without decoding the key (OpenSSL 3's decoders
    -- cost a sixth of a start): what it accepts and refuses
    it("reads certificates by their shape: other blocks skipped, a non-certificate refused", function()
      local pem = assert(io.open(certs.ca)):read("a")
      local function b64(der)
        local f = assert(io.popen("printf '" .. der:gsub(".", function(c) return ("\\%03o"):format(c:byte()) end)
          .. "' | base64 -w 64"))
        local s = f:read("a"); f:close()
        return s
      end
      -- SEQUENCE { INTEGER 1 }: well-formed DER, not a certificate
      local seq = tmp("-----BEGIN CERTIFICATE-----\n" .. b64("\48\3\2\1\1") .. "-----END CERTIFICATE-----\n")
      local n, err = C.load_ca(seq)
      assert.is_nil(n)
      assert.equal(seq .. ": cannot parse the certificates: certificate #1 is not an X.509 certificate (DER)", err)
      -- a key and a CRL-like block beside a certificate: only the certificate counts
      local mixed = tmp("-----BEGIN PRIVATE KEY-----\n" .. b64("\48\3\2\1\1") .. "-----END PRIVATE KEY-----\n" .. pem
        .. "-----BEGIN X509 CRL-----\n" .. b64("\48\0") .. "-----END X509 CRL-----\n")
      assert.equal(1, C.load_ca(mixed))
      -- OpenSSL's TRUSTED CERTIFICATE (trust settings after the certificate)
      local trusted = os.tmpname()
      assert(os.execute(("openssl x509 -in %s -trustout -addtrust serverAuth -out %s 2>/dev/null"):format(certs.ca, trusted)))
      assert.matches("BEGIN TRUSTED CERTIFICATE", assert(io.open(trusted)):read("a"), 1, true)
      assert.equal(1, C.load_ca(trusted))
      -- the system bundle: every certificate in it
      local sys = "/etc/ssl/certs/ca-certificates.crt"
      local f = io.open(sys)
      if f then
        local _, count = f:read("a"):gsub("BEGIN CERTIFICATE", "")
        f:close()
        assert.is_true(count > 50)
        assert.equal(count, C.load_ca(sys))
      end
      for _, p in ipairs { seq, mixed, trusted } do os.remove(p) end
    end)
  end)

  describe("contexts", function()
    it("are cached per option set", function()
      assert.equal(tls.context(client()), tls.context(client()))
      assert.are_not.equal(tls.context(client()), tls.context(client({ max = "TLSv1.2" })))
    end)

    it("report unreadable files as tls errors", function()
      local ctx, code, detail = C.context({ ca_file = "/nonexistent/ca.pem" })
      assert.is_nil(ctx)
      assert.equal("tls", code)
      assert.matches("/nonexistent/ca.pem", detail, 1, true)
      ctx, code, detail = C.context({ server = true, cert = certs.leaf.valid.chain, key = certs.leaf.wrong.key })
      assert.is_nil(ctx)
      assert.equal("tls", code)
      assert.matches("mismatch", detail)
    end)
  end)

  describe("misuse raises, naming the function and argument", function()
    it("core.tls", function()
      assert.has_error(function() C.upgrade(42) end, "bad argument #1 to 'upgrade' (mxprobe.sock expected, got number)")
      assert.has_error(function() C.context({ min = "TLSv9" }) end)
      assert.error_matches(function() C.context({ min = "TLSv9" }) end, "option 'min': unknown TLS version 'TLSv9'")
      assert.error_matches(function() C.context({ bogus = 1 }) end, "bad argument #1 to 'context' %(unknown option 'bogus'%)")
      assert.error_matches(function() C.context({ min = "TLSv1.3", max = "TLSv1.2" }) end, "'min' is above option 'max'")
      assert.error_matches(function() C.context({ server = true }) end, "needs options 'cert' and 'key'")
      assert.error_matches(function() C.context({ security_level = "high" }) end, "'security_level' must be an integer")
      assert.error_matches(function() C.context("x") end, "bad argument #1 to 'context'")
      assert.error_matches(function() C.info("x") end, "bad argument #1 to 'info'")
      assert.error_matches(function() C.handshake_step({}) end, "bad argument #1 to 'handshake_step'")
      local raw = assert(core.net.listen("127.0.0.1", 0))
      assert.error_matches(function() C.upgrade(raw, tls.context(client())) end, "upgrade: not allowed on a listening socket")
      raw:close()
    end)

    it("on a plaintext or wrong socket", function()
      local port, task = serve({ behaviour = "silent", hold = 0.2 })
      local s = assert(socket.connect("127.0.0.1", port))
      local raw = s:raw()
      assert.error_matches(function() C.handshake_step(raw) end, "handshake_step: the socket does not speak TLS")
      assert.error_matches(function() C.info(raw) end, "info: the socket does not speak TLS")
      assert.error_matches(function() C.upgrade(raw, "ctx") end, "bad argument #2 to 'upgrade' %(tls context expected")
      assert.error_matches(function() C.upgrade(raw, tls.context(client()), { sni = 5 }) end, "option 'sni' must be a string or false")
      assert.error_matches(function() C.upgrade(raw, tls.context(client()), { nope = true }) end, "unknown option 'nope'")
      assert.error_matches(function() tls.handshake(raw, { colour = "blue" }) end, "bad argument #2 to 'handshake' %(unknown option 'colour'%)")
      assert.error_matches(function() tls.handshake(raw, {}, "soon") end, "bad argument #3 to 'handshake'")
      s:close()
      loop.join(task)
    end)
  end)

  it("escape shows bytes a peer sent safely", function()
    assert.equal("a\\r\\n\\x00\\x1b[\\\\\\xff", tls.escape("a\r\n\0\27[\\\255"))
    assert.equal("aaaa...", tls.escape(("a"):rep(10), 4))
  end)
end)
