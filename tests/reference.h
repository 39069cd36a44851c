/*
 * reference.h - naive reference implementation of Keras / TensorFlow
 * convolution-layer inference (Conv1D/2D, DepthwiseConv1D/2D,
 * SeparableConv1D/2D), used by the test suite to check generated code.
 *
 * Written directly from the Keras semantics as plain nested loops that
 * accumulate in double; deliberately independent of the code generator.
 * No globals, no allocation.
 */
#ifndef REFERENCE_H
#define REFERENCE_H

/* Which Keras layer family the description is for. */
typedef enum {
    REF_CONV,      /* Conv1D / Conv2D (with optional Keras 3 `groups`) */
    REF_DEPTHWISE, /* DepthwiseConv1D / DepthwiseConv2D */
    REF_SEPARABLE  /* SeparableConv1D / SeparableConv2D */
} ref_kind;

/* Description of one layer; all sizes exclude the batch axis. */
typedef struct {
    ref_kind kind;           /* layer family */
    int rank;                /* spatial rank: 1 (Conv1D, DepthwiseConv1D, SeparableConv1D) or 2 */
    int channels_first;      /* 0: NHWC / NWC; nonzero: NCHW / NCW */
    int in_h, in_w, in_c;    /* input sizes without batch; rank 1: in_h = 1, in_w = length */
    int k_h, k_w;            /* kernel; rank 1: k_h = 1 */
    int s_h, s_w;            /* strides; rank 1: s_h = 1 */
    int d_h, d_w;            /* dilation; rank 1: d_h = 1 */
    const char *padding;     /* "valid", "same" or "causal" (causal only for rank 1), lowercase */
    int filters;             /* REF_CONV and REF_SEPARABLE: output channels */
    int groups;              /* REF_CONV only: Keras 3 `groups` (>= 1, divides in_c and filters) */
    int depth_multiplier;    /* REF_DEPTHWISE and REF_SEPARABLE */
    int use_bias;            /* nonzero: the layer has a bias vector (last weight tensor) */
    const char *activation;  /* Keras activation name; "linear", "" or NULL for none */
    int keras_version;       /* 2 selects Keras 2 hard_sigmoid; any other value means Keras 3 */
} ref_layer;

/*
 * Output sizes (without batch) into *out_h, *out_w, *out_c (rank 1: out_h = 1,
 * out_w = output length). Returns 0 when the layer is impossible (an output
 * size < 1, inconsistent rank-1 fields, bad groups, unknown padding, causal
 * on rank 2, ...), 1 otherwise. The outputs are left untouched on failure.
 */
int ref_output_shape(const ref_layer *l, int *out_h, int *out_w, int *out_c);

/*
 * Number of weight tensors in Keras order:
 *   REF_CONV:      kernel, [bias]
 *   REF_DEPTHWISE: kernel, [bias]
 *   REF_SEPARABLE: depthwise_kernel, pointwise_kernel, [bias]
 */
int ref_weight_count(const ref_layer *l);

/* Element count of weight tensor i (0-based, Keras order); 0 when i is out of range. */
long ref_weight_size(const ref_layer *l, int i);

/*
 * Runs the layer on `batch` items. input/output are in the layer's data format
 * (channels_last: ((n*H + h)*W + w)*C + c; channels_first: ((n*C + c)*H + h)*W + w);
 * weights[i] are in the Keras layouts (row-major):
 *   REF_CONV:      kernel (k_h, k_w, in_c/groups, filters), bias (filters)
 *   REF_DEPTHWISE: kernel (k_h, k_w, in_c, depth_multiplier), bias (in_c*depth_multiplier)
 *   REF_SEPARABLE: depthwise (k_h, k_w, in_c, dm), pointwise (1, 1, in_c*dm, filters), bias (filters)
 * softmax / log_softmax are taken over the last axis of the output tensor
 * (channels for channels_last, width/length for channels_first).
 * Aborts (message on stderr) on an impossible layer or unknown activation.
 */
void ref_forward(const ref_layer *l, int batch, const float *input,
                 const float *const weights[], float *output);

#endif /* REFERENCE_H */
