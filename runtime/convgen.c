/* convgen.c: the run-time library (include/convgen.h): specs to kernels. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* madvise and MADV_HUGEPAGE (glibc, musl) */
#include "convgen.h"

#include "backend.h"
#include "jit.h"
#include "microkernels.h"
#include "host.h"

#include <lauxlib.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define MAX_WEIGHTS 4
#define MAX_AXES 4
#define DEFAULT_CACHE_LIMIT 64
#define POOL_STACK ((size_t)1 << 20) /* the least stack a pool's worker gets */

typedef void (*layer_fn)(const float *input, float *output, int batch, const float *const weights[]);

/* Compiled code for one spec and its options, shared by every kernel made
 * from them (kernels differ only in their weights). */
typedef struct layer_code {
    unsigned refs;
    convgen__code *code;
    layer_fn fn;
    int in_rank, out_rank;
    long in_shape[MAX_AXES], out_shape[MAX_AXES];
    size_t in_size, out_size;
    int num_weights;
    size_t weight_count[MAX_WEIGHTS];
    void (*rows)(const float *input, float *output, const float *const weights[], int first, int count);
    size_t rows_per_item;
    int row_granule;    /* rows computed together (Winograd: 2): a share starts at a multiple within its item */
    size_t packed_size; /* > 0: the code also reads weights[num_weights], made by pack */
    void (*pack)(const float *const weights[], float *packed);
    int packed_only;    /* -1, or the weight pack reads that the code reads only packed: no copy is kept */
    int pack_source;    /* the weight pack reads (when packed_size > 0) */
    int pack_kind;      /* how pack lays it out: 0 its own way, 1 convgen_uk_pack, 2 convgen_uk_wino_pack ... */
    ptrdiff_t pack_rows, pack_columns; /* ... called with these (rows or input channels, columns) */
    char weights_text[512]; /* "kernel (3, 3, 3, 4), bias (4,)" for messages */
} layer_code;

struct convgen_kernel {
    unsigned refs;
    layer_code *code;
    float *weights[MAX_WEIGHTS]; /* copies (NULL: code->packed_only), then the packed one */
};

typedef struct cache_entry {
    char *key; /* the spec text and options, see spec_key */
    size_t key_len;
    unsigned long long hash;
    unsigned long long used; /* for least-recently-used eviction */
    convgen_kernel *kernel;  /* one reference held by the cache */
} cache_entry;

struct convgen_context {
    pthread_mutex_t lock; /* guards everything below */
    lua_State **idle;     /* generator states not in use */
    size_t nidle, idle_cap;
    cache_entry *entries;
    size_t nentries, entries_cap, limit;
    unsigned long long clock;
    float *scratch; /* where same_weights packs a caller's weights, kept for the next lookup */
    size_t scratch_size;
};

/* Reference counts of kernels and codes, which outlive their context. */
static pthread_mutex_t refs_lock = PTHREAD_MUTEX_INITIALIZER;

const char *convgen_strerror(convgen_status status)
{
    switch (status) {
    case CONVGEN_OK: return "success";
    case CONVGEN_ERROR_ARGUMENT: return "invalid argument";
    case CONVGEN_ERROR_SPEC: return "invalid spec";
    case CONVGEN_ERROR_WEIGHTS: return "invalid weights";
    case CONVGEN_ERROR_COMPILE: return "compilation failed";
    case CONVGEN_ERROR_NO_COMPILER: return "no C compiler";
    case CONVGEN_ERROR_MEMORY: return "out of memory";
    case CONVGEN_ERROR_SYSTEM: return "system error";
    }
    return "unknown status";
}

const char *convgen_version(void)
{
    return "0.1.0";
}

/* Writes a message in the command line's form into the caller's buffer. */
static convgen_status fail(convgen_status status, char *message, size_t size, const char *label, const char *field,
                           const char *format, ...)
{
    if (message && size) {
        char what[1024];
        va_list ap;
        va_start(ap, format);
        vsnprintf(what, sizeof what, format, ap);
        va_end(ap);
        snprintf(message, size, "convgen: %s: error: %s (%s)", label, what, field);
    }
    return status;
}

static void copy_message(char *message, size_t size, const char *text)
{
    if (message && size)
        snprintf(message, size, "%s", text ? text : "");
}

/* ------------------------------------------------------------------------
 * Contexts and their generator states
 */

convgen_status convgen_context_create(convgen_context **out)
{
    if (!out)
        return CONVGEN_ERROR_ARGUMENT;
    convgen_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return CONVGEN_ERROR_MEMORY;
    if (pthread_mutex_init(&ctx->lock, NULL) != 0) {
        free(ctx);
        return CONVGEN_ERROR_SYSTEM;
    }
    ctx->limit = DEFAULT_CACHE_LIMIT;
    *out = ctx;
    return CONVGEN_OK;
}

