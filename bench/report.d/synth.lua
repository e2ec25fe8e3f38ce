-- bench/report.d/synth.lua N OUT [SEED]: N synthetic audit records (JSON
-- Lines, the shape of `mxprobe audit` compact records) for bench/report and
-- the report spec.  Deterministic for a seed: providers, verdicts, codes,
-- TLS versions and certificate ends are drawn from fixed mixes.
local json = require "mxprobe.report.json"
local n, out, seed = tonumber(arg[1]), arg[2], tonumber(arg[3] or "1")
assert(n and out, "usage: synth.lua N OUT [SEED]")
math.randomseed(seed)
local T0 = 1796000000 -- the audit's time: 2026-11-29
local PROVIDERS = { "mail.protection.example.com", "aspmx.example.net", "mx.example.org", "smtp.example.biz",
                    "in.example.info", "mx%d.hosting.example" }
local MIX = {
  { "ok", {}, "TLSv1.3", 100, "A" }, { "ok", {}, "TLSv1.2", 100, "A" },
  { "warning", { { "CERT_EXPIRING", "warning" } }, "TLSv1.3", 85, "B" },
  { "warning", { { "TLS_VERSION_DEPRECATED", "warning" } }, "TLSv1", 70, "C" },
  { "critical", { { "CERT_EXPIRED", "critical" } }, "TLSv1.2", 40, "D" },
  { "critical", { { "STARTTLS_NOT_OFFERED", "critical" } }, nil, 30, "E" },
  { "inconclusive", { { "CONNECT_TIMEOUT", "inconclusive" }, { "CONNECT_ALL_TIMEOUT", "inconclusive" } }, nil, 0, "F" },
}
local f = assert(io.open(out, "wb"))
for i = 1, n do
  local d = ("d%06d.bench.example"):format(i)
  local m = MIX[math.random(1, #MIX)]
  local ph = PROVIDERS[i % #PROVIDERS + 1]:format(i % 40)
  local host = "mx." .. ph
  local findings = {
    { code = "CONNECT_OK", check = "connect", severity = "ok", message = ("Port 25 open (%.3f s)"):format(math.random() / 10) },
    { code = "BANNER_OK", check = "banner", severity = "ok", message = "220 " .. host .. " ESMTP" },
  }
  for _, c in ipairs(m[2]) do
    findings[#findings + 1] = { code = c[1], check = "x", severity = c[2], message = c[1]:lower():gsub("_", " ") .. " on " .. host }
  end
  local facts = { connect = { state = "connected", seconds = 0.01 } }
  if m[3] then
    local days = m[2][1] and m[2][1][1] == "CERT_EXPIRED" and -math.random(1, 30) or math.random(1, 400)
    if m[2][1] and m[2][1][1] == "CERT_EXPIRING" then days = math.random(1, 20) end
    facts.starttls = { offered = true, accepted = true, handshake = true, version = m[3], cipher = "TLS_AES_256_GCM_SHA384", bits = 256 }
    facts.certificate = { not_after = T0 + days * 86400, days_left = days, fingerprint_sha256 = ("%064x"):format(i % 5000),
                          subject = "CN=" .. host, verified = true, name_match = true }
  end
  local r = {
    schema = 1, domain = d, verdict = m[1], exit_code = ({ ok = 0, warning = 1, critical = 2, inconclusive = 3 })[m[1]],
    policy = "default", started = os.date("!%Y-%m-%dT%H:%M:%SZ", T0 + i // 100), duration_s = 0.05,
    dns = { mx = { { preference = 10, host = host, addresses = { "192.0.2." .. (i % 250 + 1) } } }, findings = json.array() },
    servers = { { host = host, address = "192.0.2." .. (i % 250 + 1), family = 4, port = 25, preference = 10,
                  score = m[4], grade = m[5], facts = facts, findings = findings } },
    findings = json.array(),
    provenance = { mxprobe = "bench", ehlo = "bench.example", policy = { name = "default" } },
  }
  f:write(json.render(r))
end
f:close()
