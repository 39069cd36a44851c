/* test_model_file.c: reading whole Keras models (runtime/model_file.c) and
 * native.read_model. The good files are real Keras saves
 * (tests/fixtures/model_files/, made by tools/make_model_file_fixtures.py,
 * with what they must hold in expected.txt); the bad ones are made here,
 * with libzip and libhdf5, at test time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "harness.h"
#include "host.h"
#include "model_file.h"

#include <fcntl.h>
#include <hdf5.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

#define FIXTURES "tests/fixtures/model_files"

/* ------------------------------------------------------------------------
 * expected.txt
 */
struct want_tensor {
    int rank;
    long shape[CONVGEN_NPY_MAX_RANK];
    float first, last;
    double sum;
};

struct want_layer {
    char name[128];
    int count;
    struct want_tensor tensors[8];
};

struct want_model {
    char file[64], format[8], class_name[32];
    int layer_count;
    struct want_layer layers[16];
};

static struct want_model wanted[8];
static int wanted_count;

/* Loads expected.txt once. */
static void load_expected(void)
{
    if (wanted_count)
        return;
    FILE *f = fopen(FIXTURES "/expected.txt", "r");
    if (!f)
        fail_msg("cannot open " FIXTURES "/expected.txt");
    char line[512];
    struct want_model *m = NULL;
    struct want_layer *l = NULL;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (strncmp(line, "model ", 6) == 0) {
            assert_true(wanted_count < 8);
            m = &wanted[wanted_count++];
            memset(m, 0, sizeof *m);
            int layers;
            assert_int_equal(sscanf(line, "model %63s %7s %31s %d", m->file, m->format, m->class_name, &layers), 4);
            l = NULL;
        } else if (strncmp(line, "layer ", 6) == 0) {
            assert_non_null(m);
            assert_true(m->layer_count < 16);
            l = &m->layers[m->layer_count++];
            memset(l, 0, sizeof *l);
            int count;
            assert_int_equal(sscanf(line, "layer %127s %d", l->name, &count), 2);
            l->count = 0;
        } else if (strncmp(line, "tensor ", 7) == 0) {
            assert_non_null(l);
            assert_true(l->count < 8);
            struct want_tensor *t = &l->tensors[l->count++];
            char shape[128];
            assert_int_equal(sscanf(line, "tensor %127s %f %f %lf", shape, &t->first, &t->last, &t->sum), 4);
            t->rank = 0;
            for (char *p = shape; strcmp(shape, "-") != 0 && *p;) {
                t->shape[t->rank++] = strtol(p, &p, 10);
                if (*p == ',')
                    p++;
            }
        } else {
            fail_msg("expected.txt: cannot parse: %s", line);
        }
    }
    fclose(f);
    assert_true(wanted_count > 0);
}

static const struct want_model *want(const char *file)
{
    load_expected();
    for (int i = 0; i < wanted_count; i++)
        if (strcmp(wanted[i].file, file) == 0)
            return &wanted[i];
    fail_msg("%s is not in expected.txt", file);
    return NULL;
}

/* Reads a fixture and checks it against expected.txt: format, config,
 * exactly the expected layers, each tensor's shape, ends and sum. */
