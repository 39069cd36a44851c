/* host.c: the Lua state that runs the generator, and its native module. */
#define _POSIX_C_SOURCE 200809L
#include "host.h"

#include "convgen_npy.h"
#include "fileio.h"
#include "backend.h"
#include "jit.h"
#include "microkernels.h"
#include "model_file.h"

#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

/* ------------------------------------------------------------------------
 * Memory: every allocation of the state is counted so a sandboxed spec can
 * be given a ceiling (native.set_memory_limit).
 */
struct host_memory {
    size_t used;
    size_t limit; /* 0: none */
};

static void *host_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct host_memory *mem = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        mem->used -= old;
        return NULL;
    }
    if (mem->limit && nsize > old && mem->used + (nsize - old) > mem->limit)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p)
        mem->used = mem->used - old + nsize;
    return p;
}

static struct host_memory *host_memory_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* native.set_memory_limit(bytes or nil): ceiling on the state's total memory. */
static int l_set_memory_limit(lua_State *L)
{
    struct host_memory *mem = host_memory_of(L);
    lua_Integer extra = luaL_optinteger(L, 1, 0);
    luaL_argcheck(L, extra >= 0, 1, "negative limit");
    mem->limit = extra ? mem->used + (size_t)extra : 0;
    return 0;
}

/* ------------------------------------------------------------------------
 * Tensors: float32 arrays with a shape, as userdata.
 */
#define TENSOR_META "convgen.tensor"

typedef struct {
    convgen_npy_array a;
} tensor;

static int check_shape(lua_State *L, int i, long *shape, long *count);

static tensor *check_tensor(lua_State *L, int i)
{
    return luaL_checkudata(L, i, TENSOR_META);
}

const float *convgen__host_tensor(lua_State *L, int index, size_t *count)
{
    tensor *t = luaL_testudata(L, index, TENSOR_META);
    if (!t)
        return NULL;
    *count = (size_t)t->a.count;
    return t->a.data;
}

static int tensor_gc(lua_State *L)
{
    convgen_npy_free(&check_tensor(L, 1)->a);
    return 0;
}

/* Pushes a new tensor taking ownership of a (data freed on failure). */
static tensor *push_tensor(lua_State *L, convgen_npy_array *a)
{
    tensor *t = lua_newuserdatauv(L, sizeof *t, 0);
    t->a = *a;
    luaL_setmetatable(L, TENSOR_META);
    return t;
}

