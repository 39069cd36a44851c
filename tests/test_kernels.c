/* test_kernels.c: generated layers against the independent naive reference.
 *
 * A matrix over every argument class: each layer kind x both data formats x
 * padding/stride/dilation geometries (valid, asymmetric 'same' on odd and
 * even sizes, kernel larger than the input, causal, long kernels) x channel
 * counts below, at and above the register tile x depth multipliers 1-3 x
 * groups x bias on/off x every activation x batch 1 and 3, with weights
 * baked in (from .npy files) or passed at run time. Each case is generated,
 * compiled in-process by libtcc and, as one file with every case, by gcc;
 * both are run and compared with the reference. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "convgen_npy.h"
#include "harness.h"
#include "host.h"
#include "jit.h"
#include "reference.h"

#include <dlfcn.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CASES 768
#define GUARD 16

typedef struct {
    char name[128];
    char symbol[32];
    ref_layer layer;
    int batch;
    int baked;              /* weights from .npy files, baked into the source */
    int tf_keras_names;     /* name the depthwise file depthwise_kernel.npy */
    const char *unroll;
    const char *target;     /* "scalar"; "avx2" (built by gcc only: tcc has no intrinsics); or
                               "hybrid" (built by tcc only, against the runtime's microkernels) */
    char *source;
    long packed_size;       /* floats of packed weights (weights at run time, SIMD strips) */
    long rows_per_item;     /* what the _rows entry point counts per item: rows, or a 1D row's segments */
    const char *reaches;    /* text the source must hold: the case reaches the code path it is for */
    float *weights[4];
    int nweights;
} kernel_case;

static kernel_case cases[MAX_CASES];
static int ncases;
static char *workdir;
static void *gcc_handle;
static char *gcc_log;
static char *combined_path;        /* every case: gcc and clang */
static char *combined_scalar_path; /* scalar cases only: tcc */
static char *combined_hybrid_path; /* hybrid drivers: compiled (not linked) by gcc, clang and tcc */

static const char *const ACTIVATIONS[] = {
    "linear", "relu", "relu6", "sigmoid", "tanh", "elu", "selu", "softplus", "softsign", "swish",
    "silu", "gelu", "hard_sigmoid", "hard_swish", "hard_silu", "leaky_relu", "exponential", "mish",
    "softmax", "log_softmax",
};
#define NACT ((int)(sizeof ACTIVATIONS / sizeof ACTIVATIONS[0]))

struct geometry {
    int h, w, kh, kw, sh, sw, dh, dw;
    const char *padding;
    const char *label;
};

static const struct geometry GEOMETRIES_2D[] = {
    {7, 6, 3, 3, 1, 1, 1, 1, "valid", "valid_k3"},
    {7, 9, 3, 3, 2, 2, 1, 1, "same", "same_k3_s2_odd"},
    {8, 6, 4, 4, 2, 2, 1, 1, "same", "same_k4_s2_even"},
    {8, 7, 3, 3, 2, 2, 1, 1, "same", "same_k3_s2_odd_pad"},   /* pads 0/1 rows, 1/1 columns */
    {6, 5, 4, 2, 1, 1, 1, 1, "same", "same_k4x2_odd_pad"},    /* pads 1/2 rows, 0/1 columns */
    {3, 4, 5, 5, 1, 1, 1, 1, "same", "same_kernel_larger_than_input"},
    {9, 8, 3, 3, 1, 1, 2, 2, "same", "same_k3_d2"},
    {6, 9, 2, 3, 1, 2, 1, 1, "valid", "valid_k2x3_s1x2"},
    {5, 7, 3, 1, 1, 1, 1, 1, "same", "same_k3x1"},
    {6, 6, 3, 3, 3, 3, 1, 1, "same", "same_k3_s3"},
};
static const struct geometry GEOMETRIES_1D[] = {
    {1, 9, 1, 3, 1, 1, 1, 1, "valid", "valid_k3"},
    {1, 9, 1, 3, 1, 2, 1, 1, "same", "same_k3_s2_odd"},
    {1, 8, 1, 4, 1, 2, 1, 1, "same", "same_k4_s2_even"},
    {1, 8, 1, 3, 1, 2, 1, 1, "same", "same_k3_s2_odd_pad"},   /* pads 0/1 */
    {1, 7, 1, 4, 1, 1, 1, 1, "same", "same_k4_odd_pad"},      /* pads 1/2 */
    {1, 3, 1, 5, 1, 1, 1, 1, "same", "same_kernel_larger_than_input"},
    {1, 10, 1, 3, 1, 1, 1, 2, "causal", "causal_k3_d2"},
    {1, 9, 1, 4, 1, 2, 1, 1, "causal", "causal_k4_s2"},
    {1, 40, 1, 33, 1, 1, 1, 1, "same", "same_k33_long"},
    {1, 12, 1, 3, 1, 1, 1, 3, "same", "same_k3_d3"},
};

static const char *class_name(const ref_layer *l)
{
    static const char *const names[3][2] = {
        {"Conv1D", "Conv2D"}, {"DepthwiseConv1D", "DepthwiseConv2D"}, {"SeparableConv1D", "SeparableConv2D"}};
    return names[l->kind][l->rank - 1];
}

/* The layer as Keras serializes it. */
static void spec_json(const kernel_case *c, char *buf, size_t n)
{
    const ref_layer *l = &c->layer;
    char k[32], s[32], d[32], shape[64];
    if (l->rank == 1) {
        snprintf(k, sizeof k, "[%d]", l->k_w);
        snprintf(s, sizeof s, "[%d]", l->s_w);
        snprintf(d, sizeof d, "[%d]", l->d_w);
        if (l->channels_first)
            snprintf(shape, sizeof shape, "[null, %d, %d]", l->in_c, l->in_w);
        else
            snprintf(shape, sizeof shape, "[null, %d, %d]", l->in_w, l->in_c);
    } else {
        snprintf(k, sizeof k, "[%d, %d]", l->k_h, l->k_w);
        snprintf(s, sizeof s, "[%d, %d]", l->s_h, l->s_w);
        snprintf(d, sizeof d, "[%d, %d]", l->d_h, l->d_w);
        if (l->channels_first)
            snprintf(shape, sizeof shape, "[null, %d, %d, %d]", l->in_c, l->in_h, l->in_w);
        else
            snprintf(shape, sizeof shape, "[null, %d, %d, %d]", l->in_h, l->in_w, l->in_c);
    }
    char extra[96] = "";
    if (l->kind == REF_CONV)
        snprintf(extra, sizeof extra, "\"filters\": %d, \"groups\": %d,", l->filters, l->groups);
    else if (l->kind == REF_DEPTHWISE)
        snprintf(extra, sizeof extra, "\"depth_multiplier\": %d,", l->depth_multiplier);
    else
        snprintf(extra, sizeof extra, "\"filters\": %d, \"depth_multiplier\": %d,", l->filters, l->depth_multiplier);
    snprintf(buf, n,
             "{\"class_name\": \"%s\", \"config\": {\"name\": \"%s\", %s \"kernel_size\": %s, \"strides\": %s,"
             " \"padding\": \"%s\", \"data_format\": \"%s\", \"dilation_rate\": %s, \"activation\": \"%s\","
             " \"use_bias\": %s}, \"build_config\": {\"input_shape\": %s}}",
             class_name(l), c->symbol, extra, k, s, l->padding,
             l->channels_first ? "channels_first" : "channels_last", d, l->activation,
             l->use_bias ? "true" : "false", shape);
}

static const char *weight_file(const kernel_case *c, int i)
{
    if (c->layer.kind == REF_SEPARABLE)
        return i == 0 ? "depthwise_kernel.npy" : i == 1 ? "pointwise_kernel.npy" : "bias.npy";
    if (i == 1)
        return "bias.npy";
    return c->layer.kind == REF_DEPTHWISE && c->tf_keras_names ? "depthwise_kernel.npy" : "kernel.npy";
}

