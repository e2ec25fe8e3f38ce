/*
 * l_smtp.c - core.smtp: read one SMTP reply from a socket's input buffer,
 * and escape peer bytes for display.
 *
 * read_reply does one non-blocking step like every binding: it parses what
 * is buffered, reads what the socket has, and returns the reply or nil,
 * "again", events.  The parser's progress is kept per socket between calls
 * (a weak table keyed by the socket), so a server dripping one byte per
 * wake-up costs linear time; the saved state is dropped when anyone else
 * consumed from the buffer meanwhile or the limits changed.
 */
#include "bindings.h"
#include "sock.h"
#include "smtp_reply.h"

#include <string.h>

#define PENDING_KEY "mxprobe.smtp.pending"
#define EXCERPT_MAX 120

typedef struct {
    mx_smtp_parser p;
    size_t base; /* stream offset of the buffer head when parsing started */
} pending_t;

/* ---- escaping --------------------------------------------------------- */

/* Length of a valid UTF-8 sequence at s (2..4 bytes) and its code point,
 * or 0 if the bytes are not well-formed UTF-8 (RFC 3629: no overlongs,
 * no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n, unsigned long *cp)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    unsigned long v = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
    for (size_t i = 1; i < len; i++) v = (v << 6) | (s[i] & 0x3F);
    *cp = v;
    return len;
}

/* Code points that are valid but invisible or reorder text on a terminal
 * (C1 controls, zero-width and bidi controls, BOM, line separators). */
static int invisible(unsigned long cp)
{
    return (cp >= 0x80 && cp <= 0x9F) || (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202E) ||
           (cp >= 0x2060 && cp <= 0x206F) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB) ||
           (cp >= 0xE0000 && cp <= 0xE007F);
}

/* [-0, +0, m] append the display form of s[0, n) to b */
static void escape_into(luaL_Buffer *b, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x7f) {
            if (c == '\\') luaL_addstring(b, "\\\\");
            else luaL_addchar(b, (char)c);
            i++;
            continue;
        }
        if (c == '\r') { luaL_addstring(b, "\\r"); i++; continue; }
        if (c == '\n') { luaL_addstring(b, "\\n"); i++; continue; }
        if (c == '\t') { luaL_addstring(b, "\\t"); i++; continue; }
        unsigned long cp;
        size_t len = c >= 0x80 ? utf8_seq(s + i, n - i, &cp) : 0;
        if (len) {
            if (invisible(cp)) {
                char tmp[16];
                int k = 0;
                tmp[k++] = '\\'; tmp[k++] = 'u'; tmp[k++] = '{';
                char digits[8];
                int d = 0;
                do digits[d++] = hex[cp & 0xF], cp >>= 4; while (cp);
                while (d < 4) digits[d++] = '0';
                while (d) tmp[k++] = digits[--d];
                tmp[k++] = '}';
                luaL_addlstring(b, tmp, (size_t)k);
            } else {
                luaL_addlstring(b, (const char *)s + i, len);
            }
            i += len;
            continue;
        }
        char tmp[4] = {'\\', 'x', hex[c >> 4], hex[c & 0xF]};
        luaL_addlstring(b, tmp, 4);
        i++;
    }
}

/* int l_smtp_escape (lua_State *L)  [-1, +1, e]
 * smtp.escape(s) -> s for display: printable ASCII and well-formed UTF-8
 * stay; \ becomes \\; CR LF TAB become \r \n \t; other bytes \xHH;
 * invisible/bidi code points \u{XXXX}. */
static int l_smtp_escape(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_error(L, "bad argument #1 to 'escape' (string expected, got %s)", luaL_typename(L, 1));
    size_t n;
    const char *s = lua_tolstring(L, 1, &n);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    escape_into(&b, s, n);
    luaL_pushresult(&b);
    return 1;
}

/* [-0, +1, m] an escaped excerpt of at most EXCERPT_MAX bytes */
static void push_excerpt(lua_State *L, const char *s, size_t n)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    escape_into(&b, s, n > EXCERPT_MAX ? EXCERPT_MAX : n);
    if (n > EXCERPT_MAX) luaL_addstring(&b, "...");
    luaL_pushresult(&b);
}

/* ---- read_reply ------------------------------------------------------- */

