/*
 * l_watchdog.c - core.watchdog: notices Lua that runs too long without
 * waiting, so that mxprobe.runtime.budget needs no instruction hook.
 *
 *   watchdog.start(tick)   -> true | nil, why   (once; the executable only)
 *   watchdog.slice(co)     -> now   the scheduler: thread co runs from now
 *   watchdog.enter()       -> nothing  budget.call: the calling thread runs
 *   watchdog.set_check(fn) -> nothing  what the hook calls (budget's check)
 *
 * Why: an instruction-count hook makes the Lua VM trace every instruction
 * (luaG_traceexec), and budget.call set one for every check and policy
 * function: 7 % of the instructions of an audited domain (issue 15,
 * callgrind).  Instead a thread wakes every `tick` seconds and looks at
 * which Lua thread runs and since when; when one slice has lasted longer
 * than a tick it sends SIGURG to the main thread, whose handler sets a
 * one-instruction hook on the running thread (lua_sethook may be called
 * from a signal handler: lua.c does so for SIGINT).  That hook removes
 * itself and calls the check, which raises the overrun error when the
 * running budget is spent (or a SIGINT/SIGTERM came), else returns.  So
 * Lua runs untraced, and a runaway loop is still stopped within a tick of
 * its budget.  SIGINT and SIGTERM (core/loop.c) set the same hook at once.
 *
 * A host that embeds mxprobe never starts it (its signals are its own);
 * budget.lua then keeps the instruction hook.  The thread blocks every
 * signal, so signals still go to the main thread.  The running thread is
 * anchored in the registry, so it cannot be collected while the signal
 * handler may still point at it.
 */
#include "bindings.h"
#include "loop.h"
#include "opts.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

static _Atomic(lua_State *) running;   /* the thread running Lua, or NULL */
static _Atomic long long slice_ns;      /* when its slice began (CLOCK_MONOTONIC) */
static long long tick_ns;
static pthread_t main_thread, dog;
static int started;
static char check_key, anchor_key; /* registry keys */

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* the hook: one instruction after the signal, in the running thread */
static void on_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &check_key) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        return;
    }
    lua_call(L, 0, 0); /* its error (the overrun) is the running code's */
}

/* async-signal context, main thread: lua_sethook is made for it */
static void arm(void)
{
    lua_State *L = atomic_load_explicit(&running, memory_order_acquire);
    /* a thread under a hook of its own (debug.sethook: budget.lua's hook
     * mode, a user's profiler) is left to it: replacing it would lose it */
    lua_Hook h = L ? lua_gethook(L) : NULL;
    if (L && (h == NULL || h == on_hook)) lua_sethook(L, on_hook, LUA_MASKCOUNT, 1);
}

static void on_urg(int sig)
{
    (void)sig;
    int saved = errno;
    arm();
    errno = saved;
}

static void *dog_main(void *arg)
{
    (void)arg;
    struct timespec nap = {(time_t)(tick_ns / 2 / 1000000000LL), (long)(tick_ns / 2 % 1000000000LL)};
    for (;;) {
        nanosleep(&nap, NULL);
        lua_State *L = atomic_load_explicit(&running, memory_order_acquire);
        long long s = atomic_load_explicit(&slice_ns, memory_order_relaxed);
        long long now = now_ns();
        if (L && now - s > tick_ns) {
            /* look again a tick later: the check decides, not the dog */
            atomic_store_explicit(&slice_ns, now, memory_order_relaxed);
            pthread_kill(main_thread, SIGURG);
        }
    }
    return NULL;
}

/* start(tick)  [-0, +1..2, e] */
static int l_start(lua_State *L)
{
    double tick = mx_check_finite(L, 1, "tick");
    if (tick < 0.001 || tick > 60) return luaL_argerror(L, 1, "a tick of 0.001 to 60 seconds expected");
    if (started) {
        lua_pushboolean(L, 1);
        return 1;
    }
    tick_ns = (long long)(tick * 1e9);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_urg;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGURG, &sa, NULL) < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "watchdog: sigaction: %s", strerror(errno));
        return 2;
    }
    main_thread = pthread_self();
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the thread inherits it: no signal lands there */
    int rc = pthread_create(&dog, NULL, dog_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        signal(SIGURG, SIG_DFL);
        lua_pushnil(L);
        lua_pushfstring(L, "watchdog: pthread_create: %s", strerror(rc));
        return 2;
    }
    pthread_detach(dog);
    started = 1;
    mx_loop_set_signal_hook(arm);
    lua_pushboolean(L, 1);
    return 1;
}

static void set_running(lua_State *L, int idx, lua_State *T)
{
    if (atomic_load_explicit(&running, memory_order_relaxed) == T) return;
    lua_pushvalue(L, idx);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &anchor_key); /* alive while it may be named */
    atomic_store_explicit(&slice_ns, now_ns(), memory_order_relaxed);
    atomic_store_explicit(&running, T, memory_order_release);
}

/* slice(co)  [-0, +1, e]  the monotonic time (core.loop.now's clock) */
static int l_slice(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTHREAD);
    if (started) {
        lua_State *T = lua_tothread(L, 1);
        atomic_store_explicit(&running, NULL, memory_order_release); /* a new slice, even of the same thread */
        set_running(L, 1, T);
    }
    lua_pushnumber(L, mx_now());
    return 1;
}

/* enter()  [-0, +0, -]  the calling thread runs (a budget outside the loop) */
static int l_enter(lua_State *L)
{
    if (started) {
        lua_pushthread(L);
        set_running(L, lua_gettop(L), L);
        lua_pop(L, 1);
    }
    return 0;
}

/* set_check(fn)  [-0, +0, e] */
static int l_set_check(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &check_key);
    return 0;
}

void mx_watchdog_idle(void)
{
    atomic_store_explicit(&running, NULL, memory_order_release);
}

static const luaL_Reg watchdog_funcs[] = {
    {"start", l_start}, {"slice", l_slice}, {"enter", l_enter},
    {"set_check", l_set_check}, {NULL, NULL},
};

int mx_open_watchdog(lua_State *L)
{
    luaL_newlib(L, watchdog_funcs);
    return 1;
}
