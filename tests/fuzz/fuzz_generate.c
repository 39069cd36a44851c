/* fuzz_generate.c: spec to code to result. The first byte of an input picks
 * the options, the rest is a Keras JSON spec:
 *   bit 0 (1): --target avx2 (generated only: libtcc has no intrinsics; the
 *              test matrix builds that target with gcc)
 *   bit 1 (2): --unroll full (weights baked in)
 *   bit 2 (4): weights baked in (from .npy files) instead of passed at run time
 *   bit 3 (8): batch 2
 * so '0' is the default scalar layer. For every spec the generator accepts,
 * the output shape must agree with the naive reference (tests/reference.c),
 * the source must compile under libtcc with warnings as errors, and, when the
 * layer is small enough to run quickly, its output on guarded buffers must
 * match the reference. A refusal must be a diagnostic; anything else crashes. */
#define _POSIX_C_SOURCE 200809L
#include "fuzz.h"

#include "convgen_npy.h"
#include "harness.h"
#include "jit.h"
#include "reference.h"

#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A layer runs when it is this small (per batch item). */
#define RUN_MACS (1L << 20)
#define RUN_ELEMENTS (1L << 18)

typedef void (*runtime_fn)(const float *input, float *output, int batch, const float *const weights[]);
typedef void (*baked_fn)(const float *input, float *output, int batch);

static char *weights_dir;

