/* peak.h: measured single-core fp32 FMA peak. */
#ifndef CONVGEN_BENCH_PEAK_H
#define CONVGEN_BENCH_PEAK_H
double bench_measure_peak_gflops(void);
#endif
