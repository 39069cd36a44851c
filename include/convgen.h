/*
 * convgen.h: compile Keras convolution layers into callable kernels at run time.
 *
 * Link with libconvgen.a and its dependencies:
 *     cc app.c -Iinclude build/libconvgen.a -llua5.4 -l:libtcc.a -lzip -lhdf5_serial -ldl -lpthread -lm
 * The generator is compiled into the library; no convgen file is needed at
 * run time.
 *
 * Example: a SeparableConv2D from a spec string, weights in memory.
 *
 *     #include "convgen.h"
 *
 *     convgen_context *ctx;
 *     convgen_kernel *layer;
 *     char message[1024];
 *     if (convgen_context_create(&ctx) != CONVGEN_OK)
 *         return 1;
 *
 *     convgen_spec spec = CONVGEN_SPEC_INIT;
 *     spec.text = "{\"class_name\": \"SeparableConv2D\", \"config\": {\"filters\": 16,"
 *                 " \"kernel_size\": 3, \"padding\": \"same\", \"depth_multiplier\": 2,"
 *                 " \"activation\": \"relu\"}, \"build_config\": {\"input_shape\": [null, 16, 16, 8]}}";
 *     const float *weights[] = {depthwise_kernel, pointwise_kernel, bias};  // Keras order and layouts
 *     spec.weights = weights;
 *     spec.num_weights = 3;
 *
 *     convgen_status s = convgen_compile(ctx, &spec, &layer, message, sizeof message);
 *     if (s != CONVGEN_OK) {
 *         fprintf(stderr, "%s: %s\n", convgen_strerror(s), message);
 *         return 1;
 *     }
 *     convgen_kernel_run(layer, input, output, batch);   // any thread, any number at once
 *     convgen_kernel_destroy(layer);
 *     convgen_context_destroy(ctx);
 *
 * Specs are the same texts `convgen generate` reads (README.md: Keras JSON or
 * a Lua spec) with the same errors. Input and output are float arrays in
 * the layer's data format, `batch` items back to back.
 *
 * Threads: every function may be called from any thread at once; a context
 * and a kernel may be shared. Compiles are serialized only where libtcc
 * requires it. A kernel is immutable once compiled.
 *
 * Failures: every call returns a convgen_status; convgen_compile also writes
 * the detailed message (file, field) into the caller's buffer. On failure
 * outputs are left untouched.
 */
#ifndef CONVGEN_H
#define CONVGEN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status of every call. */
typedef enum convgen_status {
    CONVGEN_OK = 0,
    CONVGEN_ERROR_ARGUMENT,    /* a NULL pointer or an out-of-range value */
    CONVGEN_ERROR_SPEC,        /* the spec is invalid; the message names the field */
    CONVGEN_ERROR_WEIGHTS,     /* weights missing, of the wrong shape, or unreadable */
    CONVGEN_ERROR_COMPILE,     /* the backend compiler refused the generated code */
    CONVGEN_ERROR_NO_COMPILER, /* the cc backend found no C compiler ($CC, else cc) */
    CONVGEN_ERROR_MEMORY,      /* out of memory */
    CONVGEN_ERROR_SYSTEM       /* a system call failed (temporary files, dlopen) */
} convgen_status;

/* A short, static description of a status. */
const char *convgen_strerror(convgen_status status);

/* The library's version, e.g. "0.1.0". */
const char *convgen_version(void);

/* How kernels are compiled. */
typedef enum convgen_backend {
    CONVGEN_BACKEND_TCC = 0, /* in-process libtcc: fast to compile (default); the code it
                                builds drives the library's precompiled microkernels */
    CONVGEN_BACKEND_CC = 1   /* the system C compiler ($CC, default cc; flags $CONVGEN_CC_FLAGS,
                                default "-O2 -march=native") into a shared object, then dlopen:
                                slower to compile, faster to run */
} convgen_backend;

/* What to compile. Start from CONVGEN_SPEC_INIT and set what you need. */
typedef struct convgen_spec {
    const char *text;             /* the spec: Keras layer JSON or a Lua spec (required) */
    const char *label;            /* its name in messages; a name ending in ".lua" selects
                                     the Lua format (default "<spec>") */
    const float *const *weights;  /* weights in memory, in Keras order and layouts (see
                                     README.md, Weights), copied by convgen_compile... */
    int num_weights;              /* ...this many of them; or */
    const char *weights_dir;      /* a directory of .npy files named as Keras names them */
    const char *input_shape;      /* optional input shape overriding the spec's, "1,32,32,3" */
    int keras_version;            /* 2 or 3; 0 means 3 (only hard_sigmoid differs) */
    convgen_backend backend;
    const char *target;           /* code target. tcc: "hybrid" (the default: a driver calling
                                     the library's precompiled SIMD microkernels, AVX2 or
                                     scalar as the CPU allows) or "scalar" (all C, built by
                                     tcc). cc: "native" (the default: the best for this CPU),
                                     "avx2" or "scalar" */
} convgen_spec;

