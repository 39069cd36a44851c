/* test_library.c: the run-time library (include/convgen.h): compiling specs
 * into kernels with both backends, errors, the cache, lifetimes, threads. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "convgen.h"
#include "convgen_npy.h"
#include "harness.h"
#include "reference.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#define EXAMPLE "examples/separable"

/* The bundled example: spec text, weights in memory, input and Keras's output. */
typedef struct {
    char *spec;
    convgen_npy_array w[3], input, expected;
    const float *weights[3];
} example;

static void load(const char *file, convgen_npy_array *a)
{
    char path[256], err[256];
    snprintf(path, sizeof path, EXAMPLE "/%s", file);
    if (convgen_npy_load(path, a, err, sizeof err) != 0)
        fail_msg("%s: %s", path, err);
}

static example *example_load(void)
{
    example *e = calloc(1, sizeof *e);
    e->spec = harness_read(EXAMPLE "/spec.json", NULL);
    assert_non_null(e->spec);
    load("weights/depthwise_kernel.npy", &e->w[0]);
    load("weights/pointwise_kernel.npy", &e->w[1]);
    load("weights/bias.npy", &e->w[2]);
    load("input.npy", &e->input);
    load("expected.npy", &e->expected);
    for (int i = 0; i < 3; i++)
        e->weights[i] = e->w[i].data;
    return e;
}

static void example_free(example *e)
{
    for (int i = 0; i < 3; i++)
        convgen_npy_free(&e->w[i]);
    convgen_npy_free(&e->input);
    convgen_npy_free(&e->expected);
    free(e->spec);
    free(e);
}

static convgen_spec example_spec(const example *e)
{
    convgen_spec spec = CONVGEN_SPEC_INIT;
    spec.text = e->spec;
    spec.label = EXAMPLE "/spec.json";
    spec.weights = e->weights;
    spec.num_weights = 3;
    return spec;
}

/* Runs k on the example input and compares with Keras's output. */
static void check_against_keras(const example *e, const convgen_kernel *k)
{
    float *out = malloc(e->expected.count * sizeof(float));
    assert_int_equal(convgen_kernel_run(k, e->input.data, out, 1), CONVGEN_OK);
    long bad = harness_mismatch(out, e->expected.data, e->expected.count, 1e-4, 2e-5);
    if (bad >= 0)
        fail_msg("output[%ld] = %g, Keras %g", bad, (double)out[bad], (double)e->expected.data[bad]);
    free(out);
}

/* A spec string and weights in memory compile into a kernel that matches Keras, with either backend. */
static void test_compile_and_run_both_backends(void **state)
{
    (void)state;
    example *e = example_load();
    convgen_context *ctx;
    assert_int_equal(convgen_context_create(&ctx), CONVGEN_OK);
    for (int b = 0; b < 2; b++) {
        convgen_spec spec = example_spec(e);
        spec.backend = b ? CONVGEN_BACKEND_CC : CONVGEN_BACKEND_TCC;
        convgen_kernel *k = NULL;
        char msg[1024] = "";
        convgen_status s = convgen_compile(ctx, &spec, &k, msg, sizeof msg);
        if (s != CONVGEN_OK)
            fail_msg("backend %d: %s: %s", b, convgen_strerror(s), msg);
        check_against_keras(e, k);
        convgen_kernel_destroy(k);
    }
    convgen_context_destroy(ctx);
    example_free(e);
}

/* Weights from a directory of .npy files work as weights in memory do. */
static void test_weights_dir(void **state)
{
    (void)state;
    example *e = example_load();
    convgen_context *ctx;
    assert_int_equal(convgen_context_create(&ctx), CONVGEN_OK);
    convgen_spec spec = example_spec(e);
    spec.weights = NULL;
    spec.num_weights = 0;
    spec.weights_dir = EXAMPLE "/weights";
    convgen_kernel *k;
    char msg[1024];
    assert_int_equal(convgen_compile(ctx, &spec, &k, msg, sizeof msg), CONVGEN_OK);
    check_against_keras(e, k);
    /* The same directory again: the cached kernel. */
    convgen_kernel *again;
    assert_int_equal(convgen_compile(ctx, &spec, &again, msg, sizeof msg), CONVGEN_OK);
    assert_ptr_equal(again, k);
    convgen_kernel_destroy(again);
    convgen_kernel_destroy(k);
    convgen_context_destroy(ctx);
    example_free(e);
}

