/*
 * l_copy.c - core.copy: engine/init.lua's deep copy of a shared probe's
 * findings, in C.
 *
 *   core.copy.deep(value) -> a copy | nothing (the Lua copy's case)
 *   core.copy.without(t, key) -> a copy of t (one level) without key
 *   core.copy.rows(list)  -> a copy of list and of each table in it, one
 *                            level: their values are the same values
 *
 * Why: with sharing on, every domain that uses a server gets its own copy
 * of the probe's findings (its rules may re-judge them), and the Lua copy
 * was the largest part of the Lua work of such a domain (issue 15).  The
 * copy is the Lua one's: every table value copied, keys as they are, each
 * table's metatable set on its copy.  A metatable that the Lua copy would
 * see differently (__metatable, __pairs) and tables nested deeper than
 * MAX_DEPTH are left to it: the answer is then no value at all.
 */
#include "bindings.h"

#define MAX_DEPTH 100

/* [-0, +1, -] the copy of the value at idx; 0 when the Lua copy must do it */
static int copy(lua_State *L, int idx, int depth)
{
    if (lua_type(L, idx) != LUA_TTABLE) {
        lua_pushvalue(L, idx);
        return 1;
    }
    if (depth > MAX_DEPTH) return 0;
    luaL_checkstack(L, 6, "copy: nesting");
    int has_mt = lua_getmetatable(L, idx);
    if (has_mt) {
        int odd = lua_getfield(L, -1, "__metatable") != LUA_TNIL;
        lua_pop(L, 1);
        odd = odd || lua_getfield(L, -1, "__pairs") != LUA_TNIL;
        lua_pop(L, 1);
        if (odd) {
            lua_pop(L, 1);
            return 0;
        }
        lua_pop(L, 1);
    }
    /* sized once (issue 15): a finding has six keys, its evidence up to
     * ten, and a table grown key by key is rehashed at 1, 2, 4 and 8 */
    int narr = (int)lua_rawlen(L, idx), total = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        total++;
    }
    lua_createtable(L, narr, total > narr ? total - narr : 0);
    int out = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int v = lua_gettop(L);
        if (!copy(L, v, depth + 1)) {
            lua_settop(L, out - 1);
            return 0;
        }
        lua_pushvalue(L, v - 1); /* the key */
        lua_insert(L, -2);
        lua_rawset(L, out);
        lua_pop(L, 1); /* the value; the key stays for lua_next */
    }
    if (has_mt) {
        lua_getmetatable(L, idx);
        lua_setmetatable(L, out);
    }
    return 1;
}

/* rows(list): the engine's copy of a shared probe's findings since each
 * finding's evidence is shared, frozen (issue 15): the list and each
 * finding are new tables, the values in them the same; metatables kept */
static int l_rows(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, 1, i) == LUA_TTABLE) {
            int row = lua_gettop(L), total = 0;
            lua_pushnil(L);
            while (lua_next(L, row)) {
                lua_pop(L, 1);
                total++;
            }
            lua_createtable(L, 0, total);
            lua_pushnil(L);
            while (lua_next(L, row)) {
                lua_pushvalue(L, -2);
                lua_insert(L, -2);
                lua_rawset(L, row + 1);
            }
            if (lua_getmetatable(L, row)) lua_setmetatable(L, row + 1);
            lua_remove(L, row);
        }
        lua_rawseti(L, 2, i);
    }
    if (lua_getmetatable(L, 1)) lua_setmetatable(L, 2);
    return 1;
}

/* without(t, key): a new table with t's keys and values but key, made at
 * its final size (audit.compact's record without the transcripts: growing
 * a copy key by key rehashed it four times, for every server of every
 * record; issue 15).  No metatable, as a table constructor's copy. */
static int l_without(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    int arr = 0, hash = 0;
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 && lua_tointeger(L, -1) <= n) arr++;
        else hash++;
    }
    lua_createtable(L, arr, hash);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        if (lua_rawequal(L, -2, 2)) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, 3);
    }
    return 1;
}

static int l_deep(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    return copy(L, 1, 0) ? 1 : 0;
}

static const luaL_Reg copy_funcs[] = {
    {"deep", l_deep},
    {"rows", l_rows},
    {"without", l_without},
    {NULL, NULL},
};

int mx_open_copy(lua_State *L)
{
    luaL_newlib(L, copy_funcs);
    return 1;
}
