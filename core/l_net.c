/*
 * l_net.c - core.net: raw non-blocking TCP (GUIDE section 2).
 *
 * A socket is a full userdata holding a struct mx_sock (sock.h) with
 * metatable MX_SOCK_MT.  Every call does one non-blocking step and returns
 * a value, nil, "again", "r"|"w"|"rw" (wait with loop.wait and call again)
 * or nil, code, detail.  lua/mxprobe/socket.lua is the wrapper that waits.
 *
 * All reads and writes go through s->io_read / s->io_write and received
 * bytes land in s->in, so that l_tls.c can swap in TLS after STARTTLS and
 * every reader here (fill, read_line, read_bytes, smtp.read_reply) keeps
 * working unchanged.
 *
 * The userdata has one user value slot (index 1), free for the TLS binding
 * to anchor Lua objects the connection needs (its SSL_CTX userdata).
 *
 * Codes: refused, unreachable, reset, timeout, closed, limit, in_use, error.
 */
#define _GNU_SOURCE
#include "bindings.h"
#include "sock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <netinet/tcp.h>
#include <unistd.h>

#define MX_FILL_LIMIT (-3) /* mx_sock_fill: the input buffer is at its cap */
#define DEFAULT_LINE_MAX 4096
#define DEFAULT_INPUT_MAX (64 * 1024)

/* ---- errno -> stable code -------------------------------------------- */

static const char *errno_code(int e)
{
    switch (e) {
    case ECONNREFUSED: return "refused";
    case ENETUNREACH: case EHOSTUNREACH: case EADDRNOTAVAIL: case ENETDOWN:
    case EHOSTDOWN: case EAFNOSUPPORT: case EPERM: case EACCES: case ENONET:
        return "unreachable";
    case ECONNRESET: case EPIPE: case ECONNABORTED: case ENOTCONN: return "reset";
    case ETIMEDOUT: return "timeout";
    case EMFILE: case ENFILE: case ENOBUFS: case ENOMEM: return "limit";
    case EADDRINUSE: return "in_use";
    default: return "error";
    }
}

static void set_err(mx_sock *s, const char *what, int e)
{
    s->err_code = errno_code(e);
    snprintf(s->err, sizeof s->err, "%s: %s", what, strerror(e));
}

void mx_sockaddr_str(const struct sockaddr_storage *ss, char *ip, size_t iplen, int *port)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, (socklen_t)iplen);
        *port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, (socklen_t)iplen);
        *port = ntohs(a->sin6_port);
    } else {
        if (iplen) ip[0] = '\0';
        *port = 0;
    }
}

/* "1.2.3.4:25" or "[::1]:25", for details */
static void addr_label(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN];
    int port;
    mx_sockaddr_str(ss, ip, sizeof ip, &port);
    snprintf(out, outlen, ss->ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
}

/* ---- plain io (TLS replaces these) ----------------------------------- */

static long plain_read(mx_sock *s, void *p, size_t n, unsigned *want)
{
    for (;;) {
        ssize_t r = recv(s->fd, p, n, 0);
        if (r >= 0) return (long)r;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *want = MX_READ;
            return MX_IO_AGAIN;
        }
        set_err(s, "recv", errno);
        return MX_IO_ERROR;
    }
}

static long plain_write(mx_sock *s, const void *p, size_t n, unsigned *want)
{
    for (;;) {
        ssize_t r = send(s->fd, p, n, MSG_NOSIGNAL);
        if (r >= 0) return (long)r;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *want = MX_WRITE;
            return MX_IO_AGAIN;
        }
        set_err(s, "send", errno);
        return MX_IO_ERROR;
    }
}

/*
 * After every read: acknowledge what came at once (TCP_QUICKACK, which the
 * kernel turns off again by itself, hence each time).  A server that
 * writes a reply in two pieces with Nagle on (Postfix after STARTTLS: the
 * TLS 1.3 session tickets, then the EHLO reply) holds the second piece
 * until the first is acknowledged, and a client in delayed-ACK mode waits
 * up to 40 ms to do so: bench/domain's two-MX domain spent 40 of its
 * 50 ms per server there.
 */
