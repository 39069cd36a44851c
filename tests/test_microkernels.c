/* test_microkernels.c: every variant of the runtime's precompiled
 * microkernels (the table generated from templates/microkernels.lua), on
 * every ISA this CPU runs, against a naive loop written here.
 *
 * Each variant gets the same edge cases: channel counts around the 16- and
 * 8-channel tiles and the partial tile, one and many input channels, whole
 * and clipped tap ranges, strided pixels and taps, outputs wider apart than
 * the channels (nothing may be written between them), each activation, with
 * and without bias. Inputs, weights and outputs sit against guard pages. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "microkernels.h"

typedef void (*conv_fn)(const struct convgen_uk_conv *, const float *, float *, const float *, const float *, int,
                        int, int, int);
typedef void (*dw_fn)(const struct convgen_uk_dw *, const float *, float *, const float *, const float *, int, int,
                      int, int);
typedef void (*dw_fixed_fn)(const struct convgen_uk_dw *, const float *, float *, const float *, const float *);
typedef void (*conv_fixed_fn)(const struct convgen_uk_conv *, const float *, float *, const float *, const float *);
/* row variants: the same, then the number of pixels */
typedef void (*conv_row_fn)(const struct convgen_uk_conv *, const float *, float *, const float *, const float *, int,
                            int, int, int, int);
typedef void (*dw_row_fn)(const struct convgen_uk_dw *, const float *, float *, const float *, const float *, int, int,
                          int, int, int);
typedef void (*dw_fixed_row_fn)(const struct convgen_uk_dw *, const float *, float *, const float *, const float *,
                                int);
typedef void (*conv_fixed_row_fn)(const struct convgen_uk_conv *, const float *, float *, const float *,
                                  const float *, int);

typedef struct {
    const struct convgen__uk_symbol *symbol;
    int isa;
    char name[96];
} variant;

static const float SENTINEL = -12345.0f; /* what an output slot holds until written */

static float activate(float v, int act)
{
    if (act >= 1)
        v = v > 0.0f ? v : 0.0f;
    if (act == 2)
        v = v < 6.0f ? v : 6.0f;
    return v;
}

/* One strip's shape: mr pixels, each reading taps [kh0, kh1) x [kw0, kw1) of
 * a k_h x k_w kernel with dilation (d_h, d_w), pixels `stride` columns apart,
 * from an input of rows x cols pixels of `ci` channels (depthwise: co / dm,
 * output channel o reading input channel o / dm). */
typedef struct {
    int mr, ci, co, dm, k_h, k_w, d_h, d_w, stride, kh0, kh1, kw0, kw1, act, bias, out_gap;
} strip_case;

static int input_rows(const strip_case *s) { return (s->k_h - 1) * s->d_h + 1; }
static int input_cols(const strip_case *s) { return (s->mr - 1) * s->stride + (s->k_w - 1) * s->d_w + 1; }

/* The packed layout, as README and the ABI describe it: 16-channel tiles, one
 * of 8, then the rest zero-padded to 8; within a tile, [tap][ci][width]. */
static void pack(const float *w, int rows, int co, float *packed)
{
    long at = 0;
    for (int c0 = 0; c0 < co;) {
        int width = co - c0 >= 16 ? 16 : 8;
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < width; j++)
                packed[at++] = c0 + j < co ? w[(long)r * co + c0 + j] : 0.0f;
        c0 += width;
    }
}

static long packed_size(int rows, int co) { return (long)rows * ((co + 7) / 8 * 8); }