/* Keras shape of weight i (for the .npy header). */
static int weight_shape(const ref_layer *l, int i, long *shape)
{
    int r = 0;
    int pointwise = l->kind == REF_SEPARABLE && i == 1;
    if (i == ref_weight_count(l) - 1 && l->use_bias) {
        shape[0] = ref_weight_size(l, i);
        return 1;
    }
    if (l->rank == 2)
        shape[r++] = pointwise ? 1 : l->k_h;
    shape[r++] = pointwise ? 1 : l->k_w;
    if (l->kind == REF_CONV) {
        shape[r++] = l->in_c / l->groups;
        shape[r++] = l->filters;
    } else if (pointwise) {
        shape[r++] = (long)l->in_c * l->depth_multiplier;
        shape[r++] = l->filters;
    } else {
        shape[r++] = l->in_c;
        shape[r++] = l->depth_multiplier;
    }
    return r;
}

static kernel_case *add_case(const char *label, ref_layer l, int batch)
{
    if (ncases >= MAX_CASES)
        abort();
    kernel_case *c = &cases[ncases];
    memset(c, 0, sizeof *c);
    c->layer = l;
    c->batch = batch;
    c->unroll = "default";
    c->target = "scalar";
    snprintf(c->symbol, sizeof c->symbol, "case_%03d", ncases);
    snprintf(c->name, sizeof c->name, "%s_%s_%s_%s_dm%d_g%d_%s_%s_b%d", class_name(&l), label,
             l.channels_first ? "cf" : "cl", l.padding, l.depth_multiplier, l.groups,
             l.use_bias ? "bias" : "nobias", l.activation, batch);
    ncases++;
    return c;
}

/* A case that must reach a code path: its generated source must hold
 * `reaches` (the call or function that path writes). */
static kernel_case *add_reaching_case(const char *label, ref_layer l, int batch, const char *target, int baked,
                                      const char *reaches)
{
    kernel_case *c = add_case(label, l, batch);
    c->target = target;
    c->baked = baked;
    c->reaches = reaches;
    return c;
}

