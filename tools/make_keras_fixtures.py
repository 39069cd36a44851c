#!/usr/bin/env python3
"""Generate golden test fixtures for convgen from real Keras layers.

For every test case this script builds one real Keras 3 convolution layer
(Conv1D/2D, DepthwiseConv1D/2D, SeparableConv1D/2D) with a fixed input
shape, fills its weights with seeded random values (kernels uniform in
[-1, 1], biases uniform in [-0.5, 0.5]), runs it on a seeded random float32
input with batch 2 (uniform in [-1, 1], or [-0.25, 0.25] for the
'exponential' activation so the outputs stay finite), and writes:

    OUTDIR/<case>/spec.json          keras.layers.serialize(layer) as JSON
                                     (indent=1, sort_keys=True, trailing
                                     newline; includes build_config.input_shape)
    OUTDIR/<case>/weights/<name>.npy one float32 file per entry of
                                     layer.weights, named as Keras names them
                                     (kernel, bias, depthwise_kernel,
                                     pointwise_kernel)
    OUTDIR/<case>/input.npy          float32, shape (2, *input_shape)
    OUTDIR/<case>/expected.npy       float32, the output Keras computed

plus OUTDIR/MANIFEST (the case names, sorted, one per line) and
OUTDIR/README.md (provenance: Keras/JAX versions and how to regenerate).

Usage:

    python3 tools/make_keras_fixtures.py [OUTDIR]      # default: tests/fixtures
    python3 tools/make_keras_fixtures.py --example DIR # e.g. examples/separable

With --example DIR only the bundled example is written, directly into DIR
(DIR/spec.json, DIR/weights/*.npy, DIR/input.npy, DIR/expected.npy): a
SeparableConv2D on a 16x16x8 input, 3x3 'same', depth_multiplier 2,
16 filters, relu, batch 1.

Requirements: Python 3 with numpy and Keras 3 using the JAX backend.  The
script sets KERAS_BACKEND=jax itself (via os.environ, before importing
keras); if you import keras elsewhere with these fixtures in mind, set
KERAS_BACKEND=jax in the environment too.

Output is deterministic: every case uses its own fixed seed (derived from
its name with CRC-32, so adding or removing cases does not change the
others), the layer is named after the case, and np.save is deterministic,
so re-running produces byte-identical files on the same Keras/JAX/numpy.

A case that this Keras refuses to build or run is reported on stderr and
left out (and out of MANIFEST) instead of stopping the whole run.
"""

import os

os.environ["KERAS_BACKEND"] = "jax"

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
import zlib  # noqa: E402

import numpy as np  # noqa: E402
import keras  # noqa: E402

BATCH = 2

