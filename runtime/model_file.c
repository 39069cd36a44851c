/* model_file.c: Keras model files (.keras archives, legacy .h5) read with
 * libzip and libhdf5: the config JSON text and each layer's weights. */
#define _POSIX_C_SOURCE 200809L
#include "model_file.h"

#include <hdf5.h>
#include <zip.h>

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds on what a file may make us do, so a damaged or hostile file fails
 * with a message instead of exhausting memory or the stack. */
#define MAX_TENSOR_ELEMENTS 2147483647L     /* per tensor, as for spec tensors */
#define MAX_CONFIG_BYTES (256L << 20)       /* config.json, model_config */
#define MAX_WEIGHTS_BYTES (64LL << 30)      /* model.weights.h5 inside an archive */
#define BOMB_FLOOR_BYTES (1LL << 30)        /* above this a member must not expand */
#define BOMB_MAX_EXPANSION 100              /*   more than this from its compressed size */
#define MAX_DEPTH 64                        /* nesting of groups in a .keras weights file */
#define MAX_OBJECTS (1L << 22)              /* groups and datasets visited */
#define MAX_NAMES (1L << 20)                /* entries of a name list attribute */

static const char ZIP_MAGIC[4] = {'P', 'K', 3, 4};
static const char ZIP_EMPTY_MAGIC[4] = {'P', 'K', 5, 6};
static const char HDF5_MAGIC[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};

/* libhdf5 (its serial build) keeps global state and is not thread-safe:
 * every use goes through this lock. */
static pthread_mutex_t hdf5_lock = PTHREAD_MUTEX_INITIALIZER;

/* One read in progress: where we are, for messages, and the model built so far. */
struct reader {
    const char *path;     /* the file, as given */
    const char *member;   /* the archive member being read, or NULL */
    char *err;
    size_t err_size;
    int failed;
    convgen__model model;
    int layer_cap;
    long objects;         /* groups and datasets visited */
    hid_t gapl, dapl;     /* access lists that follow hard links only */
};

/* ------------------------------------------------------------------------
 * Messages: "<file>: [<member>: ][<object>: ]<what>", text from the file
 * with control characters escaped so it cannot break the line or drive a
 * terminal.
 */
static void append_printable(char *out, size_t size, size_t *len, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p && *len + 5 < size; p++) {
        if (*p < 0x20 || *p == 0x7f)
            *len += (size_t)snprintf(out + *len, size - *len, "\\x%02x", *p);
        else
            out[(*len)++] = (char)*p;
    }
    out[*len] = 0;
}

/* Records the first failure; object (a dataset or group path) may be NULL. */
static void fail(struct reader *r, const char *object, const char *format, ...)
{
    if (r->failed)
        return;
    r->failed = 1;
    char what[512];
    va_list ap;
    va_start(ap, format);
    vsnprintf(what, sizeof what, format, ap);
    va_end(ap);
    int n = snprintf(r->err, r->err_size, "%s: ", r->path);
    size_t len = n < 0 ? 0 : (size_t)n < r->err_size ? (size_t)n : r->err_size - 1;
    if (r->member) {
        append_printable(r->err, r->err_size, &len, r->member);
        append_printable(r->err, r->err_size, &len, ": ");
    }
    if (object) {
        append_printable(r->err, r->err_size, &len, *object ? object : "/");
        append_printable(r->err, r->err_size, &len, ": ");
    }
    append_printable(r->err, r->err_size, &len, what);
}

/* The most specific description on HDF5's error stack (then clears it). */
struct hdf5_reason {
    char text[200];
};

static herr_t take_innermost(unsigned n, const H5E_error2_t *e, void *data)
{
    struct hdf5_reason *reason = data;
    (void)n;
    if (!reason->text[0] && e->desc && e->desc[0])
        snprintf(reason->text, sizeof reason->text, "%s", e->desc);
    return 0;
}

static const char *hdf5_reason(struct hdf5_reason *reason)
{
    reason->text[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, take_innermost, reason);
    H5Eclear2(H5E_DEFAULT);
    if (!reason->text[0])
        snprintf(reason->text, sizeof reason->text, "unknown HDF5 error");
    return reason->text;
}

/* ------------------------------------------------------------------------
 * The model under construction.
 */
static void free_layer(convgen__model_layer *layer)
{
    free(layer->name);
    for (int i = 0; layer->tensors && i < layer->count; i++)
        convgen_npy_free(&layer->tensors[i]);
    free(layer->tensors);
}

void convgen__model_free(convgen__model *model)
{
    if (!model)
        return;
    free(model->config);
    for (int i = 0; i < model->layer_count; i++)
        free_layer(&model->layers[i]);
    free(model->layers);
    memset(model, 0, sizeof *model);
}

/* Adds a layer named key with room for count tensors (zeroed); NULL on failure. */
static convgen__model_layer *add_layer(struct reader *r, const char *key, int count, const char *object)
{
    convgen__model *m = &r->model;
    for (int i = 0; i < m->layer_count; i++) {
        if (strcmp(m->layers[i].name, key) == 0) {
            fail(r, object, "a second layer named '%s' (layer names must be unique)", key);
            return NULL;
        }
    }
    if (m->layer_count == r->layer_cap) {
        int cap = r->layer_cap ? r->layer_cap * 2 : 16;
        convgen__model_layer *bigger = realloc(m->layers, (size_t)cap * sizeof *bigger);
        if (!bigger) {
            fail(r, object, "out of memory");
            return NULL;
        }
        m->layers = bigger;
        r->layer_cap = cap;
    }
    convgen__model_layer layer = {NULL, 0, NULL};
    layer.name = strdup(key);
    layer.tensors = calloc(count > 0 ? (size_t)count : 1, sizeof *layer.tensors);
    if (!layer.name || !layer.tensors) {
        free(layer.name);
        free(layer.tensors);
        fail(r, object, "out of memory");
        return NULL;
    }
    layer.count = count; /* tensors not read yet have data NULL: freeing them is a no-op */
    m->layers[m->layer_count++] = layer;
    return &m->layers[m->layer_count - 1];
}

