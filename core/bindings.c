/*
 * bindings.c - the one list of Lua tables the core provides, and helpers
 * every binding uses.  (Model: knot-resolver daemon/bindings/impl.c.)
 */
#include "bindings.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    lua_CFunction open;
} modules[] = {
    {"loop", mx_open_loop}, {"net", mx_open_net},   {"smtp", mx_open_smtp},
    {"dns", mx_open_dns},   {"tls", mx_open_tls},   {"x509", mx_open_x509},
    {"idn", mx_open_idn},   {"term", mx_open_term},   {"digest", mx_open_digest},   {"http", mx_open_http},
    {"fs", mx_open_fs},     {"libs", mx_open_libs}, {"jsonpick", mx_open_jsonpick},
    {"json", mx_open_json}, {"copy", mx_open_copy}, {"keyset", mx_open_keyset},
    {"watchdog", mx_open_watchdog},
};

int luaopen_mxprobe_core(lua_State *L)
{
    lua_newtable(L);
    for (size_t i = 0; i < sizeof modules / sizeof modules[0]; i++) {
        lua_pushcfunction(L, modules[i].open);
        lua_call(L, 0, 1);
        lua_setfield(L, -2, modules[i].name);
    }
    lua_pushstring(L, MXPROBE_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}

#define LOOP_KEY "mxprobe.loop"        /* registry: the loop userdata */
#define LOOP_MT "mxprobe.loop_handle"  /* registry: its metatable (a key of its own, or
                                          the userdata would replace it and __gc fail) */

static int loop_gc(lua_State *L)
{
    mx_loop **lp = luaL_checkudata(L, 1, LOOP_MT);
    mx_loop_free(*lp);
    *lp = NULL;
    return 0;
}

mx_loop *mx_get_loop(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, LOOP_KEY) == LUA_TUSERDATA) {
        mx_loop *l = *(mx_loop **)lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (!l) luaL_error(L, "mxprobe: the event loop is already closed");
        return l;
    }
    lua_pop(L, 1);
    mx_loop **lp = lua_newuserdatauv(L, sizeof *lp, 0);
    *lp = NULL;
    if (luaL_newmetatable(L, LOOP_MT)) {
        lua_pushcfunction(L, loop_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    *lp = mx_loop_new();
    if (!*lp) luaL_error(L, "mxprobe: cannot create the event loop (epoll_create1 failed)");
    lua_setfield(L, LUA_REGISTRYINDEX, LOOP_KEY);
    return *lp;
}

mx_loop *mx_peek_loop(lua_State *L)
{
    mx_loop *l = NULL;
    if (lua_getfield(L, LUA_REGISTRYINDEX, LOOP_KEY) == LUA_TUSERDATA)
        l = *(mx_loop **)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return l;
}

int mx_fail(lua_State *L, const char *code, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    lua_pushnil(L);
    lua_pushstring(L, code);
    lua_pushstring(L, buf);
    return 3;
}

int mx_again(lua_State *L, unsigned want)
{
    lua_pushnil(L);
    lua_pushliteral(L, "again");
    lua_pushstring(L, (want & MX_READ) && (want & MX_WRITE) ? "rw" : (want & MX_WRITE) ? "w" : "r");
    return 3;
}

unsigned mx_check_events(lua_State *L, int idx)
{
    const char *s = luaL_checkstring(L, idx);
    unsigned ev = 0;
    for (; *s; s++) {
        if (*s == 'r') ev |= MX_READ;
        else if (*s == 'w') ev |= MX_WRITE;
        else luaL_argerror(L, idx, "events must be \"r\", \"w\" or \"rw\"");
    }
    if (!ev) luaL_argerror(L, idx, "events must be \"r\", \"w\" or \"rw\"");
    return ev;
}
