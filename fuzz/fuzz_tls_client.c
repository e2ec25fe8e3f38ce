/*
 * fuzz_tls_client.c - libFuzzer target for core/l_tls.c as a client: the
 * handshake loop, the verify callback's error bookkeeping, tls.info() (the
 * chain caps, chain_truncated, hostname_match) and the x509 accessors of
 * every certificate a server sent, driven through the Lua bindings the way
 * lua/mxprobe/net/tls.lua drives them.
 *
 * The peer is in this process, on the other end of a socketpair:
 *  - structured mode: a real OpenSSL server whose leaf certificate is the
 *    first certificate of the input with its key replaced by ours and
 *    signed again (by our CA or by itself), so its names, validity and
 *    extensions are fuzzed while the handshake can still complete; further
 *    certificates of the input go out as its chain;
 *  - raw mode: the input's bytes are the whole server side (after reading
 *    the ClientHello), for the client's handling of garbage, truncation and
 *    alerts.
 *
 * Input: byte 0 flags (bit 0 raw mode; bits 1-3 client context; bit 4
 * leaf signed by the CA; bit 5 the CA in the chain; bit 6 application
 * data after the handshake); byte 1 max_chain - 1 (mod 16); byte 2
 * max_chain_bytes in 512-byte steps above 1024; byte 3 name length (mod
 * 64), then the name (SNI and verify_name); then certificates as 2-byte
 * big-endian lengths and DER, up to 24; what follows is the raw server
 * stream (raw mode) or the application data.
 * Lua errors from the bindings are allowed (they are how they refuse);
 * crashes, hangs, leaks and sanitizer reports are not, nor a handshake
 * loop that does not end.
 */
#include "bindings.h"
#include "sock.h"

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <lualib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define NCTX 5
#define MAX_CERTS 24

static const char chunk[] =
    "local tls, sock, ctx, opts, pump, name, app = ...\n"
    "local ok, code = tls.upgrade(sock, ctx, opts)\n"
    "if not ok then return 'upgrade ' .. tostring(code) end\n"
    "local done\n"
    "for _ = 1, 400 do\n"
    "  local r, c = tls.handshake_step(sock)\n"
    "  if r then done = true; break end\n"
    "  if c ~= 'again' then break end\n"
    "  pump()\n"
    "end\n"
    "local info = tls.info(sock)\n"
    "if done then\n"
    "  assert(info, 'a complete handshake without info')\n"
    "  assert(#info.chain <= opts.max_chain, 'more certificates kept than the cap')\n"
    "  if info.chain_truncated then assert(info.chain_truncated.kept == #info.chain) end\n"
    "  for _, c in ipairs(info.chain) do\n"
    "    local function try(f, ...) pcall(f, c, ...) end\n"
    "    try(c.subject); try(c.issuer); try(c.not_after); try(c.sans); try(c.key)\n"
    "    try(c.fingerprint); try(c.spki_sha256); try(c.self_signed); try(c.check_host, name)\n"
    "  end\n"
    "  tls.info(sock, { chain = false })\n"
    "  if app then for _ = 1, 8 do pump(); if not sock:fill() then break end end end\n"
    "end\n"
    "for _ = 1, 8 do if tls.shutdown(sock) then break end end\n"
    "sock:close()\n"
    "return done and ('done ' .. tostring(info.verify.result) .. ' ' .. #info.verify.errors .. ' errors') or 'failed'\n";

static lua_State *L;
static int chunk_ref, tls_ref, ctx_ref[NCTX];
static EVP_PKEY *ca_key, *leaf_key;
static X509 *ca_cert, *default_leaf;
static SSL_CTX *server_ctx;
static char ca_path[64];

/* the peer of one input */
static struct {
    int fd;
    int raw;
    SSL *ssl;
    const uint8_t *stream;
    size_t stream_len, sent;
    int handshaken, app_sent;
} peer;

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, int ca)
{
    X509 *x = X509_new();
    if (!x) abort();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), ca ? 1 : 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -86400);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
    X509_set_pubkey(x, key);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, ca ? NID_basic_constraints : NID_subject_alt_name,
                                            ca ? "critical,CA:TRUE" : "DNS:mx.fuzz.test");
    if (!e || !X509_add_ext(x, e, -1)) abort();
    X509_EXTENSION_free(e);
    if (!X509_sign(x, issuer_key, EVP_sha256())) abort();
    return x;
}