/* Runs one conv or depthwise strip and compares every output float. */
static void check_strip(const variant *v, const strip_case *s, unsigned long long seed)
{
    const int dw = strncmp(v->symbol->kind, "dw", 2) == 0; /* dw or dwm */
    const int row = v->symbol->mr == 0;                     /* a row variant: s->mr pixels */
    const int packed_dw = strcmp(v->symbol->kind, "dw") == 0; /* dw reads its kernel packed; dwn, dwm do not */
    const int ci = dw ? s->co / s->dm : s->ci, rows = input_rows(s), cols = input_cols(s);
    const long in_n = (long)rows * cols * ci, taps = (long)s->k_h * s->k_w;
    const long w_n = dw ? taps * s->co : taps * ci * s->co;
    const long out_stride = s->co + s->out_gap, out_n = (long)(s->mr - 1) * out_stride + s->co;
    harness_guarded gi, gw, gb, go;
    float *in = harness_guarded_alloc(&gi, in_n, seed & 1);
    float *w = harness_guarded_alloc(&gw, dw && !packed_dw ? w_n : packed_size((int)(dw ? taps : taps * ci), s->co),
                                     !(seed & 1));
    float *bias = harness_guarded_alloc(&gb, s->co, seed & 1);
    float *out = harness_guarded_alloc(&go, out_n, !(seed & 1));
    float *plain = malloc((size_t)w_n * sizeof *plain), *want = malloc((size_t)out_n * sizeof *want);
    harness_fill(in, in_n, &seed, -2.0f, 2.0f);
    harness_fill(plain, w_n, &seed, -1.0f, 1.0f);
    harness_fill(bias, s->co, &seed, -1.0f, 1.0f);
    if (dw && !packed_dw)
        memcpy(w, plain, (size_t)w_n * sizeof *w);
    else /* dw: rows are the taps */
        pack(plain, (int)(dw ? taps : taps * ci), s->co, w);
    harness_guarded_readonly(&gi);
    harness_guarded_readonly(&gw);
    harness_guarded_readonly(&gb);

    /* The naive strip: input [row][col][channel]. */
    for (long i = 0; i < out_n; i++)
        want[i] = out[i] = SENTINEL;
    for (int p = 0; p < s->mr; p++) {
        for (int o = 0; o < s->co; o++) {
            double acc = s->bias ? bias[o] : 0.0;
            for (int kh = s->kh0; kh < s->kh1; kh++) {
                for (int kw = s->kw0; kw < s->kw1; kw++) {
                    const float *x = in + ((long)kh * s->d_h * cols + (long)p * s->stride + (long)kw * s->d_w) * ci;
                    long tap = (long)kh * s->k_w + kw;
                    if (dw)
                        acc += (double)x[o / s->dm] * plain[tap * s->co + o];
                    else
                        for (int i = 0; i < ci; i++)
                            acc += (double)x[i] * plain[(tap * ci + i) * s->co + o];
                }
            }
            want[(long)p * out_stride + o] = activate((float)acc, s->act);
        }
    }

    const float *x = in + ((long)s->kh0 * s->d_h * cols + (long)s->kw0 * s->d_w) * ci;
    if (s->kh0 >= s->kh1 || s->kw0 >= s->kw1)
        x = in; /* no tap is read */
    const float *b = s->bias ? bias : NULL;
/* calls the variant through its table entry as a `type` */
#define CALL_VARIANT(type, ...)                                         \
    do {                                                                \
        type fn;                                                        \
        memcpy(&fn, &v->symbol->variant[v->isa], sizeof fn);            \
        fn(__VA_ARGS__);                                                \
    } while (0)
    if (dw) {
        struct convgen_uk_dw g = {ci, s->dm, s->k_w, taps, (ptrdiff_t)s->stride * ci, out_stride, (ptrdiff_t)s->d_h * cols * ci,
                                  (ptrdiff_t)s->d_w * ci, s->act, rows, cols};
        if (v->symbol->k_h && row) /* a fixed kernel shape: every tap */
            CALL_VARIANT(dw_fixed_row_fn, &g, x, out, w, b, s->mr);
        else if (v->symbol->k_h)
            CALL_VARIANT(dw_fixed_fn, &g, x, out, w, b);
        else if (row)
            CALL_VARIANT(dw_row_fn, &g, x, out, w, b, s->kh0, s->kh1, s->kw0, s->kw1, s->mr);
        else
            CALL_VARIANT(dw_fn, &g, x, out, w, b, s->kh0, s->kh1, s->kw0, s->kw1);
    } else {
        struct convgen_uk_conv g = {ci, s->co, s->k_w, taps, (ptrdiff_t)s->stride * ci, out_stride,
                                    (ptrdiff_t)s->d_h * cols * ci, (ptrdiff_t)s->d_w * ci, s->act};
        if (v->symbol->k_h && row) /* a fixed kernel shape: every tap */
            CALL_VARIANT(conv_fixed_row_fn, &g, x, out, w, b, s->mr);
        else if (v->symbol->k_h)
            CALL_VARIANT(conv_fixed_fn, &g, x, out, w, b);
        else if (row)
            CALL_VARIANT(conv_row_fn, &g, x, out, w, b, s->kh0, s->kh1, s->kw0, s->kw1, s->mr);
        else
            CALL_VARIANT(conv_fn, &g, x, out, w, b, s->kh0, s->kh1, s->kw0, s->kw1);
    }
#undef CALL_VARIANT
    /* float sums of up to 7 x 7 x 19 products: past the 2 x 5 x 19 of the
     * generic kernels' cases, the tolerance grows with their number */
    const long terms = (long)(s->kh1 - s->kh0) * (s->kw1 - s->kw0) * (dw ? 1 : ci);
    const double tol = 1e-5 * (terms > 190 ? (double)terms / 190.0 : 1.0);
    long bad = harness_mismatch(out, want, out_n, tol, tol);
    if (bad >= 0)
        fail_msg("%s: mr %d ci %d co %d dm %d kernel %dx%d dilation %dx%d stride %d taps [%d,%d)x[%d,%d) act %d bias %d "
                 "gap %d: output[%ld] = %.9g, want %.9g",
                 v->name, s->mr, ci, s->co, s->dm, s->k_h, s->k_w, s->d_h, s->d_w, s->stride, s->kh0, s->kh1, s->kw0,
                 s->kw1, s->act, s->bias, s->out_gap, bad, (double)out[bad], (double)want[bad]);
    free(plain);
    free(want);
    harness_guarded_free(&gi);
    harness_guarded_free(&gw);
    harness_guarded_free(&gb);
    harness_guarded_free(&go);
}

