/* jit.c: in-process compilation through libtcc. */
#include "jit.h"
#include "microkernels.h"

#include <libtcc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CONVGEN_TCC_LIB_PATH
#define CONVGEN_TCC_LIB_PATH "/usr/lib/x86_64-linux-gnu/tcc"
#endif

struct convgen__jit {
    TCCState *state;
};

/* libtcc keeps global state and initializes it lazily, racing on first
 * concurrent use: every libtcc call in the process goes through this lock. */
static pthread_mutex_t tcc_lock = PTHREAD_MUTEX_INITIALIZER;

/* Host functions generated code may call. Shared with the generator's
 * activation table (gen/convgen/activations.lua): a test checks that every
 * function an activation needs is listed here. */
static const struct {
    const char *name;
    float (*function)(float);
} host_symbols[] = {
    {"expf", expf},   {"expm1f", expm1f}, {"logf", logf},   {"log1pf", log1pf},
    {"tanhf", tanhf}, {"erff", erff},     {"sqrtf", sqrtf}, {"fabsf", fabsf},
};

/* POSIX (not ISO C) lets a function pointer travel as a void pointer. */
static void *function_address(float (*function)(float))
{
    void *address;
    memcpy(&address, &function, sizeof address);
    return address;
}

const char *convgen__jit_symbol_name(int i)
{
    if (i < 0 || i >= (int)(sizeof host_symbols / sizeof host_symbols[0]))
        return NULL;
    return host_symbols[i].name;
}

/* The ISA whose microkernels hybrid drivers call: $CONVGEN_ISA when it names
 * one built here that the CPU runs, else the best the CPU has. Read at every
 * compile (cheap), so a test can run the same driver on each ISA; the
 * library's cache keys compiled code by it. */
static int microkernel_isa(void)
{
    static const char *const names[] = CONVGEN__UK_ISA_NAMES;
    const char *want = getenv("CONVGEN_ISA");
    for (int i = 0; want && i < CONVGEN__UK_ISAS; i++)
        if (strcmp(want, names[i]) == 0 && convgen__uk_cpu_runs(i))
            return i;
    for (int i = 0; i < CONVGEN__UK_ISAS; i++) /* the registry lists the fastest first */
        if (convgen__uk_cpu_runs(i))
            return i;
    return CONVGEN__UK_SCALAR;
}

const char *convgen__jit_isa(void)
{
    static const char *const names[] = CONVGEN__UK_ISA_NAMES;
    return names[microkernel_isa()];
}

static void *code_address(convgen__uk_fn function)
{
    void *address;
    memcpy(&address, &function, sizeof address);
    return address;
}

/* The distinct identifiers in a source that start with convgen_uk_: the
 * runtime's names a driver can call. Registering only these with libtcc,
 * not all 225, took 0.03-0.08 ms off a 0.6-1.1 ms compile (minima and
 * medians of 300 compiles of dw 3x3 14x14x512, alternated). More than
 * MAX_NAMES (no driver comes near): all count as named. */
#define MAX_NAMES 64
struct names {
    const char *at[MAX_NAMES];
    size_t len[MAX_NAMES];
    int n, all;
};

