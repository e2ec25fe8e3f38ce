/*
 * fuzz_lua_writers.c - libFuzzer target that runs Lua: fuzz/lua/writers.lua drives
 * the mxprobe Lua code (see that file for the input format and the
 * invariants; fuzz/lua_harness.h for the state, budget and memory cap).
 */
#include "lua_harness.h"

FUZZ_LUA_TARGET("writers")
