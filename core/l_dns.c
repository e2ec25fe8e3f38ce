/*
 * l_dns.c - core.dns: c-ares 1.18 on the mxprobe loop.
 *
 *   resolver{ servers = {"127.0.0.1:5300", "[::1]:5300"}, timeout = s, tries = n,
 *             resolv_conf = path, max_records = n }  -> resolver | nil, "dns", detail
 *   resolver:query(name, type [, "ad"]) -> query (sends at once, never blocks;
 *                                     "ad": the AD bit set in the query)
 *   query:done(), :set_waiter(token), :clear_waiter([token]), :result(), :close()
 *   reverse_name(ip) -> "10.2.0.192.in-addr.arpa" | nibble ip6.arpa name
 *
 * A resolver owns an ares_channel whose sockets are C watchers on the loop
 * (ARES_OPT_SOCK_STATE_CB -> mx_loop_watch -> ares_process_fd) and whose
 * retransmission timer is a loop hook (ares_timeout -> ares_process_fd).
 * Answers are copied in the c-ares callback, which then wakes the tasks
 * waiting on the query; the callback never touches Lua, and the answer is
 * decoded (core/dns_decode.c) when the task asks for result().
 *
 * Lifetimes.  The c-ares callback argument is a small malloc'd `pending`
 * record, not the query userdata: closing or collecting a query in flight
 * detaches it (pending->q = NULL) and the callback, which c-ares always
 * makes eventually (answer, timeout, or ARES_EDESTRUCTION from
 * ares_destroy), frees the record without touching the query.  While a
 * query is in flight the resolver holds it in its in-flight table (its
 * user value), so a query nobody keeps still completes; completed entries
 * are dropped at the next query() or close().  A query holds its resolver
 * (user value), so a resolver with live queries is never collected first.
 */
#define _GNU_SOURCE
#include "bindings.h"
#include "opts.h"
#include "dns_decode.h"

#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/random.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RESOLVER_MT "mxprobe.dns.resolver"
#define QUERY_MT "mxprobe.dns.query"
#define LOOP_KEY "mxprobe.loop" /* the loop userdata, see bindings.c */

#define DEFAULT_TIMEOUT 2.0
#define DEFAULT_TRIES 2
#define DEFAULT_MAX_RECORDS 512
#define MAX_SERVERS 16
#define MAX_WAITERS 4096

/* The query types this binding sends. */
static const char *const query_types[] = {"MX", "A", "AAAA", "CNAME", "TXT", "PTR", "TLSA", "NS", "SOA", NULL};
#define QUERY_TYPES_TEXT "MX, A, AAAA, CNAME, TXT, PTR, TLSA, NS or SOA"

typedef struct resolver {
    ares_channel channel;
    int open;
    mx_loop *loop;          /* NULL once closed (or the loop is gone) */
    int pending;            /* c-ares queries not called back yet */
    int completed;          /* callbacks since the last sweep of the in-flight table */
    unsigned max_records;
} resolver;

typedef struct query query;

typedef struct pending {
    query *q;               /* NULL once the query object is closed or collected */
    resolver *r;
} pending;

enum { Q_PENDING, Q_DONE, Q_CLOSED };

struct query {
    pending *p;             /* while in flight */
    int state;
    int status, timeouts;
    unsigned char *abuf;
    int alen;
    int *waiters;
    int nwaiters, capwaiters;
    uint16_t qtype;
    unsigned max_records;
    char name[256];
};

/* ------------------------------------------------------------------ */
/* c-ares callbacks: no Lua here                                      */

static void wake_waiters(mx_loop *loop, query *q)
{
    if (loop)
        for (int i = 0; i < q->nwaiters; i++) mx_loop_wake(loop, q->waiters[i], MX_WAKE_READY);
    q->nwaiters = 0;
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    pending *p = arg;
    query *q = p->q;
    resolver *r = p->r;
    r->pending--;
    free(p);
    if (!q) return; /* detached: nobody wants this answer */
    q->p = NULL;
    q->state = Q_DONE;
    q->status = status;
    q->timeouts = timeouts;
    if (abuf && alen > 0) {
        q->abuf = malloc((size_t)alen);
        if (q->abuf) {
            memcpy(q->abuf, abuf, (size_t)alen);
            q->alen = alen;
        } else {
            q->status = ARES_ENOMEM;
        }
    }
    r->completed++;
    wake_waiters(r->loop, q);
}

