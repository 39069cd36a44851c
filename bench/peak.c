/* peak.c: the machine's fp32 FMA peak on one core, measured, not assumed:
 * 12 independent chains of 8-lane fused multiply-adds (compiled -mavx2 -mfma). */
#include "peak.h"

#include "common.h"

#include <immintrin.h>

double bench_measure_peak_gflops(void)
{
    double best = 0.0;
    for (int trial = 0; trial < 5; trial++) {
        __m256 a[12];
        const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
        for (int i = 0; i < 12; i++)
            a[i] = _mm256_set1_ps((float)i);
        const long iterations = 20000000;
        double t0 = bench_now();
        for (long n = 0; n < iterations; n++) {
            a[0] = _mm256_fmadd_ps(a[0], b, c);
            a[1] = _mm256_fmadd_ps(a[1], b, c);
            a[2] = _mm256_fmadd_ps(a[2], b, c);
            a[3] = _mm256_fmadd_ps(a[3], b, c);
            a[4] = _mm256_fmadd_ps(a[4], b, c);
            a[5] = _mm256_fmadd_ps(a[5], b, c);
            a[6] = _mm256_fmadd_ps(a[6], b, c);
            a[7] = _mm256_fmadd_ps(a[7], b, c);
            a[8] = _mm256_fmadd_ps(a[8], b, c);
            a[9] = _mm256_fmadd_ps(a[9], b, c);
            a[10] = _mm256_fmadd_ps(a[10], b, c);
            a[11] = _mm256_fmadd_ps(a[11], b, c);
        }
        double t = bench_now() - t0;
        __m256 sum = a[0];
        for (int i = 1; i < 12; i++)
            sum = _mm256_add_ps(sum, a[i]);
        float out[8];
        _mm256_storeu_ps(out, sum);
        double gflops = (double)iterations * 12 * 16 / t * 1e-9 + (out[0] == 12345.0f ? 1e-9 : 0.0);
        if (gflops > best)
            best = gflops;
    }
    return best;
}