/* A kernel reports its input and output shapes and sizes. */
static void test_shapes(void **state)
{
    (void)state;
    example *e = example_load();
    convgen_context *ctx;
    convgen_context_create(&ctx);
    convgen_spec spec = example_spec(e);
    convgen_kernel *k;
    assert_int_equal(convgen_compile(ctx, &spec, &k, NULL, 0), CONVGEN_OK);
    long dims[4] = {0};
    assert_int_equal(convgen_kernel_input_shape(k, dims, 4), 3);
    assert_int_equal(dims[0], 16);
    assert_int_equal(dims[1], 16);
    assert_int_equal(dims[2], 8);
    assert_int_equal(convgen_kernel_output_shape(k, dims, 4), 3);
    assert_int_equal(dims[2], 16);
    assert_int_equal(convgen_kernel_input_size(k), 16 * 16 * 8);
    assert_int_equal(convgen_kernel_output_size(k), 16 * 16 * 16);
    convgen_kernel_destroy(k);
    convgen_context_destroy(ctx);
    example_free(e);
}

/* Bad arguments, specs and weights fail with their status and message, leaving the output untouched. */
static void test_errors(void **state)
{
    (void)state;
    example *e = example_load();
    convgen_context *ctx;
    convgen_context_create(&ctx);
    convgen_kernel *sentinel = (convgen_kernel *)&sentinel, *k = sentinel;
    char msg[1024];
    convgen_spec spec = example_spec(e);

    assert_int_equal(convgen_compile(NULL, &spec, &k, msg, sizeof msg), CONVGEN_ERROR_ARGUMENT);
    assert_int_equal(convgen_compile(ctx, NULL, &k, msg, sizeof msg), CONVGEN_ERROR_ARGUMENT);
    assert_int_equal(convgen_compile(ctx, &spec, NULL, msg, sizeof msg), CONVGEN_ERROR_ARGUMENT);
    spec.keras_version = 4;
    assert_int_equal(convgen_compile(ctx, &spec, &k, msg, sizeof msg), CONVGEN_ERROR_ARGUMENT);
    assert_non_null(strstr(msg, "(keras_version)"));
    spec = example_spec(e);
    spec.weights_dir = EXAMPLE "/weights"; /* both kinds of weights */
    assert_int_equal(convgen_compile(ctx, &spec, &k, msg, sizeof msg), CONVGEN_ERROR_ARGUMENT);

    spec = example_spec(e);
    spec.text = "{\"class_name\": \"SeparableConv2D\", \"config\": {\"kernel_size\": 3},"
                " \"build_config\": {\"input_shape\": [null, 8, 8, 3]}}";
    spec.label = "layer.json";
    assert_int_equal(convgen_compile(ctx, &spec, &k, msg, sizeof msg), CONVGEN_ERROR_SPEC);
    assert_non_null(strstr(msg, "convgen: layer.json: error: "));
    assert_non_null(strstr(msg, "(config.filters)"));

    spec = example_spec(e);
    spec.num_weights = 2;
    assert_int_equal(convgen_compile(ctx, &spec, &k, msg, sizeof msg), CONVGEN_ERROR_WEIGHTS);
    assert_non_null(strstr(msg, "takes 3 weights: depthwise_kernel (3, 3, 8, 2), pointwise_kernel"));

    spec = example_spec(e);
    spec.weights = NULL;
    spec.num_weights = 0;
    spec.weights_dir = "tests/fixtures/conv2d_same_softmax/weights"; /* another layer's files */
    assert_int_equal(convgen_compile(ctx, &spec, &k, msg, sizeof msg), CONVGEN_ERROR_WEIGHTS);
    assert_non_null(strstr(msg, "depthwise_kernel.npy"));

    spec = example_spec(e);
    spec.input_shape = "1,x";
    assert_int_equal(convgen_compile(ctx, &spec, &k, msg, sizeof msg), CONVGEN_ERROR_SPEC);
    assert_non_null(strstr(msg, "(input_shape)"));

    assert_ptr_equal(k, sentinel);
    assert_int_equal(convgen_kernel_run(NULL, e->input.data, e->expected.data, 1), CONVGEN_ERROR_ARGUMENT);
    convgen_kernel_destroy(NULL);
    convgen_context_destroy(NULL);
    convgen_context_destroy(ctx);
    example_free(e);
}

