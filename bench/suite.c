/* suite.c: the performance suite (issue list), shared by bench and jit_bench. */
#include "suite.h"

#include <stdio.h>
#include <string.h>

const suite_layer bench_suite[] = {
    {"dw 3x3 112x112x32 s1", REF_DEPTHWISE, 2, 112, 112, 32, 3, 1, 1, 0, 1, "same"},
    {"dw 3x3 112x112x64 s2", REF_DEPTHWISE, 2, 112, 112, 64, 3, 2, 1, 0, 1, "same"},
    {"dw 3x3 56x56x128 s1", REF_DEPTHWISE, 2, 56, 56, 128, 3, 1, 1, 0, 1, "same"},
    {"dw 3x3 14x14x512 s1", REF_DEPTHWISE, 2, 14, 14, 512, 3, 1, 1, 0, 1, "same"},
    {"dw 3x3 7x7x1024 s1", REF_DEPTHWISE, 2, 7, 7, 1024, 3, 1, 1, 0, 1, "same"},
    {"dw 3x3 56x56x32 dm2", REF_DEPTHWISE, 2, 56, 56, 32, 3, 1, 1, 0, 2, "same"},
    {"pw 112x112x32->64", REF_CONV, 2, 112, 112, 32, 1, 1, 1, 64, 1, "same"},
    {"pw 56x56x128->128", REF_CONV, 2, 56, 56, 128, 1, 1, 1, 128, 1, "same"},
    {"pw 14x14x512->512", REF_CONV, 2, 14, 14, 512, 1, 1, 1, 512, 1, "same"},
    {"pw 7x7x1024->1024", REF_CONV, 2, 7, 7, 1024, 1, 1, 1, 1024, 1, "same"},
    {"conv 3x3 56x56x64->64", REF_CONV, 2, 56, 56, 64, 3, 1, 1, 64, 1, "same"},
    {"conv 3x3 28x28x128->128", REF_CONV, 2, 28, 28, 128, 3, 1, 1, 128, 1, "same"},
    {"conv 3x3 14x14x256->256", REF_CONV, 2, 14, 14, 256, 3, 1, 1, 256, 1, "same"},
    {"conv 3x3 7x7x512->512", REF_CONV, 2, 7, 7, 512, 3, 1, 1, 512, 1, "same"},
    {"conv 7x7 s2 224x224x3->64", REF_CONV, 2, 224, 224, 3, 7, 2, 1, 64, 1, "same"},
    {"sep 3x3 56x56x128->128", REF_SEPARABLE, 2, 56, 56, 128, 3, 1, 1, 128, 1, "same"},
    {"sep1d k33 L1000 256->256", REF_SEPARABLE, 1, 1, 1000, 256, 33, 1, 1, 256, 1, "same"},
    {"sep1d k3 d8 causal L16000 32", REF_SEPARABLE, 1, 1, 16000, 32, 3, 1, 8, 32, 1, "causal"},
    {"conv 3x3 32x32x3->16", REF_CONV, 2, 32, 32, 3, 3, 1, 1, 16, 1, "same"},
    {"dw 3x3 16x16x16", REF_DEPTHWISE, 2, 16, 16, 16, 3, 1, 1, 0, 1, "same"},
};

const int bench_suite_size = (int)(sizeof bench_suite / sizeof bench_suite[0]);

ref_layer bench_suite_ref(const suite_layer *s)
{
    ref_layer l = {.kind = s->kind, .rank = s->rank, .channels_first = 0, .in_h = s->h, .in_w = s->w, .in_c = s->c,
                   .k_h = s->rank == 1 ? 1 : s->k, .k_w = s->k, .s_h = s->rank == 1 ? 1 : s->stride,
                   .s_w = s->stride, .d_h = s->rank == 1 ? 1 : s->dilation, .d_w = s->dilation,
                   .padding = s->padding, .filters = s->filters, .groups = 1, .depth_multiplier = s->dm,
                   .use_bias = 1, .activation = "relu", .keras_version = 3};
    return l;
}

void bench_suite_spec(const suite_layer *s, char *buf, size_t n)
{
    static const char *const classes[3][2] = {
        {"Conv1D", "Conv2D"}, {"DepthwiseConv1D", "DepthwiseConv2D"}, {"SeparableConv1D", "SeparableConv2D"}};
    char extra[64] = "", shape[64];
    if (s->kind != REF_DEPTHWISE)
        snprintf(extra, sizeof extra, "\"filters\": %d, ", s->filters);
    if (s->kind != REF_CONV)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "\"depth_multiplier\": %d, ", s->dm);
    if (s->rank == 1)
        snprintf(shape, sizeof shape, "%d, %d", s->w, s->c);
    else
        snprintf(shape, sizeof shape, "%d, %d, %d", s->h, s->w, s->c);
    snprintf(buf, n,
             "{\"class_name\": \"%s\", \"config\": {%s\"kernel_size\": %d, \"strides\": %d, \"dilation_rate\": %d,"
             " \"padding\": \"%s\", \"activation\": \"relu\"}, \"build_config\": {\"input_shape\": [null, %s]}}",
             classes[s->kind][s->rank - 1], extra, s->k, s->stride, s->dilation, s->padding, shape);
}

double bench_suite_macs(const ref_layer *l)
{
    int oh, ow, oc;
    ref_output_shape(l, &oh, &ow, &oc);
    double pixels = (double)oh * ow, taps = (double)l->k_h * l->k_w;
    if (l->kind == REF_CONV)
        return pixels * l->filters * taps * (l->in_c / l->groups);
    if (l->kind == REF_DEPTHWISE)
        return pixels * l->in_c * l->depth_multiplier * taps;
    return pixels * l->in_c * l->depth_multiplier * (taps + l->filters);
}