/* ------------------------------------------------------------------------
 * HDF5: datasets as tensors, string attributes, group listings.
 */

/* Joins "a" and "b" as "a/b" (just "b" when a is empty); malloc'd. */
static char *join_path(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *s = malloc(na + nb + 2);
    if (!s)
        return NULL;
    if (na) {
        memcpy(s, a, na);
        s[na++] = '/';
    }
    memcpy(s + na, b, nb + 1);
    return s;
}

static void free_strings(char **items, long count)
{
    for (long i = 0; i < count; i++)
        free(items[i]);
    free(items);
}

/* Reads the attribute `name` of obj as strings: a scalar or an array of
 * fixed- or variable-length strings (an empty array of any type is an
 * empty list). Returns 0 with *items (count malloc'd strings), or -1. */
static int read_strings_one(struct reader *r, hid_t obj, const char *object, const char *name, char ***items,
                            long *count)
{
    int status = -1;
    struct hdf5_reason why;
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t space = attr < 0 ? -1 : H5Aget_space(attr);
    hid_t type = space < 0 ? -1 : H5Aget_type(attr);
    hid_t memtype = -1;
    void *raw = NULL;
    char **out = NULL;
    hssize_t n = type < 0 ? -1 : H5Sget_simple_extent_npoints(space);
    if (n < 0) {
        fail(r, object, "cannot read attribute %s: %s", name, hdf5_reason(&why));
        goto done;
    }
    if (n > MAX_NAMES) {
        fail(r, object, "attribute %s has %lld elements; at most %ld are supported", name, (long long)n, MAX_NAMES);
        goto done;
    }
    out = calloc((size_t)n + 1, sizeof *out);
    if (!out) {
        fail(r, object, "out of memory");
        goto done;
    }
    if (n == 0) { /* an empty list; Keras 3 writes it as a float64 array */
        status = 0;
        goto done;
    }
    if (H5Tget_class(type) != H5T_STRING) {
        fail(r, object, "attribute %s is not text", name);
        goto done;
    }
    memtype = H5Tcopy(H5T_C_S1);
    htri_t variable = H5Tis_variable_str(type);
    size_t width = H5Tget_size(type);
    if (memtype < 0 || variable < 0 || width == 0 || H5Tset_cset(memtype, H5Tget_cset(type)) < 0) {
        fail(r, object, "cannot read attribute %s: %s", name, hdf5_reason(&why));
        goto done;
    }
    if (variable) {
        char **strings = calloc((size_t)n, sizeof *strings);
        if (!strings || H5Tset_size(memtype, H5T_VARIABLE) < 0) {
            free(strings);
            fail(r, object, "out of memory");
            goto done;
        }
        if (H5Aread(attr, memtype, strings) < 0) {
            free(strings);
            fail(r, object, "cannot read attribute %s: %s", name, hdf5_reason(&why));
            goto done;
        }
        int ok = 1;
        for (hssize_t i = 0; i < n; i++) {
            if (ok && !(out[i] = strdup(strings[i] ? strings[i] : "")))
                ok = 0;
            H5free_memory(strings[i]);
        }
        free(strings);
        if (!ok) {
            fail(r, object, "out of memory");
            goto done;
        }
    } else {
        if (width > (size_t)MAX_CONFIG_BYTES / (size_t)n) {
            fail(r, object, "attribute %s is larger than %ld bytes", name, MAX_CONFIG_BYTES);
            goto done;
        }
        H5T_str_t pad = H5Tget_strpad(type);
        raw = malloc(width * (size_t)n);
        if (!raw || H5Tset_size(memtype, width) < 0 || H5Tset_strpad(memtype, pad) < 0) {
            fail(r, object, "out of memory");
            goto done;
        }
        if (H5Aread(attr, memtype, raw) < 0) {
            fail(r, object, "cannot read attribute %s: %s", name, hdf5_reason(&why));
            goto done;
        }
        for (hssize_t i = 0; i < n; i++) {
            const char *s = (const char *)raw + (size_t)i * width;
            size_t len = 0;
            while (len < width && s[len])
                len++;
            while (pad == H5T_STR_SPACEPAD && len > 0 && s[len - 1] == ' ')
                len--;
            if (!(out[i] = malloc(len + 1))) {
                fail(r, object, "out of memory");
                goto done;
            }
            memcpy(out[i], s, len);
            out[i][len] = 0;
        }
    }
    status = 0;
done:
    if (status == 0) {
        *items = out;
        *count = (long)n;
    } else if (out) {
        free_strings(out, n > 0 ? (long)n : 0);
    }
    free(raw);
    if (memtype >= 0)
        H5Tclose(memtype);
    if (type >= 0)
        H5Tclose(type);
    if (space >= 0)
        H5Sclose(space);
    if (attr >= 0)
        H5Aclose(attr);
    return status;
}