static void on_io(mx_loop *loop, int fd, unsigned events, void *ud)
{
    (void)loop;
    resolver *r = ud;
    if (!r->open) return;
    ares_process_fd(r->channel, (events & MX_READ) ? fd : ARES_SOCKET_BAD,
                    (events & MX_WRITE) ? fd : ARES_SOCKET_BAD);
}

/* c-ares opens, arms and closes its sockets through this (both flags 0:
 * about to close). */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    resolver *r = data;
    if (!r->loop) return;
    unsigned ev = (readable ? MX_READ : 0) | (writable ? MX_WRITE : 0);
    /* A failure (out of memory) leaves the socket unwatched: the query then
     * ends by c-ares's own timeout, which the hook still drives. */
    (void)mx_loop_watch(r->loop, fd, ev, on_io, r);
}

static double hook_deadline(void *ud)
{
    resolver *r = ud;
    if (!r->open || r->pending == 0) return -1;
    struct timeval tv, *t = ares_timeout(r->channel, NULL, &tv);
    if (!t) return -1;
    return mx_now() + (double)t->tv_sec + (double)t->tv_usec / 1e6;
}

static void hook_tick(void *ud)
{
    resolver *r = ud;
    if (!r->open || r->pending == 0) return;
    struct timeval tv, *t = ares_timeout(r->channel, NULL, &tv);
    if (t && t->tv_sec == 0 && t->tv_usec == 0) ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

/* ------------------------------------------------------------------ */
/* helpers                                                            */

/* [-0, +0, -] the loop if it still exists, without creating it */
static mx_loop *live_loop(lua_State *L)
{
    mx_loop *l = NULL;
    if (lua_getfield(L, LUA_REGISTRYINDEX, LOOP_KEY) == LUA_TUSERDATA) l = *(mx_loop **)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return l;
}

/* Parse "ip", "ip:port", "ipv6", "[ipv6]" or "[ipv6]:port" into the
 * "ip:port" / "[ipv6]:port" form c-ares 1.18's csv parser reads reliably.
 * 0, or -1 with the reason in why. */
static int parse_server(const char *s, char *out, size_t outsz, const char **why)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *port = NULL;
    int v6;
    unsigned char bin[16];

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close) { *why = "missing ']'"; return -1; }
        size_t n = (size_t)(close - s - 1);
        if (n == 0 || n >= sizeof addr) { *why = "bad IPv6 address"; return -1; }
        memcpy(addr, s + 1, n);
        addr[n] = '\0';
        if (close[1] == ':') port = close + 2;
        else if (close[1] != '\0') { *why = "junk after ']'"; return -1; }
        v6 = 1;
    } else {
        const char *c1 = strchr(s, ':');
        if (c1 && strchr(c1 + 1, ':')) { /* bare IPv6, no port */
            if (strlen(s) >= sizeof addr) { *why = "bad IPv6 address"; return -1; }
            strcpy(addr, s);
            v6 = 1;
        } else {
            size_t n = c1 ? (size_t)(c1 - s) : strlen(s);
            if (n == 0 || n >= sizeof addr) { *why = "bad IPv4 address"; return -1; }
            memcpy(addr, s, n);
            addr[n] = '\0';
            if (c1) port = c1 + 1;
            v6 = 0;
        }
    }
    if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, bin) != 1) {
        *why = v6 ? "not a numeric IPv6 address" : "not a numeric IPv4 address";
        return -1;
    }
    long pn = 53;
    if (port) {
        char *end;
        if (!*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5) {
            *why = "bad port";
            return -1;
        }
        pn = strtol(port, &end, 10);
        if (pn < 1 || pn > 65535) { *why = "port out of range 1-65535"; return -1; }
    }
    snprintf(out, outsz, v6 ? "[%s]:%ld" : "%s:%ld", addr, pn);
    return 0;
}

