/* test_host.c: the generator's host and its contracts with the runtime. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "harness.h"
#include "host.h"
#include "jit.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every libm function an activation needs is registered with libtcc. */
static void test_activation_functions_are_registered(void **state)
{
    (void)state;
    lua_State *L = harness_host();
    assert_int_equal(convgen__host_call(L, "convgen.activations", "needed_functions", 0, 1), LUA_OK);
    lua_Integer n = luaL_len(L, -1);
    assert_true(n > 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, -1, i);
        const char *name = lua_tostring(L, -1);
        int found = 0;
        for (int k = 0; convgen__jit_symbol_name(k); k++)
            found |= strcmp(convgen__jit_symbol_name(k), name) == 0;
        if (!found)
            fail_msg("activation needs %s, which runtime/jit.c does not register", name);
        lua_pop(L, 1);
    }
    convgen__host_close(L);
}

/* Calls shapes.axis(padding, in, k, s, d) and checks out, pad_before, pad_after. */
static void check_axis(lua_State *L, const char *padding, int in, int k, int s, int d, int out, int before, int after)
{
    lua_pushstring(L, padding);
    lua_pushinteger(L, in);
    lua_pushinteger(L, k);
    lua_pushinteger(L, s);
    lua_pushinteger(L, d);
    assert_int_equal(convgen__host_call(L, "convgen.shapes", "axis", 5, 1), LUA_OK);
    assert_true(lua_istable(L, -1));
    lua_getfield(L, -1, "out");
    lua_getfield(L, -2, "pad_before");
    lua_getfield(L, -3, "pad_after");
    int got_out = (int)lua_tointeger(L, -3), got_before = (int)lua_tointeger(L, -2);
    int got_after = (int)lua_tointeger(L, -1);
    if (got_out != out || got_before != before || got_after != after)
        fail_msg("%s in=%d k=%d s=%d d=%d: got out %d pads %d/%d, want %d %d/%d", padding, in, k, s, d, got_out,
                 got_before, got_after, out, before, after);
    lua_pop(L, 4);
}

/* Keras padding arithmetic: asymmetric 'same' puts the extra pad after;
 * causal pads (k - 1) * d before only. */
static void test_padding_rules(void **state)
{
    (void)state;
    lua_State *L = harness_host();
    check_axis(L, "same", 7, 3, 2, 1, 4, 1, 1);
    check_axis(L, "same", 8, 4, 2, 1, 4, 1, 1);
    check_axis(L, "same", 6, 4, 2, 1, 3, 1, 1);
    check_axis(L, "same", 5, 2, 1, 1, 5, 0, 1);  /* odd total: extra after */
    check_axis(L, "same", 8, 3, 2, 1, 4, 0, 1);  /* even input, stride 2 */
    check_axis(L, "same", 3, 5, 1, 1, 3, 2, 2);  /* kernel larger than input */
    check_axis(L, "same", 9, 3, 1, 2, 9, 2, 2);  /* dilation widens the kernel to 5 */
    check_axis(L, "valid", 7, 3, 2, 1, 3, 0, 0);
    check_axis(L, "valid", 6, 2, 3, 1, 2, 0, 0);
    check_axis(L, "causal", 10, 3, 1, 2, 10, 4, 0);
    check_axis(L, "causal", 9, 4, 2, 1, 5, 3, 0);
    convgen__host_close(L);
}

/* A valid layer too small for its kernel has no output size. */
static void test_valid_too_small(void **state)
{
    (void)state;
    lua_State *L = harness_host();
    lua_pushstring(L, "valid");
    lua_pushinteger(L, 2);
    lua_pushinteger(L, 3);
    lua_pushinteger(L, 1);
    lua_pushinteger(L, 1);
    assert_int_equal(convgen__host_call(L, "convgen.shapes", "axis", 5, 1), LUA_OK);
    assert_true(lua_isnil(L, -1));
    convgen__host_close(L);
}

/* Every embedded template renders only what its context defines: a typo is an error. */
static void test_template_undefined_name_is_an_error(void **state)
{
    (void)state;
    lua_State *L = harness_host();
    lua_pushstring(L, "templates/axis_pass.c.in");
    lua_newtable(L);
    assert_int_not_equal(convgen__host_call(L, "convgen.template", "render", 2, 1), LUA_OK);
    assert_non_null(strstr(lua_tostring(L, -1), "undefined name"));
    convgen__host_close(L);
}

/* A program using a generated .c and .h pair as documented compiles without a
 * warning under gcc, clang and tcc, for baked and run-time weights, and runs. */
