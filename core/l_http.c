/*
 * l_http.c - core.http: HTTPS GET with libcurl on the mxprobe loop.
 *
 *   http.get{ url = "https://mta-sts.example.org/.well-known/mta-sts.txt",
 *             resolve = { "mta-sts.example.org:443:192.0.2.80", ... },
 *             timeout = s, connect_timeout = s, max_bytes = n,
 *             ca_file = path | nil (system store), min_tls = "1.2" }
 *     -> transfer                   (started at once, never blocks)
 *   transfer:done(), :set_waiter(token), :clear_waiter([token]),
 *   transfer:result() -> { status =, body =, content_type =, location =,
 *                          ip =, seconds =, not_after = }
 *                      | nil, "timeout"|"tls"|"connect"|"limit"|"http"|"cancelled", detail
 *   transfer:close()
 *
 * Why libcurl's multi-socket interface: the fetch must share the loop with
 * the SMTP probes (no thread, no blocking).  Curl's sockets become C
 * watchers on the loop (CURLMOPT_SOCKETFUNCTION -> mx_loop_watch ->
 * curl_multi_socket_action) and its timer is a loop hook, as c-ares is in
 * l_dns.c.  Curl resolves nothing: every name it may connect to comes with
 * the addresses c-ares found (CURLOPT_RESOLVE); a URL whose host has no
 * entry is refused before anything is sent.  Only https, no redirects
 * (a 3xx is returned with its Location), PKIX verification of the peer and
 * its name with SNI, a byte cap and a total deadline, so a server that
 * drips or floods cannot hold or fill a run.  Completion wakes the waiting
 * tasks; the callbacks never touch Lua.
 *
 * not_after: the peer certificate's notAfter (seconds since the epoch,
 * UTC), from CURLINFO_CERTINFO: an MTA-STS sender that has not cached the
 * policy cannot fetch it once the policy host's certificate expires.
 *
 * Lifetimes: the Lua transfer owns its easy handle; collecting or closing
 * it removes the handle from the multi at once (never from inside a curl
 * callback, since Lua never runs there).  One multi per Lua state, in the
 * registry, cleaned up by its __gc.
 */
#define _GNU_SOURCE /* strptime, timegm */
#include "bindings.h"

/* the plain prototypes: curl's type-checking macros would hide the
 * function names that the table below replaces */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/*
 * libcurl is loaded on the first fetch (dlopen), not linked: its
 * dependencies (GnuTLS for librtmp, Kerberos, LDAP, libssh2, ... about 25
 * libraries) took 7-13 ms of every start on two busy cores, before the
 * first DNS question (bench/domain; limit 10 ms), and most runs fetch no
 * MTA-STS policy.  The calls below go through this table, filled from
 * the same prototypes as a link would use (typeof), so a changed
 * signature is still a compile error.
 */
#ifndef MXPROBE_CURL_SONAME
#define MXPROBE_CURL_SONAME "libcurl.so.4" /* the soname since libcurl 7.16 (2006) */
#endif
#define CURL_FUNCS(X) \
    X(curl_global_init) X(curl_version_info) X(curl_easy_init) X(curl_easy_cleanup) \
    X(curl_easy_setopt) X(curl_easy_getinfo) X(curl_easy_strerror) X(curl_free) \
    X(curl_multi_init) X(curl_multi_cleanup) X(curl_multi_setopt) X(curl_multi_add_handle) \
    X(curl_multi_remove_handle) X(curl_multi_info_read) X(curl_multi_socket_action) \
    X(curl_multi_strerror) X(curl_slist_append) X(curl_slist_free_all) X(curl_url) \
    X(curl_url_cleanup) X(curl_url_set) X(curl_url_get)
#define CURL_FIELD(f) __typeof__(f) *f;
static struct { CURL_FUNCS(CURL_FIELD) } curlf;
static int curl_state; /* 0: not tried, 1: loaded and initialised, -1: failed */
static char curl_why[256];

/* [-0, +0, -] 0 when libcurl is loaded and initialised, else -1 with
 * curl_why set (the same answer every later time) */