static long read_acked(mx_sock *s, void *p, size_t n, unsigned *want)
{
    long r = s->io_read(s, p, n, want);
    if (r != MX_IO_ERROR && s->fd >= 0) {
        int one = 1;
        setsockopt(s->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    }
    return r;
}

long mx_sock_fill(mx_sock *s, unsigned *want)
{
    if (s->fd < 0) {
        s->err_code = "closed";
        snprintf(s->err, sizeof s->err, "the socket is closed");
        return MX_IO_ERROR;
    }
    size_t room = mx_buf_room(&s->in);
    if (room == 0) return MX_FILL_LIMIT;
    /* With room at the buffer's tail, read straight into it.  Otherwise read
     * into the stack and keep only what came: an idle connection that got
     * a 40-byte greeting then holds a 512-byte buffer, not 16 KiB. */
    size_t tail_free = s->in.data ? s->in.cap - (s->in.start + s->in.len) : 0;
    if (tail_free >= 2048) {
        size_t n = tail_free < room ? tail_free : room;
        char *p = mx_buf_reserve(&s->in, n);
        long r = p ? read_acked(s, p, n, want) : MX_IO_ERROR;
        if (!p) {
            s->err_code = "limit";
            snprintf(s->err, sizeof s->err, "out of memory for the input buffer");
        }
        if (r > 0) {
            mx_buf_commit(&s->in, (size_t)r);
            s->bytes_in += (size_t)r;
        }
        return r;
    }
    char tmp[16384];
    size_t n = room < sizeof tmp ? room : sizeof tmp;
    long r = read_acked(s, tmp, n, want);
    if (r > 0) {
        if (mx_buf_append(&s->in, tmp, (size_t)r) < 0) {
            s->err_code = "limit";
            snprintf(s->err, sizeof s->err, "out of memory for the input buffer");
            return MX_IO_ERROR;
        }
        s->bytes_in += (size_t)r;
    }
    return r;
}

/* Give back a large buffer once it is empty (after a 64 KiB reply, say). */
static void trim(mx_sock *s)
{
    if (s->in.len == 0 && s->in.cap > 16384) mx_buf_free(&s->in);
}

/* ---- the userdata ---------------------------------------------------- */

mx_sock *mx_sock_check(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, MX_SOCK_MT);
}

/* [-0, +0, v] argument 1 as a socket; the error names fname even when the
 * method is called through pcall or a local alias */
static mx_sock *self(lua_State *L, const char *fname)
{
    mx_sock *s = luaL_testudata(L, 1, MX_SOCK_MT);
    if (!s) luaL_error(L, "bad argument #1 to '%s' (mxprobe.sock expected, got %s)", fname, luaL_typename(L, 1));
    return s;
}

/* [-0, +0, v] an integer argument in [min, max] (optional when def is in
 * range); errors name fname and the argument as the caller counts it */
static lua_Integer int_arg(lua_State *L, int idx, int shown, lua_Integer def, lua_Integer min, lua_Integer max,
                           const char *fname, const char *what)
{
    if (def >= min && lua_isnoneornil(L, idx)) return def;
    if (!lua_isinteger(L, idx))
        luaL_error(L, "bad argument #%d to '%s' (%s: integer expected, got %s)", shown, fname, what,
                   lua_isnumber(L, idx) ? "a fraction" : luaL_typename(L, idx));
    lua_Integer v = lua_tointeger(L, idx);
    if (v < min || v > max)
        luaL_error(L, "bad argument #%d to '%s' (%s must be %I..%I)", shown, fname, what, (LUA_INTEGER)min,
                   (LUA_INTEGER)max);
    return v;
}

/* [-0, +1, m] a new socket userdata owning fd.  Callers push it before
 * they open the fd (fd -1, filled in after): creating it may raise (out of
 * memory), and an fd opened first would then leak. */
static mx_sock *push_sock(lua_State *L, int fd, int family, int state)
{
    mx_sock *s = lua_newuserdatauv(L, sizeof *s, 1);
    memset(s, 0, sizeof *s);
    s->fd = -1;
    luaL_setmetatable(L, MX_SOCK_MT);
    s->fd = fd;
    s->family = family;
    s->state = state;
    mx_buf_init(&s->in, DEFAULT_INPUT_MAX);
    s->io_read = plain_read;
    s->io_write = plain_write;
    s->t_created = mx_now();
    return s;
}

