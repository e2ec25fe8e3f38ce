/*
 * lua_harness.h - what the fuzz_lua_*.c targets share: one Lua state with
 * the mxprobe Lua tree on the same paths as the executable (mx_setup_paths:
 * the source tree, since the fuzz binaries live in the build tree), and a
 * driver fuzz/lua/NAME.lua that returns function(bytes) -> nothing.
 *
 * The driver raises "INVARIANT: ..." when the code under test misbehaves:
 * that aborts (a finding, with the input saved by libFuzzer).  Any other
 * Lua error is the code under test refusing bad input, which is the point.
 * Inputs are bounded: a memory cap on the Lua allocator (64 MiB) and an
 * instruction budget per input (an infinite loop in a fuzzed policy is a
 * policy problem, issue 16 item 3, not a finding of these targets).
 * The drivers take away what could harm the machine (os.execute, writing
 * files, popen) before fuzzed code runs: see fuzz/lua/common.lua.
 *
 * Coverage: liblua is not instrumented, so libFuzzer would see almost
 * nothing of the Lua code it drives.  A line hook hashes (chunk, line) into
 * libFuzzer's extra counters (the __libfuzzer_extra_counters section), so
 * new Lua lines count as new features ("ft:"), and keeps a bitmap of the
 * distinct lines reached, printed at exit ("Lua lines covered").
 *
 * Header-only on purpose: CMake builds every fuzz/fuzz_*.c into a target.
 */
#ifndef MX_FUZZ_LUA_HARNESS_H
#define MX_FUZZ_LUA_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "paths.h"

#define FUZZ_LUA_MEM_CAP (64u << 20)
#define FUZZ_LUA_COUNTERS 65536
#define FUZZ_LUA_LINES_BITS (1u << 22)

__attribute__((section("__libfuzzer_extra_counters"), used))
static uint8_t fuzz_lua_counters[FUZZ_LUA_COUNTERS];
static uint8_t fuzz_lua_lines[FUZZ_LUA_LINES_BITS / 8];
static unsigned long fuzz_lua_lines_seen;
#define FUZZ_LUA_BUDGET 20000000 /* VM instructions per input */

typedef struct {
    size_t used;
} fuzz_lua_mem;

static fuzz_lua_mem fuzz_mem;
static lua_State *fuzz_L;
static int fuzz_fn_ref = LUA_NOREF;
static long fuzz_count;

static void *fuzz_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    fuzz_lua_mem *m = ud;
    if (!ptr) osize = 0;
    if (nsize == 0) {
        free(ptr);
        m->used -= osize;
        return NULL;
    }
    if (nsize > osize && m->used + (nsize - osize) > FUZZ_LUA_MEM_CAP) return NULL; /* Lua: "not enough memory" */
    void *p = realloc(ptr, nsize);
    if (p) m->used = m->used - osize + nsize;
    return p;
}

/* Once the budget is spent, every further instruction raises: fuzzed code
 * that catches the error (pcall in a loop) still cannot go on. */
static void fuzz_lua_hook(lua_State *L, lua_Debug *ar)
{
    if (ar->event == LUA_HOOKLINE) {
        if (!lua_getinfo(L, "S", ar)) return;
        /* by the chunk's name, not its address: a fuzzed file is loaded anew for every input */
        static const char *last_src;
        static uint64_t last_hash;
        if (ar->source != last_src) {
            uint64_t f = 1469598103934665603ull;
            for (const char *p = ar->source; *p; p++) f = (f ^ (unsigned char)*p) * 1099511628211ull;
            last_src = ar->source, last_hash = f;
        }
        uint64_t h = last_hash * 0x9E3779B97F4A7C15ull ^ (uint64_t)ar->currentline * 0xC2B2AE3D27D4EB4Full;
        h ^= h >> 29;
        uint8_t *c = &fuzz_lua_counters[h % FUZZ_LUA_COUNTERS];
        if (*c != 255) (*c)++;
        uint32_t bit = (uint32_t)(h >> 7) % FUZZ_LUA_LINES_BITS;
        if (!(fuzz_lua_lines[bit / 8] & (1u << (bit % 8)))) {
            fuzz_lua_lines[bit / 8] |= (uint8_t)(1u << (bit % 8));
            fuzz_lua_lines_seen++;
        }
        return;
    }
    lua_sethook(L, fuzz_lua_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "fuzz: instruction budget spent");
}

static void fuzz_lua_report(void)
{
    fprintf(stderr, "stat::lua_lines_covered: %lu\n", fuzz_lua_lines_seen);
    /* the drivers' private work directories (fuzz/lua/common.lua) */
    if (fuzz_L && lua_getglobal(fuzz_L, "__fuzz_cleanup") == LUA_TFUNCTION) lua_pcall(fuzz_L, 0, 0, 0);
}

/* Create the state and load fuzz/lua/<driver>.lua; abort on failure (a
 * harness that cannot start must not look like a quiet success). */
static void fuzz_lua_init(const char *driver)
{
    fuzz_L = lua_newstate(fuzz_lua_alloc, &fuzz_mem);
    if (!fuzz_L) abort();
    luaL_openlibs(fuzz_L);
    if (mx_setup_paths(fuzz_L) != 0) {
        fprintf(stderr, "fuzz: %s\n", lua_tostring(fuzz_L, -1));
        abort();
    }
    lua_getglobal(fuzz_L, "require");
    lua_pushliteral(fuzz_L, "mxprobe.runtime.paths");
    if (lua_pcall(fuzz_L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "fuzz: %s\n", lua_tostring(fuzz_L, -1));
        abort();
    }
    lua_getfield(fuzz_L, -1, "root");
    const char *root = lua_tostring(fuzz_L, -1);
    char path[4096];
    snprintf(path, sizeof path, "%s/fuzz/lua/%s.lua", root ? root : ".", driver);
    lua_pop(fuzz_L, 2);
    if (luaL_loadfile(fuzz_L, path) != LUA_OK || lua_pcall(fuzz_L, 0, 1, 0) != LUA_OK) {
        fprintf(stderr, "fuzz: cannot load %s: %s\n", path, lua_tostring(fuzz_L, -1));
        abort();
    }
    if (!lua_isfunction(fuzz_L, -1)) {
        fprintf(stderr, "fuzz: %s must return a function\n", path);
        abort();
    }
    fuzz_fn_ref = luaL_ref(fuzz_L, LUA_REGISTRYINDEX);
    atexit(fuzz_lua_report);
}

/* Run the driver on one input. */
static int fuzz_lua_run(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_L;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz_fn_ref);
    lua_pushlstring(L, (const char *)data, size);
    lua_sethook(L, fuzz_lua_hook, LUA_MASKCOUNT | LUA_MASKLINE, FUZZ_LUA_BUDGET);
    int rc = lua_pcall(L, 1, 0, 0);
    lua_sethook(L, NULL, 0, 0);
    if (rc != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (msg && strstr(msg, "INVARIANT:")) {
            fprintf(stderr, "fuzz: %s\n", msg);
            abort();
        }
    }
    lua_settop(L, top);
    if (++fuzz_count % 64 == 0) lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}

#define FUZZ_LUA_TARGET(driver)                                                 \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                         \
    {                                                                           \
        (void)argc, (void)argv;                                                 \
        fuzz_lua_init(driver);                                                  \
        return 0;                                                               \
    }                                                                           \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)              \
    {                                                                           \
        return fuzz_lua_run(data, size);                                        \
    }

#endif
