/*
 * l_x509.c - core.x509: read-only certificate objects.
 *
 * A certificate comes from the peer (tls.info's chain) or from PEM/DER
 * text (x509.load_pem, x509.load_der).  Every accessor only reads; nothing
 * here judges a certificate, the checks and the policy do.  Peer-controlled
 * strings are returned as OpenSSL escapes them (RFC 2253 for names); the
 * output layer escapes whatever else is not printable.
 */
#include "bindings.h"
#include "x509_util.h"

#include <arpa/inet.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* Caps on what load_pem accepts: a PEM bundle is peer- or user-supplied. */
#define MAX_PEM_CERTS 64
#define MAX_PEM_BYTES (4u << 20)

typedef struct {
    X509 *x;
} mx_x509;

char *mx_ssl_errors(char *buf, size_t len)
{
    size_t used = 0;
    unsigned long e;
    buf[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        char one[256];
        ERR_error_string_n(e, one, sizeof one);
        if (used + 2 < len) {
            int n = snprintf(buf + used, len - used, "%s%s", used ? "; " : "", one);
            if (n > 0) used += (size_t)n < len - used ? (size_t)n : len - used - 1;
        }
    }
    if (!used) snprintf(buf, len, "unknown error");
    return buf;
}

void mx_x509_push(lua_State *L, X509 *x)
{
    mx_x509 *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->x = NULL;
    luaL_setmetatable(L, MX_X509_MT);
    X509_up_ref(x);
    u->x = x;
}

X509 *mx_x509_check(lua_State *L, int idx)
{
    mx_x509 *u = luaL_checkudata(L, idx, MX_X509_MT);
    if (!u->x) luaL_argerror(L, idx, "x509 object already freed");
    return u->x;
}

/* ---- guards: OpenSSL objects held across calls that may raise ----------
 * A guard is a userdata pushed *before* the object is made; its __gc
 * frees the object if a raise (out of memory in lua_pushlstring, a
 * lua_rawseti, ...) skips the normal release.  The guard stays on the
 * stack under the results (the caller returns only the top values). */
#define GUARD_MT "mxprobe.x509_guard"

typedef struct {
    void *p;
    void (*fn)(void *);
} guard_t;

static void free_gens(void *p) { GENERAL_NAMES_free(p); }
static void free_bio(void *p) { BIO_free(p); }
static void free_x509(void *p) { X509_free(p); }
static void free_ossl(void *p) { OPENSSL_free(p); }

static int guard_gc(lua_State *L)
{
    guard_t *g = luaL_checkudata(L, 1, GUARD_MT);
    if (g->p) g->fn(g->p);
    g->p = NULL;
    return 0;
}

/* [-0, +1, m] a new, empty guard that frees its object with fn */
static guard_t *push_guard(lua_State *L, void (*fn)(void *))
{
    guard_t *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->p = NULL;
    g->fn = fn;
    luaL_setmetatable(L, GUARD_MT);
    return g;
}

/* free the object now (the guard's __gc then has nothing to do) */
static void guard_release(guard_t *g)
{
    if (g->p) g->fn(g->p);
    g->p = NULL;
}

/* [-0, +1, m] push the contents of the guarded memory BIO, then free it */
static void push_bio(lua_State *L, guard_t *g)
{
    char *p;
    long n = BIO_get_mem_data((BIO *)g->p, &p);
    lua_pushlstring(L, p, n > 0 ? (size_t)n : 0);
    guard_release(g);
}

static int push_name(lua_State *L, const X509_NAME *name)
{
    guard_t *g = push_guard(L, free_bio);
    BIO *b = g->p = BIO_new(BIO_s_mem());
    if (!b) return luaL_error(L, "x509: out of memory");
    X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253);
    push_bio(L, g);
    return 1;
}

/* x509:subject ()  [-0, +1, e]  one-line RFC 2253 string */
static int l_subject(lua_State *L) { return push_name(L, X509_get_subject_name(mx_x509_check(L, 1))); }