# Each case: (name, layer class name, constructor kwargs, input shape without
# batch).  Shapes follow the layer's data_format (channels_first => C first).
CASES = [
    # ---- Conv2D -----------------------------------------------------------
    ("conv2d_valid_3x3_s1_linear", "Conv2D",
     dict(filters=4, kernel_size=3, padding="valid", activation="linear"),
     (6, 7, 3)),
    ("conv2d_same_s2_odd_relu", "Conv2D",
     dict(filters=4, kernel_size=3, strides=2, padding="same",
          activation="relu"),
     (7, 9, 3)),
    ("conv2d_same_k4_s2_even_sigmoid", "Conv2D",
     dict(filters=3, kernel_size=4, strides=2, padding="same",
          activation="sigmoid"),
     (8, 6, 2)),
    # Odd 'same' pad totals: Keras puts the extra row/column after.
    ("conv2d_same_k3_s2_odd_pad_total_relu", "Conv2D",
     dict(filters=3, kernel_size=3, strides=2, padding="same",
          activation="relu"),
     (8, 7, 2)),
    ("conv2d_same_k4x2_odd_pad_total_linear", "Conv2D",
     dict(filters=3, kernel_size=(4, 2), padding="same",
          activation="linear"),
     (6, 5, 2)),
    ("depthwise2d_same_k2_s2_odd_pad_total_dm2_relu", "DepthwiseConv2D",
     dict(kernel_size=2, strides=2, padding="same", depth_multiplier=2,
          activation="relu"),
     (5, 7, 3)),
    ("separable2d_channels_first_same_k4_odd_pad_total_tanh", "SeparableConv2D",
     dict(filters=4, kernel_size=4, padding="same", activation="tanh",
          data_format="channels_first"),
     (3, 7, 6)),
    ("conv1d_same_k4_odd_pad_total_linear", "Conv1D",
     dict(filters=3, kernel_size=4, padding="same", activation="linear"),
     (7, 3)),
    ("separable1d_same_k2_s2_odd_pad_total_relu", "SeparableConv1D",
     dict(filters=4, kernel_size=2, strides=2, padding="same",
          activation="relu"),
     (7, 3)),
    ("conv2d_same_k5_larger_than_input_tanh", "Conv2D",
     dict(filters=3, kernel_size=5, padding="same", activation="tanh"),
     (3, 4, 2)),
    ("conv2d_same_dilation2_gelu", "Conv2D",
     dict(filters=4, kernel_size=3, dilation_rate=2, padding="same",
          activation="gelu"),
     (9, 8, 3)),
    ("conv2d_channels_first_same_relu6", "Conv2D",
     dict(filters=5, kernel_size=3, padding="same", activation="relu6",
          data_format="channels_first"),
     (3, 6, 7)),
    ("conv2d_groups2_same_swish", "Conv2D",
     dict(filters=6, kernel_size=3, padding="same", groups=2,
          activation="swish"),
     (6, 6, 4)),
    ("conv2d_nobias_same_elu", "Conv2D",
     dict(filters=4, kernel_size=3, padding="same", use_bias=False,
          activation="elu"),
     (6, 6, 3)),
    ("conv2d_valid_k2x3_s1x2_selu", "Conv2D",
     dict(filters=4, kernel_size=(2, 3), strides=(1, 2), padding="valid",
          activation="selu"),
     (7, 9, 3)),
    ("conv2d_same_softmax", "Conv2D",
     dict(filters=4, kernel_size=3, padding="same", activation="softmax"),
     (5, 6, 3)),
    ("conv2d_channels_first_same_log_softmax", "Conv2D",
     dict(filters=4, kernel_size=3, padding="same", activation="log_softmax",
          data_format="channels_first"),
     (3, 5, 6)),
    # ---- DepthwiseConv2D --------------------------------------------------
    ("depthwise2d_same_3x3_dm1_relu", "DepthwiseConv2D",
     dict(kernel_size=3, padding="same", depth_multiplier=1,
          activation="relu"),
     (6, 7, 3)),
    ("depthwise2d_valid_s2_dm2_linear", "DepthwiseConv2D",
     dict(kernel_size=3, strides=2, padding="valid", depth_multiplier=2,
          activation="linear"),
     (7, 8, 3)),
    ("depthwise2d_same_dilation2_dm3_hard_sigmoid", "DepthwiseConv2D",
     dict(kernel_size=3, dilation_rate=2, padding="same", depth_multiplier=3,
          activation="hard_sigmoid"),
     (8, 8, 2)),
    ("depthwise2d_channels_first_same_dm2_softplus", "DepthwiseConv2D",
     dict(kernel_size=3, padding="same", depth_multiplier=2,
          activation="softplus", data_format="channels_first"),
     (3, 6, 5)),
    ("depthwise2d_nobias_same_leaky_relu", "DepthwiseConv2D",
     dict(kernel_size=3, padding="same", use_bias=False,
          activation="leaky_relu"),
     (6, 6, 4)),
    # ---- SeparableConv2D --------------------------------------------------
    ("separable2d_same_3x3_dm1_relu", "SeparableConv2D",
     dict(filters=4, kernel_size=3, padding="same", depth_multiplier=1,
          activation="relu"),
     (8, 8, 3)),
    ("separable2d_valid_s2_dm2_mish", "SeparableConv2D",
     dict(filters=5, kernel_size=3, strides=2, padding="valid",
          depth_multiplier=2, activation="mish"),
     (9, 9, 3)),
    ("separable2d_channels_first_same_dm1_softsign", "SeparableConv2D",
     dict(filters=4, kernel_size=3, padding="same", depth_multiplier=1,
          activation="softsign", data_format="channels_first"),
     (3, 7, 6)),
    ("separable2d_same_dilation2_hard_swish", "SeparableConv2D",
     dict(filters=4, kernel_size=3, dilation_rate=2, padding="same",
          activation="hard_swish"),
     (9, 9, 3)),
    ("separable2d_same_k5_exponential", "SeparableConv2D",
     dict(filters=4, kernel_size=5, padding="same", activation="exponential"),
     (6, 6, 3)),
    # ---- Conv1D -----------------------------------------------------------
    ("conv1d_same_k3_s2_relu", "Conv1D",
     dict(filters=4, kernel_size=3, strides=2, padding="same",
          activation="relu"),
     (11, 3)),
    ("conv1d_causal_k3_dilation2_tanh", "Conv1D",
     dict(filters=4, kernel_size=3, dilation_rate=2, padding="causal",
          activation="tanh"),
     (12, 3)),
    ("conv1d_channels_first_valid_k4_linear", "Conv1D",
     dict(filters=4, kernel_size=4, padding="valid", activation="linear",
          data_format="channels_first"),
     (3, 10)),
    ("conv1d_groups2_same_silu", "Conv1D",
     dict(filters=6, kernel_size=3, padding="same", groups=2,
          activation="silu"),
     (10, 4)),
    # ---- DepthwiseConv1D --------------------------------------------------
    ("depthwise1d_causal_k5_dm2_relu", "DepthwiseConv1D",
     dict(kernel_size=5, padding="causal", depth_multiplier=2,
          activation="relu"),
     (12, 3)),
    ("depthwise1d_same_s2_dm1_softmax", "DepthwiseConv1D",
     dict(kernel_size=3, strides=2, padding="same", depth_multiplier=1,
          activation="softmax"),
     (11, 4)),
    # ---- SeparableConv1D --------------------------------------------------
    ("separable1d_same_k7_dm1_relu", "SeparableConv1D",
     dict(filters=6, kernel_size=7, padding="same", depth_multiplier=1,
          activation="relu"),
     (20, 4)),
    ("separable1d_causal_k3_dilation4_dm2_gelu", "SeparableConv1D",
     dict(filters=5, kernel_size=3, dilation_rate=4, padding="causal",
          depth_multiplier=2, activation="gelu"),
     (16, 3)),
    ("separable1d_channels_first_same_k3_log_softmax", "SeparableConv1D",
     dict(filters=5, kernel_size=3, padding="same", activation="log_softmax",
          data_format="channels_first"),
     (4, 12)),
    ("separable1d_valid_k3_s3_softmax", "SeparableConv1D",
     dict(filters=5, kernel_size=3, strides=3, padding="valid",
          activation="softmax"),
     (14, 4)),
]