/* The same edge cases for every variant (a fixed kernel shape: that shape,
 * every tap; a fixed geometry: its channels and stride, and for depthwise
 * ones no gap between output pixels; dwm: depth multipliers that divide a vector, and ones that
 * do not, so a vector's lanes straddle input channels). */
static void test_variant(void **state)
{
    const variant *v = *state;
    static const int channels[] = {1, 5, 8, 9, 15, 16, 17, 24, 31, 33, 40};
    int kernels[][2] = {{1, 1}, {3, 3}, {2, 5}, {1, 4}};
    static const int multipliers[] = {2, 3, 1, 8, 5, 4, 9, 16};
    const int fixed = v->symbol->k_h > 0, nkernels = fixed ? 1 : 4, dwm = strcmp(v->symbol->kind, "dwm") == 0;
    const int dw = strcmp(v->symbol->kind, "conv") != 0;
    if (fixed)
        kernels[0][0] = v->symbol->k_h, kernels[0][1] = v->symbol->k_w;
    unsigned long long seed = 0x9e3779b97f4a7c15ull;
    int n = 0;
    for (size_t c = 0; c < sizeof channels / sizeof channels[0]; c++) {
        for (int k = 0; k < nkernels; k++) {
            for (int variant_no = 0; variant_no < 4; variant_no++, n++) {
                const int dm = dwm ? multipliers[n % 8] : 1;
                /* a row variant: 1 to 31 pixels, every remainder of its strips and the
                 * endings in narrower strips */
                strip_case s = {.mr = v->symbol->mr ? v->symbol->mr : 1 + (n * 5) % 31, .ci = 1 + (n * 7) % 19, .co = channels[c] * dm, .dm = dm,
                                .k_h = kernels[k][0], .k_w = kernels[k][1], .d_h = 1 + (variant_no == 3),
                                .d_w = 1 + (variant_no == 2), .stride = 1 + (n % 3 == 1), .act = n % 3,
                                .bias = n % 4 != 1, .out_gap = (n % 5 == 0) ? 3 : 0};
                s.kh0 = 0, s.kh1 = s.k_h, s.kw0 = 0, s.kw1 = s.k_w;
                if (v->symbol->c && dw) { /* a fixed geometry: its channels and stride, dilated at stride 1 */
                    s.co = v->symbol->c, s.stride = v->symbol->s, s.out_gap = 0;
                    if (s.stride > 1)
                        s.d_w = 1;
                } else if (v->symbol->c) { /* conv: its input channels, dilation 1; any output channels and gap */
                    s.ci = v->symbol->c, s.stride = v->symbol->s, s.d_w = 1;
                }
                if (fixed) {
                    /* every tap: variant_no varies dilations, strides, activations */
                } else if (variant_no == 1) { /* clipped as at a border: top-left, then bottom-right */
                    s.kh0 = s.k_h > 1, s.kw0 = s.k_w > 1 ? 1 : 0;
                    s.kh1 = s.k_h, s.kw1 = s.k_w;
                } else if (variant_no == 2 && s.k_w > 2) {
                    s.kw1 = s.k_w - 2;
                } else if (variant_no == 3 && n % 8 == 3) {
                    s.kh1 = s.kh0; /* every tap in the padding: bias alone */
                }
                check_strip(v, &s, seed + (unsigned long long)n);
            }
        }
    }
}