/* One client context per variant, made through tls.context as checks do. */
static void make_contexts(void)
{
    static const char *const variants[NCTX] = {
        "return { ca_file = '%s' }",
        "return { ca_file = '%s', max = 'TLSv1.2' }",
        "return { ca_file = '%s', min = 'TLSv1.3' }",
        "return { ca_file = '%s', security_level = 2, min = 'TLSv1.2' }",
        "return { ca_file = '%s', max_cert_list = 2048 }",
    };
    for (int i = 0; i < NCTX; i++) {
        char src[256];
        snprintf(src, sizeof src, variants[i], ca_path);
        lua_rawgeti(L, LUA_REGISTRYINDEX, tls_ref);
        lua_getfield(L, -1, "context");
        if (luaL_dostring(L, src) != LUA_OK) abort();
        if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_isuserdata(L, -1)) {
            fprintf(stderr, "fuzz: tls.context: %s\n", lua_tostring(L, -1));
            abort();
        }
        ctx_ref[i] = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_pop(L, 1);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN);
    ca_key = EVP_EC_gen("P-256");
    leaf_key = EVP_EC_gen("P-256");
    if (!ca_key || !leaf_key) abort();
    ca_cert = make_cert("Fuzz CA", ca_key, NULL, ca_key, 1);
    default_leaf = make_cert("mx.fuzz.test", leaf_key, ca_cert, ca_key, 0);
    snprintf(ca_path, sizeof ca_path, "/tmp/mxprobe-fuzz-ca-XXXXXX");
    int fd = mkstemp(ca_path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f || !PEM_write_X509(f, ca_cert)) abort();
    fclose(f);

    server_ctx = SSL_CTX_new(TLS_server_method());
    if (!server_ctx) abort();
    SSL_CTX_set_security_level(server_ctx, 0);
    SSL_CTX_set_cipher_list(server_ctx, "ALL:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(server_ctx, TLS1_VERSION);
    SSL_CTX_set_session_cache_mode(server_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(server_ctx, SSL_OP_NO_TICKET);

    L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "net", mx_open_net, 0); /* the socket metatable */
    lua_pop(L, 1);
    luaL_requiref(L, "x509", mx_open_x509, 0);
    lua_pop(L, 1);
    luaL_requiref(L, "tls", mx_open_tls, 0);
    tls_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (luaL_loadbuffer(L, chunk, sizeof chunk - 1, "fuzz_tls_client") != LUA_OK) abort();
    chunk_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    make_contexts();
    /* the contexts hold the CA now; libFuzzer ends a run with _Exit, so
     * an atexit handler would leave the file behind */
    unlink(ca_path);
    return 0;
}

/* One step of the peer; a Lua function so the chunk's loop can call it. */
static int pump(lua_State *Ls)
{
    (void)Ls;
    char junk[16384];
    if (peer.fd < 0) return 0;
    if (peer.raw) {
        while (read(peer.fd, junk, sizeof junk) > 0) {}
        if (peer.sent < peer.stream_len) {
            ssize_t w = write(peer.fd, peer.stream + peer.sent, peer.stream_len - peer.sent);
            if (w > 0) peer.sent += (size_t)w;
        }
        if (peer.sent == peer.stream_len) shutdown(peer.fd, SHUT_WR);
        return 0;
    }
    if (!peer.handshaken) {
        int r = SSL_do_handshake(peer.ssl);
        if (r == 1) peer.handshaken = 1;
        return 0;
    }
    if (!peer.app_sent && peer.stream_len) {
        int w = SSL_write(peer.ssl, peer.stream, (int)(peer.stream_len > 16384 ? 16384 : peer.stream_len));
        if (w > 0) peer.app_sent = 1;
    }
    SSL_read(peer.ssl, junk, sizeof junk); /* the client's close_notify */
    return 0;
}