/* Reads the string attribute `name` of obj: its elements (a scalar or an
 * array; fixed- or variable-length strings) as malloc'd strings. Keras
 * writes a name list too long for one attribute as name0, name1, ...:
 * those are read and joined when `name` itself is absent. Returns 0; 1 when
 * there is no such attribute at all (nothing recorded); -1 on failure. */
static int read_strings(struct reader *r, hid_t obj, const char *object, const char *name, char ***items, long *count)
{
    *items = NULL;
    *count = 0;
    htri_t exists = H5Aexists(obj, name);
    if (exists < 0) {
        struct hdf5_reason why;
        fail(r, object, "cannot read attribute %s: %s", name, hdf5_reason(&why));
        return -1;
    }
    if (exists)
        return read_strings_one(r, obj, object, name, items, count);
    /* Chunked: name0, name1, ... */
    for (int chunk = 0;; chunk++) {
        char part[96];
        snprintf(part, sizeof part, "%s%d", name, chunk);
        exists = H5Aexists(obj, part);
        if (exists <= 0) {
            if (exists < 0) {
                struct hdf5_reason why;
                fail(r, object, "cannot read attribute %s: %s", part, hdf5_reason(&why));
            }
            return exists < 0 ? -1 : chunk == 0 ? 1 : 0;
        }
        char **more, **joined = NULL;
        long n;
        if (read_strings_one(r, obj, object, part, &more, &n) != 0) {
            free_strings(*items, *count);
            *items = NULL;
            *count = 0;
            return -1;
        }
        if (*count + n > MAX_NAMES)
            fail(r, object, "attribute %s lists more than %ld names", name, MAX_NAMES);
        else if (!(joined = realloc(*items, (size_t)(*count + n + 1) * sizeof *joined)))
            fail(r, object, "out of memory");
        if (!joined) {
            free_strings(more, n);
            free_strings(*items, *count);
            *items = NULL;
            *count = 0;
            return -1;
        }
        memcpy(joined + *count, more, (size_t)n * sizeof *more);
        free(more);
        *items = joined;
        *count += n;
    }
}

/* Reads the one-string attribute `name` of obj into *text (malloc'd).
 * Returns 0, 1 when absent (nothing recorded), -1 on failure. */
static int read_text(struct reader *r, hid_t obj, const char *object, const char *name, char **text, size_t *size)
{
    char **items;
    long n;
    int status = read_strings(r, obj, object, name, &items, &n);
    if (status != 0)
        return status;
    if (n != 1) {
        free_strings(items, n);
        fail(r, object, "attribute %s holds %ld strings, expected one", name, n);
        return -1;
    }
    *text = items[0];
    *size = strlen(items[0]);
    free(items);
    return 0;
}