static void check_fixture(const char *file)
{
    const struct want_model *w = want(file);
    char path[256], err[1024];
    snprintf(path, sizeof path, FIXTURES "/%s", file);
    convgen__model m;
    if (convgen__model_read(path, &m, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(m.format, strcmp(w->format, "keras") == 0 ? CONVGEN__MODEL_KERAS : CONVGEN__MODEL_H5);
    assert_non_null(m.config);
    assert_int_equal(m.config[0], '{');
    assert_int_equal(strlen(m.config), m.config_size);
    char class_field[64];
    snprintf(class_field, sizeof class_field, "\"class_name\": \"%s\"", w->class_name);
    assert_non_null(strstr(m.config, class_field));
    if (m.layer_count != w->layer_count)
        fail_msg("%s: %d layers, expected %d", file, m.layer_count, w->layer_count);
    for (int i = 0; i < w->layer_count; i++) {
        const struct want_layer *wl = &w->layers[i];
        const convgen__model_layer *got = NULL;
        for (int k = 0; k < m.layer_count; k++)
            if (strcmp(m.layers[k].name, wl->name) == 0)
                got = &m.layers[k];
        if (!got)
            fail_msg("%s: no layer %s", file, wl->name);
        if (got->count != wl->count)
            fail_msg("%s: layer %s has %d tensors, expected %d", file, wl->name, got->count, wl->count);
        for (int k = 0; k < wl->count; k++) {
            const struct want_tensor *wt = &wl->tensors[k];
            const convgen_npy_array *t = &got->tensors[k];
            assert_int_equal(t->rank, wt->rank);
            long count = 1;
            for (int d = 0; d < wt->rank; d++) {
                assert_int_equal(t->shape[d], wt->shape[d]);
                count *= wt->shape[d];
            }
            assert_int_equal(t->count, count);
            double sum = 0;
            for (long e = 0; e < t->count; e++)
                sum += t->data[e];
            if (t->data[0] != wt->first || t->data[t->count - 1] != wt->last ||
                fabs(sum - wt->sum) > 1e-9 * (1 + fabs(wt->sum)))
                fail_msg("%s: layer %s tensor %d: first %.9g last %.9g sum %.17g, expected %.9g %.9g %.17g", file,
                         wl->name, k, (double)t->data[0], (double)t->data[t->count - 1], sum, (double)wt->first,
                         (double)wt->last, wt->sum);
        }
    }
    convgen__model_free(&m);
}

/* A Keras 3 Sequential archive: Conv2D, BatchNormalization, ReLU,
 * ZeroPadding2D, DepthwiseConv2D, under the layers' own names. */
static void test_keras_sequential(void **state)
{
    (void)state;
    check_fixture("seq.keras");
}

/* A Functional archive with a nested Sequential: its layers are listed as
 * "inner/inner_conv", the nested model itself with no tensors. */
static void test_keras_functional_nested(void **state)
{
    (void)state;
    check_fixture("fun.keras");
}

/* float64 variables are converted to float32. */
static void test_keras_float64(void **state)
{
    (void)state;
    check_fixture("f64.keras");
}

/* Keras 3's legacy .h5: variable-length string attributes, layers in
 * layer_names order, each layer's tensors in weight_names order. */
static void test_legacy_h5(void **state)
{
    (void)state;
    check_fixture("seq.h5");
}

/* In a legacy .h5 a nested model is one entry holding all its sublayers' tensors. */
static void test_legacy_h5_nested(void **state)
{
    (void)state;
    check_fixture("fun.h5");
}

/* Keras 2's attributes: fixed-length byte strings, and a name list split
 * into weight_names0, weight_names1. */
static void test_legacy_h5_fixed_length_strings(void **state)
{
    (void)state;
    check_fixture("keras2.h5");
}

/* ------------------------------------------------------------------------
 * native.read_model: the same model as the C reader, as Lua tables.
 */

/* Calls native.read_model(path), leaving its nresults on the stack. */
static void lua_read_model(lua_State *L, const char *path)
{
    lua_pushstring(L, path);
    if (convgen__host_call(L, "convgen.native", "read_model", 1, 2) != LUA_OK)
        fail_msg("read_model raised: %s", lua_tostring(L, -1));
}

/* Every file's Lua table holds what the C reader gives: format, config text,
 * and per layer name the tensors, in order, as read_npy's tensor type. */
static void test_lua_read_model(void **state)
{
    (void)state;
    static const char *const files[] = {"seq.keras", "fun.keras", "f64.keras", "seq.h5", "fun.h5", "keras2.h5"};
    lua_State *L = harness_host();
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[256], err[1024];
        snprintf(path, sizeof path, FIXTURES "/%s", files[f]);
        convgen__model m;
        if (convgen__model_read(path, &m, err, sizeof err) != 0)
            fail_msg("%s", err);
        int top = lua_gettop(L);
        lua_read_model(L, path);
        assert_true(lua_istable(L, -2));
        int model = lua_absindex(L, -2);
        lua_getfield(L, model, "format");
        assert_string_equal(lua_tostring(L, -1), m.format == CONVGEN__MODEL_KERAS ? "keras" : "h5");
        lua_getfield(L, model, "config");
        size_t config_size;
        const char *config = lua_tolstring(L, -1, &config_size);
        assert_int_equal(config_size, m.config_size);
        assert_memory_equal(config, m.config, config_size);
        lua_getfield(L, model, "weights");
        int weights = lua_absindex(L, -1);
        int entries = 0;
        lua_pushnil(L);
        while (lua_next(L, weights)) {
            entries++;
            lua_pop(L, 1);
        }
        assert_int_equal(entries, m.layer_count);
        for (int i = 0; i < m.layer_count; i++) {
            const convgen__model_layer *layer = &m.layers[i];
            assert_int_equal(lua_getfield(L, weights, layer->name), LUA_TTABLE);
            assert_int_equal(luaL_len(L, -1), layer->count);
            for (int k = 0; k < layer->count; k++) {
                const convgen_npy_array *t = &layer->tensors[k];
                lua_geti(L, -1, k + 1);
                size_t count;
                const float *data = convgen__host_tensor(L, -1, &count);
                assert_non_null(data);
                assert_int_equal(count, t->count);
                assert_memory_equal(data, t->data, count * sizeof(float));
                lua_getfield(L, -1, "shape"); /* tensor:shape() */
                lua_pushvalue(L, -2);
                lua_call(L, 1, 1);
                assert_int_equal(luaL_len(L, -1), t->rank);
                for (int d = 0; d < t->rank; d++) {
                    lua_geti(L, -1, d + 1);
                    assert_int_equal(lua_tointeger(L, -1), t->shape[d]);
                    lua_pop(L, 1);
                }
                lua_pop(L, 2);
            }
            lua_pop(L, 1);
        }
        lua_settop(L, top);
        convgen__model_free(&m);
    }
    convgen__host_close(L);
}

/* A failure is nil and the message, as read_npy's. */
static void test_lua_read_model_failure(void **state)
{
    (void)state;
    lua_State *L = harness_host();
    lua_read_model(L, FIXTURES "/missing.keras");
    assert_true(lua_isnil(L, -2));
    assert_non_null(strstr(lua_tostring(L, -1), "missing.keras: cannot open"));
    convgen__host_close(L);
}

/* ------------------------------------------------------------------------
 * Bad files, made here.
 */

/* Reads path, which must fail with a message holding each of the
 * NULL-terminated fragments; checks the model was left untouched. */
static void expect_failure(const char *path, ...)
{
    convgen__model m;
    memset(&m, 0xab, sizeof m);
    convgen__model before = m;
    char err[1024];
    if (convgen__model_read(path, &m, err, sizeof err) == 0)
        fail_msg("%s was read, expected a failure", path);
    assert_memory_equal(&m, &before, sizeof m);
    assert_true(strncmp(err, path, strlen(path)) == 0); /* the message opens with the file */
    va_list ap;
    va_start(ap, path);
    for (const char *part = va_arg(ap, const char *); part; part = va_arg(ap, const char *))
        if (!strstr(err, part))
            fail_msg("message \"%s\" lacks \"%s\"", err, part);
    va_end(ap);
    assert_null(strchr(err, '\n'));
}

/* Writes a zip archive of n members {name, text}; returns its malloc'd path. */
static char *write_zip(const char *dir, const char *file, int n, const char *members[][2], const size_t sizes[])
{
    size_t len = strlen(dir) + strlen(file) + 2;
    char *path = malloc(len);
    assert_non_null(path);
    snprintf(path, len, "%s/%s", dir, file);
    int code = 0;
    zip_t *archive = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &code);
    assert_non_null(archive);
    for (int i = 0; i < n; i++) {
        size_t size = sizes ? sizes[i] : strlen(members[i][1]);
        zip_source_t *source = zip_source_buffer(archive, members[i][1], size, 0);
        assert_non_null(source);
        assert_true(zip_file_add(archive, members[i][0], source, ZIP_FL_OVERWRITE) >= 0);
    }
    assert_int_equal(zip_close(archive), 0);
    return path;
}