/* The cc backend without a compiler is a clear error. */
static void test_missing_compiler(void **state)
{
    (void)state;
    example *e = example_load();
    convgen_context *ctx;
    convgen_context_create(&ctx);
    convgen_spec spec = example_spec(e);
    spec.backend = CONVGEN_BACKEND_CC;
    char *saved = getenv("CC") ? strdup(getenv("CC")) : NULL;
    setenv("CC", "/nonexistent/cc", 1);
    convgen_kernel *k = NULL;
    char msg[1024];
    convgen_status s = convgen_compile(ctx, &spec, &k, msg, sizeof msg);
    if (saved)
        setenv("CC", saved, 1);
    else
        unsetenv("CC");
    free(saved);
    assert_int_equal(s, CONVGEN_ERROR_NO_COMPILER);
    assert_non_null(strstr(msg, "/nonexistent/cc"));
    assert_null(k);
    convgen_context_destroy(ctx);
    example_free(e);
}

/* The cache returns the same kernel for the same spec and weights, another
 * for other weights; it can be bounded and cleared, and cached kernels
 * outlive both the cache and the context. */
static void test_cache(void **state)
{
    (void)state;
    example *e = example_load();
    convgen_context *ctx;
    convgen_context_create(&ctx);
    convgen_spec spec = example_spec(e);
    convgen_kernel *a, *b, *c;
    assert_int_equal(convgen_compile(ctx, &spec, &a, NULL, 0), CONVGEN_OK);
    assert_int_equal(convgen_compile(ctx, &spec, &b, NULL, 0), CONVGEN_OK);
    assert_ptr_equal(a, b);
    assert_int_equal(convgen_cache_size(ctx), 1);

    float *bias = malloc(16 * sizeof(float));
    memcpy(bias, e->weights[2], 16 * sizeof(float));
    bias[3] += 1.0f;
    const float *other[3] = {e->weights[0], e->weights[1], bias};
    spec.weights = other;
    assert_int_equal(convgen_compile(ctx, &spec, &c, NULL, 0), CONVGEN_OK);
    assert_ptr_not_equal(c, a);
    assert_int_equal(convgen_cache_size(ctx), 2);
    free(bias); /* weights were copied */

    convgen_cache_set_limit(ctx, 1);
    assert_int_equal(convgen_cache_size(ctx), 1);
    convgen_cache_clear(ctx);
    assert_int_equal(convgen_cache_size(ctx), 0);
    convgen_context_destroy(ctx);
    check_against_keras(e, a); /* still valid */
    convgen_kernel_destroy(a);
    convgen_kernel_destroy(b);
    convgen_kernel_destroy(c);

    convgen_context_create(&ctx);
    convgen_cache_set_limit(ctx, 0);
    spec = example_spec(e);
    assert_int_equal(convgen_compile(ctx, &spec, &a, NULL, 0), CONVGEN_OK);
    assert_int_equal(convgen_compile(ctx, &spec, &b, NULL, 0), CONVGEN_OK);
    assert_ptr_not_equal(a, b);
    assert_int_equal(convgen_cache_size(ctx), 0);
    convgen_kernel_destroy(a);
    convgen_kernel_destroy(b);
    convgen_context_destroy(ctx);
    example_free(e);
}

