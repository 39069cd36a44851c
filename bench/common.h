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

/* Keras depthwise kernel (taps, c, dm) as [c * dm + m][taps], the grouped
 * layout both peers take (groups = c, dm outputs each); malloc'd. */
float *bench_depthwise_by_channel(const float *kernel, int c, int dm, int taps);

/* Keras pointwise kernel (k, f) as [f][k]; malloc'd. */
float *bench_pointwise_by_output(const float *kernel, int k, int f);

#endif
