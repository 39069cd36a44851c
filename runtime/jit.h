/* jit.h: the one owner of libtcc's call order (internal). */
#ifndef CONVGEN_JIT_H
#define CONVGEN_JIT_H

#include <stddef.h>

typedef struct convgen__jit convgen__jit;

/* Compiles C source in memory with libtcc. Every symbol the code may call
 * (the libm functions listed by convgen__jit_symbol_name) is registered
 * explicitly, so nothing depends on what the host process exports.
 * werror makes warnings errors. Returns NULL with tcc's messages in err. */
convgen__jit *convgen__jit_compile(const char *source, int werror, char *err, size_t err_size);

/* Address of a global symbol of the compiled code, or NULL. */
void *convgen__jit_symbol(convgen__jit *jit, const char *name);

/* Frees the code; accepts NULL. Function pointers from it die with it. */
void convgen__jit_free(convgen__jit *jit);

/* Name of the i-th host symbol registered for generated code, NULL past the end. */
const char *convgen__jit_symbol_name(int i);

/* The ISA of the microkernels a hybrid driver compiled now calls ("avx2",
 * "scalar"): the best the CPU runs, or $CONVGEN_ISA when it names another. */
const char *convgen__jit_isa(void);

#endif
