--- mxprobe.net.tls: the TLS handshake on a raw core.net socket, as a task.
--
-- core.tls does one non-blocking step per call; this module loops them with
-- loop.wait (the only yield point).  The cosocket wrapper's tls_handshake
-- calls handshake(raw_sock, opts, deadline).
--
--   local info, code, detail, injected = tls.handshake(sock, {
--       sni = "mx1.example.org",       -- server_name sent (false: none); alias server_name
--       verify_name = nil,             -- name matched against the leaf (default: sni)
--       min = "TLSv1", max = nil,      -- "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3"
--       ca_file = nil,                 -- PEM bundle; nil = system store; false = none
--       security_level = 0,            -- 0 also means cipher list "DEFAULT:@SECLEVEL=0"
--       ciphers = nil, ciphersuites = nil,
--       max_chain = 10, max_chain_bytes = 65536,
--       chain = true,                  -- false: no x509 objects (and no chain caps)
--       server = false, cert = nil, key = nil,  -- server side (test servers)
--       ctx = nil,                     -- an explicit core.tls context instead
--       allow_buffered = false,        -- tests only: discard injected plaintext
--       session = nil,                 -- a tls.session() of this server, offered once
--   }, deadline)
--
-- Returns core.tls.info's table (plus handshake_s, the seconds the handshake
-- took) or nil, code, detail with code one of "timeout", "cancelled", "tls",
-- "reset", "closed", "limit", "injection".  For "injection" a fourth value
-- carries the buffered plaintext, escaped for display; the raw bytes stay
-- in the socket's buffer (sock:take_buffered()).
--
-- Resumption is explicit and rare: tls.session(sock) takes the session of
-- a finished handshake (after the first reply inside TLS: TLS 1.3 tickets
-- arrive after the handshake), and the option session offers it on one
-- later handshake with the same server (address, port, server name; core.tls
-- raises otherwise).  info.resumed says whether the server took it; one
-- that does not makes a full handshake.  Nothing else ever resumes.
local core = require "mxprobe.core"
local loop = require "mxprobe.runtime.loop"
local escape = require "mxprobe.runtime.escape"
local C = core.tls

local M = {}

M.openssl_version = C.openssl_version
M.MAX_ESCAPED = 512

local CTX_KEYS = { "min", "max", "ca_file", "security_level", "ciphers", "ciphersuites", "server", "cert", "key",
                   "max_cert_list", "sigalgs", "groups" }
local UPGRADE_KEYS = { "sni", "verify_name", "allow_buffered", "max_chain", "max_chain_bytes", "session" }
local KNOWN = { ctx = true, chain = true, server_name = true }
for _, k in ipairs(CTX_KEYS) do KNOWN[k] = true end
for _, k in ipairs(UPGRADE_KEYS) do KNOWN[k] = true end

local cache = {}  -- option key -> context (a handful per process)

--- Printable form of bytes a peer sent, cut at max bytes of input
-- (default MAX_ESCAPED) with "..." appended: the transcript escaping
-- (mxprobe.runtime.escape.for_transcript).
function M.escape(bytes, max)
    return escape.for_transcript(bytes, max or M.MAX_ESCAPED)
end

--- A context for these options, made once per distinct set and kept.
-- @return context | nil, "tls", detail
function M.context(opts)
    opts = opts or {}
    local parts, copt = {}, {}
    for i, k in ipairs(CTX_KEYS) do
        local v = opts[k]
        parts[i] = tostring(v)
        copt[k] = v
    end
    local key = table.concat(parts, "\0")
    local ctx = cache[key]
    if ctx then return ctx end
    local c, code, detail = C.context(copt)
    if not c then return nil, code, detail end
    cache[key] = c
    return c
end

--- Forget cached contexts (tests that rewrite certificate files).
function M.clear_cache() cache = {} end

local function check_opts(opts)
    if opts == nil then return {} end
    if type(opts) ~= "table" then
        error(("bad argument #2 to 'handshake' (options table expected, got %s)"):format(type(opts)), 3)
    end
    for k in pairs(opts) do
        if not KNOWN[k] then
            error(("bad argument #2 to 'handshake' (unknown option '%s')"):format(tostring(k)), 3)
        end
    end
    return opts
end

--- Upgrade the socket and run the handshake to completion or the deadline.
function M.handshake(sock, opts, deadline)
    opts = check_opts(opts)
    if deadline ~= nil and type(deadline) ~= "number" then
        error(("bad argument #3 to 'handshake' (absolute deadline expected, got %s)"):format(type(deadline)), 2)
    end
    local ctx = opts.ctx
    if not ctx then
        local code, detail
        ctx, code, detail = M.context(opts)
        if not ctx then return nil, code, detail end
    end
    local sni = opts.sni
    if sni == nil then sni = opts.server_name end
    local t0 = loop.now()
    local ok, code, detail, bytes = C.upgrade(sock, ctx, {
        sni = sni,
        verify_name = opts.verify_name,
        allow_buffered = opts.allow_buffered,
        max_chain = opts.max_chain,
        max_chain_bytes = opts.max_chain_bytes,
        session = opts.session,
    })
    if not ok then
        if code == "injection" then
            -- the evidence rides in the detail too, for wrappers that pass on three values
            local shown = M.escape(bytes or "")
            return nil, code, ('%s: "%s"'):format(detail, M.escape(bytes or "", 64)), shown
        end
        return nil, code, detail
    end
    while true do
        local done, scode, ev = C.handshake_step(sock)
        if done then break end
        if scode ~= "again" then return nil, scode, ev end
        local w, wcode, wdetail = loop.wait(sock, ev, deadline)
        if not w then
            if wcode == "timeout" then
                wdetail = "the TLS handshake did not finish before the deadline (" .. tostring(wdetail) .. ")"
            end
            return nil, wcode, wdetail
        end
    end
    local info, icode, idetail = C.info(sock, { chain = opts.chain ~= false })
    if not info then return nil, icode, idetail end
    info.handshake_s = loop.now() - t0
    return info
end

--- Send our close_notify (best effort, bounded by the deadline).
function M.shutdown(sock, deadline)
    while true do
        local ok, code, ev = C.shutdown(sock)
        if ok then return true end
        if code ~= "again" then return nil, code, ev end
        local w, wcode, wdetail = loop.wait(sock, ev, deadline)
        if not w then return nil, wcode, wdetail end
    end
end

M.info = C.info
M.is_tls = C.is_tls
--- The session of a finished client handshake, for the option session:
-- session | nil, "tls"|"unresumable", detail.
M.session = C.session

return M