/* A generator state for this thread's use: an idle one, or a new one. */
static lua_State *take_state(convgen_context *ctx, char *err, size_t err_size)
{
    lua_State *L = NULL;
    pthread_mutex_lock(&ctx->lock);
    if (ctx->nidle > 0)
        L = ctx->idle[--ctx->nidle];
    pthread_mutex_unlock(&ctx->lock);
    return L ? L : convgen__host_new(err, err_size);
}

static void give_state(convgen_context *ctx, lua_State *L)
{
    lua_settop(L, 0);
    pthread_mutex_lock(&ctx->lock);
    if (ctx->nidle == ctx->idle_cap) {
        size_t cap = ctx->idle_cap ? ctx->idle_cap * 2 : 4;
        lua_State **bigger = realloc(ctx->idle, cap * sizeof *bigger);
        if (!bigger) {
            pthread_mutex_unlock(&ctx->lock);
            convgen__host_close(L);
            return;
        }
        ctx->idle = bigger;
        ctx->idle_cap = cap;
    }
    ctx->idle[ctx->nidle++] = L;
    pthread_mutex_unlock(&ctx->lock);
}

/* ------------------------------------------------------------------------
 * Kernels and reference counts
 */

static void code_release(layer_code *code)
{
    pthread_mutex_lock(&refs_lock);
    unsigned left = --code->refs;
    pthread_mutex_unlock(&refs_lock);
    if (left == 0) {
        convgen__code_free(code->code);
        free(code);
    }
}

static void code_retain(layer_code *code)
{
    pthread_mutex_lock(&refs_lock);
    code->refs++;
    pthread_mutex_unlock(&refs_lock);
}

static void kernel_retain(convgen_kernel *k)
{
    pthread_mutex_lock(&refs_lock);
    k->refs++;
    pthread_mutex_unlock(&refs_lock);
}

static void kernel_free_weights(convgen_kernel *k);

void convgen_kernel_destroy(convgen_kernel *k)
{
    if (!k)
        return;
    pthread_mutex_lock(&refs_lock);
    unsigned left = --k->refs;
    pthread_mutex_unlock(&refs_lock);
    if (left > 0)
        return;
    kernel_free_weights(k);
    code_release(k->code);
    free(k);
}

/* A buffer for a kernel's weights, 64-byte aligned (kernels that read the
 * weights as they are, the hybrid target's depthwise step, would otherwise
 * split vector loads across cache lines), or NULL; weights_free(p, bytes)
 * frees it. Megabytes of weights go on 2 MiB pages where the system lends
 * them (Linux: transparent huge pages on request): the first touch of a
 * 4 KiB page costs about 2.3 us on the development machine (a VM), so
 * copying 4 MiB of fresh weights took 2.3 ms of faults, and 0.2 ms on huge
 * pages. Such a buffer is a mapping of its own (the hint must not outlive
 * it on memory the heap hands out later), 2 MiB aligned; only whole huge
 * pages, and a last one at least half used, are asked for: at most 1 MiB
 * unused per buffer. */
#if defined(__linux__) && defined(MADV_HUGEPAGE) && defined(MAP_ANONYMOUS)
#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_SPAN(bytes) (((bytes) + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE) /* the mapping's length */
#endif

