/* jit_bench.c: compile and run times of the run-time library, per backend.
 *
 * For each layer of the performance suite (NHWC, batch 1, bias and ReLU) it
 * prints the median time from spec text to callable kernel (generator
 * included, cache off) for libtcc and for the system compiler, the median
 * time of a cached compile (5 lookups), and the median run time of each backend's kernel with the
 * median ratio tcc / cc of calls made in turns; then the medians and the
 * geometric mean over the suite. A program that prints figures, never a test: the machine
 * is shared, so read medians and ratios.
 *
 *     build/bench/jit_bench [--quick] [--only SUBSTRING]
 * --quick: fewer repetitions, first layers only; --only: the layers whose
 * name holds SUBSTRING (the medians and the mean are over those).
 */
#define _POSIX_C_SOURCE 200809L
#include "common.h"
#include "convgen.h"
#include "suite.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CALLS 20000

int main(int argc, char **argv)
{
    int quick = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: jit_bench [--quick] [--only SUBSTRING]\n");
            return 2;
        }
    }
    int nlayers = quick ? 3 : bench_suite_size;
    int compiles = quick ? 3 : 7, runs = quick ? 3 : 5;
    convgen_context *ctx;
    if (convgen_context_create(&ctx) != CONVGEN_OK)
        return 1;
    convgen_cache_set_limit(ctx, 0); /* every compile a real one */

    printf("%-29s %10s %10s %10s %10s %10s %9s %9s %7s\n", "layer", "tcc build", "cc build", "cached",
           "tcc run", "cc run", "tcc GF/s", "cc GF/s", "tcc/cc");
    double build_tcc_all[64], log_ratio = 0;
    static double times[2][MAX_CALLS], ratios[MAX_CALLS];
    int measured = 0;
    for (int i = 0; i < nlayers; i++) {
        const suite_layer *l = &bench_suite[i];
        if (only && !strstr(l->name, only))
            continue;
        ref_layer rl = bench_suite_ref(l);
        char text[1024], msg[2048];
        bench_suite_spec(l, text, sizeof text);
        float *w[3] = {NULL, NULL, NULL};
        for (int k = 0; k < ref_weight_count(&rl); k++) {
            long wn = ref_weight_size(&rl, k);
            w[k] = malloc((size_t)wn * sizeof(float));
            for (long j = 0; j < wn; j++)
                w[k][j] = (float)((int)(j % 17) - 8) * 0.01f;
        }
        convgen_spec spec = CONVGEN_SPEC_INIT;
        spec.text = text;
        spec.weights = (const float *const *)w;
        spec.num_weights = ref_weight_count(&rl);

        convgen_kernel *kernels[2] = {NULL, NULL};
        double build[2], run[2];
        for (int b = 0; b < 2; b++) {
            spec.backend = b ? CONVGEN_BACKEND_CC : CONVGEN_BACKEND_TCC;
            double t[16];
            int n = b ? (quick ? 1 : 3) : compiles;
            for (int r = 0; r < n; r++) {
                convgen_kernel *k;
                double t0 = bench_now();
                if (convgen_compile(ctx, &spec, &k, msg, sizeof msg) != CONVGEN_OK) {
                    fprintf(stderr, "%s: %s\n", l->name, msg);
                    return 1;
                }
                t[r] = bench_now() - t0;
                if (kernels[b])
                    convgen_kernel_destroy(k);
                else
                    kernels[b] = k;
            }
            build[b] = bench_median(t, n);
        }
        /* A cached compile: same spec and weights again (the median of 5
         * lookups in one context). */
        convgen_cache_set_limit(ctx, 4);
        spec.backend = CONVGEN_BACKEND_TCC;
        convgen_kernel *k1, *k2;
        convgen_compile(ctx, &spec, &k1, NULL, 0);
        double lookups[5];
        for (int r = 0; r < 5; r++) {
            double t0 = bench_now();
            convgen_compile(ctx, &spec, &k2, NULL, 0);
            lookups[r] = bench_now() - t0;
            convgen_kernel_destroy(k2);
        }
        double cached = bench_median(lookups, 5);
        convgen_kernel_destroy(k1);
        convgen_cache_clear(ctx);
        convgen_cache_set_limit(ctx, 0);

        size_t in_n = convgen_kernel_input_size(kernels[0]), out_n = convgen_kernel_output_size(kernels[0]);
        /* 64-byte aligned tensors, as in make bench */
        float *in = NULL, *out = NULL;
        if (posix_memalign((void **)&in, 64, (size_t)in_n * sizeof(float)) != 0 ||
            posix_memalign((void **)&out, 64, (size_t)out_n * sizeof(float)) != 0) {
            fprintf(stderr, "jit_bench: out of memory\n");
            return 1;
        }
        memset(in, 0, (size_t)in_n * sizeof(float));
        for (size_t j = 0; j < in_n; j++)
            in[j] = (float)((int)(j % 13) - 6) * 0.1f;
        /* Calls alternate between the two kernels, so load on the shared
         * machine hits both alike: medians of each, and of the ratios of
         * neighbouring calls. About 0.2 s per kernel (at least `runs` calls). */
        double one = bench_now();
        convgen_kernel_run(kernels[0], in, out, 1); /* warm, and a first estimate */
        convgen_kernel_run(kernels[1], in, out, 1);
        one = (bench_now() - one) / 2;
        int calls = (int)(0.2 / (one > 1e-7 ? one : 1e-7));
        calls = calls < runs ? runs : calls > MAX_CALLS ? MAX_CALLS : calls;
        for (int r = 0; r < calls; r++) {
            for (int b = 0; b < 2; b++) {
                double s0 = bench_now();
                convgen_kernel_run(kernels[b], in, out, 1);
                times[b][r] = bench_now() - s0;
            }
            ratios[r] = times[0][r] / times[1][r];
        }
        run[0] = bench_median(times[0], calls);
        run[1] = bench_median(times[1], calls);
        double ratio = bench_median(ratios, calls);
        log_ratio += log(ratio);
        double flops = 2.0 * bench_suite_macs(&rl);
        printf("%-29s %8.2fms %8.1fms %8.4fms %8.2fms %8.2fms %9.2f %9.2f %7.2f\n", l->name, build[0] * 1e3,
               build[1] * 1e3, cached * 1e3, run[0] * 1e3, run[1] * 1e3, flops / run[0] * 1e-9,
               flops / run[1] * 1e-9, ratio);
        fflush(stdout);
        build_tcc_all[measured++] = build[0];
        convgen_kernel_destroy(kernels[0]);
        convgen_kernel_destroy(kernels[1]);
        free(in);
        free(out);
        for (int k = 0; k < 3; k++)
            free(w[k]);
    }
    if (measured == 0) {
        fprintf(stderr, "jit_bench: no layer of the suite matches \"%s\"\n", only);
        return 2;
    }
    printf("median tcc build over the suite: %.2f ms\n", bench_median(build_tcc_all, measured) * 1e3);
    printf("geometric mean of tcc/cc run time: %.2f\n", exp(log_ratio / measured));
    convgen_context_destroy(ctx);
    return 0;
}
