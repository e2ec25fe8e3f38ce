-- bench/report.d/synth.lua N OUT [SEED]: N audit records (JSON Lines) for
-- bench/report, made from real ones: bench/report.d/records.jsonl holds 27
-- records that `mxprobe audit` wrote with its defaults against the lab
-- (tests/lab: one of each kind of domain, and the --scale shapes), so the
-- records have the size and shape of a real audit's (11.6 kB on average:
-- TLS offer, sender matrix, findings with evidence, provenance).  Each
-- output record is one of them with its own domain name, MX hosts under one
-- of 40 providers, and its certificates moved to end between 30 days ago
-- and 400 days ahead (fingerprints from 5,000), so the expiry timeline and
-- the provider table have something to show.  Deterministic for a seed.
--
-- The records are made by splicing the templates' text at those places
-- (JSON numbers and plain ASCII names, so the result stays valid JSON):
-- re-encoding 100,000 records of 12 kB would take longer than the bench.
local n, out, seed = tonumber(arg[1]), arg[2], tonumber(arg[3] or "1")
assert(n and out, "usage: synth.lua N OUT [SEED]")
math.randomseed(seed)
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

-- A template as pieces: literal text, and holes { what, original value }
local function pieces(line)
  local domain = assert(line:match('"domain":"([^"\\]+)","duration_s"'), "a template without its domain")
  local holes = {}
  local function mark(pat, what)
    local p = 1
    while true do
      local s, e, v = line:find(pat, p)
      if not s then break end
      holes[#holes + 1] = { s, e, what, v }
      p = e + 1
    end
  end
  mark('"days_left":(%-?%d+)', "days")
  mark('"not_after":(%d+)', "not_after")
  mark('"fingerprint_sha256":"[0-9A-F:]+"', "fp")
  mark('"' .. domain:gsub("%p", "%%%0") .. '"', "domain") -- the name as a whole JSON string
  mark("%.mx%.lab%.test", "provider")
  table.sort(holes, function(x, y) return x[1] < y[1] end)
  local list, p = {}, 1
  for _, h in ipairs(holes) do
    if h[1] >= p then -- (a hole inside another one is left as it is)
      list[#list + 1] = line:sub(p, h[1] - 1)
      list[#list + 1] = { h[3], tonumber(h[4]) }
      p = h[2] + 1
    end
  end
  list[#list + 1] = line:sub(p)
  -- certificates move by the same number of days: from the first
  -- certificate's days_left to the one drawn
  for _, h in ipairs(holes) do if h[3] == "days" then list.days = tonumber(h[4]); break end end
  return list
end

local templates = {}
for line in io.lines(here .. "/records.jsonl") do templates[#templates + 1] = pieces(line) end

local f = assert(io.open(out, "wb"))
local buf = {}
for i = 1, n do
  local t = templates[math.random(1, #templates)]
  local shift = math.random(-30, 400) -- days, the same for each certificate of the record
  local prov = i % 40
  local parts = {}
  for k, p in ipairs(t) do
    if type(p) == "string" then parts[k] = p
    else
      local what = p[1]
      if what == "domain" then parts[k] = ('"d%06d.bench.example"'):format(i)
      elseif what == "provider" then parts[k] = (".mx.prov%02d.example"):format(prov)
      elseif what == "days" then parts[k] = ('"days_left":%d'):format(shift)
      elseif what == "not_after" then parts[k] = ('"not_after":%d'):format(p[2] + (shift - (t.days or shift)) * 86400)
      else parts[k] = ('"fingerprint_sha256":"%064X"'):format(i % 5000) end
    end
  end
  buf[#buf + 1] = table.concat(parts)
  buf[#buf + 1] = "\n"
  if #buf >= 512 then f:write(table.concat(buf)); buf = {} end
end
f:write(table.concat(buf))
f:close()
