/*
 * bytecode.c - the Lua files precompiled at build time, the sources still
 * the truth.
 *
 * Compiling the ~50 modules, ~25 stock checks, the default policy and
 * argparse took about 60 % of the instructions from process start to the
 * first DNS question (bench/domain; limit 10 ms); loading their bytecode
 * takes a fraction of that.  The build (scripts/compile-lua, run by the
 * mxprobe just built) writes BCDIR/REL.luac for every ROOT/REL.lua (lua/
 * and checks/) and BCDIR/_/ABS.luac for a library module at ABS:
 *
 *   "MXBC1\n" | a 64-bit digest of the source (8 bytes, little endian)
 *   | length of the source (8 bytes, little endian) | lua_dump of it
 *
 * A searcher placed before Lua's own source searcher finds the module's
 * source on package.path as that one would, and loadfile (which the check
 * loader and the policy use) looks beside the file named; either uses the
 * bytecode only when the source it was made from is the source there now
 * (same length, same digest: reading and hashing a source is far cheaper
 * than compiling it).  Anything else (no bytecode, an edited source,
 * another Lua's dump, a file of the user's) is left to Lua's own loaders,
 * so an edit needs no rebuild and a stale file is never run.
 *
 * The dump is made with the chunk name "=?"; the loader writes the
 * source's real "@PATH" in its place (the main function's source is the
 * first string after the header and upvalue count; nested functions
 * inherit it), so tracebacks, error messages and debug.getinfo are the
 * source's own wherever the tree was installed or moved.
 */
#define _GNU_SOURCE
#include "paths.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define MAGIC "MXBC1\n"
#define MAGIC_LEN 6
#define HEAD_LEN (MAGIC_LEN + 16)
/* lua_dump's header in 5.4: signature 4, version 1, format 1, LUAC_DATA 6,
 * three sizes 3, LUAC_INT 8, LUAC_NUM 8; then the upvalue count (1) */
#define DUMP_SOURCE_AT 32

#define BC_DIR_KEY "mxprobe.bytecode.dir"
#define BC_ROOT_KEY "mxprobe.bytecode.root"

/* FNV-1a over 64-bit words (then the tail bytes): a digest to tell an
 * edited source from the one compiled, 8 times cheaper than bytewise */
static uint64_t digest64(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h ^ (uint64_t)n;
}

static void put64(char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (char)(v >> (8 * i));
}

static uint64_t get64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)(unsigned char)p[i] << (8 * i);
    return v;
}

/* the whole file, malloc'ed (NULL when unreadable) */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 16384) {
            char *b = realloc(buf, cap = cap ? cap * 2 : 65536);
            if (!b) { free(buf); fclose(f); return NULL; }
            buf = b;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return NULL; }
    *len = n;
    return buf;
}

/* Lua 5.4's size encoding (ldump.c dumpSize): 7 bits a byte, most
 * significant first, the last byte marked with 0x80 */
static size_t put_size(char *out, size_t x)
{
    char tmp[16];
    int n = 0;
    do { tmp[n++] = (char)(x & 0x7f); x >>= 7; } while (x);
    tmp[0] |= (char)0x80;
    for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return (size_t)n;
}

static int get_size(const char *p, size_t avail, size_t *x, size_t *used)
{
    size_t v = 0;
    for (size_t i = 0; i < avail && i < 10; i++) {
        v = (v << 7) | ((unsigned char)p[i] & 0x7f);
        if ((unsigned char)p[i] & 0x80) { *x = v; *used = i + 1; return 0; }
    }
    return -1;
}

typedef struct { char *p; size_t n, cap; } growbuf;

static int writer(lua_State *L, const void *p, size_t sz, void *ud)
{
    (void)L;
    growbuf *g = ud;
    if (g->cap - g->n < sz) {
        size_t cap = g->cap ? g->cap : 65536;
        while (cap - g->n < sz) cap *= 2;
        char *q = realloc(g->p, cap);
        if (!q) return 1;
        g->p = q;
        g->cap = cap;
    }
    memcpy(g->p + g->n, p, sz);
    g->n += sz;
    return 0;
}

/* paths.compile(source_path, out_path) -> true | nil, why
 * (the build's scripts/compile-lua) */
