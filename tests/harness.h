/* harness.h: what the C tests share: the embedded generator, compilers,
 * temporary files and float comparison. */
#ifndef CONVGEN_TEST_HARNESS_H
#define CONVGEN_TEST_HARNESS_H

#include <stddef.h>

struct lua_State;

/* Signatures of generated layer functions. */
typedef void (*layer_runtime_fn)(const float *input, float *output, int batch, const float *const weights[]);
typedef void (*layer_baked_fn)(const float *input, float *output, int batch);

/* The generator, embedded as in bin/convgen. */
struct lua_State *harness_host(void);

/* Generates standalone C (no #include of its header) from spec text.
 * weights_dir NULL means weights at run time. Returns a malloc'd source, or
 * NULL with the generator's message in a malloc'd *err. */
char *harness_generate(struct lua_State *L, const char *spec_text, const char *label, const char *name,
                       const char *weights_dir, const char *unroll, int keras_version, const char *target,
                       char **err);

/* A number the run-time library reads from the generator's plan for this
 * spec (convgen.api.prepare): "packed_size", the floats the generated
 * <name>_pack writes (0 when the layer reads no packed weights), or
 * "rows_per_item", what the <name>_rows entry point counts per batch item
 * (default unrolling); -1 if the spec is refused. */
long harness_plan_value(struct lua_State *L, const char *spec_text, int keras_version, const char *target,
                        const char *field);

/* A fresh directory under $TMPDIR (or /tmp); harness_remove_tree deletes it. */
char *harness_tempdir(void);
void harness_remove_tree(const char *dir);

/* Writes bytes to dir/name (creating nothing else); returns the malloc'd path. */
char *harness_write(const char *dir, const char *name, const void *data, size_t size);

/* Reads a whole file; NULL if it does not exist. */
char *harness_read(const char *path, size_t *size);

/* Runs argv (no shell), stdout and stderr captured into *output (malloc'd).
 * Returns the exit status, or -1 if it could not run. */
int harness_run(char *const argv[], char **output);

/* Compiles c_path into a shared object with `compiler` and strict warnings
 * as errors (AVX2 and FMA enabled, for the avx2 target), then opens it. Returns the dlopen handle, or NULL with the
 * compiler's output in a malloc'd *log. */
void *harness_compile_shared(const char *compiler, const char *c_path, const char *so_path, char **log);

/* A growing text buffer (several generated sources compiled as one file). */
typedef struct {
    char *text;
    size_t len, cap;
} harness_buffer;
void harness_append(harness_buffer *b, const char *text);

/* n floats between two inaccessible pages, so a kernel reading or writing one
 * float past either end faults at once. With at_end the last float touches the
 * upper guard page; otherwise the first float follows the lower one. */
typedef struct {
    void *map;
    size_t map_size;
    float *data;
    size_t data_pages_offset, data_pages_size; /* for harness_guarded_readonly */
} harness_guarded;
float *harness_guarded_alloc(harness_guarded *g, long n, int at_end);
/* Makes the floats read-only: a write faults (inputs and weights). */
void harness_guarded_readonly(harness_guarded *g);
void harness_guarded_free(harness_guarded *g);

/* Deterministic uniform floats in [lo, hi). */
void harness_fill(float *x, long n, unsigned long long *state, float lo, float hi);

/* Index of the first element outside |got - want| <= atol + rtol * |want|, or -1. */
long harness_mismatch(const float *got, const float *want, long n, double rtol, double atol);

#endif
