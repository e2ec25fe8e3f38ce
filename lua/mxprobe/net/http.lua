--- mxprobe.net.http: an HTTPS GET that reads like a blocking call inside
-- a task (core.http: libcurl's multi-socket interface on the loop).
--
--   local http = require "mxprobe.net.http"
--   local res, code, detail = http.get("https://mta-sts.example.org/.well-known/mta-sts.txt",
--       { addresses = { "192.0.2.80" }, max_bytes = 65536, ca_file = nil }, loop.now() + 10)
--   -- res = { status = 200, body = "...", content_type = "text/plain", location = ?, ip = , seconds = }
--
-- Curl resolves nothing: the caller gives the addresses (from c-ares,
-- net/dns), and curl connects to those only.  Only https, PKIX
-- verification of the peer with SNI and name check, TLS 1.2 or later, no
-- redirects (a 3xx comes back with its location), a byte cap and the
-- deadline for the whole transfer.  Failures: nil, code, detail with code
-- "timeout", "tls", "connect", "limit" (body over max_bytes), "http",
-- "cancelled".
local core = require "mxprobe.core"
local loop = require "mxprobe.runtime.loop"
local C = core.http

-- curl_version is read on demand: asking it loads libcurl (core/l_http.c),
-- which a run that fetches nothing should not pay for at start-up
local M = setmetatable({}, { __index = function(_, k)
    if k == "curl_version" then return C.curl_version end
end })

local KNOWN = { addresses = true, max_bytes = true, ca_file = true, timeout = true }

local function argerror(n, msg)
    error(("bad argument #%d to 'get' (%s)"):format(n, msg), 3)
end

--- GET url.  opts.addresses: numeric IPv4/IPv6 addresses of the URL's host.
-- deadline: absolute (loop.now() + s); default now + opts.timeout or 10 s.
function M.get(url, opts, deadline)
    if type(url) ~= "string" then argerror(1, "string expected, got " .. type(url)) end
    opts = opts or {}
    if type(opts) ~= "table" then argerror(2, "options table expected") end
    for k in pairs(opts) do if not KNOWN[k] then argerror(2, ("unknown option '%s'"):format(tostring(k))) end end
    local host, port = url:match("^https://([^/:?#]+):?(%d*)")
    if not host then argerror(1, "an https:// URL expected") end
    port = port ~= "" and port or "443"
    local addrs = opts.addresses
    if type(addrs) ~= "table" or #addrs == 0 then argerror(2, "addresses: a list of addresses of " .. host .. " expected") end
    local entry = {}
    for i, a in ipairs(addrs) do
        entry[i] = a:find(":", 1, true) and ("[%s]"):format(a) or a
    end
    local resolve = { ("%s:%s:%s"):format(host, port, table.concat(entry, ",")) }
    deadline = deadline or (loop.now() + (opts.timeout or 10))
    local left = deadline - loop.now()
    if left <= 0 then return nil, "timeout", "the deadline passed before the request" end
    local ok, t = pcall(C.get, {
        url = url, resolve = resolve, timeout = math.max(0.001, left), max_bytes = opts.max_bytes,
        ca_file = opts.ca_file,
    })
    if not ok then error(t, 2) end -- core.http.get's message already names 'get' and the option
    local w, code, detail = loop.wait(t, nil, deadline + 0.5) -- curl's own timeout ends it first
    local me = loop.current()
    if me then t:clear_waiter(me.token) end
    if not w then
        t:close()
        return nil, code, detail
    end
    local res, rcode, rdetail = t:result()
    t:close()
    return res, rcode, rdetail
end

return M
