/*
 * main.c - the mxprobe executable: a Lua 5.4 host.
 *
 * It only prepares a Lua state (standard libraries, the search path for
 * lua/ and checks/, the core module) and hands argv to lua/mxprobe/main.lua
 * as one table { argv[1], ..., n = argc - 1 },
 * which decides between the command line and running a script.  Everything
 * a user may want to change lives on the Lua side.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "bindings.h"
#include "paths.h"

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a peer closing must be an error code, not death */

    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "mxprobe: cannot create a Lua state (out of memory)\n");
        return 3;
    }
    luaL_openlibs(L);
    if (mx_setup_paths(L) != 0) {
        fprintf(stderr, "mxprobe: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 3;
    }

    /* arg table as the stock lua interpreter builds it, so scripts and
     * busted (which re-executes "lua busted ...") find what they expect */
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_setglobal(L, "arg");

    lua_pushcfunction(L, traceback);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "mxprobe.app.main");
    int status = lua_pcall(L, 1, 1, 1);
    if (status == LUA_OK) {
        /* the arguments as one table { argv[1], ..., n = argc - 1 }: pushing
         * each one would overflow the C stack of Lua (LUA_MINSTACK slots)
         * with a long command line */
        lua_createtable(L, argc > 1 ? argc - 1 : 0, 1);
        for (int i = 1; i < argc; i++) {
            lua_pushstring(L, argv[i]);
            lua_rawseti(L, -2, i);
        }
        lua_pushinteger(L, argc > 1 ? argc - 1 : 0);
        lua_setfield(L, -2, "n");
        status = lua_pcall(L, 1, 1, 1);
    }
    int code;
    if (status != LUA_OK) {
        fprintf(stderr, "mxprobe: %s\n", lua_tostring(L, -1));
        code = 3;
    } else {
        code = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
    }
    fflush(stdout);
    lua_close(L);
    return code;
}
