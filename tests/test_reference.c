/*
 * test_reference.c - hand-computed cases that pin the reference
 * implementation (tests/reference.c) itself.
 *
 * Build: gcc -std=c99 -Wall -Wextra -pedantic tests/test_reference.c tests/reference.c -lcmocka -lm
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reference.h"

/* A layer with every size 1, stride 1, dilation 1, "valid", linear, Keras 3. */
static ref_layer base_layer(ref_kind kind, int rank)
{
    ref_layer l;
    memset(&l, 0, sizeof l);
    l.kind = kind;
    l.rank = rank;
    l.channels_first = 0;
    l.in_h = l.in_w = l.in_c = 1;
    l.k_h = l.k_w = 1;
    l.s_h = l.s_w = 1;
    l.d_h = l.d_w = 1;
    l.padding = "valid";
    l.filters = 1;
    l.groups = 1;
    l.depth_multiplier = 1;
    l.use_bias = 0;
    l.activation = "linear";
    l.keras_version = 3;
    return l;
}

/* Fails with the first index where got and want differ by more than tol (abs + rel). */
static void check_close(const float *got, const double *want, int n, double tol)
{
    int i;
    for (i = 0; i < n; i++) {
        double diff = fabs((double)got[i] - want[i]);
        if (!(diff <= tol * (1.0 + fabs(want[i])))) {
            print_error("element %d: got %.9g, want %.9g\n", i, (double)got[i], want[i]);
            fail();
        }
    }
}

/* Output length of a rank-1 Conv1D, or 0 if impossible. */
static int out_len_1d(int in, int k, int s, int d, const char *padding)
{
    ref_layer l = base_layer(REF_CONV, 1);
    int oh = -1, ow = -1, oc = -1;
    l.in_w = in;
    l.k_w = k;
    l.s_w = s;
    l.d_w = d;
    l.padding = padding;
    if (!ref_output_shape(&l, &oh, &ow, &oc))
        return 0;
    assert_int_equal(oh, 1);
    assert_int_equal(oc, 1);
    return ow;
}

/* Pins output sizes of valid / same / causal for odd and even sizes, strides, dilation. */
static void test_output_shapes_1d(void **state)
{
    (void)state;
    assert_int_equal(out_len_1d(5, 3, 2, 1, "same"), 3);
    assert_int_equal(out_len_1d(6, 4, 2, 1, "same"), 3);
    assert_int_equal(out_len_1d(6, 3, 2, 1, "same"), 3);
    assert_int_equal(out_len_1d(4, 2, 1, 1, "same"), 4);
    assert_int_equal(out_len_1d(7, 3, 3, 1, "same"), 3);
    assert_int_equal(out_len_1d(1, 5, 1, 1, "same"), 1);
    assert_int_equal(out_len_1d(5, 3, 2, 1, "valid"), 2);
    assert_int_equal(out_len_1d(6, 4, 2, 1, "valid"), 2);
    assert_int_equal(out_len_1d(7, 3, 1, 2, "valid"), 3);
    assert_int_equal(out_len_1d(5, 3, 1, 1, "valid"), 3);
    assert_int_equal(out_len_1d(2, 3, 1, 1, "valid"), 0);
    assert_int_equal(out_len_1d(4, 3, 1, 2, "valid"), 0);
    assert_int_equal(out_len_1d(5, 3, 1, 2, "causal"), 5);
    assert_int_equal(out_len_1d(5, 3, 2, 2, "causal"), 3);
    assert_int_equal(out_len_1d(5, 3, 1, 1, "full"), 0);
}

