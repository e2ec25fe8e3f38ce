/* placeholder until the dns binding lands */
#include "bindings.h"
int mx_open_dns(lua_State *L) { lua_newtable(L); return 1; }
