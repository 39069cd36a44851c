/* common.h: what the benchmark programs share: a clock, medians, Keras pads. */
#ifndef CONVGEN_BENCH_COMMON_H
#define CONVGEN_BENCH_COMMON_H

/* Monotonic seconds. */
double bench_now(void);

/* The median of n timings (sorts them). */
double bench_median(double *v, int n);

/* Keras output size and pads of one spatial axis ("valid", "same", "causal"),
 * for peers that take explicit pads. */
void bench_keras_axis(const char *padding, int in, int k, int s, int d, int *out, int *before, int *after);

#endif
