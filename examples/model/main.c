/* main.c: runs a generated whole model the way an application would.
 *
 * `make example-model` generates mobilenet.c / mobilenet.h from
 * mobilenet_block.keras (a MobileNetV2-style block saved by real Keras:
 * ZeroPadding2D, Conv2D, BatchNormalization, ReLU6, DepthwiseConv2D, a
 * residual Add), then this program runs it on the input that was fed to Keras
 * and compares every output with Keras's own (expected.npy). The model needs
 * a scratch arena of MOBILENET_ARENA_SIZE floats; here it is static. */
#include "convgen_npy.h"
#include "mobilenet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* One arena per thread that runs the model at the same time; +1 keeps the
 * array valid when a model needs none. */
static float arena[MOBILENET_ARENA_SIZE + 1];

static int load(const char *path, convgen_npy_array *a)
{
    char err[256];
    if (convgen_npy_load(path, a, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", path, err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s input.npy expected.npy\n", argv[0]);
        return 2;
    }
    convgen_npy_array input, expected;
    if (load(argv[1], &input) != 0 || load(argv[2], &expected) != 0)
        return 1;
    int batch = (int)input.shape[0];
    if (input.count != (long)batch * MOBILENET_INPUT_SIZE || expected.count != (long)batch * MOBILENET_OUTPUT_SIZE) {
        fprintf(stderr, "the .npy files do not match the model's shapes\n");
        return 1;
    }
    float *output = malloc((size_t)expected.count * sizeof(float));
    if (!output)
        return 1;

    mobilenet(input.data, output, batch, arena);

    double worst = 0.0;
    long worst_at = 0;
    for (long i = 0; i < expected.count; i++) {
        double d = fabs((double)output[i] - (double)expected.data[i]);
        if (d > worst || d != d) {
            worst = d;
            worst_at = i;
        }
    }
    int ok = worst <= 1e-4 * (1.0 + fabs((double)expected.data[worst_at]));
    printf("%d items, %d floats of arena\n", batch, MOBILENET_ARENA_SIZE);
    printf("largest difference from Keras: %.3g (element %ld of %ld)\n", worst, worst_at, expected.count);
    printf("%s\n", ok ? "OK: matches Keras's output" : "MISMATCH with Keras's output");
    free(output);
    convgen_npy_free(&input);
    convgen_npy_free(&expected);
    return ok ? 0 : 1;
}
