-- bench/audit_memory.d/run.lua MODULE MODE INPUT OUTPUT: one audit.run with
-- a stub engine (no network: every domain gets the same small result), for
-- bench/audit_memory to measure with /usr/bin/time.  MODULE: "current" or
-- the path of another audit.lua (the version before, for the comparison).
--   input   INPUT -> OUTPUT (JSON Lines), results of about 60 bytes
--   make    INPUT -> OUTPUT with records of about 650 bytes (a resume file)
--   resume  INPUT, resume = OUTPUT (everything recorded: nothing to check)
local module, mode, input, output = arg[1], arg[2], arg[3], arg[4]
local audit
if module == "current" then audit = require "mxprobe.app.audit"
else audit = dofile(module); package.loaded["mxprobe.app.audit"] = audit end

local pad = string.rep("x", 480)
local engine = { new = function()
  return { config = { limits = {} }, check_domain = function(_, d)
    local r = { schema = 1, domain = d, verdict = "ok", exit_code = 0, servers = {}, findings = {} }
    if mode == "make" then
      r.dns = { mx = { { preference = 10, host = "mx." .. d, addresses = { "192.0.2.10" } } },
                findings = { { code = "MX_OK", evidence = { note = pad } } } }
    end
    return r
  end }
end }

local s = audit.run {
  input = input, output = output, resume = mode == "resume" and output or nil,
  engine = engine, summary = false, progress = false, signals = false,
}
io.stderr:write(("records=%d already_recorded=%d\n"):format(s.records, s.input.already_recorded))