static void *weights_alloc(size_t bytes)
{
    void *p = NULL;
#ifdef HUGE_PAGE
    if (bytes >= HUGE_PAGE / 2) {
        const size_t span = HUGE_SPAN(bytes), advised = (bytes + HUGE_PAGE / 2) / HUGE_PAGE * HUGE_PAGE;
        char *raw = mmap(NULL, span + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED)
            return NULL;
        /* keep the 2 MiB aligned span, unmap the rest */
        char *at = (char *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
        if (at > raw)
            munmap(raw, (size_t)(at - raw));
        if (raw + span + HUGE_PAGE > at + span)
            munmap(at + span, (size_t)(raw + span + HUGE_PAGE - (at + span)));
        madvise(at, advised, MADV_HUGEPAGE); /* a hint: no huge pages, no harm */
        return at;
    }
#endif
    if (posix_memalign(&p, 64, bytes ? bytes : 1) != 0)
        return NULL;
    return p;
}

static void weights_free(void *p, size_t bytes)
{
    if (!p)
        return;
#ifdef HUGE_PAGE
    if (bytes >= HUGE_PAGE / 2) {
        munmap(p, HUGE_SPAN(bytes));
        return;
    }
#endif
    free(p);
}

/* Frees k's weight buffers (k->code says their sizes). */
static void kernel_free_weights(convgen_kernel *k)
{
    const layer_code *code = k->code;
    for (int i = 0; i < code->num_weights; i++)
        weights_free(k->weights[i], code->weight_count[i] * sizeof(float));
    if (code->packed_size)
        weights_free(k->weights[code->num_weights], code->packed_size * sizeof(float));
}

/* A kernel owning a copy of the weights it reads (the packed kernel alone
 * where the code reads no other form); takes one reference to code. */
static convgen_kernel *kernel_new(layer_code *code, const float *const *weights)
{
    convgen_kernel *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->code = code; /* the sizes kernel_free_weights reads; the reference is taken at the end */
    for (int i = 0; i < code->num_weights; i++) {
        if (i == code->packed_only)
            continue;
        size_t n = code->weight_count[i];
        k->weights[i] = weights_alloc(n * sizeof(float));
        if (!k->weights[i]) {
            kernel_free_weights(k);
            free(k);
            return NULL;
        }
        memcpy(k->weights[i], weights[i], n * sizeof(float));
    }
    if (code->packed_size) {
        /* The SIMD strips read their kernel packed: lay it out once, here. */
        float *packed = weights_alloc(code->packed_size * sizeof(float));
        if (!packed) {
            kernel_free_weights(k);
            free(k);
            return NULL;
        }
        k->weights[code->num_weights] = packed;
        const float *from[MAX_WEIGHTS];
        for (int i = 0; i < code->num_weights; i++)
            from[i] = i == code->packed_only ? weights[i] : k->weights[i];
        /* A layout the runtime has is laid out by the runtime, as same_weights
         * compares it (the cc backend's own pack, compiled with other flags,
         * could round a Winograd transform otherwise). */
        if (code->pack_kind == 1)
            convgen_uk_pack(from[code->pack_source], code->pack_rows, code->pack_columns, packed);
        else if (code->pack_kind == 2)
            convgen_uk_wino_pack(from[code->pack_source], code->pack_rows, code->pack_columns, packed);
        else
            code->pack(from, packed);
    }
    k->refs = 1;
    code_retain(code);
    return k;
}

/* Under ctx->lock: whether k was made from these weights. A weight kept
 * only packed is compared in that form: in place where the layout is the
 * runtime's own (convgen_uk_pack's or the Winograd transform's), otherwise
 * packed again into the context's scratch (a fresh buffer of megabytes
 * would cost its page faults on every lookup). Equal packed arrays mean a
 * kernel computing the same: convgen_uk_pack's layout is a permutation with
 * zero padding, and weights whose transforms round alike give the same
 * kernel, by construction. */
static int same_weights(convgen_context *ctx, const convgen_kernel *k, const float *const *weights)
{
    const layer_code *code = k->code;
    for (int i = 0; i < code->num_weights; i++) {
        if (i != code->packed_only && memcmp(k->weights[i], weights[i], code->weight_count[i] * sizeof(float)) != 0)
            return 0;
    }
    if (code->packed_only < 0)
        return 1;
    const float *packed = k->weights[code->num_weights], *src = weights[code->packed_only];
    if (code->pack_kind == 1)
        return convgen__uk_pack_equal(src, code->pack_rows, code->pack_columns, packed);
    if (code->pack_kind == 2)
        return convgen__uk_wino_equal(src, code->pack_rows, code->pack_columns, packed);
    if (ctx->scratch_size < code->packed_size) {
        float *bigger = realloc(ctx->scratch, code->packed_size * sizeof(float));
        if (!bigger)
            return 0; /* compiled again instead */
        ctx->scratch = bigger;
        ctx->scratch_size = code->packed_size;
    }
    code->pack(weights, ctx->scratch);
    return memcmp(ctx->scratch, packed, code->packed_size * sizeof(float)) == 0;
}

convgen_status convgen_kernel_run(const convgen_kernel *k, const float *input, float *output, int batch)
{
    if (!k || !input || !output || batch < 0)
        return CONVGEN_ERROR_ARGUMENT;
    k->code->fn(input, output, batch, (const float *const *)k->weights);
    return CONVGEN_OK;
}

size_t convgen_kernel_rows_per_item(const convgen_kernel *k)
{
    return k ? k->code->rows_per_item : 0;
}

int convgen_kernel_row_granule(const convgen_kernel *k)
{
    return k ? (k->code->row_granule > 0 ? k->code->row_granule : 1) : 0;
}

convgen_status convgen_kernel_run_rows(const convgen_kernel *k, const float *input, float *output, int first,
                                       int count)
{
    if (!k || !input || !output || first < 0 || count < 0)
        return CONVGEN_ERROR_ARGUMENT;
    k->code->rows(input, output, (const float *const *)k->weights, first, count);
    return CONVGEN_OK;
}

/* ------------------------------------------------------------------------
 * The thread pool: workers wait for a job, each takes its share of the rows.
 */
struct convgen_pool {
    pthread_mutex_t lock;  /* guards everything below */
    pthread_cond_t wake;   /* a new job, or stop */
    pthread_cond_t done;   /* a worker finished its share */
    pthread_mutex_t calls; /* one convgen_kernel_run_pool at a time */
    pthread_t *workers;
    int threads, started, stop;
    unsigned long job;     /* incremented per job */
    int pending;           /* workers still busy with the current job */
    const convgen_kernel *kernel;
    const float *input;
    float *output;
    int rows;
    int rows_per_item, granule; /* the kernel's: shares are split in units of granule rows per item */
};

/* Waiting: spin this many pauses on the shared counters before blocking,
 * since waking a blocked thread costs tens of microseconds, more than a
 * small layer's whole run. */
#define POOL_SPINS 4000

static void pause_cpu(void)
{
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_ia32_pause();
#endif
}

/* Rows of share i of n (the caller is share 0): units of granule rows
 * split evenly, an item's last unit holding what is left of it. A range
 * that starts or ends inside a Winograd tile row computes the whole tile
 * row (2 output rows): split at odd rows, 14x14x256 ran 1.55x as fast on
 * 2 threads as on 1. */
static void pool_share(const convgen_pool *pool, int i, int *first, int *count)
{
    const int g = pool->granule, per_item = (pool->rows_per_item + g - 1) / g;
    const int units = pool->rows / pool->rows_per_item * per_item;
    const int base = units / pool->threads, extra = units % pool->threads;
    const int u0 = i * base + (i < extra ? i : extra), u1 = u0 + base + (i < extra);
    /* the first row of unit u */
#define UNIT_ROW(u) ((u) / per_item * pool->rows_per_item + \
                     ((u) % per_item * g < pool->rows_per_item ? (u) % per_item * g : pool->rows_per_item))
    *first = UNIT_ROW(u0);
    *count = UNIT_ROW(u1) - *first;
#undef UNIT_ROW
}

