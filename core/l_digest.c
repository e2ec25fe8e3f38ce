/*
 * l_digest.c - core.digest: message digests (OpenSSL EVP), for the records
 * of an audit that say how they were made (the policy file's and the CA
 * file's SHA-256: the same file name can hold another policy next week).
 *
 *   local d = require("mxprobe.core").digest
 *   d.sha256("abc")              --> "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
 *   d.file("/etc/ca.pem")        --> hex SHA-256 of the file's bytes | nil, "io", detail
 *   d.file(path, "sha512")       --> another digest OpenSSL knows
 *
 * The answer is lower-case hex, as sha256sum prints it.  A file is read in
 * blocks, so its size does not matter.
 */
#include "bindings.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

static const EVP_MD *md_arg(lua_State *L, int arg)
{
    const char *name = luaL_optstring(L, arg, "sha256");
    const EVP_MD *md = EVP_get_digestbyname(name);
    if (!md) luaL_argerror(L, arg, lua_pushfstring(L, "unknown digest '%s'", name));
    return md;
}

static void push_hex(lua_State *L, const unsigned char *md, unsigned int len)
{
    static const char hex[] = "0123456789abcdef";
    char out[EVP_MAX_MD_SIZE * 2];
    for (unsigned int i = 0; i < len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    lua_pushlstring(L, out, 2 * (size_t)len);
}

/* sha256(data) -> hex  [-1, +1, e]
 * The SHA-256 of a Lua string (any bytes). */
static int l_sha256(lua_State *L)
{
    size_t n;
    const char *data = luaL_checklstring(L, 1, &n);
    unsigned char buf[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_Digest(data, n, buf, &len, EVP_sha256(), NULL)) return luaL_error(L, "digest: EVP_Digest failed");
    push_hex(L, buf, len);
    return 1;
}

/* file(path [, algorithm]) -> hex | nil, "io", detail  [-1|2, +1|3, e]
 * Reads the file in blocks; an unreadable file is an answer, not an error. */
static int l_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const EVP_MD *md = md_arg(L, 2);
    FILE *f = fopen(path, "rb");
    if (!f) return mx_fail(L, "io", "cannot read '%s': %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) {
        fclose(f);
        return luaL_error(L, "digest: out of memory");
    }
    int ok = EVP_DigestInit_ex(ctx, md, NULL);
    unsigned char block[65536];
    size_t got;
    while (ok && (got = fread(block, 1, sizeof block, f)) > 0) ok = EVP_DigestUpdate(ctx, block, got);
    int read_error = ferror(f);
    int saved = errno;
    fclose(f);
    unsigned char buf[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (ok && !read_error) ok = EVP_DigestFinal_ex(ctx, buf, &len);
    EVP_MD_CTX_free(ctx);
    if (read_error) return mx_fail(L, "io", "cannot read '%s': %s", path, strerror(saved));
    if (!ok) return luaL_error(L, "digest: the digest of '%s' failed", path);
    push_hex(L, buf, len);
    return 1;
}

static const luaL_Reg digest_funcs[] = {
    {"sha256", l_sha256},
    {"file", l_file},
    {NULL, NULL},
};

int mx_open_digest(lua_State *L)
{
    luaL_newlib(L, digest_funcs);
    return 1;
}