/* [-0, +1, m] for harnesses (fuzz/fuzz_tls_client.c): an open socket
 * around fd, a connected, non-blocking stream (a socketpair end), owned by
 * the socket from then on.  The net module must be open (its metatable). */
mx_sock *mx_sock_push_fd(lua_State *L, int fd, int family)
{
    return push_sock(L, fd, family, MX_SOCK_OPEN);
}

/* Release everything; safe to call twice and from __gc at lua_close. */
static void sock_release(lua_State *L, mx_sock *s)
{
    if (s->io_free) {
        s->io_free(s);
        s->io_free = NULL;
    }
    s->tls = NULL;
    if (s->fd >= 0) {
        mx_loop *loop = mx_peek_loop(L);
        if (loop) mx_loop_forget_fd(loop, s->fd);
        close(s->fd);
        s->fd = -1;
    }
    mx_buf_free(&s->in);
    s->state = MX_SOCK_CLOSED;
}

/* An "open" socket for reading/writing, else raises naming fname. */
static mx_sock *check_stream(lua_State *L, const char *fname)
{
    mx_sock *s = self(L, fname);
    if (s->state == MX_SOCK_LISTENING)
        luaL_error(L, "%s: not allowed on a listening socket", fname);
    if (s->state == MX_SOCK_CONNECTING || s->state == MX_SOCK_NEW)
        luaL_error(L, "%s: the socket is not connected yet (wait for connect_result)", fname);
    return s;
}

static int fail_closed(lua_State *L) { return mx_fail(L, "closed", "the socket is closed"); }

static int fail_sock(lua_State *L, mx_sock *s)
{
    return mx_fail(L, s->err_code ? s->err_code : "error", "%s", s->err[0] ? s->err : "i/o error");
}

/* Parse a numeric address argument; raises naming the argument. */
static int check_addr(lua_State *L, const char *fname, int idx, int port_idx, int allow_port0,
                      struct sockaddr_storage *ss, socklen_t *len)
{
    size_t n;
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "bad argument #%d to '%s' (numeric IPv4 or IPv6 address expected, got %s)", idx, fname,
                   luaL_typename(L, idx));
    const char *ip = lua_tolstring(L, idx, &n);
    if (!lua_isinteger(L, port_idx))
        luaL_error(L, "bad argument #%d to '%s' (port number expected, got %s)", port_idx, fname,
                   lua_isnumber(L, port_idx) ? "a fraction" : luaL_typename(L, port_idx));
    lua_Integer port = lua_tointeger(L, port_idx);
    if (port < (allow_port0 ? 0 : 1) || port > 65535)
        luaL_error(L, "bad argument #%d to '%s' (port must be %d..65535, got %d)", port_idx, fname,
                   allow_port0 ? 0 : 1, (int)(port < -1 ? -1 : port > 65536 ? 65536 : port));
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (strlen(ip) == n && inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        return AF_INET;
    }
    if (strlen(ip) == n && inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        return AF_INET6;
    }
    char shown[80];
    snprintf(shown, sizeof shown, "%.60s%s", ip, n > 60 ? "..." : "");
    for (char *c = shown; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) *c = '?';
    return luaL_error(L, "bad argument #%d to '%s' (numeric IPv4 or IPv6 address expected, got '%s')", idx, fname,
                      shown);
}

/* int l_net_connect (lua_State *L)  [-2|3, +1|3, e]
 * net.connect(ip, port [, source]) -> sock (CONNECTING or OPEN) | nil, code, detail.
 * Starts a non-blocking connect; finish it with sock:connect_result().
 * source: a numeric local address to bind first (any port; --source), of
 * the same family as ip, else nil, "source", detail.  A source that is not
 * this machine's is nil, "source", "cannot bind ...". */
