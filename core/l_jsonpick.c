/*
 * l_jsonpick.c - core.jsonpick: decode only the parts of a JSON text that a
 * reader asked for, for `mxprobe report` over large audits.
 *
 *   local jp = require("mxprobe.core").jsonpick
 *   local p = jp.compile { domain = true, servers = { host = true, facts = { connect = true } } }
 *   local r = p:pick(text, i, j, cjson.null)  --> the value of text:sub(i, j) | nil
 *
 * A spec maps a key to true (keep its value whole) or to a spec (keep only
 * those keys of an object; over an array, of each object in it); the key
 * "*" stands for any key the spec does not name.  Every
 * other member is validated and skipped without making a Lua value, which
 * is where the time goes: a 14 kB audit record makes some 400 Lua values
 * when decoded whole (cjson), and the report needs a few dozen.
 *
 * The contract with the caller: whatever pick returns is exactly what
 * cjson.decode (lua-cjson 2.1, its defaults) returns for the same text,
 * with the members outside the spec left out: numbers are floats (cjson's
 * strtod), null is the caller's sentinel, a key seen twice keeps its last
 * value.  pick accepts strict RFC 8259 JSON only (no raw control
 * characters in strings, no lone surrogates, no NaN or hex, at most
 * MAXDEPTH levels) and returns nil for anything else, so the caller falls
 * back to cjson.decode, which has the last word on what is a record.
 */
#include "bindings.h"

#include <stdlib.h>
#include <string.h>

#define SPEC_MT "mxprobe.jsonpick"
#define MAXDEPTH 64
#define MAXKEYS 256

struct node;
struct key {
    char *name;
    size_t len;
    struct node *sub; /* NULL: the value whole */
};
struct node {
    int n;
    int star; /* the index of the key "*" (any other key), or -1 */
    struct key keys[];
};

static void node_free(struct node *nd)
{
    if (!nd) return;
    for (int i = 0; i < nd->n; i++) {
        free(nd->keys[i].name);
        node_free(nd->keys[i].sub);
    }
    free(nd);
}

/* The spec table at idx as a node; raises on a bad spec (after freeing what
 * was built: *out holds it until then). */
static struct node *node_build(lua_State *L, int idx, int depth, struct node **out)
{
    if (depth > MAXDEPTH) luaL_error(L, "jsonpick: spec nested too deep");
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        n++;
        lua_pop(L, 1);
    }
    if (n > MAXKEYS) luaL_error(L, "jsonpick: more than %d keys in one spec table", MAXKEYS);
    struct node *nd = calloc(1, sizeof *nd + (size_t)n * sizeof(struct key));
    if (!nd) luaL_error(L, "jsonpick: out of memory");
    *out = nd;
    nd->star = -1;
    luaL_checkstack(L, 4, "jsonpick spec");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "jsonpick: a spec key is not a string");
        size_t len;
        const char *k = lua_tolstring(L, -2, &len);
        struct key *key = &nd->keys[nd->n];
        key->name = malloc(len ? len : 1);
        if (!key->name) luaL_error(L, "jsonpick: out of memory");
        memcpy(key->name, k, len);
        key->len = len;
        if (len == 1 && k[0] == '*') nd->star = nd->n;
        nd->n++;
        if (lua_type(L, -1) == LUA_TTABLE) {
            node_build(L, lua_absindex(L, -1), depth + 1, &key->sub);
        } else if (lua_toboolean(L, -1) != 1 || lua_type(L, -1) != LUA_TBOOLEAN) {
            luaL_error(L, "jsonpick: spec value of '%s' is neither true nor a table", k);
        }
        lua_pop(L, 1);
    }
    return nd;
}

/* compile(spec) -> picker  [-1, +1, e] */
static int l_compile(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    struct node **ud = lua_newuserdatauv(L, sizeof *ud, 0);
    *ud = NULL;
    luaL_setmetatable(L, SPEC_MT);
    /* built into the userdata's slot, so __gc frees a half-built spec */
    node_build(L, 1, 0, ud);
    return 1;
}

static int l_gc(lua_State *L)
{
    struct node **ud = luaL_checkudata(L, 1, SPEC_MT);
    node_free(*ud);
    *ud = NULL;
    return 0;
}

/* ------------------------------------------------------------- the parser */

typedef struct {
    lua_State *L;
    const unsigned char *s, *end;
    int null_idx;
    int depth;
} P;

/* 1: a byte that ends the plain run of a string ('"', '\\', controls) */
static unsigned char special[256];

static void ws(P *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++;
}

static int hex4(const unsigned char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        v = v * 16 + d;
    }
    *out = v;
    return 1;
}

