/* peer_onednn.h: the same layer run by oneDNN, as a peer measured in the same run. */
#ifndef CONVGEN_BENCH_ONEDNN_H
#define CONVGEN_BENCH_ONEDNN_H

#include <stddef.h>

#include "reference.h"

/* Runs layer l (NHWC / NWC, batch 1, ReLU after bias) with oneDNN on input,
 * writes the output, and puts the median seconds per call over at least
 * min_time seconds in *seconds. Weights in Keras order and layouts.
 * Returns 0, or -1 with a message in err. */
int onednn_run(const ref_layer *l, const float *const *weights, const float *input, float *output, double min_time,
               double *seconds, char *err, size_t err_size);

#endif