/* x509:issuer ()  [-0, +1, e] */
static int l_issuer(lua_State *L) { return push_name(L, X509_get_issuer_name(mx_x509_check(L, 1))); }

/* x509:serial ()  [-0, +1, e]  upper-case hex, as openssl x509 -serial prints it */
static int l_serial(lua_State *L)
{
    X509 *x = mx_x509_check(L, 1);
    guard_t *g = push_guard(L, free_ossl);
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = g->p = bn ? BN_bn2hex(bn) : NULL;
    BN_free(bn);
    if (!hex) return luaL_error(L, "x509:serial: cannot convert the serial number");
    lua_pushstring(L, hex);
    guard_release(g);
    return 1;
}

static int push_time(lua_State *L, const ASN1_TIME *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!t || !ASN1_TIME_to_tm(t, &tm)) return mx_fail(L, "x509", "the certificate has an invalid time field");
    lua_pushinteger(L, (lua_Integer)timegm(&tm));
    return 1;
}

/* x509:not_before ()  [-0, +1|3, e]  epoch seconds */
static int l_not_before(lua_State *L) { return push_time(L, X509_get0_notBefore(mx_x509_check(L, 1))); }

/* x509:not_after ()  [-0, +1|3, e]  epoch seconds */
static int l_not_after(lua_State *L) { return push_time(L, X509_get0_notAfter(mx_x509_check(L, 1))); }

/* x509:sans ()  [-0, +1, e]  { "mx.example", "192.0.2.1", ... } in
 * certificate order: DNS names as written, IP addresses in text form. */
static int l_sans(lua_State *L)
{
    X509 *x = mx_x509_check(L, 1);
    guard_t *guard = push_guard(L, free_gens);
    GENERAL_NAMES *gens = guard->p = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    lua_newtable(L);
    if (!gens) return 1;
    int n = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_DNS) {
            const ASN1_STRING *s = g->d.dNSName;
            lua_pushlstring(L, (const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
        } else if (g->type == GEN_IPADD) {
            const ASN1_OCTET_STRING *s = g->d.iPAddress;
            char ip[INET6_ADDRSTRLEN];
            int len = ASN1_STRING_length(s);
            if ((len != 4 && len != 16) ||
                !inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), ip, sizeof ip))
                continue;
            lua_pushstring(L, ip);
        } else {
            continue;
        }
        lua_rawseti(L, -2, ++n);
    }
    guard_release(guard);
    return 1;
}

/* x509:key ()  [-0, +2|3, e]  -> type ("RSA", "EC", "ED25519", ...), bits
 * [, curve name for EC keys ("prime256v1")] */
static int l_key(lua_State *L)
{
    X509 *x = mx_x509_check(L, 1);
    EVP_PKEY *pk = X509_get0_pubkey(x);
    if (!pk) return mx_fail(L, "x509", "the public key cannot be decoded");
    int id = EVP_PKEY_get_base_id(pk);
    const char *type;
    switch (id) {
    case EVP_PKEY_RSA: type = "RSA"; break;
    case EVP_PKEY_RSA_PSS: type = "RSA-PSS"; break;
    case EVP_PKEY_EC: type = "EC"; break;
    case EVP_PKEY_ED25519: type = "ED25519"; break;
    case EVP_PKEY_ED448: type = "ED448"; break;
    case EVP_PKEY_DSA: type = "DSA"; break;
    case EVP_PKEY_DH: type = "DH"; break;
    default: type = EVP_PKEY_get0_type_name(pk); if (!type) type = "unknown";
    }
    lua_pushstring(L, type);
    lua_pushinteger(L, EVP_PKEY_get_bits(pk));
    if (id == EVP_PKEY_EC) {
        char curve[64];
        size_t len = 0;
        if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof curve, &len)) {
            lua_pushstring(L, curve);
            return 3;
        }
        ERR_clear_error();
    }
    return 2;
}

/* x509:signature_algorithm ()  [-0, +1, e]  "sha256WithRSAEncryption",
 * "ecdsa-with-SHA256", "ED25519"; the dotted OID when OpenSSL has no name */
