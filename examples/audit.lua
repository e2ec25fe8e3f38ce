-- examples/audit.lua: an audit driven from Lua, shaping its own output.
--
--   mxprobe run examples/audit.lua domains.txt [-o portfolio.csv] [--ca-file PEM] [--allow-reserved KIND]
--
-- A registrar's question: which mail servers do my customers' domains use,
-- how does each one do, and which domains need a call?  One CSV row per
-- domain with the columns we care about (not the stock ones), then a table
-- of the mail servers by number of domains on stderr.  The audit shares
-- every (address, port, MX name) probe between the domains that use it, so
-- a big provider is connected to a few times, not once per customer.
--
-- In the test world (tests/lab/up --scale 1000):
--   ip netns exec mxprobe-lab build/mxprobe run examples/audit.lua /tmp/mxprobe-lab/scale-domains.txt \
--       --ca-file /tmp/mxprobe-lab/ca/ca.pem --allow-reserved documentation -o /tmp/portfolio.csv
local argparse = require "argparse"
local audit = require "mxprobe.app.audit"

local p = argparse("examples/audit.lua", "Audit a portfolio of domains; one CSV row each, then the mail servers.")
p:argument("file", "Domains, one per line (- for stdin).")
p:option("-o --output", "CSV file (default: stdout).")
p:option("--ca-file", "Trust anchors (PEM).")
p:option("--allow-reserved", "Address kinds to probe anyway (test networks), comma-separated.")
local args = p:parse(arg)

local config = { ca_file = args.ca_file }
if args.allow_reserved then
  config.allow_reserved = {}
  for k in args.allow_reserved:gmatch("[^,%s]+") do table.insert(config.allow_reserved, k) end
end

-- columns of our own: a column is a name and a function of the result
local function servers(r) return r.servers or {} end
local function worst_tls(r)
  local order = { ["TLSv1.3"] = 4, ["TLSv1.2"] = 3, ["TLSv1.1"] = 2, TLSv1 = 1 }
  local worst
  for _, s in ipairs(servers(r)) do
    local st = s.facts.starttls
    local v = st and st.version or "none"
    if not worst or (order[v] or 0) < (order[worst] or 0) then worst = v end
  end
  return worst
end
local function any_fact(r, check, field, value)
  for _, s in ipairs(servers(r)) do
    local f = s.facts[check]
    if f and f[field] == value then return "yes" end
  end
  return "no"
end
local columns = {
  "domain", "verdict",
  { "mx", function(r)
      local hosts = {}
      for _, m in ipairs(r.dns.mx) do hosts[#hosts + 1] = m.host end
      return table.concat(hosts, " ")
    end },
  { "weakest_tls", worst_tls },
  { "open_relay", function(r) return any_fact(r, "relay", "verdict", "open") end },
  { "untrusted_cert", function(r) return any_fact(r, "certificate", "verified", false) end },
  "codes", "error",
}

-- the mail servers, as the domains report them
local hosts = {}
local function note(r)
  for _, s in ipairs(servers(r)) do
    local h = hosts[s.host]
    if not h then
      h = { host = s.host, domains = 0, addresses = {}, grade = s.grade,
            connect = s.facts.connect and s.facts.connect.state or "-" }
      hosts[s.host] = h
    end
    h.domains = h.domains + 1
    h.addresses[s.address] = true
    if (s.grade or "F") > (h.grade or "A") then h.grade = s.grade end -- letters: later is worse
  end
end

local summary = assert(audit.run {
  input = args.file,
  output = args.output or io.stdout,
  format = "csv",
  columns = columns,
  config = config,
  on_result = note,
})

local list = {}
for _, h in pairs(hosts) do list[#list + 1] = h end
table.sort(list, function(a, b)
  if a.domains ~= b.domains then return a.domains > b.domains end
  return a.host < b.host
end)
io.stderr:write(("\n%-40s %8s  %-5s  %-10s  %s\n"):format("MAIL SERVER", "DOMAINS", "GRADE", "CONNECT", "ADDRESSES"))
for i, h in ipairs(list) do
  if i > 25 then io.stderr:write(("... and %d more\n"):format(#list - 25)); break end
  local addrs = {}
  for a in pairs(h.addresses) do addrs[#addrs + 1] = a end
  table.sort(addrs)
  io.stderr:write(("%-40s %8d  %-5s  %-10s  %s\n"):format(h.host, h.domains, h.grade or "-", h.connect,
    table.concat(addrs, ", ")))
end
return summary.exit_code
