/* backend.h: compiled layer code from either backend (internal). */
#ifndef CONVGEN_BACKEND_H
#define CONVGEN_BACKEND_H

#include <stddef.h>

enum { CONVGEN__BACKEND_TCC = 0, CONVGEN__BACKEND_CC = 1 };

/* Failure kinds, so callers can map them to public statuses. */
enum { CONVGEN__CODE_OK = 0, CONVGEN__CODE_COMPILE, CONVGEN__CODE_NO_COMPILER, CONVGEN__CODE_SYSTEM };

typedef struct convgen__code convgen__code;

/* Compiles standalone C source and finds `symbol` in it.
 *   tcc: in memory with libtcc (see jit.h).
 *   cc:  the system C compiler ($CC, default "cc", flags $CONVGEN_CC_FLAGS,
 *        default "-O2 -march=native") into a shared object in a private
 *        temporary directory, run with an argument vector (no shell), then
 *        dlopen; the files are removed before returning.
 * Returns NULL with *kind set and a message in err. */
convgen__code *convgen__code_compile(const char *source, const char *symbol, int backend, int *kind,
                                     char *err, size_t err_size);

/* The compiled function's address. */
void *convgen__code_function(const convgen__code *code);

/* The address of another global symbol of the code, or NULL. */
void *convgen__code_symbol(const convgen__code *code, const char *name);

/* Frees the code; accepts NULL. */
void convgen__code_free(convgen__code *code);

#endif
