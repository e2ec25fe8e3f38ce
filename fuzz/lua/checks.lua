-- fuzz/lua/checks.lua: the check loader (mxprobe.engine.checks.load_file,
-- then order) on a check file made of the input bytes.
-- Invariants: a check file is accepted with every field validated (id,
-- scope, findings with known severities, functions where functions
-- belong) or refused with a string naming the file.
package.path = package.path .. ";" .. require("mxprobe.runtime.paths").root .. "/fuzz/lua/?.lua"
local common = require "common"
local checks = require "mxprobe.engine.checks"
local vocab = require "mxprobe.runtime.vocab"
local dir = common.workdir("checks")
local path = dir .. "/fuzzed.lua"
common.disarm()

local SCOPES = { domain = true, address = true, session = true }

return function(bytes)
  common.write_file(path, bytes)
  local ok, def = pcall(checks.load_file, path)
  if not ok then
    common.invariant(type(def) == "string", "load_file raised a %s, not a message", type(def))
    if def:find("fuzz: ", 1, true) then return end
    common.invariant(def:find(path, 1, true) ~= nil or def:find("fuzzed.lua", 1, true) ~= nil,
      "a check error that does not name the file: %q", def:sub(1, 300))
    return
  end
  common.invariant(type(def) == "table", "load_file returned a %s", type(def))
  common.invariant(type(def.id) == "string" and def.id ~= "", "accepted without an id")
  common.invariant(SCOPES[def.scope], "accepted with scope %s", tostring(def.scope))
  common.invariant(type(def.run) == "function", "accepted without a run function")
  for code, f in pairs(def.findings) do
    common.invariant(type(code) == "string", "a finding code that is a %s", type(code))
    common.invariant(type(f) == "table" and vocab.SEVERITIES[f.severity], "finding %s accepted with severity %s",
      tostring(code), tostring(type(f) == "table" and f.severity))
  end
  local ok2, err = pcall(checks.order, { def })
  common.invariant(ok2 or type(err) == "string", "order raised a %s", type(err))
end