/* One escape at p->s (after the backslash); its UTF-8 into out (up to 4
 * bytes).  @return the number of bytes, 0 if it is not valid */
static int escape(P *p, char *out)
{
    if (p->s >= p->end) return 0;
    unsigned char c = *p->s++;
    switch (c) {
    case '"': case '\\': case '/': out[0] = (char)c; return 1;
    case 'b': out[0] = '\b'; return 1;
    case 'f': out[0] = '\f'; return 1;
    case 'n': out[0] = '\n'; return 1;
    case 'r': out[0] = '\r'; return 1;
    case 't': out[0] = '\t'; return 1;
    case 'u': break;
    default: return 0;
    }
    unsigned cp;
    if (p->end - p->s < 4 || !hex4(p->s, &cp)) return 0;
    p->s += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return 0; /* a lone low surrogate */
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned lo;
        if (p->end - p->s < 6 || p->s[0] != '\\' || p->s[1] != 'u' || !hex4(p->s + 2, &lo)) return 0;
        if (lo < 0xDC00 || lo > 0xDFFF) return 0;
        p->s += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string at p->s (its opening quote).  push: leave it on the stack.
 * *plain, *plen: set when it had no escape (the bytes in the text). */
static int string(P *p, int push, const char **plain, size_t *plen)
{
    const unsigned char *start = ++p->s;
    while (p->s < p->end && !special[*p->s]) p->s++;
    if (p->s >= p->end) return 0;
    if (*p->s == '"') {
        if (plain) { *plain = (const char *)start; *plen = (size_t)(p->s - start); }
        if (push) lua_pushlstring(p->L, (const char *)start, (size_t)(p->s - start));
        p->s++;
        return 1;
    }
    if (*p->s < 0x20) return 0;
    /* an escape: the slow way, through a buffer when pushing */
    if (plain) *plain = NULL;
    luaL_Buffer b;
    if (push) {
        luaL_buffinit(p->L, &b);
        luaL_addlstring(&b, (const char *)start, (size_t)(p->s - start));
    }
    for (;;) {
        if (p->s >= p->end) return 0;
        unsigned char c = *p->s;
        if (c == '"') break;
        if (c < 0x20) return 0;
        if (c == '\\') {
            char out[4];
            p->s++;
            int n = escape(p, out);
            if (!n) return 0;
            if (push) luaL_addlstring(&b, out, (size_t)n);
            continue;
        }
        const unsigned char *run = p->s;
        while (p->s < p->end && !special[*p->s]) p->s++;
        if (push) luaL_addlstring(&b, (const char *)run, (size_t)(p->s - run));
    }
    p->s++;
    if (push) luaL_pushresult(&b);
    return 1;
}

static int number(P *p, int push)
{
    const unsigned char *start = p->s, *s = p->s, *e = p->end;
    if (s < e && *s == '-') s++;
    if (s >= e) return 0;
    if (*s == '0') s++;
    else if (*s >= '1' && *s <= '9') while (s < e && *s >= '0' && *s <= '9') s++;
    else return 0;
    if (s < e && *s == '.') {
        s++;
        if (s >= e || *s < '0' || *s > '9') return 0;
        while (s < e && *s >= '0' && *s <= '9') s++;
    }
    if (s < e && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < e && (*s == '+' || *s == '-')) s++;
        if (s >= e || *s < '0' || *s > '9') return 0;
        while (s < e && *s >= '0' && *s <= '9') s++;
    }
    p->s = s;
    if (push) {
        char buf[64];
        size_t n = (size_t)(s - start);
        if (n >= sizeof buf) return 0; /* leave it to cjson */
        memcpy(buf, start, n);
        buf[n] = 0;
        lua_pushnumber(p->L, strtod(buf, NULL)); /* cjson: always a float */
    }
    return 1;
}

static int literal(P *p, const char *word, size_t n)
{
    if ((size_t)(p->end - p->s) < n || memcmp(p->s, word, n) != 0) return 0;
    p->s += n;
    return 1;
}

static int lookup(const struct node *nd, const char *k, size_t len)
{
    for (int i = 0; i < nd->n; i++)
        if (nd->keys[i].len == len && memcmp(nd->keys[i].name, k, len) == 0) return i;
    return nd->star;
}

/* The value at p->s.  push: leave it on the stack (spec NULL: whole; else
 * only the spec's members of an object, or of each object of an array). */
static int value(P *p, int push, const struct node *spec);

