--- mxprobe.net.tls_grades: how a TLS offer is graded.  The classes follow
-- the NCSC-NL "IT Security Guidelines for TLS" (v2.1, appendix), as
-- internet.nl applies them to mail servers, and RFC 8996 for versions:
--
--   good > sufficient > phase_out > insufficient
--
-- Versions: TLS 1.3 good, TLS 1.2 sufficient, TLS 1.1 and 1.0 phase out
-- (RFC 8996 deprecates them), SSL 3 insufficient.
-- Cipher suites (TLS 1.2 and older; every TLS 1.3 suite is good): ECDHE
-- with an AEAD cipher is good; ECDHE with AES-CBC, and DHE with AES or
-- ChaCha20, sufficient (AES-CCM with its full 16-byte tag counts as
-- sufficient too); static RSA key exchange with AES, and 3DES, phase out;
-- everything else insufficient.  Insufficient is split in two for the
-- report: "broken" suites give no or breakable confidentiality (NULL,
-- export, RC4, DES, MD5); "anonymous" ones authenticate nobody (Postfix
-- accepts them by design for opportunistic TLS: only a client that does
-- not verify asks for them, and the handshake protects the choice); the
-- rest (CCM8, CAMELLIA, ARIA, SEED, ...) are merely off the lists.
-- Key exchange: ECDHE over x25519, x448, P-256 or P-384 good; FFDHE of 3072
-- bits or more sufficient, 2048 phase out, less insufficient.
--
-- The suite lists are OpenSSL names, so that a class can be offered as one
-- cipher string: one handshake tells whether the server accepts any suite
-- of a class (the grade costs a handful of handshakes, not one per suite).

local M = {}

M.ORDER = { "good", "sufficient", "phase_out", "insufficient" }
M.RANK = { good = 1, sufficient = 2, phase_out = 3, insufficient = 4 }
-- the classes offered one handshake each, in this order
M.PROBE_CLASSES = { "good", "sufficient", "phase_out", "insufficient", "anonymous", "broken" }
-- OpenSSL cipher-string aliases of the parts of "insufficient" reported on
-- their own: broken cryptography, and anonymous (unauthenticated) suites
M.BROKEN = { "eNULL", "EXPORT", "RC4", "DES", "MD5" }
M.ANONYMOUS = { "aNULL" }
M.LABEL = { good = "good", sufficient = "sufficient", phase_out = "phase out", insufficient = "insufficient" }

M.VERSIONS = {
    { name = "SSLv3", grade = "insufficient" },
    { name = "TLSv1", grade = "phase_out" },
    { name = "TLSv1.1", grade = "phase_out" },
    { name = "TLSv1.2", grade = "sufficient" },
    { name = "TLSv1.3", grade = "good" },
}
M.VERSION_GRADE = {}
for _, v in ipairs(M.VERSIONS) do M.VERSION_GRADE[v.name] = v.grade end

M.SUITES = {
    good = {
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    },
    sufficient = {
        "ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES256-SHA384", "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
        "ECDHE-ECDSA-AES128-SHA256", "ECDHE-RSA-AES128-SHA256", "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA",
        "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305", "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-SHA256", "DHE-RSA-AES256-SHA", "DHE-RSA-AES128-SHA256", "DHE-RSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-CCM", "ECDHE-ECDSA-AES128-CCM", "DHE-RSA-AES256-CCM", "DHE-RSA-AES128-CCM",
    },
    phase_out = {
        "ECDHE-ECDSA-DES-CBC3-SHA", "ECDHE-RSA-DES-CBC3-SHA", "EDH-RSA-DES-CBC3-SHA",
        "AES256-GCM-SHA384", "AES128-GCM-SHA256", "AES256-SHA256", "AES256-SHA", "AES128-SHA256", "AES128-SHA",
        "DES-CBC3-SHA",
    },
}

local CLASS_OF = {}
for class, list in pairs(M.SUITES) do for _, s in ipairs(list) do CLASS_OF[s] = class end end

--- The grade class of a negotiated suite (OpenSSL name), and whether it is
-- one of the broken ones.
function M.suite_grade(name)
    if not name then return nil end
    if name:match("^TLS_") then return "good" end -- TLS 1.3 suites
    if CLASS_OF[name] then return CLASS_OF[name] end
    local broken = name:find("NULL", 1, true) or name:find("EXP", 1, true) or name:find("RC4", 1, true)
        or name:find("MD5", 1, true) or (name:find("DES", 1, true) and not name:find("DES-CBC3", 1, true))
    if broken then return "insufficient", "broken" end
    if name:match("^ADH") or name:match("^AECDH") then return "insufficient", "anonymous" end
    return "insufficient", "unlisted"
end

--- The OpenSSL cipher string that offers exactly one class (TLS <= 1.2).
-- "insufficient" is everything the library has except the other classes.
function M.cipher_string(class, exclude)
    local parts
    if class == "insufficient" then
        parts = { "ALL", "COMPLEMENTOFALL" }
        for _, c in ipairs { "good", "sufficient", "phase_out" } do
            for _, s in ipairs(M.SUITES[c]) do parts[#parts + 1] = "!" .. s end
        end
        for _, a in ipairs(M.BROKEN) do parts[#parts + 1] = "!" .. a end
        for _, a in ipairs(M.ANONYMOUS) do parts[#parts + 1] = "!" .. a end
    elseif class == "broken" then
        parts = {}
        for _, a in ipairs(M.BROKEN) do parts[#parts + 1] = a end
    elseif class == "anonymous" then
        parts = { "aNULL", "!eNULL" }
    else
        parts = {}
        for _, s in ipairs(M.SUITES[class]) do parts[#parts + 1] = s end
    end
    for _, s in ipairs(exclude or {}) do parts[#parts + 1] = "!" .. s end
    parts[#parts + 1] = "@SECLEVEL=0"
    return table.concat(parts, ":")
end

local GOOD_GROUPS = { X25519 = true, X448 = true, x25519 = true, x448 = true,
                      prime256v1 = true, secp256r1 = true, secp384r1 = true, ["P-256"] = true, ["P-384"] = true }

--- The grade of the server's key exchange: kx_type and kx_bits as
-- core.tls.info reports them (group names for ECDHE come as info.group).
function M.kx_grade(kx_type, kx_bits, group)
    if kx_type == "DH" or kx_type == "DHX" then
        if not kx_bits then return nil end
        if kx_bits >= 3072 then return "sufficient" end
        if kx_bits >= 2048 then return "phase_out" end
        return "insufficient"
    end
    if group or kx_type then
        if GOOD_GROUPS[group or ""] or GOOD_GROUPS[kx_type or ""] then return "good" end
        return "phase_out"
    end
end

--- The worse of two grades (nil-tolerant).
function M.worse(a, b)
    if not a then return b end
    if not b then return a end
    return M.RANK[a] >= M.RANK[b] and a or b
end

return M