static int l_signature_algorithm(lua_State *L)
{
    X509 *x = mx_x509_check(L, 1);
    int nid = X509_get_signature_nid(x);
    const char *ln = nid != NID_undef ? OBJ_nid2ln(nid) : NULL;
    if (ln) {
        lua_pushstring(L, ln);
        return 1;
    }
    const X509_ALGOR *alg;
    const ASN1_OBJECT *obj;
    char buf[128];
    X509_get0_signature(NULL, &alg, x);
    X509_ALGOR_get0(&obj, NULL, NULL, alg);
    OBJ_obj2txt(buf, sizeof buf, obj, 1);
    lua_pushstring(L, buf);
    return 1;
}

static void push_hex(lua_State *L, const unsigned char *md, unsigned len, int colons, int upper)
{
    static const char lo[] = "0123456789abcdef", up[] = "0123456789ABCDEF";
    const char *digits = upper ? up : lo;
    char out[EVP_MAX_MD_SIZE * 3 + 1];
    size_t o = 0;
    for (unsigned i = 0; i < len; i++) {
        if (colons && i) out[o++] = ':';
        out[o++] = digits[md[i] >> 4];
        out[o++] = digits[md[i] & 15];
    }
    lua_pushlstring(L, out, o);
}

/* x509:fingerprint (digest = "sha256")  [-0, +1, e]  "AB:CD:..." as
 * openssl x509 -fingerprint prints it */
static int l_fingerprint(lua_State *L)
{
    X509 *x = mx_x509_check(L, 1);
    const char *name = luaL_optstring(L, 2, "sha256");
    const EVP_MD *md = EVP_get_digestbyname(name);
    if (!md) return luaL_argerror(L, 2, lua_pushfstring(L, "unknown digest '%s'", name));
    unsigned char buf[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (!X509_digest(x, md, buf, &len)) return luaL_error(L, "x509:fingerprint: digest failed");
    push_hex(L, buf, len, 1, 1);
    return 1;
}

/* x509:spki_sha256 ()  [-0, +1, e]  lower-case hex SHA-256 of the
 * SubjectPublicKeyInfo: the data of a DANE TLSA "3 1 1" record */
static int l_spki_sha256(lua_State *L)
{
    X509 *x = mx_x509_check(L, 1);
    unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    if (n <= 0) return luaL_error(L, "x509:spki_sha256: cannot encode the public key");
    int ok = EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL);
    OPENSSL_free(der);
    if (!ok) return luaL_error(L, "x509:spki_sha256: digest failed");
    push_hex(L, md, mdlen, 0, 0);
    return 1;
}

/* x509:tlsa (selector, mtype)  [-3, +1, e]
 * -> the certificate association data a TLSA record with this selector
 * (0: the whole certificate, 1: SubjectPublicKeyInfo) and matching type
 * (0: exact, 1: SHA-256, 2: SHA-512) carries for this certificate, as
 * lower-case hex (RFC 6698 section 2.1).  Raises on other values. */
