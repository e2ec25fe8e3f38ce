/*
 * l_loop.c - core.loop: the C half of the scheduler.  The Lua half is
 * lua/mxprobe/loop.lua, which owns tasks and is the only code that yields.
 * Tokens are the scheduler's task ids.
 */
#include "bindings.h"
#include "opts.h"

#include <time.h>

/* [-0, +0, v] a deadline argument.  NaN compares false with everything, so
 * the loop would arm no timer for it and the Lua side would also lose the
 * task's own deadline: the wait would never end.  Refuse it, and the
 * infinities too ("no deadline" is nil, never math.huge). */
static double check_deadline(lua_State *L, int idx) { return mx_check_finite(L, idx, "deadline"); }

static double opt_deadline(lua_State *L, int idx)
{
    return lua_isnoneornil(L, idx) ? -1.0 : check_deadline(L, idx);
}

/* int now ()  [-0, +1, -]  monotonic seconds */
static int l_now(lua_State *L)
{
    lua_pushnumber(L, mx_now());
    return 1;
}

/* int wall ()  [-0, +1, -]  seconds since the epoch, for reports */
static int l_wall(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    return 1;
}

static int check_token(lua_State *L, int idx)
{
    lua_Integer t = luaL_checkinteger(L, idx);
    luaL_argcheck(L, t > 0 && t < (1 << 24), idx, "task token out of range");
    return (int)t;
}

static int result(lua_State *L, int r, const char *what)
{
    if (r < 0) return luaL_error(L, "%s: cannot arm the wait (error %d)", what, -r);
    return 0;
}

/* wait_fd (token, fd, events, deadline?, keep?)  [-0, +0, e]
 * keep: the fd is a core socket's, whose close forgets it (MX_KEEP) */
static int l_wait_fd(lua_State *L)
{
    int token = check_token(L, 1);
    int fd = (int)luaL_checkinteger(L, 2);
    unsigned ev = mx_check_events(L, 3);
    if (lua_toboolean(L, 5)) ev |= MX_KEEP;
    return result(L, mx_loop_wait_fd(mx_get_loop(L), token, fd, ev, opt_deadline(L, 4)), "wait_fd");
}

/* wait_timer (token, deadline)  [-0, +0, e] */
static int l_wait_timer(lua_State *L)
{
    int token = check_token(L, 1);
    return result(L, mx_loop_wait_timer(mx_get_loop(L), token, check_deadline(L, 2)), "wait_timer");
}

/* wait_external (token, deadline?)  [-0, +0, e] */
static int l_wait_external(lua_State *L)
{
    int token = check_token(L, 1);
    return result(L, mx_loop_wait_external(mx_get_loop(L), token, opt_deadline(L, 2)), "wait_external");
}

/* wake (token)  [-0, +0, e]  for Lua-level events (join, semaphores) */
static int l_wake(lua_State *L)
{
    mx_loop_wake(mx_get_loop(L), check_token(L, 1), MX_WAKE_READY);
    return 0;
}

/* disarm (token)  [-0, +0, e] */
static int l_disarm(lua_State *L)
{
    mx_loop_disarm(mx_get_loop(L), check_token(L, 1));
    return 0;
}

/* step (max_wait?)  [-0, +1, e]  -> { token, reason, token, reason, ... }
 * reason: "ready" | "timeout" | "signal" (token 0) */
static int l_step(lua_State *L)
{
    /* (int)NaN ms is undefined; nil, not math.huge, waits without a bound */
    double max_wait = lua_isnoneornil(L, 1) ? -1.0 : mx_check_finite(L, 1, "max_wait");
    const mx_wake *w;
    mx_watchdog_idle(); /* waiting is no slice of a task */
    int n = mx_loop_step(mx_get_loop(L), max_wait, &w);
    lua_createtable(L, 2 * n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, w[i].token);
        lua_rawseti(L, -2, 2 * i + 1);
        lua_pushstring(L, w[i].reason == MX_WAKE_TIMEOUT  ? "timeout"
                          : w[i].reason == MX_WAKE_SIGNAL ? "signal"
                                                          : "ready");
        lua_rawseti(L, -2, 2 * i + 2);
    }
    return 1;
}

/* armed ()  [-0, +1, e] */
static int l_armed(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)mx_loop_armed(mx_get_loop(L)));
    return 1;
}

/* catch_signals ()  [-0, +1, e]  SIGINT/SIGTERM become "signal" wake-ups */
static int l_catch_signals(lua_State *L)
{
    lua_pushboolean(L, mx_loop_catch_signals(mx_get_loop(L)) == 0);
    return 1;
}

/* signals_caught ()  [-0, +1, -]  SIGINT/SIGTERM caught so far (a counter):
 * mxprobe.runtime.budget polls it from an instruction hook, so that Lua
 * which never yields can still be interrupted */
static int l_signals_caught(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)mx_loop_signals_caught());
    return 1;
}

static const luaL_Reg loop_funcs[] = {
    {"now", l_now},
    {"wall", l_wall},
    {"wait_fd", l_wait_fd},
    {"wait_timer", l_wait_timer},
    {"wait_external", l_wait_external},
    {"wake", l_wake},
    {"disarm", l_disarm},
    {"step", l_step},
    {"armed", l_armed},
    {"catch_signals", l_catch_signals},
    {"signals_caught", l_signals_caught},
    {NULL, NULL},
};

int mx_open_loop(lua_State *L)
{
    luaL_newlib(L, loop_funcs);
    return 1;
}