EXAMPLE = ("separable", "SeparableConv2D",
           dict(filters=16, kernel_size=3, padding="same", depth_multiplier=2,
                activation="relu"),
           (16, 16, 8))
EXAMPLE_BATCH = 1


def case_seed(name):
    """A fixed per-case seed that does not depend on the case's position."""
    return zlib.crc32(name.encode("utf-8"))


def save_npy(path, array):
    array = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def run_case(name, class_name, kwargs, input_shape, batch):
    """Build, fill and run one layer; return (spec, weights, x, y)."""
    rng = np.random.default_rng(case_seed(name))
    layer = getattr(keras.layers, class_name)(name=name, **kwargs)
    layer.build((None,) + tuple(input_shape))

    weights = []
    for w in layer.weights:
        shape = tuple(w.shape)
        if w.name == "bias":
            value = rng.uniform(-0.5, 0.5, size=shape)
        else:
            value = rng.uniform(-1.0, 1.0, size=shape)
        value = value.astype(np.float32)
        w.assign(value)
        weights.append((w.name, value))
    names = [n for n, _ in weights]
    if len(set(names)) != len(names):
        raise RuntimeError("duplicate weight names: %r" % (names,))

    scale = 0.25 if kwargs.get("activation") == "exponential" else 1.0
    x = rng.uniform(-scale, scale, size=(batch,) + tuple(input_shape))
    x = x.astype(np.float32)
    y = np.asarray(layer(x)).astype(np.float32)
    if not np.all(np.isfinite(y)):
        raise RuntimeError("non-finite values in the output")

    # Read the weights back as the layer holds them, to be sure they match.
    for (wname, value), w in zip(weights, layer.weights):
        if not np.array_equal(np.asarray(w.numpy()), value):
            raise RuntimeError("weight %s did not round-trip" % wname)

    spec = json.dumps(keras.layers.serialize(layer), indent=1,
                      sort_keys=True) + "\n"
    return spec, weights, x, y


