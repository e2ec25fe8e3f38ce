/*
 * l_idn.c - core.idn: internationalised domain names (libidn2).
 *
 *   local ascii, code, detail = require("mxprobe.core").idn.to_ascii("Bücher.example")
 *   --> "xn--bcher-kva.example"   |   nil, "idn", "string has forbidden bi-directional properties"
 *
 * IDNA2008 with UTS #46 non-transitional processing (what browsers and
 * mail software do today: "ß" stays "ß", upper case folds to lower case),
 * after NFC normalisation of the input.  The input must be UTF-8; the
 * answer is ASCII, lower case, a trailing dot kept as given.
 */
#include "bindings.h"

#include <stdlib.h>
#include <string.h>

#include <idn2.h>

/* int l_to_ascii (lua_State *L)  [-1, +1|3, v]
 * to_ascii(name) -> A-label string | nil, "idn", detail.  Raises only when
 * name is not a string.  libidn2 mallocs the answer: it is copied to the
 * stack and freed before lua_pushstring, which may raise (out of memory). */
static int l_to_ascii(lua_State *L)
{
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    if (len == 0) return mx_fail(L, "idn", "empty name");
    if (strlen(name) != len) return mx_fail(L, "idn", "the name contains a NUL byte");
    char *out = NULL;
    int rc = idn2_to_ascii_8z(name, &out, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK) {
        free(out); /* NULL on failure; free(NULL) is fine */
        return mx_fail(L, "idn", "%s", idn2_strerror(rc));
    }
    char ascii[IDN2_DOMAIN_MAX_LENGTH + 1];
    size_t n = strlen(out);
    if (n >= sizeof ascii) { /* libidn2 refuses these itself; never trust it twice */
        free(out);
        return mx_fail(L, "idn", "the A-label form is longer than %d bytes", IDN2_DOMAIN_MAX_LENGTH);
    }
    memcpy(ascii, out, n + 1);
    free(out);
    lua_pushlstring(L, ascii, n);
    return 1;
}

/* int l_to_unicode (lua_State *L)  [-1, +1|3, v]
 * to_unicode(name) -> U-label form (UTF-8) | nil, "idn", detail: for
 * showing "xn--bcher-kva.example" as "bücher.example" next to it.  A name
 * without A-labels comes back unchanged.  Raises only when name is not a
 * string. */
static int l_to_unicode(lua_State *L)
{
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    if (len == 0) return mx_fail(L, "idn", "empty name");
    if (strlen(name) != len) return mx_fail(L, "idn", "the name contains a NUL byte");
    char *out = NULL;
    int rc = idn2_to_unicode_8z8z(name, &out, 0);
    if (rc != IDN2_OK) {
        free(out);
        return mx_fail(L, "idn", "%s", idn2_strerror(rc));
    }
    /* copy before pushing: lua_pushstring may raise, and out must be freed */
    char buf[4 * IDN2_DOMAIN_MAX_LENGTH + 1];
    size_t n = strlen(out);
    if (n >= sizeof buf) {
        free(out);
        return mx_fail(L, "idn", "the U-label form is too long");
    }
    memcpy(buf, out, n + 1);
    free(out);
    lua_pushlstring(L, buf, n);
    return 1;
}

static const luaL_Reg idn_funcs[] = {
    {"to_ascii", l_to_ascii},
    {"to_unicode", l_to_unicode},
    {NULL, NULL},
};

int mx_open_idn(lua_State *L)
{
    luaL_newlib(L, idn_funcs);
    return 1;
}