#define CONVGEN_SPEC_INIT {NULL, NULL, NULL, 0, NULL, NULL, 0, CONVGEN_BACKEND_TCC, NULL}

typedef struct convgen_context convgen_context;
typedef struct convgen_kernel convgen_kernel;

/* Creates a context: a pool of generators and a cache of compiled kernels. */
convgen_status convgen_context_create(convgen_context **out);

/* Destroys a context and its cache; accepts NULL. Kernels still held by
 * the caller stay valid until they are destroyed. */
void convgen_context_destroy(convgen_context *ctx);

/* Compiles spec into a kernel. The weights (from memory or weights_dir) are
 * copied, so the caller's buffers may be freed afterwards. Compiling the same
 * spec text, options and weights again returns the cached kernel (one more
 * reference: destroy each). On failure *out is untouched and, when message is
 * not NULL, the detailed message is written there (truncated to message_size). */
convgen_status convgen_compile(convgen_context *ctx, const convgen_spec *spec, convgen_kernel **out,
                               char *message, size_t message_size);

/* Runs a kernel on `batch` items: input holds batch * convgen_kernel_input_size
 * floats, output receives batch * convgen_kernel_output_size; they must not
 * overlap. Reentrant: any number of threads may run one kernel at once. A
 * call allocates nothing and uses up to 192 KiB of the calling thread's stack
 * (a Winograd layer of 256 x 256 channels: 16 x 6 x (input + output
 * channels) floats; the buffers of other layers take at most 64 KiB). */
convgen_status convgen_kernel_run(const convgen_kernel *kernel, const float *input, float *output, int batch);

/* Floats per batch item of the input and output. */
size_t convgen_kernel_input_size(const convgen_kernel *kernel);
size_t convgen_kernel_output_size(const convgen_kernel *kernel);

/* Input or output shape without the batch axis, in the layer's data format
 * (e.g. 16, 16, 8 for channels_last 2D): writes up to max_dims sizes into
 * dims and returns the number of axes (3 for 2D layers, 2 for 1D). */
int convgen_kernel_input_shape(const convgen_kernel *kernel, long *dims, int max_dims);
int convgen_kernel_output_shape(const convgen_kernel *kernel, long *dims, int max_dims);

/* Rows of one batch item (see convgen_kernel_run_rows): its output rows; for
 * a layer of one output row (every 1D layer), segments of that row instead
 * (up to 16; all but the last of at least 16 output columns), so that a
 * pool splits 1D layers too. */
size_t convgen_kernel_rows_per_item(const convgen_kernel *kernel);

/* How many rows the kernel computes together within an item: 2 for a
 * layer run by Winograd F(2x2, 3x3), 1 otherwise (0 for NULL). A range of
 * convgen_kernel_run_rows that starts or ends inside such a group computes
 * the whole group (the output is the same): a thread pool of your own does
 * best to split an item's rows at multiples of it, as convgen_kernel_run_pool
 * does. */
int convgen_kernel_row_granule(const convgen_kernel *kernel);

/* Computes rows [first, first + count) of a batch of batch *
 * convgen_kernel_rows_per_item rows: for a caller's own thread pool, which
 * may run disjoint ranges at once; together they equal convgen_kernel_run.
 * Its stack use is convgen_kernel_run's. */
convgen_status convgen_kernel_run_rows(const convgen_kernel *kernel, const float *input, float *output, int first,
                                       int count);

/* A small pool of threads that splits a kernel's rows among them. */
typedef struct convgen_pool convgen_pool;

/* Creates a pool of `threads` threads in all, the calling thread included
 * (threads - 1 workers are started). */
convgen_status convgen_pool_create(int threads, convgen_pool **out);

/* Stops the workers and frees the pool; accepts NULL. */
void convgen_pool_destroy(convgen_pool *pool);

/* convgen_kernel_run with the rows split evenly across the pool's threads
 * (at multiples of convgen_kernel_row_granule within each item).
 * Calls on one pool are serialized; use one pool per calling thread for more. */
convgen_status convgen_kernel_run_pool(const convgen_kernel *kernel, convgen_pool *pool, const float *input,
                                       float *output, int batch);

/* Releases one reference to a kernel; its code is freed with the last one.
 * Accepts NULL. */
void convgen_kernel_destroy(convgen_kernel *kernel);

/* The cache keeps at most max_kernels kernels (default 64), dropping the least
 * recently used; 0 turns caching off. */
void convgen_cache_set_limit(convgen_context *ctx, size_t max_kernels);

/* Drops every cached kernel (kernels held by callers stay valid). */
void convgen_cache_clear(convgen_context *ctx);

/* Number of kernels in the cache. */
size_t convgen_cache_size(convgen_context *ctx);

#ifdef __cplusplus
}
#endif

#endif
