/*
 * l_json.c - core.json: the walk of report/json.lua's encoder, in C.
 *
 *   core.json.encode(value, key, ctx [, suffix]) -> string | false
 *     ctx = { array_mt =, object_mt =, frozen_mt =, array_keys =,
 *             frozen_cache =, frozen_once = }   (report/json.lua's own)
 *
 * Why: an audit encodes one record per domain (10-30 KB), and the Lua walk
 * (keys collected and sorted, arrays told from objects, strings checked)
 * was most of the CPU of a domain whose servers are shared (issue 15).
 * The bytes are those of the Lua encoder, which stays the reference
 * (tests/spec/json_c_spec.lua compares them): sorted keys, [] for an
 * empty table under a key of ARRAY_KEYS, the marker metatables, frozen
 * tables encoded once from their second use, NaN/inf as null, integers
 * whole, other floats as lua-cjson writes them (%.14g), invalid UTF-8
 * bytes as the text \xNN, cjson's escapes.
 *
 * What the Lua encoder does through metamethods or with keys that are
 * neither all strings nor exactly 1..n (a table with another metatable,
 * number or boolean keys in an object) is left to it: the answer is
 * false, and report/json.lua encodes the whole value itself.  Records
 * from the engine have none of those.
 */
#include "bindings.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

/* the upvalue-free state of one encode call; the buffer is a userdata so
 * that an error (a cycle, too deep) cannot leak it */
typedef struct jbuf {
    char *p;
    size_t n, cap;
} jbuf;

typedef struct jctx {
    lua_State *L;
    jbuf *b;
    int array_mt, object_mt, frozen_mt, array_keys, cache, once; /* stack indexes */
    int fallback;
    /* the tables being encoded, from the root to here: a cycle can only
     * close on this path, and it is at most MAX_DEPTH + 1 long (a C array
     * instead of a Lua table of seen tables: one hash insert and delete
     * fewer per table, issue 15) */
    const void *path[MAX_DEPTH + 2];
    int npath;
} jctx;

static int jbuf_gc(lua_State *L)
{
    jbuf *b = lua_touserdata(L, 1);
    free(b->p);
    b->p = NULL;
    return 0;
}

/* room for n more bytes (the slow path of put and putc1) */
static void grow(jctx *c, size_t n)
{
    jbuf *b = c->b;
    size_t cap = b->cap ? b->cap : 16384;
    while (cap - b->n < n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        lua_pushliteral(c->L, "json: out of memory");
        lua_error(c->L);
    }
    b->p = p;
    b->cap = cap;
}

