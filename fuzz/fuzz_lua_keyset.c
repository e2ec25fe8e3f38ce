/*
 * fuzz_lua_keyset.c - libFuzzer target that runs Lua: fuzz/lua/keyset.lua
 * drives core.keyset (core/l_keyset.c, the audit's set of input names)
 * against a Lua table (see that file for the input format and the
 * invariants; fuzz/lua_harness.h for the state, budget and memory cap).
 */
#include "lua_harness.h"

FUZZ_LUA_TARGET("keyset")
