/* placeholder until the tls binding lands */
#include "bindings.h"
int mx_open_tls(lua_State *L) { lua_newtable(L); return 1; }
