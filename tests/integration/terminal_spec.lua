-- The text report on a real terminal: mxprobe runs in a tmux pane of a
-- known size (inside the lab's namespace), and the screen is read back
-- with capture-pane.  The width comes from TIOCGWINSZ (it wins over a
-- COLUMNS that says otherwise), no line is wider than the pane, and the
-- summary line comes first.  The tmux server is ours (its own socket) and
-- is killed at the end.
local world = dofile("tests/lab/world.lua")
local state = os.getenv("MXLAB_STATE") or world.state_dir

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

local SOCKET = "mxprobe-spec-" .. tostring(os.time()) .. "-" .. tostring(math.random(1e6))
local function tmux(args) return sh("tmux -L " .. SOCKET .. " " .. args) end

-- the mxprobe executable running these specs
local _, exe = sh("readlink /proc/$PPID/exe")
exe = exe:gsub("%s+$", "")

local function run_in_pane(cols, command)
  tmux("kill-server")
  local code, out = tmux(("new-session -d -x %d -y 200 %q"):format(cols, command .. "; echo __DONE__; sleep 60"))
  assert(code == 0, "tmux new-session: " .. out)
  local screen
  for _ = 1, 100 do
    local _, s = tmux("capture-pane -p -J -S - -t 0") -- -J would join wrapped lines: there must be none
    if s:find("__DONE__", 1, true) then screen = s break end
    os.execute("sleep 0.1")
  end
  tmux("kill-server")
  return assert(screen, "mxprobe did not finish in the pane")
end

describe("the text report in a terminal (tmux)", function()
  setup(function()
    assert(sh("command -v tmux") == 0, "tmux is missing")
  end)
  teardown(function() tmux("kill-server") end)

  it("wraps to the pane's width (TIOCGWINSZ), not to COLUMNS", function()
    local cmd = ("env COLUMNS=200 %s --resolver %s --ca-file %s/ca/ca.pem --allow-reserved documentation expiring.lab.test"):format(
      exe, world.resolver, state)
    local screen = run_in_pane(52, cmd)
    local lines = {}
    for l in screen:gmatch("([^\n]*)\n") do
      if l:find("__DONE__", 1, true) then break end
      lines[#lines + 1] = l
    end
    assert.matches("^expiring%.lab%.test  WARNING  SENDERS_BREAK_SOON", lines[1]) -- strict clients stop delivering on ...
    local longest = 0
    for _, l in ipairs(lines) do longest = math.max(longest, utf8.len(l) or #l) end
    assert.truthy(longest <= 52, ("a line of %d columns in a 52-column pane"):format(longest))
    assert.truthy(longest >= 40, "the report uses the width it has")
    -- the long certificate message went on wrapped lines, all of it there
    local flat = table.concat(lines, " "):gsub("%s+", " ")
    assert.matches("hint: Renew it before it expires (certbot renew), and check that automatic renewal runs.", flat, 1, true)
  end)
end)
