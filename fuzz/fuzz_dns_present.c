/*
 * fuzz_dns_present.c - libFuzzer target for the presentation side of the
 * DNS decoder: every record of a message turned into the Lua table that
 * query:result() gives (l_dns.c mx_dns_push_rr: TXT strings and their
 * concatenation, TLSA usage/selector/matching type and hex data, MX, SOA,
 * names, addresses).  Invariants: TLSA data is lower-case hex of the
 * rdata after 3 bytes; TXT text is the strings joined.
 */
#include "bindings.h"
#include "dns_decode.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#define REQUIRE(c) do { if (!(c)) abort(); } while (0)

static lua_State *L;

static int push_all(lua_State *L)
{
    const uint8_t *data = lua_touserdata(L, 1);
    size_t size = (size_t)lua_tointeger(L, 2);
    static mx_dns_parser p;
    static mx_dns_rr rr;
    if (mx_dns_parse_begin(&p, data, size, 64) < 0) return 0;
    int r;
    while ((r = mx_dns_parse_next(&p, &rr)) > 0) {
        mx_dns_push_rr(L, &rr);
        REQUIRE(lua_istable(L, -1));
        if (rr.type == MX_DNS_T_TLSA && rr.rdlength >= 3) {
            lua_getfield(L, -1, "data");
            size_t n;
            const char *hex = lua_tolstring(L, -1, &n);
            if (hex) {
                REQUIRE(n == 2 * (rr.rdlength - 3));
                for (size_t i = 0; i < n; i++) REQUIRE((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'));
            }
            lua_pop(L, 1);
        }
        if (rr.type == MX_DNS_T_TXT) {
            size_t total = 0, off = 0, n;
            const uint8_t *s;
            while (mx_dns_txt_next(&rr, &off, &s, &n)) total += n;
            lua_getfield(L, -1, "text");
            if (lua_isstring(L, -1)) REQUIRE(lua_rawlen(L, -1) == total);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
    }
    /* a private copy, so reads past the input are caught by ASan */
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    lua_pushcfunction(L, push_all);
    lua_pushlightuserdata(L, buf);
    lua_pushinteger(L, (lua_Integer)size);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1); /* only out of memory */
    free(buf);
    lua_settop(L, 0);
    return 0;
}