static int opt_error(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int opt_error(lua_State *L, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return luaL_error(L, "bad argument #1 to 'resolver' (%s)", msg);
}

/* ------------------------------------------------------------------ */
/* resolver                                                           */

/* [-0, +0, -] destroy the channel: queries in flight complete with
 * ARES_EDESTRUCTION (their waiters are woken) and c-ares closes its sockets
 * through on_sock_state.  idx: the resolver userdata. */
static void resolver_close(lua_State *L, resolver *r, int idx)
{
    if (!r->open) return;
    /* At lua_close the loop may be finalized first: then leave it alone. */
    if (r->loop != live_loop(L)) r->loop = NULL;
    r->open = 0;
    ares_destroy(r->channel);
    r->channel = NULL;
    if (r->loop) mx_loop_remove_hook(r->loop, r);
    r->loop = NULL;
    lua_newtable(L); /* drop the in-flight table */
    lua_setiuservalue(L, idx, 1);
}

/* resolver (opts?)  [-1, +1|3, e]
 * -> resolver, or nil, "dns", detail when c-ares cannot start (bad
 * resolv.conf).  Raises on bad options. */
static int l_resolver(lua_State *L)
{
    double timeout = DEFAULT_TIMEOUT;
    lua_Integer tries = DEFAULT_TRIES, max_records = DEFAULT_MAX_RECORDS;
    const char *resolv_conf = NULL;
    luaL_Buffer csv;
    int nservers = 0;

    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    lua_settop(L, 1);

    static const char *const keys[] = {"servers", "timeout", "tries", "resolv_conf", "max_records", NULL};
    mx_opts_check(L, 1, "resolver", keys);
    timeout = mx_opt_number(L, 1, "resolver", "timeout", DEFAULT_TIMEOUT, 0, 3600);
    if (timeout <= 0) mx_opt_error(L, 1, "resolver", "timeout", "must be more than 0 seconds");
    tries = mx_opt_integer(L, 1, "resolver", "tries", DEFAULT_TRIES, 1, 10);
    max_records = mx_opt_integer(L, 1, "resolver", "max_records", DEFAULT_MAX_RECORDS, 1, 65535);
    resolv_conf = mx_opt_string(L, 1, "resolver", "resolv_conf", NULL);
    lua_pushnil(L); /* index 2, kept free (was resolv_conf) */

    int t = lua_getfield(L, 1, "servers"); /* index 3 */
    luaL_buffinit(L, &csv);            /* may push a box: keep it above everything else */
    if (t != LUA_TNIL) {
        if (t != LUA_TTABLE) opt_error(L, "servers: list of \"ip:port\" strings expected, got %s", luaL_typename(L, 3));
        lua_Integer n = (lua_Integer)lua_rawlen(L, 3);
        if (n < 1) opt_error(L, "servers: the list is empty");
        if (n > MAX_SERVERS) opt_error(L, "servers: more than %d servers", MAX_SERVERS);
        for (lua_Integer i = 1; i <= n; i++) {
            char norm[INET6_ADDRSTRLEN + 16];
            const char *why;
            lua_rawgeti(L, 3, i);
            const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
            if (!s) opt_error(L, "servers[%d]: string expected, got %s", (int)i, luaL_typename(L, -1));
            if (parse_server(s, norm, sizeof norm, &why) < 0)
                opt_error(L, "servers[%d]: bad server '%s': %s (expected IP, IP:port or [IPv6]:port)", (int)i, s, why);
            lua_pop(L, 1);
            if (i > 1) luaL_addchar(&csv, ',');
            luaL_addstring(&csv, norm);
            nservers++;
        }
    }
    luaL_pushresult(&csv); /* the csv string, on top */

    mx_loop *loop = mx_get_loop(L); /* before the resolver: finalized after it */
    resolver *r = lua_newuserdatauv(L, sizeof *r, 1);
    memset(r, 0, sizeof *r);
    luaL_setmetatable(L, RESOLVER_MT);
    lua_newtable(L);
    lua_setiuservalue(L, -2, 1);
    r->max_records = (unsigned)max_records;

    struct ares_options o;
    memset(&o, 0, sizeof o);
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
    /* NOCHECKRESP: SERVFAIL/REFUSED answers come back to us as answers */
    o.flags = ARES_FLAG_NOCHECKRESP;
    o.timeout = (int)ceil(timeout * 1000.0);
    o.tries = (int)tries;
    o.sock_state_cb = on_sock_state;
    o.sock_state_cb_data = r;
    if (resolv_conf && !nservers) {
        /* c-ares 1.18 quietly falls back to 127.0.0.1 when the file is
         * missing: an explicit path that cannot be read is an error. */
        FILE *f = fopen(resolv_conf, "r");
        if (!f) return mx_fail(L, "dns", "cannot read %s: %s", resolv_conf, strerror(errno));
        fclose(f);
        o.resolvconf_path = (char *)resolv_conf;
        mask |= ARES_OPT_RESOLVCONF;
    }
    int st = ares_init_options(&r->channel, &o, mask);
    if (st != ARES_SUCCESS)
        return mx_fail(L, "dns", "cannot start the resolver%s%s: %s", resolv_conf ? " from " : "",
                       resolv_conf ? resolv_conf : "", ares_strerror(st));
    r->open = 1;
    r->loop = loop;
    if (nservers) {
        st = ares_set_servers_ports_csv(r->channel, lua_tostring(L, -2));
        if (st != ARES_SUCCESS) {
            resolver_close(L, r, lua_gettop(L));
            return mx_fail(L, "dns", "cannot set the servers %s: %s", lua_tostring(L, -2), ares_strerror(st));
        }
    }
    if (mx_loop_add_hook(loop, hook_deadline, hook_tick, r) < 0) {
        resolver_close(L, r, lua_gettop(L));
        return luaL_error(L, "resolver: out of memory");
    }
    return 1;
}

static resolver *check_resolver(lua_State *L)
{
    return luaL_checkudata(L, 1, RESOLVER_MT);
}

/* [-0, +0, e] drop completed queries from the in-flight table */
static void sweep(lua_State *L, resolver *r, int idx)
{
    if (r->completed == 0) return;
    lua_getiuservalue(L, idx, 1);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pop(L, 1);
        query *q = lua_touserdata(L, -1);
        if (q && q->state != Q_PENDING) {
            lua_pushvalue(L, -1);
            lua_pushnil(L);
            lua_rawset(L, -4); /* clearing a field during traversal is allowed */
        }
    }
    lua_pop(L, 1);
    r->completed = 0;
}

