/* test_cli.c: the convgen command line's contract with its users.
 *
 * Bad input gets one clear line per problem on stderr,
 *     convgen: <file>: error: <what> (<field>)
 * and exit status 1; bad usage exits 2; an error writes nothing (no partial
 * .c, .h or .npy). Each test builds its input in a fresh temporary directory
 * (specs as text, weights with convgen_npy_save, broken .npy files as raw
 * bytes), runs the real binary ($CONVGEN, default bin/convgen) without a
 * shell, and checks the exit status, the message and the files left behind. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* realpath */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "convgen_npy.h"
#include "harness.h"
#include "reference.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Per-test state: a temporary directory and everything to free afterwards */
/* ------------------------------------------------------------------------ */

#define MAX_OWNED 4096
#define DEFAULT_TIMEOUT 120 /* seconds; a run past it counts as a failure */
#define END ((const char *)NULL)

static char *tmp;  /* this test's directory */
static char *outd; /* tmp/out: where every output goes */
static void *owned[MAX_OWNED];
static int nowned;

static void *own(void *p)
{
    if (nowned == MAX_OWNED) {
        fprintf(stderr, "test_cli: more than %d allocations in one test; raise MAX_OWNED\n", MAX_OWNED);
        abort();
    }
    owned[nowned++] = p;
    return p;
}

/* A malloc'd, owned string from a format. */
static char *fmt(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(NULL, 0, format, ap);
    va_end(ap);
    char *s = malloc((size_t)n + 1);
    va_start(ap, format);
    vsnprintf(s, (size_t)n + 1, format, ap);
    va_end(ap);
    return own(s);
}