static int l_tlsa(lua_State *L)
{
    X509 *x = mx_x509_check(L, 1);
    lua_Integer sel = luaL_checkinteger(L, 2), mt = luaL_checkinteger(L, 3);
    luaL_argcheck(L, sel == 0 || sel == 1, 2, "selector 0 or 1 expected");
    luaL_argcheck(L, mt >= 0 && mt <= 2, 3, "matching type 0, 1 or 2 expected");
    unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    int n = sel == 0 ? i2d_X509(x, &der) : i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    if (n <= 0) return luaL_error(L, "x509:tlsa: cannot encode the %s", sel == 0 ? "certificate" : "public key");
    if (mt == 0) {
        /* the hex of the DER itself: push_hex's buffer holds a digest only.
         * The Lua buffer is made while nothing is allocated (it may raise),
         * and der is freed before the result is pushed (which may raise). */
        OPENSSL_free(der);
        der = NULL;
        static const char hx[] = "0123456789abcdef";
        luaL_Buffer b;
        char *out = luaL_buffinitsize(L, &b, 2 * (size_t)n);
        int m = sel == 0 ? i2d_X509(x, &der) : i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
        if (m != n) {
            OPENSSL_free(der);
            return luaL_error(L, "x509:tlsa: cannot encode the %s", sel == 0 ? "certificate" : "public key");
        }
        for (int i = 0; i < n; i++) {
            out[2 * i] = hx[der[i] >> 4];
            out[2 * i + 1] = hx[der[i] & 15];
        }
        OPENSSL_free(der);
        luaL_pushresultsize(&b, 2 * (size_t)n);
        return 1;
    }
    int ok = EVP_Digest(der, (size_t)n, md, &mdlen, mt == 1 ? EVP_sha256() : EVP_sha512(), NULL);
    OPENSSL_free(der);
    if (!ok) return luaL_error(L, "x509:tlsa: digest failed");
    push_hex(L, md, mdlen, 0, 0);
    return 1;
}

/* x509.verify_to_anchor (chain, anchor, name [, time])  [-3|4, +1|3, e]
 * chain: { leaf, intermediate..., } as the peer sent it; anchor: the index
 * in chain of the certificate a DANE-TA (usage 2) record matched.  Verifies
 * the leaf up to that certificate as the only trust anchor (partial chain:
 * it need not be self-signed), the certificates in between as untrusted
 * intermediates, validity at `time` (default now), and the leaf's names
 * against `name` (RFC 6125 rules, as a DANE-TA sender checks the MX host;
 * RFC 7672 section 3.2.2).
 * -> true | nil, "verify", "reason (at depth N)" */
static int l_verify_to_anchor(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer anchor = luaL_checkinteger(L, 2);
    const char *name = luaL_checkstring(L, 3);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    luaL_argcheck(L, n >= 1 && n <= 64, 1, "a chain of 1 to 64 certificates expected");
    luaL_argcheck(L, anchor >= 1 && anchor <= n, 2, "index into the chain expected");
    X509 *certs[64];
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        certs[i - 1] = mx_x509_check(L, -1);
        lua_pop(L, 1); /* the table keeps the object alive */
    }
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *sctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    char why[300];
    int ok = store && sctx && untrusted && X509_STORE_add_cert(store, certs[anchor - 1]) == 1;
    for (lua_Integer i = 2; ok && i < anchor; i++) ok = sk_X509_push(untrusted, certs[i - 1]) > 0;
    if (ok) ok = X509_STORE_CTX_init(sctx, store, certs[0], untrusted) == 1;
    if (!ok) {
        mx_ssl_errors(why, sizeof why);
        sk_X509_free(untrusted);
        X509_STORE_CTX_free(sctx);
        X509_STORE_free(store);
        return luaL_error(L, "x509.verify_to_anchor: %s", why);
    }
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(sctx);
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    X509_VERIFY_PARAM_set1_host(param, name, 0);
    if (!lua_isnoneornil(L, 4)) X509_VERIFY_PARAM_set_time(param, (time_t)luaL_checkinteger(L, 4));
    int r = X509_verify_cert(sctx);
    int err = X509_STORE_CTX_get_error(sctx), depth = X509_STORE_CTX_get_error_depth(sctx);
    sk_X509_free(untrusted);
    X509_STORE_CTX_free(sctx);
    X509_STORE_free(store);
    ERR_clear_error();
    if (r == 1) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushliteral(L, "verify");
    lua_pushfstring(L, "%s (at depth %d)", X509_verify_cert_error_string(err), depth);
    return 3;
}

/* x509:pem ()  [-0, +1, e] */
static int l_pem(lua_State *L)
{
    X509 *x = mx_x509_check(L, 1);
    guard_t *g = push_guard(L, free_bio);
    BIO *b = g->p = BIO_new(BIO_s_mem());
    if (!b || !PEM_write_bio_X509(b, x)) {
        guard_release(g);
        return luaL_error(L, "x509:pem: cannot encode the certificate");
    }
    push_bio(L, g);
    return 1;
}