typedef void (*dw_plane_fn)(const struct convgen_uk_dw *, const float *, float *, const float *, const float *, int,
                            int);

/* The naive 'same' plane: an H x W item of C channels, a KH x KW kernel in
 * Keras layout, stride S, padding (PT, PL), into an OH x OW output. */
static void plane_reference(const float *x, const float *w, const float *bias, int H, int W, int C, int KH, int KW,
                            int S, int PT, int PL, int act, float *want)
{
    const int OH = (H + S - 1) / S, OW = (W + S - 1) / S;
    for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++)
            for (int c = 0; c < C; c++) {
                double acc = bias ? bias[c] : 0.0;
                for (int kh = 0; kh < KH; kh++)
                    for (int kw = 0; kw < KW; kw++) {
                        int ih = oh * S - PT + kh, iw = ow * S - PL + kw;
                        if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                            acc += (double)x[((long)ih * W + iw) * C + c] * w[(long)(kh * KW + kw) * C + c];
                    }
                want[((long)oh * OW + ow) * C + c] = activate((float)acc, act);
            }
}

/* Runs a whole-plane variant over rows [0, OH) as one call, then as uneven
 * row ranges, the item's input and output against guard pages (the side
 * chosen by `guard`), and checks the output against want and the input
 * unchanged; `what` names the case in a failure. */
static void check_plane(const variant *v, const struct convgen_uk_dw *g, const float *x, long in_n, const float *w,
                        const float *bias, int OH, const float *want, long out_n, int guard, const char *what)
{
    dw_plane_fn fn;
    memcpy(&fn, &v->symbol->variant[v->isa], sizeof fn);
    for (int split = 0; split < 2; split++) {
        harness_guarded gin, gout;
        float *in = harness_guarded_alloc(&gin, in_n, guard);
        float *out = harness_guarded_alloc(&gout, out_n, !guard);
        memcpy(in, x, (size_t)in_n * sizeof *in);
        for (long i = 0; i < out_n; i++)
            out[i] = SENTINEL;
        if (split) { /* uneven ranges, last first, as threads may run them */
            const int cut1 = OH / 3, cut2 = OH - OH / 4;
            fn(g, in, out, w, bias, cut2, OH);
            fn(g, in, out, w, bias, 0, cut1);
            fn(g, in, out, w, bias, cut1, cut2);
        } else {
            fn(g, in, out, w, bias, 0, OH);
        }
        assert_memory_equal(in, x, (size_t)in_n * sizeof *in);
        long bad = harness_mismatch(out, want, out_n, 1e-4, 1e-5);
        if (bad >= 0)
            fail_msg("%s: %s, %s: output[%ld] = %.9g, reference %.9g", v->name, what,
                     split ? "row ranges" : "one call", bad, (double)out[bad], (double)want[bad]);
        harness_guarded_free(&gin);
        harness_guarded_free(&gout);
    }
}

/* A plane variant (kind dwplane): every output row of an in_h x in_w plane
 * with 'same' padding, as one call and as uneven row ranges, for channel
 * counts of 1024 and more (multiples of 64), each activation, with and
 * without bias, against a naive loop; the item's input and output against
 * guard pages, its input unchanged. */
static void test_plane(void **state)
{
    const variant *v = *state;
    const struct convgen__uk_symbol *sym = v->symbol;
    const int H = sym->h, W = sym->w, KH = sym->k_h, KW = sym->k_w, S = sym->s;
    const int OH = (H + S - 1) / S, OW = (W + S - 1) / S;
    const int PT = ((OH - 1) * S + KH - H > 0 ? (OH - 1) * S + KH - H : 0) / 2;
    const int PL = ((OW - 1) * S + KW - W > 0 ? (OW - 1) * S + KW - W : 0) / 2;
    static const int channels[] = {1024, 64 * 17, 2048};
    unsigned long long seed = 0x51ed2701ull;
    for (int n = 0; n < 6; n++) {
        const int C = channels[n % 3], act = n % 3, use_bias = n != 4;
        const long in_n = (long)H * W * C, out_n = (long)OH * OW * C;
        float *x = malloc((size_t)in_n * sizeof *x), *w = malloc((size_t)KH * KW * C * sizeof *w);
        float *bias = malloc((size_t)C * sizeof *bias), *want = malloc((size_t)out_n * sizeof *want);
        float *packed = malloc((size_t)packed_size(KH * KW, C) * sizeof *packed);
        harness_fill(x, in_n, &seed, -1.0f, 1.0f);
        harness_fill(w, (long)KH * KW * C, &seed, -1.0f, 1.0f);
        harness_fill(bias, C, &seed, -1.0f, 1.0f);
        pack(w, KH * KW, C, packed);
        plane_reference(x, w, use_bias ? bias : NULL, H, W, C, KH, KW, S, PT, PL, act, want);
        const struct convgen_uk_dw g = {C, 1, KW, KH * KW, C, C, (ptrdiff_t)W * C, C, act, H, W};
        char what[64];
        snprintf(what, sizeof what, "%d channels, act %d, bias %d", C, act, use_bias);
        check_plane(v, &g, x, in_n, packed, use_bias ? bias : NULL, OH, want, out_n, n % 2, what);
        free(x);
        free(w);
        free(bias);
        free(want);
        free(packed);
    }
}