/* The row entry point in pieces, and pools of 1 to 3 threads, give Keras's output. */
static void test_rows_and_pool(void **state)
{
    (void)state;
    example *e = example_load();
    convgen_context *ctx;
    convgen_context_create(&ctx);
    for (int b = 0; b < 2; b++) {
        convgen_spec spec = example_spec(e);
        spec.backend = b ? CONVGEN_BACKEND_CC : CONVGEN_BACKEND_TCC;
        convgen_kernel *k;
        char msg[1024];
        assert_int_equal(convgen_compile(ctx, &spec, &k, msg, sizeof msg), CONVGEN_OK);
        assert_int_equal(convgen_kernel_rows_per_item(k), 16);
        assert_int_equal(convgen_kernel_row_granule(k), 1);
        float *out = malloc(e->expected.count * sizeof(float));
        assert_int_equal(convgen_kernel_run_rows(k, e->input.data, out, 9, 7), CONVGEN_OK);
        assert_int_equal(convgen_kernel_run_rows(k, e->input.data, out, 0, 9), CONVGEN_OK);
        assert_true(harness_mismatch(out, e->expected.data, e->expected.count, 1e-4, 2e-5) < 0);
        for (int threads = 1; threads <= 3; threads++) {
            convgen_pool *pool;
            assert_int_equal(convgen_pool_create(threads, &pool), CONVGEN_OK);
            for (int repeat = 0; repeat < 3; repeat++) {
                memset(out, 0, e->expected.count * sizeof(float));
                assert_int_equal(convgen_kernel_run_pool(k, pool, e->input.data, out, 1), CONVGEN_OK);
                assert_true(harness_mismatch(out, e->expected.data, e->expected.count, 1e-4, 2e-5) < 0);
            }
            convgen_pool_destroy(pool);
        }
        assert_int_equal(convgen_pool_create(0, NULL), CONVGEN_ERROR_ARGUMENT);
        assert_int_equal(convgen_kernel_run_rows(k, e->input.data, out, -1, 2), CONVGEN_ERROR_ARGUMENT);
        convgen_pool_destroy(NULL);
        assert_int_equal(convgen_kernel_row_granule(NULL), 0);
        free(out);
        convgen_kernel_destroy(k);
    }
    convgen_context_destroy(ctx);
    example_free(e);
}

/* ------------------------------------------------------------------------ */

#define THREADS 4
#define COMPILES 100
#define LAYERS 6

/* Small layers compiled from several threads; each is checked against the reference. */
typedef struct {
    ref_layer layer;
    char spec[512];
    float *weights[3];
    float *input, *want;
    long in_n, out_n;
} thread_layer;

static thread_layer layers[LAYERS];
static convgen_context *shared_ctx;

/* The Keras JSON of a 2D layer with a 3x3 kernel, "same" padding and ReLU. */
static void layer_spec(const ref_layer *l, char *buf, size_t size)
{
    static const char *const classes[] = {"Conv2D", "DepthwiseConv2D", "SeparableConv2D"};
    char shape[32], fields[64] = "";
    if (l->channels_first)
        snprintf(shape, sizeof shape, "%d, %d, %d", l->in_c, l->in_h, l->in_w);
    else
        snprintf(shape, sizeof shape, "%d, %d, %d", l->in_h, l->in_w, l->in_c);
    if (l->kind != REF_DEPTHWISE)
        snprintf(fields, sizeof fields, "\"filters\": %d, ", l->filters);
    if (l->kind != REF_CONV)
        snprintf(fields + strlen(fields), sizeof fields - strlen(fields), "\"depth_multiplier\": %d, ",
                 l->depth_multiplier);
    snprintf(buf, size,
             "{\"class_name\": \"%s\", \"config\": {%s\"kernel_size\": 3, \"padding\": \"same\","
             " \"activation\": \"relu\", \"data_format\": \"%s\"}, \"build_config\": {\"input_shape\": [null, %s]}}",
             classes[l->kind], fields, l->channels_first ? "channels_first" : "channels_last", shape);
}

