/* peer_xnnpack.c: a layer through XNNPACK's operator API (Debian libxnnpack-dev,
 * 2022 snapshot): NHWC, batch 1, no thread pool (one thread), ReLU as the
 * output clamp, weights handed over once in XNNPACK's layout. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"
#include "peer_xnnpack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xnnpack.h>

int xnnpack_run(const ref_layer *l, const float *const *weights, const float *input, float *output, double min_time,
                double *seconds, char *err, size_t err_size)
{
    if (l->channels_first) {
        snprintf(err, err_size, "XNNPACK peer: channels_last layers only");
        return -1;
    }
    if (xnn_initialize(NULL) != xnn_status_success) {
        snprintf(err, err_size, "XNNPACK: xnn_initialize failed");
        return -1;
    }
    int oh, ow, ph0, ph1, pw0, pw1;
    bench_keras_axis(l->rank == 1 ? "valid" : l->padding, l->in_h, l->k_h, l->s_h, l->d_h, &oh, &ph0, &ph1);
    bench_keras_axis(l->padding, l->in_w, l->k_w, l->s_w, l->d_w, &ow, &pw0, &pw1);
    int c = l->in_c, dm = l->depth_multiplier, taps = l->k_h * l->k_w;
    int relu = l->activation && strcmp(l->activation, "relu") == 0;
    float lo = relu ? 0.0f : -INFINITY, hi = INFINITY;
    const float *bias = l->use_bias ? weights[ref_weight_count(l) - 1] : NULL;
    xnn_operator_t ops[2] = {NULL, NULL};
    int nops = 0;
    float *w1 = NULL, *w2 = NULL, *mid = NULL;
    enum xnn_status st;
    if (l->kind == REF_CONV) {
        /* [groups][group outputs][kh][kw][group inputs] */
        int g = l->groups, icg = c / g, ocg = l->filters / g;
        w1 = malloc((size_t)l->filters * icg * taps * sizeof(float));
        for (int o = 0; o < l->filters; o++)
            for (int t = 0; t < taps; t++)
                for (int i = 0; i < icg; i++)
                    w1[((size_t)o * taps + t) * icg + i] = weights[0][((size_t)t * icg + i) * l->filters + o];
        st = xnn_create_convolution2d_nhwc_f32(ph0, pw1, ph1, pw0, l->k_h, l->k_w, l->s_h, l->s_w, l->d_h, l->d_w,
                                               g, icg, ocg, c, l->filters, w1, bias, lo, hi, 0, &ops[nops++]);
    } else {
        /* depthwise: groups = channels, dm outputs each, one input each */
        w1 = bench_depthwise_by_channel(weights[0], c, dm, taps);
        int separable = l->kind == REF_SEPARABLE;
        st = xnn_create_convolution2d_nhwc_f32(ph0, pw1, ph1, pw0, l->k_h, l->k_w, l->s_h, l->s_w, l->d_h, l->d_w,
                                               c, 1, dm, c, c * dm, w1, separable ? NULL : bias,
                                               separable ? -INFINITY : lo, hi, 0, &ops[nops++]);
        if (st == xnn_status_success && separable) {
            int k = c * dm, f = l->filters;
            w2 = bench_pointwise_by_output(weights[1], k, f);
            st = xnn_create_convolution2d_nhwc_f32(0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, k, f, k, f, w2, bias, lo, hi, 0,
                                                   &ops[nops++]);
        }
    }
    int status = 0;
    if (st != xnn_status_success) {
        snprintf(err, err_size, "XNNPACK: creating the operator failed (status %d)", (int)st);
        status = -1;
    }
    if (status == 0) {
        if (nops == 2) {
            mid = malloc((size_t)oh * ow * c * dm * sizeof(float));
            st = xnn_setup_convolution2d_nhwc_f32(ops[0], 1, l->in_h, l->in_w, input, mid, NULL);
            if (st == xnn_status_success)
                st = xnn_setup_convolution2d_nhwc_f32(ops[1], 1, oh, ow, mid, output, NULL);
        } else {
            st = xnn_setup_convolution2d_nhwc_f32(ops[0], 1, l->in_h, l->in_w, input, output, NULL);
        }
        if (st != xnn_status_success) {
            snprintf(err, err_size, "XNNPACK: setup failed (status %d)", (int)st);
            status = -1;
        }
    }
    if (status == 0) {
        double t[1000];
        int n = 0;
        for (int i = 0; i < nops; i++)
            xnn_run_operator(ops[i], NULL);
        double start = bench_now();
        while (n < 1000 && (n < 5 || bench_now() - start < min_time)) {
            double t0 = bench_now();
            for (int i = 0; i < nops; i++)
                xnn_run_operator(ops[i], NULL);
            t[n++] = bench_now() - t0;
        }
        *seconds = bench_median(t, n);
    }
    for (int i = 0; i < nops; i++)
        if (ops[i])
            xnn_delete_operator(ops[i]);
    free(w1);
    free(w2);
    free(mid);
    return status;
}
