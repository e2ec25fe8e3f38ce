--- mxprobe.net.mta_sts_policy: the strict parsers of MTA-STS (RFC 8461)
-- text: the _mta-sts TXT record and the policy file, and the mx pattern
-- match.  No I/O; checks/mta_sts.lua and the sender matrix use them.
--
--   P.parse_txt("v=STSv1; id=2026120101")  -> { v =, id = } | nil, reason
--   P.parse_policy(body) -> policy, problems | nil, problems
--   P.matches("*.example.com", "mx1.example.com") -> true
local dns_util = require "mxprobe.net.domain"

local MAX_AGE_MAX = 31557600 -- RFC 8461 3.2: about one year
local KEYS = { version = true, mode = true, mx = true, max_age = true }
local MODES = { enforce = true, testing = true, none = true }

local M = {}
M.MAX_AGE_MAX = MAX_AGE_MAX

-- "v=STSv1; id=20160831085700Z;" -> fields | nil, reason  (RFC 8461 3.1)
function M.parse_txt(text)
  if not text:match("^v=STSv1;") and text ~= "v=STSv1" then return nil, "does not begin with \"v=STSv1;\"" end
  local fields, seen = {}, {}
  for part in (text .. ";"):gmatch("([^;]*);") do
    local p = part:match("^%s*(.-)%s*$")
    if p ~= "" then
      local k, v = p:match("^([%w_%.%-]+)=([\33-\58\60-\126]*)$")
      if not k then return nil, ("field %q is not name=value"):format(p) end
      if seen[k] then return nil, ("field %s appears twice"):format(k) end
      seen[k] = true
      fields[k] = v
    end
  end
  if not fields.id then return nil, "no id field" end
  if not fields.id:match("^[%w]+$") or #fields.id > 32 then
    return nil, ("id %q is not 1 to 32 letters and digits"):format(fields.id)
  end
  return fields
end

-- A pattern from an mx: line: "mail.example.com" or "*.example.com".
local function pattern_problem(p)
  local rest = p:match("^%*%.(.+)$") or p
  if rest:find("*", 1, true) then return "a wildcard is allowed only as the whole first label (\"*.example.com\")" end
  return dns_util.problem(rest)
end

--- Parse a policy body strictly.  -> policy, problems | nil, problems
-- policy = { version, mode, max_age, mx = {patterns}, unknown = {keys} }
-- problems: list of { code, evidence } (what makes it unusable, and what
-- senders tolerate: unknown or duplicate keys).
function M.parse_policy(body)
  local problems = {}
  local function bad(code, ev) problems[#problems + 1] = { code = code, evidence = ev } end
  if not utf8.len(body) then
    local _, at = utf8.len(body)
    bad("MTA_STS_POLICY_INVALID", { reason = ("not UTF-8 (byte %d)"):format(at or 0) })
    return nil, problems
  end
  local p, seen, unknown, unknown_set = { mx = {} }, {}, {}, {}
  local n = 0
  for line in (body:gsub("\r\n", "\n") .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:match("^%s*$") then goto continue end
    local k, v = line:match("^([%w_%.%-]+):[ \t]*(.-)[ \t]*$")
    if not k then
      bad("MTA_STS_POLICY_INVALID", { reason = ("line %d is not \"key: value\""):format(n) })
      return nil, problems
    end
    if k == "mx" then
      local why = pattern_problem(v:lower())
      if why then
        bad("MTA_STS_POLICY_INVALID", { reason = ("line %d: mx pattern %q: %s"):format(n, v, why) })
        return nil, problems
      end
      p.mx[#p.mx + 1] = v:lower()
    elseif KEYS[k] then
      if seen[k] then bad("MTA_STS_POLICY_DUPLICATE_KEY", { key = k, line = n }) else p[k] = v end
      seen[k] = true
    else
      if not unknown_set[k] then unknown[#unknown + 1] = k end
      unknown_set[k] = true
    end
    ::continue::
  end
  if #unknown > 0 then bad("MTA_STS_POLICY_UNKNOWN_KEY", { keys = unknown }) end
  p.unknown = unknown
  local function invalid(reason) bad("MTA_STS_POLICY_INVALID", { reason = reason }); return nil, problems end
  if p.version ~= "STSv1" then return invalid(p.version and ("version %q is not STSv1"):format(p.version) or "no version line") end
  if not p.mode then return invalid("no mode line") end
  if not MODES[p.mode] then return invalid(("mode %q is not enforce, testing or none"):format(p.mode)) end
  if not p.max_age then return invalid("no max_age line") end
  if not p.max_age:match("^%d+$") or #p.max_age > 10 or tonumber(p.max_age) > MAX_AGE_MAX then
    return invalid(("max_age %q is not an integer 0 to %d"):format(p.max_age, MAX_AGE_MAX))
  end
  p.max_age = tonumber(p.max_age)
  if p.mode ~= "none" and #p.mx == 0 then return invalid("no mx line (required unless mode is none)") end
  return p, problems
end

--- Does host match an mx pattern (RFC 8461 4.1: "*." matches one label)?
function M.matches(pattern, host)
  host = host:lower():gsub("%.$", "")
  pattern = pattern:lower():gsub("%.$", "")
  local suffix = pattern:match("^%*%.(.+)$")
  if suffix then
    local first, rest = host:match("^([^.]+)%.(.+)$")
    return first ~= nil and rest == suffix
  end
  return host == pattern
end

return M