static int l_net_connect(lua_State *L)
{
    struct sockaddr_storage ss, src;
    socklen_t len, srclen = 0;
    int family = check_addr(L, "connect", 1, 2, 0, &ss, &len);
    int have_src = !lua_isnoneornil(L, 3);
    if (have_src) {
        lua_settop(L, 3);
        lua_pushinteger(L, 0); /* check_addr wants a port: any */
        int sf = check_addr(L, "connect", 3, 4, 1, &src, &srclen);
        lua_settop(L, 3);
        if (sf != family) {
            return mx_fail(L, "source", "the source address %s is IPv%d and %s is IPv%d", lua_tostring(L, 3),
                           sf == AF_INET ? 4 : 6, lua_tostring(L, 1), family == AF_INET ? 4 : 6);
        }
    }
    mx_get_loop(L); /* exists before any socket, so it is finalized after them */
    char label[INET6_ADDRSTRLEN + 10];
    addr_label(&ss, label, sizeof label);
    mx_sock *s = push_sock(L, -1, family, MX_SOCK_CONNECTING);
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return mx_fail(L, errno_code(errno), "socket for %s: %s", label, strerror(errno));
    s->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->peer = ss;
    if (have_src && bind(fd, (struct sockaddr *)&src, srclen) != 0) {
        int e = errno;
        sock_release(L, s);
        return mx_fail(L, "source", "cannot bind to the source address %s: %s", lua_tostring(L, 3), strerror(e));
    }
    int r;
    do r = connect(fd, (struct sockaddr *)&ss, len);
    while (r < 0 && errno == EINTR);
    if (r == 0) {
        s->state = MX_SOCK_OPEN;
        s->t_connected = mx_now();
        socklen_t ll = sizeof s->local;
        getsockname(fd, (struct sockaddr *)&s->local, &ll);
        return 1;
    }
    if (errno == EINPROGRESS) return 1;
    int e = errno;
    sock_release(L, s);
    return mx_fail(L, errno_code(e), "connect to %s: %s", label, strerror(e));
}

/* int l_sock_connect_result (lua_State *L)  [-1, +1|3, e]
 * sock:connect_result() -> true | nil, "again", "w" | nil, code, detail.
 * Call when the socket is writable (or at any time: it never blocks). */
static int l_sock_connect_result(lua_State *L)
{
    mx_sock *s = self(L, "connect_result");
    if (s->state == MX_SOCK_OPEN) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (s->state == MX_SOCK_CLOSED) return fail_closed(L);
    if (s->state != MX_SOCK_CONNECTING) return luaL_error(L, "connect_result: the socket is not connecting");
    char label[INET6_ADDRSTRLEN + 10];
    addr_label(&s->peer, label, sizeof label);
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0) err = errno;
    if (err == 0) {
        struct sockaddr_storage p;
        socklen_t pl = sizeof p;
        if (getpeername(s->fd, (struct sockaddr *)&p, &pl) < 0) {
            if (errno == ENOTCONN) return mx_again(L, MX_WRITE); /* still in progress */
            err = errno;
        }
    }
    if (err) {
        sock_release(L, s);
        return mx_fail(L, errno_code(err), "connect to %s: %s", label, strerror(err));
    }
    s->state = MX_SOCK_OPEN;
    s->t_connected = mx_now();
    socklen_t ll = sizeof s->local;
    getsockname(s->fd, (struct sockaddr *)&s->local, &ll);
    lua_pushboolean(L, 1);
    return 1;
}

/* int l_net_listen (lua_State *L)  [-3, +1|3, e]
 * net.listen(ip, port, backlog?) -> listening sock | nil, code, detail.
 * For in-loop test servers; port 0 picks an ephemeral port (local_addr). */
static int l_net_listen(lua_State *L)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int family = check_addr(L, "listen", 1, 2, 1, &ss, &len);
    lua_Integer backlog = int_arg(L, 3, 3, 128, 0, 65535, "listen", "backlog");
    mx_get_loop(L);
    char label[INET6_ADDRSTRLEN + 10];
    addr_label(&ss, label, sizeof label);
    mx_sock *s = push_sock(L, -1, family, MX_SOCK_LISTENING);
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return mx_fail(L, errno_code(errno), "socket for %s: %s", label, strerror(errno));
    s->fd = fd;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, (int)backlog) < 0) {
        int e = errno;
        sock_release(L, s);
        return mx_fail(L, errno_code(e), "listen on %s: %s", label, strerror(e));
    }
    socklen_t ll = sizeof s->local;
    getsockname(fd, (struct sockaddr *)&s->local, &ll);
    return 1;
}