/* Sets a variable-length UTF-8 string attribute: n strings, or a scalar when n < 0. */
static void set_text_attribute(hid_t obj, const char *name, const char *const *values, int n)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    assert_true(H5Tset_size(type, H5T_VARIABLE) >= 0);
    assert_true(H5Tset_cset(type, H5T_CSET_UTF8) >= 0);
    hsize_t dim = n < 0 ? 1 : (hsize_t)n;
    hid_t space = n < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(attr >= 0);
    assert_true(H5Awrite(attr, type, values) >= 0);
    H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
}

/* Creates a group path (with the groups above it). */
static hid_t make_group(hid_t file, const char *path)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t group = H5Gcreate2(file, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    assert_true(group >= 0);
    return group;
}

/* Creates a dataset of the given file type and shape (and the groups above
 * it), holding 0.5, 1.5, ... converted to that type. */
static void make_dataset(hid_t file, const char *path, hid_t type, int rank, const hsize_t *dims)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t space = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t dset = H5Dcreate2(file, path, type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(dset >= 0);
    hsize_t count = 1;
    for (int i = 0; i < rank; i++)
        count *= dims[i];
    float *values = malloc(count * sizeof *values);
    assert_non_null(values);
    for (hsize_t i = 0; i < count; i++)
        values[i] = (float)i + 0.5f;
    assert_true(H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0);
    free(values);
    H5Dclose(dset);
    H5Sclose(space);
    H5Pclose(lcpl);
}