/* A dwsame variant: every output row of planes of many sizes (one pixel
 * wide or high, each count of interior pixels a strip can leave, several
 * strips) with 'same' padding at stride 1, its channel count, the kernel in
 * Keras layout, as one call and as uneven row ranges, each activation, with
 * and without bias, against a naive loop; the item's input and output
 * against guard pages, its input unchanged. */
static void test_same(void **state)
{
    const variant *v = *state;
    const struct convgen__uk_symbol *sym = v->symbol;
    const int KH = sym->k_h, KW = sym->k_w, C = sym->c, PT = (KH - 1) / 2, PL = (KW - 1) / 2;
    static const int sizes[][2] = {{1, 1}, {1, 2}, {2, 1}, {2, 3}, {3, 9}, {4, 10}, {5, 17}, {16, 16}, {7, 4}};
    unsigned long long seed = 0x5a3e11ull + (unsigned long long)C;
    for (int n = 0; n < (int)(sizeof sizes / sizeof sizes[0]); n++) {
        const int H = sizes[n][0], W = sizes[n][1], act = n % 3, use_bias = n % 4 != 1;
        const long in_n = (long)H * W * C;
        float *x = malloc((size_t)in_n * sizeof *x), *w = malloc((size_t)KH * KW * C * sizeof *w);
        float *bias = malloc((size_t)C * sizeof *bias), *want = malloc((size_t)in_n * sizeof *want);
        harness_fill(x, in_n, &seed, -1.0f, 1.0f);
        harness_fill(w, (long)KH * KW * C, &seed, -1.0f, 1.0f);
        harness_fill(bias, C, &seed, -1.0f, 1.0f);
        plane_reference(x, w, use_bias ? bias : NULL, H, W, C, KH, KW, 1, PT, PL, act, want);
        const struct convgen_uk_dw g = {C, 1, KW, KH * KW, C, C, (ptrdiff_t)W * C, C, act, H, W};
        char what[64];
        snprintf(what, sizeof what, "%dx%d, act %d, bias %d", H, W, act, use_bias);
        check_plane(v, &g, x, in_n, w, use_bias ? bias : NULL, H, want, in_n, n % 2, what);
        free(x);
        free(w);
        free(bias);
        free(want);
    }
}

typedef void (*sep_row_fn)(const struct convgen_uk_dw *, const struct convgen_uk_conv *, const float *, float *,
                           const float *, const float *, const float *, int);

/* A sep variant (a separable row, fused): n pixels of its depthwise fixed
 * geometry (kernel shape, channels C, stride), dilated along both axes at
 * stride 1, then the pointwise step to co channels, against a naive loop:
 * every count of pixels its strips leave, and several strips; output
 * channels around the 16- and 8-channel tiles and the partial one; output
 * pixels wider apart than the channels; each activation, with and without
 * bias. The geometry fields the variant sets itself (the depthwise step's
 * output stride and activation, the pointwise step's input) hold values it
 * must not use. Every buffer sits against a guard page, the inputs and
 * weights read-only. */