static void make_layers(void)
{
    for (int i = 0; i < LAYERS; i++) {
        thread_layer *t = &layers[i];
        ref_layer l = {.kind = (ref_kind)(i % 3), .rank = 2, .channels_first = i / 3, .in_h = 6 + i, .in_w = 5,
                       .in_c = 3, .k_h = 3, .k_w = 3, .s_h = 1, .s_w = 1, .d_h = 1, .d_w = 1, .padding = "same",
                       .filters = 4, .groups = 1, .depth_multiplier = 1 + i % 2, .use_bias = 1,
                       .activation = "relu", .keras_version = 3};
        t->layer = l;
        layer_spec(&l, t->spec, sizeof t->spec);
        unsigned long long seed = 77 + (unsigned long long)i;
        for (int w = 0; w < ref_weight_count(&l); w++) {
            long n = ref_weight_size(&l, w);
            t->weights[w] = malloc((size_t)n * sizeof(float));
            harness_fill(t->weights[w], n, &seed, -0.5f, 0.5f);
        }
        int oh, ow, oc;
        ref_output_shape(&l, &oh, &ow, &oc);
        t->in_n = (long)l.in_h * l.in_w * l.in_c;
        t->out_n = (long)oh * ow * oc;
        t->input = malloc((size_t)t->in_n * sizeof(float));
        t->want = malloc((size_t)t->out_n * sizeof(float));
        harness_fill(t->input, t->in_n, &seed, -1.0f, 1.0f);
        ref_forward(&l, 1, t->input, (const float *const *)t->weights, t->want);
    }
}

/* A kernel keeps only the packed copy of a weight its code reads packed
 * (Conv2D's kernel, a separable layer's pointwise kernel, a wide depthwise
 * kernel): the cache still tells equal weights, in other buffers, from
 * weights differing in one value of that copy's source; both kernels compute
 * their own weights' outputs. Both backends; a Winograd layer's kernel is kept
 * transformed. */
static void test_cache_packed_weights(void **state)
{
    (void)state;
    static const struct {
        ref_kind kind;
        int in_c, filters, source; /* the weight that is packed */
        convgen_backend backend;
    } cases[] = {{REF_CONV, 5, 19, 0, CONVGEN_BACKEND_TCC},
                 {REF_SEPARABLE, 6, 21, 1, CONVGEN_BACKEND_TCC},
                 {REF_DEPTHWISE, 136, 0, 0, CONVGEN_BACKEND_TCC},
                 {REF_CONV, 5, 19, 0, CONVGEN_BACKEND_CC},
                 {REF_CONV, 16, 32, 0, CONVGEN_BACKEND_TCC}, /* Winograd: the kernel kept transformed */
                 {REF_CONV, 16, 32, 0, CONVGEN_BACKEND_CC}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ref_layer l = {.kind = cases[c].kind, .rank = 2, .in_h = 7, .in_w = 13, .in_c = cases[c].in_c, .k_h = 3,
                       .k_w = 3, .s_h = 1, .s_w = 1, .d_h = 1, .d_w = 1, .padding = "same",
                       .filters = cases[c].filters, .groups = 1, .depth_multiplier = 1, .use_bias = 1,
                       .activation = "relu", .keras_version = 3};
        char text[512];
        layer_spec(&l, text, sizeof text);
        const int nw = ref_weight_count(&l);
        float *w[3], *w2[3];
        unsigned long long seed = 900 + c;
        for (int i = 0; i < nw; i++) {
            long n = ref_weight_size(&l, i);
            w[i] = malloc((size_t)n * sizeof(float));
            w2[i] = malloc((size_t)n * sizeof(float));
            harness_fill(w[i], n, &seed, -0.5f, 0.5f);
            memcpy(w2[i], w[i], (size_t)n * sizeof(float));
        }
        int oh, ow, oc;
        ref_output_shape(&l, &oh, &ow, &oc);
        long in_n = (long)l.in_h * l.in_w * l.in_c, out_n = (long)oh * ow * oc;
        float *in = malloc((size_t)in_n * sizeof(float)), *want = malloc((size_t)out_n * sizeof(float));
        float *got = malloc((size_t)out_n * sizeof(float));
        harness_fill(in, in_n, &seed, -1.0f, 1.0f);

        convgen_context *ctx;
        convgen_context_create(&ctx);
        convgen_spec spec = CONVGEN_SPEC_INIT;
        spec.text = text;
        spec.num_weights = nw;
        spec.backend = cases[c].backend;
        spec.weights = (const float *const *)w;
        convgen_kernel *a, *b, *d;
        char msg[1024];
        assert_int_equal(convgen_compile(ctx, &spec, &a, msg, sizeof msg), CONVGEN_OK);
        spec.weights = (const float *const *)w2; /* equal values, other buffers */
        assert_int_equal(convgen_compile(ctx, &spec, &b, msg, sizeof msg), CONVGEN_OK);
        assert_ptr_equal(a, b);
        w2[cases[c].source][ref_weight_size(&l, cases[c].source) / 2] += 0.25f;
        assert_int_equal(convgen_compile(ctx, &spec, &d, msg, sizeof msg), CONVGEN_OK);
        assert_ptr_not_equal(d, a);
        assert_int_equal(convgen_cache_size(ctx), 2);
        /* one value changed at either end of the source (the end: a partial
         * channel tile where there is one), or its sign: no hit */
        const long n_src = ref_weight_size(&l, cases[c].source);
        const long at[3] = {0, n_src - 1, n_src / 3};
        for (int p = 0; p < 3; p++) {
            float *v = &w2[cases[c].source][at[p]], kept = *v;
            *v = p == 2 ? -*v : *v + 0.25f;
            convgen_kernel *e;
            assert_int_equal(convgen_compile(ctx, &spec, &e, msg, sizeof msg), CONVGEN_OK);
            assert_ptr_not_equal(e, a);
            assert_ptr_not_equal(e, d);
            convgen_kernel_destroy(e);
            *v = kept;
        }

        const float *const *sets[2] = {(const float *const *)w, (const float *const *)w2};
        convgen_kernel *kernels[2] = {a, d};
        for (int k = 0; k < 2; k++) {
            ref_forward(&l, 1, in, sets[k], want);
            convgen_kernel_run(kernels[k], in, got, 1);
            long bad = harness_mismatch(got, want, out_n, 1e-4, 1e-5);
            if (bad >= 0)
                fail_msg("case %zu kernel %d: output[%ld] = %g, want %g", c, k, bad, (double)got[bad],
                         (double)want[bad]);
        }
        convgen_kernel_destroy(a);
        convgen_kernel_destroy(b);
        convgen_kernel_destroy(d);
        convgen_context_destroy(ctx);
        for (int i = 0; i < nw; i++) {
            free(w[i]);
            free(w2[i]);
        }
        free(in);
        free(want);
        free(got);
    }
}

