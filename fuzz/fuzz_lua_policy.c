/*
 * fuzz_lua_policy.c - libFuzzer target that runs Lua: fuzz/lua/policy.lua drives
 * the mxprobe Lua code (see that file for the input format and the
 * invariants; fuzz/lua_harness.h for the state, budget and memory cap).
 */
#include "lua_harness.h"

FUZZ_LUA_TARGET("policy")