/* Pins 2D shapes, depthwise/separable channel counts and rejection of impossible layers. */
static void test_output_shapes_2d_and_invalid(void **state)
{
    ref_layer l = base_layer(REF_CONV, 2);
    int oh, ow, oc;
    (void)state;

    l.in_h = 5; l.in_w = 6; l.in_c = 3;
    l.k_h = 3; l.k_w = 4; l.s_h = 2; l.s_w = 2;
    l.padding = "same";
    l.filters = 7;
    assert_true(ref_output_shape(&l, &oh, &ow, &oc));
    assert_int_equal(oh, 3); assert_int_equal(ow, 3); assert_int_equal(oc, 7);
    l.padding = "valid";
    assert_true(ref_output_shape(&l, &oh, &ow, &oc));
    assert_int_equal(oh, 2); assert_int_equal(ow, 2); assert_int_equal(oc, 7);

    l.kind = REF_DEPTHWISE; l.depth_multiplier = 2;
    assert_true(ref_output_shape(&l, &oh, &ow, &oc));
    assert_int_equal(oc, 6);
    l.kind = REF_SEPARABLE;
    assert_true(ref_output_shape(&l, &oh, &ow, &oc));
    assert_int_equal(oc, 7);

    l.kind = REF_CONV;
    l.padding = "causal"; /* causal is rank 1 only */
    assert_false(ref_output_shape(&l, &oh, &ow, &oc));
    l.padding = "same";
    l.groups = 2; /* 2 does not divide in_c = 3 */
    assert_false(ref_output_shape(&l, &oh, &ow, &oc));
    l.groups = 3; /* 3 divides in_c = 3 but not filters = 7 */
    assert_false(ref_output_shape(&l, &oh, &ow, &oc));

    l = base_layer(REF_CONV, 1);
    l.in_h = 2; /* rank 1 needs in_h = 1 */
    assert_false(ref_output_shape(&l, &oh, &ow, &oc));
}

/* Pins the number and sizes of the weight tensors in Keras order. */
static void test_weight_sizes(void **state)
{
    ref_layer l = base_layer(REF_CONV, 2);
    (void)state;
    l.k_h = 3; l.k_w = 2; l.in_c = 4; l.filters = 6; l.groups = 2; l.use_bias = 1;
    assert_int_equal(ref_weight_count(&l), 2);
    assert_int_equal(ref_weight_size(&l, 0), 3 * 2 * 2 * 6);
    assert_int_equal(ref_weight_size(&l, 1), 6);
    assert_int_equal(ref_weight_size(&l, 2), 0);
    l.use_bias = 0;
    assert_int_equal(ref_weight_count(&l), 1);

    l.kind = REF_DEPTHWISE; l.depth_multiplier = 3; l.use_bias = 1;
    assert_int_equal(ref_weight_count(&l), 2);
    assert_int_equal(ref_weight_size(&l, 0), 3 * 2 * 4 * 3);
    assert_int_equal(ref_weight_size(&l, 1), 12);

    l.kind = REF_SEPARABLE;
    assert_int_equal(ref_weight_count(&l), 3);
    assert_int_equal(ref_weight_size(&l, 0), 3 * 2 * 4 * 3);
    assert_int_equal(ref_weight_size(&l, 1), 12 * 6);
    assert_int_equal(ref_weight_size(&l, 2), 6);
    l.use_bias = 0;
    assert_int_equal(ref_weight_count(&l), 2);
}

/* Pins 'same' 1D padding placement: odd pad_total puts the extra after, even splits evenly. */
static void test_same_padding_1d_values(void **state)
{
    ref_layer l = base_layer(REF_CONV, 1);
    const float ones[4] = {1, 1, 1, 1};
    const float *w[1];
    const float x[6] = {1, 2, 3, 4, 5, 6};
    float y[3];
    (void)state;
    w[0] = ones;
    l.padding = "same";

    /* in 4, k 3, s 2: out 2, pad_total 1 -> 0 before, 1 after */
    {
        const double want[2] = {1 + 2 + 3, 3 + 4};
        l.in_w = 4; l.k_w = 3; l.s_w = 2;
        ref_forward(&l, 1, x, w, y);
        check_close(y, want, 2, 1e-6);
    }
    /* in 5, k 3, s 2: out 3, pad_total 2 -> 1 before, 1 after */
    {
        const double want[3] = {1 + 2, 2 + 3 + 4, 4 + 5};
        l.in_w = 5; l.k_w = 3; l.s_w = 2;
        ref_forward(&l, 1, x, w, y);
        check_close(y, want, 3, 1e-6);
    }
    /* in 6, k 4, s 2: out 3, pad_total 2 -> 1 before, 1 after */
    {
        const double want[3] = {1 + 2 + 3, 2 + 3 + 4 + 5, 4 + 5 + 6};
        l.in_w = 6; l.k_w = 4; l.s_w = 2;
        ref_forward(&l, 1, x, w, y);
        check_close(y, want, 3, 1e-6);
    }
}

