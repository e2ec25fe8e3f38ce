/*
 * l_tls.c - core.tls: OpenSSL on the shared socket object (sock.h).
 *
 * tls.upgrade() turns an open mx_sock into a TLS connection in place: it
 * creates the SSL on the socket's fd and swaps s->io_read / s->io_write /
 * s->io_free, so every reader and writer of l_net.c and l_smtp.c goes
 * through SSL_read / SSL_write from then on.  s->tls is the SSL *; our
 * per-connection state hangs off it as the SSL's app data.
 *
 * Probing rules (GUIDE section 5):
 *  - bytes buffered after the STARTTLS 220 are an injection: upgrade()
 *    refuses and leaves them in s->in for the caller to report;
 *  - contexts default to security level 0 and "DEFAULT:@SECLEVEL=0" so
 *    legacy servers are observed, not failed opaquely;
 *  - the verify callback always continues but records every chain error
 *    with its depth, so the handshake completes against expired,
 *    self-signed or untrusted certificates and tls.info() reports why;
 *  - no handshake resumes by itself (no client session cache): only a
 *    session taken with tls.session() from one finished handshake and
 *    offered explicitly (upgrade's `session`) to the same server is tried,
 *    once (the STARTTLS injection probe, which observes command handling,
 *    not the handshake).
 *
 * Every call does one non-blocking step: a value, or nil, "again", "r"|"w",
 * or nil, code, detail.  lua/mxprobe/tls.lua loops with loop.wait.
 * Codes: tls, reset, closed, limit, injection.
 */
#include "bindings.h"
#include "sock.h"
#include "x509_util.h"
#include "opts.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define MX_TLS_CTX_MT "mxprobe.tls_context"
#define MX_TLS_SESSION_MT "mxprobe.tls_session"

#define MAX_VERIFY_ERRORS 16           /* recorded per connection; more are counted */
#define DEFAULT_MAX_CHAIN 10           /* certificates the peer may send */
#define DEFAULT_MAX_CHAIN_BYTES 65536  /* DER bytes of the whole peer chain */
#define MAX_CERT_LIST (100 * 1024)     /* OpenSSL's cap on the Certificate message */

typedef struct {
    SSL_CTX *ctx;
    int server;
} tls_ctx;

typedef struct {
    int depth, code;
} verify_error;

/* A negotiated session (tls.session), ours alone: a copy, so the closing
 * of the connection it came from (OpenSSL marks a session not resumable
 * when its SSL is freed without close_notify) does not touch it.  The peer
 * and the server name it came from are kept: upgrade offers it to that
 * server only.  sess is NULL once offered (a TLS 1.3 ticket is for one
 * connection: RFC 8446 C.4). */
typedef struct {
    SSL_SESSION *sess;
    int port;
    char ip[64];
    char name[256]; /* the SNI sent; "" for none */
} tls_session;

/* Per-connection state: the SSL's app data, freed by tls_free. */
typedef struct {
    SSL *ssl;
    int server;
    int done;     /* handshake complete */
    int failed;   /* a fatal error: the SSL must not be shut down */
    int nerrors, dropped;
    verify_error errors[MAX_VERIFY_ERRORS];
    size_t max_chain, max_chain_bytes;
    char verify_name[256];
} tls_conn;

static tls_conn *conn_of(const mx_sock *s) { return s->tls ? SSL_get_app_data((SSL *)s->tls) : NULL; }

/* ---- verification ------------------------------------------------------ */

/* Never stops the handshake: records (depth, code) once and continues. */
static int verify_cb(int ok, X509_STORE_CTX *store)
{
    if (ok) return 1;
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    tls_conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
    if (!c) return 1;
    int depth = X509_STORE_CTX_get_error_depth(store), code = X509_STORE_CTX_get_error(store);
    for (int i = 0; i < c->nerrors; i++)
        if (c->errors[i].depth == depth && c->errors[i].code == code) return 1;
    if (c->nerrors < MAX_VERIFY_ERRORS) c->errors[c->nerrors++] = (verify_error){depth, code};
    else c->dropped++;
    return 1;
}

/* ---- error mapping ----------------------------------------------------- */

/* Set the socket's error code and (truncated) detail. */
static void sock_err(mx_sock *s, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sock_err(mx_sock *s, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    s->err_code = code;
}

/* Map a failed SSL_* call (ret, and errno saved right after it) to the
 * socket's io result: MX_IO_AGAIN with *want, 0 for an orderly or abrupt
 * EOF, or MX_IO_ERROR with s->err_code / s->err set.  `phase` names the
 * operation for details ("handshake", "read", "write"). */
static long classify(mx_sock *s, tls_conn *c, int ret, int saved_errno, unsigned *want, const char *phase)
{
    SSL *ssl = s->tls;
    int e = SSL_get_error(ssl, ret);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *want = MX_READ;
        return MX_IO_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = MX_WRITE;
        return MX_IO_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        sock_err(s, "closed", "TLS %s: the peer closed the TLS session (close_notify)", phase);
        return 0;
    case SSL_ERROR_SYSCALL:
        c->failed = 1;
        ERR_clear_error();
        if (saved_errno == ECONNRESET || saved_errno == EPIPE || saved_errno == ECONNABORTED) {
            sock_err(s, "reset", "TLS %s: the connection was reset by the peer", phase);
            return MX_IO_ERROR;
        }
        if (saved_errno == 0) {
            sock_err(s, "closed", "TLS %s: the peer closed the connection", phase);
            return 0;
        }
        sock_err(s, "error", "TLS %s: %s", phase, strerror(saved_errno));
        return MX_IO_ERROR;
    default: {
        c->failed = 1;
        unsigned long first = ERR_peek_error();
        if (ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ERR_clear_error();
            sock_err(s, "closed", "TLS %s: the peer closed the connection without close_notify", phase);
            return 0;
        }
        char detail[sizeof s->err];
        mx_ssl_errors(detail, sizeof detail);
        if (ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) == SSL_R_EXCESSIVE_MESSAGE_SIZE) {
            sock_err(s, "limit", "TLS %s: the peer's handshake message exceeds the cap (%s)", phase, detail);
        } else if (saved_errno == ECONNRESET || saved_errno == EPIPE) {
            sock_err(s, "reset", "TLS %s: the connection was reset by the peer (%s)", phase, detail);
        } else {
            sock_err(s, "tls", "TLS %s: %s", phase, detail);
        }
        return MX_IO_ERROR;
    }
    }
}

