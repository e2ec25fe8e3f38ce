--- mxprobe.report.openmetrics: --format openmetrics, metrics for the
-- Prometheus node_exporter textfile collector (and anything that reads
-- the Prometheus text format or OpenMetrics).
--
--   openmetrics.render_all(results [, opts]) -> text
--   openmetrics.render(result [, opts])      -> text
--
-- Every family is gauges, written once for all results (the text format
-- wants all samples of a family together), with HELP and TYPE, and the
-- text ends with "# EOF" (OpenMetrics; a comment for the Prometheus text
-- parser).  Names follow the Prometheus conventions: the mxprobe_ prefix,
-- base units (seconds, Unix timestamps in seconds), _info for
-- string-valued facts.  Labels: domain, and per server mx (the MX host),
-- address and port.  Use:
--
--   mxprobe --format openmetrics example.org > /var/lib/prometheus/node-exporter/mxprobe.prom.$$ &&
--     mv /var/lib/prometheus/node-exporter/mxprobe.prom.$$ /var/lib/prometheus/node-exporter/mxprobe.prom
local reason = require "mxprobe.report.reason"

local M = {}

M.VERDICTS = { "ok", "warning", "critical", "inconclusive" }
local SEVERITIES = { "info", "warning", "critical", "inconclusive", "error" }

local function list(t) return type(t) == "table" and t or {} end