/* CONVGEN_FUZZ_VERBOSE=1 prints what became of each input (when replaying). */
static void report(const char *what, const char *detail)
{
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("CONVGEN_FUZZ_VERBOSE") != NULL;
    if (verbose)
        fprintf(stderr, "fuzz_generate: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
}

static void remove_weights_dir(void)
{
    if (weights_dir)
        harness_remove_tree(weights_dir);
}

static long int_field(lua_State *L, const char *name)
{
    lua_getfield(L, -1, name);
    long v = (long)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Copies a string field into buf. */
static const char *string_field(lua_State *L, const char *name, char *buf, size_t size)
{
    lua_getfield(L, -1, name);
    const char *s = lua_tostring(L, -1);
    snprintf(buf, size, "%s", s ? s : "");
    lua_pop(L, 1);
    return buf;
}

typedef struct {
    int count;
    char name[4][64];
    long size[4];
    int rank[4];
    long shape[4][8];
} weight_list;

static void read_weights(lua_State *L, weight_list *w)
{
    lua_getfield(L, -1, "weights");
    w->count = (int)luaL_len(L, -1);
    if (w->count > 4)
        fuzz_crash("more than 4 weight tensors", NULL);
    for (int i = 0; i < w->count; i++) {
        lua_geti(L, -1, i + 1);
        string_field(L, "name", w->name[i], sizeof w->name[i]);
        w->size[i] = int_field(L, "count");
        lua_getfield(L, -1, "shape");
        w->rank[i] = (int)luaL_len(L, -1);
        if (w->rank[i] > 8)
            fuzz_crash("weight rank above 8", NULL);
        for (int d = 0; d < w->rank[i]; d++) {
            lua_geti(L, -1, d + 1);
            w->shape[i][d] = (long)lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned options = data[0];
    const char *target = options & 1 ? "avx2" : "scalar";
    const char *unroll = options & 2 ? "full" : "default";
    int baked = (options & 6) != 0;
    int batch = options & 8 ? 2 : 1;
    lua_State *L = fuzz_state();

    lua_pushlstring(L, (const char *)data + 1, size - 1);
    lua_pushstring(L, "fuzz.json");
    fuzz_status s = fuzz_call(L, "describe", 2);
    if (s == FUZZ_INTERNAL)
        fuzz_crash("internal error in the generator", lua_tostring(L, -1));
    if (s == FUZZ_REFUSED) {
        fuzz_check_diagnostic(L, "fuzz.json");
        report("refused", lua_tostring(L, -1));
        lua_settop(L, 0);
        return 0;
    }
    if (s == FUZZ_MODEL) { /* built and generated; the layers are what this target runs */
        report("model", "built and generated");
        lua_settop(L, 0);
        return 0;
    }

    /* The accepted layer as the reference sees it. */
    char op[32], padding[32], activation[32];
    string_field(L, "op", op, sizeof op);
    ref_layer l = {0};
    l.kind = strcmp(op, "conv") == 0 ? REF_CONV : strcmp(op, "depthwise") == 0 ? REF_DEPTHWISE : REF_SEPARABLE;
    l.rank = (int)int_field(L, "rank");
    l.channels_first = (int)int_field(L, "channels_first");
    l.in_h = (int)int_field(L, "in_h"), l.in_w = (int)int_field(L, "in_w"), l.in_c = (int)int_field(L, "in_c");
    l.k_h = (int)int_field(L, "k_h"), l.k_w = (int)int_field(L, "k_w");
    l.s_h = (int)int_field(L, "s_h"), l.s_w = (int)int_field(L, "s_w");
    l.d_h = (int)int_field(L, "d_h"), l.d_w = (int)int_field(L, "d_w");
    l.padding = string_field(L, "padding", padding, sizeof padding);
    l.filters = (int)int_field(L, "filters");
    l.groups = (int)int_field(L, "groups");
    l.depth_multiplier = (int)int_field(L, "depth_multiplier");
    l.use_bias = (int)int_field(L, "use_bias");
    l.activation = string_field(L, "activation", activation, sizeof activation);
    l.keras_version = (int)int_field(L, "keras_version");
    long macs = int_field(L, "macs");
    int ir_h = (int)int_field(L, "out_h"), ir_w = (int)int_field(L, "out_w"), ir_c = (int)int_field(L, "out_c");
    weight_list wl;
    read_weights(L, &wl);
    lua_settop(L, 0);

    int oh, ow, oc;
    if (!ref_output_shape(&l, &oh, &ow, &oc))
        fuzz_crash("the generator accepted a layer the reference finds impossible", (const char *)data + 1);
    if (oh != ir_h || ow != ir_w || oc != ir_c) {
        char detail[256];
        snprintf(detail, sizeof detail, "generator %dx%dx%d, reference %dx%dx%d", ir_h, ir_w, ir_c, oh, ow, oc);
        fuzz_crash("output shapes disagree", detail);
    }
    if (wl.count != ref_weight_count(&l))
        fuzz_crash("weight tensor counts disagree", NULL);
    long in_n = (long)l.in_h * l.in_w * l.in_c, out_n = (long)oh * ow * oc, weights_n = 0;
    for (int i = 0; i < wl.count; i++) {
        if (wl.size[i] != ref_weight_size(&l, i))
            fuzz_crash("weight sizes disagree", wl.name[i]);
        weights_n += wl.size[i];
    }
    int runs = macs <= RUN_MACS && in_n <= RUN_ELEMENTS && out_n <= RUN_ELEMENTS && weights_n <= RUN_ELEMENTS;
    if (baked && weights_n > RUN_ELEMENTS) {
        report("skipped", "too many weights to bake");
        return 0; /* writing the .npy files would dominate; the run-time path covers it */
    }

    /* Weights near unit scale, also written as .npy files for baked layers. */
    float *weights[4] = {NULL};
    unsigned long long seed = 0xf022ull;
    for (int i = 0; i < wl.count; i++) {
        weights[i] = malloc((size_t)(wl.size[i] ? wl.size[i] : 1) * sizeof(float));
        double fan_in = wl.rank[i] > 1 ? (double)wl.size[i] / (double)wl.shape[i][wl.rank[i] - 1] : 1.0;
        float scale = (float)(1.0 / sqrt(fan_in > 0 ? fan_in : 1.0));
        harness_fill(weights[i], wl.size[i], &seed, -scale, scale);
    }
    if (baked) {
        if (!weights_dir) {
            weights_dir = harness_tempdir();
            atexit(remove_weights_dir);
        }
        for (int i = 0; i < wl.count; i++) {
            char path[4200], err[256];
            snprintf(path, sizeof path, "%s/%s.npy", weights_dir, wl.name[i]);
            if (convgen_npy_save(path, wl.rank[i], wl.shape[i], weights[i], err, sizeof err) != 0)
                fuzz_crash("cannot write weights", err);
        }
    }

    lua_pushlstring(L, (const char *)data + 1, size - 1);
    lua_pushstring(L, "fuzz.json");
    lua_pushstring(L, target);
    lua_pushstring(L, unroll);
    if (baked)
        lua_pushstring(L, weights_dir);
    else
        lua_pushnil(L);
    s = fuzz_call(L, "generate", 5);
    if (s == FUZZ_INTERNAL)
        fuzz_crash("internal error in the generator", lua_tostring(L, -1));
    char *source = s == FUZZ_OK ? strdup(lua_tostring(L, -1)) : NULL;
    if (!source) {
        /* weights files are named in their own diagnostics */
        if (!baked)
            fuzz_check_diagnostic(L, "fuzz.json");
        report("refused at generation", lua_tostring(L, -1));
    }
    lua_settop(L, 0);

    if (source && strcmp(target, "scalar") == 0) {
        char err[4096];
        convgen__jit *jit = convgen__jit_compile(source, 1, err, sizeof err);
        if (!jit)
            fuzz_crash("libtcc rejected the generated source", err);
        void *address = convgen__jit_symbol(jit, "fuzz_layer");
        if (!address)
            fuzz_crash("no fuzz_layer in the generated code", NULL);
        if (runs) {
            float *input = malloc((size_t)(batch * in_n) * sizeof(float));
            float *want = malloc((size_t)(batch * out_n) * sizeof(float));
            harness_fill(input, batch * in_n, &seed, -1.0f, 1.0f);
            ref_forward(&l, batch, input, (const float *const *)weights, want);

            /* Between guard pages, inputs read-only, the output flush against the upper page. */
            harness_guarded gin, gout, gw[4];
            memset(gw, 0, sizeof gw);
            memcpy(harness_guarded_alloc(&gin, batch * in_n, 1), input, (size_t)(batch * in_n) * sizeof(float));
            harness_guarded_readonly(&gin);
            float *out = harness_guarded_alloc(&gout, batch * out_n, 1);
            for (long i = 0; i < batch * out_n; i++)
                out[i] = NAN;
            const float *w[4] = {NULL};
            for (int i = 0; i < wl.count; i++) {
                memcpy(harness_guarded_alloc(&gw[i], wl.size[i], 1), weights[i], (size_t)wl.size[i] * sizeof(float));
                harness_guarded_readonly(&gw[i]);
                w[i] = gw[i].data;
            }
            if (baked) {
                baked_fn fn;
                memcpy(&fn, &address, sizeof fn);
                fn(gin.data, out, batch);
            } else {
                runtime_fn fn;
                memcpy(&fn, &address, sizeof fn);
                fn(gin.data, out, batch, w);
            }
            long bad = harness_mismatch(out, want, batch * out_n, 1e-3, 1e-4);
            if (bad >= 0) {
                char detail[256];
                snprintf(detail, sizeof detail, "output[%ld] = %.9g, reference %.9g (options %c)", bad,
                         (double)out[bad], (double)want[bad], data[0]);
                fuzz_crash("generated code disagrees with the reference", detail);
            }
            report(target, baked ? "ran, baked weights, matches the reference" : "ran, matches the reference");
            harness_guarded_free(&gin);
            harness_guarded_free(&gout);
            for (int i = 0; i < 4; i++)
                harness_guarded_free(&gw[i]);
            free(input);
            free(want);
        }
        if (!runs)
            report(target, "compiled (too large to run)");
        convgen__jit_free(jit);
    } else if (source) {
        report(target, "generated");
    }
    free(source);
    for (int i = 0; i < 4; i++)
        free(weights[i]);
    return 0;
}
