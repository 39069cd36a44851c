/* main.c: compiles a SeparableConv2D at run time from a spec string and runs it.
 *
 * The layer's shape is known only when the program runs (here: from the
 * command line), the way a model loaded from a file or a size chosen per
 * request would be. Weights come from a formula so the program needs no
 * files; a real program would pass its trained weights the same way.
 *
 *     build/example/jit [height width channels]    (default 32 32 8)
 */
#include "convgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static float *filled(size_t n, float scale)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; x && i < n; i++)
        x[i] = scale * (float)((int)(i * 7919 % 23) - 11) / 11.0f;
    return x;
}

int main(int argc, char **argv)
{
    int h = argc > 3 ? atoi(argv[1]) : 32, w = argc > 3 ? atoi(argv[2]) : 32, c = argc > 3 ? atoi(argv[3]) : 8;
    const int filters = 16, dm = 2;
    char text[512];
    snprintf(text, sizeof text,
             "{\"class_name\": \"SeparableConv2D\", \"config\": {\"filters\": %d, \"kernel_size\": 3,"
             " \"padding\": \"same\", \"depth_multiplier\": %d, \"activation\": \"relu\"},"
             " \"build_config\": {\"input_shape\": [null, %d, %d, %d]}}",
             filters, dm, h, w, c);

    /* Keras order and layouts: depthwise (3, 3, c, dm), pointwise (1, 1, c*dm, filters), bias (filters). */
    float *depthwise = filled((size_t)9 * c * dm, 0.3f);
    float *pointwise = filled((size_t)c * dm * filters, 0.2f);
    float *bias = filled(filters, 0.1f);
    const float *weights[] = {depthwise, pointwise, bias};

    convgen_context *ctx;
    if (convgen_context_create(&ctx) != CONVGEN_OK)
        return 1;
    convgen_spec spec = CONVGEN_SPEC_INIT;
    spec.text = text;
    spec.label = "separable";
    spec.weights = weights;
    spec.num_weights = 3;

    char message[1024];
    convgen_kernel *layer;
    double t0 = now_ms();
    convgen_status s = convgen_compile(ctx, &spec, &layer, message, sizeof message);
    double t1 = now_ms();
    if (s != CONVGEN_OK) {
        fprintf(stderr, "%s\n", message);
        return 1;
    }
    convgen_kernel *again;
    convgen_compile(ctx, &spec, &again, NULL, 0); /* the same spec and weights: from the cache */
    double t2 = now_ms();

    long in_dims[4], out_dims[4];
    convgen_kernel_input_shape(layer, in_dims, 4);
    convgen_kernel_output_shape(layer, out_dims, 4);
    float *input = filled(convgen_kernel_input_size(layer), 1.0f);
    float *output = malloc(convgen_kernel_output_size(layer) * sizeof(float));
    convgen_kernel_run(layer, input, output, 1);
    double t3 = now_ms();

    printf("SeparableConv2D [1, %ld, %ld, %ld] -> [1, %ld, %ld, %ld]\n", in_dims[0], in_dims[1], in_dims[2],
           out_dims[0], out_dims[1], out_dims[2]);
    printf("compiled in %.2f ms (generator and libtcc), again from the cache in %.3f ms, ran in %.2f ms\n",
           t1 - t0, t2 - t1, t3 - t2);
    printf("output[0, 0, 0, 0:4] = %.5f %.5f %.5f %.5f\n", (double)output[0], (double)output[1],
           (double)output[2], (double)output[3]);

    convgen_kernel_destroy(again);
    convgen_kernel_destroy(layer);
    convgen_context_destroy(ctx);
    free(input);
    free(output);
    free(depthwise);
    free(pointwise);
    free(bias);
    return again == layer ? 0 : 1;
}
