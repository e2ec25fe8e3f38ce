-- Overriding the default sender judgement (docs/policies.md, "senders"),
-- for a site whose partners verify certificates: the default policy
-- already takes the verdict from the sender matrix (MTA-STS enforce, DANE
-- or opportunistic senders failing: critical; only the strict client: a
-- warning; certificate defects one severity).  Here:
--
--   mxprobe --policy examples/policies/sender-matrix.lua example.org
--
-- * the strict client failing is critical too (our partners always verify);
-- * "when it breaks" looks 60 days ahead instead of 30;
-- * every MX, not only the first one mail reaches, must authenticate for
--   MTA-STS senders (the default judges the domain row: a backup MX that
--   fails is where mail goes when the primary is down).
local TEXT = { encrypted = "deliver without authentication to", plaintext = "deliver in plaintext to",
               defers = "defer mail to", no_delivery = "do not deliver to" }

return {
  name = "sender-matrix",
  description = "Verifying senders matter: the strict client failing is critical; every MX authenticates for MTA-STS senders",

  thresholds = { expiry_warning_days = 60 },

  findings = {
    SENDERS_STRICT_FAIL = { severity = "critical" },
  },

  rules = {
    {
      name = "every MX authenticates for MTA-STS senders",
      check = function(result, api)
        local m = api.senders()
        for _, mx in ipairs(m and m.mx or {}) do
          for _, a in ipairs(mx.addresses) do
            local c = a.mta_sts
            -- with no usable policy MTA-STS senders act opportunistically: nothing to require
            if not c.as and c.outcome ~= "authenticated" and c.outcome ~= "inconclusive" then
              api.fail(("MTA-STS senders %s %s (%s)"):format(TEXT[c.outcome] or c.outcome, mx.host, c.reason),
                { hint = "Every MX the domain publishes needs STARTTLS, TLS 1.2+ and a PKIX certificate naming it." })
            end
          end
        end
      end,
    },
  },
}
