--- mxprobe.net.x509: small helpers over core.x509 certificate objects.
--
--   x509.load_pem(text)        -> { cert, ... } | nil, "x509"|"limit", detail
--   x509.days_left(cert, now)  -> days until notAfter (negative once expired)
--   x509.to_table(cert, now)   -> a plain table for JSON (below)
--   x509.chain_to_table(chain, now) -> { to_table(c1), to_table(c2), ... }
--   x509.is_cert(v)            -> is v a core.x509 object?
local core = require "mxprobe.core"
local C = core.x509

local M = {}

M.load_pem = C.load_pem
M.load_der = C.load_der

local function wall() return core.loop.wall() end

function M.is_cert(v)
    return type(v) == "userdata" and getmetatable(v) ~= nil and getmetatable(v).__name == "mxprobe.x509"
end

local function check_cert(fname, v)
    if not M.is_cert(v) then
        error(("bad argument #1 to '%s' (x509 certificate expected, got %s)"):format(fname, type(v)), 3)
    end
end

--- Days (a float) from now (epoch seconds, default: the wall clock) until
-- the certificate's notAfter; negative once it has expired.
-- @return days | nil, "x509", detail (an unreadable time field)
function M.days_left(cert, now)
    check_cert("days_left", cert)
    local na, code, detail = cert:not_after()
    if not na then return nil, code, detail end
    return (na - (now or wall())) / 86400
end

local function iso(t)
    return t and os.date("!%Y-%m-%dT%H:%M:%SZ", t) or nil
end

--- A plain table for JSON:
-- { subject, issuer, serial, not_before, not_after (epoch seconds),
--   not_before_iso, not_after_iso, days_left, sans = {...},
--   key = { type, bits, curve }, signature_algorithm, fingerprint_sha256,
--   spki_sha256, self_signed, is_ca, version }
function M.to_table(cert, now)
    check_cert("to_table", cert)
    local ktype, kbits, curve = cert:key()
    local nb, na = cert:not_before(), cert:not_after()
    return {
        subject = cert:subject(),
        issuer = cert:issuer(),
        serial = cert:serial(),
        not_before = nb,
        not_after = na,
        not_before_iso = iso(nb),
        not_after_iso = iso(na),
        days_left = na and math.floor((na - (now or wall())) / 86400 * 100) / 100 or nil,
        sans = cert:sans(),
        key = ktype and { type = ktype, bits = kbits, curve = curve } or nil,
        signature_algorithm = cert:signature_algorithm(),
        fingerprint_sha256 = cert:fingerprint(),
        spki_sha256 = cert:spki_sha256(),
        self_signed = cert:self_signed(),
        is_ca = cert:is_ca(),
        version = cert:version(),
    }
end

function M.chain_to_table(chain, now)
    if type(chain) ~= "table" then
        error(("bad argument #1 to 'chain_to_table' (list of certificates expected, got %s)"):format(type(chain)), 2)
    end
    local out = {}
    for i, c in ipairs(chain) do out[i] = M.to_table(c, now) end
    return out
end

return M
