/* test_oom.c - out of memory while a binding holds an fd must not leak it.
 *
 * The Lua allocator here refuses new userdata on demand; a binding that
 * opens a socket and then creates its userdata would leak the fd when that
 * allocation raises.  Loopback only. */
#include "bindings.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

static int checks, failures;

#define CHECK(cond)                                                              \
    do {                                                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            failures++;                                                          \
            fprintf(stderr, "%s:%d: %s: FAILED %s\n", __FILE__, __LINE__, __func__, #cond); \
        }                                                                        \
    } while (0)

static int refuse_userdata;

static void *alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    /* for a new object, osize is its type */
    if (refuse_userdata && !ptr && osize == LUA_TUSERDATA) return NULL;
    return realloc(ptr, nsize);
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

/* Call core.net.<fname>(args...) with userdata creation refused; the
 * socket object (index sock, 0 for none) is the receiver of a method. */
static int call_refused(lua_State *L, const char *code)
{
    if (luaL_loadstring(L, code) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        return -1;
    }
    lua_pushvalue(L, -2); /* the core.net table */
    refuse_userdata = 1;
    int st = lua_pcall(L, 1, 0, 0);
    refuse_userdata = 0;
    lua_pop(L, st == LUA_OK ? 0 : 1);
    return st;
}

static void test_socket_calls(void)
{
    lua_State *L = lua_newstate(alloc, NULL);
    luaL_openlibs(L);
    luaL_requiref(L, "mxprobe.core", luaopen_mxprobe_core, 0);
    lua_getfield(L, -1, "net");
    /* a listener made while memory is fine, and the loop it creates */
    lua_getfield(L, -1, "listen");
    lua_pushliteral(L, "127.0.0.1");
    lua_pushinteger(L, 0);
    CHECK(lua_pcall(L, 2, 1, 0) == LUA_OK);
    lua_setglobal(L, "server");
    lua_gc(L, LUA_GCCOLLECT);

    int before = open_fds();
    CHECK(call_refused(L, "local net = ... ; net.listen('127.0.0.1', 0)") == LUA_ERRMEM);
    CHECK(open_fds() == before);
    CHECK(call_refused(L, "local net = ... ; net.connect(server:local_addr())") == LUA_ERRMEM);
    CHECK(open_fds() == before);

    /* a pending connection for accept() to take */
    CHECK(luaL_dostring(L, "client = require('mxprobe.core').net.connect(server:local_addr())") == LUA_OK);
    before = open_fds();
    CHECK(call_refused(L, "local net = ... ; server:accept()") == LUA_ERRMEM);
    CHECK(open_fds() == before);
    lua_close(L);
}

int main(void)
{
    test_socket_calls();
    printf("test_oom: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
