-- Are the mail servers spread over more than one network?  Two MX records
-- that point into the same /24 (IPv4) or /48 (IPv6) share a router, a
-- provider and often a rack: one outage takes them all.  Runs once per
-- domain, after every address was probed (summarize), and reads the whole
-- result: every MX, every address, and what the connect check learnt.
--
-- Options (policy: options = { mx_networks = { ... } }):
--   min_networks  networks the reachable addresses must span (default 2)
--   ipv4_prefix   prefix length of an IPv4 "network" (default 24)
--   ipv6_prefix   prefix length of an IPv6 "network" (default 48)

local function network(address, v4, v6)
  -- the rules API has the same helper: api.network(address, v4, v6)
  return require("mxprobe.policy.rules").network(address, v4, v6)
end

return {
  id = "mx_networks",
  description = "Whether the reachable MX addresses are in at least two different networks (/24, /48)",
  categories = { "network" },
  scope = "domain",
  requires = { "connect" },
  options = { min_networks = 2, ipv4_prefix = 24, ipv6_prefix = 48 },
  findings = {
    MX_NETWORKS_OK = { severity = "ok", message = "The reachable MX addresses span {count} networks: {networks}" },
    MX_SINGLE_NETWORK = { severity = "warning",
      message = "Every reachable MX address is in {count} network(s) ({networks}); at least {min} wanted",
      hint = "Put a backup MX in another network (another provider or site), so that one outage does not stop mail." },
  },

  run = function() end, -- the work happens once every address is done

  summarize = function(dctx)
    local v4, v6 = dctx:option("ipv4_prefix"), dctx:option("ipv6_prefix")
    local min = dctx:option("min_networks")
    local seen, list = {}, {}
    for _, srv in ipairs(dctx:servers()) do
      local c = srv.facts.connect
      if c and c.state == "connected" then
        local net = network(srv.address, v4, v6)
        if net and not seen[net] then
          seen[net] = true
          list[#list + 1] = net
        end
      end
    end
    if #list == 0 then return end -- nothing answered: other findings say why
    table.sort(list)
    local ev = { count = #list, networks = list, min = min }
    if #list < min then
      dctx:finding("MX_SINGLE_NETWORK", ev)
    else
      dctx:finding("MX_NETWORKS_OK", ev)
    end
  end,
}
