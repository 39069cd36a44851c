/* peer_onednn.c: a layer through oneDNN's C API (Debian libdnnl-dev, 2.6), like
 * for like: NHWC in and out, batch 1, bias and ReLU fused as a post-op,
 * weights reordered once into the layout oneDNN prefers, outside the timing. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"
#include "peer_onednn.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(call)                                                                                                    \
    do {                                                                                                               \
        dnnl_status_t s_ = (call);                                                                                     \
        if (s_ != dnnl_success) {                                                                                      \
            snprintf(err, err_size, "oneDNN: %s failed (status %d)", #call, (int)s_);                                 \
            return -1;                                                                                                 \
        }                                                                                                              \
    } while (0)

typedef struct {
    dnnl_primitive_t prim;
    dnnl_memory_t src, weights, bias, dst;
} conv_step;

/* One convolution primitive. w_user is in oihw (groups 1) or goihw. */
static int make_conv(dnnl_engine_t eng, dnnl_stream_t stream, conv_step *c, int ic, int ih, int iw, int oc, int oh,
                     int ow, int kh, int kw, int groups, const int stride[2], const int dil[2], const int pl[2],
                     const int pr[2], const float *w_user, const float *bias, int relu, dnnl_memory_t src_mem,
                     char *err, size_t err_size)
{
    dnnl_memory_desc_t src_md, dst_md, w_any, w_user_md, b_md;
    dnnl_dims_t src_dims = {1, ic, ih, iw}, dst_dims = {1, oc, oh, ow};
    CHECK(dnnl_memory_desc_init_by_tag(&src_md, 4, src_dims, dnnl_f32, dnnl_nhwc));
    CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 4, dst_dims, dnnl_f32, dnnl_nhwc));
    if (groups == 1) {
        dnnl_dims_t wd = {oc, ic, kh, kw};
        CHECK(dnnl_memory_desc_init_by_tag(&w_any, 4, wd, dnnl_f32, dnnl_format_tag_any));
        CHECK(dnnl_memory_desc_init_by_tag(&w_user_md, 4, wd, dnnl_f32, dnnl_oihw));
    } else {
        dnnl_dims_t wd = {groups, oc / groups, ic / groups, kh, kw};
        CHECK(dnnl_memory_desc_init_by_tag(&w_any, 5, wd, dnnl_f32, dnnl_format_tag_any));
        CHECK(dnnl_memory_desc_init_by_tag(&w_user_md, 5, wd, dnnl_f32, dnnl_goihw));
    }
    dnnl_dims_t bd = {oc};
    CHECK(dnnl_memory_desc_init_by_tag(&b_md, 1, bd, dnnl_f32, dnnl_x));
    dnnl_dims_t strides = {stride[0], stride[1]}, dilates = {dil[0] - 1, dil[1] - 1};
    dnnl_dims_t pad_l = {pl[0], pl[1]}, pad_r = {pr[0], pr[1]};
    dnnl_convolution_desc_t cd;
    CHECK(dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &src_md,
                                                     &w_any, bias ? &b_md : NULL, &dst_md, strides, dilates, pad_l,
                                                     pad_r));
    dnnl_primitive_attr_t attr;
    CHECK(dnnl_primitive_attr_create(&attr));
    if (relu) {
        dnnl_post_ops_t ops;
        CHECK(dnnl_post_ops_create(&ops));
        CHECK(dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f));
        CHECK(dnnl_primitive_attr_set_post_ops(attr, ops));
        dnnl_post_ops_destroy(ops);
    }
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &cd, attr, eng, NULL));
    dnnl_primitive_attr_destroy(attr);
    const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);

    dnnl_memory_t w_user_mem;
    CHECK(dnnl_memory_create(&w_user_mem, &w_user_md, eng, (void *)w_user));
    CHECK(dnnl_memory_create(&c->weights, w_md, eng, DNNL_MEMORY_ALLOCATE));
    dnnl_primitive_desc_t rpd;
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, &w_user_md, eng, w_md, eng, NULL));
    dnnl_primitive_t reorder;
    CHECK(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, w_user_mem}, {DNNL_ARG_TO, c->weights}};
    CHECK(dnnl_primitive_execute(reorder, stream, 2, rargs));
    CHECK(dnnl_stream_wait(stream));
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(w_user_mem);

    c->src = src_mem;
    if (!c->src)
        CHECK(dnnl_memory_create(&c->src, &src_md, eng, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&c->dst, &dst_md, eng, DNNL_MEMORY_ALLOCATE));
    c->bias = NULL;
    if (bias)
        CHECK(dnnl_memory_create(&c->bias, &b_md, eng, (void *)bias));
    CHECK(dnnl_primitive_create(&c->prim, pd));
    dnnl_primitive_desc_destroy(pd);
    return 0;
}