static void build_matrix(void)
{
    static const int in_channels[] = {1, 3, 5, 8, 11, 16};
    static const int out_channels[] = {1, 4, 8, 9, 17, 3};
    int serial = 0;
    for (int kind = REF_CONV; kind <= REF_SEPARABLE; kind++) {
        for (int rank = 1; rank <= 2; rank++) {
            const struct geometry *gs = rank == 1 ? GEOMETRIES_1D : GEOMETRIES_2D;
            int ng = (int)((rank == 1 ? sizeof GEOMETRIES_1D : sizeof GEOMETRIES_2D) / sizeof gs[0]);
            for (int g = 0; g < ng; g++) {
                for (int cf = 0; cf <= 1; cf++, serial++) {
                    ref_layer l = {0};
                    l.kind = (ref_kind)kind;
                    l.rank = rank;
                    l.channels_first = cf;
                    l.in_h = gs[g].h, l.in_w = gs[g].w;
                    l.k_h = gs[g].kh, l.k_w = gs[g].kw;
                    l.s_h = gs[g].sh, l.s_w = gs[g].sw;
                    l.d_h = gs[g].dh, l.d_w = gs[g].dw;
                    l.padding = gs[g].padding;
                    l.in_c = in_channels[serial % 6];
                    l.filters = out_channels[(serial / 2) % 6];
                    l.groups = 1;
                    l.depth_multiplier = kind == REF_CONV ? 1 : 1 + serial % 3;
                    if (kind == REF_CONV && serial % 4 == 3) {
                        l.groups = 2;
                        l.in_c = 6;
                        l.filters = 10;
                    }
                    l.use_bias = serial % 5 != 2;
                    l.activation = ACTIVATIONS[serial % NACT];
                    l.keras_version = 3;
                    kernel_case *c = add_case(gs[g].label, l, serial % 2 ? 3 : 1);
                    c->baked = serial % 3 == 0;
                    c->tf_keras_names = serial % 6 == 3;
                }
            }
        }
    }
    /* Every activation on a dense and a depthwise layer, both layouts. */
    for (int a = 0; a < NACT; a++) {
        ref_layer l = {REF_CONV, 2, a % 2, 5, 6, 9, 3, 3, 1, 1, 1, 1, "same", 10, 1, 1, 1, ACTIVATIONS[a], 3};
        add_case("activation", l, 2);
        ref_layer d = {REF_DEPTHWISE, 1, (a + 1) % 2, 1, 11, 3, 1, 5, 1, 1, 1, 1, "causal", 0, 1, 2, 1, ACTIVATIONS[a], 3};
        add_case("activation", d, 1)->baked = 1;
    }
    /* Depth multipliers above the register tile (tiled over m, with a remainder). */
    for (int cf = 0; cf <= 1; cf++) {
        ref_layer d = {REF_DEPTHWISE, 2, cf, 6, 5, 3, 3, 3, 1, 1, 1, 1, "same", 0, 1, 10, 1, "relu", 3};
        add_case("wide_dm", d, 2);
        ref_layer s = {REF_SEPARABLE, 1, cf, 1, 9, 2, 1, 3, 1, 2, 1, 1, "same", 5, 1, 11, cf, "tanh", 3};
        add_case("wide_dm", s, 1)->baked = cf;
    }
    /* Every tap in the padding: outputs are the bias alone. */
    for (int full = 0; full <= 1; full++) {
        ref_layer z = {.kind = REF_CONV, .rank = 2, .channels_first = full, .in_h = 3, .in_w = 3, .in_c = 2,
                       .k_h = 2, .k_w = 2, .s_h = 1, .s_w = 1, .d_h = 10, .d_w = 10, .padding = "same",
                       .filters = 2, .groups = 1, .depth_multiplier = 1, .use_bias = 1,
                       .activation = "sigmoid", .keras_version = 3};
        add_case(full ? "dead_taps_unroll_full" : "dead_taps", z, 2)->unroll = full ? "full" : "default";
        z.kind = REF_SEPARABLE;
        z.depth_multiplier = 2;
        kernel_case *c = add_case(full ? "dead_taps_unroll_full" : "dead_taps", z, 1);
        c->unroll = full ? "full" : "default";
        c->baked = 1;
    }
    /* The avx2 target: every dense, separable and depthwise (depth multiplier
     * 1, 2, 4 or 8) channels_last case again, plus wide layers whose strips,
     * 16-channel tiles, 8-channel tile and masked rest all occur. */
    int scalar_cases = ncases;
    for (int i = 0; i < scalar_cases; i++) {
        const kernel_case *c = &cases[i];
        const int dm = c->layer.depth_multiplier;
        if ((c->layer.kind == REF_DEPTHWISE && dm != 1 && dm != 2 && dm != 4 && dm != 8) || c->layer.channels_first ||
            c->layer.groups != 1 || strcmp(c->unroll, "default") != 0)
            continue;
        kernel_case *a = add_case("avx2", c->layer, c->batch);
        a->target = "avx2";
        a->baked = c->baked;
        snprintf(a->name, sizeof a->name, "avx2_%.100s", c->name);
    }
    static const int widths[][4] = {{20, 13, 5, 29}, {9, 8, 16, 16}, {7, 11, 3, 7}, {1, 17, 4, 40}};
    for (int i = 0; i < 4; i++) {
        ref_layer w = {.kind = REF_CONV, .rank = 2, .in_h = widths[i][0], .in_w = widths[i][1], .in_c = widths[i][2],
                       .k_h = 3, .k_w = 3, .s_h = 1 + i % 2, .s_w = 1 + i % 2, .d_h = 1, .d_w = 1,
                       .padding = i == 3 ? "valid" : "same", .filters = widths[i][3], .groups = 1,
                       .depth_multiplier = 1, .use_bias = i != 1, .activation = ACTIVATIONS[(i * 5) % NACT],
                       .keras_version = 3};
        if (i == 3)
            w.in_h = 3, w.k_h = 3;
        kernel_case *a = add_case("avx2_wide", w, 2);
        a->target = "avx2";
        a->baked = i % 2;
    }
    /* First layers of image models: 3 input channels, 3x3 at stride 1 and 2,
     * 7x7 at stride 2 (the hybrid target has microkernels made for them),
     * wide enough for strips of 6 and a narrower ending; an activation the
     * microkernels apply (one call per row) and one they do not (a call per
     * strip); then strides (2, 1), and dilated rows (the generic kernels). */
    static const int first[][5] = {/* k, s_h, s_w, d_h, swish */ {3, 2, 2, 1, 0}, {7, 2, 2, 1, 0}, {3, 1, 1, 1, 0},
                                   {3, 2, 2, 1, 1}, {7, 2, 2, 1, 1}, {3, 1, 1, 1, 1}, {3, 2, 1, 1, 0},
                                   {3, 1, 1, 2, 0}};
    for (int i = 0; i < 8; i++) {
        const int *m = first[i];
        ref_layer f = {.kind = REF_CONV, .rank = 2, .in_h = 9 + m[0] - 3, .in_w = 31 + 2 * m[0] - 6, .in_c = 3,
                       .k_h = m[0], .k_w = m[0], .s_h = m[1], .s_w = m[2], .d_h = m[3], .d_w = 1, .padding = "same",
                       .filters = 19 + 13 * (i % 2), .groups = 1, .depth_multiplier = 1, .use_bias = i % 3 != 1,
                       .activation = m[4] ? "swish" : i % 2 ? "relu" : "relu6", .keras_version = 3};
        kernel_case *a = add_case("avx2_first_layer", f, 1 + i % 2);
        a->target = "avx2";
        a->baked = i % 2;
    }
    /* Wide separable layers: strips over a depthwise tile, every tile shape. */
    for (int i = 0; i < 3; i++) {
        ref_layer sep = {.kind = REF_SEPARABLE, .rank = 2 - (i == 2), .in_h = i == 2 ? 1 : 6, .in_w = 17, .in_c = 5 + i * 6,
                         .k_h = i == 2 ? 1 : 3, .k_w = 3, .s_h = 1, .s_w = 1 + (i == 1), .d_h = 1, .d_w = 1,
                         .padding = "same", .filters = 29 - i * 4, .groups = 1, .depth_multiplier = 1 + i,
                         .use_bias = i != 1, .activation = i ? "relu" : "gelu", .keras_version = 3};
        kernel_case *a = add_case("avx2_separable", sep, 1 + i % 2);
        a->target = "avx2";
        a->baked = i % 2;
    }
    /* Separable layers with one multiplier: the depthwise step's AVX2 strips
     * (8-channel tiles and a masked one), strides, dilation, 1D; the last
     * two dilated over 32 channels, which the hybrid target's fixed-geometry
     * depthwise microkernels take. */
    static const int sep1[][5] = {/* in_c, stride, dilation, rank, k */ {13, 1, 1, 2, 3}, {24, 2, 1, 2, 3},
                                  {19, 1, 2, 2, 3}, {8, 1, 1, 1, 5}, {32, 1, 4, 1, 3}, {32, 1, 2, 2, 3}};
    for (int i = 0; i < 6; i++) {
        const int *m = sep1[i];
        ref_layer sep = {.kind = REF_SEPARABLE, .rank = m[3], .in_h = m[3] == 1 ? 1 : 7, .in_w = 20 + i,
                         .in_c = m[0], .k_h = m[3] == 1 ? 1 : m[4], .k_w = m[4], .s_h = m[3] == 1 ? 1 : m[1],
                         .s_w = m[1], .d_h = m[3] == 1 ? 1 : m[2], .d_w = m[2],
                         .padding = i == 3 || i == 4 ? "causal" : "same",
                         .filters = 9 + 7 * i, .groups = 1, .depth_multiplier = 1, .use_bias = i != 2,
                         .activation = i == 1 ? "swish" : "relu", .keras_version = 3};
        kernel_case *a = add_case("avx2_separable", sep, 1 + i % 2);
        a->target = "avx2";
        a->baked = i % 2;
    }
    /* Depthwise layers the hybrid target's fixed-geometry microkernels take:
     * 3x3 over 32 channels with dilated taps, 1x3 over 16 causal and dilated. */
    for (int i = 0; i < 2; i++) {
        ref_layer dw = {.kind = REF_DEPTHWISE, .rank = 2 - i, .in_h = i ? 1 : 9, .in_w = 23, .in_c = 32 - 16 * i,
                        .k_h = i ? 1 : 3, .k_w = 3, .s_h = 1, .s_w = 1, .d_h = i ? 1 : 2, .d_w = 2 + i,
                        .padding = i ? "causal" : "same", .filters = 0, .groups = 1, .depth_multiplier = 1,
                        .use_bias = 1, .activation = i ? "relu" : "relu6", .keras_version = 3};
        kernel_case *a = add_case("avx2_depthwise_dilated", dw, 1 + i);
        a->target = "avx2";
        a->baked = i;
    }
    /* Depthwise layers of more than 128 channels: 16-channel tiles, strips
     * down each column with their channel order alternating; an 8-channel
     * tile after the 16s, then a masked one; a run ending in a narrower strip. */
    for (int i = 0; i < 2; i++) {
        ref_layer dw = {.kind = REF_DEPTHWISE, .rank = 2, .in_h = 8 + i, .in_w = 11 + 3 * i, .in_c = 136 + 14 * i,
                        .k_h = 3, .k_w = 3, .s_h = 1 + i, .s_w = 1, .d_h = 1, .d_w = 1, .padding = "same",
                        .filters = 0, .groups = 1, .depth_multiplier = 1, .use_bias = i == 0,
                        .activation = i ? "relu" : "hard_swish", .keras_version = 3};
        kernel_case *a = add_case("avx2_depthwise_columns", dw, 1 + i);
        a->target = "avx2";
        a->baked = i;
    }
    /* Depthwise planes of 1024 channels or a multiple (planner: simd.plane):
     * stride 1 and 2, dilation, a 1D layer in segments, no bias, an
     * activation without a vector form, row ranges that copy part of the
     * plane. */
    ref_layer planes[] = {
        {.kind = REF_DEPTHWISE, .rank = 2, .in_h = 7, .in_w = 7, .in_c = 1024, .k_h = 3, .k_w = 3, .s_h = 1,
         .s_w = 1, .d_h = 1, .d_w = 1, .padding = "same", .groups = 1, .depth_multiplier = 1, .use_bias = 1,
         .activation = "relu", .keras_version = 3},
        {.kind = REF_DEPTHWISE, .rank = 2, .in_h = 8, .in_w = 8, .in_c = 1024, .k_h = 3, .k_w = 3, .s_h = 2,
         .s_w = 2, .d_h = 1, .d_w = 1, .padding = "valid", .groups = 1, .depth_multiplier = 1, .use_bias = 0,
         .activation = "gelu", .keras_version = 3},
        {.kind = REF_DEPTHWISE, .rank = 2, .in_h = 6, .in_w = 5, .in_c = 2048, .k_h = 3, .k_w = 2, .s_h = 1,
         .s_w = 1, .d_h = 2, .d_w = 2, .padding = "same", .groups = 1, .depth_multiplier = 1, .use_bias = 1,
         .activation = "relu6", .keras_version = 3},
        {.kind = REF_DEPTHWISE, .rank = 1, .in_h = 1, .in_w = 40, .in_c = 1024, .k_h = 1, .k_w = 5, .s_h = 1,
         .s_w = 1, .d_h = 1, .d_w = 1, .padding = "causal", .groups = 1, .depth_multiplier = 1, .use_bias = 1,
         .activation = "linear", .keras_version = 3},
    };
    for (int i = 0; i < (int)(sizeof planes / sizeof planes[0]); i++) {
        kernel_case *a = add_case("avx2_depthwise_plane", planes[i], 1 + i % 2);
        a->target = "avx2";
        a->baked = i == 1;
        a->reaches = "__plane(";
    }
    /* Narrow 'same' stride-1 3x3 layers: the dwsame code written into the
     * layer (one interior pixel per row, a whole strip, a strip and a
     * remainder; gelu has no vector form). */
    static const struct {
        int h, w, c;
        const char *act;
    } narrow_same[] = {{16, 16, 16, "relu"}, {3, 3, 32, "relu6"}, {4, 10, 64, "linear"}, {5, 17, 128, "gelu"},
                       {7, 5, 8, "relu"}};
    for (int i = 0; i < (int)(sizeof narrow_same / sizeof narrow_same[0]); i++) {
        ref_layer l = {.kind = REF_DEPTHWISE, .rank = 2, .in_h = narrow_same[i].h, .in_w = narrow_same[i].w,
                       .in_c = narrow_same[i].c, .k_h = 3, .k_w = 3, .s_h = 1, .s_w = 1, .d_h = 1, .d_w = 1,
                       .padding = "same", .groups = 1, .depth_multiplier = 1, .use_bias = i != 2,
                       .activation = narrow_same[i].act, .keras_version = 3};
        kernel_case *a = add_case("avx2_depthwise_same", l, 1 + i % 2);
        a->target = "avx2";
        a->baked = i == 1;
        a->reaches = "__same__row_03(";
    }
    /* Wide depthwise layers: every channel tile shape, strides, activations. */
    for (int i = 0; i < 3; i++) {
        ref_layer dw = {.kind = REF_DEPTHWISE, .rank = 2, .in_h = 7, .in_w = 13 + i, .in_c = 16 * i + 13, .k_h = 3,
                        .k_w = 3 + i, .s_h = 1, .s_w = 1 + (i == 2), .d_h = 1, .d_w = 1, .padding = "same",
                        .filters = 0, .groups = 1, .depth_multiplier = 1, .use_bias = i != 1,
                        .activation = i == 2 ? "mish" : "relu6", .keras_version = 3};
        kernel_case *a = add_case("avx2_depthwise", dw, 1 + i % 2);
        a->target = "avx2";
        a->baked = i % 2;
    }
    /* Depthwise layers with a multiplier dividing 8: a vector's input
     * channels loaded once and spread over its lanes. Narrow and wide (16-
     * channel tiles, strips down the columns), masked last tiles (10 and 12
     * output channels), strides, dilation, 1D, an activation without a
     * vector form. */
    static const int spread[][8] = {
        /* h, w, in_c, dm, stride, dilation, rank, batch */
        {9, 13, 16, 2, 1, 1, 2, 1}, {7, 10, 5, 2, 1, 1, 2, 2}, {8, 9, 3, 4, 2, 1, 2, 1},
        {9, 11, 2, 8, 1, 2, 2, 2}, {7, 12, 136, 2, 1, 1, 2, 1}, {1, 40, 6, 4, 1, 3, 1, 2}};
    for (int i = 0; i < 6; i++) {
        const int *g = spread[i];
        ref_layer dw = {.kind = REF_DEPTHWISE, .rank = g[6], .in_h = g[0], .in_w = g[1], .in_c = g[2],
                        .k_h = g[6] == 1 ? 1 : 3, .k_w = 3, .s_h = g[6] == 1 ? 1 : g[4], .s_w = g[4],
                        .d_h = g[6] == 1 ? 1 : g[5], .d_w = g[5], .padding = i == 5 ? "causal" : i == 2 ? "valid" : "same",
                        .filters = 0, .groups = 1, .depth_multiplier = g[3], .use_bias = i != 3,
                        .activation = i == 4 ? "sigmoid" : i == 1 ? "relu6" : "relu", .keras_version = 3};
        add_reaching_case("avx2_depthwise_multiplier", dw, g[7], "avx2", i % 2, "output channel o reads input channel o /");
    }
    /* Large weights and channel tails. */
    for (int i = 0; i < 2; i++) {
        ref_layer big = {.kind = REF_CONV, .rank = 2, .in_h = 5, .in_w = 9, .in_c = i ? 512 : 64, .k_h = i ? 1 : 3,
                         .k_w = i ? 1 : 3, .s_h = 1, .s_w = 1, .d_h = 1, .d_w = 1, .padding = "same",
                         .filters = i ? 140 : 120, .groups = 1, .depth_multiplier = 1, .use_bias = 1,
                         .activation = i ? "relu6" : "tanh", .keras_version = 3};
        kernel_case *a = add_case("avx2_large_weights", big, 1 + i);
        a->target = "avx2";
        a->baked = i;
    }
    /* The hybrid target: every avx2 case again as a driver of the runtime's
     * microkernels, run on each ISA the CPU has; plus depthwise layers with
     * fewer than 8 channels, which only the hybrid target vectorizes. */
    int before_hybrid = ncases;
    for (int i = scalar_cases; i < before_hybrid; i++) {
        kernel_case *h = add_case("hybrid", cases[i].layer, cases[i].batch);
        h->target = "hybrid";
        h->baked = cases[i].baked;
        const char *at = strstr(cases[i].name, "avx2"); /* the same name, hybrid for avx2 */
        snprintf(h->name, sizeof h->name, "%.*shybrid%.100s", (int)(at - cases[i].name), cases[i].name, at + 4);
    }
    for (int i = 0; i < 3; i++) {
        ref_layer dw = {.kind = REF_DEPTHWISE, .rank = 2 - (i == 2), .in_h = i == 2 ? 1 : 6, .in_w = 9 + i,
                        .in_c = 1 + 3 * i, .k_h = i == 2 ? 1 : 3, .k_w = 3, .s_h = 1, .s_w = 1 + i % 2, .d_h = 1,
                        .d_w = 1, .padding = i == 1 ? "valid" : "same", .filters = 0, .groups = 1,
                        .depth_multiplier = 1, .use_bias = i != 0, .activation = i ? "relu" : "elu",
                        .keras_version = 3};
        kernel_case *h = add_case("hybrid_narrow_depthwise", dw, 1 + i % 2);
        h->target = "hybrid";
        h->baked = i == 1;
    }
    /* Depthwise layers with a depth multiplier: the dwm microkernels (the
     * avx2 target leaves them to the scalar code). Every such scalar case,
     * then the 3x3 fixed shape, multipliers that straddle a vector's lanes,
     * stride 2, dilation, and 1D. */
    for (int i = 0; i < scalar_cases; i++) {
        const kernel_case *c = &cases[i];
        if (c->layer.kind != REF_DEPTHWISE || c->layer.depth_multiplier == 1 || c->layer.channels_first ||
            strcmp(c->unroll, "default") != 0)
            continue;
        kernel_case *h = add_case("hybrid", c->layer, c->batch);
        h->target = "hybrid";
        h->baked = c->baked;
        snprintf(h->name, sizeof h->name, "hybrid_%.100s", c->name);
    }
    static const int multiplied[][6] = {
        /* in_c, dm, k, stride, dilation, rank */
        {16, 2, 3, 1, 1, 2}, {5, 3, 3, 1, 1, 2}, {7, 5, 5, 2, 1, 2}, {3, 8, 3, 1, 2, 1}, {9, 9, 2, 1, 1, 2}};
    for (int i = 0; i < 5; i++) {
        const int *m = multiplied[i];
        ref_layer dw = {.kind = REF_DEPTHWISE, .rank = m[5], .in_h = m[5] == 1 ? 1 : 8, .in_w = 11 + i,
                        .in_c = m[0], .k_h = m[5] == 1 ? 1 : m[2], .k_w = m[2], .s_h = m[5] == 1 ? 1 : m[3],
                        .s_w = m[3], .d_h = m[5] == 1 ? 1 : m[4], .d_w = m[4], .padding = i == 4 ? "valid" : "same",
                        .filters = 0, .groups = 1, .depth_multiplier = m[1], .use_bias = i != 1,
                        .activation = ACTIVATIONS[(i * 3) % NACT], .keras_version = 3};
        kernel_case *h = add_case("hybrid_multiplier", dw, 1 + i % 2);
        h->target = "hybrid";
        h->baked = i % 2;
    }
    /* The fixed-shape depthwise variants inside drivers (5x5; a separable
     * step with dilation; 1D k = 3), relu in the conv microkernel, and
     * layers the microkernels leave to the scalar code (channels_first). */
    ref_layer extra[] = {
        {.kind = REF_DEPTHWISE, .rank = 2, .in_h = 9, .in_w = 11, .in_c = 20, .k_h = 5, .k_w = 5, .s_h = 1, .s_w = 1,
         .d_h = 1, .d_w = 1, .padding = "same", .groups = 1, .depth_multiplier = 1, .use_bias = 1,
         .activation = "relu6", .keras_version = 3},
        {.kind = REF_SEPARABLE, .rank = 2, .in_h = 8, .in_w = 13, .in_c = 12, .k_h = 3, .k_w = 3, .s_h = 1,
         .s_w = 1, .d_h = 2, .d_w = 2, .padding = "same", .filters = 19, .groups = 1, .depth_multiplier = 1,
         .use_bias = 1, .activation = "relu", .keras_version = 3},
        {.kind = REF_SEPARABLE, .rank = 1, .in_h = 1, .in_w = 23, .in_c = 9, .k_h = 1, .k_w = 3, .s_h = 1,
         .s_w = 1, .d_h = 1, .d_w = 4, .padding = "causal", .filters = 17, .groups = 1, .depth_multiplier = 1,
         .use_bias = 0, .activation = "linear", .keras_version = 3},
        {.kind = REF_CONV, .rank = 2, .in_h = 7, .in_w = 10, .in_c = 6, .k_h = 3, .k_w = 3, .s_h = 2, .s_w = 2,
         .d_h = 1, .d_w = 1, .padding = "same", .filters = 21, .groups = 1, .depth_multiplier = 1, .use_bias = 1,
         .activation = "relu", .keras_version = 3},
        /* more than 128 channels: the dw microkernels and their packed kernel;
         * a separable step of as many channels */
        {.kind = REF_DEPTHWISE, .rank = 2, .in_h = 6, .in_w = 11, .in_c = 150, .k_h = 3, .k_w = 3, .s_h = 1,
         .s_w = 1, .d_h = 1, .d_w = 1, .padding = "same", .groups = 1, .depth_multiplier = 1, .use_bias = 1,
         .activation = "relu", .keras_version = 3},
        {.kind = REF_DEPTHWISE, .rank = 2, .in_h = 9, .in_w = 12, .in_c = 136, .k_h = 5, .k_w = 5, .s_h = 2,
         .s_w = 2, .d_h = 1, .d_w = 1, .padding = "same", .groups = 1, .depth_multiplier = 1, .use_bias = 0,
         .activation = "linear", .keras_version = 3},
        {.kind = REF_DEPTHWISE, .rank = 1, .in_h = 1, .in_w = 19, .in_c = 144, .k_h = 1, .k_w = 3, .s_h = 1,
         .s_w = 1, .d_h = 1, .d_w = 2, .padding = "causal", .groups = 1, .depth_multiplier = 1, .use_bias = 1,
         .activation = "gelu", .keras_version = 3},
        {.kind = REF_SEPARABLE, .rank = 2, .in_h = 5, .in_w = 9, .in_c = 140, .k_h = 3, .k_w = 3, .s_h = 1,
         .s_w = 1, .d_h = 1, .d_w = 1, .padding = "same", .filters = 20, .groups = 1, .depth_multiplier = 1,
         .use_bias = 1, .activation = "relu6", .keras_version = 3},
        {.kind = REF_CONV, .rank = 2, .channels_first = 1, .in_h = 6, .in_w = 7, .in_c = 5, .k_h = 3, .k_w = 3,
         .s_h = 1, .s_w = 1, .d_h = 1, .d_w = 1, .padding = "same", .filters = 9, .groups = 1,
         .depth_multiplier = 1, .use_bias = 1, .activation = "relu", .keras_version = 3},
    };
    for (int i = 0; i < (int)(sizeof extra / sizeof extra[0]); i++) {
        kernel_case *h = add_case("hybrid_shapes", extra[i], 1 + i % 2);
        h->target = "hybrid";
        h->baked = i == 2;
    }
    /* A plane the dwplane microkernel is made for (relu, then linear without
     * bias, baked); a plane of another size keeps the strips. */
    for (int i = 0; i < 3; i++) {
        ref_layer pl = {.kind = REF_DEPTHWISE, .rank = 2, .in_h = 7 + (i == 2), .in_w = 7, .in_c = 1024, .k_h = 3,
                        .k_w = 3, .s_h = 1, .s_w = 1, .d_h = 1, .d_w = 1, .padding = "same", .groups = 1,
                        .depth_multiplier = 1, .use_bias = i != 1, .activation = i == 1 ? "linear" : "relu6",
                        .keras_version = 3};
        add_reaching_case("hybrid_plane", pl, 1 + i % 2, "hybrid", i == 1,
                          i == 2 ? "convgen_uk_dw_row_k3x3" : "convgen_uk_dwplane_7x7_k3x3_s1");
    }
    /* Planes the dwsame microkernels are made for ('same', stride 1, 3x3,
     * 16 to 128 channels): one interior pixel high or wide, strip remainders,
     * bias or none, each activation they apply; then layers that keep the
     * strips: stride 2, and gelu (the driver applies it). */
    static const struct {
        int h, w, c, s;
        const char *act, *reaches;
    } same[] = {
        {16, 16, 16, 1, "relu", "convgen_uk_dwsame_k3x3_c16("},
        {3, 5, 32, 1, "relu6", "convgen_uk_dwsame_k3x3_c32("},
        {9, 3, 64, 1, "linear", "convgen_uk_dwsame_k3x3_c64("},
        {5, 11, 128, 1, "relu6", "convgen_uk_dwsame_k3x3_c128("},
        {6, 18, 32, 1, "relu", "convgen_uk_dwsame_k3x3_c32("},
        {8, 9, 16, 2, "relu", "convgen_uk_dwn_row_k3x3_c16s2("},
        {6, 7, 32, 1, "gelu", "convgen_uk_dwn_5x8_k3x3_c32s1("},
    };
    for (int i = 0; i < (int)(sizeof same / sizeof same[0]); i++) {
        ref_layer l = {.kind = REF_DEPTHWISE, .rank = 2, .in_h = same[i].h, .in_w = same[i].w, .in_c = same[i].c,
                       .k_h = 3, .k_w = 3, .s_h = same[i].s, .s_w = same[i].s, .d_h = 1, .d_w = 1,
                       .padding = "same", .groups = 1, .depth_multiplier = 1, .use_bias = i != 2,
                       .activation = same[i].act, .keras_version = 3};
        add_reaching_case("hybrid_same", l, 1 + i % 2, "hybrid", i == 3, same[i].reaches);
    }
    /* Separable layers the fused sep row microkernels are made for (a dwn
     * fixed geometry: 3x3 at stride 1 and 2, 1x3 dilated, 16 to 128
     * channels), bias or none, each activation they apply, output channels
     * around the tiles; then one that keeps the strips: gelu (the driver
     * applies it). */
    static const struct {
        int rank, h, w, c, k_h, s, d, filters;
        const char *padding, *act, *reaches;
    } sep[] = {
        {2, 6, 17, 32, 3, 1, 1, 20, "same", "relu", "convgen_uk_sep_row_k3x3_c32s1("},
        {2, 9, 14, 16, 3, 2, 1, 33, "same", "relu6", "convgen_uk_sep_row_k3x3_c16s2("},
        {2, 5, 8, 128, 3, 1, 1, 8, "valid", "linear", "convgen_uk_sep_row_k3x3_c128s1("},
        {1, 1, 40, 32, 1, 1, 8, 32, "causal", "relu", "convgen_uk_sep_row_k1x3_c32s1("},
        {1, 1, 23, 64, 1, 1, 1, 7, "same", "relu6", "convgen_uk_sep_row_k1x3_c64s1("},
        {2, 6, 13, 32, 3, 1, 1, 16, "same", "gelu", "convgen_uk_dwn_6x8_k3x3_c32s1("},
    };
    for (int i = 0; i < (int)(sizeof sep / sizeof sep[0]); i++) {
        ref_layer l = {.kind = REF_SEPARABLE, .rank = sep[i].rank, .in_h = sep[i].h, .in_w = sep[i].w,
                       .in_c = sep[i].c, .k_h = sep[i].k_h, .k_w = 3, .s_h = sep[i].rank == 2 ? sep[i].s : 1,
                       .s_w = sep[i].s, .d_h = 1, .d_w = sep[i].d, .padding = sep[i].padding,
                       .filters = sep[i].filters, .groups = 1, .depth_multiplier = 1, .use_bias = i != 2,
                       .activation = sep[i].act, .keras_version = 3};
        add_reaching_case("hybrid_sep", l, 1 + i % 2, "hybrid", i == 1, sep[i].reaches);
    }
    /* Conv2D 3x3 at stride 1, 'same' or 'valid', the Winograd code's layers
     * (input channels a multiple of 8, output channels of 16, both at most
     * 256) on the hybrid target (the wino microkernel) and the avx2 target
     * (the same code written into the layer, sizes, bias and activation
     * folded in): odd and even sides, a 3x3 plane (2x2 tiles, three of them
     * part padding), bias or none, each activation the microkernel applies,
     * activations without a vector form (applied to the stored values in the
     * avx2 code; the hybrid driver keeps its strips for them), baked and
     * packed at run time; then layers that keep the direct code: 12 input
     * channels, 24 output channels. */
    static const char *const WINO_HYBRID = "convgen_uk_wino_f2k3(", *const WINO_AVX2 =
        "transformed input: [point][tile][ci]";
    static const struct {
        int h, w, c, filters;
        const char *padding, *act;
        const char *hybrid, *avx2; /* what each target's source must hold (NULL: not run there) */
        int baked;                 /* weights baked in: 1 on the hybrid target, 2 on avx2 */
    } wino[] = {
        {6, 7, 8, 16, "same", "relu", WINO_HYBRID, WINO_AVX2, 2},
        {5, 5, 16, 32, "same", "relu6", WINO_HYBRID, WINO_AVX2, 1},
        {8, 3, 64, 48, "same", "linear", WINO_HYBRID, WINO_AVX2, 2},
        {3, 9, 8, 16, "same", "relu", WINO_HYBRID, NULL, 0},
        {9, 12, 128, 128, "same", "relu", WINO_HYBRID, WINO_AVX2, 1},
        {4, 5, 256, 256, "same", "relu", WINO_HYBRID, NULL, 0},
        {3, 9, 8, 16, "same", "sigmoid", NULL, WINO_AVX2, 2},
        {3, 3, 8, 16, "same", "relu", NULL, WINO_AVX2, 2},
        {5, 4, 256, 240, "same", "relu6", NULL, WINO_AVX2, 0},
        {6, 6, 16, 16, "same", "gelu", "convgen_uk_conv_4x16(", WINO_AVX2, 0},
        {6, 6, 16, 16, "valid", "relu", WINO_HYBRID, WINO_AVX2, 0},
        {7, 5, 8, 32, "valid", "relu6", WINO_HYBRID, NULL, 0},
        {7, 5, 8, 32, "valid", "sigmoid", NULL, WINO_AVX2, 0},
        {6, 6, 12, 16, "same", "relu", "convgen_uk_conv_row(", "__strip4(", 0},
        {6, 6, 16, 24, "same", "relu", "convgen_uk_conv_row(", "__strip4(", 0},
    };
    for (int i = 0; i < (int)(sizeof wino / sizeof wino[0]); i++) {
        ref_layer l = {.kind = REF_CONV, .rank = 2, .in_h = wino[i].h, .in_w = wino[i].w, .in_c = wino[i].c, .k_h = 3,
                       .k_w = 3, .s_h = 1, .s_w = 1, .d_h = 1, .d_w = 1, .padding = wino[i].padding,
                       .filters = wino[i].filters, .groups = 1, .depth_multiplier = 1, .use_bias = i != 2,
                       .activation = wino[i].act, .keras_version = 3};
        if (wino[i].hybrid)
            add_reaching_case("hybrid_wino", l, 1 + i % 2, "hybrid", wino[i].baked & 1, wino[i].hybrid);
        if (wino[i].avx2)
            add_reaching_case("avx2_wino", l, 1 + i % 2, "avx2", (wino[i].baked & 2) != 0, wino[i].avx2);
    }
    /* Layers of one output row: their _rows entry point splits the row into
     * segments (the first takes the left border columns, the last the right
     * ones and the narrower strips). Every kind and path of a row on each
     * target: dense strips, a flat pointwise layer, depthwise row
     * microkernels (dwn, dwm), fused and chunked separable rows, strides,
     * dilation, channels_first, and a 2D layer whose output is one row (not
     * a Winograd one: that plane splits by rows). */
    static const char *const SEGMENTS = "Segments [first, first + count)";
    static const ref_layer one_row[] = {
        {REF_CONV, 1, 0, 1, 100, 8, 1, 5, 1, 1, 1, 1, "same", 16, 1, 1, 1, "relu", 3},
        {REF_CONV, 1, 0, 1, 90, 16, 1, 1, 1, 1, 1, 1, "valid", 24, 1, 1, 1, "relu6", 3},
        {REF_CONV, 1, 0, 1, 200, 3, 1, 3, 1, 3, 1, 1, "valid", 5, 1, 1, 0, "linear", 3},
        {REF_CONV, 1, 1, 1, 70, 4, 1, 3, 1, 1, 1, 2, "same", 6, 1, 1, 1, "tanh", 3},
        {REF_DEPTHWISE, 1, 0, 1, 120, 16, 1, 3, 1, 1, 1, 1, "same", 0, 1, 1, 1, "relu", 3},
        {REF_DEPTHWISE, 1, 0, 1, 150, 24, 1, 3, 1, 2, 1, 1, "valid", 0, 1, 2, 1, "relu", 3},
        {REF_SEPARABLE, 1, 0, 1, 200, 32, 1, 3, 1, 1, 1, 8, "causal", 32, 1, 1, 1, "relu", 3},
        {REF_SEPARABLE, 1, 0, 1, 100, 12, 1, 5, 1, 1, 1, 1, "same", 20, 1, 2, 1, "sigmoid", 3},
        {REF_CONV, 2, 0, 3, 100, 8, 3, 5, 1, 1, 1, 1, "valid", 16, 1, 1, 1, "relu", 3},
    };
    static const char *const targets[] = {"scalar", "avx2", "hybrid"};
    for (int i = 0; i < (int)(sizeof one_row / sizeof one_row[0]); i++) {
        for (int t = 0; t < 3; t++)
            add_reaching_case("segments", one_row[i], 1 + (i + t) % 2 + (t == 2), targets[t], (i + t) % 3 == 0,
                              SEGMENTS);
    }
    /* tf.keras's hard_sigmoid. */
    ref_layer k2 = {REF_CONV, 2, 0, 5, 5, 3, 3, 3, 1, 1, 1, 1, "same", 4, 1, 1, 1, "hard_sigmoid", 2};
    add_case("keras2", k2, 1);
    /* Fully unrolled layers (weights as literals, or as loads). */
    for (int kind = REF_CONV; kind <= REF_SEPARABLE; kind++) {
        for (int cf = 0; cf <= 1; cf++) {
            ref_layer l = {(ref_kind)kind, 2, cf, 5, 4, 3, 3, 3, 2, 1, 1, 1, "same", 5, 1, 2, 1, "relu", 3};
            if (kind == REF_CONV)
                l.depth_multiplier = 1;
            kernel_case *c = add_case("unroll_full", l, 2);
            c->unroll = "full";
            c->baked = cf;
            ref_layer m = {(ref_kind)kind, 1, cf, 1, 7, 2, 1, 3, 1, 2, 1, 1, "causal", 3, 1, 1, kind != REF_CONV, "softmax", 3};
            c = add_case("unroll_full", m, 3);
            c->unroll = "full";
            c->baked = !cf;
        }
    }
}

