-- The default policy: how findings are judged.  Checks only observe and
-- report finding codes; severities, weights, thresholds, the score, the
-- grade and the domain verdict come from here.  A site policy (--policy
-- FILE) is merged over this table: see docs/policies.md.
return {
  name = "default",

  -- Thresholds the checks read through ctx.policy.thresholds.
  thresholds = {
    greeting_slow_s = 30,        -- a greeting slower than this is BANNER_SLOW
    expiry_warning_days = 30,    -- certificates expiring sooner: CERT_EXPIRING
    min_rsa_bits = 2048,
    min_ec_bits = 224,
    min_tls = "TLSv1.2",         -- older negotiated versions: TLS_VERSION_DEPRECATED
    max_mx = 10,                 -- MX hosts tested per domain
    max_addresses = 8,           -- addresses tested per MX host
  },

  -- Score: 100 minus the weight of every finding (by severity unless the
  -- finding has its own weight below), never below 0.
  weights = { ok = 0, info = 0, warning = 10, critical = 50, inconclusive = 0, error = 0 },

  -- Per-code overrides: { severity = , weight = }.
  findings = {
    TLS_VERSION_12 = { weight = 2 },        -- acceptable, 1.3 is better
    CERT_UNTRUSTED = { weight = 15 },
    CERT_SELF_SIGNED = { weight = 15 },
    CERT_NAME_MISMATCH = { weight = 15 },
    STARTTLS_NOT_OFFERED = { weight = 60 },
    RELAY_OPEN = { weight = 100 },
  },

  grades = { { 90, "A" }, { 75, "B" }, { 60, "C" }, { 40, "D" }, { 0, "F" } },

  -- Probe parameters (command-line options override them).
  probe = {
    port = 25,
    helo = nil,                              -- default: this machine's host name
    families = { 4, 6 },
    timeouts = { connect = 10, greeting = 60, command = 30, tls = 20, dns = 5 },
    -- politeness and resource caps, shared by every domain of a run
    limits = { sessions_per_address = 2, connects_per_second_per_address = 0, max_sessions = 0 },
    relay = { enabled = true, from = "mxprobe@mxprobe.example", to = "relay-test@example.com" },
    -- kinds of non-global addresses to probe anyway, for test networks:
    -- "documentation", "loopback", "private", ... (--allow-reserved)
    allow_reserved = {},
  },

  checks = { disable = {} },

  -- Domain-level rules: functions(result, api) (docs/policies.md).
  rules = {},
}
