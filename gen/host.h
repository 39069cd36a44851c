/* host.h: a Lua state running the embedded generator (internal). */
#ifndef CONVGEN_HOST_H
#define CONVGEN_HOST_H

#include <stddef.h>
#include <lua.h>

/* Creates a Lua state with the standard libraries, the native module
 * `convgen.native` and every generator module and template compiled into
 * this program, so no convgen files are needed at run time.
 * Returns NULL with a message in err. */
lua_State *convgen__host_new(char *err, size_t err_size);

/* Closes a state from convgen__host_new; accepts NULL. */
void convgen__host_close(lua_State *L);

/* Calls module.function(args...) for the `nargs` values on the stack, in
 * protected mode with a traceback. Returns LUA_OK with nresults values on the
 * stack, or an error status with the message on the stack. */
int convgen__host_call(lua_State *L, const char *module, const char *function, int nargs, int nresults);

/* The float data and element count of the tensor at index, or NULL when the
 * value there is not a tensor (see native.read_npy). */
const float *convgen__host_tensor(lua_State *L, int index, size_t *count);

/* One embedded file: a Lua module (name "convgen.cli") or a template
 * (name "templates/layer.c.in"). The table is generated at build time. */
struct convgen__embedded {
    const char *name;
    const char *path;
    const char *text;
    size_t size;
};
extern const struct convgen__embedded convgen__embedded_files[];

#endif