/* The leaf from a fuzzed certificate: our key in it, signed again. */
static X509 *fuzzed_leaf(const uint8_t *der, size_t len, int by_ca)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (!x) return NULL;
    if (!X509_set_pubkey(x, leaf_key)) goto fail;
    if (by_ca && !X509_set_issuer_name(x, X509_get_subject_name(ca_cert))) goto fail;
    if (!X509_sign(x, by_ca ? ca_key : leaf_key, EVP_sha256())) goto fail;
    return x;
fail:
    X509_free(x);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) return 0;
    uint8_t flags = data[0];
    lua_Integer max_chain = data[1] % 16 + 1;
    lua_Integer max_chain_bytes = 1024 + (lua_Integer)data[2] * 512;
    size_t nlen = data[3] % 64;
    size_t off = 4;
    if (nlen > size - off) nlen = size - off;
    const char *name = (const char *)data + off;
    off += nlen;

    X509 *certs[MAX_CERTS];
    int ncerts = 0;
    int raw = flags & 1;
    X509 *leaf = NULL;
    if (!raw) {
        while (ncerts < MAX_CERTS && size - off >= 2) {
            size_t len = (size_t)data[off] << 8 | data[off + 1];
            if (len == 0 || len > size - off - 2) break;
            const uint8_t *der = data + off + 2;
            off += 2 + len;
            if (!leaf && ncerts == 0) {
                leaf = fuzzed_leaf(der, len, flags & 16);
                if (leaf) continue;
            }
            const unsigned char *p = der;
            X509 *x = d2i_X509(NULL, &p, (long)len);
            if (x) certs[ncerts++] = x;
        }
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) abort();
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    memset(&peer, 0, sizeof peer);
    peer.fd = sv[1];
    peer.raw = raw;
    peer.stream = data + off;
    peer.stream_len = (flags & 64) || raw ? size - off : 0;
    if (!raw) {
        peer.ssl = SSL_new(server_ctx);
        if (!peer.ssl) abort();
        SSL_set_fd(peer.ssl, sv[1]);
        SSL_set_accept_state(peer.ssl);
        if (SSL_use_certificate(peer.ssl, leaf ? leaf : default_leaf) != 1 ||
            SSL_use_PrivateKey(peer.ssl, leaf_key) != 1) {
            /* a leaf OpenSSL will not serve (a key it refuses): ours instead */
            if (SSL_use_certificate(peer.ssl, default_leaf) != 1 || SSL_use_PrivateKey(peer.ssl, leaf_key) != 1)
                abort();
        }
        for (int i = 0; i < ncerts; i++) SSL_add1_chain_cert(peer.ssl, certs[i]);
        if (flags & 32) SSL_add1_chain_cert(peer.ssl, ca_cert);
    }

    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, chunk_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, tls_ref);
    mx_sock_push_fd(L, sv[0], AF_UNIX);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ctx_ref[(flags >> 1 & 7) % NCTX]);
    lua_createtable(L, 0, 4);
    lua_pushlstring(L, name, nlen);
    lua_setfield(L, -2, "sni");
    lua_pushlstring(L, name, nlen);
    lua_setfield(L, -2, "verify_name");
    lua_pushinteger(L, max_chain);
    lua_setfield(L, -2, "max_chain");
    lua_pushinteger(L, max_chain_bytes);
    lua_setfield(L, -2, "max_chain_bytes");
    lua_pushcfunction(L, pump);
    lua_pushlstring(L, name, nlen);
    lua_pushboolean(L, peer.stream_len > 0);
    if (lua_pcall(L, 7, 1, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        /* the chunk's own assertions are the invariants */
        if (msg && (strstr(msg, "without info") || strstr(msg, "than the cap") ||
                    strstr(msg, "assertion failed"))) {
            fprintf(stderr, "fuzz_tls_client: %s\n", msg);
            abort();
        }
    }
    else if (getenv("FUZZ_TLS_TRACE")) /* how far the handshake went: "done", "failed", ... */
        fprintf(stderr, "fuzz_tls_client: %s\n", lua_tostring(L, -1));
    lua_settop(L, top);
    lua_gc(L, LUA_GCCOLLECT, 0); /* the client socket and its SSL now */

    if (peer.ssl) SSL_free(peer.ssl);
    close(sv[1]);
    X509_free(leaf);
    for (int i = 0; i < ncerts; i++) X509_free(certs[i]);
    return 0;
}
