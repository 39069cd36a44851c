/* peer_xnnpack.h: the same layer run by XNNPACK, as a second peer in the same run. */
#ifndef CONVGEN_BENCH_XNNPACK_H
#define CONVGEN_BENCH_XNNPACK_H

#include <stddef.h>

#include "reference.h"

/* As onednn_run: NHWC, batch 1, one thread, ReLU as an output clamp. */
int xnnpack_run(const ref_layer *l, const float *const *weights, const float *input, float *output, double min_time,
                double *seconds, char *err, size_t err_size);

#endif