/* x509:der ()  [-0, +1, e] */
static int l_der(lua_State *L)
{
    X509 *x = mx_x509_check(L, 1);
    unsigned char *der = NULL;
    guard_t *g = push_guard(L, free_ossl);
    int n = i2d_X509(x, &der);
    g->p = der;
    if (n <= 0) return luaL_error(L, "x509:der: cannot encode the certificate");
    lua_pushlstring(L, (const char *)der, (size_t)n);
    guard_release(g);
    return 1;
}

/* X509_check_host with RFC 6125 wildcard rules (a wildcard is a whole
 * left-most label: "*.example.org" matches "mx.example.org", not
 * "example.org" nor "a.mx.example.org"; no partial "mx*.example.org").
 * A numeric address is matched against the IP SANs instead.  One trailing
 * dot of a DNS name is ignored.  Returns 1 match, 0 no match, -1 malformed. */
int mx_x509_match_host(X509 *x, const char *name, size_t len)
{
    char buf[256];
    unsigned char addr[16];
    if (len && name[len - 1] == '.') len--;
    if (len == 0 || len >= sizeof buf || memchr(name, '\0', len)) return -1;
    memcpy(buf, name, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, addr) == 1 || inet_pton(AF_INET6, buf, addr) == 1) {
        int r = X509_check_ip_asc(x, buf, 0);
        return r == 1 ? 1 : r == 0 ? 0 : -1;
    }
    int r = X509_check_host(x, buf, len, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL);
    return r == 1 ? 1 : r == 0 ? 0 : -1;
}

/* x509:check_host (name)  [-0, +1|2, e]  -> true | false [, "malformed name"] */
static int l_check_host(lua_State *L)
{
    X509 *x = mx_x509_check(L, 1);
    size_t len;
    const char *name = luaL_checklstring(L, 2, &len);
    int r = mx_x509_match_host(x, name, len);
    ERR_clear_error();
    lua_pushboolean(L, r == 1);
    if (r < 0) {
        lua_pushliteral(L, "malformed name");
        return 2;
    }
    return 1;
}

/* x509:self_signed ()  [-0, +1, e]  issuer = subject and the signature
 * verifies with the certificate's own key */
static int l_self_signed(lua_State *L)
{
    X509 *x = mx_x509_check(L, 1);
    int r = X509_self_signed(x, 1);
    ERR_clear_error();
    lua_pushboolean(L, r == 1);
    return 1;
}

/* x509:is_ca ()  [-0, +1, e] */
static int l_is_ca(lua_State *L)
{
    lua_pushboolean(L, X509_check_ca(mx_x509_check(L, 1)) > 0);
    return 1;
}

/* x509:version ()  [-0, +1, e]  1, 2 or 3 */
static int l_version(lua_State *L)
{
    lua_pushinteger(L, X509_get_version(mx_x509_check(L, 1)) + 1);
    return 1;
}

static int l_gc(lua_State *L)
{
    mx_x509 *u = luaL_checkudata(L, 1, MX_X509_MT);
    X509_free(u->x);
    u->x = NULL;
    return 0;
}

static int l_tostring(lua_State *L)
{
    mx_x509 *u = luaL_checkudata(L, 1, MX_X509_MT);
    if (!u->x) {
        lua_pushliteral(L, "x509 (freed)");
        return 1;
    }
    push_name(L, X509_get_subject_name(u->x));
    lua_pushfstring(L, "x509: %s", lua_tostring(L, -1));
    return 1;
}

/* Lua calls __eq for any two full userdata, so the other operand may be a
 * socket: that is "not equal", never an error. */