/* int l_sock_accept (lua_State *L)  [-1, +1|3, e]
 * server:accept() -> sock (OPEN) | nil, "again", "r" | nil, code, detail */
static int l_sock_accept(lua_State *L)
{
    mx_sock *ls = self(L, "accept");
    if (ls->state == MX_SOCK_CLOSED) return fail_closed(L);
    if (ls->state != MX_SOCK_LISTENING) return luaL_error(L, "accept: the socket is not listening");
    struct sockaddr_storage peer;
    mx_sock *s = push_sock(L, -1, ls->family, MX_SOCK_OPEN);
    for (;;) {
        socklen_t pl = sizeof peer;
        int fd = accept4(ls->fd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            s->fd = fd;
            s->peer = peer;
            s->t_connected = s->t_created;
            socklen_t ll = sizeof s->local;
            getsockname(fd, (struct sockaddr *)&s->local, &ll);
            return 1;
        }
        int e = errno;
        if (e == EINTR || e == ECONNABORTED) continue;
        if (e == EAGAIN || e == EWOULDBLOCK) return mx_again(L, MX_READ);
        return mx_fail(L, errno_code(e), "accept: %s", strerror(e));
    }
}

/* int l_sock_send (lua_State *L)  [-3, +1|3, e]
 * sock:send(data, i?) -> bytes sent from data[i..] (may be partial)
 *                      | nil, "again", events | nil, code, detail */
static int l_sock_send(lua_State *L)
{
    mx_sock *s = check_stream(L, "send");
    size_t len;
    if (lua_type(L, 2) != LUA_TSTRING)
        luaL_error(L, "bad argument #1 to 'send' (string expected, got %s)", luaL_typename(L, 2));
    const char *data = lua_tolstring(L, 2, &len);
    lua_Integer i = int_arg(L, 3, 2, 1, 1, LUA_MAXINTEGER, "send", "start index");
    if (s->state == MX_SOCK_CLOSED || s->fd < 0) return fail_closed(L);
    if ((size_t)(i - 1) >= len) {
        lua_pushinteger(L, 0);
        return 1;
    }
    unsigned want = 0;
    long r = s->io_write(s, data + (i - 1), len - (size_t)(i - 1), &want);
    if (r >= 0) {
        s->bytes_out += (size_t)r;
        lua_pushinteger(L, r);
        return 1;
    }
    if (r == MX_IO_AGAIN) return mx_again(L, want ? want : MX_WRITE);
    return fail_sock(L, s);
}

/* Push the outcome of a failed/short mx_sock_fill; returns 3. */
static int push_fill_result(lua_State *L, mx_sock *s, long r, unsigned want)
{
    if (r == 0) return mx_fail(L, "closed", "connection closed by the peer");
    if (r == MX_IO_AGAIN) return mx_again(L, want ? want : MX_READ);
    if (r == MX_FILL_LIMIT) return mx_fail(L, "limit", "input buffer full (%zu bytes)", s->in.max);
    return fail_sock(L, s);
}

/* int l_sock_fill (lua_State *L)  [-1, +1|3, e]
 * sock:fill() -> bytes read into the buffer | nil, "closed" (EOF)
 *              | nil, "again", events | nil, "limit", detail | nil, code, detail */
static int l_sock_fill(lua_State *L)
{
    mx_sock *s = check_stream(L, "fill");
    if (s->fd < 0) return fail_closed(L);
    unsigned want = 0;
    long r = mx_sock_fill(s, &want);
    if (r > 0) {
        lua_pushinteger(L, r);
        return 1;
    }
    return push_fill_result(L, s, r, want);
}

/* [-0, +3, -] the peer closed: nil, "closed", and the bytes that were
 * buffered but did not make a whole line (or count), consumed */
static int push_closed_partial(lua_State *L, mx_sock *s)
{
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    lua_pushlstring(L, mx_buf_head(&s->in), s->in.len);
    mx_buf_consume(&s->in, s->in.len);
    return 3;
}