/* tensor:shape() -> {d0, d1, ...} */
static int tensor_shape(lua_State *L)
{
    tensor *t = check_tensor(L, 1);
    lua_createtable(L, t->a.rank, 0);
    for (int i = 0; i < t->a.rank; i++) {
        lua_pushinteger(L, t->a.shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* tensor:get(i) -> element i (0-based), as a Lua float */
static int tensor_get(lua_State *L)
{
    tensor *t = check_tensor(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2);
    luaL_argcheck(L, i >= 0 && i < t->a.count, 2, "index out of range");
    lua_pushnumber(L, t->a.data[i]);
    return 1;
}

/* tensor:reshaped(shape) -> a copy with another shape of the same element count */
static int tensor_reshaped(lua_State *L)
{
    tensor *t = check_tensor(L, 1);
    convgen_npy_array a;
    a.rank = check_shape(L, 2, a.shape, &a.count);
    luaL_argcheck(L, a.count == t->a.count, 2, "element count differs");
    a.data = malloc(a.count ? (size_t)a.count * sizeof(float) : 1);
    if (!a.data)
        return luaL_error(L, "out of memory");
    memcpy(a.data, t->a.data, (size_t)a.count * sizeof(float));
    push_tensor(L, &a);
    return 1;
}

/* tensor:packed(rows, columns, blocks) -> the matrix rows x columns laid out
 * tile by tile for SIMD strips: for each block {first, count, width, lanes},
 * count tiles of `width` floats per row, holding columns first + i*width
 * onwards (lanes of them; zeros after). The layout generated pack functions
 * produce (templates/pack.c.in). */
static int tensor_packed(lua_State *L)
{
    tensor *t = check_tensor(L, 1);
    lua_Integer rows = luaL_checkinteger(L, 2), columns = luaL_checkinteger(L, 3);
    luaL_checktype(L, 4, LUA_TTABLE);
    luaL_argcheck(L, rows > 0 && columns > 0 && rows * columns == t->a.count, 2, "shape mismatch");
    int nblocks = (int)luaL_len(L, 4);
    long total = 0;
    lua_Integer spec[16][4];
    luaL_argcheck(L, nblocks <= 16, 4, "too many blocks");
    for (int b = 0; b < nblocks; b++) {
        lua_geti(L, 4, b + 1);
        static const char *const fields[4] = {"first", "count", "width", "lanes"};
        for (int f = 0; f < 4; f++) {
            lua_getfield(L, -1, fields[f]);
            spec[b][f] = luaL_checkinteger(L, -1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        luaL_argcheck(L, spec[b][0] + (spec[b][1] - 1) * spec[b][2] + spec[b][3] <= columns, 4, "block out of range");
        total += (long)(spec[b][1] * rows * spec[b][2]);
    }
    convgen_npy_array a;
    a.rank = 1;
    a.shape[0] = total;
    a.count = total;
    a.data = calloc(total ? (size_t)total : 1, sizeof(float));
    if (!a.data)
        return luaL_error(L, "out of memory");
    float *out = a.data;
    for (int b = 0; b < nblocks; b++)
        for (lua_Integer i = 0; i < spec[b][1]; i++)
            for (lua_Integer r = 0; r < rows; r++, out += spec[b][2])
                for (lua_Integer j = 0; j < spec[b][3]; j++)
                    out[j] = t->a.data[r * columns + spec[b][0] + i * spec[b][2] + j];
    push_tensor(L, &a);
    return 1;
}

/* tensor:wino(ci, co) -> a 3x3 kernel [3][3][ci][co] transformed for the
 * wino microkernels: 16 x ci x co floats (convgen_uk_wino_pack, the
 * runtime's own, so that baked and packed-at-run-time kernels agree). */
static int tensor_wino(lua_State *L)
{
    tensor *t = check_tensor(L, 1);
    lua_Integer ci = luaL_checkinteger(L, 2), co = luaL_checkinteger(L, 3);
    luaL_argcheck(L, ci > 0 && co > 0 && co % 16 == 0 && 9 * ci * co == t->a.count, 2, "shape mismatch");
    convgen_npy_array a;
    a.rank = 1;
    a.shape[0] = 16 * ci * co;
    a.count = 16 * ci * co;
    a.data = calloc((size_t)a.count, sizeof(float));
    if (!a.data)
        return luaL_error(L, "out of memory");
    convgen_uk_wino_pack(t->a.data, (ptrdiff_t)ci, (ptrdiff_t)co, a.data);
    push_tensor(L, &a);
    return 1;
}

/* Writes v as a C float literal that reads back to the same float. */
static int float_literal(char *buf, size_t n, float v)
{
    if (isnan(v))
        return snprintf(buf, n, "NAN");
    if (isinf(v))
        return snprintf(buf, n, v > 0 ? "INFINITY" : "-INFINITY");
    int len = snprintf(buf, n, "%.9g", (double)v);
    if (!strpbrk(buf, ".e"))
        len += snprintf(buf + len, n - (size_t)len, ".0");
    return len + snprintf(buf + len, n - (size_t)len, "f");
}

/* tensor:literals(indent, per_line) -> "1.5f, -0.25f, ..." lines for a C initializer */
static int tensor_literals(lua_State *L)
{
    tensor *t = check_tensor(L, 1);
    const char *indent = luaL_checkstring(L, 2);
    lua_Integer per_line = luaL_checkinteger(L, 3);
    luaL_argcheck(L, per_line > 0, 3, "must be positive");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    char num[48];
    for (long i = 0; i < t->a.count; i++) {
        if (i % per_line == 0)
            luaL_addstring(&b, indent);
        float_literal(num, sizeof num, t->a.data[i]);
        luaL_addstring(&b, num);
        if (i + 1 < t->a.count)
            luaL_addstring(&b, (i + 1) % per_line == 0 ? ",\n" : ", ");
    }
    luaL_pushresult(&b);
    return 1;
}

/* native.float_literal(x) -> C literal of x rounded to float */
static int l_float_literal(lua_State *L)
{
    char num[48];
    float_literal(num, sizeof num, (float)luaL_checknumber(L, 1));
    lua_pushstring(L, num);
    return 1;
}

/* Reads a shape table {d0, d1, ...} at index i. */
static int check_shape(lua_State *L, int i, long *shape, long *count)
{
    luaL_checktype(L, i, LUA_TTABLE);
    int rank = (int)luaL_len(L, i);
    luaL_argcheck(L, rank <= CONVGEN_NPY_MAX_RANK, i, "rank too large");
    *count = 1;
    for (int k = 0; k < rank; k++) {
        lua_geti(L, i, k + 1);
        shape[k] = (long)luaL_checkinteger(L, -1);
        lua_pop(L, 1);
        luaL_argcheck(L, shape[k] >= 0 && (shape[k] == 0 || *count <= (1L << 40) / shape[k]), i, "bad size");
        *count *= shape[k];
    }
    return rank;
}

/* ------------------------------------------------------------------------
 * Files.
 */

/* native.read_file(path) -> text | nil, message */
static int l_read_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    unsigned char *data;
    size_t size;
    char err[256];
    if (convgen__read_file(path, &data, &size, err, sizeof err) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushlstring(L, (const char *)data, size);
    free(data);
    return 1;
}

/* native.write_file(path, text) -> true | nil, message (all or nothing) */
static int l_write_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t size;
    const char *text = luaL_checklstring(L, 2, &size);
    char err[256];
    if (convgen__write_file_atomic(path, text, size, err, sizeof err) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* native.write_temp(path, text) -> temporary file name beside path | nil, message;
 * returns false (no file) when path already holds exactly this text. */
static int l_write_temp(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t size;
    const char *text = luaL_checklstring(L, 2, &size);
    if (convgen__same_content(path, text, size)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    char err[256], *tmp;
    if (convgen__write_temp(path, text, size, &tmp, err, sizeof err) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushstring(L, tmp);
    free(tmp);
    return 1;
}

/* native.is_directory(path) -> true when path names a directory */
static int l_is_directory(lua_State *L)
{
    struct stat st;
    lua_pushboolean(L, stat(luaL_checkstring(L, 1), &st) == 0 && S_ISDIR(st.st_mode));
    return 1;
}

/* native.read_npy(path) -> tensor | nil, message */
static int l_read_npy(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    convgen_npy_array a;
    char err[256];
    if (convgen_npy_load(path, &a, err, sizeof err) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    push_tensor(L, &a);
    return 1;
}

/* A model read for native.read_model, as userdata so that whatever Lua
 * raises while the tables are built (out of memory), __gc frees the rest. */
#define MODEL_META "convgen.model_file"

static int model_gc(lua_State *L)
{
    convgen__model_free(luaL_checkudata(L, 1, MODEL_META));
    return 0;
}

/* native.read_model(path) -> model | nil, message
 * model = { format = "keras" | "h5", config = <the model's config JSON text>,
 *           weights = { [layer name] = { tensor, ... }, ... } }
 * Every layer is listed, one without weights with an empty list; tensors in
 * Keras's order (layer.weights). In a .keras file a layer inside a nested
 * model is named "outer/inner"; in a legacy .h5 file a nested model is one
 * entry holding all its sublayers' tensors (see runtime/model_file.h). */
static int l_read_model(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    convgen__model *model = lua_newuserdatauv(L, sizeof *model, 0);
    memset(model, 0, sizeof *model);
    luaL_setmetatable(L, MODEL_META);
    char err[1024];
    if (convgen__model_read(path, model, err, sizeof err) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_createtable(L, 0, 3);
    lua_pushstring(L, model->format == CONVGEN__MODEL_KERAS ? "keras" : "h5");
    lua_setfield(L, -2, "format");
    lua_pushlstring(L, model->config, model->config_size);
    lua_setfield(L, -2, "config");
    lua_createtable(L, 0, model->layer_count);
    for (int i = 0; i < model->layer_count; i++) {
        convgen__model_layer *layer = &model->layers[i];
        lua_createtable(L, layer->count, 0);
        for (int k = 0; k < layer->count; k++) {
            push_tensor(L, &layer->tensors[k]);
            layer->tensors[k].data = NULL; /* the tensor owns it now */
            lua_rawseti(L, -2, k + 1);
        }
        lua_setfield(L, -2, layer->name);
    }
    lua_setfield(L, -2, "weights");
    convgen__model_free(model); /* what is left: names and the config, copied */
    return 1;
}

/* native.write_npy(path, tensor) -> true | nil, message */
static int l_write_npy(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    tensor *t = check_tensor(L, 2);
    char err[256];
    if (convgen_npy_save(path, t->a.rank, t->a.shape, t->a.data, err, sizeof err) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* native.template(name) -> text of an embedded template, or nil */
static int l_template(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    for (const struct convgen__embedded *e = convgen__embedded_files; e->name; e++) {
        if (strcmp(e->name, name) == 0) {
            lua_pushlstring(L, e->text, e->size);
            return 1;
        }
    }
    luaL_pushfail(L);
    return 1;
}

/* ------------------------------------------------------------------------
 * JIT: compile generated source with libtcc and run it once.
 */
typedef void (*layer_fn)(const float *input, float *output, int batch, const float *const weights[]);

/* When the code reads packed weights (packed_size > 0): lays them out with
 * its symbol_pack into a new buffer, stored as weights[nweights]. Returns the
 * buffer to free (NULL when none was needed), or sets *failed. */
static float *pack_weights(convgen__code *code, const char *symbol, const float *weights[], int nweights,
                           long packed_size, int *failed)
{
    *failed = 0;
    if (packed_size <= 0)
        return NULL;
    char pack_name[256];
    snprintf(pack_name, sizeof pack_name, "%s_pack", symbol);
    void *address = convgen__code_symbol(code, pack_name);
    float *packed = malloc((size_t)packed_size * sizeof(float));
    if (!address || !packed || nweights >= 8) {
        free(packed);
        *failed = 1;
        return NULL;
    }
    void (*pack)(const float *const *, float *);
    memcpy(&pack, &address, sizeof pack);
    pack(weights, packed);
    weights[nweights] = packed;
    return packed;
}

/* native.jit_run(source, symbol, input, output_shape, weights, backend, packed_size) -> tensor | nil, message
 * Compiles with backend "tcc" or "cc" and runs once; the function must take
 * weights at run time (packed by symbol_pack when packed_size > 0); batch is
 * input's first axis. */
static int l_jit_run(lua_State *L)
{
    const char *source = luaL_checkstring(L, 1);
    const char *symbol = luaL_checkstring(L, 2);
    tensor *in = check_tensor(L, 3);
    convgen_npy_array out;
    out.rank = check_shape(L, 4, out.shape, &out.count);
    luaL_checktype(L, 5, LUA_TTABLE);
    static const char *const backends[] = {"tcc", "cc", NULL};
    int backend = luaL_checkoption(L, 6, "tcc", backends) == 0 ? CONVGEN__BACKEND_TCC : CONVGEN__BACKEND_CC;
    int nweights = (int)luaL_len(L, 5);
    const float *weights[8] = {0};
    luaL_argcheck(L, nweights <= 8, 5, "too many weights");
    for (int i = 0; i < nweights; i++) {
        lua_geti(L, 5, i + 1);
        weights[i] = check_tensor(L, -1)->a.data;
        lua_pop(L, 1);
    }
    luaL_argcheck(L, in->a.rank > 0 && out.rank > 0 && in->a.shape[0] == out.shape[0], 4, "batch mismatch");
    luaL_argcheck(L, in->a.shape[0] <= 0x7fffffff, 3, "batch too large");
    char err[4096];
    int kind;
    convgen__code *code = convgen__code_compile(source, symbol, backend, &kind, err, sizeof err);
    if (!code) {
        luaL_pushfail(L);
        lua_pushfstring(L, "%s: %s", backends[backend], err);
        return 2;
    }
    out.data = calloc(out.count ? (size_t)out.count : 1, sizeof(float));
    if (!out.data) {
        convgen__code_free(code);
        return luaL_error(L, "out of memory");
    }
    int failed;
    float *packed = pack_weights(code, symbol, weights, nweights, (long)luaL_optinteger(L, 7, 0), &failed);
    if (failed) {
        free(out.data);
        convgen__code_free(code);
        return luaL_error(L, "cannot pack the weights");
    }
    void *address = convgen__code_function(code);
    layer_fn fn;
    memcpy(&fn, &address, sizeof fn);
    fn(in->a.data, out.data, (int)in->a.shape[0], weights);
    free(packed);
    convgen__code_free(code);
    push_tensor(L, &out);
    return 1;
}

/* native.cpu_target() -> the best code target for this CPU ("avx2" or "scalar") */
static int l_cpu_target(lua_State *L)
{
    lua_pushstring(L, convgen__uk_cpu_runs(CONVGEN__UK_AVX2) ? "avx2" : "scalar");
    return 1;
}

/* native.random_tensor(shape, seed) -> uniform floats in [-1, 1), deterministic */
/* native.tensor_from(shape, values) -> a tensor of the numbers in values (a
 * sequence of prod(shape) numbers, C order). Folding batch normalization makes
 * its small vectors this way. */
static int l_tensor_from(lua_State *L)
{
    convgen_npy_array a;
    a.rank = check_shape(L, 1, a.shape, &a.count);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_argcheck(L, luaL_len(L, 2) == a.count, 2, "as many values as the shape holds");
    a.data = malloc(a.count ? (size_t)a.count * sizeof(float) : 1);
    if (!a.data)
        return luaL_error(L, "out of memory");
    for (long i = 0; i < a.count; i++) {
        lua_geti(L, 2, i + 1);
        int ok;
        lua_Number v = lua_tonumberx(L, -1, &ok);
        lua_pop(L, 1);
        if (!ok) {
            free(a.data);
            return luaL_argerror(L, 2, "numbers only");
        }
        a.data[i] = (float)v;
    }
    push_tensor(L, &a);
    return 1;
}

/* tensor:scaled_columns(scale) -> a copy with element i multiplied by
 * scale[i % n], n = scale's element count: every Keras kernel keeps its output
 * channels on the fastest axes, so this scales each output channel. */
static int tensor_scaled_columns(lua_State *L)
{
    tensor *t = check_tensor(L, 1), *scale = check_tensor(L, 2);
    long n = scale->a.count;
    luaL_argcheck(L, n > 0 && t->a.count % n == 0, 2, "the element count must divide the tensor's");
    convgen_npy_array a = t->a;
    a.data = malloc(a.count ? (size_t)a.count * sizeof(float) : 1);
    if (!a.data)
        return luaL_error(L, "out of memory");
    for (long i = 0; i < a.count; i++)
        a.data[i] = (float)((double)t->a.data[i] * (double)scale->a.data[i % n]);
    push_tensor(L, &a);
    return 1;
}

/* native.isatty(fd) -> whether fd is a terminal (progress is shown on one only) */
static int l_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

static int l_random_tensor(lua_State *L)
{
    convgen_npy_array a;
    a.rank = check_shape(L, 1, a.shape, &a.count);
    unsigned long long state = (unsigned long long)luaL_optinteger(L, 2, 1);
    a.data = malloc(a.count ? (size_t)a.count * sizeof(float) : 1);
    if (!a.data)
        return luaL_error(L, "out of memory");
    for (long i = 0; i < a.count; i++) {
        unsigned long long z = (state += 0x9E3779B97F4A7C15ull); /* splitmix64 */
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        a.data[i] = (float)((double)(z >> 40) / (double)(1ull << 23) - 1.0);
    }
    push_tensor(L, &a);
    return 1;
}

static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* native.bench(source, symbol, input_count, output_count, weights, backend, min_time, packed_size)
 *   -> median seconds per call, calls | nil, message
 * Compiles like jit_run, packs the weights when the code reads them packed
 * (symbol_pack), then times calls on batch 1 for at least min_time seconds. */
static float *aligned_zeros(lua_Integer n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (size_t)(n > 0 ? n : 1) * sizeof(float)) != 0)
        return NULL;
    memset(p, 0, (size_t)(n > 0 ? n : 1) * sizeof(float));
    return p;
}

static int l_bench(lua_State *L)
{
    const char *source = luaL_checkstring(L, 1);
    const char *symbol = luaL_checkstring(L, 2);
    lua_Integer in_count = luaL_checkinteger(L, 3), out_count = luaL_checkinteger(L, 4);
    luaL_checktype(L, 5, LUA_TTABLE);
    static const char *const backends[] = {"tcc", "cc", NULL};
    int backend = luaL_checkoption(L, 6, "tcc", backends) == 0 ? CONVGEN__BACKEND_TCC : CONVGEN__BACKEND_CC;
    double min_time = luaL_checknumber(L, 7);
    lua_Integer packed_size = luaL_checkinteger(L, 8);
    int nweights = (int)luaL_len(L, 5);
    luaL_argcheck(L, nweights <= 7, 5, "too many weights");
    const float *weights[8] = {0};
    for (int i = 0; i < nweights; i++) {
        lua_geti(L, 5, i + 1);
        weights[i] = check_tensor(L, -1)->a.data;
        lua_pop(L, 1);
    }
    char err[4096];
    int kind;
    convgen__code *code = convgen__code_compile(source, symbol, backend, &kind, err, sizeof err);
    if (!code) {
        luaL_pushfail(L);
        lua_pushfstring(L, "%s: %s", backends[backend == CONVGEN__BACKEND_TCC ? 0 : 1], err);
        return 2;
    }
    /* 64-byte aligned, zeroed tensors (make bench gives every contender the same) */
    float *in = aligned_zeros(in_count), *out = aligned_zeros(out_count);
    int failed = 0;
    float *packed = in && out ? pack_weights(code, symbol, weights, nweights, (long)packed_size, &failed) : NULL;
    if (!in || !out || failed) {
        free(in);
        free(out);
        convgen__code_free(code);
        return luaL_error(L, "out of memory, or the weights cannot be packed");
    }
    for (lua_Integer i = 0; i < in_count; i++)
        in[i] = (float)((int)(i % 13) - 6) * 0.1f;
    void *address = convgen__code_function(code);
    layer_fn fn;
    memcpy(&fn, &address, sizeof fn);
    fn(in, out, 1, weights); /* warm */
    double times[10000];
    int n = 0;
    double start = seconds_now();
    while (n < 10000 && (n < 5 || seconds_now() - start < min_time)) {
        double t0 = seconds_now();
        fn(in, out, 1, weights);
        times[n++] = seconds_now() - t0;
    }
    qsort(times, (size_t)n, sizeof times[0], compare_doubles);
    free(in);
    free(out);
    free(packed);
    convgen__code_free(code);
    lua_pushnumber(L, times[n / 2]);
    lua_pushinteger(L, n);
    return 2;
}

/* native.jit_symbols() -> names of the host functions generated code may call */
static int l_jit_symbols(lua_State *L)
{
    lua_newtable(L);
    for (int i = 0; convgen__jit_symbol_name(i); i++) {
        lua_pushstring(L, convgen__jit_symbol_name(i));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static const luaL_Reg tensor_methods[] = {
    {"shape", tensor_shape}, {"get", tensor_get},
    {"literals", tensor_literals}, {"reshaped", tensor_reshaped}, {"packed", tensor_packed}, {"wino", tensor_wino},
    {"scaled_columns", tensor_scaled_columns}, {NULL, NULL},
};

static const luaL_Reg native_functions[] = {
    {"read_file", l_read_file},   {"write_file", l_write_file},
    {"write_temp", l_write_temp}, {"is_directory", l_is_directory},
    {"read_npy", l_read_npy},     {"write_npy", l_write_npy},
    {"read_model", l_read_model},
    {"float_literal", l_float_literal},
    {"template", l_template},     {"jit_run", l_jit_run},
    {"jit_symbols", l_jit_symbols}, {"cpu_target", l_cpu_target},
    {"random_tensor", l_random_tensor}, {"tensor_from", l_tensor_from}, {"isatty", l_isatty}, {"bench", l_bench}, {"set_memory_limit", l_set_memory_limit},
    {NULL, NULL},
};

static int open_native(lua_State *L)
{
    luaL_newmetatable(L, TENSOR_META);
    luaL_newlib(L, tensor_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, tensor_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newmetatable(L, MODEL_META);
    lua_pushcfunction(L, model_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newlib(L, native_functions);
    return 1;
}

/* ------------------------------------------------------------------------
 * Embedded modules, found through package.preload.
 */
static int load_embedded(lua_State *L)
{
    const struct convgen__embedded *e = lua_touserdata(L, lua_upvalueindex(1));
    char chunk[256];
    snprintf(chunk, sizeof chunk, "@%s", e->path);
    if (luaL_loadbufferx(L, e->text, e->size, chunk, "t") != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, e->name);
    lua_call(L, 1, 1);
    return 1;
}

static int host_setup(lua_State *L)
{
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, open_native);
    lua_setfield(L, -2, "convgen.native");
    for (const struct convgen__embedded *e = convgen__embedded_files; e->name; e++) {
        if (strncmp(e->name, "templates/", 10) == 0)
            continue;
        lua_pushlightuserdata(L, (void *)e);
        lua_pushcclosure(L, load_embedded, 1);
        lua_setfield(L, -2, e->name);
    }
    lua_pop(L, 1);
    return 0;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

lua_State *convgen__host_new(char *err, size_t err_size)
{
    struct host_memory *mem = calloc(1, sizeof *mem);
    lua_State *L = mem ? lua_newstate(host_alloc, mem) : NULL;
    if (!L) {
        free(mem);
        snprintf(err, err_size, "cannot create a Lua state: out of memory");
        return NULL;
    }
    lua_pushcfunction(L, host_setup);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        snprintf(err, err_size, "%s", lua_tostring(L, -1));
        convgen__host_close(L);
        return NULL;
    }
    return L;
}

void convgen__host_close(lua_State *L)
{
    if (!L)
        return;
    void *mem;
    lua_getallocf(L, &mem);
    lua_close(L);
    free(mem);
}

int convgen__host_call(lua_State *L, const char *module, const char *function, int nargs, int nresults)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base + 1); /* handler, args... */
    lua_getglobal(L, "require");
    lua_pushstring(L, module);
    int status = lua_pcall(L, 1, 1, base + 1);
    if (status != LUA_OK) {
        lua_replace(L, base + 1);
        lua_settop(L, base + 1);
        return status;
    }
    lua_getfield(L, -1, function);
    lua_remove(L, -2);
    lua_insert(L, base + 2); /* handler, function, args... */
    status = lua_pcall(L, nargs, nresults, base + 1);
    lua_remove(L, base + 1);
    return status;
}