static size_t limit_field(lua_State *L, int t, const char *k, size_t def)
{
    int ty = lua_getfield(L, t, k);
    size_t v = def;
    if (ty != LUA_TNIL) {
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > (1 << 30))
            luaL_error(L, "bad argument #2 to 'read_reply' (limits.%s must be an integer 1..2^30)", k);
        v = (size_t)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* [-0, +0, v] the limits table at idx (nil: defaults); unknown keys raise */
static void check_limits(lua_State *L, int idx, mx_smtp_limits *lim)
{
    lim->max_line = MX_SMTP_DEFAULT_MAX_LINE;
    lim->max_lines = MX_SMTP_DEFAULT_MAX_LINES;
    lim->max_bytes = MX_SMTP_DEFAULT_MAX_BYTES;
    lim->discard_max = 0;
    if (lua_isnoneornil(L, idx)) return;
    if (!lua_istable(L, idx))
        luaL_error(L, "bad argument #2 to 'read_reply' (limits table or nil expected, got %s)", luaL_typename(L, idx));
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (!k || (strcmp(k, "max_line") && strcmp(k, "max_lines") && strcmp(k, "max_bytes") &&
                   strcmp(k, "discard_max")))
            luaL_error(L,
                       "bad argument #2 to 'read_reply' (unknown limit %s; expected max_line, max_lines, max_bytes, "
                       "discard_max)",
                       k ? k : luaL_typename(L, -2));
        lua_pop(L, 1);
    }
    lim->max_line = limit_field(L, idx, "max_line", lim->max_line);
    lim->max_lines = limit_field(L, idx, "max_lines", lim->max_lines);
    lim->max_bytes = limit_field(L, idx, "max_bytes", lim->max_bytes);
    lim->discard_max = limit_field(L, idx, "discard_max", 0);
}

/* [-0, +1, m] the weak table socket -> pending parser */
static void push_pending_table(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, PENDING_KEY) == LUA_TTABLE) return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, PENDING_KEY);
}

/* [-0, +0, m] forget the socket's pending parser (pending table at pt) */
static void drop_pending(lua_State *L, int pt)
{
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    lua_rawset(L, pt);
}

/* [-0, +1, m] the reply table for a complete reply at the buffer head */
static void push_reply(lua_State *L, const char *buf, const mx_smtp_parser *p)
{
    size_t off = 0, tl, first_len = 0;
    const char *t, *first = NULL;
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, p->code);
    lua_setfield(L, -2, "code");
    lua_createtable(L, (int)p->nlines, 0);
    for (int i = 1; mx_smtp_next_line(buf, p->consumed, &off, &t, &tl); i++) {
        if (i == 1) first = t, first_len = tl;
        lua_pushlstring(L, t, tl);
        lua_rawseti(L, -2, i);
    }
    lua_setfield(L, -2, "lines");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    off = 0;
    for (int i = 1; mx_smtp_next_line(buf, p->consumed, &off, &t, &tl); i++) {
        if (i > 1) luaL_addchar(&b, '\n');
        luaL_addlstring(&b, t, tl);
    }
    luaL_pushresult(&b);
    lua_setfield(L, -2, "text");
    char enh[16];
    if (first && mx_smtp_enhanced(first, first_len, p->code, enh)) {
        lua_pushstring(L, enh);
        lua_setfield(L, -2, "enhanced");
    }
    lua_pushlstring(L, buf, p->consumed);
    lua_setfield(L, -2, "raw");
    /* the longest line's real length, before any cut (RFC 5321: 512) */
    lua_pushinteger(L, (lua_Integer)p->longest);
    lua_setfield(L, -2, "longest");
    lua_pushinteger(L, (lua_Integer)p->longest_line);
    lua_setfield(L, -2, "longest_line");
    if (p->cut_total) {
        lua_pushinteger(L, (lua_Integer)p->cut_total);
        lua_setfield(L, -2, "cut_bytes");
        lua_pushinteger(L, (lua_Integer)(p->lim.max_line - 1));
        lua_setfield(L, -2, "cut");
    }
}

/* Remove buf[off, off + n) from the socket's input buffer (an overlong
 * line's tail): what follows moves down; nothing before off changes. */
static void cut_input(mx_buf *b, size_t off, size_t n)
{
    char *at = b->data + b->start + off;
    memmove(at, at + n, b->len - off - n);
    b->len -= n;
}

/* int l_smtp_read_reply (lua_State *L)  [-2, +1|3, e]
 * smtp.read_reply(sock, limits?) -> { code=, lines={...}, text=, enhanced=, raw= }
 *   | nil, "again", events | nil, "closed"|"limit"|"protocol"|code, detail.
 * limits = { max_line=4096, max_lines=100, max_bytes=65536, discard_max=0 }:
 * with discard_max, an overlong line keeps its first max_line - 1 bytes and
 * up to discard_max bytes of overlong tails are dropped; the reply then
 * carries cut (bytes kept), cut_bytes (dropped).  Every reply carries
 * longest (its longest line's real length, LF included) and longest_line.
 * The reply's bytes are consumed from the socket's buffer on success only. */