/* The dtype of a refused dataset, in NumPy's words where there is one. */
static void describe_type(hid_t dset, hid_t type, char *out, size_t size)
{
    /* Keras marks a bfloat16 variable with a dtype attribute. */
    if (H5Aexists(dset, "dtype") > 0) {
        struct reader quiet = {0};
        char buffer[8], *text = NULL;
        size_t n;
        quiet.path = "";
        quiet.err = buffer;
        quiet.err_size = sizeof buffer;
        if (read_text(&quiet, dset, NULL, "dtype", &text, &n) == 0) {
            size_t len = 0;
            out[0] = 0;
            append_printable(out, size, &len, text);
            free(text);
            return;
        }
    }
    H5Eclear2(H5E_DEFAULT);
    size_t bits = H5Tget_size(type) * 8;
    switch (H5Tget_class(type)) {
    case H5T_INTEGER:
        snprintf(out, size, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
        break;
    case H5T_FLOAT:
        snprintf(out, size, "float%zu%s", bits, bits == 32 || bits == 64 ? " (not IEEE 754)" : "");
        break;
    case H5T_STRING: snprintf(out, size, "string"); break;
    case H5T_ENUM: snprintf(out, size, "enum (bool?)"); break;
    case H5T_COMPOUND: snprintf(out, size, "compound (complex?)"); break;
    case H5T_BITFIELD: snprintf(out, size, "bitfield"); break;
    case H5T_OPAQUE: snprintf(out, size, "opaque"); break;
    case H5T_ARRAY: snprintf(out, size, "array"); break;
    case H5T_VLEN: snprintf(out, size, "variable-length"); break;
    case H5T_REFERENCE: snprintf(out, size, "reference"); break;
    default: snprintf(out, size, "unknown"); break;
    }
}

/* Reads the dataset `name` (relative to loc; shown as object) into *out:
 * float32 as is, float64 converted. Returns 0 or -1. */
static int read_tensor(struct reader *r, hid_t loc, const char *name, const char *object, convgen_npy_array *out)
{
    int status = -1;
    struct hdf5_reason why;
    hid_t dset = -1, type = -1, space = -1;
    double *wide = NULL;
    float *data = NULL;
    if (++r->objects > MAX_OBJECTS) {
        fail(r, object, "more than %ld groups and datasets", MAX_OBJECTS);
        return -1;
    }
    dset = H5Dopen2(loc, name, r->dapl);
    if (dset < 0) {
        fail(r, object, "cannot open the dataset: %s", hdf5_reason(&why));
        goto done;
    }
    type = H5Dget_type(dset);
    space = H5Dget_space(dset);
    if (type < 0 || space < 0) {
        fail(r, object, "cannot read: %s", hdf5_reason(&why));
        goto done;
    }
    int wide_floats = 0;
    size_t type_size = H5Tget_size(type);
    if (H5Tget_class(type) == H5T_FLOAT && type_size == 4 &&
        (H5Tequal(type, H5T_IEEE_F32LE) > 0 || H5Tequal(type, H5T_IEEE_F32BE) > 0)) {
        wide_floats = 0;
    } else if (H5Tget_class(type) == H5T_FLOAT && type_size == 8 &&
               (H5Tequal(type, H5T_IEEE_F64LE) > 0 || H5Tequal(type, H5T_IEEE_F64BE) > 0)) {
        wide_floats = 1;
    } else {
        char dtype[64];
        describe_type(dset, type, dtype, sizeof dtype);
        fail(r, object, "dtype %s is not supported (float32 or float64 only)", dtype);
        goto done;
    }
    H5S_class_t space_class = H5Sget_simple_extent_type(space);
    int rank = space_class == H5S_SCALAR ? 0 : H5Sget_simple_extent_ndims(space);
    if (space_class != H5S_SCALAR && space_class != H5S_SIMPLE) {
        fail(r, object, "holds no data (empty dataspace)");
        goto done;
    }
    if (rank < 0 || rank > CONVGEN_NPY_MAX_RANK) {
        fail(r, object, "has %d axes; at most %d are supported", rank, CONVGEN_NPY_MAX_RANK);
        goto done;
    }
    hsize_t dims[CONVGEN_NPY_MAX_RANK];
    if (rank > 0 && H5Sget_simple_extent_dims(space, dims, NULL) != rank) {
        fail(r, object, "cannot read its shape: %s", hdf5_reason(&why));
        goto done;
    }
    long count = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] > (hsize_t)MAX_TENSOR_ELEMENTS ||
            (dims[i] > 0 && (hsize_t)count > (hsize_t)MAX_TENSOR_ELEMENTS / dims[i])) {
            char shape[256];
            int len = 0;
            for (int k = 0; k < rank && len < (int)sizeof shape - 24; k++)
                len += snprintf(shape + len, sizeof shape - (size_t)len, "%s%llu", k ? ", " : "",
                                (unsigned long long)dims[k]);
            fail(r, object, "shape (%s) is too large: at most %ld elements per tensor are supported", shape,
                 MAX_TENSOR_ELEMENTS);
            goto done;
        }
        count *= (long)dims[i];
    }
    /* A dataset whose data was never written reads as its fill value: a
     * tiny file could claim gigabytes. Keras always writes its data. */
    if (count > 0 && H5Dget_storage_size(dset) == 0) {
        fail(r, object, "holds no stored data for its %ld elements", count);
        goto done;
    }
    data = malloc(count > 0 ? (size_t)count * sizeof *data : 1);
    if (wide_floats)
        wide = malloc(count > 0 ? (size_t)count * sizeof *wide : 1);
    if (!data || (wide_floats && !wide)) {
        fail(r, object, "out of memory for %ld elements", count);
        goto done;
    }
    if (count > 0) {
        herr_t read = wide_floats ? H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, wide)
                                  : H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
        if (read < 0) {
            fail(r, object, "cannot read its data: %s", hdf5_reason(&why));
            goto done;
        }
    }
    if (wide_floats) {
        /* Out of float's range the conversion is undefined: round to infinity as NumPy does. */
        for (long i = 0; i < count; i++) {
            double d = wide[i];
            data[i] = d > FLT_MAX ? INFINITY : d < -FLT_MAX ? -INFINITY : (float)d;
        }
    }
    out->rank = rank;
    for (int i = 0; i < CONVGEN_NPY_MAX_RANK; i++)
        out->shape[i] = i < rank ? (long)dims[i] : 0;
    out->count = count;
    out->data = data;
    data = NULL;
    status = 0;
done:
    free(data);
    free(wide);
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    if (dset >= 0)
        H5Dclose(dset);
    return status;
}

/* The names of a group's members, sorted by name, for walking it. Only hard
 * links are accepted: a soft link could make a cycle, an external one
 * point into another file. */
struct name_list {
    char **names;
    long count, cap;
    struct reader *r;
    const char *object;
};

static herr_t collect_name(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    struct name_list *list = data;
    (void)group;
    if (info->type != H5L_TYPE_HARD) {
        char *path = join_path(list->object, name);
        fail(list->r, path ? path : list->object, "a soft or external link, which Keras does not write");
        free(path);
        return -1;
    }
    if (list->count >= MAX_NAMES) {
        fail(list->r, list->object, "more than %ld members", MAX_NAMES);
        return -1;
    }
    if (list->count == list->cap) {
        long cap = list->cap ? list->cap * 2 : 16;
        char **bigger = realloc(list->names, (size_t)cap * sizeof *bigger);
        if (!bigger) {
            fail(list->r, list->object, "out of memory");
            return -1;
        }
        list->names = bigger;
        list->cap = cap;
    }
    if (!(list->names[list->count] = strdup(name))) {
        fail(list->r, list->object, "out of memory");
        return -1;
    }
    list->count++;
    return 0;
}