/* ---- io functions installed on the socket ------------------------------ */

static long tls_read(mx_sock *s, void *p, size_t n, unsigned *want)
{
    tls_conn *c = conn_of(s);
    if (!c || c->failed) {
        sock_err(s, "tls", "TLS read: the TLS session has failed");
        return MX_IO_ERROR;
    }
    size_t got = 0;
    ERR_clear_error();
    errno = 0;
    int r = SSL_read_ex(c->ssl, p, n, &got);
    int saved = errno;
    if (r == 1) return (long)got;
    return classify(s, c, r, saved, want, "read");
}

static long tls_write(mx_sock *s, const void *p, size_t n, unsigned *want)
{
    tls_conn *c = conn_of(s);
    if (!c || c->failed) {
        sock_err(s, "tls", "TLS write: the TLS session has failed");
        return MX_IO_ERROR;
    }
    if (n == 0) return 0;
    size_t put = 0;
    ERR_clear_error();
    errno = 0;
    int r = SSL_write_ex(c->ssl, p, n, &put);
    int saved = errno;
    if (r == 1) return (long)put;
    long res = classify(s, c, r, saved, want, "write");
    if (res == 0) { /* no EOF for writes: the peer is gone */
        s->err_code = "closed";
        return MX_IO_ERROR;
    }
    return res;
}

/* Frees the SSL and our state; never writes (close_notify is tls.shutdown's
 * job), so it is safe from __gc and during lua_close. */
static void tls_free(mx_sock *s)
{
    SSL *ssl = s->tls;
    if (!ssl) return;
    tls_conn *c = SSL_get_app_data(ssl);
    SSL_set_app_data(ssl, NULL);
    SSL_free(ssl);
    OPENSSL_free(c);
    s->tls = NULL;
}

/* ---- option helpers ---------------------------------------------------- */

static const struct {
    const char *name;
    int version;
} versions[] = {
    {"TLSv1", TLS1_VERSION},     {"TLSv1.0", TLS1_VERSION},   {"TLSv1.1", TLS1_1_VERSION},
    {"TLSv1.2", TLS1_2_VERSION}, {"TLSv1.3", TLS1_3_VERSION},
};

static int opt_version(lua_State *L, int idx, const char *key)
{
    const char *v = mx_opt_string(L, idx, "context", key, NULL);
    if (!v) return 0;
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++)
        if (strcmp(v, versions[i].name) == 0) return versions[i].version;
    return luaL_error(L,
                      "bad argument #%d to 'context' (option '%s': unknown TLS version '%s'; "
                      "expected TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3)",
                      idx, key, v);
}

/* ---- tls.context ------------------------------------------------------- */

static int ctx_gc(lua_State *L)
{
    tls_ctx *t = luaL_checkudata(L, 1, MX_TLS_CTX_MT);
    SSL_CTX_free(t->ctx);
    t->ctx = NULL;
    return 0;
}

static int ctx_tostring(lua_State *L)
{
    tls_ctx *t = luaL_checkudata(L, 1, MX_TLS_CTX_MT);
    lua_pushfstring(L, "mxprobe.tls_context (%s)", t->server ? "server" : "client");
    return 1;
}

static tls_ctx *check_ctx(lua_State *L, int idx, const char *fname)
{
    tls_ctx *t = luaL_testudata(L, idx, MX_TLS_CTX_MT);
    if (!t || !t->ctx)
        luaL_error(L, "bad argument #%d to '%s' (tls context expected, got %s)", idx, fname,
                   t ? "a freed context" : luaL_typename(L, idx));
    return t;
}

/* int l_tls_context (lua_State *L)  [-1, +1|3, e]
 * tls.context{ min=, max=, ca_file=, security_level=0, ciphers=,
 *              ciphersuites=, server=false, cert=, key=, max_cert_list= }
 *   -> context | nil, "tls", detail (unreadable CA, certificate or key file).
 * ca_file: a PEM bundle path; nil = the system trust store; false = no
 * trust anchors at all.  cert/key (server mode): PEM chain file and key. */
