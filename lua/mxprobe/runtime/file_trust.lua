--- mxprobe.runtime.file_trust: refuse program files that others can change.
--
-- Policies and check files are Lua that mxprobe runs.  A file that a group
-- or everybody may write lets someone else decide what this run executes
-- (and, for a policy, what verdict it reports), so such a file is refused
-- before it is read, with the command that fixes it.
--
--   local trust = require "mxprobe.runtime.file_trust"
--   trust.check("site.lua", "policy file")   -- raises "site.lua: refusing ..."
local lfs = require "lfs"

local M = {}

--- nil when path may be loaded, else why not (one line).  A path that
-- cannot be examined is left to the loader, which names the error.
function M.problem(path, what)
    local perms = lfs.attributes(path, "permissions")
    if type(perms) ~= "string" or #perms ~= 9 then return nil end
    local group_w, other_w = perms:sub(5, 5) == "w", perms:sub(8, 8) == "w"
    if not (group_w or other_w) then return nil end
    return ("%s: refusing a %s that %s can write (mode %s): make it writable by its owner only (chmod go-w %s)"):format(
        path, what or "file", other_w and "everybody" or "its group", perms, path)
end

--- Raise (a plain one-line message) when path must not be loaded.
function M.check(path, what)
    local why = M.problem(path, what)
    if why then error(why, 0) end
end

return M
