/*
 * paths.c - find lua/ and checks/.
 *
 * MXPROBE_HOME in the environment wins.  Otherwise an executable that sits
 * in the build tree uses the source tree (so edits to .lua files need no
 * rebuild), and an installed one uses the installed data directory, found
 * relative to the executable (or to libmxprobe.so for embedders) so that
 * a moved prefix keeps working; the configure-time path is the last resort.
 */
#define _GNU_SOURCE
#include "paths.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include "bindings.h"

/* set by CMakeLists.txt from the install layout (GNUInstallDirs) */
#ifndef MXPROBE_DATA_FROM_BIN
#define MXPROBE_DATA_FROM_BIN "../share/mxprobe"
#endif
#ifndef MXPROBE_DATA_FROM_LIB
#define MXPROBE_DATA_FROM_LIB "../share/mxprobe"
#endif

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* dir/rel when dir/rel/lua is a directory: the installed data found
 * relative to a binary or library, whatever the prefix is now. */
static const char *relative_root(const char *file, const char *rel, char *out, size_t outlen)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (!slash) return NULL;
    *slash = '\0';
    snprintf(out, outlen, "%s/%s", dir, rel);
    char probe[PATH_MAX + 64];
    snprintf(probe, sizeof probe, "%s/lua", out);
    return is_dir(probe) ? out : NULL;
}

static const char *pick_root(void)
{
    const char *env = getenv("MXPROBE_HOME");
    if (env && *env) return env;
    static char exe[PATH_MAX];
    static char rel[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        size_t bl = strlen(MXPROBE_BUILD_DIR);
        if (strncmp(exe, MXPROBE_BUILD_DIR, bl) == 0 && exe[bl] == '/') return MXPROBE_SOURCE_DIR;
        /* relocatable installs: PREFIX/bin/mxprobe finds PREFIX/share/mxprobe */
        if (relative_root(exe, MXPROBE_DATA_FROM_BIN, rel, sizeof rel)) return rel;
    }
    /* the embedding library, inside another program: PREFIX/lib/libmxprobe.so
     * finds PREFIX/share/mxprobe */
    static char lib[PATH_MAX];
    Dl_info info;
    if (dladdr((void *)pick_root, &info) && info.dli_fname && info.dli_fname[0] == '/') {
        snprintf(lib, sizeof lib, "%s", info.dli_fname);
        if (strcmp(lib, exe) != 0 && relative_root(lib, MXPROBE_DATA_FROM_LIB, rel, sizeof rel)) return rel;
    }
    return MXPROBE_DATA_DIR;
}

int mx_setup_paths(lua_State *L)
{
    const char *root = pick_root();
    lua_pushfstring(L, "%s/lua", root);
    if (!is_dir(lua_tostring(L, -1))) {
        lua_pushfstring(L, "cannot find the Lua sources in %s/lua (set MXPROBE_HOME)", root);
        return -1;
    }
    lua_pop(L, 1);

    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s;%s/?.lua", root, root, lua_tostring(L, -1), root);
    lua_setfield(L, -3, "path");
    lua_pop(L, 1);

    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_mxprobe_core);
    lua_setfield(L, -2, "mxprobe.core");
    lua_pop(L, 1);

    lua_getfield(L, -1, "loaded");
    lua_createtable(L, 0, 4);
    lua_pushstring(L, root);
    lua_setfield(L, -2, "root");
    lua_pushfstring(L, "%s/lua", root);
    lua_setfield(L, -2, "lua");
    lua_pushfstring(L, "%s/checks", root);
    lua_setfield(L, -2, "checks");
    lua_pushstring(L, MXPROBE_VERSION);
    lua_setfield(L, -2, "version");
    lua_setfield(L, -2, "mxprobe.runtime.paths");
    lua_pop(L, 2);

    /* the build's bytecode next to the build tree's executable, an
     * install's in ROOT/luac; MXPROBE_NO_BYTECODE=1: the sources only */
    const char *off = getenv("MXPROBE_NO_BYTECODE");
    char bc[PATH_MAX + 16];
    if (strcmp(root, MXPROBE_SOURCE_DIR) == 0) snprintf(bc, sizeof bc, "%s/luac", MXPROBE_BUILD_DIR);
    else snprintf(bc, sizeof bc, "%s/luac", root);
    return mx_setup_bytecode(L, (off && strcmp(off, "1") == 0) || !is_dir(bc) ? NULL : bc, root);
}