static void test_sep(void **state)
{
    const variant *v = *state;
    const struct convgen__uk_symbol *sym = v->symbol;
    const int KH = sym->k_h, KW = sym->k_w, C = sym->c, S = sym->s;
    static const int pixels[] = {1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 17, 31, 64};
    static const int outputs[] = {16, 1, 8, 17, 32, 40, 3, 24};
    unsigned long long seed = 0x5e9a7a7eull + (unsigned long long)C * 31u + (unsigned long long)S;
    for (int t = 0; t < (int)(sizeof pixels / sizeof pixels[0]); t++) {
        const int n = pixels[t], co = outputs[t % 8], act = t % 3, use_bias = t % 4 != 1;
        const int d_h = S == 1 && t % 3 == 2 ? 2 : 1, d_w = S == 1 && t % 2 == 1 ? 3 : 1;
        const int gap = t % 5 == 0 ? 3 : 0;
        const int rows = (KH - 1) * d_h + 1, cols = (n - 1) * S + (KW - 1) * d_w + 1, taps = KH * KW;
        const long in_n = (long)rows * cols * C, out_stride = co + gap, out_n = (n - 1) * out_stride + co;
        harness_guarded gi, gd, gp, gb, go;
        float *x = harness_guarded_alloc(&gi, in_n, t & 1);
        float *wd = harness_guarded_alloc(&gd, (long)taps * C, !(t & 1));
        float *wp = harness_guarded_alloc(&gp, packed_size(C, co), t & 1);
        float *bias = harness_guarded_alloc(&gb, co, !(t & 1));
        float *out = harness_guarded_alloc(&go, out_n, t & 1);
        float *plain = malloc((size_t)C * co * sizeof *plain), *want = malloc((size_t)out_n * sizeof *want);
        double *mid = malloc((size_t)C * sizeof *mid);
        harness_fill(x, in_n, &seed, -2.0f, 2.0f);
        harness_fill(wd, (long)taps * C, &seed, -1.0f, 1.0f);
        harness_fill(plain, (long)C * co, &seed, -1.0f, 1.0f);
        harness_fill(bias, co, &seed, -1.0f, 1.0f);
        pack(plain, C, co, wp);
        harness_guarded_readonly(&gi);
        harness_guarded_readonly(&gd);
        harness_guarded_readonly(&gp);
        harness_guarded_readonly(&gb);

        for (long i = 0; i < out_n; i++)
            want[i] = out[i] = SENTINEL;
        for (int p = 0; p < n; p++) {
            for (int c = 0; c < C; c++) {
                mid[c] = 0.0;
                for (int kh = 0; kh < KH; kh++)
                    for (int kw = 0; kw < KW; kw++)
                        mid[c] += (double)x[((long)kh * d_h * cols + (long)p * S + (long)kw * d_w) * C + c] *
                                  wd[(kh * KW + kw) * C + c];
            }
            for (int o = 0; o < co; o++) {
                double acc = use_bias ? bias[o] : 0.0;
                for (int c = 0; c < C; c++)
                    acc += mid[c] * plain[(long)c * co + o];
                want[(long)p * out_stride + o] = activate((float)acc, act);
            }
        }
        /* out_pixel_stride 7 and act 2 for the depthwise step, and nonsense
         * for the pointwise step's input: the variant sets them */
        const struct convgen_uk_dw g_dw = {C, 1, KW, taps, (ptrdiff_t)S * C, 7, (ptrdiff_t)d_h * cols * C,
                                           (ptrdiff_t)d_w * C, 2, rows, cols};
        const struct convgen_uk_conv g_pw = {C + 5, co, 3, 9, 1, out_stride, 11, 13, act};
        sep_row_fn fn;
        memcpy(&fn, &sym->variant[v->isa], sizeof fn);
        fn(&g_dw, &g_pw, x, out, wd, wp, use_bias ? bias : NULL, n);
        /* float sums of taps products, then of C: the tolerance grows with C */
        const double tol = 1e-5 * (C > 16 ? (double)C / 16.0 : 1.0);
        long bad = harness_mismatch(out, want, out_n, tol, tol);
        if (bad >= 0)
            fail_msg("%s: n %d co %d dilation %dx%d act %d bias %d gap %d: output[%ld] = %.9g, want %.9g", v->name, n,
                     co, d_h, d_w, act, use_bias, gap, bad, (double)out[bad], (double)want[bad]);
        free(plain);
        free(want);
        free(mid);
        harness_guarded_free(&gi);
        harness_guarded_free(&gd);
        harness_guarded_free(&gp);
        harness_guarded_free(&gb);
        harness_guarded_free(&go);
    }
}

typedef void (*wino_fn)(const struct convgen_uk_wino *, const float *, float *, const float *, const float *, int,
                        int);

/* A wino variant (Conv2D 3x3, stride 1, Winograd F(2x2, 3x3)): 'same' on
 * items of one pixel to several blocks of tiles, 'valid' on items of 3x4 to
 * 8x13 (outputs of 1x2 to 6x11), odd and even sides, input and
 * output channel counts from one vector to the limit, each activation, with
 * and without bias, as one call and as row ranges that split tile rows,
 * against a naive loop in double; the kernel through convgen_uk_wino_pack.
 * The item's input and the transformed kernel are read-only, the output
 * against a guard page, every output written. */
