-- Step 2 of the seed: TCP port 25.  Refused, timed out and unreachable are
-- different diagnoses.  When every address times out, the tester's own
-- network may block port 25: the run's evidence (another server answered,
-- or --vantage-check) decides between the server's fault and "cannot tell".
local findings = require "mxprobe.runtime.findings"

return {
  id = "connect",
  description = "TCP connection to port 25 of every address: connected, refused, timed out, unreachable (and with --implicit-tls the TLS handshake)",
  categories = { "smtp", "network" },
  scope = "session",
  requires = { "address" },
  findings = {
    CONNECT_OK = { severity = "ok", message = "Port {port} open ({ms} ms)" },
    CONNECT_REFUSED = { severity = "critical", message = "Connection to {address} port {port} refused: nothing listens, or a firewall rejects",
      hint = "Check that the MTA runs and listens on {address}:{port} (ss -ltn), and that the firewall allows port {port}." },
    CONNECT_TIMEOUT = { severity = "critical", message = "Connection to {address} port {port} timed out after {seconds} s: packets are dropped",
      hint = "A firewall drops port {port}, or the address is wrong." },
    CONNECT_UNREACHABLE = { severity = "critical", message = "No route to {address}: {detail}",
      hint = "The address is not reachable from the tester's network; check the routing or the A/AAAA record." },
    CONNECT_ERROR = { severity = "critical", message = "Connecting to {address} port {port} failed: {code} {detail}" },
    CONNECT_TLS_FAILED = { severity = "critical", message = "Port {port} accepts TCP but the TLS handshake that implicit TLS starts with failed ({detail})",
      hint = "With --implicit-tls (port 465) TLS comes before the greeting: check that this port really speaks TLS at once (Postfix: smtpd_tls_wrappermode = yes), and its certificate and protocols." },
    CONNECT_SOURCE = { severity = "inconclusive", message = "Could not connect from the chosen source address: {detail}",
      hint = "--source must be an address of this machine, of the same family as the server's (IPv4 or IPv6)." },
    CONNECT_ALL_TIMEOUT = { severity = "inconclusive",
      message = "Every address of every MX timed out and no server answered on port {port} in this run: port {port} may be blocked on the tester's own network",
      hint = "Many ISPs and cloud providers block outbound port 25: run with --vantage-check HOST (a server known to answer) to tell, or test from another network." },
    CONNECT_PORT_BLOCKED = { severity = "inconclusive",
      message = "Port {port} is blocked on the tester's network: every address timed out, and so did the reference host {target} ({state})",
      hint = "Test from a network that allows outbound port {port} before blaming the servers." },
  },

  run = function(ctx)
    local s, code, detail, seconds = ctx:open_session()
    seconds = math.floor((seconds or 0) * 1e6 + 0.5) / 1e6
    local ev = { address = ctx.address, port = ctx.port, seconds = seconds, code = code, detail = detail,
                 ms = ("%.1f"):format(seconds * 1000) }
    if s then
      ctx:fact { state = "connected", seconds = seconds }
      return ctx:finding("CONNECT_OK", ev)
    end
    local state = ({ refused = "refused", timeout = "timeout", unreachable = "unreachable", tls = "tls_failed",
                     source = "source" })[code] or "error"
    ctx:fact { state = state, seconds = seconds, detail = detail }
    ctx:not_tested(state == "error" and "the connection failed" or state == "tls_failed" and "the implicit TLS handshake failed"
      or state == "source" and "the source address could not be used" or ("the connection " .. (state == "timeout" and "timed out" or
      state == "refused" and "was refused" or "found no route")))
    if state == "tls_failed" then ctx:finding("CONNECT_TLS_FAILED", ev)
    elseif state == "source" then ctx:finding("CONNECT_SOURCE", ev)
    elseif state == "refused" then ctx:finding("CONNECT_REFUSED", ev)
    elseif state == "timeout" then ctx:finding("CONNECT_TIMEOUT", ev)
    elseif state == "unreachable" then ctx:finding("CONNECT_UNREACHABLE", ev)
    else ctx:finding("CONNECT_ERROR", ev) end
  end,

  summarize = function(dctx)
    local n, timed_out = 0, {}
    for _, srv in ipairs(dctx:servers()) do
      local c = srv.facts.connect
      if c then
        n = n + 1
        if c.state == "timeout" then timed_out[#timed_out + 1] = srv end
      end
    end
    if n == 0 or #timed_out < n then return end
    -- every address timed out: whose fault is it?  Only evidence of the
    -- run decides (docs/json-schema.md, vantage)
    local v = dctx:vantage()
    if v.state == "open" then return end -- this machine reaches the port: the servers drop it
    local ev = { count = n, port = v.port }
    local why
    if v.state == "blocked" then
      ev.target, ev.state = v.check.target, v.check.state
      why = ("the reference host %s did not answer either"):format(v.check.target)
    else
      why = ("no server answered on port %d in this run"):format(v.port)
    end
    for _, srv in ipairs(timed_out) do
      for i, f in ipairs(srv.findings) do
        if f.code == "CONNECT_TIMEOUT" then
          -- a shared probe's findings are every domain's: change this one's copy
          dctx:set_severity(findings.own(srv)[i], "inconclusive", "every address timed out and " .. why)
        end
      end
    end
    dctx:finding(v.state == "blocked" and "CONNECT_PORT_BLOCKED" or "CONNECT_ALL_TIMEOUT", ev)
  end,
}