/* A query ID from the kernel's random source, drawn 128 at a time: one
 * getrandom per 128 questions instead of one each (issue 15: an audit asks
 * three per domain).  The IDs are as unpredictable as before; a short read
 * (no entropy yet at boot) falls back to rand() for that batch only.  The
 * pool is per process: mxprobe never forks (shards are processes of their
 * own, each started by exec). */
static unsigned short random_id(void)
{
    static unsigned short pool[128];
    static size_t left = 0;
    if (left == 0) {
        if (getrandom(pool, sizeof pool, GRND_NONBLOCK) != (ssize_t)sizeof pool)
            for (size_t i = 0; i < 128; i++) pool[i] = (unsigned short)rand();
        left = 128;
    }
    unsigned short id = pool[--left];
    pool[left] = 0; /* used: not kept around */
    return id;
}

/* Send name/qtype with the AD bit set (RFC 6840 section 5.7): a validating
 * resolver then says in its answer's AD bit whether it validated the data,
 * without EDNS DO and so without RRSIGs in the answer.  c-ares 1.18 has no
 * flag for it, so the question is built here and sent with ares_send.
 * Completion (or failure) always goes through on_answer, like ares_query. */
static void send_with_ad(resolver *r, const char *name, uint16_t qtype, pending *p)
{
    unsigned char *qbuf = NULL;
    int qlen = 0;
    unsigned short id = random_id();
    int st = ares_create_query(name, 1 /* IN */, qtype, id, 1 /* RD */, &qbuf, &qlen, 0);
    if (st != ARES_SUCCESS || qlen < 4) {
        if (qbuf) ares_free_string(qbuf);
        on_answer(p, st != ARES_SUCCESS ? st : ARES_EBADQUERY, 0, NULL, 0);
        return;
    }
    qbuf[3] |= 0x20; /* header flags, second byte: RA Z AD CD RCODE */
    ares_send(r->channel, qbuf, qlen, on_answer, p);
    ares_free_string(qbuf);
}