static int l_compile(lua_State *L)
{
    const char *src = luaL_checkstring(L, 1);
    const char *out = luaL_checkstring(L, 2);
    size_t n;
    char *text = read_all(src, &n);
    if (!text) return luaL_fileresult(L, 0, src);
    if (luaL_loadbufferx(L, text, n, "=?", "t") != LUA_OK) {
        free(text);
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    char head[HEAD_LEN];
    memcpy(head, MAGIC, MAGIC_LEN);
    put64(head + MAGIC_LEN, digest64(text, n));
    put64(head + MAGIC_LEN + 8, (uint64_t)n);
    free(text);
    growbuf g = {NULL, 0, 0};
    if (writer(L, head, HEAD_LEN, &g) != 0 || lua_dump(L, writer, &g, 0) != 0) {
        free(g.p);
        return luaL_error(L, "compile: out of memory");
    }
    FILE *f = fopen(out, "wb");
    if (!f) {
        free(g.p);
        return luaL_fileresult(L, 0, out);
    }
    int ok = fwrite(g.p, 1, g.n, f) == g.n;
    free(g.p);
    ok = (fclose(f) == 0) && ok;
    if (!ok) return luaL_fileresult(L, 0, out);
    lua_pushboolean(L, 1);
    return 1;
}

/* The bytecode of SOURCE when it is current, as a chunk named @SOURCE;
 * pushes the function and returns 0, or pushes nothing and returns -1. */
static int load_current(lua_State *L, const char *source, const char *bc)
{
    size_t blen, slen;
    char *dump = read_all(bc, &blen);
    if (!dump) return -1;
    char *text = NULL;
    char *spliced = NULL;
    int rc = -1;
    if (blen < HEAD_LEN + DUMP_SOURCE_AT + 1 || memcmp(dump, MAGIC, MAGIC_LEN) != 0) goto done;
    text = read_all(source, &slen);
    if (!text) goto done;
    if (get64(dump + MAGIC_LEN + 8) != (uint64_t)slen || get64(dump + MAGIC_LEN) != digest64(text, slen)) goto done;
    const char *d = dump + HEAD_LEN;
    size_t dlen = blen - HEAD_LEN, old, used;
    if (get_size(d + DUMP_SOURCE_AT, dlen - DUMP_SOURCE_AT, &old, &used) != 0) goto done;
    size_t old_len = old ? old - 1 : 0;
    size_t rest = DUMP_SOURCE_AT + used + old_len;
    if (rest > dlen) goto done;
    size_t name_len = strlen(source) + 1; /* "@" + source */
    spliced = malloc(dlen - (rest - DUMP_SOURCE_AT) + name_len + 16);
    if (!spliced) goto done;
    size_t k = 0;
    memcpy(spliced, d, DUMP_SOURCE_AT);
    k = DUMP_SOURCE_AT;
    k += put_size(spliced + k, name_len + 1);
    spliced[k++] = '@';
    memcpy(spliced + k, source, name_len - 1);
    k += name_len - 1;
    memcpy(spliced + k, d + rest, dlen - rest);
    k += dlen - rest;
    lua_pushfstring(L, "@%s", source);
    int st = luaL_loadbufferx(L, spliced, k, lua_tostring(L, -1), "b");
    lua_remove(L, -2);
    if (st == LUA_OK) rc = 0;
    else lua_pop(L, 1); /* another Lua's dump, a damaged file: the source will do */
done:
    free(spliced);
    free(text);
    free(dump);
    return rc;
}

/* [-0, +1, -] the bytecode file of a source: DIR/REL.luac for ROOT/REL.lua,
 * DIR/_/ABS.luac for a source elsewhere (a library module such as
 * argparse); nil for anything else */
static void push_bc_path(lua_State *L, const char *source)
{
    lua_getfield(L, LUA_REGISTRYINDEX, BC_DIR_KEY);
    lua_getfield(L, LUA_REGISTRYINDEX, BC_ROOT_KEY);
    const char *dir = lua_tostring(L, -2), *root = lua_tostring(L, -1);
    size_t n = strlen(source), rl = root ? strlen(root) : 0;
    if (!dir || !root || n < 5 || strcmp(source + n - 4, ".lua") != 0) {
        lua_pop(L, 2);
        lua_pushnil(L);
        return;
    }
    if (strncmp(source, root, rl) == 0 && source[rl] == '/') lua_pushfstring(L, "%s/%sc", dir, source + rl + 1);
    else if (source[0] == '/') lua_pushfstring(L, "%s/_%sc", dir, source);
    else lua_pushnil(L);
    lua_replace(L, -3);
    lua_pop(L, 1);
}

/* [-0, +(0|1), -] the current bytecode of source, or nothing (-1) */
static int load_source_bc(lua_State *L, const char *source)
{
    push_bc_path(L, source);
    const char *bc = lua_tostring(L, -1);
    int rc = bc ? load_current(L, source, bc) : -1;
    if (rc == 0) lua_remove(L, -2);
    else lua_pop(L, 1);
    return rc;
}

/* package.searchers entry: (name) -> loader, source path | nil */
static int searcher(lua_State *L)
{
    luaL_checkstring(L, 1);
    /* the file the source searcher would take: package.searchpath(name, package.path) */
    lua_getglobal(L, "package");
    if (!lua_istable(L, -1)) return 0;
    lua_getfield(L, -1, "searchpath");
    lua_getfield(L, -2, "path");
    if (!lua_isfunction(L, -2) || !lua_isstring(L, -1)) return 0;
    lua_pushvalue(L, 1);
    lua_insert(L, -2);
    lua_call(L, 2, 1);
    const char *source = lua_tostring(L, -1);
    if (!source || load_source_bc(L, source) != 0) return 0;
    lua_insert(L, -2); /* loader, then the source path: the loader's second argument, as Lua's searcher gives */
    return 2;
}

/* loadfile(path [, mode [, env]]) over the stock one (upvalue 1): a
 * check or policy file under ROOT comes from its current bytecode.  Mode
 * "t" is still honoured in meaning: it refuses binary *files*, and what
 * runs here is the compiled form of the text file named, checked against
 * it byte for byte (length and digest). */
static int l_loadfile(lua_State *L)
{
    const char *path = lua_tostring(L, 1);
    int top = lua_gettop(L);
    if (path && lua_type(L, 1) == LUA_TSTRING && load_source_bc(L, path) == 0) {
        if (top >= 3) {
            lua_pushvalue(L, 3);
            if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
        }
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, top, LUA_MULTRET);
    return lua_gettop(L);
}

/* paths.bytecode_current(path) -> true when path's bytecode would be
 * used (it exists and was made from the source there now): the specs ask,
 * since a chunk from bytecode looks like one compiled from the source */
static int l_bytecode_current(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int ok = load_source_bc(L, path) == 0;
    if (ok) lua_pop(L, 1);
    lua_pushboolean(L, ok);
    return 1;
}

int mx_setup_bytecode(lua_State *L, const char *dir, const char *root)
{
    /* paths.compile for the build, wherever the bytecode is read from */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_getfield(L, -1, "mxprobe.runtime.paths");
    if (lua_istable(L, -1)) {
        lua_pushcfunction(L, l_compile);
        lua_setfield(L, -2, "compile");
        lua_pushcfunction(L, l_bytecode_current);
        lua_setfield(L, -2, "bytecode_current");
        if (dir) {
            lua_pushstring(L, dir);
            lua_setfield(L, -2, "bytecode");
        }
    }
    lua_pop(L, 2);
    if (!dir) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushstring(L, dir);
    lua_setfield(L, LUA_REGISTRYINDEX, BC_DIR_KEY);
    lua_pushstring(L, root);
    lua_setfield(L, LUA_REGISTRYINDEX, BC_ROOT_KEY);
    lua_getglobal(L, "loadfile");
    lua_pushcclosure(L, l_loadfile, 1);
    lua_setglobal(L, "loadfile");
    /* searchers: preload, then ours, then Lua's source searcher, ... */
    lua_getfield(L, -1, "searchers");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 2);
        return 0;
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = n; i >= 2; i--) {
        lua_rawgeti(L, -1, i);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushcfunction(L, searcher);
    lua_rawseti(L, -2, 2);
    lua_pop(L, 2);
    return 0;
}
