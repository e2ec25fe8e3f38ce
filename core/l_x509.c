/* placeholder until the x509 binding lands */
#include "bindings.h"
int mx_open_x509(lua_State *L) { lua_newtable(L); return 1; }
