/* npy.c: float32 .npy reading and writing (format versions 1, 2 and 3). */
#include "convgen_npy.h"
#include "fileio.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char NPY_MAGIC[] = "\x93NUMPY";

/* The fields of a header dict like
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * parsed strictly: each key once, nothing else in it. */
struct npy_header {
    char descr[16];
    int fortran_order; /* -1 until seen */
    int rank;          /* -1 until seen */
    long shape[CONVGEN_NPY_MAX_RANK];
};

static const char *skip_spaces(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A quoted Python string into out; returns the text after it, or NULL. */
static const char *parse_quoted(const char *p, char *out, size_t size)
{
    char quote = *p;
    if (quote != '\'' && quote != '"')
        return NULL;
    size_t n = 0;
    for (p++; *p && *p != quote; p++) {
        if (n + 1 >= size)
            return NULL;
        out[n++] = *p;
    }
    if (*p != quote)
        return NULL;
    out[n] = 0;
    return p + 1;
}

/* "(2, 3)", "(5,)" or "()" into shape; returns the text after it, or NULL. */
static const char *parse_shape(const char *p, long *shape, int *rank)
{
    if (*p++ != '(')
        return NULL;
    *rank = 0;
    for (;;) {
        p = skip_spaces(p);
        if (*p == ')')
            return p + 1;
        if (*p < '0' || *p > '9' || *rank == CONVGEN_NPY_MAX_RANK)
            return NULL;
        long v = 0;
        while (*p >= '0' && *p <= '9') {
            if (v > (LONG_MAX - 9) / 10)
                return NULL;
            v = v * 10 + (*p++ - '0');
        }
        shape[(*rank)++] = v;
        p = skip_spaces(p);
        if (*p == ',')
            p++;
        else if (*p != ')')
            return NULL;
        else if (*rank == 1)
            return NULL; /* a one-element tuple is written (n,) */
    }
}

static int parse_header(const char *p, struct npy_header *h)
{
    h->descr[0] = 0;
    h->fortran_order = -1;
    h->rank = -1;
    p = skip_spaces(p);
    if (*p++ != '{')
        return -1;
    for (;;) {
        p = skip_spaces(p);
        if (*p == '}')
            break;
        char key[32];
        p = parse_quoted(p, key, sizeof key);
        if (!p)
            return -1;
        p = skip_spaces(p);
        if (*p++ != ':')
            return -1;
        p = skip_spaces(p);
        if (strcmp(key, "descr") == 0 && !h->descr[0]) {
            p = parse_quoted(p, h->descr, sizeof h->descr);
        } else if (strcmp(key, "fortran_order") == 0 && h->fortran_order < 0) {
            if (strncmp(p, "False", 5) == 0)
                h->fortran_order = 0, p += 5;
            else if (strncmp(p, "True", 4) == 0)
                h->fortran_order = 1, p += 4;
            else
                return -1;
        } else if (strcmp(key, "shape") == 0 && h->rank < 0) {
            p = parse_shape(p, h->shape, &h->rank);
        } else {
            return -1;
        }
        if (!p)
            return -1;
        p = skip_spaces(p);
        if (*p == ',')
            p++;
        else if (*p != '}')
            return -1;
    }
    p = skip_spaces(p + 1);
    while (*p == '\n' || *p == ' ')
        p++;
    return *p == 0 && h->descr[0] && h->fortran_order >= 0 && h->rank >= 0 ? 0 : -1;
}

int convgen_npy_parse(const unsigned char *bytes, size_t size, convgen_npy_array *out,
                      char *err, size_t err_size)
{
    if (size < 10 || memcmp(bytes, NPY_MAGIC, 6) != 0) {
        snprintf(err, err_size, "not a .npy file (bad magic)");
        return -1;
    }
    int major = bytes[6];
    size_t hlen, start;
    if (major == 1) {
        hlen = (size_t)bytes[8] | (size_t)bytes[9] << 8;
        start = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) {
            snprintf(err, err_size, "truncated .npy header");
            return -1;
        }
        hlen = (size_t)bytes[8] | (size_t)bytes[9] << 8 | (size_t)bytes[10] << 16 | (size_t)bytes[11] << 24;
        start = 12;
    } else {
        snprintf(err, err_size, "unsupported .npy format version %d", major);
        return -1;
    }
    if (hlen > size - start) {
        snprintf(err, err_size, "truncated .npy header");
        return -1;
    }
    char *hdr = malloc(hlen + 1);
    if (!hdr) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    memcpy(hdr, bytes + start, hlen);
    hdr[hlen] = 0;

    struct npy_header h;
    int parsed = parse_header(hdr, &h);
    free(hdr);
    if (parsed != 0) {
        snprintf(err, err_size, "malformed .npy header");
        return -1;
    }
    int elem = 0;
    if (strcmp(h.descr, "<f4") == 0 || strcmp(h.descr, "|f4") == 0)
        elem = 4;
    else if (strcmp(h.descr, "<f8") == 0)
        elem = 8;
    if (!elem) {
        snprintf(err, err_size, "dtype '%s' is not supported (float32 or float64 only)", h.descr);
        return -1;
    }
    if (h.fortran_order) {
        snprintf(err, err_size, "Fortran-ordered arrays are not supported (save a C-ordered array)");
        return -1;
    }
    int rank = h.rank;
    long *shape = h.shape;
    long count = 1;
    for (int i = 0; i < rank; i++) {
        if (shape[i] != 0 && count > (long)(SIZE_MAX / 8) / shape[i]) {
            snprintf(err, err_size, "array too large");
            return -1;
        }
        count *= shape[i];
    }
    size_t body = start + hlen;
    if ((size_t)count * (size_t)elem != size - body) {
        snprintf(err, err_size, "%s: expected %ld bytes of data for the shape, found %zu",
                 (size_t)count * (size_t)elem > size - body ? "truncated .npy file" : "trailing bytes in .npy file",
                 count * elem, size - body);
        return -1;
    }
    float *data = malloc(count > 0 ? (size_t)count * sizeof(float) : 1);
    if (!data) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    if (elem == 4) {
        memcpy(data, bytes + body, (size_t)count * 4);
    } else {
        for (long i = 0; i < count; i++) {
            double d;
            memcpy(&d, bytes + body + (size_t)i * 8, 8);
            /* Out of float's range the conversion is undefined: round to infinity as NumPy does. */
            data[i] = d > FLT_MAX ? INFINITY : d < -FLT_MAX ? -INFINITY : (float)d;
        }
    }
    out->rank = rank;
    memcpy(out->shape, shape, sizeof h.shape);
    out->count = count;
    out->data = data;
    return 0;
}

