-- scripts/lua-profile.lua: the development profiler runs a real command
-- line under its hook and writes a profile that names the engine's code.
-- DNS goes to a closed loopback port: nothing leaves the machine.
describe("scripts/lua-profile.lua", function()
  it("profiles an audit in a child process and writes inclusive and self shares", function()
    local pid = assert(io.open("/proc/self/stat")):read("n")
    local exe = io.popen(("readlink /proc/%d/exe"):format(math.tointeger(pid))):read("l")
    local out_path = os.tmpname()
    local p = io.popen(("printf 'a.test\\nb.test\\n' | PROF_OUT=%s PROF_N=31 %s scripts/lua-profile.lua audit - "
      .. "--resolver 127.0.0.1:9 --timeout-dns 0.3 --no-progress 2>/dev/null"):format(out_path, exe))
    local records = p:read("a")
    p:close()
    local n = 0
    for _ in records:gmatch("[^\n]+") do n = n + 1 end
    assert.equal(2, n) -- the run itself was not changed
    local text = assert(io.open(out_path)):read("a")
    os.remove(out_path)
    local total = tonumber(text:match("^total (%d+) samples"))
    assert.is_true(total and total > 100, text:sub(1, 200))
    -- the engine's check of a domain ran in tasks the loop made: they were hooked
    local incl = text:match("\n%s*([%d.]+)%%%s+[%d.]+%%%s+[^\n]*mxprobe/engine/init%.lua:%d+\n")
    assert.is_truthy(incl, "no line for the engine:\n" .. text:sub(1, 2000))
    for a, b in text:gmatch("\n%s*([%d.]+)%%%s+([%d.]+)%%") do
      assert.is_true(tonumber(a) <= 100 and tonumber(b) <= tonumber(a) + 1e-9, a .. " " .. b)
    end
  end)
end)
