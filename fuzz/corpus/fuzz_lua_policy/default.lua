-- The default policy: how findings are judged.  Checks only observe and
-- report finding codes; severities, weights, thresholds, the score, the
-- grade and the domain verdict come from here.  A site policy (--policy
-- FILE) is merged over this table: records and maps merge key by key,
-- lists and single values replace.  docs/policies.md describes every field.
return {
  name = "default",
  description = "The stock judgement: worst conclusive finding decides; 100 minus weights per server",

  -- Thresholds the stock checks read (ctx:threshold(name)).
  thresholds = {
    greeting_slow_s = 30,        -- banner: a greeting slower than this is BANNER_SLOW
    expiry_warning_days = 30,    -- certificate: leaf or intermediate ending sooner is CERT_EXPIRING
    min_rsa_bits = 2048,         -- certificate: smaller RSA keys are CERT_WEAK_KEY
    min_ec_bits = 224,           -- certificate: smaller EC keys are CERT_WEAK_KEY
    min_tls = "TLSv1.2",         -- starttls: TLS 1.2 when this says TLSv1.3 is TLS_VERSION_BELOW_POLICY
                                 -- (older versions are TLS_VERSION_DEPRECATED whatever it says)
    max_mx = 10,                 -- mx: MX hosts tested per domain (MX_TOO_MANY beyond)
    max_addresses = 8,           -- address: addresses tested per MX host (ADDRESS_TOO_MANY beyond)
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

  -- Grade bands: { minimum score, grade }, highest first.
  grades = { { 90, "A" }, { 75, "B" }, { 60, "C" }, { 40, "D" }, { 0, "F" } },

  -- Probe parameters (command-line options override them).
  probe = {
    port = 25,
    helo = nil,                              -- default: this machine's host name
    families = { 4, 6 },
    timeouts = { connect = 10, greeting = 60, command = 30, tls = 20, dns = 5 },
    -- politeness and resource caps, shared by every domain of a run
    limits = { sessions_per_address = 2, connects_per_second_per_address = 0, max_sessions = 0,
               max_dns_queries = 128 },
    relay = { enabled = true, from = "mxprobe@mxprobe.example", to = "relay-test@example.com" },
    -- kinds of non-global addresses to probe anyway, for test networks:
    -- "documentation", "loopback", "private", ... (--allow-reserved)
    allow_reserved = {},
    -- ca_file = "/etc/ssl/certs/ca-certificates.crt",  -- default: the system trust store
  },

  -- Which checks run: only, enable, disable (ids), disable_categories.
  checks = { disable = {} },

  -- Options of checks that declare some: options = { check_id = { name = value } }.
  options = {},

  -- Domain-level rules: function(result, api) or { name =, check = function(result, api) }
  -- (docs/policies.md).
  rules = {},
}