/* resolver:query (name, type [, flags])  [-3|4, +1, e]
 * Sends the query and returns the query object at once.  flags: nil, or
 * "ad" to ask a validating resolver for the DNSSEC status (AD bit).
 * Raises on a bad name, type or flags, or on a closed resolver. */
static int l_query(lua_State *L)
{
    resolver *r = check_resolver(L);
    size_t nlen;
    const char *name = luaL_checklstring(L, 2, &nlen);
    const char *tname = luaL_checkstring(L, 3);
    luaL_argcheck(L, nlen > 0, 2, "empty name");
    luaL_argcheck(L, strlen(name) == nlen, 2, "name contains a NUL byte");
    luaL_argcheck(L, nlen <= 254 || (nlen == 255 && name[254] == '.'), 2, "name longer than 253 characters");
    uint16_t qtype = 0;
    for (int i = 0; query_types[i]; i++)
        if (strcasecmp(query_types[i], tname) == 0) qtype = mx_dns_type_from_name(query_types[i]);
    if (!qtype)
        return luaL_argerror(L, 3, lua_pushfstring(L, "unknown type '%s' (expected " QUERY_TYPES_TEXT ")", tname));
    int want_ad = 0;
    if (!lua_isnoneornil(L, 4)) {
        const char *fl = luaL_checkstring(L, 4);
        if (strcmp(fl, "ad") != 0) return luaL_argerror(L, 4, lua_pushfstring(L, "unknown flags '%s' (expected \"ad\")", fl));
        want_ad = 1;
    }
    if (!r->open) return luaL_error(L, "query: the resolver is closed");

    sweep(L, r, 1);
    query *q = lua_newuserdatauv(L, sizeof *q, 1);
    memset(q, 0, sizeof *q);
    q->state = Q_CLOSED; /* until sent */
    luaL_setmetatable(L, QUERY_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1); /* the query keeps its resolver alive */
    memcpy(q->name, name, nlen + 1);
    q->qtype = qtype;
    q->max_records = r->max_records;
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3); /* in flight: held by the resolver */
    lua_pop(L, 1);

    pending *p = malloc(sizeof *p);
    if (!p) return luaL_error(L, "query: out of memory");
    p->q = q;
    p->r = r;
    q->p = p;
    q->state = Q_PENDING;
    r->pending++;
    /* c-ares may call on_answer before this returns (bad name, no server) */
    if (want_ad) send_with_ad(r, name, qtype, p);
    else ares_query(r->channel, name, 1 /* IN */, qtype, on_answer, p);
    return 1;
}

/* resolver:servers ()  [-1, +1, e]  -> { "127.0.0.1:53", "[::1]:5300", ... } */
static int l_servers(lua_State *L)
{
    resolver *r = check_resolver(L);
    if (!r->open) return luaL_error(L, "servers: the resolver is closed");
    struct ares_addr_port_node *list = NULL;
    int st = ares_get_servers_ports(r->channel, &list);
    if (st != ARES_SUCCESS) return luaL_error(L, "servers: %s", ares_strerror(st));
    lua_newtable(L);
    int i = 0;
    for (struct ares_addr_port_node *n = list; n; n = n->next) {
        char a[INET6_ADDRSTRLEN];
        inet_ntop(n->family, &n->addr, a, sizeof a);
        int port = n->udp_port ? n->udp_port : 53;
        if (n->family == AF_INET6) lua_pushfstring(L, "[%s]:%d", a, port);
        else lua_pushfstring(L, "%s:%d", a, port);
        lua_rawseti(L, -2, ++i);
    }
    ares_free_data(list);
    return 1;
}

/* resolver:pending ()  [-1, +1, e]  -> c-ares queries not finished yet
 * (including those whose query object was dropped) */
static int l_pending(lua_State *L)
{
    resolver *r = check_resolver(L);
    lua_pushinteger(L, r->pending);
    return 1;
}

/* resolver:close ()  [-1, +0, e]  queries in flight end with "cancelled" */
static int l_resolver_close(lua_State *L)
{
    resolver_close(L, check_resolver(L), 1);
    return 0;
}

static int l_resolver_tostring(lua_State *L)
{
    resolver *r = check_resolver(L);
    lua_pushfstring(L, "dns resolver (%s, %d pending)", r->open ? "open" : "closed", r->pending);
    return 1;
}

