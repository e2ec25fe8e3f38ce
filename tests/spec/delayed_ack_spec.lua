-- A reply written in two pieces by a server with Nagle on must not wait
-- for our delayed ACK (40 ms a time on Linux): core/l_net.c acknowledges
-- every read at once (TCP_QUICKACK).  Before, bench/domain's healthy
-- two-MX domain waited 40 ms for the EHLO reply after each STARTTLS.
local loop = require "mxprobe.runtime.loop"
local socket = require "mxprobe.net.socket"

local helpers = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") .. "/helpers"

describe("replies in two pieces", function()
    it("are read without waiting for a delayed ACK", function()
        local ready = os.tmpname()
        os.remove(ready)
        local p = io.popen(("python3 %s/split_replies.py %s 20 >/dev/null 2>&1 & echo $!"):format(helpers, ready))
        local pid = p:read("l")
        p:close()
        local port
        for _ = 1, 100 do
            local f = io.open(ready)
            if f then port = tonumber(f:read("l")); f:close(); break end
            loop.sleep(0.05)
        end
        os.remove(ready)
        assert(port, "split_replies.py did not start")
        local s = assert(socket.connect("127.0.0.1", port, { timeout = 5 }))
        assert.are.equal(220, assert(s:receive_reply(nil, loop.now() + 5)).code)
        -- enough exchanges for the kernel to take us for an interactive
        -- peer and start delaying ACKs
        local rounds, t0 = 12, loop.now()
        for _ = 1, rounds do
            assert(s:send("NOOP\r\n", loop.now() + 5))
            local r = assert(s:receive_reply(nil, loop.now() + 5))
            assert.are.equal(250, r.code)
            assert.are.equal(2, #r.lines)
        end
        local elapsed = loop.now() - t0
        s:send("QUIT\r\n", loop.now() + 1)
        s:close()
        os.execute("kill " .. pid .. " 2>/dev/null")
        -- with delayed ACKs: about 40 ms a round (0.48 s); without, a few ms
        assert.is_true(elapsed < 0.25, ("%d rounds took %.3f s"):format(rounds, elapsed))
    end)
end)