/* Pins 2D 'same' with odd pad_total: the extra row goes at the bottom and the extra column at the right. */
static void test_same_padding_2d_asymmetric(void **state)
{
    ref_layer l = base_layer(REF_CONV, 2);
    const float ones[4] = {1, 1, 1, 1};
    const float *w[1];
    float x[16], y[16];
    /* x[h][w] = 4h + w + 1; 2x2 all-ones kernel; taps (oh..oh+1, ow..ow+1) */
    const double want[16] = {
        14, 18, 22, 12,
        30, 34, 38, 20,
        46, 50, 54, 28,
        27, 29, 31, 16,
    };
    int i;
    (void)state;
    for (i = 0; i < 16; i++)
        x[i] = (float)(i + 1);
    w[0] = ones;
    l.in_h = 4; l.in_w = 4; l.k_h = 2; l.k_w = 2;
    l.padding = "same";
    ref_forward(&l, 1, x, w, y);
    check_close(y, want, 16, 1e-6);
}

/* Pins causal padding: (k-1)*d zeros before only, with dilation, stride and bias. */
static void test_causal(void **state)
{
    ref_layer l = base_layer(REF_CONV, 1);
    const float k[2] = {10, 1}; /* tap 0 reads x[t-2], tap 1 reads x[t] */
    const float b[1] = {0.5f};
    const float *w[2];
    const float x[5] = {1, 2, 3, 4, 5};
    float y[5];
    (void)state;
    w[0] = k; w[1] = b;
    l.in_w = 5; l.k_w = 2; l.d_w = 2;
    l.padding = "causal";
    l.use_bias = 1;
    {
        const double want[5] = {1.5, 2.5, 13.5, 24.5, 35.5};
        ref_forward(&l, 1, x, w, y);
        check_close(y, want, 5, 1e-6);
    }
    l.s_w = 2;
    {
        const double want[3] = {1.5, 13.5, 35.5};
        ref_forward(&l, 1, x, w, y);
        check_close(y, want, 3, 1e-6);
    }
}

/* Pins depthwise depth_multiplier=2 output channel order c*dm + m (and bias per output channel). */
static void test_depthwise_dm2_order(void **state)
{
    ref_layer l = base_layer(REF_DEPTHWISE, 1);
    const float k[4] = {1, 10, 100, 1000}; /* [c][m] */
    const float b[4] = {1, 2, 3, 4};
    const float *w[2];
    const float x[2] = {2, 3};
    const double want[4] = {2 * 1 + 1, 2 * 10 + 2, 3 * 100 + 3, 3 * 1000 + 4};
    float y[4];
    (void)state;
    w[0] = k; w[1] = b;
    l.in_c = 2; l.depth_multiplier = 2; l.use_bias = 1;
    ref_forward(&l, 1, x, w, y);
    check_close(y, want, 4, 1e-6);
}

