-- The scheduler: tasks, sleeps, joins, deadlines, cancellation, semaphores,
-- and coroutines of a check's own that wait inside the host.
local loop = require "mxprobe.runtime.loop"

describe("mxprobe.runtime.loop", function()
  it("runs tasks concurrently: three 0.2 s sleeps take about 0.2 s", function()
    local t0 = loop.now()
    local ts = {}
    for i = 1, 3 do ts[i] = loop.spawn(function() loop.sleep(0.2); return i end) end
    for i = 1, 3 do assert.equal(i, loop.join(ts[i])) end
    local dt = loop.now() - t0
    assert.is_true(dt >= 0.19 and dt < 0.5, "took " .. dt)
  end)

  it("join returns the task's error", function()
    local t = loop.spawn(function() error("boom") end)
    local r, code, detail = loop.join(t)
    assert.is_nil(r)
    assert.equal("error", code)
    assert.matches("boom", detail)
  end)

  it("join honours its own deadline", function()
    local t = loop.spawn(function() loop.sleep(5) end)
    local r, code = loop.join(t, loop.now() + 0.05)
    assert.is_nil(r)
    assert.equal("timeout", code)
    loop.cancel(t)
    assert.equal("cancelled", select(2, loop.join(t)))
  end)

  it("a task deadline ends its waits with timeout", function()
    local t = loop.spawn(function()
      loop.set_deadline(nil, loop.now() + 0.05)
      return loop.sleep(10)
    end)
    local t0 = loop.now()
    local ok, code, detail = loop.join(t)
    assert.is_nil(ok)
    assert.equal("timeout", code)
    assert.matches("task deadline", detail)
    assert.is_true(loop.now() - t0 < 1)
  end)

  it("cancel reaches a waiting task and its children", function()
    local child
    local parent = loop.spawn(function()
      child = loop.spawn(function() return loop.sleep(10) end)
      return loop.join(child)
    end)
    loop.sleep(0.01)
    loop.cancel(parent)
    assert.equal("cancelled", select(2, loop.join(parent)))
    assert.equal("cancelled", select(2, loop.join(child)))
  end)

  it("lets a check's own coroutines wait inside the host", function()
    local gen = coroutine.wrap(function()
      for i = 1, 3 do
        loop.sleep(0.01)
        coroutine.yield(i)
      end
    end)
    assert.equal(1, gen()); assert.equal(2, gen()); assert.equal(3, gen())
  end)

  it("semaphore caps concurrency", function()
    local sem = loop.semaphore(2)
    local inside, peak = 0, 0
    local ts = {}
    for i = 1, 6 do
      ts[i] = loop.spawn(function()
        assert(sem:acquire())
        inside = inside + 1
        peak = math.max(peak, inside)
        loop.sleep(0.02)
        inside = inside - 1
        sem:release()
      end)
    end
    for i = 1, 6 do loop.join(ts[i]) end
    assert.equal(2, peak)
  end)

  it("refuses to wait where it cannot yield, naming the function", function()
    local ok, err = pcall(table.sort, { 1, 2, 3 }, function() loop.sleep(0.01); return false end)
    assert.is_false(ok)
    assert.matches("loop.wait: cannot wait here", err)
  end)

  it("rejects bad arguments with the function's name", function()
    assert.has_error(function() loop.sleep("x") end, "bad argument #1 to 'sleep' (number expected)")
    assert.has_error(function() loop.spawn(42) end)
  end)

  it("a NaN deadline raises instead of making a wait that never ends", function()
    -- before the fix the wait was armed with no timer, and NaN also hid
    -- the task's own deadline (t.deadline < NaN is false): it slept forever
    local t = loop.spawn(function()
      loop.set_deadline(nil, loop.now() + 0.05)
      return loop.sleep(0 / 0)
    end)
    local ok, code, detail = loop.join(t, loop.now() + 1)
    assert.is_nil(ok)
    assert.equal("error", code)
    assert.matches("bad argument #2 to 'wait_timer' %(deadline is NaN%)", detail)
    local C = require("mxprobe.core").loop
    assert.has_error(function() C.wait_fd(1, 0, "r", 0 / 0) end, "bad argument #4 to 'wait_fd' (deadline is NaN)")
    assert.has_error(function() C.wait_external(1, 0 / 0) end, "bad argument #2 to 'wait_external' (deadline is NaN)")
    assert.has_error(function() C.step(0 / 0) end, "bad argument #1 to 'step' (max_wait is NaN)")
    -- and infinities: "no deadline" is nil
    assert.has_error(function() C.wait_timer(1, math.huge) end, "bad argument #2 to 'wait_timer' (deadline must be a finite number, got inf)")
    assert.has_error(function() C.wait_fd(1, 0, "r", -math.huge) end, "bad argument #4 to 'wait_fd' (deadline must be a finite number, got -inf)")
    assert.has_error(function() C.step(math.huge) end, "bad argument #1 to 'step' (max_wait must be a finite number, got inf)")
  end)
end)