static int curl_load(void)
{
    if (curl_state) return curl_state > 0 ? 0 : -1;
    curl_state = -1;
    /* RTLD_LOCAL: nothing else in the process binds to curl's symbols;
     * never unloaded (curl_global_cleanup is not safe to repeat) */
    void *h = dlopen(MXPROBE_CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(curl_why, sizeof curl_why, "cannot load %s: %s", MXPROBE_CURL_SONAME, dlerror());
        return -1;
    }
#define CURL_SYM(f) \
    if (!(*(void **)&curlf.f = dlsym(h, #f))) { \
        snprintf(curl_why, sizeof curl_why, "%s has no %s", MXPROBE_CURL_SONAME, #f); \
        return -1; \
    }
    CURL_FUNCS(CURL_SYM)
#undef CURL_SYM
    CURLcode rc = curlf.curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        snprintf(curl_why, sizeof curl_why, "curl_global_init: %s", curlf.curl_easy_strerror(rc));
        return -1;
    }
    curl_state = 1;
    return 0;
}
/* the rest of the file calls curl by its own names (curl.h makes three
 * of them macros that only count the arguments) */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init curlf.curl_global_init
#define curl_version_info curlf.curl_version_info
#define curl_easy_init curlf.curl_easy_init
#define curl_easy_cleanup curlf.curl_easy_cleanup
#define curl_easy_setopt curlf.curl_easy_setopt
#define curl_easy_getinfo curlf.curl_easy_getinfo
#define curl_easy_strerror curlf.curl_easy_strerror
#define curl_free curlf.curl_free
#define curl_multi_init curlf.curl_multi_init
#define curl_multi_cleanup curlf.curl_multi_cleanup
#define curl_multi_setopt curlf.curl_multi_setopt
#define curl_multi_add_handle curlf.curl_multi_add_handle
#define curl_multi_remove_handle curlf.curl_multi_remove_handle
#define curl_multi_info_read curlf.curl_multi_info_read
#define curl_multi_socket_action curlf.curl_multi_socket_action
#define curl_multi_strerror curlf.curl_multi_strerror
#define curl_slist_append curlf.curl_slist_append
#define curl_slist_free_all curlf.curl_slist_free_all
#define curl_url curlf.curl_url
#define curl_url_cleanup curlf.curl_url_cleanup
#define curl_url_set curlf.curl_url_set
#define curl_url_get curlf.curl_url_get

#define MULTI_KEY "mxprobe.http.the_multi" /* not MULTI_MT: that slot holds the metatable */
#define MULTI_MT "mxprobe.http.multi"
#define XFER_MT "mxprobe.http.transfer"
#define DEFAULT_TIMEOUT 10.0
#define DEFAULT_MAX_BYTES 65536
#define MAX_RESOLVE 32
#define MAX_WAITERS 4096

typedef struct multi {
    CURLM *m;
    mx_loop *loop;
    double timer;   /* absolute deadline of curl's timer, < 0: none */
    int running;
} multi;

enum { X_RUNNING, X_DONE, X_CLOSED };

typedef struct xfer {
    CURL *e;
    multi *mu;
    struct curl_slist *resolve;
    int state;
    CURLcode rc;
    int over_cap;
    char *body;
    size_t len, cap, max_bytes;
    int *waiters;
    int nwaiters, capwaiters;
    char errbuf[CURL_ERROR_SIZE];
} xfer;

/* ------------------------------------------------------------------ */
/* curl callbacks: no Lua here                                        */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t add = size * n;
    if (x->len + add > x->max_bytes) {
        x->over_cap = 1;
        return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
    }
    if (x->len + add + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < x->len + add + 1) cap *= 2;
        char *b = realloc(x->body, cap);
        if (!b) return 0;
        x->body = b;
        x->cap = cap;
    }
    memcpy(x->body + x->len, p, add);
    x->len += add;
    return add;
}

static void wake_all(mx_loop *loop, xfer *x)
{
    if (loop)
        for (int i = 0; i < x->nwaiters; i++) mx_loop_wake(loop, x->waiters[i], MX_WAKE_READY);
    x->nwaiters = 0;
}

static void collect_done(multi *mu)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(mu->m, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        xfer *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (!x) continue;
        x->rc = msg->data.result;
        x->state = X_DONE;
        curl_multi_remove_handle(mu->m, x->e);
        wake_all(mu->loop, x);
    }
}

