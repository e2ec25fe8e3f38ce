-- A strict corporate policy: our own mail servers, our own CA, no excuses.
--
--   mxprobe --policy examples/policies/corporate-strict.lua corp.example
--
-- * TLS 1.3 only: TLS 1.2 or older on any MX is critical.
-- * Certificates must chain to the corporate CA (probe.ca_file) and name the
--   MX host; they must be renewed three weeks before they end.
-- * Every MX must be one of ours (params.allowed_mx), in at least two
--   networks, and the greeting must not tell the world what software runs.
-- * Backups are held to the same standard as the primary: an attacker can
--   steer mail to whichever MX is weakest.
-- Fill in params and probe for your site; the rules read api.params.

-- Words and version numbers a greeting should not show (lower case).
local SOFTWARE = { "postfix", "exim", "sendmail", "exchange", "microsoft", "qmail", "opensmtpd",
                   "haraka", "zimbra", "debian", "ubuntu", "red hat", "centos" }

return {
  name = "corporate-strict",
  description = "Corporate MX: TLS 1.3 only, corporate CA, our MX list, two networks, discreet greeting",

  params = {
    allowed_mx = { "mx1.corp.example", "mx2.corp.example" },  -- patterns: "*" within one label
    ca_name = "the Corp Mail CA",
  },

  thresholds = {
    min_tls = "TLSv1.3",
    expiry_warning_days = 21,
    greeting_slow_s = 10,
    min_rsa_bits = 3072,
    min_ec_bits = 256,
  },

  findings = {
    TLS_VERSION_12 = { weight = 10 },
    TLS_VERSION_BELOW_POLICY = { severity = "critical" },  -- TLS 1.2 when 1.3 is required
    TLS_VERSION_DEPRECATED = { severity = "critical" },
    CERT_NAME_MISMATCH = { severity = "critical" },
    CERT_WEAK_KEY = { severity = "critical" },
    CERT_SHA1 = { severity = "critical" },
    EHLO_AUTH_BEFORE_TLS = { severity = "critical" },
    TLS_INCONSISTENT = { severity = "critical" },
    BANNER_PTR_MISMATCH = { severity = "warning" },
  },

  grades = { { 95, "A" }, { 85, "B" }, { 70, "C" }, { 0, "F" } },

  probe = {
    helo = "mxprobe.corp.example",
    ca_file = "/etc/ssl/corp/mail-ca.pem",   -- chains are verified against this CA only
    timeouts = { greeting = 30 },
    relay = { from = "postmaster@corp.example", to = "relay-probe@outside.example" },
  },

  rules = {
    {
      name = "all MX in our list",
      description = "Every MX record names one of our mail servers",
      check = function(result, api)
        for _, mx in ipairs(api.mx()) do
          if not api.match(mx.host, api.params.allowed_mx) then
            api.fail(("MX %s (preference %d) is not one of ours (%s)"):format(mx.host, mx.preference,
              table.concat(api.params.allowed_mx, ", ")),
              { hint = "Remove the MX record, or add the host to params.allowed_mx if it is ours.",
                evidence = { host = mx.host } })
          end
        end
      end,
    },
    {
      name = "certificate chains to our CA",
      description = "An untrusted or self-signed certificate is critical, not a warning",
      check = function(result, api)
        for _, code in ipairs { "CERT_UNTRUSTED", "CERT_SELF_SIGNED" } do
          for f in api.each(code) do
            api.set_severity(f, "critical", "our MX must chain to " .. api.params.ca_name)
          end
        end
      end,
    },
    {
      name = "greeting reveals no software or version",
      check = function(result, api)
        for _, srv in ipairs(result.servers) do
          local b = srv.facts.banner
          if b and b.ok and b.text then
            local rest = b.text:gsub("^%S+%s*", ""):lower()   -- the host name may have digits
            local what = rest:match("%f[%w]v?%d+%.%d+[%.%d]*")
            for _, word in ipairs(SOFTWARE) do
              if rest:find(word, 1, true) then what = word; break end
            end
            if what then
              api.fail(("%s (%s) greets with %q, which reveals %q"):format(srv.host, srv.address, b.text, what),
                { server = srv, hint = "Postfix: smtpd_banner = $myhostname ESMTP" })
            end
          end
        end
      end,
    },
    {
      name = "at least two MX in different networks",
      check = function(result, api)
        local nets, list = {}, {}
        for _, srv in ipairs(result.servers) do
          local n = api.network(srv.address)
          if n and not nets[n] then nets[n] = true; list[#list + 1] = n end
        end
        if #list < 2 then
          api.fail(("the MX addresses are in %d network(s) (%s); two are required"):format(#list, table.concat(list, ", ")),
            { hint = "Add a backup MX in another /24 (IPv4) or /48 (IPv6)." })
        end
      end,
    },
  },
}
