/*
 * fuzz_lua_ehlo.c - libFuzzer target that runs Lua: fuzz/lua/ehlo.lua drives
 * the EHLO extension parser (see that file for the input format and the
 * invariants; fuzz/lua_harness.h for the state, budget and memory cap).
 */
#include "lua_harness.h"

FUZZ_LUA_TARGET("ehlo")