static void on_io(mx_loop *loop, int fd, unsigned events, void *ud)
{
    (void)loop;
    multi *mu = ud;
    int ev = ((events & MX_READ) ? CURL_CSELECT_IN : 0) | ((events & MX_WRITE) ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(mu->m, fd, ev, &mu->running);
    collect_done(mu);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *ud, void *sockp)
{
    (void)e;
    (void)sockp;
    multi *mu = ud;
    if (!mu->loop) return 0;
    unsigned ev = what == CURL_POLL_IN ? MX_READ : what == CURL_POLL_OUT ? MX_WRITE
                : what == CURL_POLL_INOUT ? (MX_READ | MX_WRITE) : 0;
    /* a failure (out of memory) leaves the socket unwatched: the transfer
     * then ends at its deadline, which curl's timer still enforces */
    (void)mx_loop_watch(mu->loop, s, ev, on_io, mu);
    return 0;
}

static int on_timer(CURLM *m, long ms, void *ud)
{
    (void)m;
    multi *mu = ud;
    mu->timer = ms < 0 ? -1 : mx_now() + (double)ms / 1000.0;
    return 0;
}

static double hook_deadline(void *ud)
{
    multi *mu = ud;
    return mu->timer;
}

static void hook_tick(void *ud)
{
    multi *mu = ud;
    if (mu->timer < 0 || mx_now() < mu->timer) return;
    mu->timer = -1;
    curl_multi_socket_action(mu->m, CURL_SOCKET_TIMEOUT, 0, &mu->running);
    collect_done(mu);
}

/* ------------------------------------------------------------------ */
/* the multi                                                          */

static int l_multi_gc(lua_State *L)
{
    multi *mu = luaL_checkudata(L, 1, MULTI_MT);
    if (mu->loop && mu->loop == mx_peek_loop(L)) mx_loop_remove_hook(mu->loop, mu);
    mu->loop = NULL;
    if (mu->m) curl_multi_cleanup(mu->m);
    mu->m = NULL;
    return 0;
}

/* [-0, +0, e] the multi of this Lua state, made on first use */
static multi *get_multi(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, MULTI_KEY) == LUA_TUSERDATA) {
        multi *mu = lua_touserdata(L, -1);
        lua_pop(L, 1);
        return mu;
    }
    lua_pop(L, 1);
    mx_loop *loop = mx_get_loop(L); /* before the multi: finalized after it */
    multi *mu = lua_newuserdatauv(L, sizeof *mu, 0);
    memset(mu, 0, sizeof *mu);
    mu->timer = -1;
    luaL_setmetatable(L, MULTI_MT);
    mu->m = curl_multi_init();
    if (!mu->m) return luaL_error(L, "http: curl_multi_init failed"), NULL;
    curl_multi_setopt(mu->m, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(mu->m, CURLMOPT_SOCKETDATA, mu);
    curl_multi_setopt(mu->m, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(mu->m, CURLMOPT_TIMERDATA, mu);
    if (mx_loop_add_hook(loop, hook_deadline, hook_tick, mu) < 0) return luaL_error(L, "http: out of memory"), NULL;
    mu->loop = loop;
    lua_setfield(L, LUA_REGISTRYINDEX, MULTI_KEY);
    return mu;
}

/* ------------------------------------------------------------------ */
/* transfers                                                          */

static void xfer_release(xfer *x)
{
    if (x->e) {
        if (x->state == X_RUNNING && x->mu && x->mu->m) curl_multi_remove_handle(x->mu->m, x->e);
        curl_easy_cleanup(x->e);
        x->e = NULL;
    }
    curl_slist_free_all(x->resolve);
    x->resolve = NULL;
    free(x->body);
    x->body = NULL;
    x->len = x->cap = 0;
    x->state = X_CLOSED;
}

static xfer *check_xfer(lua_State *L) { return luaL_checkudata(L, 1, XFER_MT); }

static int opt_err(lua_State *L, const char *msg)
{
    return luaL_error(L, "bad argument #1 to 'get' (%s)", msg);
}

static double opt_seconds(lua_State *L, const char *k, double dflt)
{
    double v = dflt;
    int t = lua_getfield(L, 1, k);
    if (t != LUA_TNIL) {
        if (t != LUA_TNUMBER) opt_err(L, lua_pushfstring(L, "%s: number of seconds expected", k));
        v = lua_tonumber(L, -1);
        if (!(v > 0 && v <= 3600)) opt_err(L, lua_pushfstring(L, "%s: must be > 0 and <= 3600 seconds", k));
    }
    lua_pop(L, 1);
    return v;
}

/* http.get (opts)  [-1, +1, e]  raises on bad options */
static int l_get(lua_State *L)
{
    static const char *const known[] = {"url", "resolve", "timeout", "connect_timeout", "max_bytes", "ca_file",
                                        "min_tls", NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    if (curl_load() != 0) return luaL_error(L, "get: %s", curl_why);
    lua_settop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        int ok = 0;
        for (int i = 0; k && known[i]; i++) ok |= strcmp(k, known[i]) == 0;
        if (!ok) opt_err(L, lua_pushfstring(L, "unknown option '%s'", k ? k : luaL_typename(L, -1)));
    }
    if (lua_getfield(L, 1, "url") != LUA_TSTRING) opt_err(L, "url: string expected");
    const char *url = lua_tostring(L, -1); /* stays at index 2 */
    if (strncmp(url, "https://", 8) != 0) opt_err(L, "url: only https:// URLs");
    double timeout = opt_seconds(L, "timeout", DEFAULT_TIMEOUT);
    double ctimeout = opt_seconds(L, "connect_timeout", timeout);
    lua_Integer max_bytes = DEFAULT_MAX_BYTES;
    if (lua_getfield(L, 1, "max_bytes") != LUA_TNIL) {
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > (1 << 24))
            opt_err(L, "max_bytes: integer 1 to 16777216 expected");
        max_bytes = lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    const char *ca = NULL;
    int t = lua_getfield(L, 1, "ca_file"); /* index 3 */
    if (t != LUA_TNIL && t != LUA_TSTRING) opt_err(L, "ca_file: path string expected");
    if (t == LUA_TSTRING) ca = lua_tostring(L, -1);
    long minv = CURL_SSLVERSION_TLSv1_2;
    if (lua_getfield(L, 1, "min_tls") != LUA_TNIL) { /* index 4 */
        const char *v = lua_tostring(L, -1);
        if (v && strcmp(v, "1.2") == 0) minv = CURL_SSLVERSION_TLSv1_2;
        else if (v && strcmp(v, "1.3") == 0) minv = CURL_SSLVERSION_TLSv1_3;
        else opt_err(L, "min_tls: \"1.2\" or \"1.3\" expected");
    }
    if (lua_getfield(L, 1, "resolve") != LUA_TTABLE) opt_err(L, "resolve: list of \"host:port:address\" strings expected");
    int nres = (int)lua_rawlen(L, -1); /* index 5 */
    if (nres < 1 || nres > MAX_RESOLVE) opt_err(L, "resolve: 1 to 32 entries expected");

    /* curl must resolve nothing: the URL's host needs an entry of its own */
    {
        CURLU *u = curl_url();
        char *host = NULL, *port = NULL;
        int bad = !u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
                  curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
                  curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK;
        int found = 0;
        if (!bad) {
            lua_pushfstring(L, "%s:%s:", host, port);
            size_t plen;
            const char *prefix = lua_tolstring(L, -1, &plen);
            for (int i = 1; i <= nres && !found; i++) {
                lua_rawgeti(L, 5, i);
                const char *r = lua_tostring(L, -1);
                found = r && strncasecmp(r, prefix, plen) == 0;
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        curl_free(host);
        curl_free(port);
        curl_url_cleanup(u);
        if (bad) opt_err(L, "url: not a valid URL");
        if (!found) opt_err(L, "resolve: no entry for the URL's host and port (curl resolves nothing itself)");
    }
    multi *mu = get_multi(L);
    xfer *x = lua_newuserdatauv(L, sizeof *x, 1);
    memset(x, 0, sizeof *x);
    x->state = X_CLOSED;
    luaL_setmetatable(L, XFER_MT);
    lua_getfield(L, LUA_REGISTRYINDEX, MULTI_KEY);
    lua_setiuservalue(L, -2, 1); /* the multi outlives its transfers */
    x->mu = mu;
    x->max_bytes = (size_t)max_bytes;
    for (int i = 1; i <= nres; i++) {
        lua_rawgeti(L, 5, i);
        const char *r = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (!r || !strchr(r, ':')) {
            xfer_release(x);
            opt_err(L, lua_pushfstring(L, "resolve[%d]: \"host:port:address\" expected", i));
        }
        struct curl_slist *n = curl_slist_append(x->resolve, r);
        lua_pop(L, 1);
        if (!n) return xfer_release(x), luaL_error(L, "get: out of memory");
        x->resolve = n;
    }
    x->e = curl_easy_init();
    if (!x->e) return xfer_release(x), luaL_error(L, "get: curl_easy_init failed");
    CURL *e = x->e;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(e, CURLOPT_RESOLVE, x->resolve);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_SSLVERSION, minv);
    if (ca) curl_easy_setopt(e, CURLOPT_CAINFO, ca);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(ctimeout * 1000));
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_bytes);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*"); /* never an environment proxy */
    curl_easy_setopt(e, CURLOPT_USERAGENT, "mxprobe/" MXPROBE_VERSION);
    curl_easy_setopt(e, CURLOPT_CERTINFO, 1L); /* the peer's notAfter, for result() */
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL); /* the body as sent: the cap counts wire bytes */
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
    x->state = X_RUNNING;
    CURLMcode mc = curl_multi_add_handle(mu->m, e);
    if (mc != CURLM_OK) {
        x->state = X_CLOSED;
        xfer_release(x);
        return luaL_error(L, "get: %s", curl_multi_strerror(mc));
    }
    return 1;
}

