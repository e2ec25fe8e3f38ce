-- fuzz/lua/common.lua: shared by the Lua fuzz drivers.
--
-- Fuzzed policies and check files are Lua programs.  Before any of them
-- runs, take away what could harm the machine: running programs, writing,
-- removing or renaming files, loading C libraries, exiting, and removing
-- the harness's instruction hook.  Reading files stays (the loaders read).
local M = {}

local function forbidden(name)
  return function() error("fuzz: " .. name .. " is not available while fuzzing", 2) end
end

local real_open, real_execute = io.open, os.execute
function M.disarm()
  os.execute, os.remove, os.rename, os.exit, os.tmpname = forbidden("os.execute"), forbidden("os.remove"),
    forbidden("os.rename"), forbidden("os.exit"), forbidden("os.tmpname")
  io.popen, io.output, io.write = forbidden("io.popen"), forbidden("io.output"), forbidden("io.write")
  io.open = function(path, mode)
    if mode ~= nil and (not tostring(mode):match("^r") or tostring(mode):find("+", 1, true)) then
      error("fuzz: io.open for writing is not available while fuzzing", 2)
    end
    return real_open(path, mode)
  end
  package.loadlib = forbidden("package.loadlib")
  debug.sethook = forbidden("debug.sethook")
  collectgarbage = function(opt, ...) -- "stop" would let memory grow past the cap's intent
    if opt == "stop" then return 0 end
    return _G.__fuzz_collectgarbage(opt, ...)
  end
end
_G.__fuzz_collectgarbage = collectgarbage

-- Write bytes to a private file (the harness's own, through the real open).
function M.write_file(path, bytes)
  local f = assert(real_open(path, "wb"))
  f:write(bytes)
  f:close()
end

function M.invariant(ok, fmt, ...)
  if not ok then error("INVARIANT: " .. fmt:format(...), 0) end
end

-- A private directory for this fuzz process (made once, before disarming;
-- removed at exit by the harness through __fuzz_cleanup).
function M.workdir(name)
  local dir = ("/tmp/mxprobe-fuzz-%s-%d"):format(name, math.random(1, 1e9))
  assert(real_execute("mkdir -p -m 700 '" .. dir .. "'"))
  _G.__fuzz_cleanup = function() real_execute("rm -rf '" .. dir .. "'") end
  return dir
end

return M
