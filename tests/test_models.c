/*
 * test_models.c: whole Keras models, from the files real Keras saved
 * (tests/fixtures/models/, made by tools/make_model_fixtures.py), through
 * bin/convgen generate, compiled as a user would (gcc and clang at both
 * targets, tcc at the scalar one, all with -Werror) and run on Keras's input:
 * the output must match Keras's. Every model file the fixture holds is tried:
 * model.keras, model.h5 and model.json with its weights/ directory.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "convgen_npy.h"
#include "harness.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_CASES 64

typedef struct {
    char name[128];
    char dir[512];     /* the fixture directory */
    char source[64];   /* model.keras, model.h5 or model.json */
    const char *target; /* scalar or avx2 */
} model_case;

static model_case cases[MAX_CASES];
static int ncases;
static char *workdir;

static const char *fixtures(void)
{
    const char *d = getenv("CONVGEN_MODEL_FIXTURES");
    return d && *d ? d : "tests/fixtures/models";
}

static const char *convgen(void)
{
    const char *p = getenv("CONVGEN");
    return p && *p ? p : "bin/convgen";
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Runs argv; on failure, fails the test with its output. Returns the output. */
static char *run_ok(const char *what, char *const argv[])
{
    char *out = NULL;
    int status = harness_run(argv, &out);
    if (status != 0)
        fail_msg("%s: exit %d\n%.4000s", what, status, out ? out : "");
    return out;
}

/* The number after `#define <macro> ` in a header. */
static long header_value(const char *header, const char *macro)
{
    char want[160];
    snprintf(want, sizeof want, "#define %s ", macro);
    const char *p = strstr(header, want);
    if (!p)
        fail_msg("the header has no %s", macro);
    return strtol(p + strlen(want), NULL, 10);
}

/* Generates, builds with compiler, runs on the fixture's input, compares. */
static void build_and_run(const model_case *c, const char *compiler, const char *c_path, const char *header)
{
    char so[4400];
    snprintf(so, sizeof so, "%s/%s_%s.so", workdir, c->name, compiler);
    int avx2 = strcmp(c->target, "avx2") == 0, tcc = strcmp(compiler, "tcc") == 0;
    char include[4200];
    snprintf(include, sizeof include, "-I%s", workdir);
    char *argv[24];
    int n = 0;
    argv[n++] = (char *)compiler;
    argv[n++] = "-std=c99";
    if (!tcc)
        argv[n++] = "-O2";
    argv[n++] = "-Wall";
    if (!tcc) {
        argv[n++] = "-Wextra";
        argv[n++] = "-pedantic";
        argv[n++] = "-fPIC";
    }
    argv[n++] = "-Werror";
    if (avx2) {
        argv[n++] = "-mavx2";
        argv[n++] = "-mfma";
    }
    argv[n++] = "-shared";
    argv[n++] = include;
    argv[n++] = (char *)c_path;
    argv[n++] = "-o";
    argv[n++] = so;
    argv[n++] = "-lm";
    if (!tcc && getenv("CONVGEN_TEST_SANITIZED")) { /* the generated code checked too */
        argv[n++] = "-fsanitize=undefined";
        argv[n++] = "-fno-sanitize-recover=all";
    }
    argv[n] = NULL;
    char what[256];
    snprintf(what, sizeof what, "%s on %s", compiler, c->name);
    free(run_ok(what, argv));
    void *handle = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!handle)
        fail_msg("dlopen %s: %s", so, dlerror());
    void *address = dlsym(handle, "model");
    assert_non_null(address);
    void (*model)(const float *, float *, int, float *);
    memcpy(&model, &address, sizeof model);

    char path[1024], err[256];
    convgen_npy_array x, want;
    snprintf(path, sizeof path, "%s/input.npy", c->dir);
    if (convgen_npy_load(path, &x, err, sizeof err) != 0)
        fail_msg("%s", err);
    snprintf(path, sizeof path, "%s/expected.npy", c->dir);
    if (convgen_npy_load(path, &want, err, sizeof err) != 0)
        fail_msg("%s", err);
    int batch = (int)x.shape[0];
    long in_n = header_value(header, "MODEL_INPUT_SIZE"), out_n = header_value(header, "MODEL_OUTPUT_SIZE");
    long arena_n = header_value(header, "MODEL_ARENA_SIZE");
    assert_int_equal(in_n * batch, x.count);
    assert_int_equal(out_n * batch, want.count);

    /* Between guard pages: the input and the output flush against them, the
     * arena exactly MODEL_ARENA_SIZE floats. */
    harness_guarded gin, gout, garena;
    memcpy(harness_guarded_alloc(&gin, x.count, 1), x.data, (size_t)x.count * sizeof(float));
    harness_guarded_readonly(&gin);
    float *out = harness_guarded_alloc(&gout, want.count, 1);
    for (long i = 0; i < want.count; i++)
        out[i] = NAN;
    float *arena = harness_guarded_alloc(&garena, arena_n > 0 ? arena_n : 1, 1);
    model(gin.data, out, batch, arena);
    long bad = harness_mismatch(out, want.data, want.count, 1e-3, 1e-4);
    if (bad >= 0)
        fail_msg("%s (%s): output[%ld] = %.9g, Keras %.9g", c->name, compiler, bad, (double)out[bad],
                 (double)want.data[bad]);
    harness_guarded_free(&gin);
    harness_guarded_free(&gout);
    harness_guarded_free(&garena);
    convgen_npy_free(&x);
    convgen_npy_free(&want);
    dlclose(handle);
}

