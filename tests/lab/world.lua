-- The mxlab test world, as data (tests/lab/README.md explains it in words).
-- `local world = dofile("tests/lab/world.lua")` returns one table; this file
-- does no I/O. Keep it in step with lib.sh, zones/*.zone and README.md:
-- tests/lab/selftest compares it with what the lab DNS really serves.
--
-- world.namespace / world.state_dir are the defaults; tests should honour the
-- MXLAB_NS / MXLAB_STATE environment variables the way up/down do.

local W = {
  namespace      = "mxprobe-lab",   -- defaults; MXLAB_NS / MXLAB_STATE override them
  void_namespace = "mxprobe-lab-void",   -- holds the silent peer of the "timeout" route
  state_dir      = "/tmp/mxprobe-lab",
  ca_file        = "/tmp/mxprobe-lab/ca/ca.pem",   -- the lab root only (trust anchor)
  intermediate   = "/tmp/mxprobe-lab/ca/intermediate.pem",
  dns            = { "192.0.2.53", "2001:db8::53" },  -- nsd, authoritative only, port 53
  dns_name       = "ns.lab.test",
  -- unbound (dnssec.sh): validates with the lab root's key and sec.lab.test's
  -- as trust anchors; the integration specs ask it, not nsd
  resolver       = "192.0.2.54",
  signed_dns     = "192.0.2.55",  -- nsd serving ".", sec.lab.test and the bogus zone
  zone           = "lab.test",
  external_rcpt  = "relay-test@example.com",  -- a non-lab recipient for relay checks
  lab_rcpt       = "postmaster@good.lab.test", -- a recipient every lab server accepts
}

-- Every address the lab uses. kind: postfix | scripted | fault | dns.
-- tls: protocol versions the server speaks after STARTTLS (false: no STARTTLS).
-- cert: "valid" (chains to ca_file via the intermediate, name matches), or
-- what is wrong with it. relay: first digit-group of the RCPT reply for an
-- external recipient; rcpt: reply for a lab recipient;
-- postmaster: reply to RCPT TO postmaster@<domain> when it is not the rcpt one.
local T12_13 = { "TLSv1.2", "TLSv1.3" }
local function pf(mode, host, extra)
  local s = { kind = "postfix", mode = mode, host = host, port = 25, tls = T12_13,
              cert = "valid", relay = 550, rcpt = 250 }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end
local function sc(mode, behaviour)
  return { kind = "scripted", mode = mode, host = mode .. ".mx.lab.test", port = 25,
           behaviour = behaviour, script = "tests/lab/fakesmtp.py" }
end

W.servers = {
  ["192.0.2.53"]    = { kind = "dns", mode = "nsd", host = "ns.lab.test", port = 53 },
  ["2001:db8::53"]  = { kind = "dns", mode = "nsd", host = "ns.lab.test", port = 53 },
  ["192.0.2.54"]    = { kind = "dns", mode = "unbound", host = "resolver.lab.test", port = 53,
                        behaviour = "validating resolver; trust anchors: the lab root and sec.lab.test" },
  ["192.0.2.55"]    = { kind = "dns", mode = "nsd", host = "ns.sec.lab.test", port = 53,
                        behaviour = "the signed zones: the lab root, sec.lab.test, _tcp.dane-bogus.mx.sec.lab.test" },

  ["192.0.2.10"]    = pf("good",  "good.mx.lab.test",
                         { san = { "good.mx.lab.test", "implicit.lab.test", "*.many-mx.lab.test", "*.mx.sec.lab.test" },
                           tlsa = "3 1 1 (SHA-256 of the leaf's SPKI, made at up time)" }),
  ["192.0.2.11"]    = pf("good2", "good2.mx.lab.test", { relay = 554 }),  -- 554 5.7.1 Relay access denied
  ["192.0.2.12"]    = pf("good3", "good3.mx.lab.test"),
  ["192.0.2.13"]    = pf("good4", "good4.mx.lab.test"),
  ["192.0.2.14"]    = pf("dual",  "dual.mx.lab.test"),
  ["2001:db8::14"]  = pf("dual",  "dual.mx.lab.test"),
  ["2001:db8::15"]  = pf("ipv6-only", "ipv6-only.mx.lab.test"),

  ["198.51.100.20"] = pf("expired",     "expired.mx.lab.test",     { cert = "expired (notAfter 30 days ago)" }),
  ["198.51.100.21"] = pf("wrong-name",  "wrong-name.mx.lab.test",  { cert = "name mismatch (issued to somebody-else.lab.test)" }),
  ["198.51.100.22"] = pf("self-signed", "self-signed.mx.lab.test", { cert = "self-signed (not issued by the lab CA)" }),
  ["198.51.100.23"] = pf("no-starttls", "no-starttls.mx.lab.test", { tls = false, cert = false }),
  ["198.51.100.24"] = pf("open-relay",  "open-relay.mx.lab.test",  { relay = 250 }),
  ["198.51.100.25"] = pf("greylist",    "greylist.mx.lab.test",    { rcpt = 451, relay = 451 }),  -- 451 4.7.1 before the relay decision
  ["198.51.100.26"] = pf("expiring",    "expiring.mx.lab.test",    { cert = "valid, expires in 10 days" }),
  ["198.51.100.27"] = pf("tls10",       "tls10.mx.lab.test",       { tls = { "TLSv1", "TLSv1.1" },
                         cert = "valid (needs @SECLEVEL=0 on the client to negotiate at all)" }),
  ["198.51.100.60"] = pf("legacy",      "legacy.mx.lab.test",      { tls = { "TLSv1", "TLSv1.1", "TLSv1.2" },
                         cert = "RSA 2048; suites AES128-SHA, AES256-SHA, AES128-GCM-SHA256, DHE-RSA-AES128-SHA (2048-bit group), NULL-SHA256" }),
  ["198.51.100.61"] = pf("dualcert",    "dualcert.mx.lab.test",    { cert = "two certificates: ECDSA P-256 and RSA 2048, same name" }),
  ["198.51.100.62"] = pf("mixed-new",   "mixed.mx.lab.test",       { cert = "same name as 198.51.100.63; TLS 1.2 and 1.3 only" }),
  ["198.51.100.63"] = pf("mixed-old",   "mixed.mx.lab.test",       { tls = { "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3" },
                         cert = "same name as 198.51.100.62; also TLS 1.0 and 1.1" }),
  ["198.51.100.28"] = pf("no-postmaster", "no-postmaster.mx.lab.test", { postmaster = 550 }),  -- 550 5.1.1 to RCPT TO postmaster@

  ["203.0.113.30"]  = sc("slow-greeting",   "sends 220 only after 35 s"),
  ["203.0.113.31"]  = sc("tls-broken",      "offers STARTTLS, says 220, then sends non-TLS bytes and closes"),
  ["203.0.113.32"]  = sc("starttls-inject", "sends '250 injected' in plaintext right after its STARTTLS 220"),
  ["203.0.113.33"]  = sc("starttls-exec",   "answers plaintext commands pipelined after STARTTLS inside TLS"),
  ["203.0.113.34"]  = sc("endless",         "220- continuation lines forever (10 min cap)"),
  ["203.0.113.35"]  = sc("drip",            "a two-line 220 greeting one byte per second (about 70 s)"),
  ["203.0.113.36"]  = sc("garbage",         "random binary bytes, NUL first, instead of a greeting"),
  ["203.0.113.37"]  = sc("greet-421",       "greets 421 4.3.2 and closes"),
  ["203.0.113.38"]  = sc("greet-554",       "greets 554 5.3.2, then 503 to all but QUIT"),
  ["203.0.113.39"]  = sc("greet-nohost",    "greets '220 ESMTP' without a host name"),
  ["203.0.113.40"]  = sc("double-greeting", "two 220 greetings in one write (proxy banner, then the MTA's)"),
  ["203.0.113.41"]  = sc("early-reply", "offers no PIPELINING; answers MAIL with 250 and, in the same write, a 554 for the RCPT not sent yet"),
  ["203.0.113.42"]  = sc("greet-554-listed", "greets 554 5.7.1 naming a DNSBL (zen.spamhaus.org), then 503 to all but QUIT"),
  ["203.0.113.43"]  = sc("long-greeting", "a 220 greeting line of 700 KiB, then a normal dialog"),
  ["203.0.113.44"]  = sc("ehlo-flood", "answers EHLO with 152 lines (past the 100-line cap)"),
  ["203.0.113.45"]  = sc("starttls-sync", "554 and close to a command pipelined after STARTTLS (Postfix 3.9's smtpd_forbid_unauth_pipelining)"),

  ["203.0.113.97"]  = { kind = "fault", mode = "refused",     host = "refused.mx.lab.test",
                        behaviour = "nothing listens: connection refused at once" },
  ["203.0.113.98"]  = { kind = "fault", mode = "unreachable", host = "unreachable.mx.lab.test",
                        behaviour = "unreachable route: EHOSTUNREACH at once" },
  ["203.0.113.99"]  = { kind = "fault", mode = "timeout",     host = "dropped.mx.lab.test",
                        behaviour = "packets silently dropped: connect() times out" },
  ["127.0.0.1"]     = { kind = "fault", mode = "loopback",    host = "loopback.mx-private.lab.test",
                        behaviour = "loopback; nothing listens on port 25 in the lab namespace" },
}

-- Host name -> addresses, as the lab DNS answers (A first, then AAAA).
local H = {}
for addr, s in pairs(W.servers) do
  if s.kind ~= "dns" then H[s.host] = H[s.host] or {}; table.insert(H[s.host], addr) end
end
for _, list in pairs(H) do
  table.sort(list, function(a, b)  -- IPv4 before IPv6, then by text
    local a6, b6 = a:find(":") ~= nil, b:find(":") ~= nil
    if a6 ~= b6 then return b6 end
    return a < b
  end)
end
local pool = { "192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13" }
for i = 1, 12 do H[string.format("mx%02d.many-mx.lab.test", i)] = { pool[(i - 1) % 4 + 1] } end
W.hosts = H

local function mx(pref, host, extra)
  local m = { pref = pref, host = host, addrs = H[host] or {} }
  for k, v in pairs(extra or {}) do m[k] = v end
  return m
end

-- problem: a short slug ("none" for healthy); wrong: what is wrong, in words;
-- diagnosis: what a correct mxprobe report says. Scripted-server domains all
-- have one MX on <mode>.mx.lab.test.
local function d(name, problem, wrong, diagnosis, mxs, extra)
  local t = { name = name .. ".lab.test", problem = problem, wrong = wrong,
              diagnosis = diagnosis, mx = mxs or {} }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end
local function one(host) return { mx(10, host) } end

local many = {}
for i = 1, 12 do many[i] = mx(i * 10, string.format("mx%02d.many-mx.lab.test", i)) end

W.domains = {
  d("good", "none", "nothing",
    "all good: MX reachable, 220, EHLO, STARTTLS with TLS 1.3, valid chain, relay denied (550)",
    one("good.mx.lab.test"), { txt = { { "v=spf1 mx -all" }, { "mxlab=good", "second string" } },
                               tlsa = "_25._tcp.good.mx.lab.test" }),
  d("two-mx", "none", "nothing (two MX, both fine)",
    "all good on both MX; good2 denies relay with 554 5.7.1 (read the text, not only the code)",
    { mx(10, "good.mx.lab.test"), mx(20, "good2.mx.lab.test") }),
  d("bad-secondary", "secondary-self-signed", "the backup MX (pref 20) has a self-signed certificate",
    "primary fine; secondary MX certificate not trusted (self-signed)",
    { mx(10, "good.mx.lab.test"), mx(20, "self-signed.mx.lab.test") }),
  d("implicit", "no-mx", "no MX record; an A record on the domain itself",
    "no MX: falls back to the implicit MX (A of the domain, RFC 5321 5.1); that host works",
    {}, { implicit = { host = "implicit.lab.test", addrs = { "192.0.2.10" } } }),
  d("null-mx", "null-mx", "MX 0 \".\" (RFC 7505): the domain accepts no mail",
    "null MX: domain explicitly accepts no mail; nothing to connect to",
    { { pref = 0, host = ".", addrs = {} } }, { null_mx = true }),
  d("mx-cname", "mx-cname", "the MX target is a CNAME (alias.mx-cname -> good.mx)",
    "MX points to an alias (RFC 2181 10.3); mail still flows via good.mx.lab.test",
    { mx(10, "alias.mx-cname.lab.test", { cname = "good.mx.lab.test", addrs = { "192.0.2.10" } }) }),
  d("mx-noaddr", "mx-no-address", "the MX target name does not exist (NXDOMAIN)",
    "MX host nowhere.mx-noaddr.lab.test has no address: no server to try",
    { mx(10, "nowhere.mx-noaddr.lab.test", { rcode = "NXDOMAIN" }) }),
  d("mx-ip", "mx-ip-literal", "the MX target is an IP address written as a name (192.0.2.10.)",
    "MX must be a host name, not an IP literal; the name 192.0.2.10. does not resolve",
    { mx(10, "192.0.2.10", { rcode = "REFUSED" }) }),  -- lab nsd refuses names outside its zones
  d("nxdomain", "nxdomain", "the domain does not exist",
    "domain does not exist (NXDOMAIN)", {}, { rcode = "NXDOMAIN" }),
  d("refused", "connect-refused", "nothing listens on port 25 of the MX",
    "connection refused on 203.0.113.97:25", one("refused.mx.lab.test")),
  d("timeout", "connect-timeout", "packets to the MX are silently dropped",
    "connection to 203.0.113.99:25 timed out", one("dropped.mx.lab.test")),
  d("unreachable", "unreachable", "no route to the MX",
    "host unreachable (203.0.113.98)", one("unreachable.mx.lab.test")),
  d("many-mx", "many-mx", "12 MX records (all pointing at working servers)",
    "12 MX hosts: works; a prober may cap how many it tries and should say so", many),
  d("dual-stack", "none", "nothing (MX with A and AAAA)",
    "works over IPv4 and IPv6", one("dual.mx.lab.test")),
  d("ipv6-only", "ipv6-only", "the MX has only an AAAA record",
    "reachable over IPv6 only; IPv4-only senders cannot deliver", one("ipv6-only.mx.lab.test")),
  d("expired", "cert-expired", "the MX's certificate expired 30 days ago",
    "TLS works but the certificate has expired", one("expired.mx.lab.test")),
  d("wrong-name", "cert-name-mismatch", "the certificate is for somebody-else.lab.test",
    "certificate does not match the MX name wrong-name.mx.lab.test", one("wrong-name.mx.lab.test")),
  d("self-signed", "cert-self-signed", "the certificate is self-signed",
    "certificate not trusted: self-signed", one("self-signed.mx.lab.test")),
  d("no-starttls", "no-starttls", "the MX does not offer STARTTLS",
    "no STARTTLS in EHLO: mail travels in clear text", one("no-starttls.mx.lab.test")),
  d("open-relay", "open-relay", "the MX accepts mail for any domain",
    "OPEN RELAY: RCPT to an external domain accepted with 250", one("open-relay.mx.lab.test")),
  d("greylist", "greylisting", "the MX answers RCPT with 451 4.7.1",
    "temporary failure on RCPT (greylisting?): retry later; not a hard error", one("greylist.mx.lab.test")),
  d("expiring", "cert-expiring", "the certificate expires in about 10 days",
    "certificate valid but expires within the warning horizon", one("expiring.mx.lab.test")),
  d("tls10", "tls-old-version", "the MX speaks only TLS 1.0/1.1",
    "STARTTLS offered but only TLS 1.0/1.1: handshake fails with a modern client (or is weak)",
    one("tls10.mx.lab.test")),
  d("legacy", "tls-weak-offer", "TLS 1.0-1.2 with static RSA, DHE-2048 and NULL suites only",
    "weak TLS offer: versions to phase out, no forward-secret AEAD suite, a NULL cipher", one("legacy.mx.lab.test")),
  d("dualcert", "two-certificates", "the MX has an ECDSA and an RSA certificate",
    "both certificates are found and checked", one("dualcert.mx.lab.test")),
  d("mixed", "inconsistent-addresses", "the two addresses of the MX differ in TLS versions",
    "198.51.100.63 offers TLS 1.0/1.1, 198.51.100.62 does not", one("mixed.mx.lab.test")),
  d("dup-mx", "duplicate-mx", "the same host is listed twice (pref 10 and 20)",
    "duplicate MX host: same server counted once; no real backup",
    { mx(10, "good.mx.lab.test"), mx(20, "good.mx.lab.test") }),
  d("mx-private", "mx-loopback", "the MX host resolves to 127.0.0.1",
    "MX address is loopback (not routable on the Internet); connection refused",
    one("loopback.mx-private.lab.test")),
  d("slow-greeting", "slow-greeting", "220 arrives only after 35 s",
    "greeting timeout (or 'slow greeting: 35 s' if the prober waits that long)", one("slow-greeting.mx.lab.test")),
  d("tls-broken", "tls-handshake-fails", "STARTTLS accepted, then no TLS handshake",
    "STARTTLS offered but the TLS handshake fails", one("tls-broken.mx.lab.test")),
  d("starttls-inject", "starttls-injection", "plaintext bytes follow the STARTTLS 220",
    "server sent data after 220 to STARTTLS (injection risk); a careful client aborts",
    one("starttls-inject.mx.lab.test")),
  d("starttls-exec", "starttls-command-injection", "pipelined plaintext after STARTTLS is executed inside TLS",
    "vulnerable to STARTTLS command injection (CVE-2011-0411 class)", one("starttls-exec.mx.lab.test")),
  d("endless", "endless-greeting", "the greeting is an endless 220- multiline reply",
    "greeting too long / never ends: client bound reached", one("endless.mx.lab.test")),
  d("drip", "drip", "the greeting comes one byte per second",
    "greeting one byte per second (about 70 s): the greeting deadline ends it", one("drip.mx.lab.test")),
  d("garbage", "garbage", "the server sends random binary bytes",
    "not an SMTP server: invalid greeting", one("garbage.mx.lab.test")),
  d("greet-421", "greeting-421", "the greeting is 421 (service not available)",
    "server refuses service (421 at greeting): temporary", one("greet-421.mx.lab.test")),
  d("greet-554", "greeting-554", "the greeting is 554 (no SMTP service)",
    "server refuses service (554 at greeting): permanent", one("greet-554.mx.lab.test")),
  d("greet-nohost", "greeting-no-hostname", "the greeting is '220 ESMTP' without a host name",
    "greeting lacks the host name required by RFC 5321 4.2; otherwise works", one("greet-nohost.mx.lab.test")),
  d("double-greeting", "double-greeting", "a front-end sends its own 220, then the MTA's 220 follows",
    "second greeting noted (protocol warning); every reply still paired with its command: relay denied, not open",
    one("double-greeting.mx.lab.test")),
  d("early-reply", "early-reply", "the server answers RCPT before RCPT is sent (with the reply to MAIL)",
    "unsolicited reply noted; the relay probe is inconclusive, never an open relay", one("early-reply.mx.lab.test")),
  d("greet-554-listed", "greeting-554-blocklist", "the greeting is 554 naming a DNSBL (blocked using zen.spamhaus.org)",
    "the tester's address may be listed: inconclusive, not 'refuses all mail'", one("greet-554-listed.mx.lab.test")),
  d("long-greeting", "long-greeting", "the greeting line is 700 KiB (RFC 5321 allows 512 octets)",
    "overlong line reported with its length; STARTTLS and relay are still tested", one("long-greeting.mx.lab.test")),
  d("ehlo-flood", "ehlo-too-many-lines", "the EHLO reply has 152 lines",
    "EHLO reply exceeded 100 lines (said as such; HELO never sent)", one("ehlo-flood.mx.lab.test")),
  d("starttls-sync", "starttls-pipelining-refused", "a command pipelined after STARTTLS is refused with 554 and the connection closed",
    "the carried injection probe is refused: STARTTLS is tested again on a clean session (TLS 1.3), injection safe",
    one("starttls-sync.mx.lab.test")),
  d("no-postmaster", "no-postmaster", "RCPT TO postmaster@ the domain is rejected with 550",
    "postmaster rejected (RFC 5321 4.5.1): warning; otherwise works", one("no-postmaster.mx.lab.test")),
}

-- The DNSSEC cases (tests/lab/dnssec.sh, zone tests/lab/dnssec/sec.lab.test.zone),
-- asked through the validating resolver; tests/integration/dane_spec.lua
-- holds their exact codes. posttls: what `posttls-finger -l dane` says (a
-- string, or a list of strings that must all appear).
local function sec(name, mxhost, addr, tlsa, dane, posttls)
  return { name = name .. ".sec.lab.test", mx = { { pref = 10, host = mxhost .. ".mx.sec.lab.test", addrs = { addr } } },
           tlsa = tlsa, dane = dane, posttls = posttls }
end
W.dnssec_domains = {
  sec("dane-ee", "dane-ee", "192.0.2.10", "3 1 1 (good's key)", "match (DANE-EE)", "Verified TLS connection"),
  sec("dane-ta", "dane-ta", "192.0.2.10", "2 0 1 (the lab intermediate)", "match (DANE-TA, name *.mx.sec.lab.test)", "Verified TLS connection"),
  sec("dane-mismatch", "dane-mismatch", "192.0.2.10", "3 1 1 (good2's key: stale)", "mismatch", "no matching DANE TLSA records"),
  sec("dane-expired", "dane-expired", "198.51.100.20", "3 1 1 (the expired leaf's key)", "match: DANE-EE ignores dates", "Verified TLS connection"),
  sec("dane-rollover", "dane-rollover", "198.51.100.26", "3 1 1 (a leaf expiring in 10 days), no next key", "match, rollover warning", "Verified TLS connection"),
  sec("dane-pkix", "dane-pkix", "192.0.2.10", "1 1 1 (PKIX-EE)", "unusable for SMTP", "unsupported TLSA certificate usage"),
  sec("dane-bogus", "dane-bogus", "192.0.2.10", "3 1 1 in a zone with expired signatures", "bogus (SERVFAIL)", "TLSA lookup error"),
  sec("nodane", "nodane", "192.0.2.10", nil, "none (signed, no TLSA)", "Untrusted TLS connection"),
  -- the MX host is a CNAME (signed chain): TLSA at the expanded name
  -- first, then at the original (RFC 7672 2.2.2); DANE-TA names the base domain
  sec("dane-cname", "dane-cname", "192.0.2.10", "2 0 1 at the expanded name dane-cname-host.mx; a stale 3 1 1 at the original",
      "match at the expanded name (DANE-TA)",
      { "DNSSEC-signed TLSA record: _25._tcp.dane-cname-host.mx.sec.lab.test: 2 0 1", "Verified TLS connection" }),
  sec("dane-cname-fb", "dane-cname-fb", "192.0.2.10", "3 1 1 (good's key) at the original name only",
      "match at the original name",
      { "DNSSEC-signed TLSA record: _25._tcp.dane-cname-fb.mx.sec.lab.test: 3 1 1", "Verified TLS connection" }),
  sec("dane-cname-name", "dane-cname-name", "192.0.2.10", "2 0 1 at the expanded name dane-cname-name-host, which the certificate does not name",
      "DANE-TA name check fails (the original MX name is no reference identifier)",
      { "DNSSEC-signed TLSA record: _25._tcp.dane-cname-name-host.sec.lab.test: 2 0 1", "num=62:hostname mismatch",
        "Untrusted TLS connection" }),
}
-- and the TLSA in the unsigned zone: _25._tcp.good.mx.lab.test (good.lab.test)

-- The MTA-STS and TLS-RPT cases (zones/sts.lab.test.zone; the policy host is
-- nginx on 192.0.2.80, tests/lab/mtasts.sh). tests/integration/mta_sts_spec.lua
-- holds their exact codes; mta_sts_query: what `mta-sts-query` says.
W.policy_host = "192.0.2.80"
W.servers["192.0.2.80"] = { kind = "https", mode = "nginx", host = "mta-sts.*.sts.lab.test", port = 443,
                            behaviour = "MTA-STS policy host: one policy per mta-sts.<domain> (SNI)" }
local function sts(name, mxs, policy, tlsrpt, query)
  return { name = name .. ".sts.lab.test", mx = mxs, policy = policy, tlsrpt = tlsrpt, mta_sts_query = query }
end
W.sts_domains = {
  sts("enforce", { mx(10, "good.mx.lab.test") }, "enforce, mx good.mx.lab.test", "mailto:", "STSFetchResult.VALID"),
  sts("other-mx", { mx(10, "good.mx.lab.test") }, "enforce, mx elsewhere.mx.lab.test", "https:", "STSFetchResult.VALID"),
  sts("testing", { mx(10, "self-signed.mx.lab.test") }, "testing, mx self-signed.mx.lab.test", "malformed (ftp:)", "STSFetchResult.VALID"),
  sts("wildcard", { mx(10, "good.mx.lab.test"), mx(20, "good2.mx.lab.test") }, "enforce, mx *.mx.lab.test", nil, "STSFetchResult.VALID"),
  sts("notfound", { mx(10, "good.mx.lab.test") }, "404", nil, "STSFetchResult.FETCH_ERROR"),
  sts("wrongcert", { mx(10, "good.mx.lab.test") }, "policy host certificate for somebody-else.lab.test", nil, "STSFetchResult.FETCH_ERROR"),
  sts("expired-mx", { mx(10, "expired.mx.lab.test") }, "enforce, mx expired.mx.lab.test (certificate expired)", nil, "STSFetchResult.VALID"),
  sts("host-expiring", { mx(10, "good.mx.lab.test") }, "enforce, max_age 1209600, policy host certificate ends in 19 days", nil,
      "STSFetchResult.VALID"),
}

-- by_name["good.lab.test"] -> the domain entry
W.by_name = {}
for _, dom in ipairs(W.domains) do W.by_name[dom.name] = dom end

-- tests/lab/up --scale N: generated domains, listed in state_dir/scale-domains.txt
W.scale = {
  zone = "scale.lab.test",
  pattern = "d%05d.scale.lab.test",   -- 1 .. N
  list_file = "/tmp/mxprobe-lab/scale-domains.txt",
  pool = { "good.mx.lab.test", "good2.mx.lab.test", "good3.mx.lab.test", "good4.mx.lab.test" },
  rule = "i % 20 == 0: MX 10 dropped.mx.lab.test (timeout); else MX 10 pool[i % 4 + 1], "
      .. "and if i % 3 == 0 also MX 20 pool[(i + 1) % 4 + 1]",
}

return W
