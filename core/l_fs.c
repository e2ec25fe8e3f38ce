/*
 * l_fs.c - core.fs: the one file operation standard Lua lacks.
 *
 *   local ok, code, detail = require("mxprobe.core").fs.truncate(path, length)
 *
 * `mxprobe audit --resume` cuts a torn last record (the writer was killed
 * mid-line) off its output before appending.  Doing that in place with
 * truncate(2) keeps the cost independent of the file's size; standard Lua
 * could only copy the whole file.
 */
#include "bindings.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* truncate(path, length) -> true | nil, "io", detail  [-2, +1|3, v]
 * Raises only on bad argument types or a negative length. */
static int l_truncate(lua_State *L)
{
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    lua_Integer size = luaL_checkinteger(L, 2);
    luaL_argcheck(L, size >= 0, 2, "length must be >= 0");
    if (strlen(path) != len) return mx_fail(L, "io", "the path contains a NUL byte");
    if (truncate(path, (off_t)size) != 0) return mx_fail(L, "io", "%s", strerror(errno));
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg fs_functions[] = {
    {"truncate", l_truncate},
    {NULL, NULL},
};

int mx_open_fs(lua_State *L)
{
    luaL_newlib(L, fs_functions);
    return 1;
}