static int l_tls_context(lua_State *L)
{
    static const char *const known[] = {"min", "max", "ca_file", "security_level", "ciphers", "ciphersuites",
                                        "server", "cert", "key", "max_cert_list", "sigalgs", "groups", NULL};
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    mx_opts_check(L, 1, "context", known);
    int min = opt_version(L, 1, "min"), max = opt_version(L, 1, "max");
    if (min && max && min > max)
        return luaL_error(L, "bad argument #1 to 'context' (option 'min' is above option 'max')");
    int server = mx_opt_bool(L, 1, "context", "server", 0);
    int level = (int)mx_opt_integer(L, 1, "context", "security_level", 0, 0, 5);
    const char *ciphers = mx_opt_string(L, 1, "context", "ciphers", NULL);
    const char *suites = mx_opt_string(L, 1, "context", "ciphersuites", NULL);
    /* what a client offers: signature algorithms ("ECDSA+SHA256:...", to
     * find a server's second certificate) and key-exchange groups */
    const char *sigalgs = mx_opt_string(L, 1, "context", "sigalgs", NULL);
    const char *groups = mx_opt_string(L, 1, "context", "groups", NULL);
    const char *cert = mx_opt_string(L, 1, "context", "cert", NULL);
    const char *key = mx_opt_string(L, 1, "context", "key", NULL);
    int max_cert_list = (int)mx_opt_integer(L, 1, "context", "max_cert_list", MAX_CERT_LIST, 1024, 1 << 24);
    int ca_type = lua_getfield(L, 1, "ca_file");
    const char *ca_file = NULL;
    int no_anchors = 0;
    if (ca_type == LUA_TSTRING) ca_file = lua_tostring(L, -1);
    else if (ca_type == LUA_TBOOLEAN && !lua_toboolean(L, -1)) no_anchors = 1;
    else if (ca_type != LUA_TNIL)
        return luaL_error(L, "bad argument #1 to 'context' (option 'ca_file' must be a path or false, got %s)",
                          luaL_typename(L, -1));
    lua_pop(L, 1);
    if (server && (!cert || !key))
        return luaL_error(L, "bad argument #1 to 'context' (a server context needs options 'cert' and 'key')");
    if (!server && (cert || key))
        return luaL_error(L, "bad argument #1 to 'context' (options 'cert' and 'key' are for server contexts)");

    tls_ctx *t = lua_newuserdatauv(L, sizeof *t, 0);
    t->ctx = NULL;
    t->server = server;
    luaL_setmetatable(L, MX_TLS_CTX_MT);
    ERR_clear_error();
    t->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!t->ctx) {
        char d[400];
        return mx_fail(L, "tls", "SSL_CTX_new: %s", mx_ssl_errors(d, sizeof d));
    }
    SSL_CTX *ctx = t->ctx;
    char d[400];
    const char *cipher_list = ciphers ? ciphers : level == 0 ? "DEFAULT:@SECLEVEL=0" : NULL;
    if (cipher_list && !SSL_CTX_set_cipher_list(ctx, cipher_list))
        return mx_fail(L, "tls", "cipher list '%s': %s", cipher_list, mx_ssl_errors(d, sizeof d));
    if (suites && !SSL_CTX_set_ciphersuites(ctx, suites))
        return mx_fail(L, "tls", "TLS 1.3 cipher suites '%s': %s", suites, mx_ssl_errors(d, sizeof d));
    SSL_CTX_set_security_level(ctx, level); /* after the cipher list: @SECLEVEL also sets it */
    if (sigalgs && !SSL_CTX_set1_sigalgs_list(ctx, sigalgs))
        return mx_fail(L, "tls", "signature algorithms '%s': %s", sigalgs, mx_ssl_errors(d, sizeof d));
    if (groups && !SSL_CTX_set1_groups_list(ctx, groups))
        return mx_fail(L, "tls", "groups '%s': %s", groups, mx_ssl_errors(d, sizeof d));
    if ((min && !SSL_CTX_set_min_proto_version(ctx, min)) || (max && !SSL_CTX_set_max_proto_version(ctx, max)))
        return mx_fail(L, "tls", "cannot set the protocol versions: %s", mx_ssl_errors(d, sizeof d));
    /* a system-wide MinProtocol must not hide a legacy server from a probe */
    if (!min && level == 0 && !SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION))
        return mx_fail(L, "tls", "cannot set the minimum protocol version: %s", mx_ssl_errors(d, sizeof d));
    /* No session cache: a handshake never resumes by itself, each one is
     * observed in full.  The one exception is explicit: a session taken
     * with tls.session() and offered through upgrade's `session`. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_max_cert_list(ctx, (long)max_cert_list);
    if (server) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
            return mx_fail(L, "tls", "certificate file %s: %s", cert, mx_ssl_errors(d, sizeof d));
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
            return mx_fail(L, "tls", "key file %s: %s", key, mx_ssl_errors(d, sizeof d));
        if (SSL_CTX_check_private_key(ctx) != 1)
            return mx_fail(L, "tls", "key %s does not match certificate %s: %s", key, cert, mx_ssl_errors(d, sizeof d));
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        /* legacy servers without RFC 5746 are observed, not refused */
        if (level == 0) SSL_CTX_set_options(ctx, SSL_OP_LEGACY_SERVER_CONNECT);
        if (ca_file) {
            if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)
                return mx_fail(L, "tls", "CA file %s: %s", ca_file, mx_ssl_errors(d, sizeof d));
        } else if (!no_anchors) {
            if (SSL_CTX_set_default_verify_paths(ctx) != 1)
                return mx_fail(L, "tls", "system trust store: %s", mx_ssl_errors(d, sizeof d));
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
    }
    ERR_clear_error();
    return 1;
}

/* ---- tls.upgrade ------------------------------------------------------- */

/* An open, connected socket at idx 1 for fname; raises otherwise. */
static mx_sock *check_open(lua_State *L, const char *fname)
{
    mx_sock *s = luaL_testudata(L, 1, MX_SOCK_MT);
    if (!s) luaL_error(L, "bad argument #1 to '%s' (mxprobe.sock expected, got %s)", fname, luaL_typename(L, 1));
    if (s->state == MX_SOCK_LISTENING) luaL_error(L, "%s: not allowed on a listening socket", fname);
    if (s->state == MX_SOCK_NEW || s->state == MX_SOCK_CONNECTING)
        luaL_error(L, "%s: the socket is not connected yet", fname);
    return s;
}

