/*
 * convgen_npy.h: read and write float32 NumPy .npy files.
 *
 * Part of the convgen runtime. Generated kernels take plain float arrays;
 * these helpers load weights and inputs saved by NumPy (np.save) so a C
 * program can feed them, and save outputs for comparison in Python.
 *
 *     convgen_npy_array a;
 *     char err[256];
 *     if (convgen_npy_load("input.npy", &a, err, sizeof err) != 0) {
 *         fprintf(stderr, "%s\n", err);
 *         return 1;
 *     }
 *     layer(a.data, output, (int)a.shape[0]);
 *     convgen_npy_free(&a);
 *
 * Accepted on load: little-endian float32 ('<f4') as is, float64 ('<f8')
 * converted to float32, C order only, format versions 1.0, 2.0 and 3.0.
 * Anything else (other dtypes, Fortran order, a truncated file) is refused
 * with a message in err, and the array is left untouched.
 */
#ifndef CONVGEN_NPY_H
#define CONVGEN_NPY_H

#include <stddef.h>

#define CONVGEN_NPY_MAX_RANK 8

typedef struct convgen_npy_array {
    int rank;                            /* number of axes, 0 for a scalar */
    long shape[CONVGEN_NPY_MAX_RANK];    /* sizes, outermost first */
    long count;                          /* product of the sizes */
    float *data;                         /* count floats, C order, malloc'd */
} convgen_npy_array;

/* Loads path into *out. Returns 0, or -1 with a message in err. */
int convgen_npy_load(const char *path, convgen_npy_array *out, char *err, size_t err_size);

/* Parses an in-memory .npy image (same rules as convgen_npy_load). */
int convgen_npy_parse(const unsigned char *bytes, size_t size, convgen_npy_array *out,
                      char *err, size_t err_size);

/* Saves count = prod(shape) floats as a float32 .npy, writing a temporary
 * file first and renaming it, so path is never left half-written.
 * Returns 0, or -1 with a message in err. */
int convgen_npy_save(const char *path, int rank, const long *shape, const float *data,
                     char *err, size_t err_size);

/* Frees the data of an array filled by convgen_npy_load; accepts NULL. */
void convgen_npy_free(convgen_npy_array *a);

#endif
