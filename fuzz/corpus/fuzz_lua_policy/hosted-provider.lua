-- A domain whose mail is hosted at a big provider (here Microsoft 365;
-- Google Workspace in the comments).  The provider runs the servers: their
-- TLS settings, greetings and PTR records are not ours to fix, and probing
-- their relay is pointless and impolite.  What *is* ours is DNS: every MX
-- must point at the provider, and an MX left over from the old on-premises
-- server (mail sent there skips the provider's filtering) is critical.
--
--   mxprobe --policy examples/policies/hosted-provider.lua example.org
--
-- Set params.mx_patterns for your provider:
--   Microsoft 365:     { "*.mail.protection.outlook.com" }
--   Google Workspace:  { "aspmx.l.google.com", "alt*.aspmx.l.google.com", "smtp.google.com" }

-- Warnings about things the provider runs become information.
local PROVIDER_SIDE = {
  BANNER_SLOW = true, BANNER_NO_HOSTNAME = true, BANNER_PTR_MISSING = true,
  EHLO_HELO_ONLY = true, EHLO_AUTH_BEFORE_TLS = true, TLS_VERSION_DEPRECATED = true,
  TLS_WEAK_CIPHER = true, TLS_VERSION_BELOW_POLICY = true, CERT_WEAK_KEY = true, CERT_SHA1 = true,
  CERT_EXPIRING = true,
}

return {
  name = "hosted-provider",
  description = "Mail hosted at a big provider: our DNS must point at it; their servers are theirs",

  params = {
    provider = "Microsoft 365",
    mx_patterns = { "*.mail.protection.outlook.com" },
  },

  thresholds = {
    max_mx = 4,          -- providers publish one to five MX; more means leftovers
    max_addresses = 4,   -- their hosts have many addresses; four tell enough
  },

  findings = {
    ADDRESS_NO_IPV6 = { severity = "ok" },
    MX_NONE_IMPLICIT = { severity = "critical" },   -- no MX: mail goes to the web server
    MX_TOO_MANY = { severity = "warning" },
  },

  probe = {
    timeouts = { greeting = 30 },
  },

  -- the relay probe and the STARTTLS injection probe test the provider, not us
  checks = { disable_categories = { "security" } },

  rules = {
    {
      name = "every MX is at the provider",
      check = function(result, api)
        local p = api.params
        for _, mx in ipairs(api.mx()) do
          if not api.match(mx.host, p.mx_patterns) then
            api.fail(("MX %s (preference %d) is not at %s: mail sent there bypasses the provider"):format(
              mx.host, mx.preference, p.provider),
              { hint = ("Remove it, or point it at the provider (%s)."):format(table.concat(p.mx_patterns, ", ")),
                evidence = { host = mx.host, preference = mx.preference } })
          end
        end
      end,
    },
    {
      name = "the provider's own servers are the provider's business",
      check = function(result, api)
        for f, srv in api.each() do
          if srv and PROVIDER_SIDE[f.code] and f.severity == "warning" and api.match(srv.host, api.params.mx_patterns) then
            api.set_severity(f, "info", api.params.provider .. " runs this server; open a ticket if it persists")
          end
        end
      end,
    },
  },
}
