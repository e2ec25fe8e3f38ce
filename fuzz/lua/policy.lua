-- fuzz/lua/policy.lua: the policy loader (mxprobe.policy.load) on a policy
-- file made of the input bytes, and on the table that file returns.
-- Invariants: loading either succeeds with a table or raises a string of
-- one line (a user error is one plain line, never a Lua-internal crash
-- message with a traceback); a loaded policy has the default's fields and
-- only finite numbers in its probe timeouts.
package.path = package.path .. ";" .. require("mxprobe.runtime.paths").root .. "/fuzz/lua/?.lua"
local common = require "common"
local policy = require "mxprobe.policy"
local engine = require "mxprobe.engine"
local checks = require "mxprobe.engine.checks"
local ALL = checks.load(checks.dirs { installed_checks = false })
local CATALOG = engine.catalog({ all_checks = ALL })
local dir = common.workdir("policy")
local path = dir .. "/site.lua"
common.disarm()

return function(bytes)
  common.write_file(path, bytes)
  local ok, pol = pcall(policy.load, path, CATALOG, ALL)
  if not ok then
    common.invariant(type(pol) == "string", "policy.load raised a %s, not a message", type(pol))
    if pol:find("fuzz: ", 1, true) then return end -- our budget or a disarmed function
    common.invariant(not pol:find("\n"), "a policy error of more than one line: %q", pol:sub(1, 300))
    return
  end
  common.invariant(type(pol) == "table", "policy.load returned a %s", type(pol))
  common.invariant(type(pol.grades) == "table" and type(pol.weights) == "table", "the default's fields are missing")
  for k, v in pairs((pol.probe or {}).timeouts or {}) do
    common.invariant(type(v) ~= "number" or (v == v and v > 0 and v < math.huge), "timeout %s = %s passed", tostring(k), tostring(v))
  end
end