static inline void put(jctx *c, const char *s, size_t n)
{
    jbuf *b = c->b;
    if (b->cap - b->n < n) grow(c, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static inline void putc1(jctx *c, char ch)
{
    jbuf *b = c->b;
    if (b->cap == b->n) grow(c, 1);
    b->p[b->n++] = ch;
}

/* Lua 5.4's strict UTF-8 decoding (lutf8lib.c utf8_decode): the end of
 * the sequence at s, or NULL when it is not one; s is NUL-terminated */
static const unsigned char *utf8_next(const unsigned char *s)
{
    static const unsigned long limits[] = {~0UL, 0x80, 0x800, 0x10000u, 0x200000u, 0x4000000u};
    unsigned int ch = s[0];
    unsigned long res = 0;
    if (ch < 0x80) return s + 1;
    int count = 0;
    for (; ch & 0x40; ch <<= 1) {
        unsigned int cc = s[++count];
        if ((cc & 0xC0) != 0x80) return NULL;
        res = (res << 6) | (cc & 0x3F);
    }
    res |= ((unsigned long)(ch & 0x7F) << (count * 5));
    if (count > 5 || res > 0x7FFFFFFFu || res < limits[count]) return NULL;
    if (res > 0x10FFFFu || (0xD800u <= res && res <= 0xDFFFu)) return NULL;
    return s + count + 1;
}

/* [%z\1-\31"\\/\127-\255]: a byte the fast path cannot copy as it is */
static const unsigned char SPECIAL[256] = {
    [0 ... 31] = 1, ['"'] = 1, ['\\'] = 1, ['/'] = 1, [127 ... 255] = 1,
};
static inline int special(unsigned char ch) { return SPECIAL[ch]; }

/* one byte as lua-cjson escapes it (strbuf_append_string's table) */
static void put_escaped_byte(jctx *c, unsigned char ch)
{
    switch (ch) {
    case '"': put(c, "\\\"", 2); return;
    case '\\': put(c, "\\\\", 2); return;
    case '/': put(c, "\\/", 2); return;
    case '\b': put(c, "\\b", 2); return;
    case '\t': put(c, "\\t", 2); return;
    case '\n': put(c, "\\n", 2); return;
    case '\f': put(c, "\\f", 2); return;
    case '\r': put(c, "\\r", 2); return;
    default: break;
    }
    if (ch < 32 || ch == 127) {
        char u[8];
        snprintf(u, sizeof u, "\\u%04x", ch);
        put(c, u, 6);
        return;
    }
    putc1(c, (char)ch);
}

static void put_string(jctx *c, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n && !special(u[i])) i++;
    if (i == n) { /* the common case: one copy between the quotes */
        jbuf *b = c->b;
        if (b->cap - b->n < n + 2) grow(c, n + 2);
        char *o = b->p + b->n;
        o[0] = '"';
        memcpy(o + 1, s, n);
        o[n + 1] = '"';
        b->n += n + 2;
        return;
    }
    putc1(c, '"');
    /* valid UTF-8 as a whole? (utf8.len) then escape; else every byte that
     * starts no valid sequence becomes the text \xNN first (M.valid_utf8) */
    int valid = 1;
    for (const unsigned char *p = u, *end = u + n; p < end;) {
        const unsigned char *q = utf8_next(p);
        if (!q || q > end) { valid = 0; break; }
        p = q;
    }
    const unsigned char *end = u + n;
    for (const unsigned char *p = u; p < end;) {
        if (*p < 0x80) {
            put_escaped_byte(c, *p++);
            continue;
        }
        const unsigned char *q = utf8_next(p);
        if (valid || (q && q <= end)) {
            put(c, (const char *)p, (size_t)(q - p));
            p = q;
        } else {
            char x[8];
            snprintf(x, sizeof x, "\\\\x%02X", *p); /* the text \xNN, its backslash escaped */
            put(c, x, 5);
            p++;
        }
    }
    putc1(c, '"');
}

static void put_number(jctx *c, int idx)
{
    lua_State *L = c->L;
    char tmp[64];
    int k;
    if (lua_isinteger(L, idx)) {
        k = snprintf(tmp, sizeof tmp, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
    } else {
        lua_Number x = lua_tonumber(L, idx);
        if (isnan(x) || isinf(x)) {
            put(c, "null", 4);
            return;
        }
        if (x == floor(x) && fabs(x) < 9007199254740992.0) {
            k = snprintf(tmp, sizeof tmp, LUA_INTEGER_FMT, (LUAI_UACINT)(lua_Integer)x);
        } else {
            k = snprintf(tmp, sizeof tmp, "%.14g", (double)x);
        }
    }
    put(c, tmp, (size_t)k);
}

static void encode_value(jctx *c, int idx, const char *key, size_t keylen, int depth);

typedef struct kref {
    const char *s;
    size_t n;
    int v; /* the stack index of its value */
} kref;

static inline int kcmp(const kref *x, const kref *y)
{
    /* most keys differ in their first byte */
    if (x->n && y->n && x->s[0] != y->s[0]) return (unsigned char)x->s[0] - (unsigned char)y->s[0];
    size_t m = x->n < y->n ? x->n : y->n;
    int r = memcmp(x->s, y->s, m);
    if (r) return r;
    return x->n < y->n ? -1 : x->n > y->n;
}

/* the table at idx (absolute); inner: a frozen table being encoded for
 * its cache */
static void encode_table(jctx *c, int idx, const char *key, size_t keylen, int depth, int inner)
{
    lua_State *L = c->L;
    if (c->fallback) return;
    int mtk = 0; /* 0 none, 1 array_mt, 2 object_mt, 3 frozen_mt */
    if (lua_getmetatable(L, idx)) {
        if (lua_rawequal(L, -1, c->array_mt)) mtk = 1;
        else if (lua_rawequal(L, -1, c->object_mt)) mtk = 2;
        else if (lua_rawequal(L, -1, c->frozen_mt)) mtk = 3;
        lua_pop(L, 1);
        if (!mtk) { /* __index, __pairs, __len...: the Lua encoder's job */
            c->fallback = 1;
            return;
        }
    }
    if (mtk == 3 && !inner) {
        lua_pushvalue(L, idx);
        if (lua_rawget(L, c->cache) == LUA_TSTRING) {
            size_t n;
            const char *s = lua_tolstring(L, -1, &n);
            put(c, s, n);
            lua_pop(L, 1);
            return;
        }
        lua_pop(L, 1);
        size_t start = c->b->n;
        encode_table(c, idx, key, keylen, depth, 1);
        if (c->fallback) return;
        lua_pushnil(L);
        if (!lua_next(L, idx)) return; /* empty: [] or {} by its key, nothing to keep */
        lua_pop(L, 2);
        lua_pushvalue(L, idx);
        if (lua_rawget(L, c->once) == LUA_TNIL) { /* kept only from the second use */
            lua_pop(L, 1);
            lua_pushvalue(L, idx);
            lua_pushboolean(L, 1);
            lua_rawset(L, c->once);
            return;
        }
        lua_pop(L, 1);
        lua_pushvalue(L, idx);
        lua_pushlstring(L, c->b->p + start, c->b->n - start);
        lua_rawset(L, c->cache);
        return;
    }
    const void *tp = lua_topointer(L, idx);
    for (int i = 0; i < c->npath; i++) {
        if (c->path[i] == tp) {
            /* the Lua walk's message, without a position (it raises with level 0) */
            lua_pushfstring(L, "json: a table refers to itself (at key %s)", key ? key : "nil");
            lua_error(L);
        }
    }
    if (depth > MAX_DEPTH) {
        lua_pushfstring(L, "json: nesting deeper than %d", MAX_DEPTH);
        lua_error(L);
    }
    luaL_checkstack(L, 8, "json: nesting");
    c->path[c->npath++] = tp; /* depth <= MAX_DEPTH here: the path has room */

    lua_Integer n = -1; /* the array's length; -1: an object */
    int base = lua_gettop(L);
    if (mtk == 1) {
        n = (lua_Integer)lua_rawlen(L, idx);
    } else {
        /* One walk (issue 15): every key and its value stay on the stack,
         * so an object's values are encoded from there, in key order,
         * without pushing each key again (interning it) and looking it up.
         * An array found this way is encoded by index. */
        size_t nkeys = 0;
        lua_Integer maxk = 0;
        int numeric = 1, strings = 1;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            nkeys++;
            if (lua_type(L, -2) == LUA_TSTRING) numeric = 0;
            else {
                strings = 0;
                if (lua_isinteger(L, -2) && lua_tointeger(L, -2) > 0) {
                    if (lua_tointeger(L, -2) > maxk) maxk = lua_tointeger(L, -2);
                } else numeric = 0;
            }
            luaL_checkstack(L, 3, "json: a table with too many keys");
            lua_pushvalue(L, -2); /* the pair stays; its key's copy goes on */
        }
        if (nkeys == 0) {
            if (key && mtk != 2) {
                lua_pushlstring(L, key, keylen);
                if (lua_rawget(L, c->array_keys) != LUA_TNIL && lua_toboolean(L, -1)) n = 0;
                lua_pop(L, 1);
            }
        } else if (mtk != 2 && numeric && (size_t)maxk == nkeys) {
            n = maxk;
        } else if (!strings) { /* number or boolean keys in an object */
            lua_settop(L, base);
            c->fallback = 1;
            return;
        }
        if (n < 0) { /* an object: its pairs, sorted by key */
            kref small[32];
            kref *keys = small;
            if (nkeys > 32) /* collected with the call's garbage */
                keys = lua_newuserdatauv(L, nkeys * sizeof *keys, 0);
            for (size_t j = 0; j < nkeys; j++) {
                int k = base + 1 + 2 * (int)j;
                keys[j].s = lua_tolstring(L, k, &keys[j].n);
                keys[j].v = k + 1;
            }
            /* insertion sort: an object has a handful of keys, and
             * qsort's merge sort and calls cost more than the compares */
            for (size_t a = 1; a < nkeys; a++) {
                kref x = keys[a];
                size_t b = a;
                while (b > 0 && kcmp(&keys[b - 1], &x) > 0) {
                    keys[b] = keys[b - 1];
                    b--;
                }
                keys[b] = x;
            }
            putc1(c, '{');
            for (size_t j = 0; j < nkeys; j++) {
                if (j > 0) putc1(c, ',');
                put_string(c, keys[j].s, keys[j].n);
                putc1(c, ':');
                encode_value(c, keys[j].v, keys[j].s, keys[j].n, depth + 1);
                if (c->fallback) {
                    lua_settop(L, base);
                    return;
                }
            }
            putc1(c, '}');
            lua_settop(L, base);
            c->npath--;
            return;
        }
        lua_settop(L, base);
    }
    putc1(c, '[');
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1) putc1(c, ',');
        lua_rawgeti(L, idx, i);
        encode_value(c, lua_gettop(L), key, keylen, depth + 1);
        lua_pop(L, 1);
        if (c->fallback) return;
    }
    putc1(c, ']');
    c->npath--;
}

