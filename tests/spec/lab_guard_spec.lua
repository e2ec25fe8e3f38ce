-- tests/lab/up and tests/lab/down must never reuse or delete a network
-- namespace the lab did not create (issue 16, item 15). This spec makes
-- namespaces of its own (names with this process's own random suffix), never
-- touches any other, and removes its own in every case.
local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, out:gsub("rc=%d+%s*$", "")
end

local function ns_exists(ns)
  return (sh("ip netns list | awk '{print $1}' | grep -qx -- " .. ns)) == 0
end

local function alive(pid)
  return (sh("kill -0 " .. pid)) == 0
end

local can = (sh("[ \"$(id -u)\" = 0 ]")) == 0
local probe = "mxprobe-guard-probe-" .. math.random(1e6)
if can then
  can = (sh("ip netns add " .. probe)) == 0
  if can then sh("ip netns del " .. probe) end
end

local function lab(cmd, ns)
  return sh(("MXLAB_NS=%s MXLAB_STATE=/tmp/%s-state tests/lab/%s"):format(ns, ns, cmd))
end

describe("the lab's namespace guard", function()
  if not can then
    pending("needs root and network namespaces")
    return
  end

  local made, pids = {}, {}
  local function make_ns(ns)
    assert.equal(0, (sh("ip netns add " .. ns)))
    made[#made + 1] = ns
  end
  -- a process inside a foreign namespace: `down` must leave it running
  local function sleeper(ns)
    local _, out = sh("ip netns exec " .. ns .. " setsid sleep 60 </dev/null >/dev/null 2>&1 & echo pid=$!")
    local pid = assert(tonumber(out:match("pid=(%d+)")))
    pids[#pids + 1] = pid
    return pid
  end
  after_each(function()
    for _, pid in ipairs(pids) do sh("kill -KILL " .. pid) end
    for _, ns in ipairs(made) do
      sh("ip netns del " .. ns)
      os.remove("/run/mxprobe-lab/" .. ns)
    end
    made, pids = {}, {}
  end)

  local suffix = tostring(math.random(1e6))

  it("down refuses an unmarked namespace and leaves it and its processes alone", function()
    local ns = "mxprobe-guard-a" .. suffix
    make_ns(ns)
    local pid = sleeper(ns)
    local rc, out = lab("down", ns)
    assert.equal(1, rc)
    assert.truthy(out:find("network namespace '" .. ns .. "' exists but was not created by tests/lab/up", 1, true), out)
    assert.truthy(out:find("/run/mxprobe-lab/" .. ns, 1, true), out)
    assert.is_true(ns_exists(ns))
    assert.is_true(alive(pid))
  end)

  it("up refuses to reuse an unmarked namespace", function()
    local ns = "mxprobe-guard-b" .. suffix
    make_ns(ns)
    local pid = sleeper(ns)
    local rc, out = lab("up", ns)
    assert.equal(1, rc)
    assert.truthy(out:find("refusing to use or delete it", 1, true), out)
    assert.is_true(ns_exists(ns))
    assert.is_true(alive(pid))
  end)

  it("down refuses when only the -void namespace is foreign", function()
    local ns = "mxprobe-guard-c" .. suffix
    make_ns(ns .. "-void")
    local rc, out = lab("down", ns)
    assert.equal(1, rc)
    assert.truthy(out:find("'" .. ns .. "-void'", 1, true), out)
    assert.is_true(ns_exists(ns .. "-void"))
  end)

  it("down deletes a marked namespace and its marker", function()
    local ns = "mxprobe-guard-d" .. suffix
    make_ns(ns)
    assert.equal(0, (sh("mkdir -p /run/mxprobe-lab && : >/run/mxprobe-lab/" .. ns)))
    local rc, out = lab("down", ns)
    assert.equal(0, rc, out)
    assert.is_false(ns_exists(ns))
    assert.is_nil(io.open("/run/mxprobe-lab/" .. ns))
  end)

  it("the default namespace name is not the generic 'mxlab'", function()
    local _, out = sh("env -u MXLAB_NS -u MXLAB_STATE bash -c '. tests/lab/lib.sh; echo \"ns=$NS state=$STATE\"'")
    assert.equal("ns=mxprobe-lab state=/tmp/mxprobe-lab\n", out)
  end)
end)