/* Pins depthwise 2D kernel layout (k_h, k_w, in_c, dm) with a spatial 2x2 kernel. */
static void test_depthwise_2d_kernel_layout(void **state)
{
    ref_layer l = base_layer(REF_DEPTHWISE, 2);
    /* NHWC 2x2x2: channel 0 = 1,2,3,4 and channel 1 = 10,20,30,40 in (h,w) order */
    const float x[8] = {1, 10, 2, 20, 3, 30, 4, 40};
    float k[16];
    const float *w[1];
    /* m = 0: all ones; m = 1: tap (kh,kw) weight kh*2 + kw + 1 */
    const double want[4] = {10, 30, 100, 300};
    float y[4];
    int kh, kw, c;
    (void)state;
    for (kh = 0; kh < 2; kh++)
        for (kw = 0; kw < 2; kw++)
            for (c = 0; c < 2; c++) {
                k[((kh * 2 + kw) * 2 + c) * 2 + 0] = 1.0f;
                k[((kh * 2 + kw) * 2 + c) * 2 + 1] = (float)(kh * 2 + kw + 1);
            }
    w[0] = k;
    l.in_h = 2; l.in_w = 2; l.in_c = 2; l.k_h = 2; l.k_w = 2; l.depth_multiplier = 2;
    ref_forward(&l, 1, x, w, y);
    check_close(y, want, 4, 1e-6);
}

/* Pins separable conv: depthwise (no bias) then pointwise, then bias. */
static void test_separable_1d(void **state)
{
    ref_layer l = base_layer(REF_SEPARABLE, 1);
    /* NWC, length 3, 2 channels: c0 = 1,2,3; c1 = 4,5,6 */
    const float x[6] = {1, 4, 2, 5, 3, 6};
    const float dk[4] = {1, 2, 3, 4};   /* [kw][c][m]: kw0 (c0 1, c1 2), kw1 (c0 3, c1 4) */
    const float pk[4] = {1, -1, 10, 1}; /* [j][o] */
    const float b[2] = {1, 2};
    const float *w[3];
    /* depthwise: d0 = 7, 11; d1 = 28, 34; o0 = d0 + 10 d1 + 1, o1 = -d0 + d1 + 2 */
    const double want[4] = {288, 23, 352, 25};
    float y[4];
    (void)state;
    w[0] = dk; w[1] = pk; w[2] = b;
    l.in_w = 3; l.in_c = 2; l.k_w = 2; l.filters = 2; l.use_bias = 1;
    ref_forward(&l, 1, x, w, y);
    check_close(y, want, 4, 1e-6);
}

/* Pins separable depth_multiplier=2 intermediate channel order c*dm + m feeding the pointwise kernel. */
static void test_separable_dm2_order(void **state)
{
    ref_layer l = base_layer(REF_SEPARABLE, 1);
    const float x[2] = {2, 3};
    const float dk[4] = {1, 10, 100, 1000}; /* [c][m]: intermediate = 2, 20, 300, 3000 */
    const float pk[4] = {1, 2, 3, 4};       /* [j][o], one filter */
    const float *w[2];
    const double want[1] = {2 * 1 + 20 * 2 + 300 * 3 + 3000 * 4};
    float y[1];
    (void)state;
    w[0] = dk; w[1] = pk;
    l.in_c = 2; l.depth_multiplier = 2; l.filters = 1;
    ref_forward(&l, 1, x, w, y);
    check_close(y, want, 1, 1e-6);
}

/* Pins groups=2: output channel o sees only the input channels of group o / (filters/groups). */
static void test_groups(void **state)
{
    ref_layer l = base_layer(REF_CONV, 1);
    const float k[8] = {1, 2, 3, 4, 5, 6, 7, 8}; /* [ci_local][o], 2 x 4 */
    const float *w[1];
    const float x[4] = {1, 2, 3, 4};
    const double want[4] = {1 * 1 + 2 * 5, 1 * 2 + 2 * 6, 3 * 3 + 4 * 7, 3 * 4 + 4 * 8};
    float y[4];
    (void)state;
    w[0] = k;
    l.in_c = 4; l.filters = 4; l.groups = 2;
    ref_forward(&l, 1, x, w, y);
    check_close(y, want, 4, 1e-6);
}

