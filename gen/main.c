/* main.c: the convgen command. All the work happens in Lua (gen/convgen/cli.lua);
 * main only runs it in protected mode and turns the result into an exit status. */
#include "host.h"

#include <lauxlib.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    char err[512];
    lua_State *L = convgen__host_new(err, sizeof err);
    if (!L) {
        fprintf(stderr, "convgen: error: %s\n", err);
        return 1;
    }
    lua_createtable(L, argc, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    int status = convgen__host_call(L, "convgen.cli", "main", 1, 1);
    int code;
    if (status != LUA_OK) {
        /* A bug in convgen, not bad input: show where. */
        fprintf(stderr, "convgen: internal error: %s\n", lua_tostring(L, -1));
        code = 3;
    } else {
        code = (int)luaL_optinteger(L, -1, 0);
    }
    convgen__host_close(L);
    return code;
}