static int run_step(dnnl_stream_t stream, const conv_step *c, char *err, size_t err_size)
{
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, c->src}, {DNNL_ARG_WEIGHTS, c->weights}, {DNNL_ARG_DST, c->dst}, {DNNL_ARG_BIAS, c->bias}};
    CHECK(dnnl_primitive_execute(c->prim, stream, c->bias ? 4 : 3, args));
    return 0;
}

int onednn_run(const ref_layer *l, const float *const *weights, const float *input, float *output, double min_time,
               double *seconds, char *err, size_t err_size)
{
    if (l->channels_first) {
        snprintf(err, err_size, "oneDNN peer: channels_last layers only");
        return -1;
    }
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags));
    int oh, ow, ph0, ph1, pw0, pw1;
    bench_keras_axis(l->rank == 1 ? "valid" : l->padding, l->in_h, l->k_h, l->s_h, l->d_h, &oh, &ph0, &ph1);
    bench_keras_axis(l->padding, l->in_w, l->k_w, l->s_w, l->d_w, &ow, &pw0, &pw1);
    int stride[2] = {l->s_h, l->s_w}, dil[2] = {l->d_h, l->d_w}, pl[2] = {ph0, pw0}, pr[2] = {ph1, pw1};
    int one[2] = {1, 1}, zero[2] = {0, 0};
    int c = l->in_c, dm = l->depth_multiplier, taps = l->k_h * l->k_w;
    conv_step steps[2];
    int nsteps = 0;
    float *w1 = NULL, *w2 = NULL;
    const float *bias = l->use_bias ? weights[ref_weight_count(l) - 1] : NULL;
    int relu = l->activation && strcmp(l->activation, "relu") == 0;
    int status = 0;
    if (l->kind == REF_CONV) {
        int g = l->groups, icg = c / g, ocg = l->filters / g;
        w1 = malloc((size_t)l->filters * icg * taps * sizeof(float));
        for (int o = 0; o < l->filters; o++)
            for (int i = 0; i < icg; i++)
                for (int t = 0; t < taps; t++)
                    w1[((size_t)o * icg + i) * taps + t] = weights[0][((size_t)t * icg + i) * l->filters + o];
        (void)ocg; /* goihw with g outer is the same memory order as o = g * ocg + oc */
        status = make_conv(eng, stream, &steps[nsteps++], c, l->in_h, l->in_w, l->filters, oh, ow, l->k_h, l->k_w, g,
                           stride, dil, pl, pr, w1, bias, relu, NULL, err, err_size);
    } else {
        /* Depthwise: groups = channels, dm outputs per group, channel c * dm + m. */
        w1 = bench_depthwise_by_channel(weights[0], c, dm, taps);
        int separable = l->kind == REF_SEPARABLE;
        status = make_conv(eng, stream, &steps[nsteps++], c, l->in_h, l->in_w, c * dm, oh, ow, l->k_h, l->k_w, c,
                           stride, dil, pl, pr, w1, separable ? NULL : bias, separable ? 0 : relu, NULL, err,
                           err_size);
        if (status == 0 && separable) {
            int k = c * dm, f = l->filters;
            w2 = bench_pointwise_by_output(weights[1], k, f);
            status = make_conv(eng, stream, &steps[nsteps++], k, oh, ow, f, oh, ow, 1, 1, 1, one, one, zero, zero,
                               w2, bias, relu, steps[0].dst, err, err_size);
        }
    }
    if (status == 0) {
        size_t in_bytes = (size_t)l->in_h * l->in_w * c * sizeof(float);
        void *src;
        dnnl_memory_get_data_handle(steps[0].src, &src);
        memcpy(src, input, in_bytes);
        double t[1000];
        int n = 0;
        double start = bench_now();
        for (int warm = 0; warm < 2; warm++)
            for (int s = 0; s < nsteps && status == 0; s++)
                status = run_step(stream, &steps[s], err, err_size);
        dnnl_stream_wait(stream);
        start = bench_now();
        while (status == 0 && n < 1000 && (n < 5 || bench_now() - start < min_time)) {
            double t0 = bench_now();
            for (int s = 0; s < nsteps && status == 0; s++)
                status = run_step(stream, &steps[s], err, err_size);
            dnnl_stream_wait(stream);
            t[n++] = bench_now() - t0;
        }
        *seconds = bench_median(t, n);
        void *dst;
        dnnl_memory_get_data_handle(steps[nsteps - 1].dst, &dst);
        int oc = l->kind == REF_DEPTHWISE ? c * dm : l->filters;
        memcpy(output, dst, (size_t)oh * ow * oc * sizeof(float));
    }
    for (int s = 0; s < nsteps; s++) {
        dnnl_primitive_destroy(steps[s].prim);
        dnnl_memory_destroy(steps[s].weights);
        dnnl_memory_destroy(steps[s].dst);
        if (s == 0)
            dnnl_memory_destroy(steps[s].src);
        if (steps[s].bias)
            dnnl_memory_destroy(steps[s].bias);
    }
    free(w1);
    free(w2);
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    return status;
}
