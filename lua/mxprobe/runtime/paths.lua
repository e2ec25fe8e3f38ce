--- mxprobe.runtime.paths: where lua/ and checks/ are, for a stock lua5.4 that
-- loads mxprobe as modules (the mxprobe executable provides this table
-- itself, from core/paths.c).  Order: $MXPROBE_HOME; the source tree this
-- file sits in; an install (PREFIX/share/lua/5.4/mxprobe/paths.lua finds
-- PREFIX/share/mxprobe).
local core = require "mxprobe.core"

local function is_dir(p)
    local f = io.open(p .. "/policy/default.lua", "r")
    if f then f:close() return true end
    return false
end

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local candidates = {}
local env = os.getenv("MXPROBE_HOME")
if env and env ~= "" then candidates[#candidates + 1] = env end
candidates[#candidates + 1] = here .. "/../../.."            -- ROOT/lua/mxprobe/runtime
candidates[#candidates + 1] = here .. "/../../../../mxprobe" -- PREFIX/share/lua/5.4/mxprobe/runtime

local root
for _, c in ipairs(candidates) do
    if is_dir(c .. "/checks") then root = c break end
end
if not root then
    error("mxprobe.runtime.paths: cannot find the stock checks (tried " .. table.concat(candidates, ", ") .. "); set MXPROBE_HOME", 0)
end

return {
    root = root, lua = root .. "/lua", checks = root .. "/checks",
    version = core.version,
}
