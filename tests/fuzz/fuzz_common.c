/* fuzz_common.c: the Lua state of the fuzz targets and Lua coverage. */
#include "fuzz.h"

#include "host.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_DRIVER
#error "build with -DFUZZ_DRIVER=\"path/to/tests/fuzz/driver.lua\""
#endif

#ifdef CONVGEN_FUZZ_COVERAGE
/* libFuzzer reads every byte of this section as coverage (its "extra
 * counters"), clearing it before each input. A line hook hashes each
 * (previous line, line) step of the Lua code into it, edges as its own
 * instrumentation counts them in C. */
#define LUA_EDGES (1u << 16)
__attribute__((section("__libfuzzer_extra_counters"))) static uint8_t lua_edges[LUA_EDGES];
static uintptr_t previous_line;

static void line_hook(lua_State *L, lua_Debug *ar)
{
    if (!lua_getinfo(L, "S", ar))
        return;
    uintptr_t here = ((uintptr_t)ar->source * 0x9E3779B97F4A7C15ull) ^ ((uintptr_t)ar->currentline * 0x85EBCA6Bu);
    uint8_t *c = &lua_edges[(here ^ previous_line) & (LUA_EDGES - 1)];
    if (*c < 255)
        ++*c;
    previous_line = here >> 1;
}

/* The Lua spec sandbox sets its own (count) hook and clears all hooks
 * afterwards; debug.sethook is wrapped so that clearing brings the line hook back. */
static int restore_hook(lua_State *L)
{
    lua_sethook(L, line_hook, LUA_MASKLINE, 0);
    return 0;
}

static const char WRAP_SETHOOK[] =
    "local original, restore = debug.sethook, ...\n"
    "debug.sethook = function(...)\n"
    "  original(...)\n"
    "  if select('#', ...) == 0 then restore() end\n"
    "end\n";
#endif

void fuzz_crash(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz: %s\n%s\n", what, detail ? detail : "");
    fflush(stderr);
    abort();
}

void fuzz_check_diagnostic(lua_State *L, const char *label)
{
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    if (!text || len == 0)
        fuzz_crash("refused without a message", NULL);
    char prefix[256];
    int n = snprintf(prefix, sizeof prefix, "convgen: %s: ", label);
    const char *line = text, *end = text + len;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *stop = nl ? nl : end;
        if ((size_t)(stop - line) < (size_t)n || memcmp(line, prefix, (size_t)n) != 0)
            fuzz_crash("a diagnostic line does not name the spec", text);
        for (const char *c = line; c < stop; c++) {
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                fuzz_crash("a control character in a diagnostic", text);
        }
        line = nl ? nl + 1 : end;
    }
}

lua_State *fuzz_state(void)
{
    static lua_State *L;
    if (L)
        return L;
    char err[512];
    L = convgen__host_new(err, sizeof err);
    if (!L)
        fuzz_crash("cannot create the Lua state", err);
    if (luaL_loadfile(L, FUZZ_DRIVER) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
        fuzz_crash("cannot load " FUZZ_DRIVER, lua_tostring(L, -1));
    lua_setfield(L, LUA_REGISTRYINDEX, "convgen.fuzz.driver");
#ifdef CONVGEN_FUZZ_COVERAGE
    if (luaL_loadstring(L, WRAP_SETHOOK) != LUA_OK)
        fuzz_crash("cannot wrap debug.sethook", lua_tostring(L, -1));
    lua_pushcfunction(L, restore_hook);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK)
        fuzz_crash("cannot wrap debug.sethook", lua_tostring(L, -1));
    if (!getenv("CONVGEN_FUZZ_NO_LUA_COVERAGE"))
        lua_sethook(L, line_hook, LUA_MASKLINE, 0);
#endif
    return L;
}

fuzz_status fuzz_call(lua_State *L, const char *function, int nargs)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "convgen.fuzz.driver");
    lua_getfield(L, -1, function);
    lua_remove(L, -2);
    lua_insert(L, -nargs - 1);
    if (lua_pcall(L, nargs, 2, 0) != LUA_OK)
        fuzz_crash("the fuzz driver failed", lua_tostring(L, -1));
    const char *status = lua_tostring(L, -2);
    fuzz_status s = FUZZ_INTERNAL;
    if (status && status[0] == 'o')
        s = FUZZ_OK;
    else if (status && status[0] == 'r')
        s = FUZZ_REFUSED;
    else if (status && status[0] == 'm')
        s = FUZZ_MODEL;
    lua_remove(L, -2);
    return s;
}
