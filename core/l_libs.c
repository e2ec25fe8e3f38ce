/*
 * l_libs.c - core.libs: the versions of the libraries mxprobe runs with,
 * for `mxprobe --version` and bug reports.
 *
 *   require("mxprobe.core").libs
 *   --> { lua = "Lua 5.4.4", openssl = "OpenSSL 3.0.11 19 Sep 2023",
 *         cares = "1.18.1", idn2 = "2.3.3",
 *         malloc = "jemalloc 5.3.0-0-g54eaed1d..." }   (only when jemalloc is in use)
 *
 * OpenSSL, c-ares and libidn2 are asked at run time: the shared library
 * actually loaded may be newer than the headers mxprobe was built with,
 * and that is the version a bug report needs.  Lua has no run-time
 * release string (lua_version gives only 504), so its header's release
 * is given, with the run-time number checked against it.
 */
#include "bindings.h"

#include <ares.h>
#include <idn2.h>
#include <openssl/crypto.h>

/* jemalloc's control entry, weak: present only when the process runs with
 * jemalloc (the executable links it, CMakeLists.txt); no header needed */
extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
    __attribute__((weak));

int mx_open_libs(lua_State *L)
{
    lua_createtable(L, 0, 4);
    if ((int)lua_version(L) == LUA_VERSION_NUM) {
        lua_pushstring(L, LUA_RELEASE);
    } else {
        lua_pushfstring(L, "%s (built with %s)", LUA_VERSION, LUA_RELEASE);
    }
    lua_setfield(L, -2, "lua");
    lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
    lua_setfield(L, -2, "openssl");
    lua_pushstring(L, ares_version(NULL));
    lua_setfield(L, -2, "cares");
    const char *idn = idn2_check_version(NULL);
    lua_pushstring(L, idn ? idn : "unknown");
    lua_setfield(L, -2, "idn2");
    const char *je = NULL;
    size_t len = sizeof je;
    if (mallctl && mallctl("version", &je, &len, NULL, 0) == 0 && je) {
        lua_pushfstring(L, "jemalloc %s", je);
        lua_setfield(L, -2, "malloc");
    }
    return 1;
}