/* Copy name without one trailing dot into buf; 0 if it does not fit. */
static int copy_name(char *buf, size_t len, const char *name)
{
    size_t n = strlen(name);
    if (n && name[n - 1] == '.') n--;
    if (n == 0 || n >= len) return 0;
    memcpy(buf, name, n);
    buf[n] = '\0';
    return 1;
}

static int is_ip_literal(const char *name)
{
    unsigned char a[16];
    return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

/* The server name a client sends for sni (no trailing dot, never an IP
 * literal) into buf, or "" for none: what SSL_set_tlsext_host_name gets. */
static const char *sent_name(char *buf, size_t len, const char *sni)
{
    if (!sni || !copy_name(buf, len, sni) || is_ip_literal(buf)) buf[0] = '\0';
    return buf;
}

/* The session option of upgrade (table at 3): NULL when absent; raises for
 * anything but a session of tls.session that is still to be offered and
 * came from this very server (address, port and server name). */
static tls_session *opt_session(lua_State *L, mx_sock *s, const tls_ctx *t, const char *sni)
{
    int type = lua_getfield(L, 3, "session");
    tls_session *ts = NULL;
    if (type != LUA_TNIL && !(type == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
        ts = luaL_testudata(L, -1, MX_TLS_SESSION_MT);
        if (!ts) {
            /* the userdata's own name (mxprobe.tls_context...) says more than "userdata" */
            const char *tname = luaL_getmetafield(L, -1, "__name") == LUA_TSTRING ? lua_tostring(L, -1)
                                                                                  : luaL_typename(L, -1);
            luaL_error(L, "bad argument #3 to 'upgrade' (option 'session' must be a TLS session from tls.session, got %s)",
                       tname);
        }
    }
    lua_pop(L, 1); /* the options table still holds it */
    if (!ts) return NULL;
    if (t->server) luaL_error(L, "bad argument #3 to 'upgrade' (option 'session' is for client contexts)");
    if (!ts->sess)
        luaL_error(L, "bad argument #3 to 'upgrade' (option 'session': this TLS session was offered already; "
                      "a session is offered once, a TLS 1.3 ticket is for one connection)");
    char ip[sizeof ts->ip], name[256];
    int port = 0;
    mx_sockaddr_str(&s->peer, ip, sizeof ip, &port);
    sent_name(name, sizeof name, sni);
    if (strcmp(ip, ts->ip) != 0 || port != ts->port || strcasecmp(name, ts->name) != 0)
        luaL_error(L,
                   "bad argument #3 to 'upgrade' (option 'session': the TLS session is from %s port %d, server name "
                   "'%s', and this socket is %s port %d, server name '%s': a session is offered only to the server "
                   "it came from)",
                   ts->ip, ts->port, ts->name, ip, port, name);
    return ts;
}

/* int l_tls_upgrade (lua_State *L)  [-3, +1|3|4, e]
 * tls.upgrade(sock, ctx, { sni=, verify_name=, allow_buffered=, max_chain=,
 *                          max_chain_bytes=, session= })
 *   -> true | nil, "injection", detail, bytes | nil, "closed", detail
 * Client contexts: any plaintext already buffered in sock (or waiting in
 * the kernel: a server must not speak before our ClientHello) is refused
 * and left in the buffer; allow_buffered = true discards it instead (tests).
 * sni: sent as server_name (no trailing dot; never for an IP literal);
 * verify_name (default: sni): the name tls.info matches the leaf against.
 * session (client contexts): a session of tls.session from this server
 * (same address, port and server name; raises otherwise), offered for
 * resumption once; tls.info's `resumed` says whether the server took it
 * (a server that does not falls back to a full handshake). */
static int l_tls_upgrade(lua_State *L)
{
    static const char *const known[] = {"sni",     "verify_name", "allow_buffered", "max_chain", "max_chain_bytes",
                                        "session", NULL};
    mx_sock *s = check_open(L, "upgrade");
    tls_ctx *t = check_ctx(L, 2, "upgrade");
    if (lua_isnoneornil(L, 3)) {
        lua_settop(L, 2);
        lua_newtable(L);
    }
    if (!lua_istable(L, 3))
        return luaL_error(L, "bad argument #3 to 'upgrade' (options table expected, got %s)", luaL_typename(L, 3));
    mx_opts_check(L, 3, "upgrade", known);
    const char *sni = NULL;
    if (lua_getfield(L, 3, "sni") == LUA_TSTRING) sni = lua_tostring(L, -1);
    else if (!lua_isnil(L, -1) && !(lua_isboolean(L, -1) && !lua_toboolean(L, -1)))
        return luaL_error(L, "bad argument #3 to 'upgrade' (option 'sni' must be a string or false, got %s)",
                          luaL_typename(L, -1));
    lua_pop(L, 1);
    const char *verify_name = mx_opt_string(L, 3, "upgrade", "verify_name", NULL);
    int allow_buffered = mx_opt_bool(L, 3, "upgrade", "allow_buffered", 0);
    lua_Integer max_chain = mx_opt_integer(L, 3, "upgrade", "max_chain", DEFAULT_MAX_CHAIN, 1, 1000);
    lua_Integer max_chain_bytes =
        mx_opt_integer(L, 3, "upgrade", "max_chain_bytes", DEFAULT_MAX_CHAIN_BYTES, 1024, 1 << 24);
    tls_session *offer = opt_session(L, s, t, sni);
    if (s->tls) return luaL_error(L, "upgrade: the socket already speaks TLS");
    if (s->state == MX_SOCK_CLOSED || s->fd < 0) return mx_fail(L, "closed", "the socket is closed");

    if (!t->server) {
        /* Pull whatever already sits in the kernel into s->in, so all the
         * injected bytes are in one place for the report. */
        char peek[1];
        ssize_t k = recv(s->fd, peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT);
        if (k > 0) {
            unsigned want = 0;
            long r = mx_sock_fill(s, &want);
            (void)r; /* errors surface in the handshake; the bytes matter here */
        }
    }
    if (s->in.len) {
        if (!allow_buffered) {
            lua_pushnil(L);
            lua_pushliteral(L, "injection");
            lua_pushfstring(L, "%d bytes of plaintext were buffered after the STARTTLS reply", (int)s->in.len);
            lua_pushlstring(L, mx_buf_head(&s->in), s->in.len);
            return 4;
        }
        mx_buf_consume(&s->in, s->in.len);
    }

    tls_conn *c = OPENSSL_zalloc(sizeof *c);
    SSL *ssl = c ? SSL_new(t->ctx) : NULL;
    char d[400];
    if (!ssl) {
        OPENSSL_free(c);
        return mx_fail(L, "tls", "SSL_new: %s", mx_ssl_errors(d, sizeof d));
    }
    c->ssl = ssl;
    c->server = t->server;
    c->max_chain = (size_t)max_chain;
    c->max_chain_bytes = (size_t)max_chain_bytes;
    SSL_set_app_data(ssl, c);
    if (!SSL_set_fd(ssl, s->fd)) {
        SSL_set_app_data(ssl, NULL);
        SSL_free(ssl);
        OPENSSL_free(c);
        return mx_fail(L, "tls", "SSL_set_fd: %s", mx_ssl_errors(d, sizeof d));
    }
    if (t->server) {
        SSL_set_accept_state(ssl);
    } else {
        char name[256];
        SSL_set_connect_state(ssl);
        if (*sent_name(name, sizeof name, sni) && !SSL_set_tlsext_host_name(ssl, name)) {
            SSL_set_app_data(ssl, NULL);
            SSL_free(ssl);
            OPENSSL_free(c);
            return mx_fail(L, "tls", "cannot send the server name '%s': %s", name, mx_ssl_errors(d, sizeof d));
        }
        /* the SSL takes its own reference; ours goes: offered once */
        if (offer) {
            if (!SSL_set_session(ssl, offer->sess)) {
                SSL_set_app_data(ssl, NULL);
                SSL_free(ssl);
                OPENSSL_free(c);
                return mx_fail(L, "tls", "cannot offer the TLS session: %s", mx_ssl_errors(d, sizeof d));
            }
            SSL_SESSION_free(offer->sess);
            offer->sess = NULL;
        }
        const char *vn = verify_name ? verify_name : sni;
        if (vn) copy_name(c->verify_name, sizeof c->verify_name, vn);
    }
    ERR_clear_error();
    s->tls = ssl;
    s->io_read = tls_read;
    s->io_write = tls_write;
    s->io_free = tls_free;
    /* the socket keeps its context alive (SSL_new holds a reference too) */
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, 1);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- handshake --------------------------------------------------------- */

static tls_conn *check_tls(lua_State *L, const char *fname, mx_sock **sp)
{
    mx_sock *s = check_open(L, fname);
    tls_conn *c = conn_of(s);
    if (!c) luaL_error(L, "%s: the socket does not speak TLS (call tls.upgrade first)", fname);
    *sp = s;
    return c;
}

/* int l_tls_handshake_step (lua_State *L)  [-1, +1|3, e]
 * tls.handshake_step(sock) -> true | nil, "again", "r"|"w"
 *   | nil, "tls"|"reset"|"closed"|"limit", detail
 * Client and server sockets alike (server: the upgrade used a server ctx). */
static int l_tls_handshake_step(lua_State *L)
{
    mx_sock *s;
    tls_conn *c = check_tls(L, "handshake_step", &s);
    if (c->done) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (s->fd < 0) return mx_fail(L, "closed", "the socket is closed");
    if (c->failed) return mx_fail(L, s->err_code ? s->err_code : "tls", "%s", s->err);
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(c->ssl);
    int saved = errno;
    if (r == 1) {
        c->done = 1;
        lua_pushboolean(L, 1);
        return 1;
    }
    unsigned want = 0;
    long res = classify(s, c, r, saved, &want, "handshake");
    if (res == MX_IO_AGAIN) return mx_again(L, want);
    c->failed = 1;
    if (res == 0) return mx_fail(L, "closed", "%s", s->err);
    return mx_fail(L, s->err_code ? s->err_code : "tls", "%s", s->err);
}

/* ---- sessions (resumption) --------------------------------------------- */

static const char *version_name(int v)
{
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++)
        if (versions[i].version == v && strcmp(versions[i].name, "TLSv1.0") != 0) return versions[i].name;
    return "?";
}

static int session_gc(lua_State *L)
{
    tls_session *ts = luaL_checkudata(L, 1, MX_TLS_SESSION_MT);
    SSL_SESSION_free(ts->sess);
    ts->sess = NULL;
    return 0;
}

static int session_tostring(lua_State *L)
{
    tls_session *ts = luaL_checkudata(L, 1, MX_TLS_SESSION_MT);
    if (!ts->sess) {
        lua_pushfstring(L, "mxprobe.tls_session (offered; from %s port %d)", ts->ip, ts->port);
    } else {
        lua_pushfstring(L, "mxprobe.tls_session (%s, from %s port %d, server name '%s')",
                        version_name(SSL_SESSION_get_protocol_version(ts->sess)), ts->ip, ts->port, ts->name);
    }
    return 1;
}

/* int l_tls_session (lua_State *L)  [-1, +1|3, e]
 * tls.session(sock) -> session
 *   | nil, "tls", detail (the handshake is not complete, or failed)
 *   | nil, "unresumable", detail (the server gave no ticket or session id)
 * The negotiated session of a client socket, for upgrade's `session` on a
 * later connection to the same server.  TLS 1.3 tickets come after the
 * handshake and are read with the application data: take it after the
 * first reply inside TLS was read (before, a TLS 1.3 session is not
 * resumable yet). */
static int l_tls_session(lua_State *L)
{
    mx_sock *s;
    tls_conn *c = check_tls(L, "session", &s);
    if (c->server) return luaL_error(L, "session: for client sockets (a server resumes from its own tickets)");
    if (!c->done) return mx_fail(L, "tls", "the TLS handshake is not complete");
    if (c->failed) return mx_fail(L, "tls", "the TLS session has failed");
    SSL_SESSION *cur = SSL_get1_session(c->ssl);
    if (!cur || !SSL_SESSION_is_resumable(cur)) {
        SSL_SESSION_free(cur);
        return mx_fail(L, "unresumable", "the server gave no session ticket or session id to resume with (%s)",
                       SSL_get_version(c->ssl));
    }
    tls_session *ts = lua_newuserdatauv(L, sizeof *ts, 0);
    memset(ts, 0, sizeof *ts);
    luaL_setmetatable(L, MX_TLS_SESSION_MT);
    ERR_clear_error();
    ts->sess = SSL_SESSION_dup(cur);
    SSL_SESSION_free(cur);
    if (!ts->sess) {
        char d[400];
        return mx_fail(L, "tls", "SSL_SESSION_dup: %s", mx_ssl_errors(d, sizeof d));
    }
    mx_sockaddr_str(&s->peer, ts->ip, sizeof ts->ip, &ts->port);
    const char *sn = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
    if (sn && strlen(sn) < sizeof ts->name) strcpy(ts->name, sn);
    return 1;
}

/* ---- info -------------------------------------------------------------- */

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (!v) return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, int v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

/* int l_tls_info (lua_State *L)  [-2, +1|3, e]
 * tls.info(sock, { chain = true }) -> {
 *   protocol = "TLSv1.3", cipher = "TLS_AES_256_GCM_SHA384", bits = 256,
 *   group = "x25519", sni = "mx.example", verify_name = "mx.example",
 *   verify = { ok = bool, code = 0, result = "ok",
 *              errors = { {depth=0, code=10, reason="certificate has expired"}, ... },
 *              errors_dropped = n },
 *   hostname_match = bool (nil without a verify_name or a peer certificate),
 *   chain = { x509, ... } (leaf first; absent with chain = false),
 *   chain_truncated = { certificates = sent, bytes = sent, kept = n,
 *                       kept_bytes = n, cap = { certificates =, bytes = } }
 *     (only when the peer's chain is longer or larger than the caps given
 *     to upgrade: chain then holds the first certificates that fit; the
 *     handshake and its verification are unaffected),
 *   peer_chain_length = n, peer_chain_bytes = n, verified_chain_length = n }
 * | nil, "tls", detail (the handshake is not complete). */
static int l_tls_info(lua_State *L)
{
    mx_sock *s;
    tls_conn *c = check_tls(L, "info", &s);
    int want_chain = 1;
    if (!lua_isnoneornil(L, 2)) {
        static const char *const known[] = {"chain", NULL};
        luaL_checktype(L, 2, LUA_TTABLE);
        mx_opts_check(L, 2, "info", known);
        want_chain = mx_opt_bool(L, 2, "info", "chain", 1);
    }
    if (!c->done) return mx_fail(L, "tls", "the TLS handshake is not complete");
    SSL *ssl = c->ssl;

    /* the peer's chain, leaf first (a server's view of a client has the
     * leaf apart from the chain) */
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    X509 *leaf = SSL_get0_peer_certificate(ssl);
    int n = chain ? sk_X509_num(chain) : 0;
    int leaf_apart = leaf && (n == 0 || X509_cmp(sk_X509_value(chain, 0), leaf) != 0);
    size_t total = leaf_apart ? (size_t)n + 1 : (size_t)n;
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        int len = i2d_X509(sk_X509_value(chain, i), NULL);
        if (len > 0) bytes += (size_t)len;
    }
    if (leaf_apart) {
        int len = i2d_X509(leaf, NULL);
        if (len > 0) bytes += (size_t)len;
    }
    /* Over the caps the handshake result stands: the chain is cut to the
     * first certificates (leaf first) that fit both caps, and
     * chain_truncated says so. */

    lua_createtable(L, 0, 12);
    set_str(L, "protocol", SSL_get_version(ssl));
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    if (cipher) {
        set_str(L, "cipher", SSL_CIPHER_get_name(cipher));
        set_int(L, "bits", SSL_CIPHER_get_bits(cipher, NULL));
    }
    int group = SSL_get_negotiated_group(ssl);
    if (group > 0) {
        const char *gname = SSL_group_to_name(ssl, group);
        set_str(L, "group", gname);
    }
    if (!c->server) {
        /* the server's ephemeral key (ECDHE curve or FFDHE size) and the
         * signature it made with its certificate: what graders report */
        EVP_PKEY *tmp = NULL;
        if (SSL_get_peer_tmp_key(ssl, &tmp) && tmp) {
            const char *tname = EVP_PKEY_get0_type_name(tmp);
            if (tname) set_str(L, "kx_type", tname);
            set_int(L, "kx_bits", EVP_PKEY_get_bits(tmp));
            EVP_PKEY_free(tmp);
        }
        int sig_type = NID_undef, sig_md = NID_undef;
        if (SSL_get_peer_signature_type_nid(ssl, &sig_type) && sig_type != NID_undef) {
            const char *sn = OBJ_nid2sn(sig_type);
            if (sn) set_str(L, "peer_signature_type", sn);
        }
        if (SSL_get_peer_signature_nid(ssl, &sig_md) && sig_md != NID_undef) {
            const char *sn = OBJ_nid2sn(sig_md);
            if (sn) set_str(L, "peer_signature_digest", sn);
        }
        ERR_clear_error();
    }
    set_str(L, "sni", SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
    set_bool(L, "server", c->server);
    /* an abbreviated handshake: the chain was not verified again (the
     * verify fields are the first handshake's, kept in the session) */
    set_bool(L, "resumed", SSL_session_reused(ssl) == 1);
    if (c->verify_name[0]) set_str(L, "verify_name", c->verify_name);
    set_int(L, "peer_chain_length", (lua_Integer)total);
    set_int(L, "peer_chain_bytes", (lua_Integer)bytes);
    STACK_OF(X509) *verified = SSL_get0_verified_chain(ssl);
    set_int(L, "verified_chain_length", verified ? sk_X509_num(verified) : 0);

    if (!c->server) {
        long result = SSL_get_verify_result(ssl);
        lua_createtable(L, 0, 5);
        set_bool(L, "ok", leaf && result == X509_V_OK && c->nerrors == 0);
        set_int(L, "code", leaf ? result : -1);
        set_str(L, "result", leaf ? X509_verify_cert_error_string(result) : "no peer certificate");
        lua_createtable(L, c->nerrors, 0);
        for (int i = 0; i < c->nerrors; i++) {
            lua_createtable(L, 0, 3);
            set_int(L, "depth", c->errors[i].depth);
            set_int(L, "code", c->errors[i].code);
            set_str(L, "reason", X509_verify_cert_error_string(c->errors[i].code));
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "errors");
        if (c->dropped) set_int(L, "errors_dropped", c->dropped);
        lua_setfield(L, -2, "verify");
        if (leaf && c->verify_name[0]) {
            int m = mx_x509_match_host(leaf, c->verify_name, strlen(c->verify_name));
            ERR_clear_error();
            set_bool(L, "hostname_match", m == 1);
        }
    }

    if (want_chain) {
        size_t kept = 0, kept_bytes = 0;
        lua_createtable(L, (int)(total < c->max_chain ? total : c->max_chain), 0);
        for (size_t i = 0; i < total; i++) {
            X509 *x = leaf_apart ? (i == 0 ? leaf : sk_X509_value(chain, (int)i - 1)) : sk_X509_value(chain, (int)i);
            int len = i2d_X509(x, NULL);
            size_t sz = len > 0 ? (size_t)len : 0;
            if (kept == c->max_chain || kept_bytes + sz > c->max_chain_bytes) break;
            mx_x509_push(L, x);
            lua_rawseti(L, -2, (lua_Integer)++kept);
            kept_bytes += sz;
        }
        lua_setfield(L, -2, "chain");
        if (kept < total) {
            lua_createtable(L, 0, 5);
            set_int(L, "certificates", (lua_Integer)total);
            set_int(L, "bytes", (lua_Integer)bytes);
            set_int(L, "kept", (lua_Integer)kept);
            set_int(L, "kept_bytes", (lua_Integer)kept_bytes);
            lua_createtable(L, 0, 2);
            set_int(L, "certificates", (lua_Integer)c->max_chain);
            set_int(L, "bytes", (lua_Integer)c->max_chain_bytes);
            lua_setfield(L, -2, "cap");
            lua_setfield(L, -2, "chain_truncated");
        }
    }
    return 1;
}

/* int l_tls_shutdown (lua_State *L)  [-1, +1|3, e]
 * tls.shutdown(sock) -> true once our close_notify is sent (we do not wait
 * for the peer's) | nil, "again", events | nil, code, detail */
static int l_tls_shutdown(lua_State *L)
{
    mx_sock *s;
    tls_conn *c = check_tls(L, "shutdown", &s);
    if (!c->done || c->failed || s->fd < 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    ERR_clear_error();
    errno = 0;
    int r = SSL_shutdown(c->ssl);
    int saved = errno;
    if (r >= 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    unsigned want = 0;
    long res = classify(s, c, r, saved, &want, "shutdown");
    if (res == MX_IO_AGAIN) return mx_again(L, want);
    if (res == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    return mx_fail(L, s->err_code ? s->err_code : "tls", "%s", s->err);
}

/* ---- tls.load_ca --------------------------------------------------------- */

/* A cursor over DER bytes. */
typedef struct {
    const unsigned char *p;
    long left;
} der_cur;

/* The next element of c if it has this tag and class: its content in
 * *content (when not NULL) and c moved past it; 0 when it is malformed
 * (a length past the end, an indefinite length: not DER) or another one. */
static int der_next(der_cur *c, int tag_want, int cls_want, der_cur *content)
{
    if (c->left <= 0) return 0;
    const unsigned char *q = c->p;
    long len;
    int tag, cls;
    int r = ASN1_get_object(&q, &len, &tag, &cls, c->left);
    if ((r & 0x80) || (r & 1)) return 0;
    if (tag != tag_want || cls != cls_want) return 0;
    long hdr = (long)(q - c->p);
    if (len < 0 || len > c->left - hdr) return 0;
    if (content) {
        content->p = q;
        content->left = len;
    }
    c->p = q + len;
    c->left -= hdr + len;
    return 1;
}

/* Does der have the shape of an X.509 certificate (RFC 5280 4.1)?
 *   Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version
 *     OPTIONAL, serialNumber INTEGER, signature, issuer, validity,
 *     subject, subjectPublicKeyInfo (SEQUENCEs), ... },
 *     signatureAlgorithm SEQUENCE, signatureValue BIT STRING }
 * aux: a TRUSTED CERTIFICATE, whose certificate OpenSSL follows with its
 * trust settings (one more SEQUENCE).  Read with the generic ASN.1 reader:
 * d2i_X509 decodes the public key too, which starts OpenSSL 3's decoders
 * (PEM_X509_INFO_read_bio of one certificate was 5.7 M instructions, a
 * sixth of a start; issue 15).  The key is decoded with the context, at
 * the first handshake, where a bad one fails verification. */
static int cert_shape(const unsigned char *der, long n, int aux)
{
    der_cur all = {der, n}, cert, tbs, tmp;
    if (!der_next(&all, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &cert)) return 0;
    if (aux && all.left > 0 && !der_next(&all, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL)) return 0;
    if (all.left != 0) return 0;
    if (!der_next(&cert, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &tbs)) return 0;
    tmp = tbs;
    if (der_next(&tmp, 0, V_ASN1_CONTEXT_SPECIFIC, NULL)) tbs = tmp; /* version */
    if (!der_next(&tbs, V_ASN1_INTEGER, V_ASN1_UNIVERSAL, NULL)) return 0;
    for (int i = 0; i < 5; i++)
        if (!der_next(&tbs, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL)) return 0;
    if (!der_next(&cert, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL)) return 0;
    if (!der_next(&cert, V_ASN1_BIT_STRING, V_ASN1_UNIVERSAL, NULL)) return 0;
    return cert.left == 0;
}

/* int l_tls_load_ca (lua_State *L)  [-1, +1|2, e]
 * tls.load_ca(path) -> number of certificates | nil, message
 * Reads a PEM bundle of trust anchors once, as a context would
 * (ca_file), and says what is wrong with it: "FILE: cannot read: ...",
 * "FILE: no certificate found" (a readable file that is not a bundle:
 * OpenSSL would accept it and every server would fail verification),
 * "FILE: cannot parse the certificates: ..." (a block that is not base64,
 * or a CERTIFICATE block that is not an X.509 certificate).  Blocks other
 * than certificates (CRLs, keys) are skipped. */
static int l_tls_load_ca(lua_State *L)
{
    size_t plen;
    const char *path = luaL_checklstring(L, 1, &plen);
    if (strlen(path) != plen) return luaL_argerror(L, 1, "the path contains a NUL byte");
    ERR_clear_error();
    errno = 0;
    BIO *b = BIO_new_file(path, "r");
    if (!b) {
        int e = errno;
        ERR_clear_error();
        lua_pushnil(L);
        lua_pushfstring(L, "%s: cannot read: %s", path, e ? strerror(e) : "cannot open the file");
        return 2;
    }
    int n = 0, blocks = 0;
    const char *bad = NULL;
    char d[400];
    for (;;) {
        char *name = NULL, *header = NULL;
        unsigned char *data = NULL;
        long len = 0;
        errno = 0;
        if (!PEM_read_bio(b, &name, &header, &data, &len)) {
            int e = errno;
            unsigned long first = ERR_peek_last_error();
            if (ERR_GET_LIB(first) == ERR_LIB_PEM && ERR_GET_REASON(first) == PEM_R_NO_START_LINE) {
                ERR_clear_error(); /* the end: no more blocks */
            } else if (ERR_GET_LIB(first) == ERR_LIB_SYS || (first == 0 && e)) {
                ERR_clear_error();
                BIO_free(b);
                lua_pushnil(L);
                lua_pushfstring(L, "%s: cannot read: %s", path, strerror(e ? e : EIO));
                return 2;
            } else {
                lua_pushfstring(L, "block %d: %s", blocks + 1, mx_ssl_errors(d, sizeof d));
                bad = lua_tostring(L, -1);
            }
            break;
        }
        blocks++;
        int aux = strcmp(name, "TRUSTED CERTIFICATE") == 0;
        if (aux || strcmp(name, "CERTIFICATE") == 0 || strcmp(name, "X509 CERTIFICATE") == 0) {
            if (cert_shape(data, len, aux)) n++;
            else {
                lua_pushfstring(L, "certificate #%d is not an X.509 certificate (DER)", n + 1);
                bad = lua_tostring(L, -1);
            }
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
        if (bad) break;
    }
    BIO_free(b);
    ERR_clear_error();
    if (bad) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: cannot parse the certificates: %s", path, bad);
        return 2;
    }
    if (n == 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: no certificate found", path);
        return 2;
    }
    lua_pushinteger(L, n);
    return 1;
}

/* int l_tls_is_tls (lua_State *L)  [-1, +1, e]  does the socket speak TLS? */
static int l_tls_is_tls(lua_State *L)
{
    mx_sock *s = luaL_testudata(L, 1, MX_SOCK_MT);
    if (!s) return luaL_error(L, "bad argument #1 to 'is_tls' (mxprobe.sock expected, got %s)", luaL_typename(L, 1));
    lua_pushboolean(L, conn_of(s) != NULL);
    return 1;
}

static const luaL_Reg tls_funcs[] = {
    {"context", l_tls_context},
    {"upgrade", l_tls_upgrade},
    {"handshake_step", l_tls_handshake_step},
    {"accept_step", l_tls_handshake_step},
    {"info", l_tls_info},
    {"shutdown", l_tls_shutdown},
    {"is_tls", l_tls_is_tls},
    {"load_ca", l_tls_load_ca},
    {"session", l_tls_session},
    {NULL, NULL},
};

int mx_open_tls(lua_State *L)
{
    if (luaL_newmetatable(L, MX_TLS_CTX_MT)) {
        lua_pushcfunction(L, ctx_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, ctx_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, MX_TLS_SESSION_MT)) {
        lua_pushcfunction(L, session_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, session_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    luaL_newlib(L, tls_funcs);
    lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
    lua_setfield(L, -2, "openssl_version");
    return 1;
}
