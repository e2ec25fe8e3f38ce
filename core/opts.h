/*
 * opts.h - one reader for the option tables of the bindings (model:
 * knot-resolver's lua_table_checkindices).
 *
 *   static const char *const keys[] = {"sni", "max_chain", NULL};
 *   mx_opts_check(L, 3, "upgrade", keys);      // unknown key: raises
 *   lua_Integer n = mx_opt_integer(L, 3, "upgrade", "max_chain", 10, 1, 1000);
 *
 * Every error names the argument, the function and the option, in the
 * luaL_argerror style:
 *   bad argument #3 to 'upgrade' (unknown option 'dedline')
 *   bad argument #1 to 'resolver' (option 'timeout' must be a finite number, got nan)
 * A nil field means "not given": the default is returned.  Numbers must be
 * finite (NaN and infinities raise) and inside [lo, hi].
 */
#ifndef MX_OPTS_H
#define MX_OPTS_H

#include <lua.h>

/* [-0, +0, v] the value at idx must be a table whose every key is a
 * string listed in keys (NULL-terminated); raises otherwise.  Callers
 * that allow nil replace it by an empty table first. */
void mx_opts_check(lua_State *L, int idx, const char *fname, const char *const keys[]);

/* [-0, +0, v] raise "bad argument #idx to 'fname' (option 'key' ...)" */
int mx_opt_error(lua_State *L, int idx, const char *fname, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* [-0, +0, v] a string field (NULL when absent and def is NULL).  The
 * string stays alive as long as the options table holds it.  Strings with
 * a NUL byte are refused (C would see a shorter one). */
const char *mx_opt_string(lua_State *L, int idx, const char *fname, const char *key, const char *def);
/* [-0, +0, v] an integer field in [lo, hi] */
lua_Integer mx_opt_integer(lua_State *L, int idx, const char *fname, const char *key, lua_Integer def,
                           lua_Integer lo, lua_Integer hi);
/* [-0, +0, v] a finite number field in [lo, hi] */
double mx_opt_number(lua_State *L, int idx, const char *fname, const char *key, double def, double lo, double hi);
/* [-0, +0, v] a boolean field */
int mx_opt_bool(lua_State *L, int idx, const char *fname, const char *key, int def);

/* [-0, +0, v] argument idx as a finite number (NaN, inf and -inf raise
 * "bad argument #idx to 'fname' (WHAT must be a finite number, got inf)") */
double mx_check_finite(lua_State *L, int idx, const char *what);

#endif
