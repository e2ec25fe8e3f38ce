/*
 * embed.c - the C embedding API (mxprobe.h) over lua/mxprobe/embed.lua.
 * Each handle owns a Lua state; all work is done by the Lua side.
 */
#include "mxprobe.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "paths.h"

struct mxprobe {
    lua_State *L;
    int api_ref; /* the table returned by require "mxprobe.app.embed" */
    int host_ref; /* the Lua-side host object */
    char err[1024];
};

static void set_err(mxprobe *h, const char *msg)
{
    snprintf(h->err, sizeof h->err, "%s", msg ? msg : "unknown error");
}

/* The host's SIGPIPE disposition is not ours to change.  Plain sockets
 * send with MSG_NOSIGNAL, but OpenSSL writes to its socket with write(2):
 * while a call runs, SIGPIPE is blocked in the calling thread, and one
 * that our own writes raised is taken off the thread before unblocking
 * (the libcurl way).  A SIGPIPE that was already pending stays pending. */
typedef struct {
    sigset_t old;
    int was_pending;
} pipe_guard;

static void pipe_block(pipe_guard *g)
{
    sigset_t pipe, pending;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigemptyset(&pending);
    g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &g->old);
}

static void pipe_unblock(pipe_guard *g)
{
    sigset_t pipe, pending;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    if (!g->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe, NULL, &zero) == SIGPIPE) {}
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* Call api[fname](host, a, b) in protected mode.  [-0, +1|0, -] leaves the
 * first result on the stack on success. */
static int call(mxprobe *h, const char *fname, const char *a, const char *b)
{
    lua_State *L = h->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->api_ref);
    lua_getfield(L, -1, fname);
    lua_remove(L, -2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->host_ref);
    if (a) lua_pushstring(L, a); else lua_pushnil(L);
    if (b) lua_pushstring(L, b); else lua_pushnil(L);
    pipe_guard g;
    pipe_block(&g);
    int st = lua_pcall(L, 3, 2, 0);
    pipe_unblock(&g);
    if (st != LUA_OK) {
        set_err(h, lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    if (lua_isnil(L, -2)) { /* nil, message */
        set_err(h, lua_tostring(L, -1));
        lua_pop(L, 2);
        return -1;
    }
    lua_pop(L, 1);
    h->err[0] = '\0';
    return 0;
}

mxprobe *mxprobe_new(void)
{
    mxprobe *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->L = luaL_newstate();
    if (!h->L) {
        free(h);
        return NULL;
    }
    luaL_openlibs(h->L);
    if (mx_setup_paths(h->L) != 0) goto fail;
    lua_getglobal(h->L, "require");
    lua_pushliteral(h->L, "mxprobe.app.embed");
    if (lua_pcall(h->L, 1, 1, 0) != LUA_OK) goto fail;
    lua_getfield(h->L, -1, "new");
    lua_pushvalue(h->L, -2);
    h->api_ref = luaL_ref(h->L, LUA_REGISTRYINDEX);
    if (lua_pcall(h->L, 0, 1, 0) != LUA_OK) goto fail;
    h->host_ref = luaL_ref(h->L, LUA_REGISTRYINDEX);
    return h;
fail:
    fprintf(stderr, "mxprobe_new: %s\n", lua_tostring(h->L, -1));
    lua_close(h->L);
    free(h);
    return NULL;
}

int mxprobe_set_option(mxprobe *h, const char *name, const char *value)
{
    if (!h || !name) return -1;
    if (call(h, "set_option", name, value) != 0) return -1;
    lua_pop(h->L, 1);
    return 0;
}

int mxprobe_load_policy(mxprobe *h, const char *path)
{
    if (!h || !path) return -1;
    if (call(h, "load_policy", path, NULL) != 0) return -1;
    lua_pop(h->L, 1);
    return 0;
}

char *mxprobe_check_domain(mxprobe *h, const char *domain)
{
    if (!h || !domain) return NULL;
    if (call(h, "check_domain", domain, NULL) != 0) return NULL;
    size_t n;
    const char *s = lua_tolstring(h->L, -1, &n);
    char *out = s ? malloc(n + 1) : NULL;
    if (out) memcpy(out, s, n + 1);
    else set_err(h, "out of memory");
    lua_pop(h->L, 1);
    return out;
}

const char *mxprobe_error(const mxprobe *h) { return h ? h->err : "no handle"; }

void mxprobe_free_string(char *s) { free(s); }

void mxprobe_free(mxprobe *h)
{
    if (!h) return;
    lua_close(h->L);
    free(h);
}
