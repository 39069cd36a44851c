/* jit_bench.c: compile and run times of the run-time library, per backend.
 *
 * For each layer of the performance suite (NHWC, batch 1, bias and ReLU) it
 * prints the median time from spec text to callable kernel (generator
 * included, cache off) for libtcc and for the system compiler, the time of a
 * cached compile, and the median run time of each backend's kernel with the
 * ratio tcc / cc. A program that prints figures, never a test: the machine
 * is shared, so read medians and ratios.
 *
 *     build/bench/jit_bench [--quick]     (--quick: fewer repetitions, first layers only)
 */
#define _POSIX_C_SOURCE 200809L
#include "common.h"
#include "convgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *name;
    const char *class_name;
    int rank, h, w, c, k, stride, dilation, filters, dm;
    const char *padding;
} layer;

static const layer SUITE[] = {
    {"dw 3x3 112x112x32 s1", "DepthwiseConv2D", 2, 112, 112, 32, 3, 1, 1, 0, 1, "same"},
    {"dw 3x3 112x112x64 s2", "DepthwiseConv2D", 2, 112, 112, 64, 3, 2, 1, 0, 1, "same"},
    {"dw 3x3 56x56x128 s1", "DepthwiseConv2D", 2, 56, 56, 128, 3, 1, 1, 0, 1, "same"},
    {"dw 3x3 14x14x512 s1", "DepthwiseConv2D", 2, 14, 14, 512, 3, 1, 1, 0, 1, "same"},
    {"dw 3x3 7x7x1024 s1", "DepthwiseConv2D", 2, 7, 7, 1024, 3, 1, 1, 0, 1, "same"},
    {"dw 3x3 56x56x32 dm2", "DepthwiseConv2D", 2, 56, 56, 32, 3, 1, 1, 0, 2, "same"},
    {"pw 112x112x32->64", "Conv2D", 2, 112, 112, 32, 1, 1, 1, 64, 1, "same"},
    {"pw 56x56x128->128", "Conv2D", 2, 56, 56, 128, 1, 1, 1, 128, 1, "same"},
    {"pw 14x14x512->512", "Conv2D", 2, 14, 14, 512, 1, 1, 1, 512, 1, "same"},
    {"pw 7x7x1024->1024", "Conv2D", 2, 7, 7, 1024, 1, 1, 1, 1024, 1, "same"},
    {"conv 3x3 56x56x64->64", "Conv2D", 2, 56, 56, 64, 3, 1, 1, 64, 1, "same"},
    {"conv 3x3 28x28x128->128", "Conv2D", 2, 28, 28, 128, 3, 1, 1, 128, 1, "same"},
    {"conv 3x3 14x14x256->256", "Conv2D", 2, 14, 14, 256, 3, 1, 1, 256, 1, "same"},
    {"conv 3x3 7x7x512->512", "Conv2D", 2, 7, 7, 512, 3, 1, 1, 512, 1, "same"},
    {"conv 7x7 s2 224x224x3->64", "Conv2D", 2, 224, 224, 3, 7, 2, 1, 64, 1, "same"},
    {"sep 3x3 56x56x128->128", "SeparableConv2D", 2, 56, 56, 128, 3, 1, 1, 128, 1, "same"},
    {"sep1d k33 L1000 256->256", "SeparableConv1D", 1, 1, 1000, 256, 33, 1, 1, 256, 1, "same"},
    {"sep1d k3 d8 causal L16000 32", "SeparableConv1D", 1, 1, 16000, 32, 3, 1, 8, 32, 1, "causal"},
    {"conv 3x3 32x32x3->16", "Conv2D", 2, 32, 32, 3, 3, 1, 1, 16, 1, "same"},
    {"dw 3x3 16x16x16", "DepthwiseConv2D", 2, 16, 16, 16, 3, 1, 1, 0, 1, "same"},
};

static void spec_text(const layer *l, char *buf, size_t n)
{
    char extra[64] = "", shape[64];
    if (strcmp(l->class_name, "DepthwiseConv2D") != 0)
        snprintf(extra, sizeof extra, "\"filters\": %d, ", l->filters);
    if (strcmp(l->class_name, "Conv2D") != 0)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "\"depth_multiplier\": %d, ", l->dm);
    if (l->rank == 1)
        snprintf(shape, sizeof shape, "%d, %d", l->w, l->c);
    else
        snprintf(shape, sizeof shape, "%d, %d, %d", l->h, l->w, l->c);
    snprintf(buf, n,
             "{\"class_name\": \"%s\", \"config\": {%s\"kernel_size\": %d, \"strides\": %d, \"dilation_rate\": %d,"
             " \"padding\": \"%s\", \"activation\": \"relu\"}, \"build_config\": {\"input_shape\": [null, %s]}}",
             l->class_name, extra, l->k, l->stride, l->dilation, l->padding, shape);
}