static int list_members(struct reader *r, hid_t group, const char *object, struct name_list *list)
{
    memset(list, 0, sizeof *list);
    list->r = r;
    list->object = object;
    hsize_t index = 0;
    if (H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &index, collect_name, list) < 0) {
        struct hdf5_reason why;
        fail(r, object, "cannot list its members: %s", hdf5_reason(&why));
        free_strings(list->names, list->count);
        list->names = NULL;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Keras 3 weights (model.weights.h5 of a .keras archive).
 */

/* "0", "1", ... "n-1" as the index it names; -1 for anything else. */
static long var_index(const char *name, long count)
{
    if (!name[0] || (name[0] == '0' && name[1]))
        return -1;
    long v = 0;
    for (const char *p = name; *p; p++) {
        if (*p < '0' || *p > '9' || v > (LONG_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v < count ? v : -1;
}

/* Reads the datasets 0, 1, ... of a vars group as the layer `key`.
 * The top model's own vars (key NULL) are listed only when not empty. */
static int read_vars(struct reader *r, hid_t vars, const char *object, const char *key)
{
    struct name_list list;
    if (list_members(r, vars, object, &list) != 0)
        return -1;
    int status = -1;
    long *order = calloc(list.count > 0 ? (size_t)list.count : 1, sizeof *order);
    if (!order) {
        fail(r, object, "out of memory");
        goto done;
    }
    for (long i = 0; i < list.count; i++) {
        long k = var_index(list.names[i], list.count);
        if (k < 0) {
            char *path = join_path(object, list.names[i]);
            fail(r, path ? path : object, "unexpected member: a layer's variables are datasets named 0, 1, ...");
            free(path);
            goto done;
        }
        order[k] = i;
    }
    if (!key && list.count == 0) {
        status = 0;
        goto done;
    }
    if (list.count > INT_MAX) {
        fail(r, object, "too many variables");
        goto done;
    }
    convgen__model_layer *layer = add_layer(r, key ? key : "", (int)list.count, object);
    if (!layer)
        goto done;
    for (long k = 0; k < list.count; k++) {
        const char *name = list.names[order[k]];
        char *path = join_path(object, name);
        if (!path) {
            fail(r, object, "out of memory");
            goto done;
        }
        int read = read_tensor(r, vars, name, path, &layer->tensors[k]);
        free(path);
        if (read != 0)
            goto done;
    }
    status = 0;
done:
    free(order);
    free_strings(list.names, list.count);
    return status;
}

/* Walks one object of the weights file: its own variables (its vars
 * group, whose name attribute is the layer's name), then every group below
 * it. Groups without vars (the `layers` list of a model, say) pass the
 * prefix through. The top model's optimizer state is skipped. */
static int walk_keras(struct reader *r, hid_t group, const char *object, const char *prefix, int depth)
{
    int is_top = depth == 0;
    if (depth > MAX_DEPTH) {
        fail(r, object, "groups nested more than %d deep", MAX_DEPTH);
        return -1;
    }
    if (++r->objects > MAX_OBJECTS) {
        fail(r, object, "more than %ld groups and datasets", MAX_OBJECTS);
        return -1;
    }
    struct name_list list;
    if (list_members(r, group, object, &list) != 0)
        return -1;
    int status = -1;
    char *key = NULL;
    const char *child_prefix = prefix;
    for (long i = 0; i < list.count; i++) {
        if (strcmp(list.names[i], "vars") != 0)
            continue;
        char *vars_path = join_path(object, "vars");
        hid_t vars = vars_path ? H5Gopen2(group, "vars", r->gapl) : -1;
        if (vars < 0) {
            struct hdf5_reason why;
            fail(r, vars_path ? vars_path : object, "not a group: %s", vars_path ? hdf5_reason(&why) : "out of memory");
            free(vars_path);
            goto done;
        }
        int read = 0;
        if (!is_top) {
            /* The layer's name; files without it (older Keras) have only the
             * group's name, which Keras derives from the class (conv2d_1). */
            char *name = NULL;
            size_t size;
            read = read_text(r, vars, vars_path, "name", &name, &size);
            if (read == 1) {
                const char *slash = strrchr(object, '/');
                name = strdup(slash ? slash + 1 : object);
                read = name ? 0 : -1;
                if (!name)
                    fail(r, object, "out of memory");
            }
            if (read == 0) {
                key = join_path(prefix, name);
                if (!key) {
                    fail(r, object, "out of memory");
                    read = -1;
                }
            }
            free(name);
        }
        if (read == 0)
            read = read_vars(r, vars, vars_path, key);
        H5Gclose(vars);
        free(vars_path);
        if (read != 0)
            goto done;
        if (key)
            child_prefix = key;
    }
    for (long i = 0; i < list.count; i++) {
        const char *name = list.names[i];
        if (strcmp(name, "vars") == 0 || (is_top && strcmp(name, "optimizer") == 0))
            continue;
        char *path = join_path(object, name);
        if (!path) {
            fail(r, object, "out of memory");
            goto done;
        }
        H5O_type_t kind = H5O_TYPE_UNKNOWN;
        hid_t child = H5Oopen(group, name, r->gapl);
        if (child >= 0) {
            H5I_type_t id_type = H5Iget_type(child);
            kind = id_type == H5I_GROUP ? H5O_TYPE_GROUP : id_type == H5I_DATASET ? H5O_TYPE_DATASET : kind;
        }
        int walked = 0;
        if (child < 0) {
            struct hdf5_reason why;
            fail(r, path, "cannot open: %s", hdf5_reason(&why));
            walked = -1;
        } else if (kind == H5O_TYPE_GROUP) {
            walked = walk_keras(r, child, path, child_prefix, depth + 1);
        }
        /* Anything else (a dataset outside a vars group) holds no layer variables. */
        if (child >= 0)
            H5Oclose(child);
        free(path);
        if (walked != 0)
            goto done;
    }
    status = 0;
done:
    free(key);
    free_strings(list.names, list.count);
    return status;
}

/* ------------------------------------------------------------------------
 * Legacy Keras 2 HDF5 (.h5).
 */
static int read_legacy(struct reader *r, hid_t file)
{
    int status = -1;
    char **layer_names = NULL, **weight_names = NULL;
    long nlayers = 0, nweights = 0;
    hid_t weights = -1, layer_group = -1;
    char *object = NULL;

    int read = read_text(r, file, NULL, "model_config", &r->model.config, &r->model.config_size);
    if (read != 0) {
        if (read == 1)
            fail(r, NULL, "no model_config attribute: not a whole model saved by Keras's model.save "
                          "(a weights-only file?)");
        goto done;
    }
    struct hdf5_reason why;
    htri_t has_weights = H5Lexists(file, "model_weights", H5P_DEFAULT);
    weights = has_weights > 0 ? H5Gopen2(file, "model_weights", r->gapl) : -1;
    if (weights < 0) {
        fail(r, "model_weights", "%s", has_weights > 0 ? "not a group" : "no such group (a Keras model file has one)");
        H5Eclear2(H5E_DEFAULT);
        goto done;
    }
    read = read_strings(r, weights, "model_weights", "layer_names", &layer_names, &nlayers);
    if (read != 0) {
        if (read == 1)
            fail(r, "model_weights", "no layer_names attribute");
        goto done;
    }
    /* The top model's own weights are kept apart, under this name. */
    for (long i = 0; i <= nlayers; i++) {
        const char *name = i < nlayers ? layer_names[i] : "top_level_model_weights";
        int is_top = i == nlayers;
        free(object);
        object = join_path("model_weights", name);
        if (!object) {
            fail(r, "model_weights", "out of memory");
            goto done;
        }
        htri_t exists = H5Lexists(weights, name, H5P_DEFAULT);
        if (exists <= 0) {
            H5Eclear2(H5E_DEFAULT);
            if (is_top) /* older files have no such group */
                break;
            fail(r, object, "no such group (the layer is listed in layer_names)");
            goto done;
        }
        layer_group = H5Gopen2(weights, name, r->gapl);
        if (layer_group < 0) {
            fail(r, object, "not a group: %s", hdf5_reason(&why));
            goto done;
        }
        read = read_strings(r, layer_group, object, "weight_names", &weight_names, &nweights);
        if (read == 1)
            fail(r, object, "no weight_names attribute");
        if (read != 0)
            goto done;
        if (nweights > INT_MAX) {
            fail(r, object, "too many weights");
            goto done;
        }
        if (!is_top || nweights > 0) {
            convgen__model_layer *layer = add_layer(r, is_top ? "" : name, (int)nweights, object);
            if (!layer)
                goto done;
            for (long k = 0; k < nweights; k++) {
                char *path = join_path(object, weight_names[k]);
                if (!path) {
                    fail(r, object, "out of memory");
                    goto done;
                }
                int got = read_tensor(r, layer_group, weight_names[k], path, &layer->tensors[k]);
                free(path);
                if (got != 0)
                    goto done;
            }
        }
        free_strings(weight_names, nweights);
        weight_names = NULL;
        nweights = 0;
        H5Gclose(layer_group);
        layer_group = -1;
    }
    status = 0;
done:
    free(object);
    free_strings(layer_names, nlayers);
    free_strings(weight_names, nweights);
    if (layer_group >= 0)
        H5Gclose(layer_group);
    if (weights >= 0)
        H5Gclose(weights);
    return status;
}

/* ------------------------------------------------------------------------
 * HDF5 sessions: the lock, quiet error stacks, link-safe access lists.
 */
struct hdf5_session {
    H5E_auto2_t saved_fn;
    void *saved_data;
};

/* An external link names another file, which could be anything (a FIFO
 * that never answers): Keras does not write them, so none is followed. */
static herr_t refuse_external_link(const char *parent_file, const char *parent_group, const char *child_file,
                                   const char *child_object, unsigned *flags, hid_t fapl, void *data)
{
    (void)parent_file, (void)parent_group, (void)child_file, (void)child_object, (void)flags, (void)fapl,
        (void)data;
    return -1;
}

static int hdf5_begin(struct reader *r, struct hdf5_session *s)
{
    pthread_mutex_lock(&hdf5_lock);
    /* HDF5 prints its error stack on stderr by default; our messages say it. */
    H5Eget_auto2(H5E_DEFAULT, &s->saved_fn, &s->saved_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* No external link is followed on the way to a group or dataset. */
    r->gapl = H5Pcreate(H5P_GROUP_ACCESS);
    r->dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (r->gapl < 0 || r->dapl < 0 || H5Pset_elink_cb(r->gapl, refuse_external_link, NULL) < 0 ||
        H5Pset_elink_cb(r->dapl, refuse_external_link, NULL) < 0) {
        struct hdf5_reason why;
        fail(r, NULL, "cannot set up HDF5: %s", hdf5_reason(&why));
        return -1;
    }
    return 0;
}

static void hdf5_end(struct reader *r, struct hdf5_session *s)
{
    if (r->gapl >= 0)
        H5Pclose(r->gapl);
    if (r->dapl >= 0)
        H5Pclose(r->dapl);
    r->gapl = r->dapl = -1;
    H5Eclear2(H5E_DEFAULT);
    H5Eset_auto2(H5E_DEFAULT, s->saved_fn, s->saved_data);
    pthread_mutex_unlock(&hdf5_lock);
}

/* An HDF5 file opened in place from memory: the core driver is handed our
 * buffer through file-image callbacks that never copy, grow or free it, so
 * the image stays ours and is read where it is. (H5LTopen_file_image does
 * the same but leaks a little per call before HDF5 1.14.4.) */
struct file_image {
    void *data;
    size_t size;
};

static void *image_malloc(size_t size, H5FD_file_image_op_t op, void *udata)
{
    struct file_image *image = udata;
    (void)op;
    return size == image->size ? image->data : NULL;
}

static void *image_memcpy(void *dest, const void *src, size_t size, H5FD_file_image_op_t op, void *udata)
{
    struct file_image *image = udata;
    (void)op;
    /* Every "copy" is of the image onto itself; anything else would write into it. */
    return dest == image->data && src == image->data && size == image->size ? dest : NULL;
}

static void *image_realloc(void *ptr, size_t size, H5FD_file_image_op_t op, void *udata)
{
    (void)ptr, (void)size, (void)op, (void)udata;
    return NULL; /* read-only: the image never grows */
}

static herr_t image_free(void *ptr, H5FD_file_image_op_t op, void *udata)
{
    (void)ptr, (void)op, (void)udata;
    return 0; /* the caller frees the image after closing the file */
}

static void *image_udata_copy(void *udata)
{
    return udata;
}

static herr_t image_udata_free(void *udata)
{
    (void)udata;
    return 0;
}

/* Opens the image read-only; on failure says why in reason (every HDF5
 * call clears the error stack, so it is read at once). */
static hid_t open_file_image(struct file_image *image, struct hdf5_reason *reason)
{
    H5FD_file_image_callbacks_t callbacks = {image_malloc, image_memcpy, image_realloc, image_free,
                                             image_udata_copy, image_udata_free, image};
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    hid_t file = -1;
    if (fapl >= 0 && H5Pset_fapl_core(fapl, 1 << 16, 0) >= 0 && H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) >= 0 &&
        H5Pset_file_image_callbacks(fapl, &callbacks) >= 0 && H5Pset_file_image(fapl, image->data, image->size) >= 0)
        file = H5Fopen("model.weights.h5", H5F_ACC_RDONLY, fapl);
    if (file < 0)
        hdf5_reason(reason);
    if (fapl >= 0)
        H5Pclose(fapl);
    return file;
}

/* The weights of a .keras archive, from the image of its model.weights.h5. */
static int read_keras_weights(struct reader *r, unsigned char *data, size_t size)
{
    struct hdf5_session session;
    struct file_image image = {data, size};
    int status = -1;
    if (hdf5_begin(r, &session) == 0) {
        struct hdf5_reason why;
        snprintf(why.text, sizeof why.text, "the member is empty");
        hid_t file = size > 0 ? open_file_image(&image, &why) : -1;
        if (file < 0) {
            fail(r, NULL, "not a readable HDF5 file: %s", why.text);
        } else {
            hid_t root = H5Gopen2(file, "/", r->gapl);
            if (root < 0) {
                struct hdf5_reason why;
                fail(r, NULL, "cannot open its root group: %s", hdf5_reason(&why));
            } else {
                status = walk_keras(r, root, "", "", 0);
                H5Gclose(root);
            }
            if (H5Fclose(file) < 0 && status == 0) {
                struct hdf5_reason why;
                fail(r, NULL, "cannot close: %s", hdf5_reason(&why));
                status = -1;
            }
        }
    }
    hdf5_end(r, &session);
    return status;
}

static int read_h5_file(struct reader *r)
{
    struct hdf5_session session;
    int status = -1;
    if (hdf5_begin(r, &session) == 0) {
        hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
        /* Close every object with the file, whatever is still open. */
        if (fapl >= 0)
            H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
#if H5_VERSION_GE(1, 10, 7)
        /* Keep HDF5's read lock, but do not fail where the file system has none. */
        if (fapl >= 0)
            H5Pset_file_locking(fapl, 1, 1);
#endif
        hid_t file = fapl >= 0 ? H5Fopen(r->path, H5F_ACC_RDONLY, fapl) : -1;
        if (file < 0) {
            struct hdf5_reason why;
            fail(r, NULL, "not a readable HDF5 file (truncated or damaged?): %s", hdf5_reason(&why));
        } else {
            status = read_legacy(r, file);
            if (H5Fclose(file) < 0 && status == 0) {
                struct hdf5_reason why;
                fail(r, NULL, "cannot close: %s", hdf5_reason(&why));
                status = -1;
            }
        }
        if (fapl >= 0)
            H5Pclose(fapl);
    }
    hdf5_end(r, &session);
    return status;
}

/* ------------------------------------------------------------------------
 * .keras archives.
 */

/* Reads the archive member `name` whole (NUL-terminated). Returns 0; 1 when
 * the archive has no such member (nothing recorded); -1 on failure. */
static int read_member(struct reader *r, zip_t *archive, const char *name, long long limit, unsigned char **data,
                       size_t *size)
{
    zip_int64_t index = zip_name_locate(archive, name, 0);
    if (index < 0)
        return 1;
    const char *outer = r->member;
    r->member = name;
    int status = -1;
    zip_file_t *file = NULL;
    unsigned char *buf = NULL;
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(archive, (zip_uint64_t)index, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE)) {
        fail(r, NULL, "cannot read the archive's entry: %s", zip_strerror(archive));
        goto done;
    }
    if (st.size > (zip_uint64_t)limit || st.size > SIZE_MAX - 1) {
        fail(r, NULL, "is %llu bytes; at most %lld are supported", (unsigned long long)st.size, limit);
        goto done;
    }
    if ((st.valid & ZIP_STAT_COMP_SIZE) && st.size > (zip_uint64_t)BOMB_FLOOR_BYTES &&
        st.size / BOMB_MAX_EXPANSION > st.comp_size) {
        fail(r, NULL, "expands from %llu to %llu bytes: refused as a possible zip bomb",
             (unsigned long long)st.comp_size, (unsigned long long)st.size);
        goto done;
    }
    file = zip_fopen_index(archive, (zip_uint64_t)index, 0);
    if (!file) {
        fail(r, NULL, "cannot read: %s", zip_strerror(archive));
        goto done;
    }
    buf = malloc((size_t)st.size + 1);
    if (!buf) {
        fail(r, NULL, "out of memory for %llu bytes", (unsigned long long)st.size);
        goto done;
    }
    zip_uint64_t got = 0;
    while (got < st.size) {
        zip_int64_t n = zip_fread(file, buf + got, st.size - got);
        if (n < 0) {
            fail(r, NULL, "cannot read (damaged archive?): %s", zip_file_strerror(file));
            goto done;
        }
        if (n == 0)
            break;
        got += (zip_uint64_t)n;
    }
    if (got < st.size) {
        fail(r, NULL, "truncated: %llu of %llu bytes", (unsigned long long)got, (unsigned long long)st.size);
        goto done;
    }
    /* Read to the end, which is where libzip checks the CRC. */
    unsigned char extra;
    zip_int64_t more = zip_fread(file, &extra, 1);
    if (more < 0) {
        fail(r, NULL, "damaged: %s", zip_file_strerror(file));
        goto done;
    }
    if (more > 0) {
        fail(r, NULL, "longer than the archive records (%llu bytes)", (unsigned long long)st.size);
        goto done;
    }
    int closed = zip_fclose(file);
    file = NULL;
    if (closed != 0) {
        zip_error_t error;
        zip_error_init_with_code(&error, closed);
        fail(r, NULL, "damaged: %s", zip_error_strerror(&error));
        zip_error_fini(&error);
        goto done;
    }
    buf[st.size] = 0;
    *data = buf;
    *size = (size_t)st.size;
    buf = NULL;
    status = 0;
done:
    if (file)
        zip_fclose(file);
    free(buf);
    r->member = outer;
    return status;
}

static int read_keras_archive(struct reader *r)
{
    int code = 0;
    zip_t *archive = zip_open(r->path, ZIP_RDONLY | ZIP_CHECKCONS, &code);
    if (!archive) {
        zip_error_t error;
        zip_error_init_with_code(&error, code);
        fail(r, NULL, "truncated or damaged zip archive: %s", zip_error_strerror(&error));
        zip_error_fini(&error);
        return -1;
    }
    int status = -1;
    unsigned char *image = NULL, *config = NULL;
    size_t image_size = 0, config_size = 0;
    int read = read_member(r, archive, "config.json", MAX_CONFIG_BYTES, &config, &config_size);
    if (read == 1)
        fail(r, NULL, "no config.json in the archive (a .keras file holds config.json, metadata.json and "
                      "model.weights.h5)");
    if (read != 0)
        goto done;
    read = read_member(r, archive, "model.weights.h5", MAX_WEIGHTS_BYTES, &image, &image_size);
    if (read == 1)
        fail(r, NULL, "%s", zip_name_locate(archive, "model.weights.npz", 0) >= 0
                          ? "the weights are in model.weights.npz, which is not supported (save with the "
                            "default weights format, h5)"
                          : "no model.weights.h5 in the archive");
    if (read != 0)
        goto done;
    r->member = "model.weights.h5";
    read = read_keras_weights(r, image, image_size);
    r->member = NULL;
    if (read != 0)
        goto done;
    r->model.config = (char *)config;
    r->model.config_size = config_size;
    config = NULL;
    status = 0;
done:
    free(config);
    free(image);
    zip_discard(archive);
    return status;
}

/* ------------------------------------------------------------------------
 * Entry point: the format is told by the file's first bytes.
 */
int convgen__model_read(const char *path, convgen__model *out, char *err, size_t err_size)
{
    struct reader r;
    memset(&r, 0, sizeof r);
    r.path = path;
    r.err = err;
    r.err_size = err_size;
    r.gapl = r.dapl = -1;
    if (err_size)
        err[0] = 0;

    unsigned char head[8] = {0};
    size_t got = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail(&r, NULL, "cannot open: %s", strerror(errno));
        return -1;
    }
    got = fread(head, 1, sizeof head, f);
    int read_error = ferror(f) ? errno : 0;
    fclose(f);
    if (read_error) {
        fail(&r, NULL, "cannot read: %s", strerror(read_error));
        return -1;
    }
    int status;
    if (got >= 4 && (memcmp(head, ZIP_MAGIC, 4) == 0 || memcmp(head, ZIP_EMPTY_MAGIC, 4) == 0)) {
        r.model.format = CONVGEN__MODEL_KERAS;
        status = read_keras_archive(&r);
    } else if (got == 8 && memcmp(head, HDF5_MAGIC, 8) == 0) {
        r.model.format = CONVGEN__MODEL_H5;
        status = read_h5_file(&r);
    } else {
        fail(&r, NULL, got == 0 ? "not a Keras model file: the file is empty"
                                : "not a Keras model file: neither a .keras archive (zip) nor an HDF5 .h5 file");
        status = -1;
    }
    if (status != 0) {
        convgen__model_free(&r.model);
        return -1;
    }
    *out = r.model;
    return 0;
}