/* int l_sock_read_line (lua_State *L)  [-2, +1|3, e]
 * sock:read_line(maxlen?) -> the next line without its LF or CRLF (consumed)
 *   | nil, "again", events | nil, "limit", detail (no LF within maxlen bytes)
 *   | nil, "closed", partial (EOF; the partial line is consumed and returned)
 *   | nil, code, detail.  maxlen counts the terminator too (default 4096). */
static int l_sock_read_line(lua_State *L)
{
    mx_sock *s = check_stream(L, "read_line");
    lua_Integer maxlen = int_arg(L, 2, 1, DEFAULT_LINE_MAX, 1, 1 << 30, "read_line", "maxlen");
    for (;;) {
        long lf = mx_buf_find(&s->in, '\n');
        if (lf >= 0 && lf < maxlen) {
            size_t n = (size_t)lf;
            const char *h = mx_buf_head(&s->in);
            lua_pushlstring(L, h, n > 0 && h[n - 1] == '\r' ? n - 1 : n);
            mx_buf_consume(&s->in, n + 1);
            trim(s);
            return 1;
        }
        if (lf >= 0 || s->in.len >= (size_t)maxlen)
            return mx_fail(L, "limit", "no end of line within %lld bytes", (long long)maxlen);
        if (s->fd < 0) return fail_closed(L);
        unsigned want = 0;
        long r = mx_sock_fill(s, &want);
        if (r > 0) continue;
        if (r == 0) return push_closed_partial(L, s);
        return push_fill_result(L, s, r, want);
    }
}

/* int l_sock_read_bytes (lua_State *L)  [-2, +1|3, e]
 * sock:read_bytes(n) -> exactly n bytes (consumed) | nil, "again", events
 *   | nil, "closed", partial | nil, "limit", detail | nil, code, detail */
static int l_sock_read_bytes(lua_State *L)
{
    mx_sock *s = check_stream(L, "read_bytes");
    lua_Integer want_n = int_arg(L, 2, 1, -1, 0, 1 << 30, "read_bytes", "byte count");
    if ((size_t)want_n > s->in.max)
        return mx_fail(L, "limit", "%lld bytes exceed the input buffer cap (%zu bytes)",
                       (long long)want_n, s->in.max);
    for (;;) {
        if (s->in.len >= (size_t)want_n) {
            lua_pushlstring(L, mx_buf_head(&s->in), (size_t)want_n);
            mx_buf_consume(&s->in, (size_t)want_n);
            trim(s);
            return 1;
        }
        if (s->fd < 0) return fail_closed(L);
        unsigned want = 0;
        long r = mx_sock_fill(s, &want);
        if (r > 0) continue;
        if (r == 0) return push_closed_partial(L, s);
        return push_fill_result(L, s, r, want);
    }
}

/* int l_sock_buffered (lua_State *L)  [-1, +1, e]  bytes held, not consumed */
static int l_sock_buffered(lua_State *L)
{
    mx_sock *s = self(L, "buffered");
    lua_pushinteger(L, (lua_Integer)s->in.len);
    return 1;
}

/* int l_sock_take_buffered (lua_State *L)  [-1, +1, e]
 * -> the buffered bytes (a string, maybe empty); the buffer is emptied.
 * Used after STARTTLS's 220: anything here was injected before TLS. */
static int l_sock_take_buffered(lua_State *L)
{
    mx_sock *s = self(L, "take_buffered");
    lua_pushlstring(L, s->in.len ? mx_buf_head(&s->in) : "", s->in.len);
    mx_buf_consume(&s->in, s->in.len);
    trim(s);
    return 1;
}

/* int l_sock_set_limit (lua_State *L)  [-2, +0, e]  input buffer cap in bytes */
static int l_sock_set_limit(lua_State *L)
{
    mx_sock *s = self(L, "set_limit");
    lua_Integer n = int_arg(L, 2, 1, -1, 1, 1 << 30, "set_limit", "limit");
    s->in.max = (size_t)n;
    return 0;
}

/* int l_sock_getfd (lua_State *L)  [-1, +1, e]  fd, or nil once closed */
static int l_sock_getfd(lua_State *L)
{
    mx_sock *s = self(L, "getfd");
    if (s->fd < 0) lua_pushnil(L);
    else lua_pushinteger(L, s->fd);
    return 1;
}