static void make_weights(kernel_case *c, int index)
{
    unsigned long long seed = 0x5eed0000ull + (unsigned long long)index;
    c->nweights = ref_weight_count(&c->layer);
    for (int i = 0; i < c->nweights; i++) {
        long n = ref_weight_size(&c->layer, i);
        c->weights[i] = malloc((size_t)n * sizeof(float));
        /* Keep outputs near unit scale: kernels shrink with their fan-in. */
        long shape[8];
        int r = weight_shape(&c->layer, i, shape);
        double fan_in = r > 1 ? (double)n / (double)shape[r - 1] : 1.0;
        float scale = (float)(1.0 / sqrt(fan_in));
        harness_fill(c->weights[i], n, &seed, -scale, scale);
    }
}

static int setup(void **state)
{
    (void)state;
    build_matrix();
    workdir = harness_tempdir();
    lua_State *L = harness_host();
    harness_buffer combined = {0}, combined_scalar = {0}, combined_hybrid = {0};
    for (int i = 0; i < ncases; i++) {
        kernel_case *c = &cases[i];
        make_weights(c, i);
        char dir[4200] = "";
        if (c->baked) {
            snprintf(dir, sizeof dir, "%s/%s", workdir, c->symbol);
            char mk[4300];
            snprintf(mk, sizeof mk, "%s", dir);
            char *argv[] = {"mkdir", "-p", mk, NULL};
            harness_run(argv, NULL);
            for (int w = 0; w < c->nweights; w++) {
                long shape[8];
                int r = weight_shape(&c->layer, w, shape);
                char path[4400], err[256];
                snprintf(path, sizeof path, "%s/%s", dir, weight_file(c, w));
                if (convgen_npy_save(path, r, shape, c->weights[w], err, sizeof err) != 0) {
                    fprintf(stderr, "%s: %s\n", path, err);
                    return -1;
                }
            }
        }
        char spec[2048], *err;
        spec_json(c, spec, sizeof spec);
        c->source = harness_generate(L, spec, c->name, c->symbol, c->baked ? dir : NULL, c->unroll,
                                     c->layer.keras_version, c->target, &err);
        if (!c->source) {
            fprintf(stderr, "%s: generation failed:\n%s\nspec: %s\n", c->name, err, spec);
            return -1;
        }
        c->packed_size = c->baked ? 0 : harness_plan_value(L, spec, c->layer.keras_version, c->target, "packed_size");
        c->rows_per_item = strcmp(c->unroll, "full") == 0
                               ? 1
                               : harness_plan_value(L, spec, c->layer.keras_version, c->target, "rows_per_item");
        if (strcmp(c->target, "hybrid") == 0)
            harness_append(&combined_hybrid, c->source);
        else
            harness_append(&combined, c->source);
        if (strcmp(c->target, "scalar") == 0)
            harness_append(&combined_scalar, c->source);
    }
    convgen__host_close(L);
    combined_path = harness_write(workdir, "all_cases.c", combined.text, combined.len);
    combined_scalar_path = harness_write(workdir, "scalar_cases.c", combined_scalar.text, combined_scalar.len);
    combined_hybrid_path = harness_write(workdir, "hybrid_cases.c", combined_hybrid.text, combined_hybrid.len);
    free(combined.text);
    free(combined_scalar.text);
    free(combined_hybrid.text);
    char so[4200];
    snprintf(so, sizeof so, "%s/all_cases_gcc.so", workdir);
    gcc_handle = harness_compile_shared("gcc", combined_path, so, &gcc_log);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (gcc_handle)
        dlclose(gcc_handle);
    for (int i = 0; i < ncases; i++) {
        free(cases[i].source);
        for (int w = 0; w < cases[i].nweights; w++)
            free(cases[i].weights[w]);
    }
    if (!getenv("CONVGEN_KEEP_TEST_FILES"))
        harness_remove_tree(workdir);
    else
        fprintf(stderr, "kept %s\n", workdir);
    free(workdir);
    free(combined_path);
    free(combined_scalar_path);
    free(combined_hybrid_path);
    free(gcc_log);
    return 0;
}

