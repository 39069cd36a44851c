/* test_keras_golden.c: generated layers against outputs of real Keras.
 *
 * tests/fixtures/<case>/ holds a layer serialized by Keras (spec.json), its
 * weights as .npy, an input and Keras's own output for it, all made by
 * tools/make_keras_fixtures.py. Each case is generated from those files
 * exactly as a user would (weights baked in), compiled with libtcc and with
 * gcc, and again for the avx2 target with gcc, run, and compared. No Python
 * is needed here. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "convgen_npy.h"
#include "harness.h"
#include "host.h"
#include "jit.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FIXTURES
#define FIXTURES "tests/fixtures"
#endif
#define MAX_CASES 128

typedef struct {
    char name[128];
    char symbol[32];
    char dir[256];
    char *source;
    char avx2_symbol[32];
    char *avx2_source; /* the same layer for the avx2 target (gcc only) */
} golden_case;

static golden_case cases[MAX_CASES];
static int ncases;
static char *workdir;
static void *gcc_handle;
static char *gcc_log;

static int load_cases(void)
{
    char *manifest = harness_read(FIXTURES "/MANIFEST", NULL);
    if (!manifest) {
        fprintf(stderr, "cannot read %s/MANIFEST\n", FIXTURES);
        return -1;
    }
    lua_State *L = harness_host();
    harness_buffer combined = {0};
    for (char *line = strtok(manifest, "\n"); line && ncases < MAX_CASES; line = strtok(NULL, "\n")) {
        if (!*line)
            continue;
        golden_case *c = &cases[ncases];
        snprintf(c->name, sizeof c->name, "%s", line);
        snprintf(c->symbol, sizeof c->symbol, "golden_%03d", ncases);
        snprintf(c->dir, sizeof c->dir, "%s/%s", FIXTURES, line);
        char path[512], weights[512], *err;
        snprintf(path, sizeof path, "%s/spec.json", c->dir);
        snprintf(weights, sizeof weights, "%s/weights", c->dir);
        char *spec = harness_read(path, NULL);
        if (!spec) {
            fprintf(stderr, "cannot read %s\n", path);
            return -1;
        }
        snprintf(c->avx2_symbol, sizeof c->avx2_symbol, "golden_avx2_%03d", ncases);
        c->source = harness_generate(L, spec, path, c->symbol, weights, "default", 3, "scalar", &err);
        if (c->source)
            c->avx2_source = harness_generate(L, spec, path, c->avx2_symbol, weights, "default", 3, "avx2", &err);
        free(spec);
        if (!c->source || !c->avx2_source) {
            fprintf(stderr, "%s: %s\n", c->name, err);
            return -1;
        }
        harness_append(&combined, c->source);
        harness_append(&combined, c->avx2_source);
        ncases++;
    }
    free(manifest);
    convgen__host_close(L);
    workdir = harness_tempdir();
    char *c_path = harness_write(workdir, "golden.c", combined.text, combined.len);
    char so[4200];
    snprintf(so, sizeof so, "%s/golden.so", workdir);
    gcc_handle = harness_compile_shared("gcc", c_path, so, &gcc_log);
    free(c_path);
    free(combined.text);
    return ncases > 0 ? 0 : -1;
}

static void load_npy(const char *dir, const char *file, convgen_npy_array *a)
{
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (convgen_npy_load(path, a, err, sizeof err) != 0)
        fail_msg("%s: %s", path, err);
}

static void check(const golden_case *c, void *address, const char *compiler)
{
    convgen_npy_array in, want;
    load_npy(c->dir, "input.npy", &in);
    load_npy(c->dir, "expected.npy", &want);
    float *out = malloc((size_t)want.count * sizeof(float));
    layer_baked_fn fn;
    memcpy(&fn, &address, sizeof fn);
    fn(in.data, out, (int)in.shape[0]);
    /* Keras on JAX computes in float32 too, in another order. */
    long bad = harness_mismatch(out, want.data, want.count, 1e-4, 2e-5);
    if (bad >= 0)
        fail_msg("%s (%s): output[%ld] = %.9g, Keras %.9g", c->name, compiler, bad, (double)out[bad],
                 (double)want.data[bad]);
    free(out);
    convgen_npy_free(&in);
    convgen_npy_free(&want);
}

/* One Keras fixture: libtcc and gcc builds reproduce Keras's output. */
static void test_golden(void **state)
{
    const golden_case *c = *state;
    char err[4096];
    convgen__jit *jit = convgen__jit_compile(c->source, 1, err, sizeof err);
    if (!jit)
        fail_msg("%s: libtcc: %s", c->name, err);
    void *address = convgen__jit_symbol(jit, c->symbol);
    assert_non_null(address);
    check(c, address, "tcc");
    convgen__jit_free(jit);
    if (!gcc_handle)
        fail_msg("gcc: %.4000s", gcc_log ? gcc_log : "");
    address = dlsym(gcc_handle, c->symbol);
    assert_non_null(address);
    check(c, address, "gcc");
    address = dlsym(gcc_handle, c->avx2_symbol);
    assert_non_null(address);
    check(c, address, "gcc, avx2 target");
}

int main(void)
{
    if (load_cases() != 0)
        return 1;
    struct CMUnitTest *tests = calloc((size_t)ncases, sizeof *tests);
    for (int i = 0; i < ncases; i++) {
        tests[i].name = cases[i].name;
        tests[i].test_func = test_golden;
        tests[i].initial_state = &cases[i];
    }
    int failed = _cmocka_run_group_tests("keras_golden", tests, (size_t)ncases, NULL, NULL);
    if (gcc_handle)
        dlclose(gcc_handle);
    for (int i = 0; i < ncases; i++) {
        free(cases[i].source);
        free(cases[i].avx2_source);
    }
    harness_remove_tree(workdir);
    free(workdir);
    free(gcc_log);
    free(tests);
    return failed;
}