/* ------------------------------------------------------------------ */
/* query                                                              */

static query *check_query(lua_State *L)
{
    return luaL_checkudata(L, 1, QUERY_MT);
}

/* Detach from c-ares and free what the query owns. */
static void query_release(query *q)
{
    if (q->p) {
        q->p->q = NULL;
        q->p = NULL;
    }
    free(q->abuf);
    q->abuf = NULL;
    q->alen = 0;
    q->state = Q_CLOSED;
}

/* query:done ()  [-1, +1, e]  true once answered, failed or closed */
static int l_done(lua_State *L)
{
    lua_pushboolean(L, check_query(L)->state != Q_PENDING);
    return 1;
}

static int check_token(lua_State *L, int idx)
{
    lua_Integer t = luaL_checkinteger(L, idx);
    luaL_argcheck(L, t > 0 && t < (1 << 24), idx, "task token out of range");
    return (int)t;
}

/* query:set_waiter (token)  [-2, +0, e]
 * Wake task `token` when the query completes (loop.wait calls this after
 * done() said false).  Several tasks may wait on one query. */
static int l_set_waiter(lua_State *L)
{
    query *q = check_query(L);
    int tok = check_token(L, 2);
    if (q->state != Q_PENDING) return 0;
    for (int i = 0; i < q->nwaiters; i++)
        if (q->waiters[i] == tok) return 0;
    if (q->nwaiters == q->capwaiters) {
        if (q->capwaiters >= MAX_WAITERS) return luaL_error(L, "set_waiter: more than %d tasks wait on one query", MAX_WAITERS);
        int cap = q->capwaiters ? q->capwaiters * 2 : 4;
        int *w = realloc(q->waiters, (size_t)cap * sizeof *w);
        if (!w) return luaL_error(L, "set_waiter: out of memory");
        q->waiters = w;
        q->capwaiters = cap;
    }
    q->waiters[q->nwaiters++] = tok;
    return 0;
}

/* query:clear_waiter (token?)  [-1|2, +0, e]
 * Forget one waiting task (after its wait ended by timeout or
 * cancellation, so a later completion does not wake a reused token), or
 * all of them. */
static int l_clear_waiter(lua_State *L)
{
    query *q = check_query(L);
    if (lua_isnoneornil(L, 2)) {
        q->nwaiters = 0;
        return 0;
    }
    int tok = check_token(L, 2);
    for (int i = 0; i < q->nwaiters; i++)
        if (q->waiters[i] == tok) {
            q->waiters[i] = q->waiters[--q->nwaiters];
            break;
        }
    return 0;
}

static void push_hex(lua_State *L, const uint8_t *d, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, 2 * n + 1);
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 0x0F];
    }
    luaL_pushresultsize(&b, 2 * n);
}

#define SET_STR(k, v) (lua_pushstring(L, (v)), lua_setfield(L, -2, (k)))
#define SET_INT(k, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, (k)))
#define SET_BOOL(k, v) (lua_pushboolean(L, (v)), lua_setfield(L, -2, (k)))

/* [-0, +1, e] one record as a table (presentation forms: TXT strings,
 * TLSA data in hex, ...); exported for fuzz/fuzz_dns_present.c */