-- Label values: backslash, double quote and newline escaped; the rest is
-- UTF-8 as the format allows (bytes that are not are written as \xNN by
-- the engine already).
local function lv(s)
    return (tostring(s):gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

local function labels(t)
    local parts = {}
    for _, kv in ipairs(t) do parts[#parts + 1] = kv[1] .. '="' .. lv(kv[2]) .. '"' end
    return "{" .. table.concat(parts, ",") .. "}"
end

local function num(v)
    if math.tointeger(v) then return tostring(math.tointeger(v)) end
    if v ~= v then return "NaN" end
    return ("%.14g"):format(v) -- as Lua prints numbers: 0.008, not 0.0080000000000000002
end

-- "2026-11-28T09:00:00Z" -> Unix time, without the local time zone
-- (os.time would apply it).
local function epoch(iso)
    local y, mo, d, h, mi, s = tostring(iso):match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)")
    if not y then return nil end
    y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
    -- days from civil (Howard Hinnant's algorithm)
    if mo <= 2 then y = y - 1 end
    local era = (y >= 0 and y or y - 399) // 400
    local yoe = y - era * 400
    local doy = (153 * (mo + (mo > 2 and -3 or 9)) + 2) // 5 + d - 1
    local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    local days = era * 146097 + doe - 719468
    return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
end
M.epoch = epoch

-- The families, in output order: name, help, and a function adding the
-- samples of one result.
local FAMILIES = {
    { "mxprobe_domain_verdict", "The verdict of the domain's test: 1 for the verdict given, 0 for the others.",
      function(r, add, dl)
          for _, v in ipairs(M.VERDICTS) do
              add({ dl, { "verdict", v } }, r.verdict == v and 1 or 0)
          end
      end },
    { "mxprobe_domain_status", "The verdict as a monitoring-plugin status: 0 ok, 1 warning, 2 critical, 3 could not test.",
      function(r, add, dl)
          local c = ({ ok = 0, warning = 1, critical = 2, inconclusive = 3 })[r.verdict] or 3
          add({ dl }, c)
      end },
    { "mxprobe_domain_decided_by_info", "The code of the finding that decided the verdict (absent when none did).",
      function(r, add, dl)
          local d = type(r.decided_by) == "table" and r.decided_by or nil
          if d and d.code then add({ dl, { "code", d.code }, { "mx", d.host or "" }, { "address", d.address or "" } }, 1) end
      end },
    { "mxprobe_domain_test_timestamp_seconds", "When the test started, Unix time.",
      function(r, add, dl) local t = epoch(r.started); if t then add({ dl }, t) end end },
    { "mxprobe_domain_test_duration_seconds", "How long the test took.",
      function(r, add, dl) if type(r.duration_s) == "number" then add({ dl }, r.duration_s) end end },
    { "mxprobe_domain_servers", "Servers (addresses of MX hosts) tested.",
      function(r, add, dl) add({ dl }, #list(r.servers)) end },
    { "mxprobe_server_score", "The policy's score of the server, 0 to 100.",
      function(r, add, dl, servers)
          for _, s in ipairs(servers) do if type(s[1].score) == "number" then add({ dl, s[2] }, s[1].score) end end
      end },
    { "mxprobe_server_response_seconds", "Connect and greeting time of the server (check_smtp's response time).",
      function(r, add, dl, servers)
          for _, s in ipairs(servers) do
              local t = reason.server_time(s[1])
              if t then add({ dl, s[2] }, t) end
          end
      end },
    { "mxprobe_server_tls_version_info", "The TLS version negotiated after STARTTLS (version=\"none\": no TLS).",
      function(r, add, dl, servers)
          for _, s in ipairs(servers) do
              local t = type(s[1].facts) == "table" and type(s[1].facts.starttls) == "table" and s[1].facts.starttls or nil
              if t and t.version then
                  add({ dl, s[2], { "version", t.version } }, 1)
              elseif t and (t.offered == false or t.handshake == false) then
                  add({ dl, s[2], { "version", "none" } }, 1)
              end
          end
      end },
    { "mxprobe_server_certificate_expiry_timestamp_seconds", "When the server's certificate expires (notAfter), Unix time.",
      function(r, add, dl, servers)
          for _, s in ipairs(servers) do
              local c = type(s[1].facts) == "table" and type(s[1].facts.certificate) == "table" and s[1].facts.certificate or nil
              if c and type(c.not_after) == "number" then add({ dl, s[2] }, c.not_after) end
          end
      end },
    { "mxprobe_server_findings", "Findings of the server by severity (ok findings not counted).",
      function(r, add, dl, servers)
          for _, s in ipairs(servers) do
              local counts = {}
              for _, f in ipairs(list(s[1].findings)) do counts[f.severity] = (counts[f.severity] or 0) + 1 end
              for _, sev in ipairs(SEVERITIES) do add({ dl, s[2], { "severity", sev } }, counts[sev] or 0) end
          end
      end },
}

function M.render_all(results)
    local out = {}
    for _, fam in ipairs(FAMILIES) do
        local name, help, fill = fam[1], fam[2], fam[3]
        local samples = {}
        for _, r in ipairs(results) do
            local dl = { "domain", r.domain or "?" }
            local servers = {}
            for _, s in ipairs(list(r.servers)) do
                servers[#servers + 1] = { s, { "mx", s.host or "?" }, { "address", s.address or "?" }, { "port", s.port or "?" } }
            end
            -- a server's labels are three pairs: flatten them into the list
            local function add(ls, v)
                local flat = {}
                for _, kv in ipairs(ls) do
                    if type(kv[1]) == "table" then for _, x in ipairs(kv) do flat[#flat + 1] = x end
                    else flat[#flat + 1] = kv end
                end
                samples[#samples + 1] = name .. labels(flat) .. " " .. num(v)
            end
            local server_labels = {}
            for i, s in ipairs(servers) do server_labels[i] = { s[1], { s[2], s[3], s[4] } } end
            fill(r, add, dl, server_labels)
        end
        if #samples > 0 then
            out[#out + 1] = "# HELP " .. name .. " " .. help
            out[#out + 1] = "# TYPE " .. name .. " gauge"
            for _, l in ipairs(samples) do out[#out + 1] = l end
        end
    end
    out[#out + 1] = "# EOF"
    return table.concat(out, "\n") .. "\n"
end

function M.render(result, opts) return M.render_all({ result }, opts) end

return M