struct worker_arg {
    convgen_pool *pool;
    int index;
};

static void *pool_worker(void *p)
{
    struct worker_arg *arg = p;
    convgen_pool *pool = arg->pool;
    int index = arg->index;
    free(arg);
    unsigned long seen = 0;
    for (;;) {
        for (int i = 0; i < POOL_SPINS && __atomic_load_n(&pool->job, __ATOMIC_ACQUIRE) == seen &&
                        !__atomic_load_n(&pool->stop, __ATOMIC_ACQUIRE);
             i++)
            pause_cpu();
        pthread_mutex_lock(&pool->lock);
        while (!pool->stop && pool->job == seen)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stop)
            break;
        seen = pool->job;
        int first, count;
        pool_share(pool, index, &first, &count);
        const convgen_kernel *k = pool->kernel;
        const float *input = pool->input;
        float *output = pool->output;
        pthread_mutex_unlock(&pool->lock);
        if (count > 0)
            k->code->rows(input, output, (const float *const *)k->weights, first, count);
        pthread_mutex_lock(&pool->lock);
        if (__atomic_sub_fetch(&pool->pending, 1, __ATOMIC_ACQ_REL) == 0)
            pthread_cond_signal(&pool->done);
        pthread_mutex_unlock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

void convgen_pool_destroy(convgen_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    __atomic_store_n(&pool->stop, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->started; i++)
        pthread_join(pool->workers[i], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    pthread_mutex_destroy(&pool->lock);
    pthread_mutex_destroy(&pool->calls);
    free(pool->workers);
    free(pool);
}

convgen_status convgen_pool_create(int threads, convgen_pool **out)
{
    if (!out || threads < 1 || threads > 1024)
        return CONVGEN_ERROR_ARGUMENT;
    convgen_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return CONVGEN_ERROR_MEMORY;
    pool->threads = threads;
    pool->workers = calloc((size_t)threads, sizeof *pool->workers);
    if (!pool->workers || pthread_mutex_init(&pool->lock, NULL) != 0 || pthread_mutex_init(&pool->calls, NULL) != 0 ||
        pthread_cond_init(&pool->wake, NULL) != 0 || pthread_cond_init(&pool->done, NULL) != 0) {
        free(pool->workers);
        free(pool);
        return CONVGEN_ERROR_SYSTEM;
    }
    /* Workers' stacks of at least POOL_STACK bytes: a Winograd layer keeps
     * up to 192 KiB of buffers on the stack, more than some C libraries
     * give a thread by default (musl: 128 KiB). */
    pthread_attr_t attr;
    int have_attr = pthread_attr_init(&attr) == 0;
    size_t stack = 0;
    if (have_attr && pthread_attr_getstacksize(&attr, &stack) == 0 && stack < POOL_STACK)
        pthread_attr_setstacksize(&attr, POOL_STACK);
    for (int i = 1; i < threads; i++) {
        struct worker_arg *arg = malloc(sizeof *arg);
        if (!arg)
            break;
        arg->pool = pool;
        arg->index = i;
        if (pthread_create(&pool->workers[pool->started], have_attr ? &attr : NULL, pool_worker, arg) != 0) {
            free(arg);
            break;
        }
        pool->started++;
    }
    if (have_attr)
        pthread_attr_destroy(&attr);
    if (pool->started != threads - 1) {
        convgen_pool_destroy(pool);
        return CONVGEN_ERROR_SYSTEM;
    }
    *out = pool;
    return CONVGEN_OK;
}

convgen_status convgen_kernel_run_pool(const convgen_kernel *k, convgen_pool *pool, const float *input,
                                       float *output, int batch)
{
    if (!k || !pool || !input || !output || batch < 0)
        return CONVGEN_ERROR_ARGUMENT;
    size_t rows = (size_t)batch * k->code->rows_per_item;
    if (rows > 0x7fffffff)
        return CONVGEN_ERROR_ARGUMENT;
    if (rows < (size_t)pool->threads || pool->threads == 1) {
        /* fewer rows than threads: not worth waking anyone */
        k->code->rows(input, output, (const float *const *)k->weights, 0, (int)rows);
        return CONVGEN_OK;
    }
    pthread_mutex_lock(&pool->calls);
    pthread_mutex_lock(&pool->lock);
    pool->kernel = k;
    pool->input = input;
    pool->output = output;
    pool->rows = (int)rows;
    pool->rows_per_item = (int)k->code->rows_per_item;
    pool->granule = convgen_kernel_row_granule(k);
    __atomic_store_n(&pool->pending, pool->threads - 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&pool->job, 1, __ATOMIC_ACQ_REL);
    pthread_cond_broadcast(&pool->wake);
    int first, count;
    pool_share(pool, 0, &first, &count);
    pthread_mutex_unlock(&pool->lock);
    if (count > 0)
        k->code->rows(input, output, (const float *const *)k->weights, first, count);
    for (int i = 0; i < POOL_SPINS && __atomic_load_n(&pool->pending, __ATOMIC_ACQUIRE) > 0; i++)
        pause_cpu();
    pthread_mutex_lock(&pool->lock);
    while (__atomic_load_n(&pool->pending, __ATOMIC_ACQUIRE) > 0)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    pthread_mutex_unlock(&pool->calls);
    return CONVGEN_OK;
}

size_t convgen_kernel_input_size(const convgen_kernel *k)
{
    return k ? k->code->in_size : 0;
}

size_t convgen_kernel_output_size(const convgen_kernel *k)
{
    return k ? k->code->out_size : 0;
}

static int copy_shape(const long *shape, int rank, long *dims, int max_dims)
{
    for (int i = 0; dims && i < rank && i < max_dims; i++)
        dims[i] = shape[i];
    return rank;
}

int convgen_kernel_input_shape(const convgen_kernel *k, long *dims, int max_dims)
{
    return k ? copy_shape(k->code->in_shape, k->code->in_rank, dims, max_dims) : 0;
}

int convgen_kernel_output_shape(const convgen_kernel *k, long *dims, int max_dims)
{
    return k ? copy_shape(k->code->out_shape, k->code->out_rank, dims, max_dims) : 0;
}

/* ------------------------------------------------------------------------
 * The cache
 */

/* The spec text and every option that changes the code, length-prefixed. */
static char *spec_key(const convgen_spec *spec, const char *target, size_t *len)
{
    /* a hybrid driver is bound to the microkernels of the ISA chosen as it compiles */
    const char *isa = spec->backend == CONVGEN_BACKEND_TCC ? convgen__jit_isa() : "";
    const char *parts[5] = {spec->text, spec->label ? spec->label : "", spec->input_shape ? spec->input_shape : "",
                            target, isa};
    size_t total = 32;
    for (int i = 0; i < 5; i++)
        total += strlen(parts[i]) + 24;
    char *key = malloc(total);
    if (!key)
        return NULL;
    size_t n = (size_t)snprintf(key, total, "v%d b%d", spec->keras_version ? spec->keras_version : 3, (int)spec->backend);
    for (int i = 0; i < 5; i++) {
        size_t l = strlen(parts[i]);
        n += (size_t)snprintf(key + n, total - n, "|%zu:", l);
        memcpy(key + n, parts[i], l);
        n += l;
    }
    *len = n;
    return key;
}

static unsigned long long hash_bytes(const char *p, size_t n)
{
    unsigned long long h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

/* Under ctx->lock: a cached kernel for key and weights (one more reference),
 * or NULL; *code receives (retained) the code of any kernel with this key. */
static convgen_kernel *cache_find(convgen_context *ctx, const char *key, size_t len, unsigned long long hash,
                                  const float *const *weights, int num_weights, layer_code **code)
{
    for (size_t i = 0; i < ctx->nentries; i++) {
        cache_entry *e = &ctx->entries[i];
        if (e->hash != hash || e->key_len != len || memcmp(e->key, key, len) != 0)
            continue;
        if (weights && num_weights == e->kernel->code->num_weights && same_weights(ctx, e->kernel, weights)) {
            e->used = ++ctx->clock;
            kernel_retain(e->kernel);
            return e->kernel;
        }
        if (code && !*code) {
            *code = e->kernel->code;
            code_retain(*code);
        }
    }
    return NULL;
}

static void cache_drop(convgen_context *ctx, size_t i)
{
    convgen_kernel_destroy(ctx->entries[i].kernel);
    free(ctx->entries[i].key);
    ctx->entries[i] = ctx->entries[--ctx->nentries];
}

/* Under ctx->lock: keeps a reference to k under key, evicting the least recently used. */
static void cache_insert(convgen_context *ctx, const char *key, size_t len, unsigned long long hash, convgen_kernel *k)
{
    if (ctx->limit == 0)
        return;
    while (ctx->nentries >= ctx->limit) {
        size_t oldest = 0;
        for (size_t i = 1; i < ctx->nentries; i++)
            if (ctx->entries[i].used < ctx->entries[oldest].used)
                oldest = i;
        cache_drop(ctx, oldest);
    }
    if (ctx->nentries == ctx->entries_cap) {
        size_t cap = ctx->entries_cap ? ctx->entries_cap * 2 : 8;
        cache_entry *bigger = realloc(ctx->entries, cap * sizeof *bigger);
        if (!bigger)
            return; /* not cached; still correct */
        ctx->entries = bigger;
        ctx->entries_cap = cap;
    }
    char *copy = malloc(len);
    if (!copy)
        return;
    memcpy(copy, key, len);
    kernel_retain(k);
    ctx->entries[ctx->nentries++] = (cache_entry){copy, len, hash, ++ctx->clock, k};
}

void convgen_cache_set_limit(convgen_context *ctx, size_t max_kernels)
{
    if (!ctx)
        return;
    pthread_mutex_lock(&ctx->lock);
    ctx->limit = max_kernels;
    while (ctx->nentries > ctx->limit) {
        size_t oldest = 0;
        for (size_t i = 1; i < ctx->nentries; i++)
            if (ctx->entries[i].used < ctx->entries[oldest].used)
                oldest = i;
        cache_drop(ctx, oldest);
    }
    pthread_mutex_unlock(&ctx->lock);
}

void convgen_cache_clear(convgen_context *ctx)
{
    if (!ctx)
        return;
    pthread_mutex_lock(&ctx->lock);
    while (ctx->nentries > 0)
        cache_drop(ctx, ctx->nentries - 1);
    free(ctx->scratch);
    ctx->scratch = NULL;
    ctx->scratch_size = 0;
    pthread_mutex_unlock(&ctx->lock);
}

size_t convgen_cache_size(convgen_context *ctx)
{
    if (!ctx)
        return 0;
    pthread_mutex_lock(&ctx->lock);
    size_t n = ctx->nentries;
    pthread_mutex_unlock(&ctx->lock);
    return n;
}

void convgen_context_destroy(convgen_context *ctx)
{
    if (!ctx)
        return;
    convgen_cache_clear(ctx);
    for (size_t i = 0; i < ctx->nidle; i++)
        convgen__host_close(ctx->idle[i]);
    free(ctx->idle);
    free(ctx->entries);
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

/* ------------------------------------------------------------------------
 * Compiling
 */

/* Reads a list of integers at the top of the stack's field `name`. */
static int read_shape(lua_State *L, const char *name, long *dims)
{
    lua_getfield(L, -1, name);
    int n = (int)luaL_len(L, -1);
    for (int i = 0; i < n && i < MAX_AXES; i++) {
        lua_geti(L, -1, i + 1);
        dims[i] = (long)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return n;
}

/* Builds the shared code from the table api.prepare returned (stack top). */
static convgen_status build_code(lua_State *L, int backend, layer_code **out, char *message, size_t size,
                                 const char *label)
{
    layer_code *code = calloc(1, sizeof *code);
    if (!code)
        return fail(CONVGEN_ERROR_MEMORY, message, size, label, "memory", "out of memory");
    code->refs = 1;
    code->in_rank = read_shape(L, "input_shape", code->in_shape);
    code->out_rank = read_shape(L, "output_shape", code->out_shape);
    lua_getfield(L, -1, "input_size");
    code->in_size = (size_t)lua_tointeger(L, -1);
    lua_getfield(L, -2, "output_size");
    code->out_size = (size_t)lua_tointeger(L, -1);
    lua_pop(L, 2);
    lua_getfield(L, -1, "packed_size");
    code->packed_size = (size_t)lua_tointeger(L, -1);
    lua_getfield(L, -2, "rows_per_item");
    code->rows_per_item = (size_t)lua_tointeger(L, -1);
    lua_getfield(L, -3, "row_granule");
    code->row_granule = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, -3, "packed_source");
    lua_getfield(L, -4, "packed_only");
    code->pack_source = (int)lua_tointeger(L, -2);
    code->packed_only = code->packed_size && lua_toboolean(L, -1) ? code->pack_source : -1;
    lua_pop(L, 4);
    lua_getfield(L, -1, "pack_kind");
    lua_getfield(L, -2, "pack_rows");
    lua_getfield(L, -3, "pack_columns");
    code->pack_kind = (int)lua_tointeger(L, -3);
    code->pack_rows = (ptrdiff_t)lua_tointeger(L, -2);
    code->pack_columns = (ptrdiff_t)lua_tointeger(L, -1);
    lua_pop(L, 3);
    lua_getfield(L, -1, "weights");
    code->num_weights = (int)luaL_len(L, -1);
    if (code->num_weights + (code->packed_size > 0) > MAX_WEIGHTS) {
        lua_pop(L, 1);
        free(code);
        return fail(CONVGEN_ERROR_SYSTEM, message, size, label, "weights", "too many weight arrays");
    }
    size_t used = 0;
    for (int i = 0; i < code->num_weights && i < MAX_WEIGHTS; i++) {
        lua_geti(L, -1, i + 1);
        lua_getfield(L, -1, "count");
        code->weight_count[i] = (size_t)lua_tointeger(L, -1);
        lua_getfield(L, -2, "name");
        lua_getfield(L, -3, "shape");
        used += (size_t)snprintf(code->weights_text + used, sizeof code->weights_text - used, "%s%s %s",
                                 i ? ", " : "", lua_tostring(L, -2), lua_tostring(L, -1));
        if (used >= sizeof code->weights_text)
            used = sizeof code->weights_text - 1;
        lua_pop(L, 4);
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "source");
    lua_getfield(L, -2, "name");
    char err[4096];
    int kind;
    code->code = convgen__code_compile(lua_tostring(L, -2), lua_tostring(L, -1), backend, &kind, err, sizeof err);
    lua_pop(L, 2);
    if (!code->code) {
        free(code);
        convgen_status s = kind == CONVGEN__CODE_NO_COMPILER ? CONVGEN_ERROR_NO_COMPILER
                           : kind == CONVGEN__CODE_COMPILE   ? CONVGEN_ERROR_COMPILE
                                                             : CONVGEN_ERROR_SYSTEM;
        return fail(s, message, size, label, "backend", "%s", err);
    }
    void *address = convgen__code_function(code->code);
    memcpy(&code->fn, &address, sizeof code->fn);
    void *rows = convgen__code_symbol(code->code, "convgen_layer_rows");
    if (!rows) {
        convgen__code_free(code->code);
        free(code);
        return fail(CONVGEN_ERROR_COMPILE, message, size, label, "backend", "the code has no row entry point");
    }
    memcpy(&code->rows, &rows, sizeof code->rows);
    if (code->packed_size) {
        void *pack = convgen__code_symbol(code->code, "convgen_layer_pack");
        if (!pack) {
            convgen__code_free(code->code);
            free(code);
            return fail(CONVGEN_ERROR_COMPILE, message, size, label, "backend", "the code has no pack function");
        }
        memcpy(&code->pack, &pack, sizeof code->pack);
    }
    *out = code;
    return CONVGEN_OK;
}

convgen_status convgen_compile(convgen_context *ctx, const convgen_spec *spec, convgen_kernel **out, char *message,
                               size_t message_size)
{
    const char *label = spec && spec->label ? spec->label : "<spec>";
    if (!ctx || !spec || !out || !spec->text)
        return fail(CONVGEN_ERROR_ARGUMENT, message, message_size, label, "spec",
                    "the context, the spec, its text and the output must not be NULL");
    if (spec->backend != CONVGEN_BACKEND_TCC && spec->backend != CONVGEN_BACKEND_CC)
        return fail(CONVGEN_ERROR_ARGUMENT, message, message_size, label, "backend", "unknown backend %d",
                    (int)spec->backend);
    if (spec->keras_version != 0 && spec->keras_version != 2 && spec->keras_version != 3)
        return fail(CONVGEN_ERROR_ARGUMENT, message, message_size, label, "keras_version",
                    "keras_version must be 0, 2 or 3, got %d", spec->keras_version);
    const int tcc = spec->backend == CONVGEN_BACKEND_TCC;
    const char *target = spec->target ? spec->target : tcc ? "hybrid" : "native";
    if (strcmp(target, "scalar") != 0 && strcmp(target, "avx2") != 0 && strcmp(target, "native") != 0 &&
        strcmp(target, "hybrid") != 0)
        return fail(CONVGEN_ERROR_ARGUMENT, message, message_size, label, "target",
                    "unknown target '%s'; expected hybrid, scalar, avx2 or native", target);
    if (tcc && strcmp(target, "scalar") != 0 && strcmp(target, "hybrid") != 0)
        return fail(CONVGEN_ERROR_ARGUMENT, message, message_size, label, "target",
                    "the tcc backend compiles no SIMD intrinsics (targets hybrid and scalar); use the cc backend "
                    "for target '%s'",
                    target);
    if (!tcc && strcmp(target, "hybrid") == 0)
        return fail(CONVGEN_ERROR_ARGUMENT, message, message_size, label, "target",
                    "the hybrid target calls microkernels only the tcc backend links; use target native or avx2 "
                    "with the cc backend");
    if (!spec->weights == !spec->weights_dir)
        return fail(CONVGEN_ERROR_ARGUMENT, message, message_size, label, "weights",
                    "give the weights in memory or a weights_dir, one of the two");
    if (spec->weights && (spec->num_weights < 1 || spec->num_weights > MAX_WEIGHTS))
        return fail(CONVGEN_ERROR_WEIGHTS, message, message_size, label, "num_weights",
                    "num_weights must be from 1 to %d, got %d", MAX_WEIGHTS, spec->num_weights);

    size_t key_len;
    char *key = spec_key(spec, target, &key_len);
    if (!key)
        return fail(CONVGEN_ERROR_MEMORY, message, message_size, label, "memory", "out of memory");
    unsigned long long hash = hash_bytes(key, key_len);

    /* A cached kernel with these weights, or at least code for this spec. */
    layer_code *code = NULL;
    pthread_mutex_lock(&ctx->lock);
    convgen_kernel *hit = cache_find(ctx, key, key_len, hash, spec->weights, spec->num_weights, &code);
    pthread_mutex_unlock(&ctx->lock);
    if (hit) {
        free(key);
        if (code)
            code_release(code);
        *out = hit;
        return CONVGEN_OK;
    }

    convgen_status status = CONVGEN_OK;
    lua_State *L = NULL;
    const float *loaded[MAX_WEIGHTS] = {0};
    const float *const *weights = spec->weights;
    if (!code || spec->weights_dir) {
        char err[512];
        L = take_state(ctx, err, sizeof err);
        if (!L) {
            free(key);
            if (code)
                code_release(code);
            return fail(CONVGEN_ERROR_MEMORY, message, message_size, label, "generator", "%s", err);
        }
        lua_pushstring(L, spec->text);
        lua_pushstring(L, label);
        lua_pushstring(L, spec->input_shape);
        lua_pushinteger(L, spec->keras_version ? spec->keras_version : 3);
        lua_pushstring(L, spec->weights_dir);
        lua_pushstring(L, target);
        if (convgen__host_call(L, "convgen.api", "prepare", 6, 3) != LUA_OK) {
            status = fail(CONVGEN_ERROR_SYSTEM, message, message_size, label, "generator", "internal error: %s",
                          lua_tostring(L, -1));
        } else if (lua_isnil(L, -3)) {
            copy_message(message, message_size, lua_tostring(L, -2));
            const char *kind = lua_tostring(L, -1);
            status = kind && strcmp(kind, "weights") == 0 ? CONVGEN_ERROR_WEIGHTS : CONVGEN_ERROR_SPEC;
        } else {
            lua_pop(L, 2); /* the info table stays on top */
            if (!code)
                status = build_code(L, (int)spec->backend, &code, message, message_size, label);
            if (status == CONVGEN_OK && spec->weights_dir) {
                lua_getfield(L, -1, "tensors");
                for (int i = 0; i < code->num_weights; i++) {
                    size_t n;
                    lua_geti(L, -1, i + 1);
                    loaded[i] = convgen__host_tensor(L, -1, &n);
                    lua_pop(L, 1); /* the tensors table keeps it alive */
                }
                weights = loaded;
            }
        }
    }
    if (status == CONVGEN_OK && spec->weights && spec->num_weights != code->num_weights)
        status = fail(CONVGEN_ERROR_WEIGHTS, message, message_size, label, "num_weights",
                      "the layer takes %d weights: %s; got %d", code->num_weights, code->weights_text,
                      spec->num_weights);

    convgen_kernel *k = NULL;
    if (status == CONVGEN_OK) {
        pthread_mutex_lock(&ctx->lock);
        if (spec->weights_dir) /* weights just loaded: maybe cached already */
            k = cache_find(ctx, key, key_len, hash, weights, code->num_weights, NULL);
        pthread_mutex_unlock(&ctx->lock);
        if (!k) {
            k = kernel_new(code, weights);
            if (!k) {
                status = fail(CONVGEN_ERROR_MEMORY, message, message_size, label, "memory", "out of memory");
            } else {
                pthread_mutex_lock(&ctx->lock);
                cache_insert(ctx, key, key_len, hash, k);
                pthread_mutex_unlock(&ctx->lock);
            }
        }
    }
    if (L)
        give_state(ctx, L); /* after the weights were copied out of its tensors */
    if (code)
        code_release(code);
    free(key);
    if (status == CONVGEN_OK)
        *out = k;
    return status;
}
