/*
 * reference.c - naive reference implementation of Keras convolution layers.
 * See reference.h. Every output element is computed directly from the input
 * by looping over the kernel taps, accumulating in double.
 */
#include "reference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------- */
/* Geometry                                                                   */
/* ------------------------------------------------------------------------- */

typedef struct {
    int out_h, out_w, out_c;
    int pad_top, pad_left;
} ref_geom;

/* Output size and leading padding of one spatial axis; 0 if impossible. */
static int axis_geometry(const char *padding, int in, int k, int s, int d,
                         int *out, int *pad_before)
{
    long ke = (long)(k - 1) * d + 1; /* effective (dilated) kernel extent */
    long o;

    if (strcmp(padding, "valid") == 0) {
        if (in < ke)
            return 0;
        o = (in - ke) / s + 1;
        *pad_before = 0;
    } else if (strcmp(padding, "same") == 0) {
        long total;
        o = (in + s - 1) / s; /* ceil(in / s) */
        total = (o - 1) * s + ke - in;
        if (total < 0)
            total = 0;
        *pad_before = (int)(total / 2); /* the odd extra goes after */
    } else if (strcmp(padding, "causal") == 0) {
        long before = ke - 1; /* (k-1)*d, all of it before */
        long padded = in + before;
        if (padded < ke)
            return 0;
        o = (padded - ke) / s + 1;
        *pad_before = (int)before;
    } else {
        return 0;
    }
    if (o < 1)
        return 0;
    *out = (int)o;
    return 1;
}

/* Validates the description and computes its geometry; 0 if impossible. */
static int layer_geometry(const ref_layer *l, ref_geom *g)
{
    if (l == NULL || l->padding == NULL)
        return 0;
    if (l->kind != REF_CONV && l->kind != REF_DEPTHWISE && l->kind != REF_SEPARABLE)
        return 0;
    if (l->rank != 1 && l->rank != 2)
        return 0;
    if (l->in_h < 1 || l->in_w < 1 || l->in_c < 1 || l->k_h < 1 || l->k_w < 1 ||
        l->s_h < 1 || l->s_w < 1 || l->d_h < 1 || l->d_w < 1)
        return 0;
    if (l->rank == 1 && (l->in_h != 1 || l->k_h != 1 || l->s_h != 1 || l->d_h != 1))
        return 0;
    if (l->rank != 1 && strcmp(l->padding, "causal") == 0)
        return 0;

    switch (l->kind) {
    case REF_CONV:
        if (l->filters < 1 || l->groups < 1 || l->in_c % l->groups != 0 ||
            l->filters % l->groups != 0)
            return 0;
        g->out_c = l->filters;
        break;
    case REF_DEPTHWISE:
        if (l->depth_multiplier < 1)
            return 0;
        g->out_c = l->in_c * l->depth_multiplier;
        break;
    case REF_SEPARABLE:
        if (l->depth_multiplier < 1 || l->filters < 1)
            return 0;
        g->out_c = l->filters;
        break;
    }

    if (!axis_geometry(l->padding, l->in_h, l->k_h, l->s_h, l->d_h, &g->out_h, &g->pad_top))
        return 0;
    if (!axis_geometry(l->padding, l->in_w, l->k_w, l->s_w, l->d_w, &g->out_w, &g->pad_left))
        return 0;
    return 1;
}

int ref_output_shape(const ref_layer *l, int *out_h, int *out_w, int *out_c)
{
    ref_geom g;
    if (!layer_geometry(l, &g))
        return 0;
    *out_h = g.out_h;
    *out_w = g.out_w;
    *out_c = g.out_c;
    return 1;
}

/* ------------------------------------------------------------------------- */
/* Weights                                                                    */
/* ------------------------------------------------------------------------- */

int ref_weight_count(const ref_layer *l)
{
    int n = (l->kind == REF_SEPARABLE) ? 2 : 1;
    return n + (l->use_bias ? 1 : 0);
}