/* Runs k on pools of 1 to 4 threads and batches of 1 to 3 items (item_out
 * output floats each, got room for 3) into an output filled with NaN
 * first: every output as want holds it and, when whole is given, exactly
 * as whole (one call of the whole layer) holds it. label names the case. */
static void check_pools(const convgen_kernel *k, const float *in, const float *want, const float *whole,
                        long item_out, float *got, const char *label)
{
    for (int threads = 1; threads <= 4; threads++) {
        convgen_pool *pool;
        assert_int_equal(convgen_pool_create(threads, &pool), CONVGEN_OK);
        for (int batch = 1; batch <= 3; batch++) {
            for (long i = 0; i < 3 * item_out; i++)
                got[i] = NAN;
            assert_int_equal(convgen_kernel_run_pool(k, pool, in, got, batch), CONVGEN_OK);
            long bad = harness_mismatch(got, want, batch * item_out, 1e-4, 1e-5);
            if (bad >= 0)
                fail_msg("%s: %d threads, batch %d: output[%ld] = %g, want %g", label, threads, batch, bad,
                         (double)got[bad], (double)want[bad]);
            if (whole)
                assert_memory_equal(got, whole, (size_t)(batch * item_out) * sizeof(float));
        }
        convgen_pool_destroy(pool);
    }
}

/* A layer of one output row (here 1D layers) splits that row into segments
 * for the pool: a separable layer (causal, dilated: the fused row) and a
 * Conv1D (border columns on both sides), both backends, pools of 1 to 4
 * threads, batches of 1 to 3. Every output is written, as the reference
 * computes it, and exactly as one call of the whole layer writes it: a
 * segment starts where a strip of the whole row would. */