/* Runs one compiled variant on guarded buffers and compares it with want. */
typedef struct guarded_run guarded_run;
static void check_output(const kernel_case *c, const char *compiler, const guarded_run *g, const float *in,
                         const float *input, long in_n, const float *want, long out_n);

typedef void (*rows_baked_fn)(const float *input, float *output, int first, int count);
typedef void (*rows_runtime_fn)(const float *input, float *output, const float *const weights[], int first, int count);

/* Input, weights and output live between inaccessible pages (read-only
 * where the kernel must not write), flush against the upper guard page for the
 * whole-batch call and against the lower one for the row calls: one float read
 * or written past either end faults. NaN margins inside the output's pages
 * catch what the page granularity would miss on the other side. */
struct guarded_run {
    harness_guarded in, out, packed, weights[4];
    float *out_data, *margin;
    const float *w[5];
};

static void guarded_setup(guarded_run *g, const kernel_case *c, void *pack_address, const float *input,
                          long in_n, long out_n, int at_end)
{
    memset(g, 0, sizeof *g);
    memcpy(harness_guarded_alloc(&g->in, in_n, at_end), input, (size_t)in_n * sizeof(float));
    harness_guarded_readonly(&g->in);
    /* The output touches the guard page on one side and a NaN margin of GUARD
     * floats (checked afterwards) on the other. */
    float *out = harness_guarded_alloc(&g->out, out_n + GUARD, at_end);
    for (long i = 0; i < out_n + GUARD; i++)
        out[i] = NAN; /* an element the kernel forgets to write fails the comparison */
    g->out_data = at_end ? out + GUARD : out;
    g->margin = at_end ? out : out + out_n;
    if (c->baked)
        return;
    for (int i = 0; i < c->nweights; i++) {
        long n = ref_weight_size(&c->layer, i);
        memcpy(harness_guarded_alloc(&g->weights[i], n, at_end), c->weights[i], (size_t)n * sizeof(float));
        harness_guarded_readonly(&g->weights[i]);
        g->w[i] = g->weights[i].data;
    }
    if (pack_address && c->packed_size > 0) {
        /* SIMD strips read a packed kernel, made once by the generated pack function,
         * into exactly <name>_PACKED_SIZE floats */
        float *packed = harness_guarded_alloc(&g->packed, c->packed_size, at_end);
        void (*pack)(const float *const *, float *);
        memcpy(&pack, &pack_address, sizeof pack);
        pack(g->w, packed);
        harness_guarded_readonly(&g->packed);
        g->w[c->nweights] = packed;
    }
}

