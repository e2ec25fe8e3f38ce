-- The verdict from the sender matrix (api.senders(), docs/json-schema.md
-- "Senders"): what each kind of sender does with the domain decides, not
-- which certificate defect a check happened to find.
--
--   mxprobe --policy examples/policies/sender-matrix.lua example.org
--
-- * Certificate defects that every verifying sender treats alike (expired,
--   not yet valid, self-signed, untrusted, wrong name) get one severity,
--   warning: opportunistic senders still deliver encrypted, verifying ones
--   refuse them all the same.  The matrix rules below then say who fails.
-- * Failing a mechanism the domain opted into (MTA-STS enforce, DANE) is
--   critical; opportunistic senders failing (no delivery, deferral) is
--   critical; only the strict client failing is a warning.
-- * "When it breaks": a kind that stops delivering to an MX within
--   thresholds.expiry_warning_days gets a warning with the date.

local ALIKE = { CERT_EXPIRED = true, CERT_NOT_YET_VALID = true, CERT_SELF_SIGNED = true, CERT_UNTRUSTED = true,
                CERT_NAME_MISMATCH = true }
local FAILS = { no_delivery = true, defers = true }
local LABEL = { opportunistic = "Opportunistic senders", mta_sts = "MTA-STS senders", dane = "DANE senders",
                strict = "Strict clients" }
local TEXT = { no_delivery = "do not deliver", defers = "defer mail" }

return {
  name = "sender-matrix",
  description = "The verdict from what each kind of sender does (opportunistic, MTA-STS, DANE, strict client)",

  thresholds = { expiry_warning_days = 30 },

  rules = {
    {
      name = "verifying senders treat certificate defects alike",
      check = function(result, api)
        for f in api.each() do
          if ALIKE[f.code] and f.severity ~= "warning" then
            api.set_severity(f, "warning",
              "opportunistic senders still deliver encrypted; every verifying sender refuses it the same way (see the sender matrix)")
          end
        end
      end,
    },
    {
      name = "what senders do",
      check = function(result, api)
        local m = api.senders()
        if not m or #m.mx == 0 then return end
        for _, kind in ipairs({ "opportunistic", "mta_sts", "dane", "strict" }) do
          local c = m.domain[kind]
          -- a kind with nothing to apply acts as an opportunistic sender: judged there
          if c and not c.as and FAILS[c.outcome] then
            local msg = ("%s %s to %s (%s)"):format(LABEL[kind], TEXT[c.outcome], result.domain, c.reason)
            if kind == "strict" then api.warn(msg) else api.fail(msg) end
          end
        end
      end,
    },
    {
      name = "when it breaks",
      check = function(result, api)
        local m = api.senders()
        local horizon = (api.policy.thresholds or {}).expiry_warning_days or 30
        local limit = os.date("!%Y-%m-%d", os.time() + horizon * 86400)
        for _, b in ipairs(m and m.breaks or {}) do
          if b.date <= limit then
            api.warn(("%s stop delivering to %s on %s (%s)"):format(LABEL[b.kind], b.host, b.date, b.reason))
          end
        end
      end,
    },
  },
}