static int object(P *p, int push, const struct node *spec)
{
    lua_State *L = p->L;
    p->s++; /* { */
    if (push) lua_createtable(L, 0, spec ? spec->n : 4); /* sized once: no rehash per key */
    ws(p);
    if (p->s < p->end && *p->s == '}') { p->s++; return 1; }
    for (;;) {
        if (p->s >= p->end || *p->s != '"') return 0;
        const char *k;
        size_t klen;
        const struct node *sub = NULL;
        int keep = push;
        if (push && spec) {
            const unsigned char *kstart = p->s;
            int pushed = 0;
            if (!string(p, 0, &k, &klen)) return 0;
            if (!k) { /* a key with escapes: decoded, then compared */
                p->s = kstart;
                if (!string(p, 1, NULL, NULL)) return 0;
                k = lua_tolstring(L, -1, &klen);
                pushed = 1;
            }
            int ix = lookup(spec, k, klen);
            if (ix < 0) {
                keep = 0;
                if (pushed) lua_pop(L, 1);
            } else {
                sub = spec->keys[ix].sub;
                if (!pushed) lua_pushlstring(L, k, klen);
            }
        } else if (push) {
            if (!string(p, 1, NULL, NULL)) return 0;
        } else {
            if (!string(p, 0, NULL, NULL)) return 0;
        }
        ws(p);
        if (p->s >= p->end || *p->s != ':') return 0;
        p->s++;
        ws(p);
        if (!value(p, keep, sub)) return 0;
        if (keep) lua_rawset(L, -3);
        ws(p);
        if (p->s >= p->end) return 0;
        if (*p->s == ',') { p->s++; ws(p); continue; }
        if (*p->s == '}') { p->s++; return 1; }
        return 0;
    }
}

static int array(P *p, int push, const struct node *spec)
{
    p->s++; /* [ */
    if (push) lua_newtable(p->L);
    ws(p);
    if (p->s < p->end && *p->s == ']') { p->s++; return 1; }
    for (lua_Integer i = 1;; i++) {
        if (!value(p, push, spec)) return 0;
        if (push) lua_rawseti(p->L, -2, i);
        ws(p);
        if (p->s >= p->end) return 0;
        if (*p->s == ',') { p->s++; ws(p); continue; }
        if (*p->s == ']') { p->s++; return 1; }
        return 0;
    }
}

static int value(P *p, int push, const struct node *spec)
{
    if (p->s >= p->end) return 0;
    switch (*p->s) {
    case '"': return string(p, push, NULL, NULL);
    case '{': case '[': {
        if (++p->depth > MAXDEPTH) return 0;
        if (push && !lua_checkstack(p->L, 4)) return 0;
        int ok = *p->s == '{' ? object(p, push, spec) : array(p, push, spec);
        p->depth--;
        return ok;
    }
    case 't': if (!literal(p, "true", 4)) return 0; if (push) lua_pushboolean(p->L, 1); return 1;
    case 'f': if (!literal(p, "false", 5)) return 0; if (push) lua_pushboolean(p->L, 0); return 1;
    case 'n': if (!literal(p, "null", 4)) return 0; if (push) lua_pushvalue(p->L, p->null_idx); return 1;
    default: return number(p, push);
    }
}

/* picker:pick(text [, i [, j [, null]]]) -> value | nil  [-4, +1, e]
 * The JSON value that text:sub(i, j) holds (whitespace around it allowed),
 * with the spec's members only; nil when that is not strict JSON. */
static int l_pick(lua_State *L)
{
    struct node **ud = luaL_checkudata(L, 1, SPEC_MT);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    lua_Integer i = luaL_optinteger(L, 3, 1), j = luaL_optinteger(L, 4, (lua_Integer)len);
    if (i < 1) i = 1;
    if (j > (lua_Integer)len) j = (lua_Integer)len;
    lua_settop(L, 5);
    P p = { L, (const unsigned char *)text + i - 1, (const unsigned char *)text + (j > i - 1 ? j : i - 1), 5, 0 };
    ws(&p);
    if (!*ud || !value(&p, 1, *ud)) {
        lua_settop(L, 5);
        lua_pushnil(L);
        return 1;
    }
    ws(&p);
    if (p.s != p.end) {
        lua_pushnil(L);
        return 1;
    }
    return 1;
}

static const luaL_Reg funcs[] = {
    {"compile", l_compile},
    {NULL, NULL},
};

int mx_open_jsonpick(lua_State *L)
{
    special['"'] = special['\\'] = 1;
    for (int c = 0; c < 0x20; c++) special[c] = 1;
    if (luaL_newmetatable(L, SPEC_MT)) {
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
        lua_newtable(L);
        lua_pushcfunction(L, l_pick);
        lua_setfield(L, -2, "pick");
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
