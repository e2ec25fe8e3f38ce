/* test_x509_oom.c - out of memory inside an x509 accessor must not leak
 * OpenSSL objects.
 *
 * x509:sans() held a GENERAL_NAMES while it built its table; a Lua
 * allocation failure (lua_pushlstring, lua_rawseti) raised past the
 * GENERAL_NAMES_free and leaked it.  The same pattern was in the PEM/DER
 * encoders and loaders.  Here the Lua allocator fails the n-th allocation
 * for every n until the call succeeds, and OpenSSL's own allocations are
 * counted (CRYPTO_set_mem_functions): none may stay alive. */
#include "bindings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>
#include <openssl/crypto.h>

static int checks, failures;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        checks++;                                                                 \
        if (!(cond)) {                                                            \
            failures++;                                                           \
            fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                         \
            fprintf(stderr, "\n");                                                \
        }                                                                         \
    } while (0)

static long ossl_live; /* OpenSSL allocations not freed yet */

static void *ossl_malloc(size_t n, const char *f, int l)
{
    (void)f, (void)l;
    void *p = malloc(n);
    if (p) ossl_live++;
    return p;
}
static void *ossl_realloc(void *p, size_t n, const char *f, int l)
{
    (void)f, (void)l;
    if (!p) return ossl_malloc(n, f, l);
    if (n == 0) {
        free(p);
        ossl_live--;
        return NULL;
    }
    return realloc(p, n);
}
static void ossl_free(void *p, const char *f, int l)
{
    (void)f, (void)l;
    if (p) ossl_live--;
    free(p);
}

static long lua_budget = -1; /* allocations left before failing; -1: never */

static void *lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (lua_budget >= 0 && (!ptr || nsize > osize)) {
        if (lua_budget == 0) return NULL;
        lua_budget--;
    }
    return realloc(ptr, nsize);
}

static const char pem[] =
"-----BEGIN CERTIFICATE-----\n"
"MIIBqjCCAVCgAwIBAgIUHTUB8qqQ2d5zDxZn6ZqLOWROyWYwCgYIKoZIzj0EAwIw\n"
"EjEQMA4GA1UEAwwHbXgudGVzdDAeFw0yNjEyMDEyMTIyNDRaFw0zNjExMjgyMTIy\n"
"NDRaMBIxEDAOBgNVBAMMB214LnRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\n"
"AAToDKbRjZm332KM4TfXq8Plpv3VtFegkXlF5fyyUu4OHFBpCEQ6pxMKt9I8bUKm\n"
"sB+Y1ah7oclWqvtiRe3CmhE7o4GDMIGAMB0GA1UdDgQWBBSc2rnVEzKqNKnT8gIH\n"
"ST3eagwyXTAfBgNVHSMEGDAWgBSc2rnVEzKqNKnT8gIHST3eagwyXTAPBgNVHRMB\n"
"Af8EBTADAQH/MC0GA1UdEQQmMCSCB214LnRlc3SCCG14Mi50ZXN0hwTAAAIBggkq\n"
"Lm14LnRlc3QwCgYIKoZIzj0EAwIDSAAwRQIgHjnomL582RN1PboZaxqjrQYdRWzl\n"
"UMvqLPW4mXoR1NcCIQCv6l+PrlgVlaTvo0C1OuwyrQxPqcHvOy77wLiMxh4FDg==\n"
"-----END CERTIFICATE-----\n";

/* Run code (a chunk given x509 module and a certificate) failing the n-th
 * Lua allocation, n = 0, 1, ... until it succeeds; OpenSSL must be back at
 * its live count each time after a full collection. */
static void sweep(lua_State *L, const char *name, const char *code)
{
    int leaked = 0, ok = 0;
    for (long n = 0; n < 5000 && !ok; n++) {
        lua_gc(L, LUA_GCCOLLECT);
        long before = ossl_live;
        if (luaL_loadstring(L, code) != LUA_OK) {
            fprintf(stderr, "%s: %s\n", name, lua_tostring(L, -1));
            failures++;
            return;
        }
        lua_getglobal(L, "x509");
        lua_getglobal(L, "cert");
        lua_pushstring(L, pem);
        lua_budget = n;
        ok = lua_pcall(L, 3, 0, 0) == LUA_OK;
        lua_budget = -1;
        if (!ok) lua_pop(L, 1);
        lua_gc(L, LUA_GCCOLLECT);
        lua_gc(L, LUA_GCCOLLECT);
        if (ossl_live != before) {
            if (!leaked) fprintf(stderr, "%s: %ld OpenSSL allocation(s) leaked when Lua allocation #%ld failed\n",
                                 name, ossl_live - before, n);
            leaked = 1;
        }
    }
    CHECK(ok, "%s never succeeded", name);
    CHECK(!leaked, "%s leaks on a Lua error", name);
}

int main(void)
{
    CHECK(CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free) == 1, "CRYPTO_set_mem_functions");
    lua_State *L = lua_newstate(lua_alloc, NULL);
    luaL_openlibs(L);
    lua_pushcfunction(L, mx_open_x509);
    lua_call(L, 0, 1);
    lua_setglobal(L, "x509");
    lua_getglobal(L, "x509");
    lua_getfield(L, -1, "load_pem");
    lua_pushstring(L, pem);
    lua_call(L, 1, 1);
    lua_rawgeti(L, -1, 1);
    lua_setglobal(L, "cert");
    lua_pop(L, 2);

    sweep(L, "sans", "local x, c = ...; local t = c:sans(); assert(#t == 4)");
    sweep(L, "subject", "local x, c = ...; assert(c:subject() == 'CN=mx.test')");
    sweep(L, "issuer", "local x, c = ...; c:issuer()");
    sweep(L, "serial", "local x, c = ...; c:serial()");
    sweep(L, "pem", "local x, c = ...; c:pem()");
    sweep(L, "der", "local x, c = ...; c:der()");
    sweep(L, "load_pem", "local x, c, p = ...; assert(#x.load_pem(p .. p .. p) == 3)");
    sweep(L, "load_der", "local x, c = ...; local d = c:der(); assert(x.load_der(d))");

    lua_close(L);
    printf("test_x509_oom: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