static int l_smtp_read_reply(lua_State *L)
{
    mx_sock *s = luaL_testudata(L, 1, MX_SOCK_MT);
    if (!s) return luaL_error(L, "bad argument #1 to 'read_reply' (mxprobe.sock expected, got %s)", luaL_typename(L, 1));
    mx_smtp_limits lim;
    check_limits(L, 2, &lim);
    if (s->state == MX_SOCK_LISTENING || s->state == MX_SOCK_CONNECTING || s->state == MX_SOCK_NEW)
        return luaL_error(L, "read_reply: the socket is not connected");
    lua_settop(L, 2);
    push_pending_table(L); /* 3 */
    lua_pushvalue(L, 1);
    lua_rawget(L, 3);
    pending_t *pd = lua_touserdata(L, -1); /* 4: the state or nil */
    size_t base = s->bytes_in - s->in.len;
    if (!pd || pd->base != base || memcmp(&pd->p.lim, &lim, sizeof lim) != 0 || pd->p.state != MX_REPLY_MORE ||
        pd->p.pos + pd->p.scanned > s->in.len) {
        lua_pop(L, 1);
        pd = lua_newuserdatauv(L, sizeof *pd, 0);
        mx_smtp_parser_init(&pd->p, &lim);
        pd->base = base;
        lua_pushvalue(L, 1);
        lua_pushvalue(L, -2);
        lua_rawset(L, 3);
    }
    for (;;) {
        const char *head = s->in.len ? mx_buf_head(&s->in) : "";
        int r = mx_smtp_parse(&pd->p, head, s->in.len);
        if (r == MX_REPLY_CUT) {
            cut_input(&s->in, pd->p.cut_off, pd->p.cut_len);
            pd->base += pd->p.cut_len; /* keeps bytes_in - len equal to base */
            continue;
        }
        if (r == MX_REPLY_DONE) {
            drop_pending(L, 3);
            push_reply(L, head, &pd->p);
            mx_buf_consume(&s->in, pd->p.consumed);
            if (!s->in.len && s->in.cap > 16384) mx_buf_free(&s->in); /* give back a big buffer */
            return 1;
        }
        if (r == MX_REPLY_ERROR) {
            drop_pending(L, 3);
            int e = pd->p.err;
            const char *code = e == MX_REPLY_MALFORMED || e == MX_REPLY_CODE_MISMATCH ? "protocol" : "limit";
            size_t lstart = pd->p.pos, lend = s->in.len;
            const char *nl = lend > lstart ? memchr(head + lstart, '\n', lend - lstart) : NULL;
            if (nl) lend = (size_t)(nl - head);
            push_excerpt(L, head + lstart, lend - lstart);
            const char *what = mx_smtp_strerror(e);
            if (e == MX_REPLY_LINE_TOO_LONG && lim.discard_max)
                return mx_fail(L, code, "%s (over %zu bytes, more than %zu bytes discarded) at line %zu: %s", what,
                               lim.max_line, lim.discard_max, pd->p.nlines + 1, lua_tostring(L, -1));
            if (e == MX_REPLY_LINE_TOO_LONG)
                return mx_fail(L, code, "%s (over %zu bytes) at line %zu: %s", what, lim.max_line,
                               pd->p.nlines + 1, lua_tostring(L, -1));
            if (e == MX_REPLY_TOO_MANY_LINES)
                return mx_fail(L, code, "%s (over %zu lines)", what, lim.max_lines);
            if (e == MX_REPLY_TOO_MANY_BYTES)
                return mx_fail(L, code, "%s (over %zu bytes)", what, lim.max_bytes);
            return mx_fail(L, code, "%s at line %zu: %s", what, pd->p.nlines + 1, lua_tostring(L, -1));
        }
        if (s->fd < 0) {
            drop_pending(L, 3);
            return mx_fail(L, "closed", "the socket is closed");
        }
        unsigned want = 0;
        long n = mx_sock_fill(s, &want);
        if (n > 0) continue;
        if (n == MX_IO_AGAIN) return mx_again(L, want ? want : MX_READ);
        drop_pending(L, 3);
        if (n == 0) {
            if (!s->in.len) return mx_fail(L, "closed", "connection closed by the server before a reply");
            push_excerpt(L, mx_buf_head(&s->in), s->in.len);
            return mx_fail(L, "closed", "connection closed in the middle of a reply (%zu bytes: %s)", s->in.len,
                           lua_tostring(L, -1));
        }
        if (n == -3)
            return mx_fail(L, "limit", "input buffer full (%zu bytes) before the reply ended", s->in.max);
        return mx_fail(L, s->err_code ? s->err_code : "error", "%s", s->err[0] ? s->err : "i/o error");
    }
}

static const luaL_Reg smtp_funcs[] = {
    {"read_reply", l_smtp_read_reply},
    {"escape", l_smtp_escape},
    {NULL, NULL},
};

int mx_open_smtp(lua_State *L)
{
    luaL_newlib(L, smtp_funcs);
    lua_pushinteger(L, MX_SMTP_DEFAULT_MAX_LINE);
    lua_setfield(L, -2, "MAX_LINE");
    lua_pushinteger(L, MX_SMTP_DEFAULT_MAX_LINES);
    lua_setfield(L, -2, "MAX_LINES");
    lua_pushinteger(L, MX_SMTP_DEFAULT_MAX_BYTES);
    lua_setfield(L, -2, "MAX_BYTES");
    return 1;
}