/* Deterministic pseudo-random values in [-1, 1). */
static void fill(float *p, long n, unsigned *seed)
{
    long i;
    for (i = 0; i < n; i++) {
        *seed = *seed * 1103515245u + 12345u;
        p[i] = (float)((double)((*seed >> 8) & 0xffff) / 32768.0 - 1.0);
    }
}

/* NHWC -> NCHW for `batch` items. */
static void to_channels_first(const float *src, float *dst, int batch, int h, int w, int c)
{
    int n, i, j, k;
    for (n = 0; n < batch; n++)
        for (i = 0; i < h; i++)
            for (j = 0; j < w; j++)
                for (k = 0; k < c; k++)
                    dst[(((long)n * c + k) * h + i) * w + j] =
                        src[(((long)n * h + i) * w + j) * c + k];
}

/* Runs l in channels_last and channels_first and checks the outputs agree after transposition. */
static void check_formats_agree(ref_layer l, int batch)
{
    int oh, ow, oc, i, nw;
    long in_n = (long)batch * l.in_h * l.in_w * l.in_c, out_n;
    float *x_cl, *x_cf, *y_cl, *y_cf, *y_t, *wbuf[3];
    const float *w[3];
    double *want;
    unsigned seed = 12345u;

    l.channels_first = 0;
    assert_true(ref_output_shape(&l, &oh, &ow, &oc));
    out_n = (long)batch * oh * ow * oc;
    x_cl = malloc(sizeof(float) * in_n);
    x_cf = malloc(sizeof(float) * in_n);
    y_cl = malloc(sizeof(float) * out_n);
    y_cf = malloc(sizeof(float) * out_n);
    y_t = malloc(sizeof(float) * out_n);
    want = malloc(sizeof(double) * out_n);
    assert_non_null(x_cl); assert_non_null(x_cf); assert_non_null(y_cl);
    assert_non_null(y_cf); assert_non_null(y_t); assert_non_null(want);
    nw = ref_weight_count(&l);
    for (i = 0; i < nw; i++) {
        long sz = ref_weight_size(&l, i);
        wbuf[i] = malloc(sizeof(float) * sz);
        assert_non_null(wbuf[i]);
        fill(wbuf[i], sz, &seed);
        w[i] = wbuf[i];
    }
    fill(x_cl, in_n, &seed);
    to_channels_first(x_cl, x_cf, batch, l.in_h, l.in_w, l.in_c);

    ref_forward(&l, batch, x_cl, w, y_cl);
    l.channels_first = 1;
    ref_forward(&l, batch, x_cf, w, y_cf);
    to_channels_first(y_cl, y_t, batch, oh, ow, oc);
    for (i = 0; i < out_n; i++)
        want[i] = y_t[i];
    check_close(y_cf, want, (int)out_n, 1e-6);

    for (i = 0; i < nw; i++)
        free(wbuf[i]);
    free(x_cl); free(x_cf); free(y_cl); free(y_cf); free(y_t); free(want);
}

/* Pins that channels_first and channels_last give the same values after transposition, for every kind. */
static void test_channels_first_matches_last(void **state)
{
    ref_layer l;
    (void)state;

    l = base_layer(REF_CONV, 2);
    l.in_h = 5; l.in_w = 6; l.in_c = 3; l.k_h = 3; l.k_w = 2;
    l.s_h = 2; l.s_w = 1; l.d_h = 1; l.d_w = 2;
    l.padding = "same"; l.filters = 4; l.use_bias = 1; l.activation = "tanh";
    check_formats_agree(l, 2);

    l = base_layer(REF_CONV, 2);
    l.in_h = 4; l.in_w = 5; l.in_c = 4; l.k_h = 2; l.k_w = 3;
    l.filters = 6; l.groups = 2; l.use_bias = 1;
    check_formats_agree(l, 1);

    l = base_layer(REF_DEPTHWISE, 2);
    l.in_h = 5; l.in_w = 4; l.in_c = 3; l.k_h = 3; l.k_w = 3; l.s_h = 2; l.s_w = 2;
    l.padding = "same"; l.depth_multiplier = 2; l.use_bias = 1; l.activation = "relu";
    check_formats_agree(l, 2);

    l = base_layer(REF_SEPARABLE, 2);
    l.in_h = 6; l.in_w = 5; l.in_c = 2; l.k_h = 2; l.k_w = 3; l.d_h = 2;
    l.padding = "same"; l.depth_multiplier = 3; l.filters = 5; l.use_bias = 1;
    check_formats_agree(l, 2);

    l = base_layer(REF_CONV, 1);
    l.in_w = 7; l.in_c = 3; l.k_w = 3; l.d_w = 2; l.s_w = 2;
    l.padding = "causal"; l.filters = 2; l.use_bias = 1;
    check_formats_agree(l, 2);
}