static void guarded_free(guarded_run *g)
{
    harness_guarded_free(&g->in);
    harness_guarded_free(&g->out);
    harness_guarded_free(&g->packed);
    for (int i = 0; i < 4; i++)
        harness_guarded_free(&g->weights[i]);
}

static void run_and_compare(const kernel_case *c, void *fn_address, void *rows_address, void *pack_address,
                            const char *compiler, const float *input, long in_n, const float *want, long out_n)
{
    guarded_run g;
    guarded_setup(&g, c, pack_address, input, in_n, out_n, 1);
    if (c->baked) {
        layer_baked_fn fn;
        memcpy(&fn, &fn_address, sizeof fn);
        fn(g.in.data, g.out_data, c->batch);
    } else {
        layer_runtime_fn fn;
        memcpy(&fn, &fn_address, sizeof fn);
        fn(g.in.data, g.out_data, c->batch, g.w);
    }
    check_output(c, compiler, &g, g.in.data, input, in_n, want, out_n);
    guarded_free(&g);

    /* The row entry point, in three uneven ranges as threads would run them. */
    int rows = c->batch * (int)c->rows_per_item;
    int cut1 = rows / 3, cut2 = rows - rows / 4;
    int first[3] = {0, cut1, cut2}, count[3] = {cut1, cut2 - cut1, rows - cut2};
    guarded_setup(&g, c, pack_address, input, in_n, out_n, 0);
    for (int k = 2; k >= 0; k--) { /* out of order, as threads may finish */
        if (c->baked) {
            rows_baked_fn fn;
            memcpy(&fn, &rows_address, sizeof fn);
            fn(g.in.data, g.out_data, first[k], count[k]);
        } else {
            rows_runtime_fn fn;
            memcpy(&fn, &rows_address, sizeof fn);
            fn(g.in.data, g.out_data, g.w, first[k], count[k]);
        }
    }
    char label[64];
    snprintf(label, sizeof label, "%s, by rows", compiler);
    check_output(c, label, &g, g.in.data, input, in_n, want, out_n);
    guarded_free(&g);
}