static void test_pool_one_row(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        ref_layer layer;
    } layers[] = {
        {"{\"class_name\": \"SeparableConv1D\", \"config\": {\"filters\": 32, \"kernel_size\": 3, "
         "\"dilation_rate\": 8, \"padding\": \"causal\", \"activation\": \"relu\"}, "
         "\"build_config\": {\"input_shape\": [null, 300, 32]}}",
         {REF_SEPARABLE, 1, 0, 1, 300, 32, 1, 3, 1, 1, 1, 8, "causal", 32, 1, 1, 1, "relu", 3}},
        {"{\"class_name\": \"Conv1D\", \"config\": {\"filters\": 32, \"kernel_size\": 5, "
         "\"padding\": \"same\", \"activation\": \"relu6\"}, \"build_config\": {\"input_shape\": [null, 257, 16]}}",
         {REF_CONV, 1, 0, 1, 257, 16, 1, 5, 1, 1, 1, 1, "same", 32, 1, 1, 1, "relu6", 3}},
    };
    for (int s = 0; s < 2; s++) {
        const ref_layer *l = &layers[s].layer;
        const int nw = ref_weight_count(l);
        float *w[3];
        unsigned long long seed = 5151 + s;
        for (int i = 0; i < nw; i++) {
            long n = ref_weight_size(l, i);
            w[i] = malloc((size_t)n * sizeof(float));
            harness_fill(w[i], n, &seed, -0.5f, 0.5f);
        }
        int oh, ow, oc;
        ref_output_shape(l, &oh, &ow, &oc);
        const long item_in = (long)l->in_w * l->in_c, item_out = (long)ow * oc;
        float *in = malloc((size_t)(3 * item_in) * sizeof(float)), *want = malloc((size_t)(3 * item_out) * sizeof(float));
        float *got = malloc((size_t)(3 * item_out) * sizeof(float)), *whole = malloc((size_t)(3 * item_out) * sizeof(float));
        harness_fill(in, 3 * item_in, &seed, -1.0f, 1.0f);
        ref_forward(l, 3, in, (const float *const *)w, want);
        convgen_context *ctx;
        convgen_context_create(&ctx);
        for (int b = 0; b < 2; b++) {
            convgen_spec spec = CONVGEN_SPEC_INIT;
            spec.text = layers[s].text;
            spec.weights = (const float *const *)w;
            spec.num_weights = nw;
            spec.backend = b ? CONVGEN_BACKEND_CC : CONVGEN_BACKEND_TCC;
            convgen_kernel *k;
            char msg[1024];
            if (convgen_compile(ctx, &spec, &k, msg, sizeof msg) != CONVGEN_OK)
                fail_msg("%s", msg);
            assert_true(convgen_kernel_rows_per_item(k) >= 8); /* segments of the one row */
            assert_int_equal(convgen_kernel_run(k, in, whole, 3), CONVGEN_OK);
            char label[64];
            snprintf(label, sizeof label, "layer %d, backend %d", s, b);
            check_pools(k, in, want, whole, item_out, got, label);
            convgen_kernel_destroy(k);
        }
        convgen_context_destroy(ctx);
        for (int i = 0; i < nw; i++)
            free(w[i]);
        free(in);
        free(want);
        free(got);
        free(whole);
    }
}

/* A Winograd layer computes its output rows in pairs (row granule 2): the
 * pool splits its rows at pair boundaries within each item. Items of an
 * odd number of rows, batches of 1 to 3, pools of 1 to 4 threads, both
 * backends: every output written, as the reference computes it. The second
 * layer's weights (2.25 MiB, 4 MiB transformed) take the library's
 * huge-page buffers; compiling it again from a copy of its weights hits
 * the cache. */