static int push_addr(lua_State *L, const struct sockaddr_storage *ss)
{
    if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6) {
        lua_pushnil(L);
        return 1;
    }
    char ip[INET6_ADDRSTRLEN];
    int port;
    mx_sockaddr_str(ss, ip, sizeof ip, &port);
    lua_pushstring(L, ip);
    lua_pushinteger(L, port);
    return 2;
}

/* int l_sock_peer (lua_State *L)  [-1, +2|1, e]  ip, port (nil if none) */
static int l_sock_peer(lua_State *L) { return push_addr(L, &self(L, "peer")->peer); }

/* int l_sock_local_addr (lua_State *L)  [-1, +2|1, e]  ip, port */
static int l_sock_local_addr(lua_State *L) { return push_addr(L, &self(L, "local_addr")->local); }

/* int l_sock_timings (lua_State *L)  [-1, +4, e]
 * -> created, connected (nil while connecting), bytes_in, bytes_out */
static int l_sock_timings(lua_State *L)
{
    mx_sock *s = self(L, "timings");
    lua_pushnumber(L, s->t_created);
    if (s->t_connected > 0) lua_pushnumber(L, s->t_connected);
    else lua_pushnil(L);
    lua_pushinteger(L, (lua_Integer)s->bytes_in);
    lua_pushinteger(L, (lua_Integer)s->bytes_out);
    return 4;
}

/* int l_sock_state (lua_State *L)  [-1, +1, e]  "connecting" | "open" | ... */
static int l_sock_state(lua_State *L)
{
    static const char *const names[] = {"new", "connecting", "open", "listening", "closed"};
    mx_sock *s = self(L, "state");
    lua_pushstring(L, s->state >= 0 && s->state <= MX_SOCK_CLOSED ? names[s->state] : "?");
    return 1;
}

/* int l_sock_close (lua_State *L)  [-1, +1, e]  -> true; closing twice is fine.
 * Also __gc and __close. */
static int l_sock_close(lua_State *L)
{
    sock_release(L, self(L, "close"));
    lua_pushboolean(L, 1);
    return 1;
}

/* int l_sock_abort (lua_State *L)  [-1, +1, e]  close with an RST (SO_LINGER 0),
 * for test servers that simulate a peer reset; -> true */
static int l_sock_abort(lua_State *L)
{
    mx_sock *s = self(L, "abort");
    if (s->fd >= 0) {
        struct linger lg = {1, 0};
        setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    sock_release(L, s);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_sock_tostring(lua_State *L)
{
    mx_sock *s = self(L, "__tostring");
    char label[INET6_ADDRSTRLEN + 10];
    addr_label(s->state == MX_SOCK_LISTENING ? &s->local : &s->peer, label, sizeof label);
    lua_pushfstring(L, "mxprobe.sock %s (fd %d%s)", label, s->fd, s->tls ? ", tls" : "");
    return 1;
}

static const luaL_Reg sock_methods[] = {
    {"connect_result", l_sock_connect_result},
    {"accept", l_sock_accept},
    {"send", l_sock_send},
    {"fill", l_sock_fill},
    {"read_line", l_sock_read_line},
    {"read_bytes", l_sock_read_bytes},
    {"buffered", l_sock_buffered},
    {"take_buffered", l_sock_take_buffered},
    {"set_limit", l_sock_set_limit},
    {"getfd", l_sock_getfd},
    {"peer", l_sock_peer},
    {"local_addr", l_sock_local_addr},
    {"timings", l_sock_timings},
    {"state", l_sock_state},
    {"close", l_sock_close},
    {"abort", l_sock_abort},
    {NULL, NULL},
};

static const luaL_Reg net_funcs[] = {
    {"connect", l_net_connect},
    {"listen", l_net_listen},
    {NULL, NULL},
};

int mx_open_net(lua_State *L)
{
    if (luaL_newmetatable(L, MX_SOCK_MT)) {
        luaL_newlib(L, sock_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_sock_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_sock_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_sock_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    luaL_newlib(L, net_funcs);
    return 1;
}
