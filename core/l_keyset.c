/*
 * l_keyset.c - core.keyset: a set of strings, each with a small tag,
 * outside the Lua heap.
 *
 *   local s = core.keyset.new()
 *   s:add(key, tag)    -- tag: an integer 0..255; a key added again takes the new tag
 *   s:get(key)         --> tag | nil
 *   s:count()          --> number of keys
 *   s:bytes()          --> bytes held (slots and key bytes)
 *
 * Why: an audit remembers every input name of its shard (duplicates, and
 * the names an earlier output has for --resume) until it ends.  As a Lua
 * table that is about 90 bytes a name of live heap, and the collector lets
 * the heap grow to a multiple of what is live (its pause): a million
 * names made half a gigabyte of the audit's peak RSS (issue 15, bench/audit
 * at 1,000,000 domains).  Here a name costs its bytes, 4 bytes of header
 * and an 8-byte slot at a load of at most 0.7, and the collector does not
 * scan it.  Keys are whole byte strings (any bytes, embedded zeros too):
 * two keys are the same only when their bytes are, so exactly-once does
 * not rest on a hash.  The hash (FNV-1a 64 over the bytes, seeded per
 * set from its address and the clock) only places a key.
 */
#include "bindings.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEYSET_MT "mxprobe.keyset"
#define MAX_KEY_LEN (1u << 24) /* a key's length fits the 3 length bytes of its record */

/* a slot: the high half of the key's hash and 1 + the offset of its
 * record in the arena (0: empty); 8 bytes, so the arena is at most 4 GiB */
typedef struct {
    uint32_t hash;
    uint32_t ref;
} slot;
#define ARENA_MAX 0xfffffff0u

/* the arena holds records: 3 bytes of length (little-endian), 1 tag byte,
 * the key's bytes */
typedef struct {
    slot *slots;
    size_t nslots, count; /* nslots: a power of two, or 0 */
    unsigned char *arena;
    size_t used, cap;
    uint64_t seed;
} keyset;

static uint32_t hash_of(const keyset *s, const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ull ^ s->seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ull;
    }
    /* a final mix: FNV's low bits are weak, and the slot index is the low bits */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (uint32_t)(h >> 32);
}

static size_t rec_len(const unsigned char *r) { return (size_t)r[0] | (size_t)r[1] << 8 | (size_t)r[2] << 16; }

/* the slot of key (empty if it is absent) */
static slot *find(const keyset *s, const char *k, size_t n, uint32_t h)
{
    size_t mask = s->nslots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        slot *sl = &s->slots[i];
        if (!sl->ref) return sl;
        if (sl->hash == h) {
            const unsigned char *r = s->arena + (sl->ref - 1);
            if (rec_len(r) == n && memcmp(r + 4, k, n) == 0) return sl;
        }
    }
}

static int grow_slots(lua_State *L, keyset *s)
{
    size_t n = s->nslots ? s->nslots * 2 : 1024;
    slot *fresh = calloc(n, sizeof *fresh);
    if (!fresh) return luaL_error(L, "keyset: out of memory (%d slots)", (int)n);
    for (size_t i = 0; i < s->nslots; i++) {
        if (!s->slots[i].ref) continue;
        size_t j = (size_t)s->slots[i].hash & (n - 1);
        while (fresh[j].ref) j = (j + 1) & (n - 1);
        fresh[j] = s->slots[i];
    }
    free(s->slots);
    s->slots = fresh;
    s->nslots = n;
    return 0;
}

static keyset *check_set(lua_State *L) { return luaL_checkudata(L, 1, KEYSET_MT); }

static int l_new(lua_State *L)
{
    keyset *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    s->seed = (uint64_t)(uintptr_t)s ^ (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull;
    luaL_setmetatable(L, KEYSET_MT);
    return 1;
}

static int l_add(lua_State *L)
{
    keyset *s = check_set(L);
    size_t n;
    const char *k = luaL_checklstring(L, 2, &n);
    lua_Integer tag = luaL_checkinteger(L, 3);
    luaL_argcheck(L, tag >= 0 && tag <= 255, 3, "a tag from 0 to 255 expected");
    luaL_argcheck(L, n < MAX_KEY_LEN, 2, "a key shorter than 16 MiB expected");
    if ((s->count + 1) * 10 > s->nslots * 7) grow_slots(L, s);
    uint32_t h = hash_of(s, k, n);
    slot *sl = find(s, k, n, h);
    if (sl->ref) { /* there already: the new tag */
        s->arena[sl->ref - 1 + 3] = (unsigned char)tag;
        return 0;
    }
    size_t need = 4 + n;
    if (need > ARENA_MAX - s->used) return luaL_error(L, "keyset: more than 4 GiB of keys");
    if (s->cap - s->used < need) {
        /* by half again: the last growth of a big set wastes less */
        size_t cap = s->cap ? s->cap : 65536;
        while (cap - s->used < need) cap += cap / 2;
        if (cap > ARENA_MAX) cap = ARENA_MAX;
        unsigned char *a = realloc(s->arena, cap);
        if (!a) return luaL_error(L, "keyset: out of memory (%d bytes of keys)", (int)cap);
        s->arena = a;
        s->cap = cap;
    }
    unsigned char *r = s->arena + s->used;
    r[0] = (unsigned char)n;
    r[1] = (unsigned char)(n >> 8);
    r[2] = (unsigned char)(n >> 16);
    r[3] = (unsigned char)tag;
    memcpy(r + 4, k, n);
    sl->hash = h;
    sl->ref = (uint32_t)(s->used + 1);
    s->used += need;
    s->count++;
    return 0;
}

static int l_get(lua_State *L)
{
    keyset *s = check_set(L);
    size_t n;
    const char *k = luaL_checklstring(L, 2, &n);
    slot *sl = s->count ? find(s, k, n, hash_of(s, k, n)) : NULL;
    if (!sl || !sl->ref) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, s->arena[sl->ref - 1 + 3]);
    return 1;
}

static int l_count(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check_set(L)->count);
    return 1;
}

static int l_bytes(lua_State *L)
{
    keyset *s = check_set(L);
    lua_pushinteger(L, (lua_Integer)(s->nslots * sizeof(slot) + s->cap));
    return 1;
}

static int l_gc(lua_State *L)
{
    keyset *s = check_set(L);
    free(s->slots);
    free(s->arena);
    s->slots = NULL;
    s->arena = NULL;
    s->nslots = s->count = s->used = s->cap = 0;
    return 0;
}

static int l_tostring(lua_State *L)
{
    lua_pushfstring(L, "mxprobe.keyset (%d keys)", (int)check_set(L)->count);
    return 1;
}

static const luaL_Reg keyset_methods[] = {
    {"add", l_add}, {"get", l_get}, {"count", l_count}, {"bytes", l_bytes}, {NULL, NULL},
};

int mx_open_keyset(lua_State *L)
{
    if (luaL_newmetatable(L, KEYSET_MT)) {
        luaL_newlib(L, keyset_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushcfunction(L, l_new);
    lua_setfield(L, -2, "new");
    return 1;
}
