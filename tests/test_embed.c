/* test_embed.c: the build integration used as a project uses it: `make
 * install` into a prefix under build/, then convgen.mk, the CMake package and
 * convgen.pc from that prefix, with the two example projects copied out of
 * the tree. Runs from the repository's root, like every test program. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ROOT_SIZE 2048
#define PATH_SIZE 4400 /* root and a name below it */

static char root[ROOT_SIZE];        /* absolute build/tests/embed.XXXXXX, removed at the end */
static char prefix[ROOT_SIZE + 16]; /* root/prefix, where the shared install goes */

/* What make install puts under PREFIX; README's "Embedding in a build" lists the same. */
static const char *const installed_files[] = {
    "bin/convgen", "lib/libconvgen.a", "include/convgen.h", "include/convgen_npy.h",
    "share/convgen/convgen.mk", "lib/pkgconfig/convgen.pc", "lib/cmake/convgen/convgenConfig.cmake",
    "lib/cmake/convgen/convgenConfigVersion.cmake", "lib/cmake/convgen/convgen.cmake",
};
#define NUM_INSTALLED_FILES (sizeof installed_files / sizeof installed_files[0])

/* Runs the NULL-terminated command in ap (no shell); returns its exit status
 * and its output in *text (malloc'd or NULL). */
