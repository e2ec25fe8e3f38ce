/* placeholder until the net binding lands */
#include "bindings.h"
int mx_open_net(lua_State *L) { lua_newtable(L); return 1; }