static void encode_value(jctx *c, int idx, const char *key, size_t keylen, int depth)
{
    lua_State *L = c->L;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        put_string(c, s, n);
        return;
    }
    case LUA_TTABLE: encode_table(c, idx, key, keylen, depth, 0); return;
    case LUA_TNUMBER: put_number(c, idx); return;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx)) put(c, "true", 4);
        else put(c, "false", 5);
        return;
    case LUA_TNIL: put(c, "null", 4); return;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) { /* cjson.null */
            put(c, "null", 4);
            return;
        }
        /* fall through */
    default: {
        const char *t = luaL_typename(L, idx); /* function, thread, userdata */
        put_string(c, t, strlen(t));
        return;
    }
    }
}

static int ctx_field(lua_State *L, const char *name, int type)
{
    if (lua_getfield(L, 3, name) != type) luaL_error(L, "json.encode: ctx.%s missing", name);
    return lua_gettop(L);
}

/* encode(value, key, ctx [, suffix]) -> string | false (the Lua encoder's
 * case); suffix (a newline for JSON Lines) is appended in the same string */
static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    size_t keylen = 0;
    const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &keylen) : NULL;
    if (!lua_isnoneornil(L, 2) && !key) {
        lua_pushboolean(L, 0); /* a key that is not a string: as the Lua encoder does it */
        return 1;
    }
    luaL_checktype(L, 3, LUA_TTABLE);
    size_t suffix_len = 0;
    const char *suffix = luaL_optlstring(L, 4, "", &suffix_len);
    lua_settop(L, 4);
    jctx c;
    c.L = L;
    c.fallback = 0;
    c.npath = 0;
    c.array_mt = ctx_field(L, "array_mt", LUA_TTABLE);
    c.object_mt = ctx_field(L, "object_mt", LUA_TTABLE);
    c.frozen_mt = ctx_field(L, "frozen_mt", LUA_TTABLE);
    c.array_keys = ctx_field(L, "array_keys", LUA_TTABLE);
    c.cache = ctx_field(L, "frozen_cache", LUA_TTABLE);
    c.once = ctx_field(L, "frozen_once", LUA_TTABLE);
    c.b = lua_newuserdatauv(L, sizeof(jbuf), 0);
    memset(c.b, 0, sizeof *c.b);
    if (luaL_newmetatable(L, "mxprobe.json.buffer")) {
        lua_pushcfunction(L, jbuf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    encode_value(&c, 1, key, keylen, 0);
    if (c.fallback) {
        lua_pushboolean(L, 0);
        return 1;
    }
    put(&c, suffix, suffix_len);
    lua_pushlstring(L, c.b->p ? c.b->p : "", c.b->n);
    free(c.b->p);
    c.b->p = NULL;
    return 1;
}

static const luaL_Reg json_funcs[] = {
    {"encode", l_encode},
    {NULL, NULL},
};

int mx_open_json(lua_State *L)
{
    luaL_newlib(L, json_funcs);
    /* the NULL light userdata, which is what cjson.null is: report/json.lua
     * recognises it without loading cjson (a run that never needs cjson's
     * escaping does not pay for loading it) */
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}
