--- Test-time certificate factory: runs the openssl command into a fresh
-- temporary directory.  Nothing is checked in; every run makes its own PKI.
--
--   local certs = require("tests.helpers.certs").make()
--   certs.ca                      root CA (the trust anchor: the root only)
--   certs.intermediate            the intermediate that issues the leaves
--   certs.leaf.NAME.cert / .key / .chain (leaf + its issuers, for servers)
--   certs.dir                     the directory; certs.cleanup() removes it
--   certs.make_leaf(name, san)    one more leaf under the intermediate
--
-- Leaves (all under the intermediate unless said otherwise):
--   valid      mx.test, *.wild.test, 127.0.0.1 (EC P-256, SHA-256)
--   expired    mx.test, ended 30 days ago (started 400 days ago)
--   wrong      other.test only
--   self       mx.test, self-signed (not under the test CA)
--   weak       weak.test, RSA-1024 signed with SHA-1 (if openssl allows)
--   ed25519    ed.test, an Ed25519 key
--   long       mx.test under a chain of LONG_CHAIN extra intermediates
--              (its .chain has LONG_CHAIN + 2 certificates: oversized)
-- Leaves are issued with `openssl ca` because OpenSSL 3.0's `x509 -req`
-- cannot put notBefore/notAfter in the past.
local M = {}

M.LONG_CHAIN = 11

local function sh_quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function run(cmd)
    local ok, how, code = os.execute(cmd .. " 2>>" .. (M._log or "/dev/null"))
    if not ok then
        error(("certs: command failed (%s %s): %s"):format(how, tostring(code), cmd), 0)
    end
end

local function write(path, text)
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
end

local function read(path)
    local f = assert(io.open(path, "r"))
    local s = f:read("a")
    f:close()
    return s
end

local function utc(offset_days)
    return os.date("!%Y%m%d%H%M%SZ", os.time() + math.floor(offset_days * 86400))
end

