/*
 * fuzz_lua_jsonpick.c - libFuzzer target that runs Lua: fuzz/lua/jsonpick.lua
 * holds core.jsonpick (core/l_jsonpick.c, the report's partial JSON
 * decoder) against lua-cjson (see that file for the input format and the
 * invariants; fuzz/lua_harness.h for the state, budget and memory cap).
 */
#include "lua_harness.h"

FUZZ_LUA_TARGET("jsonpick")
