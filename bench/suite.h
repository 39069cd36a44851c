/* suite.h: the performance suite both benchmark programs time (NHWC, batch 1,
 * bias and ReLU), as reference-layer descriptions and as spec text. */
#ifndef CONVGEN_BENCH_SUITE_H
#define CONVGEN_BENCH_SUITE_H

#include <stddef.h>

#include "reference.h"

typedef struct {
    const char *name;
    ref_kind kind;
    int rank, h, w, c, k, stride, dilation, filters, dm;
    const char *padding;
} suite_layer;

extern const suite_layer bench_suite[];
extern const int bench_suite_size;

/* The layer for the naive reference. */
ref_layer bench_suite_ref(const suite_layer *s);

/* The layer as Keras serializes it. */
void bench_suite_spec(const suite_layer *s, char *buf, size_t n);

/* Multiply-adds of one batch item. */
double bench_suite_macs(const ref_layer *l);

#endif
