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
    -- certificate defects every verifying sender treats alike: one weight
    -- (and one severity: senders.certificate_defects below)
    CERT_EXPIRED = { weight = 15 },
    CERT_NOT_YET_VALID = { weight = 15 },
    CERT_UNTRUSTED = { weight = 15 },
    CERT_SELF_SIGNED = { weight = 15 },
    CERT_NAME_MISMATCH = { weight = 15 },
    STARTTLS_NOT_OFFERED = { weight = 60 },
    RELAY_OPEN = { weight = 100 },
  },

  -- The verdict from the sender matrix (what opportunistic, MTA-STS, DANE
  -- and strict senders do; lua/mxprobe/policy/sender_verdict.lua): a
  -- mechanism the domain opted into (MTA-STS enforce, DANE) or the
  -- opportunistic senders failing is critical (SENDERS_MTA_STS_FAIL,
  -- SENDERS_DANE_FAIL, SENDERS_OPPORTUNISTIC_FAIL), only the strict client
  -- failing a warning (SENDERS_STRICT_FAIL); a kind that stops delivering
  -- within thresholds.expiry_warning_days is SENDERS_BREAK_SOON (warning).
  -- Their severities change like any code's, in findings above.
  senders = {
    judge = true,                    -- false: no SENDERS_* findings, the checks' severities alone
    -- expired, not yet valid, self-signed, untrusted, wrong name: every
    -- verifying sender refuses them alike and opportunistic senders deliver
    -- encrypted whatever the defect, so one severity (false: the checks' own);
    -- the SENDERS_* findings say who fails
    certificate_defects = "warning",
  },

  -- Grade bands: { minimum score, grade }, highest first.
  grades = { { 90, "A" }, { 75, "B" }, { 60, "C" }, { 40, "D" }, { 0, "F" } },

  -- Probe parameters (command-line options override them).
  probe = {
    port = 25,
    helo = nil,                              -- default: this machine's host name
    families = { 4, 6 },
    -- cpu: seconds a check, rule or policy function may compute without
    -- waiting before it is stopped (CHECK_ERROR / POLICY_RULE naming the line)
    timeouts = { connect = 10, greeting = 60, command = 30, tls = 20, dns = 5, cpu = 10 },
    -- politeness and resource caps, shared by every domain of a run
    limits = { sessions_per_address = 2, connects_per_second_per_address = 0, max_sessions = 0,
               max_dns_queries = 128 },
    -- TLS offer (checks/tls_offer.lua): "versions" (one handshake per
    -- version), "grades" (+ cipher classes, key exchange, preference, both
    -- certificates, modern client: about 13 handshakes), "suites" (+ every
    -- accepted suite), or false (only the negotiated version and cipher)
    tls = { enumerate = "grades" },
    -- a reference host ("HOST[:PORT]") to connect to when the run starts, so
    -- that a timeout can be told from a blocked port 25 here (--vantage-check)
    vantage_check = nil,
    -- kinds of non-global addresses to probe anyway, for test networks:
    -- "documentation", "loopback", "private", ... (--allow-reserved)
    allow_reserved = {},
    -- ca_file = "/etc/ssl/certs/ca-certificates.crt",  -- default: the system trust store
  },

  -- Which checks run: only, enable, disable (ids), disable_categories.
  checks = { disable = {} },

  -- Options of checks that declare some: options = { check_id = { name = value } }
  -- (the relay probe's addresses: options = { relay = { from = , to = } }).
  options = {},

  -- Domain-level rules: function(result, api) or { name =, check = function(result, api) }
  -- (docs/policies.md).
  rules = {},
}