/* Identity 1x1 conv with 2 channels on a 1x3 image (either data format), running `act`. */
static void run_identity_2ch(const char *act, int channels_first, const float *x, float *y)
{
    ref_layer l = base_layer(REF_CONV, 2);
    const float k[4] = {1, 0, 0, 1}; /* [ci][o] identity */
    const float *w[1];
    w[0] = k;
    l.in_h = 1; l.in_w = 3; l.in_c = 2; l.filters = 2;
    l.channels_first = channels_first;
    l.activation = act;
    ref_forward(&l, 1, x, w, y);
}

/* Pins softmax/log_softmax on channels_first being over W (the last axis), not over channels. */
static void test_softmax_channels_first_over_w(void **state)
{
    /* NCHW: c0 row = (0, ln 3, ln 4), c1 row = (2, 2, 2) */
    const float x[6] = {0.0f, (float)log(3.0), (float)log(4.0), 2.0f, 2.0f, 2.0f};
    const double want[6] = {0.125, 0.375, 0.5, 1.0 / 3, 1.0 / 3, 1.0 / 3};
    const double want_log[6] = {log(0.125), log(0.375), log(0.5),
                                -log(3.0), -log(3.0), -log(3.0)};
    float y[6];
    (void)state;
    run_identity_2ch("softmax", 1, x, y);
    check_close(y, want, 6, 1e-6);
    run_identity_2ch("log_softmax", 1, x, y);
    check_close(y, want_log, 6, 1e-6);
}

/* Pins softmax on channels_last being over channels, and numerically stable for large values. */
static void test_softmax_channels_last_over_c(void **state)
{
    /* NHWC: channels (0, ln 3) at w0, (1000, 1000) at w1, (-5, -5 + ln 4) at w2 */
    const float x[6] = {0.0f, (float)log(3.0), 1000.0f, 1000.0f, -5.0f, (float)(-5.0 + log(4.0))};
    const double want[6] = {0.25, 0.75, 0.5, 0.5, 0.2, 0.8};
    float y[6];
    (void)state;
    run_identity_2ch("softmax", 0, x, y);
    check_close(y, want, 6, 1e-6);
}

/* y = act(x) through a 1x1 single-channel conv with weight 1 and no bias. */
static float act1(const char *act, int keras_version, float x)
{
    ref_layer l = base_layer(REF_CONV, 1);
    const float k[1] = {1};
    const float *w[1];
    float y;
    w[0] = k;
    l.activation = act;
    l.keras_version = keras_version;
    ref_forward(&l, 1, &x, w, &y);
    return y;
}