static void test_generated_pair_compiles_and_runs(void **state)
{
    (void)state;
    const char *convgen = getenv("CONVGEN") ? getenv("CONVGEN") : "bin/convgen";
    static const char program[] =
        "#include \"sep.h\"\n"
        "#include <stdio.h>\n"
        "static float input[2 * SEP_INPUT_SIZE], output[2 * SEP_OUTPUT_SIZE];\n"
        "int main(void)\n"
        "{\n"
        "    for (int i = 0; i < 2 * SEP_INPUT_SIZE; i++)\n"
        "        input[i] = (float)(i % 13) * 0.125f - 0.75f;\n"
        "#ifdef SEP_NUM_WEIGHTS\n"
        "    static float w[SEP_NUM_WEIGHTS][4096];\n"
        "    for (int k = 0; k < SEP_NUM_WEIGHTS; k++)\n"
        "        for (int i = 0; i < 4096; i++)\n"
        "            w[k][i] = (float)((i + k) % 5) * 0.25f - 0.5f;\n"
        "    const float *weights[SEP_NUM_WEIGHTS] = {w[SEP_WEIGHT_DEPTHWISE_KERNEL],\n"
        "        w[SEP_WEIGHT_POINTWISE_KERNEL], w[SEP_WEIGHT_BIAS]};\n"
        "    sep(input, output, 2, weights);\n"
        "#else\n"
        "    sep(input, output, 2);\n"
        "#endif\n"
        "    printf(\"%d %d %d %.6f\\n\", SEP_OUTPUT_H, SEP_OUTPUT_W, SEP_OUTPUT_C, (double)output[7]);\n"
        "    return 0;\n"
        "}\n";
    const char *modes[] = {"-w", "--weights-at-runtime"};
    const char *compilers[] = {"gcc", "clang", "tcc"};
    for (int m = 0; m < 2; m++) {
        char *dir = harness_tempdir();
        char c_path[4200], exe[4200];
        snprintf(c_path, sizeof c_path, "%s/sep.c", dir);
        char *gen[] = {(char *)convgen, "generate", "examples/separable/spec.json", (char *)modes[m],
                       m == 0 ? "examples/separable/weights" : "--name=sep", "-o", c_path, NULL};
        char *out = NULL;
        if (harness_run(gen, &out) != 0)
            fail_msg("generate %s: %s", modes[m], out);
        free(out);
        char *main_path = harness_write(dir, "main.c", program, sizeof program - 1);
        for (int c = 0; c < 3; c++) {
            snprintf(exe, sizeof exe, "%s/prog_%s", dir, compilers[c]);
            char *cc[] = {(char *)compilers[c], "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror",
                          "-I", dir, main_path, c_path, "-o", exe, "-lm", NULL};
            if (harness_run(cc, &out) != 0)
                fail_msg("%s with %s: %s", compilers[c], modes[m], out);
            free(out);
            char *run[] = {exe, NULL};
            if (harness_run(run, &out) != 0 || strncmp(out, "16 16 16 ", 9) != 0)
                fail_msg("%s with %s: program printed %s", compilers[c], modes[m], out);
            free(out);
        }
        free(main_path);
        harness_remove_tree(dir);
        free(dir);
    }
}

/* The bundled examples build and run: the AOT layer and the whole model match
 * Keras, the JIT one compiles, hits its cache and runs. */
static void test_examples_run(void **state)
{
    (void)state;
    char *out = NULL;
    const char *dir = getenv("CONVGEN_EXAMPLES") ? getenv("CONVGEN_EXAMPLES") : "build/example";
    char aot_path[4096], jit_path[4096];
    snprintf(aot_path, sizeof aot_path, "%s/separable", dir);
    snprintf(jit_path, sizeof jit_path, "%s/jit", dir);
    char *aot[] = {aot_path, "examples/separable/input.npy", "examples/separable/expected.npy", NULL};
    if (harness_run(aot, &out) != 0 || !strstr(out, "OK: matches Keras"))
        fail_msg("examples/separable: %s", out ? out : "did not run");
    free(out);
    char model_path[4096];
    snprintf(model_path, sizeof model_path, "%s/model", dir);
    char *model[] = {model_path, "examples/model/input.npy", "examples/model/expected.npy", NULL};
    if (harness_run(model, &out) != 0 || !strstr(out, "OK: matches Keras"))
        fail_msg("examples/model: %s", out ? out : "did not run");
    free(out);
    char *jit[] = {jit_path, "12", "10", "5", NULL};
    if (harness_run(jit, &out) != 0 || !strstr(out, "-> [1, 12, 10, 16]"))
        fail_msg("examples/jit: %s", out ? out : "did not run");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_activation_functions_are_registered),
        cmocka_unit_test(test_padding_rules),
        cmocka_unit_test(test_valid_too_small),
        cmocka_unit_test(test_template_undefined_name_is_an_error),
        cmocka_unit_test(test_generated_pair_compiles_and_runs),
        cmocka_unit_test(test_examples_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