static int l_done(lua_State *L)
{
    lua_pushboolean(L, check_xfer(L)->state != X_RUNNING);
    return 1;
}

static int check_token(lua_State *L, int idx)
{
    lua_Integer t = luaL_checkinteger(L, idx);
    luaL_argcheck(L, t > 0 && t < (1 << 24), idx, "task token out of range");
    return (int)t;
}

static int l_set_waiter(lua_State *L)
{
    xfer *x = check_xfer(L);
    int tok = check_token(L, 2);
    if (x->state != X_RUNNING) return 0;
    for (int i = 0; i < x->nwaiters; i++)
        if (x->waiters[i] == tok) return 0;
    if (x->nwaiters == x->capwaiters) {
        if (x->capwaiters >= MAX_WAITERS) return luaL_error(L, "set_waiter: too many waiting tasks");
        int cap = x->capwaiters ? x->capwaiters * 2 : 4;
        int *w = realloc(x->waiters, (size_t)cap * sizeof *w);
        if (!w) return luaL_error(L, "set_waiter: out of memory");
        x->waiters = w;
        x->capwaiters = cap;
    }
    x->waiters[x->nwaiters++] = tok;
    return 0;
}

static int l_clear_waiter(lua_State *L)
{
    xfer *x = check_xfer(L);
    if (lua_isnoneornil(L, 2)) {
        x->nwaiters = 0;
        return 0;
    }
    int tok = check_token(L, 2);
    for (int i = 0; i < x->nwaiters; i++)
        if (x->waiters[i] == tok) {
            x->waiters[i] = x->waiters[--x->nwaiters];
            break;
        }
    return 0;
}