local CNF = [[
[ca]
default_ca = test
[test]
database = %s/db/index.txt
new_certs_dir = %s/db/new
serial = %s/db/serial
default_md = sha256
policy = pol
unique_subject = no
copy_extensions = none
[pol]
commonName = supplied
[req]
distinguished_name = dn
[dn]
[int_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $ENV::SAN
]]

--- Make the whole set; returns the table described above.
function M.make()
    local p = assert(io.popen("mktemp -d /tmp/mxprobe-certs.XXXXXX"))
    local dir = p:read("l")
    p:close()
    assert(dir and dir:match("^/tmp/mxprobe%-certs%."), "mktemp failed")
    M._log = dir .. "/openssl.log"
    run(("mkdir -p %s/db/new"):format(sh_quote(dir)))
    write(dir .. "/db/index.txt", "")
    write(dir .. "/db/serial", "1000\n")
    local cnf = dir .. "/openssl.cnf"
    write(cnf, CNF:format(dir, dir, dir))
    local q = function(s) return sh_quote(dir .. "/" .. s) end
    local env = "SAN=DNS:unused "
    local ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    local base = "openssl ca -batch -notext -config " .. sh_quote(cnf)

    -- root (self-signed) and the intermediate
    run(("%sopenssl req -x509 %s -config %s -keyout %s -out %s -days 3650 -subj '/O=mxprobe tests/CN=mxprobe Test Root CA'"
        .. " -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign'"
        .. " -addext 'subjectKeyIdentifier=hash'"):format(env, ec, sh_quote(cnf), q("root.key"), q("ca.pem")))

    local function issue_ca(name, subject, issuer_cert, issuer_key)
        run(("%sopenssl req -new %s -config %s -keyout %s -out %s -subj %s"):format(env, ec, sh_quote(cnf),
            q(name .. ".key"), q(name .. ".csr"), sh_quote(subject)))
        run(("%s%s -cert %s -keyfile %s -extensions int_ext -days 1825 -in %s -out %s"):format(env, base,
            q(issuer_cert), q(issuer_key), q(name .. ".csr"), q(name .. ".pem")))
    end
    issue_ca("int", "/O=mxprobe tests/CN=mxprobe Test Intermediate CA", "ca.pem", "root.key")

    local leaf = {}
    -- leaf(name, san, {key=req key args, md=, start=, enddate=, issuer=, issuer_key=, chain={pem files}})
    local function make_leaf(name, san, o)
        o = o or {}
        local cn = san:match("^DNS:([^,]+)") or name
        run(("%sopenssl req -new %s -config %s -keyout %s -out %s -subj %s"):format(env, o.key or ec,
            sh_quote(cnf), q(name .. ".key"), q(name .. ".csr"), sh_quote("/O=mxprobe tests/CN=" .. cn)))
        run(("SAN=%s %s -cert %s -keyfile %s -extensions leaf_ext -md %s -startdate %s -enddate %s -in %s -out %s")
            :format(sh_quote(san), base, q(o.issuer or "int.pem"), q(o.issuer_key or "int.key"), o.md or "sha256",
                o.start or utc(-1 / 24), o.enddate or utc(365), q(name .. ".csr"), q(name .. ".crt")))
        local chain = read(dir .. "/" .. name .. ".crt")
        for _, f in ipairs(o.chain or { "int.pem" }) do chain = chain .. read(dir .. "/" .. f) end
        write(dir .. "/" .. name .. ".chain.pem", chain)
        leaf[name] = { cert = dir .. "/" .. name .. ".crt", key = dir .. "/" .. name .. ".key",
                       chain = dir .. "/" .. name .. ".chain.pem", san = san }
    end

    make_leaf("valid", "DNS:mx.test,DNS:*.wild.test,IP:127.0.0.1")
    make_leaf("expired", "DNS:mx.test", { start = utc(-400), enddate = utc(-30) })
    make_leaf("wrong", "DNS:other.test")
    make_leaf("ed25519", "DNS:ed.test", { key = "-newkey ed25519 -nodes" })
    -- RSA-1024 with SHA-1: openssl may refuse either at its default security level
    local weak_ok = pcall(make_leaf, "weak", "DNS:weak.test", { key = "-newkey rsa:1024 -nodes", md = "sha1" })
    M.weak_available = weak_ok

    -- self-signed: not under the test CA at all
    run(("%sopenssl req -x509 %s -config %s -keyout %s -out %s -days 365 -subj '/O=mxprobe tests/CN=mx.test'"
        .. " -addext 'subjectAltName=DNS:mx.test' -addext 'basicConstraints=critical,CA:FALSE'"):format(env, ec,
        sh_quote(cnf), q("self.key"), q("self.crt")))
    write(dir .. "/self.chain.pem", read(dir .. "/self.crt"))
    leaf.self = { cert = dir .. "/self.crt", key = dir .. "/self.key", chain = dir .. "/self.chain.pem",
                  san = "DNS:mx.test" }

    -- a long chain: int -> c1 -> c2 -> ... -> cN -> leaf
    local issuer, chain = "int", { "int.pem" }
    for i = 1, M.LONG_CHAIN do
        local name = "c" .. i
        issue_ca(name, "/O=mxprobe tests/CN=mxprobe Chain CA " .. i, issuer .. ".pem", issuer .. ".key")
        table.insert(chain, 1, name .. ".pem")
        issuer = name
    end
    make_leaf("long", "DNS:mx.test", { issuer = issuer .. ".pem", issuer_key = issuer .. ".key", chain = chain })

    run(("rm -f %s/*.csr"):format(sh_quote(dir)))
    local set = { dir = dir, ca = dir .. "/ca.pem", intermediate = dir .. "/int.pem", leaf = leaf,
                  weak_available = weak_ok }
    function set.cleanup()
        if set.dir then
            os.execute("rm -rf " .. sh_quote(set.dir))
            set.dir = nil
        end
    end
    set.read = read
    -- more leaves under the same intermediate: set.make_leaf(name, "DNS:a,DNS:b")
    set.make_leaf = function(name, san, o) make_leaf(name, san, o); return leaf[name] end
    return set
end

M.read = read
return M