static int identifier_char(char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static void find_names(const char *source, struct names *names)
{
    static const char prefix[] = "convgen_uk_";
    names->n = names->all = 0;
    for (const char *p = strstr(source, prefix); p; p = strstr(p, prefix)) {
        size_t len = sizeof prefix - 1;
        while (identifier_char(p[len]))
            len++;
        int seen = p > source && identifier_char(p[-1]); /* inside another identifier */
        for (int i = 0; i < names->n && !seen; i++)
            seen = names->len[i] == len && memcmp(names->at[i], p, len) == 0;
        if (!seen) {
            if (names->n == MAX_NAMES) {
                names->all = 1;
                return;
            }
            names->at[names->n] = p;
            names->len[names->n++] = len;
        }
        p += len;
    }
}

static int named(const struct names *names, const char *name)
{
    const size_t len = strlen(name);
    for (int i = 0; i < names->n; i++)
        if (names->len[i] == len && memcmp(names->at[i], name, len) == 0)
            return 1;
    return names->all;
}

/* Every symbol of the runtime's a hybrid driver names: microkernels of one
 * ISA under their ISA-neutral names, and the pack functions. */
static int add_microkernels(TCCState *s, const struct names *names)
{
    const int isa = microkernel_isa();
    int ok = 1;
    for (const struct convgen__uk_symbol *u = convgen__uk_symbols; ok && u->name; u++)
        if (u->variant[isa] && named(names, u->name)) /* NULL: this ISA has no such variant */
            ok = tcc_add_symbol(s, u->name, code_address(u->variant[isa])) == 0;
    void (*pack)(const float *, ptrdiff_t, ptrdiff_t, float *) = convgen_uk_pack;
    void *address;
    memcpy(&address, &pack, sizeof address);
    ok = ok && (!named(names, "convgen_uk_pack") || tcc_add_symbol(s, "convgen_uk_pack", address) == 0);
    pack = convgen_uk_wino_pack;
    memcpy(&address, &pack, sizeof address);
    ok = ok && (!named(names, "convgen_uk_wino_pack") || tcc_add_symbol(s, "convgen_uk_wino_pack", address) == 0);
    /* tcc itself emits calls to these for aggregate initializers and copies
     * (with -nostdlib, nothing else provides them) */
    void *(*copy)(void *, const void *, size_t) = memcpy;
    memcpy(&address, &copy, sizeof address);
    ok = ok && tcc_add_symbol(s, "memcpy", address) == 0;
    copy = memmove;
    memcpy(&address, &copy, sizeof address);
    ok = ok && tcc_add_symbol(s, "memmove", address) == 0;
    void *(*set)(void *, int, size_t) = memset;
    memcpy(&address, &set, sizeof address);
    return ok && tcc_add_symbol(s, "memset", address) == 0;
}

struct messages {
    char *buf;
    size_t size, used;
};

static void collect_message(void *opaque, const char *msg)
{
    struct messages *m = opaque;
    if (m->size == 0)
        return;
    int n = snprintf(m->buf + m->used, m->size - m->used, "%s%s", m->used ? "\n" : "", msg);
    if (n > 0)
        m->used = m->used + (size_t)n < m->size ? m->used + (size_t)n : m->size - 1;
}

/* The Debian libtcc takes a second argument; newer upstream dropped it. */
static int relocate(TCCState *s)
{
#ifdef TCC_RELOCATE_AUTO
    return tcc_relocate(s, TCC_RELOCATE_AUTO);
#else
    return tcc_relocate(s);
#endif
}

convgen__jit *convgen__jit_compile(const char *source, int werror, char *err, size_t err_size)
{
    struct messages m = {err, err_size, 0};
    if (err_size)
        err[0] = 0;
    convgen__jit *jit = malloc(sizeof *jit);
    if (!jit) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    struct names names;
    find_names(source, &names);
    pthread_mutex_lock(&tcc_lock);
    TCCState *s = tcc_new();
    int ok = s != NULL;
    if (ok) {
        tcc_set_error_func(s, &m, collect_message);
        tcc_set_lib_path(s, CONVGEN_TCC_LIB_PATH);
        /* -nostdlib: no libtcc1.a, which tcc would otherwise read and link on
         * every compile (0.17 ms of a 0.26 ms empty compile, measured). The
         * generated code calls only the symbols registered here; tcc's own
         * helpers for float to unsigned 64-bit conversions are not among
         * them, and the templates make none. */
        tcc_set_options(s, werror ? "-std=c99 -nostdlib -Wall -Werror" : "-std=c99 -nostdlib");
        ok = tcc_set_output_type(s, TCC_OUTPUT_MEMORY) == 0;
    }
    for (size_t i = 0; ok && i < sizeof host_symbols / sizeof host_symbols[0]; i++)
        ok = tcc_add_symbol(s, host_symbols[i].name, function_address(host_symbols[i].function)) == 0;
    ok = ok && add_microkernels(s, &names);
    ok = ok && tcc_compile_string(s, source) == 0 && m.used == 0;
    ok = ok && relocate(s) >= 0;
    pthread_mutex_unlock(&tcc_lock);
    if (!ok) {
        if (m.used == 0)
            snprintf(err, err_size, "libtcc failed without a message");
        if (s) {
            pthread_mutex_lock(&tcc_lock);
            tcc_delete(s);
            pthread_mutex_unlock(&tcc_lock);
        }
        free(jit);
        return NULL;
    }
    jit->state = s;
    return jit;
}

void *convgen__jit_symbol(convgen__jit *jit, const char *name)
{
    pthread_mutex_lock(&tcc_lock);
    void *p = tcc_get_symbol(jit->state, name);
    pthread_mutex_unlock(&tcc_lock);
    return p;
}

void convgen__jit_free(convgen__jit *jit)
{
    if (!jit)
        return;
    pthread_mutex_lock(&tcc_lock);
    tcc_delete(jit->state);
    pthread_mutex_unlock(&tcc_lock);
    free(jit);
}