static void test_model(void **state)
{
    const model_case *c = *state;
    char spec[1024], c_path[4200], h_path[4200], weights[1024];
    snprintf(spec, sizeof spec, "%s/%s", c->dir, c->source);
    snprintf(c_path, sizeof c_path, "%s/%s.c", workdir, c->name);
    snprintf(h_path, sizeof h_path, "%s/%s.h", workdir, c->name);
    snprintf(weights, sizeof weights, "%s/weights", c->dir);
    int json = strstr(c->source, ".json") != NULL;
    char *argv[] = {(char *)convgen(), "generate", spec, "--name", "model", "--target", (char *)c->target,
                    "-o", c_path, json ? "-w" : NULL, weights, NULL};
    free(run_ok("convgen generate", argv));
    size_t size;
    char *header = harness_read(h_path, &size);
    assert_non_null(header);

    /* Generated twice by the same command, the same bytes. */
    char first_path[4400];
    snprintf(first_path, sizeof first_path, "%s.first", c_path);
    if (rename(c_path, first_path) != 0)
        fail_msg("rename %s", c_path);
    free(run_ok("convgen generate (again)", argv));
    size_t n1, n2;
    char *first = harness_read(first_path, &n1), *second = harness_read(c_path, &n2);
    assert_non_null(first);
    assert_non_null(second);
    if (n1 != n2 || memcmp(first, second, n1) != 0)
        fail_msg("%s: two generations differ", c->name);
    free(first);
    free(second);

    build_and_run(c, "gcc", c_path, header);
    build_and_run(c, "clang", c_path, header);
    if (strcmp(c->target, "scalar") == 0)
        build_and_run(c, "tcc", c_path, header);
    free(header);
}

/* convgen check prints the table of operations and the arena. */
static void test_check(void **state)
{
    (void)state;
    for (int i = 0; i < ncases; i++) {
        char spec[1024], weights[1024];
        snprintf(spec, sizeof spec, "%s/%s", cases[i].dir, cases[i].source);
        snprintf(weights, sizeof weights, "%s/weights", cases[i].dir);
        int json = strstr(cases[i].source, ".json") != NULL;
        char *argv[] = {(char *)convgen(), "check", spec, json ? "-w" : NULL, weights, NULL};
        char *out = run_ok("convgen check", argv);
        if (!strstr(out, "arena ") || !strstr(out, "folded in") || !strstr(out, "peak memory"))
            fail_msg("convgen check %s:\n%s", spec, out);
        free(out);
    }
}

static void add_cases(const char *model)
{
    static const char *const sources[] = {"model.keras", "model.h5", "model.json"};
    static const char *const targets[] = {"scalar", "avx2"};
    for (int s = 0; s < 3; s++) {
        for (int t = 0; t < 2 && ncases < MAX_CASES; t++) {
            model_case *c = &cases[ncases];
            snprintf(c->dir, sizeof c->dir, "%s/%s", fixtures(), model);
            char path[1200];
            snprintf(path, sizeof path, "%s/%s", c->dir, sources[s]);
            if (!exists(path))
                continue;
            if (s == 2) {
                snprintf(path, sizeof path, "%s/weights", c->dir);
                if (!exists(path))
                    continue;
            }
            snprintf(c->source, sizeof c->source, "%s", sources[s]);
            c->target = targets[t];
            snprintf(c->name, sizeof c->name, "%s_%s_%s", model, strchr(sources[s], '.') + 1, targets[t]);
            ncases++;
        }
    }
}

int main(void)
{
    char manifest[1024];
    snprintf(manifest, sizeof manifest, "%s/MANIFEST", fixtures());
    size_t size;
    char *text = harness_read(manifest, &size);
    if (!text) {
        fprintf(stderr, "test_models: cannot read %s\n", manifest);
        return 1;
    }
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] && line[0] != '#')
            add_cases(line);
    }
    free(text);
    if (ncases == 0) {
        fprintf(stderr, "test_models: no model files under %s\n", fixtures());
        return 1;
    }
    workdir = harness_tempdir();
    struct CMUnitTest *tests = calloc((size_t)ncases + 1, sizeof *tests);
    tests[0] = (struct CMUnitTest)cmocka_unit_test(test_check);
    for (int i = 0; i < ncases; i++) {
        tests[i + 1].name = cases[i].name;
        tests[i + 1].test_func = test_model;
        tests[i + 1].initial_state = &cases[i];
    }
    int failed = _cmocka_run_group_tests("models", tests, (size_t)ncases + 1, NULL, NULL);
    if (!getenv("CONVGEN_KEEP_TEST_FILES"))
        harness_remove_tree(workdir);
    free(workdir);
    free(tests);
    return failed;
}
