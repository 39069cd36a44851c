/* fuzz.h: what the fuzz targets share. Each target defines
 * LLVMFuzzerTestOneInput; built with -fsanitize=fuzzer it is a libFuzzer
 * program (make fuzz), built with replay.c it runs the files of its corpus
 * once each as a cmocka test (make test). */
#ifndef CONVGEN_FUZZ_H
#define CONVGEN_FUZZ_H

#include <stddef.h>
#include <stdint.h>

struct lua_State;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The generator's Lua state with tests/fuzz/driver.lua loaded, made once.
 * Under libFuzzer, Lua line coverage feeds the fuzzer's extra counters, so
 * the Lua front-ends and validation guide it as the C code does. */
struct lua_State *fuzz_state(void);

/* FUZZ_MODEL: the spec was a whole model, built and generated. */
typedef enum { FUZZ_OK, FUZZ_REFUSED, FUZZ_INTERNAL, FUZZ_MODEL } fuzz_status;

/* Calls driver.<function> with the nargs values on the stack. Leaves one
 * value: the result (FUZZ_OK) or the message. FUZZ_INTERNAL means the
 * generator failed with something other than a diagnostic. */
fuzz_status fuzz_call(struct lua_State *L, const char *function, int nargs);

/* Checks the diagnostic text at the top of the stack: one line per message,
 * each `convgen: <label>: error|warning: ...`, no control characters. */
void fuzz_check_diagnostic(struct lua_State *L, const char *label);

/* Prints what went wrong with the input and aborts: the crash libFuzzer records. */
void fuzz_crash(const char *what, const char *detail);

#endif