static int run_va(char **text, const char *arg0, va_list ap)
{
    char *argv[40];
    int n = 0;
    for (const char *a = arg0; a && n < 39; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    argv[n] = NULL;
    *text = NULL;
    return harness_run(argv, text);
}

/* Runs the NULL-terminated command (no shell); returns its exit status and
 * its output in *out (malloc'd, never NULL). */
static int run(char **out, const char *arg0, ...)
{
    va_list ap;
    va_start(ap, arg0);
    char *text;
    int status = run_va(&text, arg0, ap);
    va_end(ap);
    *out = text ? text : strdup("(no output)");
    return status;
}

/* Runs a command that must succeed, and returns its output. */
static char *run_ok(const char *what, const char *arg0, ...)
{
    va_list ap;
    va_start(ap, arg0);
    char *text;
    int status = run_va(&text, arg0, ap);
    va_end(ap);
    if (status != 0)
        fail_msg("%s exited with %d:\n%s", what, status, text ? text : "(no output)");
    return text ? text : strdup("");
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static struct timespec mtime_of(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg("stat %s: %s", path, strerror(errno));
    return st.st_mtim;
}

static int same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static int later(struct timespec a, struct timespec b)
{
    return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
}

/* Sets path's time to now, as touch does, once now is strictly later than
 * reference's: file times come from a coarse clock, and a touch within the
 * same tick as the last build would look like no change at all. */
static void touch_after(const char *path, const char *reference)
{
    struct timespec ref = mtime_of(reference);
    for (int i = 0; i < 300; i++) {
        if (utimensat(AT_FDCWD, path, NULL, 0) != 0)
            fail_msg("touch %s: %s", path, strerror(errno));
        if (later(mtime_of(path), ref))
            return;
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    fail_msg("the clock does not move past the time of %s", reference);
}

/* The prefix every example builds against, installed by the first test that needs it. */
static const char *installed_prefix(void)
{
    static int state; /* 0: not yet, 1: installed, -1: failed */
    if (state == 0) {
        state = -1;
        char arg[PATH_SIZE + 16];
        snprintf(arg, sizeof arg, "PREFIX=%s", prefix);
        free(run_ok("make install", "make", "--no-print-directory", "install", arg, NULL));
        state = 1;
    }
    if (state < 0)
        fail_msg("make install PREFIX=%s failed in an earlier test", prefix);
    return prefix;
}

/* Copies a directory of the repository (an example) to root/name. */
static void copy_tree(const char *from, const char *name, char *to, size_t to_size)
{
    snprintf(to, to_size, "%s/%s", root, name);
    free(run_ok("cp -R", "cp", "-R", from, to, NULL));
}

/* make install honours DESTDIR and PREFIX, substitutes the prefix and the
 * version, refuses a relative PREFIX; make uninstall removes all of it. */
static void test_install_and_uninstall(void **state)
{
    (void)state;
    char stage[PATH_SIZE], destdir[PATH_SIZE + 16], path[2 * PATH_SIZE];
    snprintf(stage, sizeof stage, "%s/stage", root);
    snprintf(destdir, sizeof destdir, "DESTDIR=%s", stage);
    free(run_ok("make install (staged)", "make", "--no-print-directory", "install", destdir, "PREFIX=/opt/convgen",
                NULL));
    for (size_t i = 0; i < NUM_INSTALLED_FILES; i++) {
        snprintf(path, sizeof path, "%s/opt/convgen/%s", stage, installed_files[i]);
        if (!exists(path))
            fail_msg("make install did not install %s", path);
    }
    snprintf(path, sizeof path, "%s/opt/convgen/bin/convgen", stage);
    assert_int_equal(access(path, X_OK), 0);

    /* The installed version is the generator's. */
    char *version = run_ok("convgen --version", "bin/convgen", "--version", NULL);
    char *newline = strchr(version, '\n');
    if (newline)
        *newline = '\0';
    assert_true(strncmp(version, "convgen ", 8) == 0);
    char want[256];
    snprintf(path, sizeof path, "%s/opt/convgen/lib/pkgconfig/convgen.pc", stage);
    char *pc = harness_read(path, NULL);
    assert_non_null(pc);
    assert_non_null(strstr(pc, "\nprefix=/opt/convgen\n"));
    snprintf(want, sizeof want, "\nVersion: %s\n", version + 8);
    if (!strstr(pc, want))
        fail_msg("convgen.pc does not say %s", want + 1);
    free(pc);
    snprintf(path, sizeof path, "%s/opt/convgen/lib/cmake/convgen/convgenConfigVersion.cmake", stage);
    char *cmake_version = harness_read(path, NULL);
    assert_non_null(cmake_version);
    snprintf(want, sizeof want, "set(PACKAGE_VERSION \"%s\")", version + 8);
    if (!strstr(cmake_version, want))
        fail_msg("convgenConfigVersion.cmake does not say %s", want);
    free(cmake_version);
    free(version);

    free(run_ok("make uninstall", "make", "--no-print-directory", "uninstall", destdir, "PREFIX=/opt/convgen", NULL));
    for (size_t i = 0; i < NUM_INSTALLED_FILES; i++) {
        snprintf(path, sizeof path, "%s/opt/convgen/%s", stage, installed_files[i]);
        if (exists(path))
            fail_msg("make uninstall left %s", path);
    }
    snprintf(path, sizeof path, "%s/opt/convgen/share/convgen", stage);
    assert_false(exists(path));
    snprintf(path, sizeof path, "%s/opt/convgen/lib/cmake/convgen", stage);
    assert_false(exists(path));

    char *out;
    assert_int_not_equal(run(&out, "make", "--no-print-directory", "install", destdir, "PREFIX=relative/path", NULL),
                         0);
    if (!strstr(out, "PREFIX must be an absolute path"))
        fail_msg("make install with a relative PREFIX said: %s", out);
    free(out);
}

/* `make -q` in dir: 0 when everything is up to date, 1 when something would be remade. */
static int make_question(const char *dir, const char *prefix_arg)
{
    char *out;
    int status = run(&out, "make", "-q", "-C", dir, prefix_arg, NULL);
    if (status != 0 && status != 1)
        fail_msg("make -q in %s exited with %d:\n%s", dir, status, out);
    free(out);
    return status;
}

/* Runs make in dir; the layer must be generated again (or not). */
static void make_expecting(const char *dir, const char *prefix_arg, int generates)
{
    char *out = run_ok("make", "make", "-C", dir, prefix_arg, NULL);
    if (generates != (strstr(out, " generate ") != NULL))
        fail_msg("make in %s should %sregenerate the layer; it printed:\n%s", dir, generates ? "" : "not ", out);
    free(out);
}

/* examples/make-embed, built against the installed convgen.mk: the layer
 * matches Keras; touching the spec or a weight regenerates it, and the build
 * after that has nothing to do (the outputs are touched after generation). */
static void test_make_example(void **state)
{
    (void)state;
    char dir[PATH_SIZE], arg[PATH_SIZE + 32], path[2 * PATH_SIZE], input[2 * PATH_SIZE], expected[2 * PATH_SIZE];
    snprintf(arg, sizeof arg, "CONVGEN_PREFIX=%s", installed_prefix());
    copy_tree("examples/make-embed", "make-embed", dir, sizeof dir);
    make_expecting(dir, arg, 1);

    snprintf(path, sizeof path, "%s/app", dir);
    snprintf(input, sizeof input, "%s/input.npy", dir);
    snprintf(expected, sizeof expected, "%s/expected.npy", dir);
    char *out = run_ok("examples/make-embed/app", path, input, expected, NULL);
    if (!strstr(out, "OK: matches Keras"))
        fail_msg("examples/make-embed: %s", out);
    free(out);
    assert_int_equal(make_question(dir, arg), 0);

    char generated[2 * PATH_SIZE];
    snprintf(generated, sizeof generated, "%s/separable.c", dir);
    static const char *const inputs[] = {"separable.json", "separable.weights/pointwise_kernel.npy"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, inputs[i]);
        touch_after(path, generated);
        if (make_question(dir, arg) != 1)
            fail_msg("after touching %s, make -q says nothing is to be done", inputs[i]);
        make_expecting(dir, arg, 1);
        if (make_question(dir, arg) != 0)
            fail_msg("after regenerating for %s, make -q still has work", inputs[i]);
        make_expecting(dir, arg, 0);
    }
}

/* convgen_model: outputs in another directory, options of its own, run-time
 * weights, a weight file added later, the default goal left to the makefile's
 * first target; a failing spec fails the build and leaves no output. */
static void test_make_explicit_rule(void **state)
{
    (void)state;
    char dir[PATH_SIZE], weights[PATH_SIZE], arg[PATH_SIZE + 32], path[2 * PATH_SIZE];
    snprintf(arg, sizeof arg, "CONVGEN_PREFIX=%s", installed_prefix());
    snprintf(dir, sizeof dir, "%s/explicit", root);
    if (mkdir(dir, 0755) != 0)
        fail_msg("mkdir %s: %s", dir, strerror(errno));
    copy_tree("examples/separable/weights", "explicit/w", weights, sizeof weights);
    free(run_ok("cp spec.json", "cp", "examples/separable/spec.json", dir, NULL));
    static const char makefile[] =
        "include $(CONVGEN_PREFIX)/share/convgen/convgen.mk\n"
        "$(call convgen_model,out/first.c,spec.json,w,--name first_layer)\n"
        "all: out/first.h out/runtime.h\n"
        "$(call convgen_model, out/runtime.c, spec.json, , --weights-at-runtime)\n"
        "$(call convgen_model,out/bad.c,bad.json,w)\n";
    free(harness_write(dir, "Makefile", makefile, sizeof makefile - 1));
    free(harness_write(dir, "bad.json", "{\"class_name\": ", 15));

    make_expecting(dir, arg, 1);
    snprintf(path, sizeof path, "%s/out/first.h", dir);
    char *header = harness_read(path, NULL);
    assert_non_null(header);
    assert_non_null(strstr(header, "void first_layer(const float *input, float *output, int batch);"));
    free(header);
    snprintf(path, sizeof path, "%s/out/runtime.h", dir);
    header = harness_read(path, NULL);
    assert_non_null(header);
    assert_non_null(strstr(header, "#define RUNTIME_NUM_WEIGHTS 3"));
    free(header);
    assert_int_equal(make_question(dir, arg), 0);

    /* A new .npy in the weights directory regenerates the layer that reads it, only. */
    char generated[2 * PATH_SIZE], bias[2 * PATH_SIZE], extra[2 * PATH_SIZE];
    snprintf(generated, sizeof generated, "%s/out/first.c", dir);
    snprintf(bias, sizeof bias, "%s/bias.npy", weights);
    snprintf(extra, sizeof extra, "%s/extra.npy", weights);
    free(run_ok("cp bias.npy extra.npy", "cp", bias, extra, NULL));
    touch_after(extra, generated);
    assert_int_equal(make_question(dir, arg), 1);
    char *out = run_ok("make", "make", "-C", dir, arg, NULL);
    if (!strstr(out, "--name first_layer") || strstr(out, "out/runtime.c"))
        fail_msg("a new weight file should regenerate out/first.c only; make printed:\n%s", out);
    free(out);
    assert_int_equal(make_question(dir, arg), 0);

    /* A bad spec: make fails with convgen's message, and no output exists. */
    assert_int_not_equal(run(&out, "make", "-C", dir, arg, "out/bad.c", NULL), 0);
    if (!strstr(out, "malformed JSON"))
        fail_msg("make out/bad.c printed:\n%s", out);
    free(out);
    snprintf(path, sizeof path, "%s/out/bad.c", dir);
    assert_false(exists(path));
    snprintf(path, sizeof path, "%s/out/bad.h", dir);
    assert_false(exists(path));
}

/* cmake --build in build_dir; returns its output. */
static char *cmake_build(const char *build_dir)
{
    return run_ok("cmake --build", "cmake", "--build", build_dir, NULL);
}

/* Builds build_dir and checks whether the layer was generated again and, when
 * not, that nothing was relinked either. */
static void cmake_build_expecting(const char *build_dir, const char *app, int generates)
{
    struct timespec before = mtime_of(app);
    char *out = cmake_build(build_dir);
    int generated = strstr(out, "convgen: generating dwconv.c") != NULL;
    if (generated != generates)
        fail_msg("cmake --build should %sregenerate the layer; it printed:\n%s", generates ? "" : "not ", out);
    if (!generates && !same_time(before, mtime_of(app)))
        fail_msg("a cmake --build with nothing changed relinked the program:\n%s", out);
    free(out);
}

/* examples/cmake-embed, found with find_package(convgen) in the installed
 * prefix: the layer matches Keras; a build with nothing changed does nothing;
 * touching the spec, or adding a weight file (CONFIGURE_DEPENDS), regenerates. */
static void test_cmake_example(void **state)
{
    (void)state;
    char src[PATH_SIZE], build[PATH_SIZE], arg[PATH_SIZE + 32], path[2 * PATH_SIZE];
    char app[2 * PATH_SIZE], generated[2 * PATH_SIZE], input[2 * PATH_SIZE], expected[2 * PATH_SIZE];
    snprintf(arg, sizeof arg, "-DCMAKE_PREFIX_PATH=%s", installed_prefix());
    copy_tree("examples/cmake-embed", "cmake-embed", src, sizeof src);
    snprintf(build, sizeof build, "%s/cmake-build", root);
    free(run_ok("cmake configure", "cmake", "-S", src, "-B", build, arg, NULL));

    snprintf(path, sizeof path, "%s/CMakeCache.txt", build);
    char *cache = harness_read(path, NULL);
    assert_non_null(cache);
    char want[2 * PATH_SIZE];
    snprintf(want, sizeof want, "\nCONVGEN_EXECUTABLE:FILEPATH=%s/bin/convgen\n", prefix);
    if (!strstr(cache, want))
        fail_msg("CMakeCache.txt lacks %s", want + 1);
    free(cache);

    char *out = cmake_build(build);
    if (!strstr(out, "convgen: generating dwconv.c"))
        fail_msg("the first build did not generate the layer:\n%s", out);
    free(out);
    snprintf(app, sizeof app, "%s/app", build);
    snprintf(input, sizeof input, "%s/input.npy", src);
    snprintf(expected, sizeof expected, "%s/expected.npy", src);
    out = run_ok("examples/cmake-embed app", app, input, expected, NULL);
    if (!strstr(out, "OK: matches Keras"))
        fail_msg("examples/cmake-embed: %s", out);
    free(out);
    cmake_build_expecting(build, app, 0);

    snprintf(generated, sizeof generated, "%s/convgen/app/dwconv.c", build);
    snprintf(path, sizeof path, "%s/layer.json", src);
    touch_after(path, generated);
    cmake_build_expecting(build, app, 1);
    cmake_build_expecting(build, app, 0);

    char bias[2 * PATH_SIZE];
    snprintf(bias, sizeof bias, "%s/layer.weights/bias.npy", src);
    snprintf(path, sizeof path, "%s/layer.weights/extra.npy", src);
    free(run_ok("cp bias.npy extra.npy", "cp", bias, path, NULL));
    touch_after(path, generated);
    cmake_build_expecting(build, app, 1);
    cmake_build_expecting(build, app, 0);
}

/* convgen.pc from the installed prefix: its flags build and link a program
 * using the run-time library (examples/jit), which then runs. */
static void test_pkg_config(void **state)
{
    (void)state;
    char pc_path[PATH_SIZE + 32], exe[PATH_SIZE + 16], want[2 * PATH_SIZE];
    snprintf(pc_path, sizeof pc_path, "%s/lib/pkgconfig", installed_prefix());
    if (setenv("PKG_CONFIG_PATH", pc_path, 1) != 0)
        fail_msg("setenv: %s", strerror(errno));
    char *out = run_ok("pkg-config", "pkg-config", "--cflags", "--libs", "convgen", NULL);
    snprintf(want, sizeof want, "-I%s/include", prefix);
    if (!strstr(out, want) || !strstr(out, "-lconvgen"))
        fail_msg("pkg-config --cflags --libs convgen: %s", out);
    free(out);
    out = run_ok("pkg-config --variable", "pkg-config", "--variable=makefile", "convgen", NULL);
    snprintf(want, sizeof want, "%s/share/convgen/convgen.mk\n", prefix);
    assert_string_equal(out, want);
    free(out);

    snprintf(exe, sizeof exe, "%s/jit", root);
    free(run_ok("cc with pkg-config's flags", "sh", "-c",
                "${CC:-cc} -std=c99 -Wall -Wextra -pedantic -D_POSIX_C_SOURCE=200809L $(pkg-config --cflags convgen) "
                "examples/jit/main.c -o \"$1\" $(pkg-config --libs convgen)",
                "sh", exe, NULL));
    out = run_ok("examples/jit built with pkg-config", exe, "12", "10", "5", NULL);
    if (!strstr(out, "-> [1, 12, 10, 16]"))
        fail_msg("examples/jit: %s", out);
    free(out);
}

/* A fresh root under build/tests, and an environment of our own: nothing of
 * the make that runs the tests (flags, jobserver, variables) reaches the
 * makes and the cmake started here. Under make test-sanitize that includes
 * BUILD, BIN and SANITIZE: the plain build is installed, since the example
 * projects link without the sanitizers' runtimes. */
static int setup(void **state)
{
    (void)state;
    static const char *const inherited[] = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR",
                                            "PREFIX", "CONVGEN", "CONVGEN_PREFIX", "CONVGEN_FLAGS",
                                            "PKG_CONFIG_PATH", "CMAKE_PREFIX_PATH", "BUILD", "BIN", "SANITIZE",
                                            "CFLAGS"};
    for (size_t i = 0; i < sizeof inherited / sizeof inherited[0]; i++)
        unsetenv(inherited[i]);
    char cwd[ROOT_SIZE - 64], name[] = "build/tests/embed.XXXXXX";
    if (!getcwd(cwd, sizeof cwd) || !mkdtemp(name)) {
        perror("test_embed: a directory under build/tests");
        return -1;
    }
    snprintf(root, sizeof root, "%s/%s", cwd, name);
    snprintf(prefix, sizeof prefix, "%s/prefix", root);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    harness_remove_tree(root);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_install_and_uninstall),
        cmocka_unit_test(test_make_example),
        cmocka_unit_test(test_make_explicit_rule),
        cmocka_unit_test(test_cmake_example),
        cmocka_unit_test(test_pkg_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