void mx_dns_push_rr(lua_State *L, const mx_dns_rr *rr)
{
    char tb[16];
    lua_createtable(L, 0, 8);
    SET_STR("name", rr->name);
    SET_STR("type", mx_dns_type_name(rr->type, tb, sizeof tb));
    SET_INT("ttl", rr->ttl);
    if (rr->rclass != 1) SET_INT("class", rr->rclass);
    switch (rr->type) {
    case MX_DNS_T_A:
    case MX_DNS_T_AAAA:
        SET_STR("address", rr->address);
        break;
    case MX_DNS_T_MX:
        SET_INT("preference", rr->preference);
        SET_STR("host", rr->host);
        break;
    case MX_DNS_T_CNAME:
    case MX_DNS_T_DNAME:
        SET_STR("target", rr->host);
        break;
    case MX_DNS_T_PTR:
    case MX_DNS_T_NS:
        SET_STR("host", rr->host);
        break;
    case MX_DNS_T_SOA:
        SET_STR("mname", rr->host);
        SET_STR("rname", rr->host2);
        SET_INT("serial", rr->serial);
        SET_INT("refresh", rr->refresh);
        SET_INT("retry", rr->retry);
        SET_INT("expire", rr->expire);
        SET_INT("minimum", rr->minimum);
        break;
    case MX_DNS_T_TXT: {
        luaL_Buffer b;
        size_t off = 0, n;
        const uint8_t *s;
        lua_createtable(L, (int)rr->nstrings, 0);
        for (int i = 1; mx_dns_txt_next(rr, &off, &s, &n); i++) {
            lua_pushlstring(L, (const char *)s, n);
            lua_rawseti(L, -2, i);
        }
        lua_setfield(L, -2, "strings");
        luaL_buffinit(L, &b);
        off = 0;
        while (mx_dns_txt_next(rr, &off, &s, &n)) luaL_addlstring(&b, (const char *)s, n);
        luaL_pushresult(&b);
        lua_setfield(L, -2, "text");
        break;
    }
    case MX_DNS_T_TLSA:
        SET_INT("usage", rr->usage);
        SET_INT("selector", rr->selector);
        SET_INT("mtype", rr->mtype);
        push_hex(L, rr->rdata + 3, rr->rdlength - 3u);
        lua_setfield(L, -2, "data");
        break;
    default:
        push_hex(L, rr->rdata, rr->rdlength);
        lua_setfield(L, -2, "rdata");
        break;
    }
}

static const char *transport_code(int status)
{
    switch (status) {
    case ARES_ETIMEOUT: return "timeout";
    case ARES_ECONNREFUSED: return "refused";
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION: return "cancelled";
    default: return "dns";
    }
}

/* query:result ()  [-1, +1|3, e]
 * -> { rcode=, aa=, tc=, ad=, rd=, ra=, question = {name=, type=},
 *      answers = {...}, authority = {...}, negative_ttl=?, capped=? }
 *    | nil, "timeout"|"refused"|"cancelled"|"dns", detail
 * Raises while the query is still in flight. */
static int l_result(lua_State *L)
{
    query *q = check_query(L);
    char tb[16], rb[16];
    const char *tn = mx_dns_type_name(q->qtype, tb, sizeof tb);
    if (q->state == Q_PENDING) return luaL_error(L, "result: the query is still in flight (wait for it with loop.wait)");
    if (q->state == Q_CLOSED) return mx_fail(L, "cancelled", "the query %s %s was closed", tn, q->name);
    if (!q->abuf) {
        if (q->status == ARES_EDESTRUCTION)
            return mx_fail(L, "cancelled", "the resolver was closed (%s %s)", tn, q->name);
        if (q->status == ARES_ETIMEOUT)
            return mx_fail(L, "timeout", "%s (%s %s, %d timeouts)", ares_strerror(q->status), tn, q->name,
                           q->timeouts);
        return mx_fail(L, transport_code(q->status), "%s (%s %s)", ares_strerror(q->status), tn, q->name);
    }

    mx_dns_parser ps;
    mx_dns_rr rr;
    if (mx_dns_parse_begin(&ps, q->abuf, (size_t)q->alen, q->max_records) < 0)
        return mx_fail(L, "dns", "malformed answer: %s (%s %s)", ps.error, tn, q->name);
    int base = lua_gettop(L);
    lua_createtable(L, 0, 12);
    SET_STR("rcode", mx_dns_rcode_name(ps.rcode, rb, sizeof rb));
    SET_BOOL("aa", ps.aa);
    SET_BOOL("tc", ps.tc);
    SET_BOOL("ad", ps.ad);
    SET_BOOL("rd", ps.rd);
    SET_BOOL("ra", ps.ra);
    lua_createtable(L, 0, 2);
    SET_STR("name", ps.has_question ? ps.qname : q->name);
    SET_STR("type", ps.has_question ? mx_dns_type_name(ps.qtype, tb, sizeof tb) : tn);
    lua_setfield(L, -2, "question");
    lua_newtable(L); /* base + 2: answers */
    lua_newtable(L); /* base + 3: authority */
    int nan = 0, nns = 0, r;
    long negative_ttl = -1;
    while ((r = mx_dns_parse_next(&ps, &rr)) > 0) {
        mx_dns_push_rr(L, &rr);
        if (rr.section == MX_DNS_SEC_ANSWER) {
            lua_rawseti(L, base + 2, ++nan);
        } else {
            lua_rawseti(L, base + 3, ++nns);
            if (rr.type == MX_DNS_T_SOA && negative_ttl < 0)
                negative_ttl = rr.ttl < rr.minimum ? rr.ttl : rr.minimum; /* RFC 2308 section 5 */
        }
    }
    if (r < 0) {
        lua_settop(L, base);
        return mx_fail(L, "dns", "malformed answer: %s (%s %s)", ps.error, tn, q->name);
    }
    lua_setfield(L, base + 1, "authority");
    lua_setfield(L, base + 1, "answers");
    if (nan == 0 && negative_ttl >= 0) SET_INT("negative_ttl", negative_ttl);
    if (ps.capped) SET_BOOL("capped", 1);
    return 1;
}