static void test_pool_winograd(void **state)
{
    (void)state;
    static const int shapes[][4] = {{7, 9, 16, 32}, {5, 4, 256, 256}}; /* h, w, in, out channels */
    for (int s = 0; s < 2; s++) {
        const int H = shapes[s][0], W = shapes[s][1], C = shapes[s][2], K = shapes[s][3];
        ref_layer l = {.kind = REF_CONV, .rank = 2, .in_h = H, .in_w = W, .in_c = C, .k_h = 3, .k_w = 3, .s_h = 1,
                       .s_w = 1, .d_h = 1, .d_w = 1, .padding = "same", .filters = K, .groups = 1,
                       .depth_multiplier = 1, .use_bias = 1, .activation = "relu", .keras_version = 3};
        char text[512];
        layer_spec(&l, text, sizeof text);
        float *w[2], *w2[2];
        unsigned long long seed = 4242 + s;
        for (int i = 0; i < 2; i++) {
            long n = ref_weight_size(&l, i);
            w[i] = malloc((size_t)n * sizeof(float));
            w2[i] = malloc((size_t)n * sizeof(float));
            harness_fill(w[i], n, &seed, -0.5f, 0.5f);
            memcpy(w2[i], w[i], (size_t)n * sizeof(float));
        }
        const long item_in = (long)H * W * C, item_out = (long)H * W * K;
        float *in = malloc((size_t)(3 * item_in) * sizeof(float)), *want = malloc((size_t)(3 * item_out) * sizeof(float));
        float *got = malloc((size_t)(3 * item_out) * sizeof(float));
        harness_fill(in, 3 * item_in, &seed, -1.0f, 1.0f);
        ref_forward(&l, 3, in, (const float *const *)w, want);
        convgen_context *ctx;
        convgen_context_create(&ctx);
        for (int b = 0; b < 2; b++) {
            convgen_spec spec = CONVGEN_SPEC_INIT;
            spec.text = text;
            spec.weights = (const float *const *)w;
            spec.num_weights = 2;
            spec.backend = b ? CONVGEN_BACKEND_CC : CONVGEN_BACKEND_TCC;
            convgen_kernel *k, *again;
            char msg[1024];
            assert_int_equal(convgen_compile(ctx, &spec, &k, msg, sizeof msg), CONVGEN_OK);
            assert_int_equal(convgen_kernel_row_granule(k), 2); /* the Winograd code */
            spec.weights = (const float *const *)w2;
            assert_int_equal(convgen_compile(ctx, &spec, &again, msg, sizeof msg), CONVGEN_OK);
            assert_ptr_equal(again, k);
            convgen_kernel_destroy(again);
            char label[64];
            snprintf(label, sizeof label, "%dx%dx%d, backend %d", H, W, C, b);
            check_pools(k, in, want, NULL, item_out, got, label);
            convgen_kernel_destroy(k);
        }
        convgen_context_destroy(ctx);
        for (int i = 0; i < 2; i++) {
            free(w[i]);
            free(w2[i]);
        }
        free(in);
        free(want);
        free(got);
    }
}

static void *compile_many(void *arg)
{
    long id = (long)arg;
    long failures = 0;
    for (int i = 0; i < COMPILES; i++) {
        thread_layer *t = &layers[(id * 7 + i) % LAYERS];
        convgen_spec spec = CONVGEN_SPEC_INIT;
        spec.text = t->spec;
        spec.weights = (const float *const *)t->weights;
        spec.num_weights = ref_weight_count(&t->layer);
        convgen_kernel *k;
        char msg[512];
        if (convgen_compile(shared_ctx, &spec, &k, msg, sizeof msg) != CONVGEN_OK) {
            fprintf(stderr, "thread %ld: %s\n", id, msg);
            failures++;
            continue;
        }
        float *out = malloc((size_t)t->out_n * sizeof(float));
        convgen_kernel_run(k, t->input, out, 1);
        if (harness_mismatch(out, t->want, t->out_n, 1e-4, 1e-5) >= 0)
            failures++;
        free(out);
        convgen_kernel_destroy(k);
    }
    return (void *)failures;
}

/* 4 threads x 100 compiles and runs at once on one context, with a small
 * cache so that compiles hit, miss and evict concurrently. */
static void test_threads(void **state)
{
    (void)state;
    make_layers();
    assert_int_equal(convgen_context_create(&shared_ctx), CONVGEN_OK);
    convgen_cache_set_limit(shared_ctx, 3);
    pthread_t threads[THREADS];
    for (long i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, compile_many, (void *)i), 0);
    long failures = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(threads[i], &r);
        failures += (long)r;
    }
    convgen_context_destroy(shared_ctx);
    for (int i = 0; i < LAYERS; i++) {
        for (int w = 0; w < 3; w++)
            free(layers[i].weights[w]);
        free(layers[i].input);
        free(layers[i].want);
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile_and_run_both_backends),
        cmocka_unit_test(test_weights_dir),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_missing_compiler),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_cache_packed_weights),
        cmocka_unit_test(test_pool_winograd),
        cmocka_unit_test(test_pool_one_row),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_rows_and_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
