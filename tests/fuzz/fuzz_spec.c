/* fuzz_spec.c: a front-end and the validation behind it on arbitrary text.
 * Built twice: FUZZ_LABEL "fuzz.json" (Keras JSON) and "fuzz.lua" (Lua specs).
 * Every input must be accepted or refused with a diagnostic naming the file;
 * any other error (a Lua error inside the generator, a crash) is a bug. */
#include "fuzz.h"

#include <lua.h>

#ifndef FUZZ_LABEL
#error "build with -DFUZZ_LABEL=\"fuzz.json\" or \"fuzz.lua\""
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_state();
    lua_pushlstring(L, (const char *)data, size);
    lua_pushstring(L, FUZZ_LABEL);
    fuzz_status s = fuzz_call(L, "describe", 2);
    if (s == FUZZ_INTERNAL)
        fuzz_crash("internal error in the generator", lua_tostring(L, -1));
    if (s == FUZZ_REFUSED)
        fuzz_check_diagnostic(L, FUZZ_LABEL);
    lua_settop(L, 0);
    return 0;
}