long ref_weight_size(const ref_layer *l, int i)
{
    long taps = (long)l->k_h * l->k_w;
    if (i < 0 || i >= ref_weight_count(l))
        return 0;
    if (l->kind == REF_CONV && l->groups < 1)
        return 0;
    switch (l->kind) {
    case REF_CONV:
        if (i == 0)
            return taps * (l->in_c / l->groups) * l->filters;
        return l->filters;
    case REF_DEPTHWISE:
        if (i == 0)
            return taps * l->in_c * l->depth_multiplier;
        return (long)l->in_c * l->depth_multiplier;
    case REF_SEPARABLE:
        if (i == 0)
            return taps * l->in_c * l->depth_multiplier;
        if (i == 1)
            return (long)l->in_c * l->depth_multiplier * l->filters;
        return l->filters;
    }
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Activations                                                                */
/* ------------------------------------------------------------------------- */

typedef enum {
    ACT_LINEAR, ACT_RELU, ACT_RELU6, ACT_SIGMOID, ACT_TANH, ACT_ELU, ACT_SELU,
    ACT_SOFTPLUS, ACT_SOFTSIGN, ACT_SWISH, ACT_GELU, ACT_HARD_SIGMOID,
    ACT_HARD_SWISH, ACT_LEAKY_RELU, ACT_EXPONENTIAL, ACT_MISH, ACT_SOFTMAX,
    ACT_LOG_SOFTMAX
} ref_act;

static ref_act parse_activation(const char *name)
{
    static const struct { const char *name; ref_act act; } table[] = {
        {"linear", ACT_LINEAR},         {"relu", ACT_RELU},
        {"relu6", ACT_RELU6},           {"sigmoid", ACT_SIGMOID},
        {"tanh", ACT_TANH},             {"elu", ACT_ELU},
        {"selu", ACT_SELU},             {"softplus", ACT_SOFTPLUS},
        {"softsign", ACT_SOFTSIGN},     {"swish", ACT_SWISH},
        {"silu", ACT_SWISH},            {"gelu", ACT_GELU},
        {"hard_sigmoid", ACT_HARD_SIGMOID},
        {"hard_swish", ACT_HARD_SWISH}, {"hard_silu", ACT_HARD_SWISH},
        {"leaky_relu", ACT_LEAKY_RELU}, {"exponential", ACT_EXPONENTIAL},
        {"mish", ACT_MISH},             {"softmax", ACT_SOFTMAX},
        {"log_softmax", ACT_LOG_SOFTMAX},
    };
    size_t i;

    if (name == NULL || name[0] == '\0')
        return ACT_LINEAR;
    for (i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0)
            return table[i].act;
    fprintf(stderr, "reference: unknown activation \"%s\"\n", name);
    abort();
}

static double relu6(double x)
{
    return x < 0.0 ? 0.0 : (x > 6.0 ? 6.0 : x);
}

static double sigmoid(double x)
{
    if (x >= 0.0)
        return 1.0 / (1.0 + exp(-x));
    return exp(x) / (1.0 + exp(x));
}

static double softplus(double x)
{
    /* log(1 + exp(x)) without overflow for large x */
    if (x > 0.0)
        return x + log1p(exp(-x));
    return log1p(exp(x));
}

/* Elementwise activation (softmax / log_softmax are handled per row). */
static double activate(ref_act a, double x, int keras_version)
{
    switch (a) {
    case ACT_LINEAR:
        return x;
    case ACT_RELU:
        return x > 0.0 ? x : 0.0;
    case ACT_RELU6:
        return relu6(x);
    case ACT_SIGMOID:
        return sigmoid(x);
    case ACT_TANH:
        return tanh(x);
    case ACT_ELU:
        return x > 0.0 ? x : expm1(x);
    case ACT_SELU: {
        const double scale = 1.0507009873554804934193349852946;
        const double alpha = 1.6732632423543772848170429916717;
        return scale * (x > 0.0 ? x : alpha * expm1(x));
    }
    case ACT_SOFTPLUS:
        return softplus(x);
    case ACT_SOFTSIGN:
        return x / (1.0 + fabs(x));
    case ACT_SWISH:
        return x * sigmoid(x);
    case ACT_GELU:
        return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case ACT_HARD_SIGMOID:
        if (keras_version == 2) {
            double y = 0.2 * x + 0.5;
            return y < 0.0 ? 0.0 : (y > 1.0 ? 1.0 : y);
        }
        return relu6(x + 3.0) / 6.0;
    case ACT_HARD_SWISH:
        return x * relu6(x + 3.0) / 6.0;
    case ACT_LEAKY_RELU:
        return x > 0.0 ? x : 0.2 * x;
    case ACT_EXPONENTIAL:
        return exp(x);
    case ACT_MISH:
        return x * tanh(softplus(x));
    case ACT_SOFTMAX:
    case ACT_LOG_SOFTMAX:
        break;
    }
    fprintf(stderr, "reference: activation %d is not elementwise\n", (int)a);
    abort();
}

/* ------------------------------------------------------------------------- */
/* Convolution                                                                */
/* ------------------------------------------------------------------------- */

/* Everything one forward pass needs, to keep the helpers' argument lists short. */
typedef struct {
    const ref_layer *l;
    ref_geom g;
    const float *input;
    const float *const *w;
} ref_ctx;

/* Input value at (n, h, w, c); zero outside the input (padding). */
static double input_at(const ref_ctx *x, int n, int h, int w, int c)
{
    const ref_layer *l = x->l;
    long idx;

    if (h < 0 || h >= l->in_h || w < 0 || w >= l->in_w)
        return 0.0;
    if (l->channels_first)
        idx = (((long)n * l->in_c + c) * l->in_h + h) * l->in_w + w;
    else
        idx = (((long)n * l->in_h + h) * l->in_w + w) * l->in_c + c;
    return (double)x->input[idx];
}

/* Flat index of output element (n, h, w, c) in the layer's data format. */
static long output_index(const ref_ctx *x, int n, int h, int w, int c)
{
    const ref_geom *g = &x->g;
    if (x->l->channels_first)
        return (((long)n * g->out_c + c) * g->out_h + h) * g->out_w + w;
    return (((long)n * g->out_h + h) * g->out_w + w) * g->out_c + c;
}

/*
 * Depthwise value for input channel c, multiplier m at output position
 * (oh, ow), with kernel dk laid out (k_h, k_w, in_c, dm). No bias.
 */
static double depthwise_value(const ref_ctx *x, const float *dk, int n, int oh, int ow,
                              int c, int m)
{
    const ref_layer *l = x->l;
    double acc = 0.0;
    int kh, kw;

    for (kh = 0; kh < l->k_h; kh++) {
        int ih = oh * l->s_h - x->g.pad_top + kh * l->d_h;
        for (kw = 0; kw < l->k_w; kw++) {
            int iw = ow * l->s_w - x->g.pad_left + kw * l->d_w;
            long ki = (((long)kh * l->k_w + kw) * l->in_c + c) * l->depth_multiplier + m;
            acc += input_at(x, n, ih, iw, c) * (double)dk[ki];
        }
    }
    return acc;
}

/* Pre-activation value (after bias) of output element (n, oh, ow, o). */
static double preactivation(const ref_ctx *x, int n, int oh, int ow, int o)
{
    const ref_layer *l = x->l;
    double acc = 0.0;
    const float *bias = NULL;

    switch (l->kind) {
    case REF_CONV: {
        const float *k = x->w[0];
        int cpg = l->in_c / l->groups;    /* input channels per group */
        int fpg = l->filters / l->groups; /* filters per group */
        int grp = o / fpg;
        int kh, kw, ci;
        for (kh = 0; kh < l->k_h; kh++) {
            int ih = oh * l->s_h - x->g.pad_top + kh * l->d_h;
            for (kw = 0; kw < l->k_w; kw++) {
                int iw = ow * l->s_w - x->g.pad_left + kw * l->d_w;
                for (ci = 0; ci < cpg; ci++) {
                    long ki = (((long)kh * l->k_w + kw) * cpg + ci) * l->filters + o;
                    acc += input_at(x, n, ih, iw, grp * cpg + ci) * (double)k[ki];
                }
            }
        }
        if (l->use_bias)
            bias = x->w[1];
        break;
    }
    case REF_DEPTHWISE:
        acc = depthwise_value(x, x->w[0], n, oh, ow, o / l->depth_multiplier,
                              o % l->depth_multiplier);
        if (l->use_bias)
            bias = x->w[1];
        break;
    case REF_SEPARABLE: {
        const float *pk = x->w[1];
        int mid = l->in_c * l->depth_multiplier;
        int j;
        /* pointwise over intermediate channels j = c*dm + m, each computed on the fly */
        for (j = 0; j < mid; j++) {
            double dv = depthwise_value(x, x->w[0], n, oh, ow, j / l->depth_multiplier,
                                        j % l->depth_multiplier);
            acc += dv * (double)pk[(long)j * l->filters + o];
        }
        if (l->use_bias)
            bias = x->w[2];
        break;
    }
    }
    if (bias != NULL)
        acc += (double)bias[o];
    return acc;
}

/*
 * softmax / log_softmax over the last axis of the output tensor for batch
 * item n. channels_last: the row is the channels at (oh = a, ow = b).
 * channels_first: the row is the width axis at (o = a, oh = b).
 */
static void softmax_row(const ref_ctx *x, float *output, int n, int a, int b, int log_mode)
{
    int cf = x->l->channels_first;
    int len = cf ? x->g.out_w : x->g.out_c;
    double mx = -HUGE_VAL, sum = 0.0, lse;
    int i;

    for (i = 0; i < len; i++) {
        double v = cf ? preactivation(x, n, b, i, a) : preactivation(x, n, a, b, i);
        if (v > mx)
            mx = v;
    }
    for (i = 0; i < len; i++) {
        double v = cf ? preactivation(x, n, b, i, a) : preactivation(x, n, a, b, i);
        sum += exp(v - mx);
    }
    lse = log(sum);
    for (i = 0; i < len; i++) {
        double v = cf ? preactivation(x, n, b, i, a) : preactivation(x, n, a, b, i);
        double y = log_mode ? (v - mx) - lse : exp(v - mx) / sum;
        long idx = cf ? output_index(x, n, b, i, a) : output_index(x, n, a, b, i);
        output[idx] = (float)y;
    }
}

void ref_forward(const ref_layer *l, int batch, const float *input,
                 const float *const weights[], float *output)
{
    ref_ctx x;
    ref_act act;
    int n, oh, ow, o;

    if (l == NULL) {
        fprintf(stderr, "reference: NULL layer\n");
        abort();
    }
    act = parse_activation(l->activation);
    if (!layer_geometry(l, &x.g)) {
        fprintf(stderr, "reference: impossible layer description\n");
        abort();
    }
    if (batch < 0) {
        fprintf(stderr, "reference: negative batch %d\n", batch);
        abort();
    }
    if (batch == 0)
        return;
    if (input == NULL || weights == NULL || output == NULL) {
        fprintf(stderr, "reference: NULL input, weights or output\n");
        abort();
    }
    x.l = l;
    x.input = input;
    x.w = weights;

    for (n = 0; n < batch; n++) {
        if (act == ACT_SOFTMAX || act == ACT_LOG_SOFTMAX) {
            int log_mode = (act == ACT_LOG_SOFTMAX);
            if (l->channels_first) {
                for (o = 0; o < x.g.out_c; o++)
                    for (oh = 0; oh < x.g.out_h; oh++)
                        softmax_row(&x, output, n, o, oh, log_mode);
            } else {
                for (oh = 0; oh < x.g.out_h; oh++)
                    for (ow = 0; ow < x.g.out_w; ow++)
                        softmax_row(&x, output, n, oh, ow, log_mode);
            }
            continue;
        }
        for (oh = 0; oh < x.g.out_h; oh++)
            for (ow = 0; ow < x.g.out_w; ow++)
                for (o = 0; o < x.g.out_c; o++) {
                    double v = activate(act, preactivation(&x, n, oh, ow, o),
                                        l->keras_version);
                    output[output_index(&x, n, oh, ow, o)] = (float)v;
                }
    }
}
