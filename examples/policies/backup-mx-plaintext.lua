-- A small site whose backup MX is an old box at a friend's: it may speak
-- plaintext or show a self-signed certificate, and that is a decision,
-- not an alarm.  The primary MX (lowest preference) is held to the full
-- standard, and the backup must still answer and refuse to relay.
--
--   mxprobe --policy examples/policies/backup-mx-plaintext.lua example.org

-- TLS problems that are accepted on a backup MX.
local RELAXED = {
  STARTTLS_NOT_OFFERED = true, STARTTLS_REJECTED = true, STARTTLS_HANDSHAKE_FAILED = true,
  CERT_UNTRUSTED = true, CERT_SELF_SIGNED = true, CERT_NAME_MISMATCH = true,
  CERT_EXPIRED = true, CERT_EXPIRING = true, TLS_VERSION_DEPRECATED = true,
  -- a client that verifies (OpenSSL 3 defaults) fails against a self-signed backup
  TLS_STRICT_CLIENT_FAILS = true,
}

return {
  name = "backup-mx-plaintext",
  description = "The backup MX may be plaintext or self-signed; the primary must do TLS properly",

  rules = {
    {
      name = "the backup MX may be plaintext",
      check = function(result, api)
        for f, srv in api.each() do
          if srv and api.is_backup(srv) and RELAXED[f.code] then
            api.set_severity(f, "info", "backup MX: plaintext or unauthenticated TLS is accepted here")
          end
        end
        -- "TLS works on some MX only" is expected when only backups lack it
        for f in api.each("TLS_INCONSISTENT") do
          local primary_weak = false
          for _, srv in ipairs(result.servers) do
            local t = srv.facts.starttls
            if not api.is_backup(srv) and not (t and t.handshake) then primary_weak = true end
          end
          if not primary_weak then api.set_severity(f, "info", "only backup MX lack TLS") end
        end
      end,
    },
    {
      name = "the primary MX does TLS",
      check = function(result, api)
        for _, srv in ipairs(result.servers) do
          local t = srv.facts.starttls
          if not api.is_backup(srv) and srv.facts.ehlo and not (t and t.handshake) then
            api.fail(("the primary MX %s (%s) does not complete STARTTLS"):format(srv.host, srv.address), { server = srv })
          end
        end
      end,
    },
  },
}