/* Pins a hand-checked value of each elementwise activation (incl. Keras 2 vs 3 hard_sigmoid). */
static void test_activation_values(void **state)
{
    static const struct { const char *name; int kv; float x; double want; } cases[] = {
        {"linear", 3, -1.5f, -1.5},
        {"", 3, 2.5f, 2.5},
        {"relu", 3, -2.0f, 0.0},
        {"relu", 3, 3.0f, 3.0},
        {"relu6", 3, 7.0f, 6.0},
        {"relu6", 3, 5.0f, 5.0},
        {"sigmoid", 3, 0.0f, 0.5},
        {"sigmoid", 3, 2.0f, 0.8807970779778823},
        {"tanh", 3, 1.0f, 0.7615941559557649},
        {"elu", 3, -1.0f, -0.6321205588285577},
        {"elu", 3, 2.0f, 2.0},
        {"selu", 3, 1.0f, 1.0507009873554805},
        {"selu", 3, -1.0f, -1.1113307378125625},
        {"softplus", 3, 0.0f, 0.6931471805599453},
        {"softplus", 3, 100.0f, 100.0},
        {"softplus", 3, -100.0f, 0.0},
        {"softsign", 3, 1.0f, 0.5},
        {"softsign", 3, -3.0f, -0.75},
        {"swish", 3, 1.0f, 0.7310585786300049},
        {"silu", 3, 1.0f, 0.7310585786300049},
        {"gelu", 3, 1.0f, 0.8413447460685429},
        {"gelu", 3, -1.0f, -0.15865525393145707},
        {"hard_sigmoid", 3, 1.0f, 4.0 / 6.0},
        {"hard_sigmoid", 2, 1.0f, 0.7},
        {"hard_sigmoid", 3, 2.0f, 5.0 / 6.0},
        {"hard_sigmoid", 2, 2.0f, 0.9},
        {"hard_sigmoid", 3, -2.6f, 0.4 / 6.0},
        {"hard_sigmoid", 2, -2.6f, 0.0},
        {"hard_sigmoid", 3, 4.0f, 1.0},
        {"hard_swish", 3, 1.0f, 4.0 / 6.0},
        {"hard_silu", 3, -4.0f, 0.0},
        {"leaky_relu", 3, -1.0f, -0.2},
        {"leaky_relu", 3, 1.0f, 1.0},
        {"exponential", 3, 1.0f, 2.718281828459045},
        {"mish", 3, 1.0f, 0.8650983882673103},
    };
    size_t i;
    float got;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        got = act1(cases[i].name, cases[i].kv, cases[i].x);
        if (!(fabs((double)got - cases[i].want) <= 1e-6 * (1.0 + fabs(cases[i].want)))) {
            print_error("%s(%g) [keras %d]: got %.9g, want %.9g\n", cases[i].name,
                        (double)cases[i].x, cases[i].kv, (double)got, cases[i].want);
            fail();
        }
    }
    /* NULL activation means linear */
    got = act1(NULL, 3, -4.0f);
    assert_true(got == -4.0f);
}

/* Pins that bias is added before the activation. */
static void test_bias_before_activation(void **state)
{
    ref_layer l = base_layer(REF_CONV, 1);
    const float k[1] = {1}, b[1] = {-3};
    const float *w[2];
    const float x[1] = {1};
    float y[1] = {42};
    (void)state;
    w[0] = k; w[1] = b;
    l.use_bias = 1;
    l.activation = "relu";
    ref_forward(&l, 1, x, w, y);
    assert_true(y[0] == 0.0f); /* relu(1 - 3), not relu(1) - 3 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_shapes_1d),
        cmocka_unit_test(test_output_shapes_2d_and_invalid),
        cmocka_unit_test(test_weight_sizes),
        cmocka_unit_test(test_same_padding_1d_values),
        cmocka_unit_test(test_same_padding_2d_asymmetric),
        cmocka_unit_test(test_causal),
        cmocka_unit_test(test_depthwise_dm2_order),
        cmocka_unit_test(test_depthwise_2d_kernel_layout),
        cmocka_unit_test(test_separable_1d),
        cmocka_unit_test(test_separable_dm2_order),
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_channels_first_matches_last),
        cmocka_unit_test(test_softmax_channels_first_over_w),
        cmocka_unit_test(test_softmax_channels_last_over_c),
        cmocka_unit_test(test_activation_values),
        cmocka_unit_test(test_bias_before_activation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
