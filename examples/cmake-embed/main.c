/* main.c: runs the layer that CMakeLists.txt generates at build time from
 * layer.json and layer.weights/ (a DepthwiseConv2D, as the function dwconv) on
 * the input fed to Keras, and compares the result with Keras's own output.
 *
 *     cmake -S . -B build && cmake --build build && build/app input.npy expected.npy */
#include "convgen_npy.h"
#include "dwconv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s input.npy expected.npy\n", argv[0]);
        return 2;
    }
    convgen_npy_array input, expected;
    char err[256];
    if (convgen_npy_load(argv[1], &input, err, sizeof err) != 0 ||
        convgen_npy_load(argv[2], &expected, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int batch = input.rank > 0 ? (int)input.shape[0] : 0;
    if (batch < 1 || input.count != (long)batch * DWCONV_INPUT_SIZE ||
        expected.count != (long)batch * DWCONV_OUTPUT_SIZE) {
        fprintf(stderr, "%s and %s do not match the layer's shapes\n", argv[1], argv[2]);
        return 1;
    }
    float *output = malloc((size_t)expected.count * sizeof *output);
    if (!output) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    dwconv(input.data, output, batch);

    double worst = 0.0;
    for (long i = 0; i < expected.count; i++) {
        double d = fabs((double)output[i] - (double)expected.data[i]);
        if (!(d <= worst)) /* also catches NaN */
            worst = d;
    }
    int ok = worst <= 1e-4;
    printf("dwconv: %d x %dx%dx%d -> %dx%dx%d, largest difference from Keras %.3g\n", batch,
           DWCONV_INPUT_H, DWCONV_INPUT_W, DWCONV_INPUT_C, DWCONV_OUTPUT_H, DWCONV_OUTPUT_W,
           DWCONV_OUTPUT_C, worst);
    printf("%s\n", ok ? "OK: matches Keras's output" : "MISMATCH with Keras's output");
    free(output);
    convgen_npy_free(&input);
    convgen_npy_free(&expected);
    return ok ? 0 : 1;
}