/* query:close ()  [-1, +0, e]  give up on the answer; waiters are woken
 * and result() says "cancelled" */
static int l_query_close(lua_State *L)
{
    query *q = check_query(L);
    if (q->state == Q_CLOSED) return 0;
    query_release(q);
    wake_waiters(live_loop(L), q);
    return 0;
}

static int l_query_gc(lua_State *L)
{
    query *q = check_query(L);
    query_release(q);
    q->nwaiters = 0;
    free(q->waiters);
    q->waiters = NULL;
    q->capwaiters = 0;
    return 0;
}

static int l_query_tostring(lua_State *L)
{
    query *q = check_query(L);
    char tb[16];
    lua_pushfstring(L, "dns query %s %s (%s)", mx_dns_type_name(q->qtype, tb, sizeof tb), q->name,
                    q->state == Q_PENDING ? "in flight" : q->state == Q_DONE ? "done" : "closed");
    return 1;
}

/* ------------------------------------------------------------------ */

/* reverse_name (ip)  [-1, +1, e]  raises when ip is not numeric */
static int l_reverse_name(lua_State *L)
{
    const char *ip = luaL_checkstring(L, 1);
    char out[80];
    if (mx_dns_reverse_name(ip, out, sizeof out) < 0)
        return luaL_argerror(L, 1, lua_pushfstring(L, "not an IPv4 or IPv6 address: '%s'", ip));
    lua_pushstring(L, out);
    return 1;
}

static int l_resolver_gc(lua_State *L)
{
    resolver_close(L, check_resolver(L), 1);
    return 0;
}

static const luaL_Reg resolver_methods[] = {
    {"query", l_query},
    {"servers", l_servers},
    {"pending", l_pending},
    {"close", l_resolver_close},
    {NULL, NULL},
};

static const luaL_Reg query_methods[] = {
    {"done", l_done},
    {"set_waiter", l_set_waiter},
    {"clear_waiter", l_clear_waiter},
    {"result", l_result},
    {"close", l_query_close},
    {NULL, NULL},
};

static const luaL_Reg dns_funcs[] = {
    {"resolver", l_resolver},
    {"reverse_name", l_reverse_name},
    {NULL, NULL},
};

static void new_class(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction gc, lua_CFunction close,
                      lua_CFunction tostring)
{
    if (!luaL_newmetatable(L, mt)) {
        lua_pop(L, 1);
        return;
    }
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
}

int mx_open_dns(lua_State *L)
{
    static int ares_ready;
    if (!ares_ready) {
        int st = ares_library_init(ARES_LIB_INIT_ALL);
        if (st != ARES_SUCCESS) return luaL_error(L, "dns: c-ares: %s", ares_strerror(st));
        ares_ready = 1;
    }
    new_class(L, RESOLVER_MT, resolver_methods, l_resolver_gc, l_resolver_close, l_resolver_tostring);
    new_class(L, QUERY_MT, query_methods, l_query_gc, l_query_close, l_query_tostring);
    luaL_newlib(L, dns_funcs);
    lua_newtable(L);
    for (int i = 0; query_types[i]; i++) {
        lua_pushinteger(L, mx_dns_type_from_name(query_types[i]));
        lua_setfield(L, -2, query_types[i]);
    }
    lua_setfield(L, -2, "types");
    return 1;
}
