-- bench/report.d/check.lua JSONL DOM [FILTERED_DOM CODE]: do the numbers on
-- the page (the DOM after its script ran, from headless Chromium) equal
-- the counts made here from the JSON Lines?  Each record is decoded whole
-- with cjson, not by the code under test.  Prints one line per failed
-- comparison and exits 1, or prints "ok: ..." and the most frequent code
-- (for the filtered page) and exits 0.
local cjson = require "cjson"
local jsonl, dom_file, fdom_file, fcode = arg[1], arg[2], arg[3], arg[4]

local function slurp(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
local function pat(s) return (s:gsub("%p", "%%%0")) end

local total, seen, verdicts, codes, providers = 0, {}, { ok = 0, warning = 0, critical = 0, inconclusive = 0 }, {}, {}
for line in io.lines(jsonl) do
  local ok, r = pcall(cjson.decode, line)
  if ok and type(r) == "table" and type(r.domain) == "string" and not seen[r.domain] then
    seen[r.domain] = true
    total = total + 1
    verdicts[r.verdict] = verdicts[r.verdict] + 1
    local set = {}
    local function each(list)
      for _, f in ipairs(type(list) == "table" and list or {}) do
        if f.severity ~= "ok" and not set[f.code] then set[f.code] = true; codes[f.code] = (codes[f.code] or 0) + 1 end
      end
    end
    each(r.dns and r.dns.findings); each(r.findings)
    for _, s in ipairs(r.servers or {}) do each(s.findings) end
    local best
    for _, m in ipairs(r.dns and r.dns.mx or {}) do
      if not best or m.preference < best.preference then best = m end
    end
    local p = "(no MX)"
    if best then p = best.host:match("([^.]+%.[^.]+)$") or best.host end
    providers[p] = (providers[p] or 0) + 1
  end
end

local dom, fails = slurp(dom_file), {}
local function want(what, expected, got)
  if tostring(expected) ~= tostring(got) then fails[#fails + 1] = ("%s: %s in the JSON Lines, %s on the page"):format(what, expected, got) end
end
local function count_attr(id) return dom:match('id="' .. pat(id) .. '"[^>]-data%-count="(%d+)"') end
local function text_of(d, id) return d:match('id="' .. pat(id) .. '"[^>]*>([^<]*)<') end
want("script ran (data-ready)", "1", dom:match('data%-ready="(%d)"'))
want("domains (generator)", total, count_attr("count-total"))
want("domains (script, from the embedded columns)", total, text_of(dom, "js-total"))
want("domains the table reaches unfiltered", total, text_of(dom, "matching"))
for v, n in pairs(verdicts) do
  want(v .. " (generator)", n, count_attr("count-" .. v))
  want(v .. " (script)", n, text_of(dom, "js-" .. v))
end
local shown = 0
for code, n in dom:gmatch('data%-code="([^"]+)">(%d+)<') do
  want("domains with code " .. code, codes[code], n)
  shown = shown + 1
end
if shown == 0 and next(codes) then fails[#fails + 1] = "no code table on the page" end
local prows = 0
for name, row in dom:gmatch('<tr data%-provider="([^"]+)">(.-)</tr>') do
  want("domains of provider " .. name, providers[name], row:match('class="num">(%d+)<'))
  prows = prows + 1
end
if prows == 0 then fails[#fails + 1] = "no provider table on the page" end
local top, top_n = nil, -1
for c, n in pairs(codes) do if n > top_n or (n == top_n and c < top) then top, top_n = c, n end end
if fdom_file and fcode then
  want("domains matching code:" .. fcode, codes[fcode], text_of(slurp(fdom_file), "matching"))
end
if #fails > 0 then
  for _, f in ipairs(fails) do print("FAILED " .. f) end
  os.exit(1)
end
print(("ok: %d domains, %d verdicts, %d codes, %d providers as in the JSON Lines; most frequent code %s"):format(
  total, 4, shown, prows, tostring(top)))