static int l_eq(lua_State *L)
{
    mx_x509 *a = luaL_testudata(L, 1, MX_X509_MT), *b = luaL_testudata(L, 2, MX_X509_MT);
    lua_pushboolean(L, a && b && a->x && b->x && X509_cmp(a->x, b->x) == 0);
    return 1;
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

/* x509.load_pem (text)  [-0, +1|3, e]  -> { x509, ... } in file order |
 * nil, "x509", detail | nil, "limit", detail.  Blocks other than
 * CERTIFICATE (keys, parameters) are skipped. */
static int l_load_pem(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    if (len > MAX_PEM_BYTES) return mx_fail(L, "limit", "PEM text of %zu bytes (cap %u)", len, MAX_PEM_BYTES);
    guard_t *gb = push_guard(L, free_bio), *gx = push_guard(L, free_x509);
    BIO *b = gb->p = BIO_new_mem_buf(text, (int)len);
    if (!b) return luaL_error(L, "x509.load_pem: out of memory");
    lua_newtable(L);
    int n = 0;
    ERR_clear_error();
    for (;;) {
        X509 *x = gx->p = PEM_read_bio_X509(b, NULL, no_password, NULL);
        if (!x) break;
        if (n == MAX_PEM_CERTS) {
            guard_release(gx);
            guard_release(gb);
            return mx_fail(L, "limit", "more than %d certificates in the PEM text", MAX_PEM_CERTS);
        }
        mx_x509_push(L, x);
        guard_release(gx);
        lua_rawseti(L, -2, ++n);
    }
    guard_release(gb);
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error(); /* the normal end: no further PEM block */
        if (n == 0) return mx_fail(L, "x509", "no PEM certificate found");
        return 1;
    }
    if (e != 0 || n == 0) {
        char detail[400];
        mx_ssl_errors(detail, sizeof detail);
        return mx_fail(L, "x509", "cannot parse certificate #%d: %s", n + 1, detail);
    }
    return 1;
}

/* x509.load_der (bytes)  [-0, +1|3, e]  -> x509 | nil, "x509", detail */
static int l_load_der(lua_State *L)
{
    size_t len;
    const char *der = luaL_checklstring(L, 1, &len);
    const unsigned char *p = (const unsigned char *)der;
    if (len > MAX_PEM_BYTES) return mx_fail(L, "limit", "DER of %zu bytes (cap %u)", len, MAX_PEM_BYTES);
    ERR_clear_error();
    guard_t *g = push_guard(L, free_x509);
    X509 *x = g->p = d2i_X509(NULL, &p, (long)len);
    if (!x) {
        char detail[400];
        return mx_fail(L, "x509", "cannot parse the DER certificate: %s", mx_ssl_errors(detail, sizeof detail));
    }
    if ((size_t)(p - (const unsigned char *)der) != len) {
        guard_release(g);
        return mx_fail(L, "x509", "%zu trailing bytes after the DER certificate",
                       len - (size_t)(p - (const unsigned char *)der));
    }
    mx_x509_push(L, x);
    guard_release(g);
    return 1;
}

static const luaL_Reg x509_methods[] = {
    {"subject", l_subject},
    {"issuer", l_issuer},
    {"serial", l_serial},
    {"not_before", l_not_before},
    {"not_after", l_not_after},
    {"sans", l_sans},
    {"key", l_key},
    {"signature_algorithm", l_signature_algorithm},
    {"fingerprint", l_fingerprint},
    {"spki_sha256", l_spki_sha256},
    {"tlsa", l_tlsa},
    {"pem", l_pem},
    {"der", l_der},
    {"check_host", l_check_host},
    {"self_signed", l_self_signed},
    {"is_ca", l_is_ca},
    {"version", l_version},
    {NULL, NULL},
};

static const luaL_Reg x509_funcs[] = {
    {"load_pem", l_load_pem},
    {"load_der", l_load_der},
    {"verify_to_anchor", l_verify_to_anchor},
    {NULL, NULL},
};

int mx_open_x509(lua_State *L)
{
    if (luaL_newmetatable(L, MX_X509_MT)) {
        luaL_newlib(L, x509_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, l_eq);
        lua_setfield(L, -2, "__eq");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, GUARD_MT)) {
        lua_pushcfunction(L, guard_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newlib(L, x509_funcs);
    return 1;
}
