/*
 * fuzz_x509.c - libFuzzer target for core/l_x509.c: x509.load_pem /
 * load_der and every accessor of the objects they return, check_host
 * with a name taken from the input.
 *
 * Input: byte 0 bit 0 picks PEM (0) or DER (1); byte 1 is the length
 * (mod 64) of the host name that follows; the rest is the certificate
 * text.  Lua errors are allowed (unreadable fields raise or return nil);
 * crashes, leaks and sanitizer reports are not.
 */
#include "bindings.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

static const char chunk[] =
    "local x509, data, der, name = ...\n"
    "local list\n"
    "if der then local c = x509.load_der(data); list = c and { c } or {}\n"
    "else list = x509.load_pem(data) or {} end\n"
    "for _, c in ipairs(list) do\n"
    "  local function try(f, ...) pcall(f, c, ...) end\n"
    "  try(c.subject); try(c.issuer); try(c.serial); try(c.not_before); try(c.not_after)\n"
    "  try(c.sans); try(c.key); try(c.signature_algorithm); try(c.fingerprint); try(c.fingerprint, 'sha1')\n"
    "  try(c.spki_sha256); try(c.pem); try(c.der); try(c.self_signed); try(c.is_ca); try(c.version)\n"
    "  try(c.check_host, name); tostring(c)\n"
    "  local d = c:der(); if d then local again = x509.load_der(d); assert(again and again == c) end\n"
    "end\n";

static lua_State *L;
static int chunk_ref;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
        if (luaL_loadbuffer(L, chunk, sizeof chunk - 1, "fuzz_x509") != LUA_OK) abort();
        chunk_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    int der = data[0] & 1;
    size_t nlen = data[1] % 64;
    if (nlen > size - 2) nlen = size - 2;
    const char *name = (const char *)data + 2;
    const char *cert = name + nlen;
    size_t clen = size - 2 - nlen;

    lua_rawgeti(L, LUA_REGISTRYINDEX, chunk_ref);
    lua_pushcfunction(L, mx_open_x509);
    lua_call(L, 0, 1);
    lua_pushlstring(L, cert, clen);
    lua_pushboolean(L, der);
    lua_pushlstring(L, name, nlen);
    if (lua_pcall(L, 4, 0, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        /* the round trip assertion is the only error the chunk may not raise */
        if (msg && strstr(msg, "assertion failed")) abort();
        lua_pop(L, 1);
    }
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}