/* Margin untouched, input unchanged, output within tolerance. */
static void check_output(const kernel_case *c, const char *compiler, const guarded_run *g, const float *in,
                         const float *input, long in_n, const float *want, long out_n)
{
    for (int i = 0; i < GUARD; i++) {
        if (!isnan(g->margin[i]))
            fail_msg("%s (%s): wrote outside the output buffer", c->name, compiler);
    }
    if (memcmp(in, input, (size_t)in_n * sizeof(float)) != 0)
        fail_msg("%s (%s): modified its input", c->name, compiler);
    const float *out = g->out_data;
    long bad = harness_mismatch(out, want, out_n, 1e-4, 1e-5);
    if (bad >= 0)
        fail_msg("%s (%s): output[%ld] = %.9g, reference %.9g (of %ld)", c->name, compiler, bad,
                 (double)out[bad], (double)want[bad], out_n);
}

/* One case: libtcc and gcc builds both match the reference. */
static void test_case(void **state)
{
    const kernel_case *c = *state;
    int oh, ow, oc;
    assert_true(ref_output_shape(&c->layer, &oh, &ow, &oc));
    long in_n = (long)c->batch * c->layer.in_h * c->layer.in_w * c->layer.in_c;
    long out_n = (long)c->batch * oh * ow * oc;
    float *input = malloc((size_t)in_n * sizeof(float));
    float *want = malloc((size_t)out_n * sizeof(float));
    unsigned long long seed = 0x1234ull + (unsigned long long)(c - cases);
    harness_fill(input, in_n, &seed, -1.0f, 1.0f);
    const float *w[4] = {c->weights[0], c->weights[1], c->weights[2], c->weights[3]};
    ref_forward(&c->layer, c->batch, input, w, want);

    if (c->reaches && !strstr(c->source, c->reaches))
        fail_msg("%s: the generated source has no '%s': the case misses the path it tests", c->name, c->reaches);
    void *address;
    if (strcmp(c->target, "hybrid") == 0) {
        /* libtcc only, once per ISA: the driver calls whatever the runtime binds */
        const char *isas[] = {"avx2", "scalar"};
        for (int i = 0; i < 2; i++) {
            setenv("CONVGEN_ISA", isas[i], 1);
            if (strcmp(convgen__jit_isa(), isas[i]) != 0) {
                unsetenv("CONVGEN_ISA");
                continue; /* this CPU has no such ISA */
            }
            char err[4096];
            convgen__jit *jit = convgen__jit_compile(c->source, 1, err, sizeof err);
            unsetenv("CONVGEN_ISA");
            if (!jit)
                fail_msg("%s: libtcc rejected the source:\n%s", c->name, err);
            char rows_name[64], pack_name[64], label[32];
            snprintf(rows_name, sizeof rows_name, "%s_rows", c->symbol);
            snprintf(pack_name, sizeof pack_name, "%s_pack", c->symbol);
            snprintf(label, sizeof label, "tcc, %s microkernels", isas[i]);
            address = convgen__jit_symbol(jit, c->symbol);
            assert_non_null(address);
            void *rows = convgen__jit_symbol(jit, rows_name);
            assert_non_null(rows);
            run_and_compare(c, address, rows, convgen__jit_symbol(jit, pack_name), label, input, in_n, want, out_n);
            convgen__jit_free(jit);
        }
        free(input);
        free(want);
        return;
    }
    if (strcmp(c->target, "scalar") == 0) {
        char err[4096];
        convgen__jit *jit = convgen__jit_compile(c->source, 1, err, sizeof err);
        if (!jit)
            fail_msg("%s: libtcc rejected the source:\n%s", c->name, err);
        address = convgen__jit_symbol(jit, c->symbol);
        assert_non_null(address);
        char rows_name[64];
        snprintf(rows_name, sizeof rows_name, "%s_rows", c->symbol);
        void *rows = convgen__jit_symbol(jit, rows_name);
        assert_non_null(rows);
        run_and_compare(c, address, rows, NULL, "tcc", input, in_n, want, out_n);
        convgen__jit_free(jit);
    }

    if (!gcc_handle)
        fail_msg("gcc failed on the generated cases:\n%.4000s", gcc_log ? gcc_log : "");
    address = dlsym(gcc_handle, c->symbol);
    assert_non_null(address);
    char pack_name[64], rows_name[64];
    snprintf(pack_name, sizeof pack_name, "%s_pack", c->symbol);
    snprintf(rows_name, sizeof rows_name, "%s_rows", c->symbol);
    void *rows = dlsym(gcc_handle, rows_name);
    assert_non_null(rows);
    run_and_compare(c, address, rows, dlsym(gcc_handle, pack_name), "gcc", input, in_n, want, out_n);
    free(input);
    free(want);
}

