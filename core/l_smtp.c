/* placeholder until the smtp binding lands */
#include "bindings.h"
int mx_open_smtp(lua_State *L) { lua_newtable(L); return 1; }
