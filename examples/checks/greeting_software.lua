-- Does the 220 greeting reveal the server's software or its version?
-- "220 mx1.example.org ESMTP Postfix (Debian/GNU)" tells an attacker which
-- exploits to try; many security baselines ask for a bare
-- "220 mx1.example.org ESMTP".  Reads the greeting the stock banner check
-- recorded (facts.banner.text): no network traffic of its own.
--
--   mxprobe --checks-dir examples/checks example.org
--
-- Options (policy: options = { greeting_software = { ... } }):
--   versions_only   only a version number counts ("Postfix" alone is fine)
--   extra_patterns  more Lua patterns that count as revealing (site names)

-- Lua patterns, matched against the lower-cased greeting.
local SOFTWARE = {
  { "postfix", "Postfix" }, { "exim", "Exim" }, { "sendmail", "Sendmail" },
  { "microsoft esmtp mail service", "Microsoft Exchange" }, { "exchange", "Microsoft Exchange" },
  { "qmail", "qmail" }, { "opensmtpd", "OpenSMTPD" }, { "haraka", "Haraka" },
  { "mailenable", "MailEnable" }, { "hmailserver", "hMailServer" }, { "mdaemon", "MDaemon" },
  { "zimbra", "Zimbra" }, { "kerio", "Kerio Connect" }, { "communigate", "CommuniGate Pro" },
  { "ironport", "Cisco IronPort" }, { "barracuda", "Barracuda" }, { "courier", "Courier" },
  { "debian", "Debian" }, { "ubuntu", "Ubuntu" }, { "centos", "CentOS" }, { "red hat", "Red Hat" },
}
-- "8.15.2", "4.96", "v2.3", "3.7.10-0+deb12u1": digits with dots, not an IP address
local VERSION = "%f[%w]v?%d+%.%d+[%.%d]*[%w%-%+~]*"

local function version_in(text)
  for v in text:gmatch(VERSION) do
    -- an address literal or a dotted quad is not a version
    if not v:match("^%d+%.%d+%.%d+%.%d+$") then return v end
  end
end

return {
  id = "greeting_software",
  description = "Whether the 220 greeting reveals the MTA software or its version",
  categories = { "smtp", "security" },
  scope = "address",
  requires = { "banner" },
  options = { versions_only = false, extra_patterns = {} },
  findings = {
    GREETING_DISCREET = { severity = "ok", message = "The greeting names no software or version" },
    GREETING_REVEALS_SOFTWARE = { severity = "warning",
      message = "The greeting reveals {what}: {text}",
      hint = "Keep the greeting to the host name and ESMTP (Postfix: smtpd_banner = $myhostname ESMTP; Exim: smtp_banner = $smtp_active_hostname ESMTP; Exchange: Set-ReceiveConnector -Banner)." },
  },

  applies = function(ctx)
    local b = ctx.facts.banner
    return b ~= nil and b.ok == true and type(b.text) == "string"
  end,

  run = function(ctx)
    local text = ctx.facts.banner.text
    -- the first word is the host name, which may well contain digits and dots
    local rest = text:gsub("^%S+%s*", ""):lower()
    local found = {}
    if not ctx:option("versions_only") then
      for _, s in ipairs(SOFTWARE) do
        if rest:find(s[1], 1, true) then found[#found + 1] = s[2]; break end
      end
      for _, p in ipairs(ctx:option("extra_patterns")) do
        local m = rest:match(p)
        if m then found[#found + 1] = ("%q"):format(m) end
      end
    end
    local v = version_in(rest)
    if v then found[#found + 1] = "version " .. v end
    local fact = { software = found[1] and found or nil }
    ctx:fact(fact)
    if #found == 0 then return ctx:finding("GREETING_DISCREET", {}) end
    ctx:finding("GREETING_REVEALS_SOFTWARE", { what = table.concat(found, ", "), text = text, found = found })
  end,
}
