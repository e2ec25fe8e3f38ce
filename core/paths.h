/* paths.h - where the Lua sources are, in the build tree and installed */
#ifndef MX_PATHS_H
#define MX_PATHS_H
#include <lua.h>
/* [-0, +(0|1), -] set package.path, preload mxprobe.core, register
 * package.loaded["mxprobe.runtime.paths"] = { root=, lua=, checks= }.
 * On failure returns -1 with a message on the stack. */
int mx_setup_paths(lua_State *L);
/* [-0, +0, -] paths.compile (the build's compiler), and when dir is not
 * NULL a searcher and a loadfile that take the bytecode in dir of a file
 * (under root, or a library module) only when it was made from the
 * source there now (core/bytecode.c) */
int mx_setup_bytecode(lua_State *L, const char *dir, const char *root);
#endif
