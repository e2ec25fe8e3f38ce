/*
 * fuzz_idn.c - libFuzzer target for core/l_idn.c (core.idn.to_ascii over
 * libidn2).  The input is the name.  Invariants: an answer is ASCII
 * without upper case, at most 254 bytes (253 and a trailing dot),
 * and converting it again gives it back; a refusal is nil, "idn", detail.
 */
#include "bindings.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#define REQUIRE(c) do { if (!(c)) abort(); } while (0)

static lua_State *L;

/* to_ascii(s) -> 1 and the answer at the top, or 0 (refused) */
static int to_ascii(const char *s, size_t n)
{
    lua_getfield(L, 1, "to_ascii");
    lua_pushlstring(L, s, n);
    if (lua_pcall(L, 1, 3, 0) != LUA_OK) abort(); /* raises only for a non-string */
    if (lua_isnil(L, -3)) {
        REQUIRE(lua_isstring(L, -2) && strcmp(lua_tostring(L, -2), "idn") == 0);
        REQUIRE(lua_isstring(L, -1));
        lua_pop(L, 3);
        return 0;
    }
    lua_pop(L, 2);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
        lua_pushcfunction(L, mx_open_idn);
        lua_call(L, 0, 1); /* index 1 */
    }
    if (to_ascii((const char *)data, size)) {
        size_t n;
        const char *a = lua_tolstring(L, -1, &n);
        REQUIRE(n <= 254);
        /* ASCII, but not necessarily printable: libidn2 passes control
         * characters through (the CLI refuses them before converting) */
        for (size_t i = 0; i < n; i++) REQUIRE((unsigned char)a[i] < 0x80 && !(a[i] >= 'A' && a[i] <= 'Z'));
        char copy[256];
        memcpy(copy, a, n);
        lua_pop(L, 1);
        /* the A-label form is stable */
        if (to_ascii(copy, n)) {
            size_t m;
            const char *b = lua_tolstring(L, -1, &m);
            REQUIRE(m == n && memcmp(b, copy, n) == 0);
            lua_pop(L, 1);
        }
    }
    lua_settop(L, 1);
    return 0;
}
