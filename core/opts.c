/*
 * opts.c - option tables of the bindings (opts.h).
 */
#include "opts.h"

#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* idx as the caller counts it: absolute, so a pushed value cannot shift it */
static int arg_of(lua_State *L, int idx) { return lua_absindex(L, idx); }

int mx_opt_error(lua_State *L, int idx, const char *fname, const char *key, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return luaL_error(L, "bad argument #%d to '%s' (option '%s' %s)", idx, fname, key, msg);
}

/* A key or value for a message: printable, at most 40 bytes. */
static void shown(lua_State *L, int idx, char *out, size_t outlen)
{
    if (lua_type(L, idx) != LUA_TSTRING) {
        snprintf(out, outlen, "%s", luaL_typename(L, idx));
        return;
    }
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 40) {
            out[o++] = '.'; out[o++] = '.'; out[o++] = '.';
            break;
        }
        out[o++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    out[o] = '\0';
}

void mx_opts_check(lua_State *L, int idx, const char *fname, const char *const keys[])
{
    idx = arg_of(L, idx);
    if (!lua_istable(L, idx))
        luaL_error(L, "bad argument #%d to '%s' (options table expected, got %s)", idx, fname, luaL_typename(L, idx));
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            for (int i = 0; keys[i] && !ok; i++) ok = strcmp(k, keys[i]) == 0;
        }
        if (!ok) {
            char k[64];
            shown(L, -1, k, sizeof k);
            luaL_error(L, "bad argument #%d to '%s' (unknown option '%s')", idx, fname, k);
        }
    }
}

const char *mx_opt_string(lua_State *L, int idx, const char *fname, const char *key, const char *def)
{
    idx = arg_of(L, idx);
    int t = lua_getfield(L, idx, key);
    const char *v = def;
    if (t == LUA_TSTRING) {
        size_t n;
        v = lua_tolstring(L, -1, &n);
        if (strlen(v) != n) mx_opt_error(L, idx, fname, key, "must not contain a NUL byte");
    } else if (t != LUA_TNIL) {
        mx_opt_error(L, idx, fname, key, "must be a string, got %s", luaL_typename(L, -1));
    }
    lua_pop(L, 1); /* the string stays alive in the options table */
    return v;
}

lua_Integer mx_opt_integer(lua_State *L, int idx, const char *fname, const char *key, lua_Integer def,
                           lua_Integer lo, lua_Integer hi)
{
    idx = arg_of(L, idx);
    int t = lua_getfield(L, idx, key);
    lua_Integer v = def;
    if (t != LUA_TNIL) {
        if (!lua_isinteger(L, -1))
            mx_opt_error(L, idx, fname, key, "must be an integer, got %s",
                         t == LUA_TNUMBER ? "a fraction" : luaL_typename(L, -1));
        v = lua_tointeger(L, -1);
        if (v < lo || v > hi)
            mx_opt_error(L, idx, fname, key, "must be %lld..%lld, got %lld", (long long)lo, (long long)hi,
                         (long long)v);
    }
    lua_pop(L, 1);
    return v;
}

double mx_opt_number(lua_State *L, int idx, const char *fname, const char *key, double def, double lo, double hi)
{
    idx = arg_of(L, idx);
    int t = lua_getfield(L, idx, key);
    double v = def;
    if (t != LUA_TNIL) {
        if (t != LUA_TNUMBER) mx_opt_error(L, idx, fname, key, "must be a number, got %s", luaL_typename(L, -1));
        v = (double)lua_tonumber(L, -1);
        if (!isfinite(v))
            mx_opt_error(L, idx, fname, key, "must be a finite number, got %s", isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf");
        if (v < lo || v > hi) mx_opt_error(L, idx, fname, key, "must be %g..%g, got %g", lo, hi, v);
    }
    lua_pop(L, 1);
    return v;
}

int mx_opt_bool(lua_State *L, int idx, const char *fname, const char *key, int def)
{
    idx = arg_of(L, idx);
    int t = lua_getfield(L, idx, key);
    int v = def;
    if (t == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
    else if (t != LUA_TNIL) mx_opt_error(L, idx, fname, key, "must be a boolean, got %s", luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

double mx_check_finite(lua_State *L, int idx, const char *what)
{
    double d = (double)luaL_checknumber(L, idx);
    if (isnan(d)) luaL_argerror(L, idx, lua_pushfstring(L, "%s is NaN", what));
    if (!isfinite(d)) luaL_argerror(L, idx, lua_pushfstring(L, "%s must be a finite number, got %s", what,
                                                            d > 0 ? "inf" : "-inf"));
    return d;
}