int convgen_npy_load(const char *path, convgen_npy_array *out, char *err, size_t err_size)
{
    unsigned char *bytes;
    size_t size;
    if (convgen__read_file(path, &bytes, &size, err, err_size) != 0)
        return -1;
    int status = convgen_npy_parse(bytes, size, out, err, err_size);
    free(bytes);
    return status;
}

int convgen_npy_save(const char *path, int rank, const long *shape, const float *data,
                     char *err, size_t err_size)
{
    if (rank < 0 || rank > CONVGEN_NPY_MAX_RANK) {
        snprintf(err, err_size, "rank %d out of range", rank);
        return -1;
    }
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    long count = 1;
    for (int i = 0; i < rank; i++) {
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%ld,%s", shape[i], i + 1 < rank ? " " : "");
        count *= shape[i];
    }
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    /* Pad with spaces so the data starts on a 64-byte boundary, ending in a newline. */
    size_t header = 10 + (size_t)n + 1;
    size_t padded = (header + 63) / 64 * 64;
    size_t hlen = padded - 10;
    size_t total = padded + (size_t)count * 4;
    unsigned char *buf = malloc(total);
    if (!buf) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    memcpy(buf, NPY_MAGIC, 6);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', hlen - (size_t)n - 1);
    buf[padded - 1] = '\n';
    memcpy(buf + padded, data, (size_t)count * 4);
    int status = convgen__write_file_atomic(path, buf, total, err, err_size);
    free(buf);
    return status;
}

void convgen_npy_free(convgen_npy_array *a)
{
    if (a) {
        free(a->data);
        a->data = NULL;
    }
}