static void test_wino(void **state)
{
    const variant *v = *state;
    static const int sizes[][2] = {{1, 1}, {1, 2}, {2, 1}, {2, 2}, {3, 5}, {5, 3}, {7, 7}, {8, 13},
                                   {14, 3}, {4, 26}, {5, 6}, {3, 4}};
    static const int chans[][2] = {{8, 16}, {16, 32}, {24, 16}, {64, 48}, {128, 128}, {8, 128}, {40, 64}, {16, 16},
                                   {72, 32}, {32, 112}, {256, 256}, {200, 240}};
    unsigned long long seed = 0x3141592653ull;
    for (int n = 0; n < (int)(sizeof sizes / sizeof sizes[0]); n++) {
        const int H = sizes[n][0], W = sizes[n][1], C = chans[n][0], K = chans[n][1];
        const int act = n % 3, use_bias = n % 4 != 1;
        const int P = n % 2 == 1 && H >= 3 && W >= 3 ? 0 : 1, OH = H + 2 * P - 2, OW = W + 2 * P - 2;
        const long in_n = (long)H * W * C, out_n = (long)OH * OW * K;
        harness_guarded gi, gu, go;
        float *x = harness_guarded_alloc(&gi, in_n, n & 1);
        float *u = harness_guarded_alloc(&gu, 16L * C * K, !(n & 1));
        float *out = harness_guarded_alloc(&go, out_n, n & 1);
        float *k = malloc((size_t)9 * C * K * sizeof *k), *bias = malloc((size_t)K * sizeof *bias);
        float *want = malloc((size_t)out_n * sizeof *want);
        harness_fill(x, in_n, &seed, -1.0f, 1.0f);
        harness_fill(k, 9L * C * K, &seed, -1.0f, 1.0f);
        harness_fill(bias, K, &seed, -1.0f, 1.0f);
        convgen_uk_wino_pack(k, C, K, u);
        harness_guarded_readonly(&gi);
        harness_guarded_readonly(&gu);
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int o = 0; o < K; o++) {
                    double acc = use_bias ? bias[o] : 0.0;
                    for (int i = 0; i < 3; i++)
                        for (int j = 0; j < 3; j++) {
                            const int ih = oh - P + i, iw = ow - P + j;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                continue;
                            for (int c = 0; c < C; c++)
                                acc += (double)x[((long)ih * W + iw) * C + c] * k[((i * 3 + j) * C + c) * K + o];
                        }
                    want[((long)oh * OW + ow) * K + o] = activate((float)acc, act);
                }
        const struct convgen_uk_wino g = {C, K, H, W, P, act};
        wino_fn fn;
        memcpy(&fn, &v->symbol->variant[v->isa], sizeof fn);
        /* sums of 9 x C products, through transforms that scale them by up to 4 */
        const double tol = 1e-5 * (9.0 * C > 72.0 ? 9.0 * C / 72.0 : 1.0);
        for (int split = 0; split < 2; split++) {
            for (long i = 0; i < out_n; i++)
                out[i] = SENTINEL;
            if (split) { /* ranges that start and end inside tile rows */
                const int a = OH / 3, b = a + (OH - a + 1) / 2;
                fn(&g, x, out, u, use_bias ? bias : NULL, 0, a);
                fn(&g, x, out, u, use_bias ? bias : NULL, a, b);
                fn(&g, x, out, u, use_bias ? bias : NULL, b, OH);
            } else {
                fn(&g, x, out, u, use_bias ? bias : NULL, 0, OH);
            }
            long bad = harness_mismatch(out, want, out_n, tol, tol);
            if (bad >= 0)
                fail_msg("%s: %dx%d %s, %d -> %d channels, act %d, bias %d, %s: output[%ld] = %.9g, want %.9g",
                         v->name, H, W, P ? "same" : "valid", C, K, act, use_bias, split ? "row ranges" : "one call",
                         bad, (double)out[bad], (double)want[bad]);
        }
        free(k);
        free(bias);
        free(want);
        harness_guarded_free(&gi);
        harness_guarded_free(&gu);
        harness_guarded_free(&go);
    }
}

