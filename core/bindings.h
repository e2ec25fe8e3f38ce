/*
 * bindings.h - what every core/l_*.c binding file shares.
 *
 * Each l_<name>.c defines one luaL_Reg and one opener mx_open_<name>, which
 * pushes the table that becomes require("mxprobe.core").<name>.  All openers
 * are registered from the single list in bindings.c.
 *
 * Conventions (GUIDE section 3): a binding does one non-blocking step and
 * returns a value, or nil, "again", "r"|"w"|"rw" (wait and call again), or
 * nil, code, detail.  Only lua/mxprobe/loop.lua yields.
 */
#ifndef MX_BINDINGS_H
#define MX_BINDINGS_H

#include <lua.h>
#include <lauxlib.h>
#include "loop.h"

/* [-0, +0, e] the loop of this Lua state, created on first use */
mx_loop *mx_get_loop(lua_State *L);
/* [-0, +0, -] the loop if it exists and is still open, else NULL; never
 * raises or creates one, so __gc metamethods may call it during lua_close */
mx_loop *mx_peek_loop(lua_State *L);

/* [-0, +3, -] push nil, code, formatted detail; returns 3 */
int mx_fail(lua_State *L, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* [-0, +3, -] push nil, "again", "r"|"w"|"rw"; returns 3 */
int mx_again(lua_State *L, unsigned want);
/* [-0, +0, v] "r" | "w" | "rw" argument -> MX_READ|MX_WRITE */
unsigned mx_check_events(lua_State *L, int idx);

int mx_open_loop(lua_State *L);
int mx_open_net(lua_State *L);
int mx_open_smtp(lua_State *L);
int mx_open_dns(lua_State *L);
int mx_open_tls(lua_State *L);
int mx_open_x509(lua_State *L);
int mx_open_idn(lua_State *L);
int mx_open_term(lua_State *L);  /* l_term.c: isatty, window size, display width */
int mx_open_digest(lua_State *L);
int mx_open_http(lua_State *L);
int mx_open_fs(lua_State *L);
int mx_open_libs(lua_State *L);  /* l_libs.c: library versions */
int mx_open_jsonpick(lua_State *L);  /* l_jsonpick.c: decode only the parts asked for (mxprobe report) */
int mx_open_json(lua_State *L);  /* l_json.c: report/json.lua's encoder walk */
int mx_open_copy(lua_State *L);  /* l_copy.c: the engine's deep copy of shared findings */
int mx_open_keyset(lua_State *L); /* l_keyset.c: a compact set of strings (audit input names) */
int mx_open_watchdog(lua_State *L); /* l_watchdog.c: stops runaway Lua without an instruction hook */
/* l_watchdog.c: no Lua runs from here until the next slice (the loop waits) */
void mx_watchdog_idle(void);

/* [-0, +1, e] the whole core table: { loop=, net=, smtp=, dns=, tls=, x509=, idn=, term=, digest=, http=, fs= } */
int luaopen_mxprobe_core(lua_State *L);

#endif
