/*
 * l_term.c - core.term: what the command line asks of a terminal.
 *
 *   local term = require("mxprobe.core").term
 *   term.isatty(io.stdout) --> true | false   (also a file descriptor: term.isatty(2))
 *
 * The command line colours its report and shows a progress line only on a
 * terminal; asking isatty(3) directly replaces a shell (`test -t 1`).
 */
#include "bindings.h"

#include <stdio.h>
#include <unistd.h>

/* int l_isatty (lua_State *L)  [-1, +1, v]
 * isatty(file | fd) -> boolean.  A closed Lua file raises (a bug in the
 * caller); a descriptor that is not open is simply not a terminal. */
static int l_isatty(lua_State *L)
{
    int fd;
    if (lua_isinteger(L, 1)) {
        lua_Integer n = lua_tointeger(L, 1);
        if (n < 0 || n > 65535) return luaL_argerror(L, 1, "file descriptor out of range");
        fd = (int)n;
    } else {
        luaL_Stream *s = luaL_checkudata(L, 1, LUA_FILEHANDLE);
        if (s->closef == NULL) return luaL_argerror(L, 1, "the file is closed");
        fd = fileno(s->f);
    }
    lua_pushboolean(L, fd >= 0 && isatty(fd) == 1);
    return 1;
}

static const luaL_Reg term_funcs[] = {
    {"isatty", l_isatty},
    {NULL, NULL},
};

int mx_open_term(lua_State *L)
{
    luaL_newlib(L, term_funcs);
    return 1;
}
