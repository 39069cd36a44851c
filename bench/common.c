/* common.c: shared helpers of the benchmark programs. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, compare);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void bench_keras_axis(const char *padding, int in, int k, int s, int d, int *out, int *before, int *after)
{
    int ke = (k - 1) * d + 1;
    if (strcmp(padding, "valid") == 0) {
        *out = (in - ke) / s + 1;
        *before = *after = 0;
    } else if (strcmp(padding, "same") == 0) {
        *out = (in + s - 1) / s;
        int total = (*out - 1) * s + ke - in;
        total = total > 0 ? total : 0;
        *before = total / 2;
        *after = total - total / 2;
    } else { /* causal */
        *before = (k - 1) * d;
        *after = 0;
        *out = (in + *before - ke) / s + 1;
    }
}

float *bench_depthwise_by_channel(const float *kernel, int c, int dm, int taps)
{
    float *w = malloc((size_t)c * dm * taps * sizeof(float));
    for (int ch = 0; w && ch < c; ch++)
        for (int m = 0; m < dm; m++)
            for (int t = 0; t < taps; t++)
                w[((size_t)ch * dm + m) * taps + t] = kernel[((size_t)t * c + ch) * dm + m];
    return w;
}

float *bench_pointwise_by_output(const float *kernel, int k, int f)
{
    float *w = malloc((size_t)f * k * sizeof(float));
    for (int o = 0; w && o < f; o++)
        for (int i = 0; i < k; i++)
            w[(size_t)o * k + i] = kernel[(size_t)i * f + o];
    return w;
}