/* Multiply-adds of one batch item, for GFLOP/s. */
static double macs(const layer *l, const convgen_kernel *k)
{
    long out[4];
    int r = convgen_kernel_output_shape(k, out, 4);
    double pixels = r == 3 ? (double)out[0] * out[1] : (double)out[0];
    double taps = l->rank == 1 ? l->k : (double)l->k * l->k;
    if (strcmp(l->class_name, "Conv2D") == 0)
        return pixels * l->filters * taps * l->c;
    if (strcmp(l->class_name, "DepthwiseConv2D") == 0)
        return pixels * l->c * l->dm * taps;
    return pixels * l->c * l->dm * (taps + l->filters);
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    int nlayers = quick ? 3 : (int)(sizeof SUITE / sizeof SUITE[0]);
    int compiles = quick ? 3 : 7, runs = quick ? 3 : 5;
    convgen_context *ctx;
    if (convgen_context_create(&ctx) != CONVGEN_OK)
        return 1;
    convgen_cache_set_limit(ctx, 0); /* every compile a real one */

    printf("%-29s %10s %10s %10s %10s %10s %9s %9s %7s\n", "layer", "tcc build", "cc build", "cached",
           "tcc run", "cc run", "tcc GF/s", "cc GF/s", "tcc/cc");
    double build_tcc_all[64];
    for (int i = 0; i < nlayers; i++) {
        const layer *l = &SUITE[i];
        char text[1024], msg[2048];
        spec_text(l, text, sizeof text);
        /* Weights: this many floats is more than any layer here needs per tensor. */
        size_t wn = (size_t)l->k * (l->rank == 2 ? l->k : 1) * l->c * (l->filters ? l->filters : 1) * l->dm +
                    (size_t)l->c * l->dm * (l->filters ? l->filters : 1) + 4096;
        float *wbuf = calloc(wn, sizeof(float));
        for (size_t j = 0; j < wn; j++)
            wbuf[j] = (float)((int)(j % 17) - 8) * 0.01f;
        const float *weights[3] = {wbuf, wbuf, wbuf};
        convgen_spec spec = CONVGEN_SPEC_INIT;
        spec.text = text;
        spec.weights = weights;
        spec.num_weights = strcmp(l->class_name, "SeparableConv2D") == 0 || strcmp(l->class_name, "SeparableConv1D") == 0 ? 3 : 2;

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
        /* A cached compile: same spec and weights again. */
        convgen_cache_set_limit(ctx, 4);
        spec.backend = CONVGEN_BACKEND_TCC;
        convgen_kernel *k1, *k2;
        convgen_compile(ctx, &spec, &k1, NULL, 0);
        double t0 = bench_now();
        convgen_compile(ctx, &spec, &k2, NULL, 0);
        double cached = bench_now() - t0;
        convgen_kernel_destroy(k1);
        convgen_kernel_destroy(k2);
        convgen_cache_clear(ctx);
        convgen_cache_set_limit(ctx, 0);

        size_t in_n = convgen_kernel_input_size(kernels[0]), out_n = convgen_kernel_output_size(kernels[0]);
        float *in = calloc(in_n, sizeof(float)), *out = calloc(out_n, sizeof(float));
        for (size_t j = 0; j < in_n; j++)
            in[j] = (float)((int)(j % 13) - 6) * 0.1f;
        for (int b = 0; b < 2; b++) {
            double t[16];
            convgen_kernel_run(kernels[b], in, out, 1); /* warm */
            for (int r = 0; r < runs; r++) {
                double s0 = bench_now();
                convgen_kernel_run(kernels[b], in, out, 1);
                t[r] = bench_now() - s0;
            }
            run[b] = bench_median(t, runs);
        }
        double flops = 2.0 * macs(l, kernels[0]);
        printf("%-29s %8.2fms %8.1fms %8.4fms %8.2fms %8.2fms %9.2f %9.2f %7.2f\n", l->name, build[0] * 1e3,
               build[1] * 1e3, cached * 1e3, run[0] * 1e3, run[1] * 1e3, flops / run[0] * 1e-9,
               flops / run[1] * 1e-9, run[0] / run[1]);
        fflush(stdout);
        build_tcc_all[i] = build[0];
        convgen_kernel_destroy(kernels[0]);
        convgen_kernel_destroy(kernels[1]);
        free(in);
        free(out);
        free(wbuf);
    }
    printf("median tcc build over the suite: %.2f ms\n", bench_median(build_tcc_all, nlayers) * 1e3);
    convgen_context_destroy(ctx);
    return 0;
}