/* Every generated case compiles without a warning under gcc, clang and tcc
 * at -std=c99 -Wall -Wextra -pedantic (tcc: the scalar cases; it has no
 * intrinsics). The hybrid drivers, whose microkernels only libtcc links,
 * are compiled to objects by all three. */
static void test_no_warnings(void **state)
{
    (void)state;
    if (!gcc_handle)
        fail_msg("gcc: %.4000s", gcc_log ? gcc_log : "");
    const char *compilers[] = {"clang", "tcc"};
    for (int i = 0; i < 3; i++) {
        const char *compiler = i < 2 ? compilers[i] : "gcc";
        char obj[4200];
        snprintf(obj, sizeof obj, "%s/hybrid_cases_%s.o", workdir, compiler);
        char *argv[] = {(char *)compiler, "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror",
                        "-c", combined_hybrid_path, "-o", obj, NULL};
        char *out = NULL;
        int status = harness_run(argv, &out);
        if (status != 0)
            fail_msg("%s on the hybrid drivers: exit %d\n%.4000s", compiler, status, out ? out : "");
        free(out);
    }
    for (int i = 0; i < 2; i++) {
        char obj[4200];
        snprintf(obj, sizeof obj, "%s/all_cases_%s.o", workdir, compilers[i]);
        int tcc = strcmp(compilers[i], "tcc") == 0;
        char *argv[] = {(char *)compilers[i], "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror",
                        "-c", tcc ? combined_scalar_path : combined_path, "-o", obj,
                        tcc ? NULL : "-mavx2", "-mfma", NULL};
        char *out = NULL;
        int status = harness_run(argv, &out);
        if (status != 0)
            fail_msg("%s: exit %d\n%.4000s", compilers[i], status, out ? out : "");
        free(out);
    }
}

/* The same spec gives byte-identical source. */
static void test_deterministic(void **state)
{
    (void)state;
    lua_State *L = harness_host();
    for (int i = 0; i < ncases; i += 7) {
        char spec[2048], *err;
        spec_json(&cases[i], spec, sizeof spec);
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/%s", workdir, cases[i].symbol);
        char *again = harness_generate(L, spec, cases[i].name, cases[i].symbol, cases[i].baked ? dir : NULL,
                                       cases[i].unroll, cases[i].layer.keras_version, cases[i].target, &err);
        assert_non_null(again);
        assert_string_equal(again, cases[i].source);
        free(again);
    }
    convgen__host_close(L);
}

int main(void)
{
    /* The case list must exist before cmocka sees the tests. */
    if (setup(NULL) != 0)
        return 1;
    struct CMUnitTest *tests = calloc((size_t)ncases + 2, sizeof *tests);
    tests[0] = (struct CMUnitTest)cmocka_unit_test(test_no_warnings);
    tests[1] = (struct CMUnitTest)cmocka_unit_test(test_deterministic);
    for (int i = 0; i < ncases; i++) {
        tests[i + 2].name = cases[i].name;
        tests[i + 2].test_func = test_case;
        tests[i + 2].initial_state = &cases[i];
    }
    int failed = _cmocka_run_group_tests("kernels", tests, (size_t)ncases + 2, NULL, NULL);
    teardown(NULL);
    free(tests);
    return failed;
}