/* An IEEE half-precision type (HDF5 1.10 has no predefined one). */
static hid_t float16_type(void)
{
    hid_t type = H5Tcopy(H5T_IEEE_F32LE);
    assert_true(H5Tset_fields(type, 15, 10, 5, 0, 10) >= 0);
    assert_true(H5Tset_size(type, 2) >= 0);
    assert_true(H5Tset_ebias(type, 15) >= 0);
    return type;
}

/* A Keras 3 weights file with one layer "c" (group conv) whose single
 * variable has the given type and shape, zipped with config.json as a .keras
 * archive. Returns the archive's malloc'd path. */
static char *keras_with_variable(const char *dir, const char *file, hid_t type, int rank, const hsize_t *dims)
{
    char h5[4200];
    snprintf(h5, sizeof h5, "%s/weights.h5", dir);
    hid_t f = H5Fcreate(h5, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    H5Gclose(make_group(f, "vars"));
    hid_t vars = make_group(f, "layers/conv/vars");
    const char *name = "c";
    set_text_attribute(vars, "name", &name, -1);
    make_dataset(vars, "0", type, rank, dims);
    H5Gclose(vars);
    H5Fclose(f);
    size_t size;
    char *image = harness_read(h5, &size);
    assert_non_null(image);
    const char *members[][2] = {{"metadata.json", "{}"}, {"config.json", "{\"class_name\": \"Sequential\"}"},
                                {"model.weights.h5", image}};
    size_t sizes[] = {2, strlen(members[1][1]), size};
    char *path = write_zip(dir, file, 3, members, sizes);
    free(image);
    return path;
}

/* A legacy .h5 with one layer "c" listing the given weight names, of which
 * only c/kernel exists, with the given type and shape. Returns its malloc'd path. */
static char *legacy_with_weights(const char *dir, const char *file, const char *const *weight_names, int n,
                                 hid_t type, int with_config)
{
    size_t len = strlen(dir) + strlen(file) + 2;
    char *path = malloc(len);
    assert_non_null(path);
    snprintf(path, len, "%s/%s", dir, file);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    const char *config = "{\"class_name\": \"Sequential\"}";
    if (with_config)
        set_text_attribute(f, "model_config", &config, -1);
    hid_t weights = make_group(f, "model_weights");
    const char *layer = "c";
    set_text_attribute(weights, "layer_names", &layer, 1);
    hid_t group = make_group(weights, "c");
    set_text_attribute(group, "weight_names", weight_names, n);
    hsize_t dims[2] = {2, 3};
    make_dataset(group, "c/kernel", type, 2, dims);
    H5Gclose(group);
    H5Gclose(weights);
    H5Fclose(f);
    return path;
}

/* A file that does not exist. */
static void test_missing_file(void **state)
{
    (void)state;
    expect_failure(FIXTURES "/no-such-model.keras", "cannot open", "No such file", (char *)NULL);
}

/* Neither a zip archive nor HDF5; an empty file. */
static void test_not_a_model_file(void **state)
{
    (void)state;
    char *dir = harness_tempdir();
    char *text = harness_write(dir, "model.keras", "just text\n", 10);
    expect_failure(text, "not a Keras model file", (char *)NULL);
    char *empty = harness_write(dir, "empty.h5", "", 0);
    expect_failure(empty, "empty", (char *)NULL);
    free(text);
    free(empty);
    harness_remove_tree(dir);
    free(dir);
}

/* An archive cut short loses its central directory. */
static void test_truncated_archive(void **state)
{
    (void)state;
    size_t size;
    char *bytes = harness_read(FIXTURES "/seq.keras", &size);
    assert_non_null(bytes);
    char *dir = harness_tempdir();
    char *cut = harness_write(dir, "cut.keras", bytes, size / 2);
    expect_failure(cut, "truncated or damaged zip archive", (char *)NULL);
    char *tail_cut = harness_write(dir, "tail.keras", bytes, size - 10);
    expect_failure(tail_cut, "zip archive", (char *)NULL);
    free(bytes);
    free(cut);
    free(tail_cut);
    harness_remove_tree(dir);
    free(dir);
}

/* A byte changed inside model.weights.h5: the CRC check names the member. */
static void test_damaged_member(void **state)
{
    (void)state;
    size_t size;
    char *bytes = harness_read(FIXTURES "/seq.keras", &size);
    assert_non_null(bytes);
    /* Keras stores the members uncompressed: find the HDF5 signature. */
    size_t at = 0;
    while (at + 8 < size && memcmp(bytes + at, "\x89HDF\r\n\x1a\n", 8) != 0)
        at++;
    assert_true(at + 4096 < size);
    bytes[at + 4000] ^= 0x5a;
    char *dir = harness_tempdir();
    char *path = harness_write(dir, "damaged.keras", bytes, size);
    expect_failure(path, "model.weights.h5: ", "CRC", (char *)NULL);
    free(bytes);
    free(path);
    harness_remove_tree(dir);
    free(dir);
}

/* An archive without config.json, or without model.weights.h5. */
static void test_archive_missing_members(void **state)
{
    (void)state;
    char *dir = harness_tempdir();
    const char *no_config[][2] = {{"metadata.json", "{}"}, {"model.weights.h5", "x"}};
    char *path = write_zip(dir, "no-config.keras", 2, no_config, NULL);
    expect_failure(path, "no config.json", (char *)NULL);
    free(path);
    const char *no_weights[][2] = {{"metadata.json", "{}"}, {"config.json", "{}"}};
    path = write_zip(dir, "no-weights.keras", 2, no_weights, NULL);
    expect_failure(path, "no model.weights.h5", (char *)NULL);
    free(path);
    const char *npz[][2] = {{"config.json", "{}"}, {"model.weights.npz", "PK"}};
    path = write_zip(dir, "npz.keras", 2, npz, NULL);
    expect_failure(path, "model.weights.npz", "not supported", (char *)NULL);
    free(path);
    harness_remove_tree(dir);
    free(dir);
}

/* model.weights.h5 that is not HDF5. */
static void test_weights_not_hdf5(void **state)
{
    (void)state;
    char *dir = harness_tempdir();
    const char *members[][2] = {{"config.json", "{}"}, {"model.weights.h5", "not an HDF5 file at all"}};
    char *path = write_zip(dir, "garbage.keras", 2, members, NULL);
    expect_failure(path, "model.weights.h5: not a readable HDF5 file", (char *)NULL);
    free(path);
    harness_remove_tree(dir);
    free(dir);
}

/* Integer, float16 and rank-9 variables in a .keras file are refused,
 * naming the member and the dataset. */
static void test_keras_refused_datasets(void **state)
{
    (void)state;
    char *dir = harness_tempdir();
    hsize_t dims[9] = {2, 3, 1, 1, 1, 1, 1, 1, 1};
    char *path = keras_with_variable(dir, "int.keras", H5T_STD_I32LE, 2, dims);
    expect_failure(path, "model.weights.h5: layers/conv/vars/0: dtype int32 is not supported", (char *)NULL);
    free(path);
    path = keras_with_variable(dir, "uint8.keras", H5T_STD_U8LE, 2, dims);
    expect_failure(path, "layers/conv/vars/0: dtype uint8", (char *)NULL);
    free(path);
    hid_t half = float16_type();
    path = keras_with_variable(dir, "half.keras", half, 2, dims);
    H5Tclose(half);
    expect_failure(path, "layers/conv/vars/0: dtype float16", (char *)NULL);
    free(path);
    path = keras_with_variable(dir, "rank9.keras", H5T_IEEE_F32LE, 9, dims);
    expect_failure(path, "layers/conv/vars/0: has 9 axes; at most 8", (char *)NULL);
    free(path);
    /* The same, rank 8 and float64 big-endian, is fine. */
    path = keras_with_variable(dir, "rank8.keras", H5T_IEEE_F64BE, 8, dims);
    convgen__model m;
    char err[1024];
    if (convgen__model_read(path, &m, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(m.layer_count, 1);
    assert_string_equal(m.layers[0].name, "c");
    assert_int_equal(m.layers[0].tensors[0].rank, 8);
    assert_int_equal(m.layers[0].tensors[0].count, 6);
    assert_true(m.layers[0].tensors[0].data[5] == 5.5f);
    convgen__model_free(&m);
    free(path);
    harness_remove_tree(dir);
    free(dir);
}

/* A vars group whose members are not 0, 1, ...: named, not guessed at. */
static void test_keras_unexpected_variable_name(void **state)
{
    (void)state;
    char *dir = harness_tempdir();
    char h5[4200];
    snprintf(h5, sizeof h5, "%s/weights.h5", dir);
    hid_t f = H5Fcreate(h5, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[1] = {3};
    make_dataset(f, "layers/conv/vars/0", H5T_IEEE_F32LE, 1, dims);
    make_dataset(f, "layers/conv/vars/kernel", H5T_IEEE_F32LE, 1, dims);
    H5Fclose(f);
    size_t size;
    char *image = harness_read(h5, &size);
    const char *members[][2] = {{"config.json", "{}"}, {"model.weights.h5", image}};
    size_t sizes[] = {2, size};
    char *path = write_zip(dir, "names.keras", 2, members, sizes);
    expect_failure(path, "layers/conv/vars/kernel: unexpected member", (char *)NULL);
    free(image);
    free(path);
    harness_remove_tree(dir);
    free(dir);
}

/* Legacy .h5: an int dataset, a dataset weight_names lists but the file
 * lacks, a file without model_config, a file cut short. */
static void test_legacy_refused(void **state)
{
    (void)state;
    char *dir = harness_tempdir();
    const char *kernel[] = {"c/kernel"};
    char *path = legacy_with_weights(dir, "int.h5", kernel, 1, H5T_STD_I32LE, 1);
    expect_failure(path, "model_weights/c/c/kernel: dtype int32 is not supported", (char *)NULL);
    free(path);
    const char *both[] = {"c/kernel", "c/bias"};
    path = legacy_with_weights(dir, "nobias.h5", both, 2, H5T_IEEE_F32LE, 1);
    expect_failure(path, "model_weights/c/c/bias: cannot open the dataset", (char *)NULL);
    free(path);
    path = legacy_with_weights(dir, "noconfig.h5", kernel, 1, H5T_IEEE_F32LE, 0);
    expect_failure(path, "no model_config attribute", (char *)NULL);
    free(path);
    size_t size;
    char *bytes = harness_read(FIXTURES "/seq.h5", &size);
    assert_non_null(bytes);
    path = harness_write(dir, "cut.h5", bytes, size / 2);
    expect_failure(path, "not a readable HDF5 file (truncated or damaged?): ", (char *)NULL);
    free(bytes);
    free(path);
    /* And the good one reads. */
    path = legacy_with_weights(dir, "good.h5", kernel, 1, H5T_IEEE_F32LE, 1);
    convgen__model m;
    char err[1024];
    if (convgen__model_read(path, &m, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(m.format, CONVGEN__MODEL_H5);
    assert_int_equal(m.layer_count, 1);
    assert_int_equal(m.layers[0].tensors[0].shape[1], 3);
    convgen__model_free(&m);
    free(path);
    harness_remove_tree(dir);
    free(dir);
}

/* Links Keras never writes are not followed: an external link in a legacy
 * file (it could name any file, even a FIFO), a soft link in a .keras file. */
static void test_links_not_followed(void **state)
{
    (void)state;
    char *dir = harness_tempdir();
    char other[4200];
    snprintf(other, sizeof other, "%s/other.h5", dir);
    hid_t f = H5Fcreate(other, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[2] = {2, 3};
    make_dataset(f, "kernel", H5T_IEEE_F32LE, 2, dims);
    H5Fclose(f);
    const char *bias[] = {"c/kernel", "c/bias"};
    char *path = legacy_with_weights(dir, "external.h5", bias, 2, H5T_IEEE_F32LE, 1);
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(H5Lcreate_external(other, "kernel", f, "model_weights/c/c/bias", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    H5Fclose(f);
    expect_failure(path, "model_weights/c/c/bias: cannot open the dataset", (char *)NULL);
    free(path);

    char h5[4200];
    snprintf(h5, sizeof h5, "%s/weights.h5", dir);
    f = H5Fcreate(h5, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    make_dataset(f, "data", H5T_IEEE_F32LE, 2, dims);
    H5Gclose(make_group(f, "layers/conv/vars"));
    assert_true(H5Lcreate_soft("/data", f, "layers/conv/vars/0", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    H5Fclose(f);
    size_t size;
    char *image = harness_read(h5, &size);
    const char *members[][2] = {{"config.json", "{}"}, {"model.weights.h5", image}};
    size_t sizes[] = {2, size};
    path = write_zip(dir, "soft.keras", 2, members, sizes);
    expect_failure(path, "layers/conv/vars/0: a soft or external link", (char *)NULL);
    free(image);
    free(path);
    harness_remove_tree(dir);
    free(dir);
}

/* HDF5 prints nothing on stderr, and its error printing is restored after. */
static void test_hdf5_is_quiet(void **state)
{
    (void)state;
    char *dir = harness_tempdir();
    const char *kernel[] = {"c/kernel", "c/missing"};
    char *bad = legacy_with_weights(dir, "bad.h5", kernel, 2, H5T_IEEE_F32LE, 1);
    const char *members[][2] = {{"config.json", "{}"}, {"model.weights.h5", "garbage"}};
    char *garbage = write_zip(dir, "garbage.keras", 2, members, NULL);
    H5E_auto2_t fn_before;
    void *data_before;
    H5Eget_auto2(H5E_DEFAULT, &fn_before, &data_before);
    char log[4200];
    snprintf(log, sizeof log, "%s/stderr.txt", dir);
    fflush(stderr);
    int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    convgen__model m;
    char err[1024];
    int first = convgen__model_read(bad, &m, err, sizeof err);
    int second = convgen__model_read(garbage, &m, err, sizeof err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_int_equal(first, -1);
    assert_int_equal(second, -1);
    size_t size;
    char *printed = harness_read(log, &size);
    if (size)
        fail_msg("printed on stderr: %s", printed);
    free(printed);
    H5E_auto2_t fn_after;
    void *data_after;
    H5Eget_auto2(H5E_DEFAULT, &fn_after, &data_after);
    assert_true(fn_after == fn_before && data_after == data_before);
    free(bad);
    free(garbage);
    harness_remove_tree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keras_sequential),
        cmocka_unit_test(test_keras_functional_nested),
        cmocka_unit_test(test_keras_float64),
        cmocka_unit_test(test_legacy_h5),
        cmocka_unit_test(test_legacy_h5_nested),
        cmocka_unit_test(test_legacy_h5_fixed_length_strings),
        cmocka_unit_test(test_lua_read_model),
        cmocka_unit_test(test_lua_read_model_failure),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_not_a_model_file),
        cmocka_unit_test(test_truncated_archive),
        cmocka_unit_test(test_damaged_member),
        cmocka_unit_test(test_archive_missing_members),
        cmocka_unit_test(test_weights_not_hdf5),
        cmocka_unit_test(test_keras_refused_datasets),
        cmocka_unit_test(test_keras_unexpected_variable_name),
        cmocka_unit_test(test_legacy_refused),
        cmocka_unit_test(test_links_not_followed),
        cmocka_unit_test(test_hdf5_is_quiet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