def write_case(outdir, spec, weights, x, y):
    # Start from an empty case directory so no stale weight file survives.
    if os.path.isdir(outdir):
        shutil.rmtree(outdir)
    os.makedirs(os.path.join(outdir, "weights"))
    with open(os.path.join(outdir, "spec.json"), "w", encoding="utf-8",
              newline="\n") as f:
        f.write(spec)
    for wname, value in weights:
        save_npy(os.path.join(outdir, "weights", wname + ".npy"), value)
    save_npy(os.path.join(outdir, "input.npy"), x)
    save_npy(os.path.join(outdir, "expected.npy"), y)


def versions():
    import jax
    return keras.__version__, jax.__version__, np.__version__


def readme_text(cases):
    kv, jv, nv = versions()
    return """\
# Keras golden fixtures

Golden outputs computed by real Keras layers (Keras {kv}, JAX backend,
JAX {jv}, numpy {nv}); convgen's generated C kernels are checked against them.

Each directory `<case>/` (listed in `MANIFEST`) holds one layer:

- `spec.json`: `keras.layers.serialize(layer)` (includes `build_config.input_shape`);
- `weights/<name>.npy`: the layer's weights (`kernel`, `bias`,
  `depthwise_kernel`, `pointwise_kernel`), float32, Keras layout;
- `input.npy`: float32 input, batch {batch};
- `expected.npy`: float32 output of the Keras layer on `input.npy`.

They were made by `tools/make_keras_fixtures.py`: for each case it builds the
layer with a fixed input shape, sets seeded random weights (kernels uniform in
[-1, 1], biases uniform in [-0.5, 0.5]), draws a seeded random input (uniform in
[-1, 1]; [-0.25, 0.25] for the 'exponential' activation) and runs `layer(x)`.
Seeds are fixed per case, so regeneration is byte-identical for the same
Keras/JAX/numpy versions.

Regenerate with:

    python3 tools/make_keras_fixtures.py tests/fixtures

({n} cases.)  The bundled example in `examples/separable/` (same layout, batch 1)
is regenerated with:

    python3 tools/make_keras_fixtures.py --example examples/separable
""".format(kv=kv, jv=jv, nv=nv, batch=BATCH, n=len(cases))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Generate Keras golden fixtures for convgen.")
    parser.add_argument("outdir", nargs="?", default="tests/fixtures",
                        help="output directory (default: tests/fixtures)")
    parser.add_argument("--example", metavar="DIR",
                        help="write only the bundled SeparableConv2D example "
                             "into DIR (e.g. examples/separable)")
    args = parser.parse_args(argv)

    if args.example:
        name, cls, kwargs, shape = EXAMPLE
        spec, weights, x, y = run_case(name, cls, kwargs, shape,
                                       EXAMPLE_BATCH)
        write_case(args.example, spec, weights, x, y)
        print("wrote example to %s" % args.example)
        return 0

    names = [c[0] for c in CASES]
    if len(set(names)) != len(names):
        raise SystemExit("duplicate case names")

    os.makedirs(args.outdir, exist_ok=True)
    produced, dropped = [], []
    for name, cls, kwargs, shape in CASES:
        try:
            spec, weights, x, y = run_case(name, cls, kwargs, shape, BATCH)
        except Exception as e:  # Keras refused this combination: drop it.
            msg = "".join(traceback.format_exception_only(type(e), e)).strip()
            print("DROPPED %s: %s" % (name, msg), file=sys.stderr)
            dropped.append(name)
            stale = os.path.join(args.outdir, name)
            if os.path.isdir(stale):
                shutil.rmtree(stale)
            continue
        write_case(os.path.join(args.outdir, name), spec, weights, x, y)
        produced.append(name)
        print("ok %-48s in %-14s out %s" % (name, x.shape, y.shape))

    produced.sort()
    with open(os.path.join(args.outdir, "MANIFEST"), "w", encoding="utf-8",
              newline="\n") as f:
        f.write("".join(n + "\n" for n in produced))
    with open(os.path.join(args.outdir, "README.md"), "w", encoding="utf-8",
              newline="\n") as f:
        f.write(readme_text(produced))

    extra = sorted(set(d for d in os.listdir(args.outdir)
                       if os.path.isdir(os.path.join(args.outdir, d)))
                   - set(produced))
    if extra:
        print("note: directories in %s not in MANIFEST (left alone): %s"
              % (args.outdir, ", ".join(extra)), file=sys.stderr)
    print("%d cases written to %s, %d dropped%s"
          % (len(produced), args.outdir, len(dropped),
             (": " + ", ".join(dropped)) if dropped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