static const char *fail_code(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: return "timeout";
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR: return "tls";
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST: return "connect";
    case CURLE_FILESIZE_EXCEEDED: return "limit";
    default: return "http";
    }
}

#define SET_STR(k, v) (lua_pushstring(L, (v)), lua_setfield(L, -2, (k)))

/* The leaf's notAfter from curl's certificate info ("Expire date:Dec 20
 * 10:00:00 2026 GMT", OpenSSL's ASN1_TIME_print), or -1. */
static long long peer_not_after(CURL *e)
{
    struct curl_certinfo *ci = NULL;
    if (curl_easy_getinfo(e, CURLINFO_CERTINFO, &ci) != CURLE_OK || !ci || ci->num_of_certs < 1) return -1;
    static const char key[] = "Expire date:";
    for (struct curl_slist *l = ci->certinfo[0]; l; l = l->next) {
        if (!l->data || strncmp(l->data, key, sizeof key - 1) != 0) continue;
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(l->data + sizeof key - 1, "%b %d %H:%M:%S %Y", &tm);
        if (!end) return -1;
        return (long long)timegm(&tm);
    }
    return -1;
}

/* transfer:result ()  [-1, +1|3, e] */
static int l_result(lua_State *L)
{
    xfer *x = check_xfer(L);
    if (x->state == X_RUNNING) return luaL_error(L, "result: the transfer is still running (wait for it with loop.wait)");
    if (x->state == X_CLOSED || !x->e) return mx_fail(L, "cancelled", "the transfer was closed");
    if (x->over_cap) return mx_fail(L, "limit", "the body is larger than %zu bytes", x->max_bytes);
    if (x->rc != CURLE_OK) {
        const char *why = x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->rc);
        return mx_fail(L, fail_code(x->rc), "%s", why);
    }
    long status = 0;
    char *ctype = NULL, *loc = NULL, *ip = NULL;
    double secs = 0;
    curl_easy_getinfo(x->e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(x->e, CURLINFO_CONTENT_TYPE, &ctype);
    curl_easy_getinfo(x->e, CURLINFO_REDIRECT_URL, &loc);
    curl_easy_getinfo(x->e, CURLINFO_PRIMARY_IP, &ip);
    curl_easy_getinfo(x->e, CURLINFO_TOTAL_TIME, &secs);
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, x->body ? x->body : "", x->len);
    lua_setfield(L, -2, "body");
    if (ctype) SET_STR("content_type", ctype);
    if (loc) SET_STR("location", loc);
    if (ip && *ip) SET_STR("ip", ip);
    lua_pushnumber(L, secs);
    lua_setfield(L, -2, "seconds");
    long long na = peer_not_after(x->e);
    if (na >= 0) {
        lua_pushinteger(L, (lua_Integer)na);
        lua_setfield(L, -2, "not_after");
    }
    return 1;
}