/* convgen_uk_pack writes the layout the test packs by hand. */
static void test_pack(void **state)
{
    (void)state;
    static const int columns[] = {1, 7, 8, 12, 16, 23, 24, 40};
    for (size_t c = 0; c < sizeof columns / sizeof columns[0]; c++) {
        int rows = 5, co = columns[c];
        long n = packed_size(rows, co);
        float *src = malloc((size_t)rows * co * sizeof *src), *want = malloc((size_t)n * sizeof *want);
        harness_guarded g;
        float *got = harness_guarded_alloc(&g, n, 1);
        unsigned long long seed = 7 + c;
        harness_fill(src, (long)rows * co, &seed, -1.0f, 1.0f);
        pack(src, rows, co, want);
        convgen_uk_pack(src, rows, co, got);
        assert_memory_equal(got, want, (size_t)n * sizeof *got);
        /* the library's cache compares in place: equal, then one value
         * changed (first, last: in a partial tile where there is one) */
        assert_true(convgen__uk_pack_equal(src, rows, co, got));
        const long at[3] = {0, (long)rows * co - 1, (long)rows * co / 2};
        for (int p = 0; p < 3; p++) {
            const float kept = src[at[p]];
            src[at[p]] = p == 2 ? -kept : kept + 0.5f;
            assert_false(convgen__uk_pack_equal(src, rows, co, got));
            src[at[p]] = kept;
        }
        harness_guarded_free(&g);
        free(src);
        free(want);
    }
}

/* convgen__uk_wino_equal tells a kernel from the transform
 * convgen_uk_wino_pack wrote: equal, then one weight changed (first, last,
 * one in between, one negated) or one transformed value (each point). */
static void test_wino_pack(void **state)
{
    (void)state;
    static const int chans[][2] = {{8, 16}, {24, 48}, {256, 256}};
    for (size_t c = 0; c < sizeof chans / sizeof chans[0]; c++) {
        const int C = chans[c][0], K = chans[c][1];
        const long n = 9L * C * K, m = 16L * C * K;
        float *src = malloc((size_t)n * sizeof *src), *u = malloc((size_t)m * sizeof *u);
        unsigned long long seed = 11 + c;
        harness_fill(src, n, &seed, -1.0f, 1.0f);
        convgen_uk_wino_pack(src, C, K, u);
        assert_true(convgen__uk_wino_equal(src, C, K, u));
        const long at[4] = {0, n - 1, n / 3, 2 * n / 3};
        for (int p = 0; p < 4; p++) {
            const float kept = src[at[p]];
            src[at[p]] = p == 3 ? -kept : kept + 0.5f;
            assert_false(convgen__uk_wino_equal(src, C, K, u));
            src[at[p]] = kept;
        }
        for (int point = 0; point < 16; point++) {
            float *v = &u[point * (long)C * K + (long)(point * 7919) % ((long)C * K)];
            const float kept = *v;
            *v = kept + 0.25f;
            assert_false(convgen__uk_wino_equal(src, C, K, u));
            *v = kept;
        }
        assert_true(convgen__uk_wino_equal(src, C, K, u));
        free(src);
        free(u);
    }
}

int main(void)
{
    static const char *const isa_names[] = CONVGEN__UK_ISA_NAMES;
    size_t nsymbols = 0;
    while (convgen__uk_symbols[nsymbols].name)
        nsymbols++;
    variant *variants = calloc(nsymbols * CONVGEN__UK_ISAS + 2, sizeof *variants);
    struct CMUnitTest *tests = calloc(nsymbols * CONVGEN__UK_ISAS + 2, sizeof *tests);
    size_t n = 0;
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_pack);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_wino_pack);
    for (size_t i = 0; i < nsymbols; i++) {
        for (int isa = 0; isa < CONVGEN__UK_ISAS; isa++) {
            if (!convgen__uk_cpu_runs(isa) || !convgen__uk_symbols[i].variant[isa])
                continue; /* not built for this machine, the CPU cannot run it, or no such variant */
            variant *v = &variants[n];
            v->symbol = &convgen__uk_symbols[i];
            v->isa = isa;
            snprintf(v->name, sizeof v->name, "%s (%s)", v->symbol->name, isa_names[isa]);
            tests[n].name = v->name;
            tests[n].test_func = v->symbol->h                            ? test_plane
                                 : strcmp(v->symbol->kind, "dwsame") == 0 ? test_same
                                 : strcmp(v->symbol->kind, "sep") == 0    ? test_sep
                                 : strcmp(v->symbol->kind, "wino") == 0   ? test_wino
                                                                          : test_variant;
            tests[n].initial_state = v;
            n++;
        }
    }
    int failed = _cmocka_run_group_tests("microkernels", tests, n, NULL, NULL);
    free(tests);
    free(variants);
    return failed;
}