static int setup(void **state)
{
    (void)state;
    nowned = 0;
    tmp = harness_tempdir();
    outd = fmt("%s/out", tmp);
    if (mkdir(outd, 0755) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    harness_remove_tree(tmp);
    free(tmp);
    tmp = NULL;
    for (int i = 0; i < nowned; i++)
        free(owned[i]);
    nowned = 0;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Running the command line                                                 */
/* ------------------------------------------------------------------------ */

typedef struct {
    int status;   /* exit status; -1 when killed, timed out or not run */
    int timed_out;
    char *out;    /* stdout */
    char *err;    /* stderr */
} cli_result;

static char convgen_absolute[4096]; /* set in main: the binary, for runs in another directory */
static const char *cli_cwd;          /* when set, the child runs there */

static const char *convgen_path(void)
{
    if (convgen_absolute[0])
        return convgen_absolute;
    const char *p = getenv("CONVGEN");
    return p && *p ? p : "bin/convgen";
}

/* Runs $CONVGEN with the arguments in argv (NULL-terminated, argv[0] not
 * included), stdout and stderr captured apart, stdin empty, at most
 * timeout seconds and 4 GiB of address space. */
static cli_result cli_argv(int timeout, const char *const *args)
{
    cli_result r = {-1, 0, NULL, NULL};
    const char *argv[64];
    int n = 0;
    argv[n++] = convgen_path();
    for (int i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;

    char *logs = harness_tempdir();
    char *out_path = fmt("%s/stdout", logs), *err_path = fmt("%s/stderr", logs);
    pid_t pid = fork();
    if (pid < 0) {
        harness_remove_tree(logs);
        free(logs);
        return r;
    }
    if (pid == 0) {
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int fi = open("/dev/null", O_RDONLY);
        if (fo < 0 || fe < 0 || fi < 0)
            _exit(127);
        dup2(fi, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        if (cli_cwd && chdir(cli_cwd) != 0)
            _exit(127);
        /* A runaway child stops at 4 GiB; a sanitized build reserves terabytes
         * of address space for its shadow memory and cannot have the limit. */
        if (!getenv("CONVGEN_TEST_SANITIZED")) {
            struct rlimit lim;
            lim.rlim_cur = lim.rlim_max = (rlim_t)4 << 30;
            setrlimit(RLIMIT_AS, &lim);
        }
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status = 0, reaped = 0;
    struct timespec tick = {0, 10 * 1000 * 1000};
    long waited = 0, limit = (long)timeout * 100;
    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid) {
            reaped = 1;
            break;
        }
        if (got < 0 && errno != EINTR)
            break;
        if (waited++ >= limit) {
            kill(pid, SIGKILL); /* our own child only */
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            r.timed_out = 1;
            break;
        }
        nanosleep(&tick, NULL);
    }
    r.out = own(harness_read(out_path, NULL));
    r.err = own(harness_read(err_path, NULL));
    if (!r.out)
        r.out = fmt("%s", "");
    if (!r.err)
        r.err = fmt("%s", "");
    harness_remove_tree(logs);
    free(logs);
    r.status = reaped && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (r.status == 127 && r.out[0] == 0 && r.err[0] == 0)
        fail_msg("could not run %s (set CONVGEN to the convgen binary)", argv[0]);
    return r;
}

static cli_result cli_va(int timeout, const char *first, va_list ap)
{
    const char *args[64];
    int n = 0;
    for (const char *a = first; a && n < 63; a = va_arg(ap, const char *))
        args[n++] = a;
    args[n] = NULL;
    return cli_argv(timeout, args);
}

/* cli_timeout(seconds, "generate", spec, ..., END) */
static cli_result cli_timeout(int timeout, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    cli_result r = cli_va(timeout, first, ap);
    va_end(ap);
    return r;
}

/* cli("generate", spec, "-o", path, END) */
static cli_result cli(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    cli_result r = cli_va(DEFAULT_TIMEOUT, first, ap);
    va_end(ap);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Assertions                                                                */
/* ------------------------------------------------------------------------ */

static const char *show_result(const cli_result *r)
{
    return fmt("exit status %d%s\n--- stderr ---\n%.3000s\n--- stdout ---\n%.2000s", r->status,
               r->timed_out ? " (killed: timed out)" : "", r->err, r->out);
}

#define assert_status(r, want)                                                                 \
    do {                                                                                       \
        if ((r).status != (want))                                                              \
            fail_msg("expected exit status %d, got %s", (want), show_result(&(r)));            \
    } while (0)

#define assert_has(text, needle)                                                               \
    do {                                                                                       \
        const char *t_ = (text);                                                               \
        if (!t_ || !strstr(t_, (needle)))                                                      \
            fail_msg("expected \"%s\" in:\n%.3000s", (needle), t_ ? t_ : "(nothing)");              \
    } while (0)

#define assert_lacks(text, needle)                                                             \
    do {                                                                                       \
        const char *t_ = (text);                                                               \
        if (t_ && strstr(t_, (needle)))                                                        \
            fail_msg("did not expect \"%s\" in:\n%.3000s", (needle), t_);                           \
    } while (0)

/* True when one line of text reads `convgen: <file>: <kind>: ... (<field>)`
 * (field NULL: any parenthesized field) and contains every word. */
static int has_diag(const char *text, const char *kind, const char *file, const char *field,
                    const char *const *words)
{
    const char *prefix = fmt("convgen: %s: %s: ", file, kind);
    const char *suffix = field ? fmt(" (%s)", field) : NULL;
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char *l = own(malloc(len + 1));
        memcpy(l, line, len);
        l[len] = 0;
        int ok = strncmp(l, prefix, strlen(prefix)) == 0;
        if (ok && suffix)
            ok = len >= strlen(suffix) && strcmp(l + len - strlen(suffix), suffix) == 0;
        if (ok && !suffix)
            ok = len > 0 && l[len - 1] == ')' && strstr(l + strlen(prefix), " (") != NULL;
        for (int i = 0; ok && words[i]; i++)
            ok = strstr(l + strlen(prefix), words[i]) != NULL;
        if (ok)
            return 1;
        line = nl ? nl + 1 : NULL;
    }
    return 0;
}

/* assert_diag(r, "error", file, field, "word", ..., NULL): some stderr line
 * has the contract's form for that file and field and holds every word. */
#define assert_diag(r, kind, file, field, ...)                                                 \
    do {                                                                                       \
        const char *const w_[] = {__VA_ARGS__};                                                \
        if (!has_diag((r).err, (kind), (file), (field), w_)) {                                 \
            const char *ws_ = "";                                                              \
            for (int i_ = 0; w_[i_]; i_++)                                                     \
                ws_ = fmt("%s \"%s\"", ws_, w_[i_]);                                           \
            fail_msg("expected a line `convgen: %s: %s: ... (%s)` containing%s; got %s", (file),      \
                     (kind), (field) ? (const char *)(field) : "<field>", ws_, show_result(&(r)));   \
        }                                                                                      \
    } while (0)

/* Exit status 1 with an error line for file and field holding every word. */
#define assert_error(r, file, field, ...)                                                      \
    do {                                                                                       \
        assert_status((r), 1);                                                                 \
        assert_diag((r), "error", (file), (field), __VA_ARGS__);                               \
    } while (0)

/* Names in dir (without . and ..), space-separated; NULL if dir is missing. */
static char *listing(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char *s = fmt("%s", "");
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            s = fmt("%s%s%s", s, *s ? " " : "", e->d_name);
    }
    closedir(d);
    return s;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Nothing at all was written into the output directory. */
#define assert_no_output()                                                                     \
    do {                                                                                       \
        char *l_ = listing(outd);                                                              \
        if (!l_ || *l_)                                                                        \
            fail_msg("expected no output files, found in %s: %s", outd, l_ ? l_ : "(gone)");   \
    } while (0)

#define assert_exists(path)                                                                    \
    do {                                                                                       \
        if (!exists(path))                                                                     \
            fail_msg("expected %s to exist", (path));                                          \
    } while (0)

/* dir holds exactly the given names (any order, nothing else, no temporaries). */
static void assert_dir_holds(const char *dir, ...)
{
    char *names = listing(dir);
    if (!names)
        fail_msg("%s does not exist", dir);
    int want = 0;
    va_list ap;
    va_start(ap, dir);
    for (const char *n = va_arg(ap, const char *); n; n = va_arg(ap, const char *)) {
        want++;
        if (!exists(fmt("%s/%s", dir, n)))
            fail_msg("%s lacks %s (holds: %s)", dir, n, names);
    }
    va_end(ap);
    int have = 0;
    for (const char *p = names; *p; p++)
        have += *p == ' ';
    have += *names ? 1 : 0;
    if (have != want)
        fail_msg("unexpected files in %s: %s", dir, names);
}

/* ------------------------------------------------------------------------ */
/* Inputs                                                                    */
/* ------------------------------------------------------------------------ */

/* Keras 3 serialization of a Conv2D layer: 8x8x3 -> 8x8x4, 3x3 'same', relu. */
static const char BASE[] =
    "{\"class_name\": \"Conv2D\", \"config\": {\"name\": \"c\", \"filters\": 4, \"kernel_size\": [3, 3], "
    "\"strides\": [1, 1], \"padding\": \"same\", \"data_format\": \"channels_last\", "
    "\"dilation_rate\": [1, 1], \"groups\": 1, \"activation\": \"relu\", \"use_bias\": true}, "
    "\"build_config\": {\"input_shape\": [null, 8, 8, 3]}}";

/* text with its first `from` replaced by `to` (from must occur). */
static char *replaced(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    if (!at)
        fail_msg("test bug: \"%s\" not in %s", from, text);
    return fmt("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

/* BASE with one substitution. */
static char *base_with(const char *from, const char *to)
{
    return replaced(BASE, from, to);
}

/* Writes text to tmp/name; returns the path. */
static char *write_text(const char *name, const char *text)
{
    return own(harness_write(tmp, name, text, strlen(text)));
}

static char *write_spec(const char *text)
{
    return write_text("spec.json", text);
}

static char *make_dir(const char *name)
{
    char *path = fmt("%s/%s", tmp, name);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", path, strerror(errno));
    return path;
}

static unsigned long long seed = 42;

/* Saves deterministic float32 values of this shape as dir/file. */
static float *save_weights(const char *dir, const char *file, int rank, const long *shape)
{
    long n = 1;
    for (int i = 0; i < rank; i++)
        n *= shape[i];
    float *data = own(malloc((size_t)n * sizeof(float)));
    harness_fill(data, n, &seed, -1.0f, 1.0f);
    char err[256];
    if (convgen_npy_save(fmt("%s/%s", dir, file), rank, shape, data, err, sizeof err) != 0)
        fail_msg("convgen_npy_save: %s", err);
    return data;
}

static const long KERNEL_SHAPE[] = {3, 3, 3, 4};
static const long BIAS_SHAPE[] = {4};

/* tmp/w with kernel.npy (3, 3, 3, 4) and bias.npy (4,) for BASE. */
static char *base_weights(void)
{
    char *w = make_dir("w");
    save_weights(w, "kernel.npy", 4, KERNEL_SHAPE);
    save_weights(w, "bias.npy", 1, BIAS_SHAPE);
    return w;
}

/* A version 1.0 .npy image with this descr and shape text ("(3, 3, 3, 4)"). */
static unsigned char *raw_npy(const char *descr, const char *shape, const void *data, size_t nbytes,
                              size_t *size)
{
    char *dict = fmt("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    size_t n = strlen(dict);
    size_t padded = (10 + n + 1 + 63) / 64 * 64;
    size_t hlen = padded - 10;
    unsigned char *b = own(malloc(padded + nbytes));
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)(hlen & 0xff);
    b[9] = (unsigned char)(hlen >> 8);
    memcpy(b + 10, dict, n);
    memset(b + 10 + n, ' ', hlen - n - 1);
    b[padded - 1] = '\n';
    if (nbytes)
        memcpy(b + padded, data, nbytes);
    *size = padded + nbytes;
    return b;
}

static char *read_or_fail(const char *path, size_t *size)
{
    char *text = harness_read(path, size);
    if (!text)
        fail_msg("cannot read %s", path);
    return own(text);
}

/* Byte-identical files (sizes and contents). */
#define assert_same_bytes(a, na, b, nb, what)                                                  \
    do {                                                                                       \
        if ((na) != (nb) || memcmp((a), (b), (na)) != 0)                                       \
            fail_msg("%s differ (%zu vs %zu bytes)", (what), (size_t)(na), (size_t)(nb));      \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Baseline                                                                  */
/* ------------------------------------------------------------------------ */

/* The base spec and weights generate a .c and .h silently (so every failure below is the mutation's). */
static void test_base_spec_generates(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = base_weights(), *c = fmt("%s/layer.c", outd);
    cli_result r = cli("generate", spec, "-w", w, "-o", c, END);
    assert_status(r, 0);
    assert_string_equal(r.err, "");
    assert_exists(c);
    assert_exists(fmt("%s/layer.h", outd));
    assert_has(read_or_fail(fmt("%s/layer.h", outd), NULL), "void layer(const float *input, float *output, int batch);");
}

/* ------------------------------------------------------------------------ */
/* JSON specs: errors name the file and the field                           */
/* ------------------------------------------------------------------------ */

/* Runs generate on spec text (weights from base_weights); the output must not appear. */
static cli_result generate_spec_text(const char *text, char **spec_out)
{
    char *spec = write_spec(text), *w = base_weights();
    if (spec_out)
        *spec_out = spec;
    return cli("generate", spec, "-w", w, "-o", fmt("%s/layer.c", outd), END);
}

/* Malformed JSON: the message says so and points at the line and column. */
static void test_malformed_json(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text("{\"class_name\": \"Conv2D\",\n  \"config\": {\"filters\": 4,,}}", &spec);
    assert_error(r, spec, "json", "malformed JSON", "line 2", "column", NULL);
    assert_no_output();
}

/* JSON that is not an object (array, string, number, empty array) is refused as such. */
static void test_json_not_an_object(void **state)
{
    (void)state;
    const char *texts[] = {"[1, 2, 3]", "\"Conv2D\"", "42", "[]"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char *spec;
        cli_result r = generate_spec_text(texts[i], &spec);
        if (r.status != 1 || !has_diag(r.err, "error", spec, "json", (const char *const[]){"expected a JSON object", NULL}))
            fail_msg("spec %s: expected `expected a JSON object ... (json)`, got %s", texts[i], show_result(&r));
        assert_no_output();
    }
}

/* A layer object without config names the config field. */
static void test_missing_config(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text("{\"class_name\": \"Conv2D\", \"build_config\": {\"input_shape\": [null, 8, 8, 3]}}", &spec);
    assert_error(r, spec, "config", "missing layer config", NULL);
    assert_no_output();
}

/* An unsupported class is named and the supported ones are listed. */
static void test_unknown_layer_class(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(base_with("\"Conv2D\"", "\"Dense\""), &spec);
    assert_error(r, spec, "class_name", "unsupported layer class", "Dense", "Conv1D", "Conv2D", "DepthwiseConv1D",
                 "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D", NULL);
    assert_no_output();
}

/* A missing required field (filters) is named. */
static void test_missing_required_filters(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(base_with("\"filters\": 4, ", ""), &spec);
    assert_error(r, spec, "config.filters", "missing required field", "Conv2D", NULL);
    assert_no_output();
}

/* A value of the wrong type (kernel_size "three") is named with what was expected. */
static void test_wrong_type_kernel_size(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(base_with("[3, 3]", "\"three\""), &spec);
    assert_error(r, spec, "config.kernel_size", "expected an integer", "\"three\"", NULL);
    assert_no_output();
}

/* Out-of-range values (kernel_size 0, strides 0, filters -1) are refused, naming the field and the value. */
static void test_out_of_range_values(void **state)
{
    (void)state;
    static const struct {
        const char *from, *to, *field, *value;
    } cases[] = {
        {"\"kernel_size\": [3, 3]", "\"kernel_size\": 0", "config.kernel_size", "got 0"},
        {"\"strides\": [1, 1]", "\"strides\": [0, 0]", "config.strides", "got 0"},
        {"\"filters\": 4", "\"filters\": -1", "config.filters", "got -1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *spec;
        cli_result r = generate_spec_text(base_with(cases[i].from, cases[i].to), &spec);
        assert_error(r, spec, cases[i].field, "must be at least 1", cases[i].value, NULL);
        assert_no_output();
    }
}

/* An unknown padding is named and the valid ones listed. */
static void test_unknown_padding(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(base_with("\"same\"", "\"full\""), &spec);
    assert_error(r, spec, "config.padding", "\"full\"", "valid", "same", NULL);
    assert_no_output();
}

/* 'causal' padding is for 1D layers only. */
static void test_causal_on_2d(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(base_with("\"same\"", "\"causal\""), &spec);
    assert_error(r, spec, "config.padding", "causal", "1D", NULL);
    assert_no_output();
}

/* An unknown data_format is named and the valid ones listed. */
static void test_unknown_data_format(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(base_with("\"channels_last\"", "\"nhwc\""), &spec);
    assert_error(r, spec, "config.data_format", "\"nhwc\"", "channels_last", "channels_first", NULL);
    assert_no_output();
}

/* An unknown activation is named and the known ones listed. */
static void test_unknown_activation(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(base_with("\"relu\"", "\"bogus\""), &spec);
    assert_error(r, spec, "config.activation", "unknown activation", "\"bogus\"", "relu", "tanh", "softmax",
                 "hard_sigmoid", NULL);
    assert_no_output();
}

/* strides > 1 together with dilation_rate > 1 is refused (Keras refuses it too). */
static void test_strides_with_dilation(void **state)
{
    (void)state;
    char *text = replaced(base_with("\"strides\": [1, 1]", "\"strides\": [2, 2]"), "\"dilation_rate\": [1, 1]",
                          "\"dilation_rate\": [2, 2]");
    char *spec;
    cli_result r = generate_spec_text(text, &spec);
    assert_error(r, spec, "config.dilation_rate", "strides", "dilation_rate", NULL);
    assert_no_output();
}

/* groups must divide the input channels. */
static void test_groups_not_dividing_channels(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(base_with("\"groups\": 1", "\"groups\": 2"), &spec);
    assert_error(r, spec, "config.groups", "input channels (3)", "divisible by groups (2)", NULL);
    assert_no_output();
}

/* Without build_config the input shape is unknown; the message says how to give it. */
static void test_missing_input_shape(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(base_with(", \"build_config\": {\"input_shape\": [null, 8, 8, 3]}", ""), &spec);
    assert_error(r, spec, "build_config.input_shape", "input shape is unknown", "--input-shape", NULL);
    assert_no_output();
}

/* An input shape of the wrong length says how many sizes were expected. */
static void test_input_shape_wrong_length(void **state)
{
    (void)state;
    const char *shapes[] = {"[null, 8, 8, 8, 3]", "[8, 3]"};
    for (size_t i = 0; i < 2; i++) {
        char *spec;
        cli_result r = generate_spec_text(base_with("[null, 8, 8, 3]", shapes[i]), &spec);
        assert_error(r, spec, "build_config.input_shape", "expected 4 sizes", "height, width, channels", NULL);
        assert_no_output();
    }
}

/* Messages show the offending value as written: JSON null is not printed as `[]`, nor an object as `[]`. */
static void test_messages_show_values_as_written(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(base_with("[null, 8, 8, 3]", "[null, 8, 8, 8, 3]"), &spec);
    assert_error(r, spec, "build_config.input_shape", "expected 4 sizes", NULL);
    assert_lacks(r.err, "[[]");
    r = generate_spec_text(base_with("\"use_bias\": true", "\"use_bias\": true, \"quantization_config\": {\"mode\": \"int8\"}"),
                           &spec);
    assert_error(r, spec, "config.quantization_config", "not supported", NULL);
    assert_lacks(r.err, "= []");
    assert_no_output();
}

/* A zero input size is refused. */
static void test_non_positive_input_size(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(base_with("[null, 8, 8, 3]", "[null, 0, 8, 3]"), &spec);
    assert_error(r, spec, "build_config.input_shape", "positive", NULL);
    assert_no_output();
}

/* A 'valid' layer smaller than its kernel has no output: refused, naming the axis and the kernel's extent. */
static void test_valid_smaller_than_kernel(void **state)
{
    (void)state;
    char *spec;
    char *text = replaced(base_with("\"same\"", "\"valid\""), "[null, 8, 8, 3]", "[null, 2, 8, 3]");
    cli_result r = generate_spec_text(text, &spec);
    assert_error(r, spec, "build_config.input_shape", "height 2", "smaller than the kernel", "valid", NULL);
    assert_no_output();
}

/* lora_rank other than null changes the math: refused, naming the field. */
static void test_lora_rank_refused(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(base_with("\"use_bias\": true", "\"use_bias\": true, \"lora_rank\": 4"), &spec);
    assert_error(r, spec, "config.lora_rank", "lora_rank = 4", "not supported", NULL);
    assert_no_output();
}

/* lora_rank null (what Keras 3 writes for a plain layer) is accepted. */
static void test_lora_rank_null_accepted(void **state)
{
    (void)state;
    cli_result r = generate_spec_text(base_with("\"use_bias\": true", "\"use_bias\": true, \"lora_rank\": null"), NULL);
    assert_status(r, 0);
    assert_string_equal(r.err, "");
    assert_exists(fmt("%s/layer.c", outd));
}

/* quantization_config other than null is refused, naming the field. */
static void test_quantization_config_refused(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(
        base_with("\"use_bias\": true", "\"use_bias\": true, \"quantization_config\": {\"mode\": \"int8\"}"), &spec);
    assert_error(r, spec, "config.quantization_config", "quantization_config", "not supported", NULL);
    assert_no_output();
}

/* An unknown config field only warns: exit 0, output written, the warning names the field. */
static void test_unknown_field_warns(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(base_with("\"use_bias\": true", "\"use_bias\": true, \"frobnicate\": 7"), &spec);
    assert_status(r, 0);
    assert_diag(r, "warning", spec, "config.frobnicate", "unknown field", "frobnicate", NULL);
    assert_lacks(r.err, ": error:");
    assert_exists(fmt("%s/layer.c", outd));
    assert_exists(fmt("%s/layer.h", outd));
}

/* Control characters from the spec (here ESC, which would drive the terminal,
 * and NUL, which cut the message short) reach the terminal escaped. Found by fuzz_spec_json. */
static void test_control_characters_escaped(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(
        base_with("\"use_bias\": true", "\"use_bias\": true, \"pad\\u001b[31m\\u0000x\": \"a\\nb\""), &spec);
    assert_status(r, 0);
    assert_diag(r, "warning", spec, "config.pad\\x1b[31m\\x00x", "unknown field pad\\x1b[31m\\x00x ignored", NULL);
    assert_lacks(r.err, "\x1b");
}

/* The same in a quoted value of an error. */
static void test_control_characters_escaped_in_values(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(base_with("\"same\"", "\"va\\u001blid\\n\""), &spec);
    assert_error(r, spec, "config.padding", "unknown value \"va\\x1blid\\n\"", NULL);
    assert_lacks(r.err, "\x1b");
    assert_no_output();
}

/* Padding spelled in upper case ("SAME") is accepted and generates the same code as "same". */
static void test_uppercase_padding_accepted(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = base_weights(), *c = fmt("%s/layer.c", outd);
    cli_result r = cli("generate", spec, "-w", w, "-o", c, END);
    assert_status(r, 0);
    size_t n_lower, n_upper;
    char *lower = read_or_fail(c, &n_lower);
    unlink(c);
    unlink(fmt("%s/layer.h", outd));
    write_spec(base_with("\"same\"", "\"SAME\""));
    r = cli("generate", spec, "-w", w, "-o", c, END);
    assert_status(r, 0);
    assert_string_equal(r.err, "");
    char *upper = read_or_fail(c, &n_upper);
    assert_same_bytes(lower, n_lower, upper, n_upper, "code for \"same\" and \"SAME\"");
}

/* ------------------------------------------------------------------------ */
/* Weights                                                                   */
/* ------------------------------------------------------------------------ */

/* A weights directory missing a file names the directory, the expected file and its shape. */
static void test_weights_missing_file(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = make_dir("w");
    save_weights(w, "kernel.npy", 4, KERNEL_SHAPE);
    cli_result r = cli("generate", spec, "-w", w, "-o", fmt("%s/layer.c", outd), END);
    assert_error(r, w, "bias", "missing weight file", "bias.npy", "(4,)", NULL);
    assert_no_output();
}

/* A weight of the wrong shape names the file and both shapes. */
static void test_weight_wrong_shape(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = make_dir("w");
    static const long wrong[] = {3, 3, 4, 3};
    save_weights(w, "kernel.npy", 4, wrong);
    save_weights(w, "bias.npy", 1, BIAS_SHAPE);
    cli_result r = cli("generate", spec, "-w", w, "-o", fmt("%s/layer.c", outd), END);
    assert_error(r, fmt("%s/kernel.npy", w), "kernel", "(3, 3, 4, 3)", "(3, 3, 3, 4)", NULL);
    assert_no_output();
}

/* An int32 .npy is refused, naming the file and the dtype. */
static void test_weight_int32_refused(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = make_dir("w");
    save_weights(w, "bias.npy", 1, BIAS_SHAPE);
    int32_t ints[108] = {0};
    size_t size;
    unsigned char *npy = raw_npy("<i4", "(3, 3, 3, 4)", ints, sizeof ints, &size);
    own(harness_write(w, "kernel.npy", npy, size));
    cli_result r = cli("generate", spec, "-w", w, "-o", fmt("%s/layer.c", outd), END);
    assert_error(r, fmt("%s/kernel.npy", w), "kernel", "dtype", "<i4", NULL);
    assert_no_output();
}

/* A truncated .npy (data cut short, or header cut short) is refused, naming the file. */
static void test_weight_truncated(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = base_weights();
    char *kpath = fmt("%s/kernel.npy", w);
    size_t size;
    char *full = read_or_fail(kpath, &size);
    own(harness_write(w, "kernel.npy", full, size - 10));
    cli_result r = cli("generate", spec, "-w", w, "-o", fmt("%s/layer.c", outd), END);
    assert_error(r, kpath, "kernel", "truncated", NULL);
    assert_no_output();
    own(harness_write(w, "kernel.npy", full, 30));
    r = cli("generate", spec, "-w", w, "-o", fmt("%s/layer.c", outd), END);
    assert_error(r, kpath, "kernel", "truncated", NULL);
    assert_no_output();
}

/* float64 weights are accepted and give the same code as float32 weights of the same values. */
static void test_weight_float64_same_code(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = make_dir("w"), *c = fmt("%s/layer.c", outd), *h = fmt("%s/layer.h", outd);
    float *kernel = save_weights(w, "kernel.npy", 4, KERNEL_SHAPE);
    float *bias = save_weights(w, "bias.npy", 1, BIAS_SHAPE);
    cli_result r = cli("generate", spec, "-w", w, "-o", c, END);
    assert_status(r, 0);
    size_t nc32, nh32, nc64, nh64;
    char *c32 = read_or_fail(c, &nc32), *h32 = read_or_fail(h, &nh32);
    unlink(c);
    unlink(h);

    double k64[108], b64[4];
    for (int i = 0; i < 108; i++)
        k64[i] = kernel[i];
    for (int i = 0; i < 4; i++)
        b64[i] = bias[i];
    size_t size;
    unsigned char *npy = raw_npy("<f8", "(3, 3, 3, 4)", k64, sizeof k64, &size);
    own(harness_write(w, "kernel.npy", npy, size));
    npy = raw_npy("<f8", "(4,)", b64, sizeof b64, &size);
    own(harness_write(w, "bias.npy", npy, size));
    r = cli("generate", spec, "-w", w, "-o", c, END);
    assert_status(r, 0);
    assert_string_equal(r.err, "");
    char *c64 = read_or_fail(c, &nc64), *h64 = read_or_fail(h, &nh64);
    assert_same_bytes(c32, nc32, c64, nc64, ".c files from float32 and float64 weights");
    assert_same_bytes(h32, nh32, h64, nh64, ".h files from float32 and float64 weights");
}

/* DepthwiseConv2D accepts tf.keras's depthwise_kernel.npy and generates the same code as from kernel.npy. */
static void test_depthwise_tf_keras_name(void **state)
{
    (void)state;
    const char *text =
        "{\"class_name\": \"DepthwiseConv2D\", \"config\": {\"name\": \"d\", \"kernel_size\": [3, 3], "
        "\"strides\": [1, 1], \"padding\": \"same\", \"data_format\": \"channels_last\", \"dilation_rate\": [1, 1], "
        "\"depth_multiplier\": 2, \"activation\": \"linear\", \"use_bias\": true}, "
        "\"build_config\": {\"input_shape\": [null, 8, 8, 3]}}";
    char *spec = write_spec(text), *w = make_dir("w"), *c = fmt("%s/layer.c", outd);
    static const long dk[] = {3, 3, 3, 2}, db[] = {6};
    save_weights(w, "depthwise_kernel.npy", 4, dk);
    save_weights(w, "bias.npy", 1, db);
    cli_result r = cli("generate", spec, "-w", w, "-o", c, END);
    assert_status(r, 0);
    assert_string_equal(r.err, "");
    size_t n_tf, n_k3;
    char *tf = read_or_fail(c, &n_tf);
    unlink(c);
    unlink(fmt("%s/layer.h", outd));
    if (rename(fmt("%s/depthwise_kernel.npy", w), fmt("%s/kernel.npy", w)) != 0)
        fail_msg("rename: %s", strerror(errno));
    r = cli("generate", spec, "-w", w, "-o", c, END);
    assert_status(r, 0);
    char *k3 = read_or_fail(c, &n_k3);
    assert_same_bytes(tf, n_tf, k3, n_k3, "code from depthwise_kernel.npy and kernel.npy");
}

/* generate without -w and without --weights-at-runtime is an error naming -w. */
static void test_generate_needs_weights(void **state)
{
    (void)state;
    char *spec = write_spec(BASE);
    cli_result r = cli("generate", spec, "-o", fmt("%s/layer.c", outd), END);
    assert_error(r, spec, "-w", "no weights", "--weights-at-runtime", NULL);
    assert_no_output();
}

/* --weights-at-runtime needs no weights directory. */
static void test_weights_at_runtime(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *c = fmt("%s/layer.c", outd);
    cli_result r = cli("generate", spec, "--weights-at-runtime", "-o", c, END);
    assert_status(r, 0);
    assert_has(read_or_fail(c, NULL), "const float *const weights[]");
}

/* ------------------------------------------------------------------------ */
/* Usage and options                                                         */
/* ------------------------------------------------------------------------ */

/* Bad usage exits 2 with `convgen generate: error: ...` and writes nothing. */
static void test_usage_errors_exit_2(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = base_weights(), *c = fmt("%s/layer.c", outd);
    const struct {
        const char *arg, *value, *words;
        int no_spec;
    } cases[] = {
        {"--bogus", NULL, "unknown option --bogus", 0},
        {NULL, NULL, "missing SPEC", 1},
        {"--input-shape", "1,8,x,3", "--input-shape", 0},
        {"--keras-version", "4", "--keras-version must be 2 or 3", 0},
        {"--name", "1bad", "--name must be a C identifier", 0},
        {"-o", "", "-o must name a .c file", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[16];
        int n = 0;
        args[n++] = "generate";
        if (!cases[i].no_spec)
            args[n++] = spec;
        args[n++] = "-w";
        args[n++] = w;
        if (cases[i].arg && strcmp(cases[i].arg, "-o") == 0) {
            args[n++] = "-o";
            args[n++] = fmt("%s/layer.txt", outd);
        } else {
            args[n++] = "-o";
            args[n++] = c;
            if (cases[i].arg)
                args[n++] = cases[i].arg;
            if (cases[i].value)
                args[n++] = cases[i].value;
        }
        args[n] = NULL;
        cli_result r = cli_argv(DEFAULT_TIMEOUT, args);
        if (r.status != 2 || !strstr(r.err, "convgen generate: error: ") || !strstr(r.err, cases[i].words))
            fail_msg("case %s %s: expected exit 2 and \"%s\" on stderr, got %s", cases[i].arg ? cases[i].arg : "(none)",
                     cases[i].value ? cases[i].value : "", cases[i].words, show_result(&r));
        assert_no_output();
    }
    cli_result r = cli("frobnicate", END);
    assert_status(r, 2);
    assert_has(r.err, "unknown command 'frobnicate'");
}

/* run without -w, -i or -o is bad usage: exit 2, the missing option named, nothing written. */
static void test_run_usage_errors_exit_2(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = base_weights(), *in = fmt("%s/in.npy", tmp), *o = fmt("%s/y.npy", outd);
    static const long shape[] = {8, 8, 3};
    save_weights(tmp, "in.npy", 3, shape);
    cli_result r = cli("run", spec, "-i", in, "-o", o, END);
    assert_status(r, 2);
    assert_has(r.err, "convgen run: error: missing -w");
    r = cli("run", spec, "-w", w, "-o", o, END);
    assert_status(r, 2);
    assert_has(r.err, "convgen run: error: missing -i");
    r = cli("run", spec, "-w", w, "-i", in, END);
    assert_status(r, 2);
    assert_has(r.err, "convgen run: error: missing -o");
    assert_no_output();
}

/* run --backend: an unknown backend is a usage error; cc without a compiler is
 * an error naming --backend and the compiler; cc with one matches tcc. */
static void test_run_backends(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = base_weights(), *in = fmt("%s/in.npy", tmp);
    static const long shape[] = {2, 8, 8, 3};
    save_weights(tmp, "in.npy", 4, shape);
    cli_result r = cli("run", spec, "-w", w, "-i", in, "-o", fmt("%s/y.npy", outd), "--backend", "gpu", END);
    assert_status(r, 2);
    assert_has(r.err, "--backend must be tcc or cc");
    char *saved = getenv("CC") ? strdup(getenv("CC")) : NULL;
    setenv("CC", "/nonexistent/cc", 1);
    r = cli("run", spec, "-w", w, "-i", in, "-o", fmt("%s/y.npy", outd), "--backend", "cc", END);
    if (saved)
        setenv("CC", saved, 1);
    else
        unsetenv("CC");
    free(saved);
    assert_error(r, spec, "--backend", "/nonexistent/cc", NULL);
    assert_no_output();
    char *a = fmt("%s/a.npy", outd), *b = fmt("%s/b.npy", outd);
    r = cli("run", spec, "-w", w, "-i", in, "-o", a, "--backend", "tcc", END);
    assert_status(r, 0);
    r = cli("run", spec, "-w", w, "-i", in, "-o", b, "--backend", "cc", END);
    assert_status(r, 0);
    convgen_npy_array x, y;
    char err[256];
    assert_int_equal(convgen_npy_load(a, &x, err, sizeof err), 0);
    assert_int_equal(convgen_npy_load(b, &y, err, sizeof err), 0);
    assert_int_equal(x.count, y.count);
    assert_true(harness_mismatch(x.data, y.data, x.count, 1e-5, 1e-6) < 0);
    convgen_npy_free(&x);
    convgen_npy_free(&y);
}

/* bench prints its figures with the median microseconds per call as the last
 * line, for each backend; bad options are usage errors. */
static void test_bench(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = base_weights();
    const char *backends[] = {"tcc", "cc", "aot"};
    for (int i = 0; i < 3; i++) {
        cli_result r = cli("bench", spec, "-w", w, "--backend", backends[i], "--min-time", "0", END);
        assert_status(r, 0);
        assert_has(r.out, "GFLOP/s");
        const char *last = strstr(r.out, "median ");
        if (!last || !strstr(last, " us per call\n") || strchr(strstr(last, "\n") + 1, '\n'))
            fail_msg("last line is not the median: %s", r.out);
    }
    cli_result r = cli("bench", spec, "--random-weights", "--min-time", "0", END);
    assert_status(r, 0);
    r = cli("bench", spec, END);
    assert_status(r, 2);
    r = cli("bench", spec, "--random-weights", "--backend", "gpu", END);
    assert_status(r, 2);
    r = cli("bench", spec, "--random-weights", "--min-time", "soon", END);
    assert_status(r, 2);
}

/* --unroll full on a layer above the cap is an error naming --unroll and the cap. */
static void test_unroll_full_above_cap(void **state)
{
    (void)state;
    char *spec = write_spec(BASE);
    cli_result r = cli("generate", spec, "--weights-at-runtime", "--input-shape", "1,64,64,3", "--unroll", "full", "-o",
                       fmt("%s/layer.c", outd), END);
    assert_error(r, spec, "--unroll", "65536", NULL);
    assert_no_output();
}

/* --unroll full on a tiny layer works. */
static void test_unroll_full_small_layer(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = base_weights(), *c = fmt("%s/layer.c", outd);
    cli_result r = cli("generate", spec, "-w", w, "--unroll", "full", "-o", c, END);
    assert_status(r, 0);
    assert_exists(c);
}

/* -o into a directory that does not exist: exit 1, the path named, no file anywhere. */
static void test_output_directory_missing(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = base_weights(), *missing = fmt("%s/missing", tmp);
    cli_result r = cli("generate", spec, "-w", w, "-o", fmt("%s/layer.c", missing), END);
    assert_status(r, 1);
    /* the .c or its header, whichever is written first, is the file named */
    assert_has(r.err, fmt("convgen: %s/layer.", missing));
    assert_has(r.err, ": error: cannot write output");
    if (!strstr(r.err, "(-o)\n") && !strstr(r.err, "(--header)\n"))
        fail_msg("expected the field (-o) or (--header): %s", show_result(&r));
    if (exists(missing))
        fail_msg("%s was created", missing);
    assert_dir_holds(tmp, "spec.json", "w", "out", END);
    assert_dir_holds(w, "kernel.npy", "bias.npy", END);
    assert_no_output();
}

/* A failed write of the .c file leaves an existing header alone (nothing is changed on error). */
static void test_failed_write_keeps_existing_header(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = base_weights(), *keep = make_dir("keep");
    cli_result r = cli("generate", spec, "-w", w, "-o", fmt("%s/layer.c", keep), END);
    assert_status(r, 0);
    char *header = fmt("%s/layer.h", keep);
    assert_exists(header);
    make_dir("out/blocked.c"); /* a directory where the .c should go */
    r = cli("generate", spec, "-w", w, "-o", fmt("%s/blocked.c", outd), "--header", header, END);
    assert_error(r, fmt("%s/blocked.c", outd), "-o", "cannot write", NULL);
    if (!exists(header))
        fail_msg("the error removed the existing %s", header);
}

/* --input-shape 1,8,8,3 stands in for a missing build_config and overrides a present one. */
static void test_input_shape_option_overrides(void **state)
{
    (void)state;
    char *w = base_weights(), *c = fmt("%s/layer.c", outd);
    char *spec = write_spec(base_with(", \"build_config\": {\"input_shape\": [null, 8, 8, 3]}", ""));
    cli_result r = cli("generate", spec, "-w", w, "--input-shape", "1,8,8,3", "-o", c, END);
    assert_status(r, 0);
    assert_exists(c);
    spec = write_spec(base_with("[null, 8, 8, 3]", "[null, 16, 16, 3]"));
    r = cli("check", spec, "--input-shape", "1,8,8,3", END);
    assert_status(r, 0);
    assert_has(r.out, "input       [batch, 8, 8, 3] channels_last\n");
    assert_has(r.out, "output      [batch, 8, 8, 4]\n");
    assert_lacks(r.out, "[batch, 16");
    /* and a bad override is reported against the option, not the spec's field */
    r = cli("check", spec, "--input-shape", "1,0,8,3", END);
    assert_error(r, spec, "--input-shape", "positive", NULL);
}

/* A spec file that cannot be read is an error naming it (and, per the contract, a field). */
static void test_missing_spec_file(void **state)
{
    (void)state;
    char *spec = fmt("%s/nonexistent.json", tmp);
    cli_result r = cli("generate", spec, "--weights-at-runtime", "-o", fmt("%s/layer.c", outd), END);
    assert_error(r, spec, NULL, "cannot read spec", NULL);
    assert_no_output();
}

/* An input size of 2^63 - 1 is refused (element counts must not overflow into acceptance). */
static void test_huge_input_size_refused(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(base_with("[null, 8, 8, 3]", "[null, 9223372036854775807, 2, 3]"), &spec);
    assert_error(r, spec, "build_config.input_shape", "at most", NULL);
    assert_no_output();
}

/* A dilation of 2^62 under 'same' is refused (the kernel's extent must not overflow into wrong pads). */
static void test_huge_dilation_refused(void **state)
{
    (void)state;
    char *spec;
    cli_result r =
        generate_spec_text(base_with("\"dilation_rate\": [1, 1]", "\"dilation_rate\": [4611686018427387904, 1]"), &spec);
    assert_error(r, spec, NULL, "", NULL);
    assert_no_output();
}

/* strides 2^63 - 1 under 'same' gives an output of 1, never a negative size. */
static void test_huge_stride_output_size(void **state)
{
    (void)state;
    char *spec = write_spec(base_with("\"strides\": [1, 1]", "\"strides\": [9223372036854775807, 1]"));
    cli_result r = cli("check", spec, END);
    if (r.status == 0) {
        assert_has(r.out, "[batch, 1, 8, 4]");
    } else {
        assert_error(r, spec, "config.strides", "", NULL);
    }
    assert_lacks(r.out, "[batch, -");
}

/* A huge kernel_size is refused quickly (not a runaway in time and memory). */
static void test_huge_kernel_refused_quickly(void **state)
{
    (void)state;
    char *spec = write_spec(base_with("\"kernel_size\": [3, 3]", "\"kernel_size\": [1000000000000000000, 1]"));
    cli_result r = cli_timeout(15, "generate", spec, "--weights-at-runtime", "-o", fmt("%s/layer.c", outd), END);
    assert_error(r, spec, NULL, "", NULL);
    assert_no_output();
}

/* ------------------------------------------------------------------------ */
/* Lua specs in the sandbox                                                  */
/* ------------------------------------------------------------------------ */

static const char LUA_OK_SPEC[] =
    "return Conv2D { input_shape = {8, 8, 3}, filters = 4, kernel_size = 3, padding = \"same\" }\n";

/* Writes a .lua spec and generates from it with weights at run time. */
static cli_result generate_lua(const char *text, char **spec_out)
{
    char *spec = write_text("spec.lua", text);
    if (spec_out)
        *spec_out = spec;
    return cli("generate", spec, "--weights-at-runtime", "-o", fmt("%s/layer.c", outd), END);
}

/* A valid Lua spec generates code. */
static void test_lua_valid_spec(void **state)
{
    (void)state;
    cli_result r = generate_lua(LUA_OK_SPEC, NULL);
    assert_status(r, 0);
    assert_string_equal(r.err, "");
    assert_exists(fmt("%s/layer.c", outd));
    assert_exists(fmt("%s/layer.h", outd));
}

/* A Lua syntax error names the file and the line. */
static void test_lua_syntax_error(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_lua("return Conv2D { filters = 4,, }\n", &spec);
    assert_error(r, spec, "lua", "syntax error", fmt("%s:1:", spec), NULL);
    assert_no_output();
}

/* A runtime error in a Lua spec is reported with its message. */
static void test_lua_runtime_error(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_lua("error(\"boom\")\n", &spec);
    assert_error(r, spec, "lua", "Lua spec failed", "boom", NULL);
    assert_no_output();
}

/* io, os, require, load, dofile and string.dump are absent: each fails without doing anything. */
static void test_lua_sandbox_denies(void **state)
{
    (void)state;
    char *marker = fmt("%s/escaped", tmp);
    char *evil = write_text("evil.lua", fmt("local f = io.open(\"%s\", \"w\") f:write(\"x\") f:close()\n", marker));
    const char *bodies[] = {
        fmt("io.open(\"%s\", \"w\")", marker),
        "local f = io.open(\"/etc/passwd\") local s = f:read(\"a\")",
        fmt("os.execute(\"touch %s\")", marker),
        "os.execute(\"true\")",
        fmt("require(\"os\").execute(\"touch %s\")", marker),
        "local m = require(\"os\")",
        fmt("load(\"io.open('%s', 'w'):close()\")()", marker),
        "local f = load(\"return 1\")",
        fmt("dofile(\"%s\")", evil),
        "dofile(\"x\")",
        "local b = string.dump(print)",
        "loadfile(\"x\")",
        "debug.sethook()", /* would lift the instruction limit */
        "package.loadlib(\"libc.so.6\", \"system\")",
        "collectgarbage(\"stop\")",
        "getmetatable(\"\").__index.dump(print)",
        "rawget(_G, \"io\").open(\"x\")",
        "setmetatable({}, {__gc = function() end})",
        "_ENV.os.exit(0)",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        char *spec;
        cli_result r = generate_lua(fmt("%s\n%s", bodies[i], LUA_OK_SPEC), &spec);
        if (r.status != 1 || !has_diag(r.err, "error", spec, "lua", (const char *const[]){"Lua spec failed", NULL}))
            fail_msg("`%s`: expected exit 1 and `Lua spec failed ... (lua)`, got %s", bodies[i], show_result(&r));
        if (exists(marker))
            fail_msg("`%s` escaped the sandbox: %s exists", bodies[i], marker);
        assert_no_output();
    }
}

/* The string library reached through a string's methods is the sandbox's too: no dump, no pattern matching. */
static void test_lua_sandbox_string_methods(void **state)
{
    (void)state;
    const char *bodies[] = {
        "local b = (\"\").dump(function() end)",
        "local m = (\"x\"):match(\"x\")",
        "local g = (\"x\"):gsub(\"x\", \"y\")",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        char *spec;
        cli_result r = generate_lua(fmt("%s\n%s", bodies[i], LUA_OK_SPEC), &spec);
        if (r.status != 1 || !has_diag(r.err, "error", spec, "lua", (const char *const[]){"Lua spec failed", NULL}))
            fail_msg("`%s`: expected exit 1 and `Lua spec failed ... (lua)`, got %s", bodies[i], show_result(&r));
        assert_no_output();
    }
}

/* An endless loop stops at the instruction limit. */
static void test_lua_instruction_limit(void **state)
{
    (void)state;
    char *spec = write_text("spec.lua", "while true do end\n");
    cli_result r = cli_timeout(60, "generate", spec, "--weights-at-runtime", "-o", fmt("%s/layer.c", outd), END);
    assert_error(r, spec, "lua", "instructions", NULL);
    assert_no_output();
}

/* A table or a string grown without bound stops at the memory limit. */
static void test_lua_memory_limit(void **state)
{
    (void)state;
    const char *bodies[] = {
        "local t = {} for i = 1, 1e9 do t[i] = i end\n",
        "local s = \"xxxxxxxx\" for i = 1, 40 do s = s .. s end\n",
    };
    for (size_t i = 0; i < 2; i++) {
        char *spec = write_text("spec.lua", fmt("%s%s", bodies[i], LUA_OK_SPEC));
        cli_result r = cli_timeout(60, "generate", spec, "--weights-at-runtime", "-o", fmt("%s/layer.c", outd), END);
        assert_error(r, spec, "lua", "memory", NULL);
        assert_no_output();
    }
}

/* A spec returning something other than a layer table is refused with a hint. */
/* string.rep's work inside C is charged to the instruction budget. */
static void test_lua_string_rep_is_charged(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_lua(fmt("%s%s", "for i = 1, 200 do local s = string.rep(\"x\", 3e7) end\n", LUA_OK_SPEC), &spec);
    assert_error(r, spec, "lua", "instructions", NULL);
    assert_no_output();
}

static void test_lua_returns_non_table(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_lua("return 42\n", &spec);
    assert_error(r, spec, "lua", "must return a layer", "Conv2D {", NULL);
    assert_no_output();
    r = generate_lua("return { class_name = \"Conv2D\" }\n", &spec);
    assert_error(r, spec, "config", "no config", NULL);
    assert_no_output();
}

/* A self-referencing table in a field is a clean error about that field, not an internal error. */
static void test_lua_cyclic_value(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_lua(
        "local t = {} t[1] = t\n"
        "return Conv2D { input_shape = {8, 8, 3}, filters = 4, kernel_size = {t, 3} }\n",
        &spec);
    assert_lacks(r.err, "internal error");
    assert_error(r, spec, "config.kernel_size", "", NULL);
    assert_no_output();
}

/* ------------------------------------------------------------------------ */
/* run and check                                                             */
/* ------------------------------------------------------------------------ */

static const ref_layer BASE_LAYER = {
    .kind = REF_CONV, .rank = 2, .channels_first = 0, .in_h = 8, .in_w = 8, .in_c = 3, .k_h = 3, .k_w = 3,
    .s_h = 1, .s_w = 1, .d_h = 1, .d_w = 1, .padding = "same", .filters = 4, .groups = 1,
    .depth_multiplier = 1, .use_bias = 1, .activation = "relu", .keras_version = 3,
};

/* run with an input of the wrong shape names the input file and both shapes; no output. */
static void test_run_wrong_input_shape(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = base_weights(), *in = fmt("%s/in.npy", tmp), *o = fmt("%s/y.npy", outd);
    static const long shape[] = {2, 8, 8, 4};
    save_weights(tmp, "in.npy", 4, shape);
    cli_result r = cli("run", spec, "-w", w, "-i", in, "-o", o, END);
    assert_error(r, in, "-i", "(2, 8, 8, 4)", "8, 8, 3", NULL);
    assert_no_output();
}

/* run on an input without the batch axis writes a (1, 8, 8, 4) output equal to the reference. */
static void test_run_unbatched_input(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = make_dir("w"), *in = fmt("%s/in.npy", tmp), *o = fmt("%s/y.npy", outd);
    const float *weights[2];
    weights[0] = save_weights(w, "kernel.npy", 4, KERNEL_SHAPE);
    weights[1] = save_weights(w, "bias.npy", 1, BIAS_SHAPE);
    static const long shape[] = {8, 8, 3};
    float *x = save_weights(tmp, "in.npy", 3, shape);
    cli_result r = cli("run", spec, "-w", w, "-i", in, "-o", o, END);
    assert_status(r, 0);
    convgen_npy_array y;
    char err[256];
    if (convgen_npy_load(o, &y, err, sizeof err) != 0)
        fail_msg("%s: %s", o, err);
    own(y.data);
    assert_int_equal(y.rank, 4);
    assert_int_equal(y.shape[0], 1);
    assert_int_equal(y.shape[1], 8);
    assert_int_equal(y.shape[2], 8);
    assert_int_equal(y.shape[3], 4);
    float want[8 * 8 * 4];
    ref_forward(&BASE_LAYER, 1, x, weights, want);
    long bad = harness_mismatch(y.data, want, 8 * 8 * 4, 1e-5, 1e-5);
    if (bad >= 0)
        fail_msg("output[%ld] = %g, reference %g", bad, (double)y.data[bad], (double)want[bad]);
}

/* run on a batched input keeps the batch axis. */
static void test_run_batched_input(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = base_weights(), *in = fmt("%s/in.npy", tmp), *o = fmt("%s/y.npy", outd);
    static const long shape[] = {3, 8, 8, 3};
    save_weights(tmp, "in.npy", 4, shape);
    cli_result r = cli("run", spec, "-w", w, "-i", in, "-o", o, END);
    assert_status(r, 0);
    convgen_npy_array y;
    char err[256];
    if (convgen_npy_load(o, &y, err, sizeof err) != 0)
        fail_msg("%s: %s", o, err);
    own(y.data);
    assert_int_equal(y.rank, 4);
    assert_int_equal(y.shape[0], 3);
    assert_int_equal(y.shape[3], 4);
}

/* run with bad weights fails before writing its output. */
static void test_run_bad_weights_no_output(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = make_dir("w"), *in = fmt("%s/in.npy", tmp), *o = fmt("%s/y.npy", outd);
    static const long wrong[] = {3, 3, 4, 3}, shape[] = {8, 8, 3};
    save_weights(w, "kernel.npy", 4, wrong);
    save_weights(w, "bias.npy", 1, BIAS_SHAPE);
    save_weights(tmp, "in.npy", 3, shape);
    cli_result r = cli("run", spec, "-w", w, "-i", in, "-o", o, END);
    assert_error(r, fmt("%s/kernel.npy", w), "kernel", "(3, 3, 4, 3)", NULL);
    assert_no_output();
}

/* check prints the shapes, pads and FLOPs of a valid spec and exits 0. */
static void test_check_reports(void **state)
{
    (void)state;
    char *spec = write_spec(BASE);
    cli_result r = cli("check", spec, END);
    assert_status(r, 0);
    assert_string_equal(r.err, "");
    assert_has(r.out, "layer       Conv2D \"c\"\n");
    assert_has(r.out, "input       [batch, 8, 8, 3] channels_last\n");
    assert_has(r.out, "output      [batch, 8, 8, 4]\n");
    assert_has(r.out, "padding     same: top 1, bottom 1, left 1, right 1\n");
    assert_has(r.out, "FLOPs       13824 per batch item (6912 multiply-adds)\n");
    assert_has(r.out, "weights     448 bytes (112 floats): kernel (3, 3, 3, 4), bias (4,)\n");
}

/* Every command's --help (and -h, and `help COMMAND`) exits 0 and prints its usage line. */
static void test_help_exits_0(void **state)
{
    (void)state;
    const char *commands[] = {"generate", "check", "run"};
    for (size_t i = 0; i < 3; i++) {
        const char *flags[] = {"--help", "-h"};
        for (size_t f = 0; f < 2; f++) {
            cli_result r = cli(commands[i], flags[f], END);
            assert_status(r, 0);
            assert_has(r.out, fmt("usage: convgen %s ", commands[i]));
        }
        cli_result r = cli("help", commands[i], END);
        assert_status(r, 0);
        assert_has(r.out, fmt("usage: convgen %s ", commands[i]));
    }
    cli_result r = cli("--help", END);
    assert_status(r, 0);
    assert_has(r.out, "usage: convgen <command>");
    r = cli("help", END);
    assert_status(r, 0);
    assert_has(r.out, "usage: convgen <command>");
}

/* Generating the same spec twice gives byte-identical .c and .h files. */
static void test_generation_is_deterministic(void **state)
{
    (void)state;
    char *spec = write_spec(base_with("\"use_bias\": true", "\"use_bias\": true, \"frobnicate\": 1")), *w = base_weights();
    char *c = fmt("%s/layer.c", outd), *h = fmt("%s/layer.h", outd);
    size_t nc[2], nh[2];
    char *cs[2], *hs[2];
    for (int i = 0; i < 2; i++) {
        cli_result r = cli("generate", spec, "-w", w, "-o", c, END);
        assert_status(r, 0);
        cs[i] = read_or_fail(c, &nc[i]);
        hs[i] = read_or_fail(h, &nh[i]);
        unlink(c);
        unlink(h);
    }
    assert_same_bytes(cs[0], nc[0], cs[1], nc[1], "the two .c files");
    assert_same_bytes(hs[0], nh[0], hs[1], nh[1], "the two .h files");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* ------------------------------------------------------------------------ */
/* Hardening                                                                */
/* ------------------------------------------------------------------------ */

/* User text in provenance comments (layer name, paths) cannot close the comment. */
static void test_comment_injection(void **state)
{
    (void)state;
    char *spec = write_spec(base_with("\"name\": \"c\"", "\"name\": \"x */ #error injected\\n/*\""));
    char *c = fmt("%s/layer.c", outd);
    cli_result r = cli("generate", spec, "--weights-at-runtime", "-o", c, END);
    assert_status(r, 0);
    char *obj = fmt("%s/layer.o", outd);
    const char *argv[] = {"gcc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-c", c, "-o", obj, NULL};
    char *out = NULL;
    if (harness_run((char *const *)argv, &out) != 0)
        fail_msg("generated file does not compile: %s", out);
    free(out);
}

/* --header equal to -o, an empty file stem and reserved function names are usage errors. */
static void test_output_names(void **state)
{
    (void)state;
    char *spec = write_spec(BASE);
    const char *c = fmt("%s/q.c", outd);
    cli_result r = cli("generate", spec, "--weights-at-runtime", "-o", c, "--header", c, END);
    assert_status(r, 2);
    r = cli("generate", spec, "--weights-at-runtime", "-o", fmt("%s/.c", outd), END);
    assert_status(r, 2);
    const char *names[] = {"main", "tanhf", "int", "__x", "_Upper"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        r = cli("generate", spec, "--weights-at-runtime", "--name", names[i], "-o", c, END);
        assert_status(r, 2);
    }
    assert_no_output();
    /* A file stem that is a library name gets a suffix instead. */
    r = cli("generate", spec, "--weights-at-runtime", "-o", fmt("%s/tanhf.c", outd), END);
    assert_status(r, 0);
    assert_has(read_or_fail(fmt("%s/tanhf.h", outd), NULL), "void tanhf_layer(");
}

/* When the .c path is a directory, an existing header is left as it was. */
static void test_directory_in_the_way_keeps_header(void **state)
{
    (void)state;
    char *spec = write_spec(BASE);
    char *dir = make_dir("keep");
    make_dir("keep/layer.c");
    char *h = write_text("keep/layer.h", "old\n");
    cli_result r = cli("generate", spec, "--weights-at-runtime", "-o", fmt("%s/layer.c", dir), END);
    assert_error(r, fmt("%s/layer.c", dir), "-o", "directory", NULL);
    assert_string_equal(read_or_fail(h, NULL), "old\n");
}

/* An activation given as a layer object (its own slope) is refused, a function object accepted. */
static void test_activation_objects(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(base_with("\"relu\"",
        "{\"class_name\": \"LeakyReLU\", \"config\": {\"name\": \"relu\", \"negative_slope\": 0.3}}"), &spec);
    assert_error(r, spec, "config.activation", "object", "LeakyReLU", NULL);
    assert_no_output();
    r = generate_spec_text(base_with("\"relu\"",
        "{\"module\": \"keras.activations\", \"class_name\": \"function\", \"config\": \"relu\"}"), &spec);
    assert_status(r, 0);
}

/* A reduced-precision dtype policy is computed in float32, with a warning naming the field. */
static void test_dtype_policy_warns(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(base_with("\"name\": \"c\"", "\"name\": \"c\", \"dtype\": \"mixed_bfloat16\""), &spec);
    assert_status(r, 0);
    assert_has(r.err, "warning");
    assert_has(r.err, "(config.dtype)");
}

/* Text after the JSON value, and a batch entry that is not a size, are refused. */
static void test_json_trailing_text_and_batch(void **state)
{
    (void)state;
    char *spec;
    cli_result r = generate_spec_text(fmt("%s\n}", BASE), &spec);
    assert_error(r, spec, "json", "text after", NULL);
    r = generate_spec_text(base_with("[null, 8, 8, 3]", "[\"x\", 8, 8, 3]"), &spec);
    assert_error(r, spec, "build_config.input_shape", "batch", NULL);
    assert_no_output();
}

/* A .npy header naming 'descr' inside another value is not fooled. */
static void test_npy_header_parsed_strictly(void **state)
{
    (void)state;
    char *spec = write_spec(BASE), *w = base_weights();
    static const char hdr[] = "{'note': \"'descr': '<f4'\", 'descr': '<f4', 'fortran_order': False, 'shape': (3, 3, 3, 4), }";
    unsigned char file[1024];
    size_t hlen = sizeof hdr - 1 + 1, pad = (64 - (10 + hlen) % 64) % 64;
    memcpy(file, "\x93NUMPY\x01\x00", 8);
    file[8] = (unsigned char)((hlen + pad) & 0xff);
    file[9] = (unsigned char)((hlen + pad) >> 8);
    memcpy(file + 10, hdr, sizeof hdr - 1);
    memset(file + 10 + sizeof hdr - 1, ' ', pad);
    file[10 + hlen + pad - 1] = '\n';
    size_t n = 10 + hlen + pad;
    memset(file + n, 0, 3 * 3 * 3 * 4 * 4 > (int)(sizeof file - n) ? sizeof file - n : 3 * 3 * 3 * 4 * 4);
    FILE *f = fopen(fmt("%s/kernel.npy", w), "wb");
    fwrite(file, 1, n, f);
    static const float zeros[108];
    fwrite(zeros, sizeof zeros[0], 108, f);
    fclose(f);
    cli_result r = cli("generate", spec, "-w", w, "-o", fmt("%s/layer.c", outd), END);
    assert_error(r, fmt("%s/kernel.npy", w), "kernel", "malformed .npy header", NULL);
    assert_no_output();
}

/* ------------------------------------------------------------------------ */
/* README's error table                                                      */
/* ------------------------------------------------------------------------ */

/* How a row's weights directory w/ is made for BASE. */
typedef enum {
    W_NONE,      /* no w/ */
    W_GOOD,      /* kernel.npy and bias.npy as the layer needs */
    W_NO_KERNEL, /* bias.npy only */
    W_SHAPE,     /* kernel.npy of the wrong shape */
    W_INT32,     /* kernel.npy of dtype int32 */
    W_TRUNCATED, /* kernel.npy cut short */
    W_TRAILING,  /* kernel.npy with bytes after the data */
    W_MAGIC,     /* kernel.npy that is not a .npy file */
    W_VERSION,   /* kernel.npy of format version 4 */
    W_HEADER,    /* kernel.npy with a malformed header */
    W_FORTRAN,   /* kernel.npy in Fortran order */
} weights_setup;

typedef struct {
    const char *row;   /* README's first column */
    const char *file;  /* the spec's name */
    const char *from;  /* the spec is BASE with `from` replaced by `to`, or `to` itself when from is NULL */
    const char *to;
    weights_setup weights;
    const char *args[12]; /* the command line; empty: generate FILE --weights-at-runtime -o out/l.c */
    int status;
} error_row;

#define BASE_SPEC NULL, NULL
/* A Sequential model: an input, a Conv2D "c" and then `last`. */
#define MODEL_WITH(last)                                                                       \
    "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"m\", \"layers\": ["                   \
    "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"in\", \"batch_shape\": [null, 8, 8, 3]}}, " \
    "{\"class_name\": \"Conv2D\", \"config\": {\"name\": \"c\", \"filters\": 4, \"kernel_size\": 3, "      \
    "\"activation\": \"relu\"}}, " last "]}}"
static const error_row ERROR_ROWS[] = {
    {"malformed JSON", "l.json", NULL, "{\"class_name\": \"Conv2D\",\n \"config\": {\"filters\": 4,,}}", W_NONE, {0}, 1},
    {"trailing text", "l.json", NULL, "{\"class_name\": \"Conv2D\"} {}", W_NONE, {0}, 1},
    {"not one layer object", "l.json", NULL, "[1, 2]", W_NONE, {0}, 1},
    {"unknown layer", "l.json", "\"Conv2D\"", "\"Dense\"", W_NONE, {0}, 1},
    {"missing field", "l.json", "\"filters\": 4, ", "", W_NONE, {0}, 1},
    {"wrong type", "l.json", "\"kernel_size\": [3, 3]", "\"kernel_size\": \"three\"", W_NONE, {0}, 1},
    {"out of range (low)", "l.json", "\"strides\": [1, 1]", "\"strides\": [1, 0]", W_NONE, {0}, 1},
    {"out of range (high)", "l.json", "\"filters\": 4", "\"filters\": 300000000", W_NONE, {0}, 1},
    {"unknown value", "l.json", "\"same\"", "\"full\"", W_NONE, {0}, 1},
    {"causal on a 2D layer", "l.json", "\"same\"", "\"causal\"", W_NONE, {0}, 1},
    {"unknown activation", "l.json", "\"relu\"", "\"swishy\"", W_NONE, {0}, 1},
    {"activation object", "l.json", "\"relu\"", "{\"class_name\": \"Swish\", \"config\": {}}", W_NONE, {0}, 1},
    {"strides with dilation", "l.json", "\"dilation_rate\": [1, 1]", "\"dilation_rate\": [2, 2], \"strides\": [2, 1]",
     W_NONE, {0}, 1},
    {"groups", "l.json", "\"groups\": 1", "\"groups\": 2", W_NONE, {0}, 1},
    {"math convgen cannot honour", "l.json", "\"groups\": 1", "\"groups\": 1, \"lora_rank\": 4", W_NONE, {0}, 1},
    {"unknown field (a warning)", "l.json", "\"groups\": 1", "\"groups\": 1, \"frobnicate\": 7", W_NONE, {0}, 0},
    {"no input shape", "l.json", ", \"build_config\": {\"input_shape\": [null, 8, 8, 3]}", "", W_NONE, {0}, 1},
    {"wrong input shape", "l.json", "[null, 8, 8, 3]", "[8, 8]", W_NONE, {0}, 1},
    {"input smaller than the kernel", "l.json", "\"same\"", "\"valid\"", W_NONE,
     {"generate", "l.json", "--weights-at-runtime", "--input-shape", "1,2,8,3", "-o", "out/l.c"}, 1},
    {"input size too large", "l.json", "[null, 8, 8, 3]", "[null, 300000000, 8, 3]", W_NONE, {0}, 1},
    {"tensor too large", "l.json", "[null, 8, 8, 3]", "[null, 100000, 100000, 3]", W_NONE, {0}, 1},
    {"kernel extent too large", "l.json", "\"dilation_rate\": [1, 1]", "\"dilation_rate\": [200000000, 1]", W_NONE,
     {0}, 1},
    {"too much border", "l.json", NULL,
     "{\"class_name\": \"Conv1D\", \"config\": {\"filters\": 4, \"kernel_size\": 3000, \"padding\": \"same\"}, "
     "\"build_config\": {\"input_shape\": [null, 5000, 3]}}", W_NONE, {0}, 1},
    {"separable too wide", "l.json", NULL,
     "{\"class_name\": \"SeparableConv2D\", \"config\": {\"filters\": 4, \"kernel_size\": 3, "
     "\"depth_multiplier\": 20000}, \"build_config\": {\"input_shape\": [null, 8, 8, 1]}}", W_NONE, {0}, 1},
    {"packed kernel too large", "l.json", NULL,
     "{\"class_name\": \"Conv2D\", \"config\": {\"filters\": 1, \"kernel_size\": 1}, "
     "\"build_config\": {\"input_shape\": [null, 1, 1, 268435456]}}", W_NONE,
     {"generate", "l.json", "--weights-at-runtime", "--target", "avx2", "-o", "out/l.c"}, 1},
    {"model: unsupported layer", "l.json", NULL, MODEL_WITH("{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\"}}"),
     W_NONE, {"generate", "l.json", "-w", "w", "-o", "out/l.c"}, 1},
    {"model: BatchNormalization that cannot be folded", "l.json", NULL,
     MODEL_WITH("{\"class_name\": \"BatchNormalization\", \"config\": {\"name\": \"bn\"}}"),
     W_NONE, {"generate", "l.json", "-w", "w", "-o", "out/l.c"}, 1},
    {"model: ZeroPadding not before a convolution", "l.json", NULL,
     MODEL_WITH("{\"class_name\": \"ZeroPadding2D\", \"config\": {\"name\": \"zp\", \"padding\": 1}}"),
     W_NONE, {"generate", "l.json", "-w", "w", "-o", "out/l.c"}, 1},
    {"model: a second input", "l.json", NULL,
     MODEL_WITH("{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"i2\", \"batch_shape\": [null, 3, 3, 3]}}"),
     W_NONE, {"generate", "l.json", "-w", "w", "-o", "out/l.c"}, 1},
    {"model: softmax that cannot be fused", "l.json", NULL,
     MODEL_WITH("{\"class_name\": \"Activation\", \"config\": {\"name\": \"s\", \"activation\": \"softmax\"}}"),
     W_NONE, {"generate", "l.json", "-w", "w", "-o", "out/l.c"}, 1},
    {"model: no weights", "l.json", NULL, MODEL_WITH("{\"class_name\": \"ReLU\", \"config\": {\"name\": \"r\"}}"),
     W_NONE, {"generate", "l.json", "-o", "out/l.c"}, 1},
    {"model: missing weight file", "l.json", NULL,
     MODEL_WITH("{\"class_name\": \"ReLU\", \"config\": {\"name\": \"r\"}}"), W_GOOD,
     {"generate", "l.json", "-w", "w", "-o", "out/l.c"}, 1},
    {"model: run takes one layer", "l.json", NULL, MODEL_WITH("{\"class_name\": \"ReLU\", \"config\": {\"name\": \"r\"}}"),
     W_NONE, {"run", "l.json", "-w", "w", "-i", "in.npy", "-o", "out/o.npy"}, 1},
    {"model: weights at run time", "l.json", NULL, MODEL_WITH("{\"class_name\": \"ReLU\", \"config\": {\"name\": \"r\"}}"),
     W_NONE, {0}, 1},
    {"model file: not a Keras file", "l.keras", NULL, "{\"class_name\": \"Sequential\"}", W_NONE,
     {"generate", "l.keras", "-o", "out/l.c"}, 1},
    {"model file: damaged .keras", "l.keras", NULL, "PK\003\004 a zip that stops here", W_NONE,
     {"generate", "l.keras", "-o", "out/l.c"}, 1},
    {"unreadable spec", "l.json", BASE_SPEC, W_NONE,
     {"generate", "missing.json", "--weights-at-runtime", "-o", "out/l.c"}, 1},
    {"Lua syntax error", "l.lua", NULL, "return Conv2D {", W_NONE, {0}, 1},
    {"Lua run-time error", "l.lua", NULL, "return Conv2D(nil + 1)", W_NONE, {0}, 1},
    {"Lua sandbox", "l.lua", NULL, "return io.open('/etc/passwd')", W_NONE, {0}, 1},
    {"Lua instruction limit", "l.lua", NULL, "while true do end", W_NONE, {0}, 1},
    {"Lua memory limit", "l.lua", NULL, "local t = {} for i = 1, 1e8 do t[i] = i end", W_NONE, {0}, 1},
    {"Lua spec returns no layer", "l.lua", NULL, "return 42", W_NONE, {0}, 1},
    {"no weights given", "l.json", BASE_SPEC, W_NONE, {"generate", "l.json", "-o", "out/l.c"}, 1},
    {"missing weight file", "l.json", BASE_SPEC, W_NO_KERNEL, {"generate", "l.json", "-w", "w", "-o", "out/l.c"}, 1},
    {"wrong weight shape", "l.json", BASE_SPEC, W_SHAPE, {"generate", "l.json", "-w", "w", "-o", "out/l.c"}, 1},
    {"wrong dtype", "l.json", BASE_SPEC, W_INT32, {"generate", "l.json", "-w", "w", "-o", "out/l.c"}, 1},
    {"truncated .npy", "l.json", BASE_SPEC, W_TRUNCATED, {"generate", "l.json", "-w", "w", "-o", "out/l.c"}, 1},
    {"trailing bytes in .npy", "l.json", BASE_SPEC, W_TRAILING, {"generate", "l.json", "-w", "w", "-o", "out/l.c"}, 1},
    {"not a .npy file", "l.json", BASE_SPEC, W_MAGIC, {"generate", "l.json", "-w", "w", "-o", "out/l.c"}, 1},
    {"unknown .npy version", "l.json", BASE_SPEC, W_VERSION, {"generate", "l.json", "-w", "w", "-o", "out/l.c"}, 1},
    {"malformed .npy header", "l.json", BASE_SPEC, W_HEADER, {"generate", "l.json", "-w", "w", "-o", "out/l.c"}, 1},
    {"Fortran order", "l.json", BASE_SPEC, W_FORTRAN, {"generate", "l.json", "-w", "w", "-o", "out/l.c"}, 1},
    {"--unroll full too big", "l.json", BASE_SPEC, W_GOOD,
     {"generate", "l.json", "-w", "w", "--unroll", "full", "--input-shape", "1,64,64,3", "-o", "out/l.c"}, 1},
    {"unknown target", "l.json", BASE_SPEC, W_NONE,
     {"generate", "l.json", "--weights-at-runtime", "--target", "neon", "-o", "out/l.c"}, 1},
    {"hybrid target outside the JIT", "l.json", BASE_SPEC, W_NONE,
     {"generate", "l.json", "--weights-at-runtime", "--target", "hybrid", "-o", "out/l.c"}, 1},
    {"run: wrong input shape", "l.json", BASE_SPEC, W_GOOD,
     {"run", "l.json", "-w", "w", "-i", "in.npy", "-o", "out/out.npy"}, 1},
    {"cannot write", "l.json", BASE_SPEC, W_NONE,
     {"generate", "l.json", "--weights-at-runtime", "-o", "missing/l.c"}, 1},
    {"unknown option (usage)", "l.json", BASE_SPEC, W_NONE, {"generate", "l.json", "--frobnicate"}, 2},
    {"bad option value (usage)", "l.json", BASE_SPEC, W_NONE,
     {"generate", "l.json", "--input-shape", "1,x", "-o", "out/l.c"}, 2},
    {"unknown command (usage)", "l.json", BASE_SPEC, W_NONE, {"frob"}, 2},
};

/* Writes w/kernel.npy as the row asks (bias.npy is always right). */
static void make_row_weights(const char *dir, weights_setup how)
{
    if (how == W_NONE)
        return;
    char *w = fmt("%s/w", dir);
    if (mkdir(w, 0755) != 0)
        fail_msg("mkdir %s", w);
    save_weights(w, "bias.npy", 1, BIAS_SHAPE);
    if (how == W_NO_KERNEL)
        return;
    if (how == W_GOOD) {
        save_weights(w, "kernel.npy", 4, KERNEL_SHAPE);
        return;
    }
    static float data[2 * 108];
    size_t size = 0;
    unsigned char *b;
    switch (how) {
    case W_SHAPE: b = raw_npy("<f4", "(3, 3, 4)", data, 36 * 4, &size); break;
    case W_INT32: b = raw_npy("<i4", "(3, 3, 3, 4)", data, 108 * 4, &size); break;
    case W_TRUNCATED: b = raw_npy("<f4", "(3, 3, 3, 4)", data, 100, &size); break;
    case W_TRAILING: b = raw_npy("<f4", "(3, 3, 3, 4)", data, 108 * 4 + 8, &size); break;
    case W_MAGIC:
        b = (unsigned char *)fmt("%s", "kernel weights, not a .npy file\n");
        size = strlen((char *)b);
        break;
    case W_VERSION:
        b = raw_npy("<f4", "(3, 3, 3, 4)", data, 108 * 4, &size);
        b[6] = 4;
        break;
    case W_HEADER: b = raw_npy("<f4", "(3, 3, 3, 4", data, 108 * 4, &size); break;
    default: { /* W_FORTRAN */
        b = raw_npy("<f4", "(3, 3, 3, 4)", data, 108 * 4, &size);
        char *f = strstr((char *)b + 10, "False"); /* past the magic, which holds a NUL */
        memcpy(f, "True ", 5);
        break;
    }
    }
    FILE *f = fopen(fmt("%s/kernel.npy", w), "wb");
    if (!f || fwrite(b, 1, size, f) != size || fclose(f) != 0)
        fail_msg("cannot write %s/kernel.npy", w);
}

/* text matches pattern, where each "..." stands for any text. */
static int matches(const char *text, const char *pattern)
{
    const char *dots = strstr(pattern, "...");
    if (!dots)
        return strcmp(text, pattern) == 0;
    size_t head = (size_t)(dots - pattern);
    if (strncmp(text, pattern, head) != 0)
        return 0;
    for (const char *t = text + head; ; t++) {
        if (matches(t, dots + 3))
            return 1;
        if (!*t)
            return 0;
    }
}

/* Every row of README's error table: the row's input produces exactly the
 * message README shows (as one line of stderr; `...` matches anything), the
 * row's exit status, and no output file. Rows and cases must correspond. */
static void test_error_table(void **state)
{
    (void)state;
    size_t size;
    char *readme = read_or_fail("README.md", &size);
    char *table = strstr(readme, "\n| bad input | message |");
    if (!table)
        fail_msg("README.md has no error table (| bad input | message |)");
    size_t nrows = sizeof ERROR_ROWS / sizeof ERROR_ROWS[0];
    int *seen = own(calloc(nrows, sizeof(int)));
    int listed = 0;
    char *line = strchr(table + 1, '\n') + 1;
    line = strchr(line, '\n') + 1; /* past the |---| line */
    while (line && strncmp(line, "| ", 2) == 0) {
        char *end = strchr(line, '\n');
        *end = 0;
        char *sep = strstr(line + 2, " | ");
        char *tick1 = strchr(line, '`'), *tick2 = strrchr(line, '`');
        if (!sep || !tick1 || tick1 == tick2)
            fail_msg("README error row not `| class | `message` |`: %s", line);
        *sep = 0;
        *tick2 = 0;
        const char *row = line + 2, *want = tick1 + 1;
        if (*want == '`') /* ``a message with `backticks` in it`` */
            want += 2, tick2[-2] = 0;
        size_t i = 0;
        while (i < nrows && strcmp(ERROR_ROWS[i].row, row) != 0)
            i++;
        if (i == nrows)
            fail_msg("README error row \"%s\" has no case in test_error_table", row);
        seen[i] = 1;
        listed++;

        const error_row *e = &ERROR_ROWS[i];
        char *dir = fmt("%s/row%zu", tmp, i);
        if (mkdir(dir, 0755) != 0 || mkdir(fmt("%s/out", dir), 0755) != 0)
            fail_msg("mkdir %s", dir);
        const char *spec = e->from ? replaced(BASE, e->from, e->to) : e->to ? e->to : BASE;
        own(harness_write(dir, e->file, spec, strlen(spec)));
        make_row_weights(dir, e->weights);
        if (strcmp(row, "run: wrong input shape") == 0) {
            static const long shape[] = {1, 5, 5, 3};
            save_weights(dir, "in.npy", 4, shape);
        }
        const char *defaults[] = {"generate", e->file, "--weights-at-runtime", "-o", "out/l.c", NULL};
        cli_cwd = dir;
        cli_result r = cli_argv(DEFAULT_TIMEOUT, e->args[0] ? e->args : defaults);
        cli_cwd = NULL;
        if (r.status != e->status)
            fail_msg("row \"%s\": expected exit %d, got %s", row, e->status, show_result(&r));
        int found = 0;
        for (char *l = r.err; l && *l && !found;) {
            char *nl = strchr(l, '\n');
            if (nl)
                *nl = 0;
            found = matches(l, want);
            l = nl ? nl + 1 : NULL;
        }
        if (!found)
            fail_msg("row \"%s\": README says\n  %s\nbut convgen said\n%s", row, want, r.err);
        if (e->status != 0) {
            char *left = listing(fmt("%s/out", dir));
            if (!left || left[0])
                fail_msg("row \"%s\": output written: %s", row, left ? left : "(out/ gone)");
        }
        line = end + 1;
    }
    for (size_t i = 0; i < nrows; i++) {
        if (!seen[i])
            fail_msg("case \"%s\" is missing from README's error table", ERROR_ROWS[i].row);
    }
    assert_int_equal(listed, (int)nrows);
}

int main(void)
{
    if (!realpath(convgen_path(), convgen_absolute))
        convgen_absolute[0] = 0;
    const struct CMUnitTest tests[] = {
        T(test_base_spec_generates),
        T(test_malformed_json),
        T(test_json_not_an_object),
        T(test_missing_config),
        T(test_unknown_layer_class),
        T(test_missing_required_filters),
        T(test_wrong_type_kernel_size),
        T(test_out_of_range_values),
        T(test_unknown_padding),
        T(test_causal_on_2d),
        T(test_unknown_data_format),
        T(test_unknown_activation),
        T(test_strides_with_dilation),
        T(test_groups_not_dividing_channels),
        T(test_missing_input_shape),
        T(test_input_shape_wrong_length),
        T(test_messages_show_values_as_written),
        T(test_non_positive_input_size),
        T(test_valid_smaller_than_kernel),
        T(test_lora_rank_refused),
        T(test_lora_rank_null_accepted),
        T(test_quantization_config_refused),
        T(test_error_table),
        T(test_unknown_field_warns),
        T(test_control_characters_escaped),
        T(test_control_characters_escaped_in_values),
        T(test_uppercase_padding_accepted),
        T(test_weights_missing_file),
        T(test_weight_wrong_shape),
        T(test_weight_int32_refused),
        T(test_weight_truncated),
        T(test_weight_float64_same_code),
        T(test_depthwise_tf_keras_name),
        T(test_generate_needs_weights),
        T(test_weights_at_runtime),
        T(test_usage_errors_exit_2),
        T(test_run_usage_errors_exit_2),
        T(test_unroll_full_above_cap),
        T(test_unroll_full_small_layer),
        T(test_output_directory_missing),
        T(test_failed_write_keeps_existing_header),
        T(test_input_shape_option_overrides),
        T(test_missing_spec_file),
        T(test_huge_input_size_refused),
        T(test_huge_dilation_refused),
        T(test_huge_stride_output_size),
        T(test_huge_kernel_refused_quickly),
        T(test_lua_valid_spec),
        T(test_lua_syntax_error),
        T(test_lua_runtime_error),
        T(test_lua_sandbox_denies),
        T(test_lua_sandbox_string_methods),
        T(test_lua_instruction_limit),
        T(test_lua_memory_limit),
        T(test_lua_string_rep_is_charged),
        T(test_comment_injection),
        T(test_run_backends),
        T(test_bench),
        T(test_output_names),
        T(test_directory_in_the_way_keeps_header),
        T(test_activation_objects),
        T(test_dtype_policy_warns),
        T(test_json_trailing_text_and_batch),
        T(test_npy_header_parsed_strictly),
        T(test_lua_returns_non_table),
        T(test_lua_cyclic_value),
        T(test_run_wrong_input_shape),
        T(test_run_unbatched_input),
        T(test_run_batched_input),
        T(test_run_bad_weights_no_output),
        T(test_check_reports),
        T(test_help_exits_0),
        T(test_generation_is_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