static int l_close(lua_State *L)
{
    xfer *x = check_xfer(L);
    if (x->state == X_CLOSED) return 0;
    mx_loop *loop = mx_peek_loop(L);
    xfer_release(x);
    wake_all(loop, x);
    return 0;
}

static int l_gc(lua_State *L)
{
    xfer *x = check_xfer(L);
    /* at lua_close the multi may be gone already: then only free */
    if (x->state == X_RUNNING && x->mu && !x->mu->m) x->state = X_DONE;
    xfer_release(x);
    free(x->waiters);
    x->waiters = NULL;
    x->nwaiters = x->capwaiters = 0;
    return 0;
}

static int l_tostring(lua_State *L)
{
    xfer *x = check_xfer(L);
    lua_pushfstring(L, "http transfer (%s)", x->state == X_RUNNING ? "running" : x->state == X_DONE ? "done" : "closed");
    return 1;
}

static const luaL_Reg xfer_methods[] = {
    {"done", l_done},     {"set_waiter", l_set_waiter}, {"clear_waiter", l_clear_waiter},
    {"result", l_result}, {"close", l_close},           {NULL, NULL},
};

/* core.http.curl_version, loading libcurl: nil and why when it cannot */
static int l_http_index(lua_State *L)
{
    const char *k = lua_tostring(L, 2);
    if (!k || strcmp(k, "curl_version") != 0) return 0;
    if (curl_load() != 0) return luaL_error(L, "http: %s", curl_why);
    lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
    lua_pushvalue(L, -1);
    lua_setfield(L, 1, "curl_version"); /* asked once */
    return 1;
}

static const luaL_Reg http_funcs[] = {
    {"get", l_get},
    {NULL, NULL},
};

int mx_open_http(lua_State *L)
{
    if (luaL_newmetatable(L, MULTI_MT)) {
        lua_pushcfunction(L, l_multi_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, XFER_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, xfer_methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    luaL_newlib(L, http_funcs);
    /* curl_version: asked of libcurl when first read (loading it) */
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_http_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    return 1;
}
