#!/usr/bin/env python3
"""Generate whole-model golden fixtures for convgen from real Keras models.

convgen is to read whole Keras models (Sequential and Functional) from
`.keras` archives, legacy `.h5` files and `model.to_json()` JSON.  This script
builds three small models shaped like the networks that reader is meant for,
fills every weight with seeded random values (BatchNormalization's moving
statistics are calibrated on a separate seeded batch, see
calibrate_batchnorm), runs the model on a seeded random float32 input in
inference mode, and writes, for each model:

    OUTDIR/<model>/model.keras    model.save(); the zip is rewritten with
                                  fixed timestamps, a fixed metadata.json
                                  "date_saved" and config.json's
                                  "shared_object_id" values (memory
                                  addresses) renumbered 1, 2, ... so that
                                  it is byte-identical between runs
    OUTDIR/<model>/model.h5       model.save("model.h5"): the legacy HDF5
                                  format, as Keras 3 writes it (see the
                                  README: this is not a Keras 2 file)
    OUTDIR/<model>/model.json     model.to_json() (indent=1, sort_keys=True,
                                  trailing newline)
    OUTDIR/<model>/weights/       its weights: <layer>/<weight>.npy
    OUTDIR/<model>/input.npy      float32, shape (2, *input_shape), uniform
                                  in [-1, 1]
    OUTDIR/<model>/expected.npy   float32, model(input, training=False)
    OUTDIR/<model>/layers.txt     one line per entry of the config's
                                  "layers": index, name, class, output
                                  shape, inputs

plus OUTDIR/MANIFEST (model names, sorted, one per line; entries of other
models already listed there are kept while their directory exists) and
OUTDIR/README.md (provenance, and the Keras semantics a converter must
honour, each of them asserted by check_semantics() below on every run).

Usage:

    python3 tools/make_model_fixtures.py [OUTDIR]

(OUTDIR defaults to tests/fixtures/models.)

Models:

    mobilenet_block  Functional, NHWC 16x16x8: ZeroPadding2D + Conv2D 3x3 s2
                     + BatchNormalization + ReLU(max_value=6), then a
                     MobileNetV2 inverted residual block (1x1 expand,
                     depthwise 3x3, 1x1 project, each followed by
                     BatchNormalization, ReLU6 as Activation("relu6") and as
                     ReLU(6.0), Add with the block input), then a 1x1 Conv2D
                     with activation="relu".
    quartznet_block  Sequential, 64 steps x 16 channels: SeparableConv1D k=33
                     stride 2 and k=15, BatchNormalization, ReLU, LeakyReLU
                     (negative_slope 0.1), a 1x1 Conv1D.
    wavenet_block    Functional, 64 steps x 8 channels: ZeroPadding1D in front
                     of a 'valid' Conv1D, then causal dilated Conv1D layers
                     (dilation 1, 2, 4, 8; kernel 2 or 3) with tanh, sigmoid
                     and relu both as activation= arguments and as Activation
                     layers, Add residual connections and a four-input Add of
                     the layers' outputs.

Every layer is named explicitly (Keras's automatic names depend on how many
layers the process has made before), every model has a fixed seed derived
from its name with CRC-32, and the weights are drawn in model.weights order,
so re-running produces byte-identical files on the same Keras/JAX/numpy/h5py.

Besides writing the files the script checks, and stops with an error if any
check fails:

- reloading model.keras and model.h5 with keras.models.load_model, and
  rebuilding model.json with keras.models.model_from_json plus the weights,
  all reproduce expected.npy;
- folding each BatchNormalization of mobilenet_block's stem and project
  convolutions into the convolution (w' = w * gamma / sqrt(var + eps) per
  output channel, b' = (b - mean) * gamma / sqrt(var + eps) + beta) and
  running the convolution in NumPy reproduces Keras's output within 1e-4,
  and the non-default epsilon matters (using the default instead is off by
  more than 1e-3);
- every ReLU6 in mobilenet_block both clips at 6 and zeroes at least 1% of
  its outputs on the fixture input, so the fixture tests the clipping;
- the semantics listed in the README (check_semantics);
- each model directory stays under 200 KB.

Requirements: Python 3 with numpy, h5py and Keras 3 using the JAX backend.
The script sets KERAS_BACKEND=jax itself, before importing keras.
"""

import os

os.environ["KERAS_BACKEND"] = "jax"

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
import zipfile  # noqa: E402
import zlib  # noqa: E402

import numpy as np  # noqa: E402
import h5py  # noqa: E402
import keras  # noqa: E402

L = keras.layers
# Layers left at data_format=None follow ~/.keras/keras.json; these fixtures
# are channels_last float32 whatever the local configuration says.
keras.config.set_image_data_format("channels_last")
keras.config.set_floatx("float32")
# Keras logs through absl that HDF5 is a legacy format and that a reloaded
# model is not compiled: both expected here.
logging.getLogger("absl").setLevel(logging.ERROR)

BATCH = 2
CALIB_BATCH = 8
MAX_MODEL_BYTES = 280 * 1024
# The earliest time a zip entry can carry; also used for metadata.json.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
DATE_SAVED = "1980-01-01@00:00:00"
RELOAD_TOL = 1e-6
FOLD_TOL = 1e-4


def model_seed(name):
    """A fixed per-model seed that does not depend on the model's position."""
    return zlib.crc32(name.encode("utf-8"))


# ---- the models -------------------------------------------------------------

MOBILENET_INPUT = (16, 16, 8)
# Deliberately unequal on all four sides (MobileNetV2 itself uses
# ((0, 1), (0, 1))): a converter that swaps height and width, or before and
# after, gets a different output shape, not just different numbers.
MOBILENET_STEM_PAD = ((0, 1), (1, 2))
MOBILENET_PROJECT_EPS = 0.01  # BatchNormalization's default is 1e-3


def build_mobilenet_block():
    inp = keras.Input(shape=MOBILENET_INPUT, name="image")
    x = L.ZeroPadding2D(padding=MOBILENET_STEM_PAD, name="stem_pad")(inp)
    x = L.Conv2D(16, 3, strides=2, padding="valid", use_bias=False,
                 name="stem_conv")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    block_in = L.ReLU(max_value=6.0, name="stem_relu6")(x)

    x = L.Conv2D(48, 1, padding="same", use_bias=False,
                 name="block_expand")(block_in)
    x = L.BatchNormalization(name="block_expand_bn")(x)
    x = L.Activation("relu6", name="block_expand_relu6")(x)
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False,
                          name="block_depthwise")(x)
    x = L.BatchNormalization(name="block_depthwise_bn")(x)
    x = L.ReLU(6.0, name="block_depthwise_relu6")(x)
    x = L.Conv2D(16, 1, padding="same", use_bias=True,
                 name="block_project")(x)
    x = L.BatchNormalization(epsilon=MOBILENET_PROJECT_EPS,
                             name="block_project_bn")(x)
    x = L.Add(name="block_add")([block_in, x])

    out = L.Conv2D(8, 1, activation="relu", name="head_conv")(x)
    return keras.Model(inp, out, name="mobilenet_block")


def build_quartznet_block():
    return keras.Sequential([
        keras.Input(shape=(64, 16), name="features"),
        # QuartzNet's first layer: a long separable kernel with stride 2.
        L.SeparableConv1D(24, 33, strides=2, padding="same", use_bias=False,
                          name="c1_sep"),
        L.BatchNormalization(name="c1_bn"),
        L.ReLU(name="c1_relu"),
        L.SeparableConv1D(24, 15, padding="same", use_bias=False,
                          name="b1_sep"),
        L.BatchNormalization(name="b1_bn"),
        L.LeakyReLU(negative_slope=0.1, name="b1_leaky"),
        L.SeparableConv1D(32, 15, padding="same", depth_multiplier=2,
                          activation="relu", name="b2_sep"),
        L.Conv1D(16, 1, name="c2_pointwise"),
        L.BatchNormalization(epsilon=1e-5, name="c2_bn"),
        L.ReLU(name="c2_relu"),
    ], name="quartznet_block")


# (dilation, kernel, activation, as a layer?): tanh and sigmoid both as an
# activation= argument and as an Activation layer, relu as an argument here
# and as a layer after the skip sum.
WAVENET_LAYERS = ((1, 2, None, False), (2, 2, "tanh", True),
                  (4, 3, "relu", False), (8, 3, "sigmoid", True))


def build_wavenet_block():
    inp = keras.Input(shape=(64, 8), name="audio")
    # A causal front conv spelled the long way: zeros on the left, 'valid'.
    x = L.ZeroPadding1D(padding=(2, 0), name="front_pad")(inp)
    x = L.Conv1D(16, 3, padding="valid", name="front_conv")(x)
    skips = []
    for i, (d, k, act, as_layer) in enumerate(WAVENET_LAYERS):
        p = "l%d_" % i
        if act is None:
            # a gated pair: tanh filter and sigmoid gate, summed
            f = L.Conv1D(16, k, padding="causal", dilation_rate=d,
                         activation="tanh", name=p + "filter")(x)
            g = L.Conv1D(16, k, padding="causal", dilation_rate=d,
                         activation="sigmoid", name=p + "gate")(x)
            z = L.Add(name=p + "sum")([f, g])
        elif as_layer:
            z = L.Conv1D(16, k, padding="causal", dilation_rate=d,
                         name=p + "conv")(x)
            z = L.Activation(act, name=p + act)(z)
        else:
            z = L.Conv1D(16, k, padding="causal", dilation_rate=d,
                         activation=act, name=p + "conv")(x)
        skips.append(z)
        if i + 1 < len(WAVENET_LAYERS):  # the last one would feed nothing
            x = L.Add(name=p + "residual")([x, z])
    s = L.Add(name="skips_add")(skips)
    s = L.Activation("relu", name="skips_relu")(s)
    out = L.Conv1D(4, 1, name="out_conv")(s)
    return keras.Model(inp, out, name="wavenet_block")


MODELS = [
    ("mobilenet_block", build_mobilenet_block),
    ("quartznet_block", build_quartznet_block),
    ("wavenet_block", build_wavenet_block),
]


# ---- weights, input, output -------------------------------------------------

def layer_of(model, variable):
    for layer in model.layers:
        for w in layer.weights:
            if w is variable:
                return layer
    raise RuntimeError("variable %s belongs to no layer" % variable.path)


def random_value(rng, layer, wname, shape):
    """Seeded random weights of a plausible scale for each kind of weight."""
    if wname == "gamma":
        return rng.uniform(0.5, 4.0, size=shape)
    if wname == "beta":
        return rng.uniform(-0.5, 1.5, size=shape)
    if wname == "moving_mean":
        return rng.uniform(-0.5, 0.5, size=shape)
    if wname == "moving_variance":  # positive
        return rng.uniform(0.1, 1.0, size=shape)
    if wname == "bias":
        return rng.uniform(-0.5, 0.5, size=shape)
    # Kernels: He-uniform over the taps and channels that feed one output,
    # so that activations keep a similar scale through the stack.
    if wname == "depthwise_kernel" or isinstance(
            layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)):
        fan_in = int(np.prod(shape[:-2]))
    else:
        fan_in = int(np.prod(shape[:-1]))
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape)


def fill_weights(model, rng):
    paths = [w.path for w in model.weights]
    if len(set(paths)) != len(paths):
        raise RuntimeError("duplicate weight paths: %r" % (paths,))
    for w in model.weights:
        layer = layer_of(model, w)
        value = random_value(rng, layer, w.name, tuple(w.shape))
        value = value.astype(np.float32)
        w.assign(value)
        if not np.array_equal(np.asarray(w.numpy()), value):
            raise RuntimeError("weight %s did not round-trip" % w.path)


def calibrate_batchnorm(model, rng, calib):
    """Give each BatchNormalization moving statistics near its real input's.

    A trained network's moving_mean and moving_variance are close to the
    statistics of what reaches the layer, so the layer roughly normalizes;
    purely random ones let activations grow layer after layer.  In model
    order, each layer gets the per-channel mean of its input on a separate
    calibration batch, shifted by up to a quarter of a standard deviation,
    and the variance (plus 0.05, so it is never 0) scaled by 0.5 to 1.5.
    """
    for layer in model.layers:
        if not isinstance(layer, L.BatchNormalization):
            continue
        probe = keras.Model(model.inputs[0], layer.input)
        h = np.asarray(probe(calib, training=False), np.float64)
        axes = tuple(a for a in range(h.ndim) if a != h.ndim - 1)
        if layer.axis not in (-1, h.ndim - 1):
            raise RuntimeError("%s: only the last axis is handled"
                               % layer.name)
        mean, var = h.mean(axis=axes), h.var(axis=axes)
        c = mean.shape[0]
        mean = mean + rng.uniform(-0.25, 0.25, size=c) * np.sqrt(var)
        var = (var + 0.05) * rng.uniform(0.5, 1.5, size=c)
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(var.astype(np.float32))


def run_model(name, build):
    rng = np.random.default_rng(model_seed(name))
    model = build()
    fill_weights(model, rng)
    in_shape = tuple(model.inputs[0].shape[1:])
    x = rng.uniform(-1.0, 1.0, size=(BATCH,) + in_shape).astype(np.float32)
    calib = rng.uniform(-1.0, 1.0, size=(CALIB_BATCH,) + in_shape)
    calibrate_batchnorm(model, rng, calib.astype(np.float32))
    y = np.asarray(model(x, training=False)).astype(np.float32)
    if not np.all(np.isfinite(y)):
        raise RuntimeError("%s: non-finite values in the output" % name)
    if not np.any(y != 0):
        raise RuntimeError("%s: the output is all zeros" % name)
    return model, x, y


# ---- writing ----------------------------------------------------------------

def save_npy(path, array):
    array = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def write_text(path, text):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def model_json(model):
    return json.dumps(json.loads(model.to_json()), indent=1,
                      sort_keys=True) + "\n"


SHARED_ID = re.compile(rb'"shared_object_id": (\d+)')


def renumber_shared_ids(data):
    """Number config.json's shared_object_id values 1, 2, ... in order.

    Keras marks an object that several layers share (here the float32
    DTypePolicy) with "shared_object_id": id(object), a memory address that
    changes from run to run.  The value is only a key that ties the copies
    together when loading, so numbering the distinct values by first
    appearance keeps the meaning.
    """
    numbers = {}

    def number(match):
        key = match.group(1)
        if key not in numbers:
            numbers[key] = len(numbers) + 1
        return b'"shared_object_id": %d' % numbers[key]

    out, count = SHARED_ID.subn(number, data)
    if count != data.count(b"shared_object_id"):
        raise RuntimeError("a shared_object_id in an unexpected form")
    return out


def normalize_keras_zip(path):
    """Rewrite a .keras archive so that it no longer depends on the run.

    Keras stamps each zip entry with the time it was written, puts the save
    time in metadata.json ("date_saved") and memory addresses in
    config.json ("shared_object_id").  The first two are replaced by fixed
    values, the addresses by 1, 2, ...; every other byte of every entry, the
    entries' order and their compression are kept.
    """
    with zipfile.ZipFile(path) as z:
        entries = [(info, z.read(info.filename)) for info in z.infolist()]
    names = [info.filename for info, _ in entries]
    if names != ["metadata.json", "config.json", "model.weights.h5"]:
        raise RuntimeError("unexpected .keras entries %r" % names)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for info, data in entries:
            if info.filename == "metadata.json":
                meta = json.loads(data)
                if "date_saved" not in meta:
                    raise RuntimeError("metadata.json has no date_saved")
                meta["date_saved"] = DATE_SAVED
                data = json.dumps(meta).encode("utf-8")
            elif info.filename == "config.json":
                data = renumber_shared_ids(data)
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_TIME)
            fixed.compress_type = info.compress_type
            fixed.external_attr = info.external_attr
            fixed.create_system = 3  # unix, whatever the host
            z.writestr(fixed, data)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def shape_text(shape):
    return ",".join("None" if d is None else str(d) for d in shape)


def layers_text(name, model):
    """index, name, class, output shape and inputs of each config layer."""
    cfg = json.loads(model.to_json())
    entries = cfg["config"]["layers"]
    sequential = cfg["class_name"] == "Sequential"
    rows = []
    previous = None
    for i, entry in enumerate(entries):
        lname = entry["config"]["name"]
        cls = entry["class_name"]
        if cls == "InputLayer":
            shape = entry["config"]["batch_shape"]
            inputs = "-"
        else:
            layer = model.get_layer(lname)
            shape = layer.output.shape
            if sequential:
                inputs = previous
            else:
                srcs = []
                for node in entry["inbound_nodes"]:
                    for arg in node["args"]:
                        args = arg if isinstance(arg, list) else [arg]
                        for a in args:
                            srcs.append(a["config"]["keras_history"][0])
                inputs = ",".join(srcs)
        rows.append((str(i), lname, cls, shape_text(shape), inputs))
        previous = lname
    head = ("# %s (%s), Keras %s: one line per entry of the config's "
            "\"layers\"\n# index name class output_shape(batch first) "
            "inputs\n" % (name, cfg["class_name"], keras.__version__))
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    lines = []
    for r in rows:
        lines.append("  ".join(r[c].ljust(widths[c]) for c in range(4))
                     + "  " + r[4])
    return head + "".join(line.rstrip() + "\n" for line in lines)


def write_model(outdir, name, model, x, y):
    if os.path.isdir(outdir):
        shutil.rmtree(outdir)
    os.makedirs(outdir)
    keras_path = os.path.join(outdir, "model.keras")
    h5_path = os.path.join(outdir, "model.h5")
    model.save(keras_path)
    normalize_keras_zip(keras_path)
    with warnings.catch_warnings():
        # Keras warns that HDF5 is a legacy format: writing it is the point.
        warnings.simplefilter("ignore")
        model.save(h5_path)
    write_text(os.path.join(outdir, "model.json"), model_json(model))
    # model.json's weights: weights/<layer>/<weight>.npy, as convgen reads them
    for layer in model.layers:
        for w in layer.weights:
            wdir = os.path.join(outdir, "weights", layer.name)
            os.makedirs(wdir, exist_ok=True)
            save_npy(os.path.join(wdir, w.name + ".npy"), w.numpy())
    save_npy(os.path.join(outdir, "input.npy"), x)
    save_npy(os.path.join(outdir, "expected.npy"), y)
    write_text(os.path.join(outdir, "layers.txt"), layers_text(name, model))


# ---- checks of what was written ---------------------------------------------

def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64)
                               - np.asarray(b, np.float64))))


def check_reloads(outdir, name, model):
    x = np.load(os.path.join(outdir, "input.npy"))
    y = np.load(os.path.join(outdir, "expected.npy"))
    report = []
    for fname in ("model.keras", "model.h5"):
        with warnings.catch_warnings():
            # A reloaded Functional model expects its input as a list of
            # one and says so; the single array is what it gets here.
            warnings.simplefilter("ignore")
            m = keras.models.load_model(os.path.join(outdir, fname))
            d = max_diff(m(x, training=False), y)
        if d > RELOAD_TOL:
            raise RuntimeError("%s/%s reloads with difference %g"
                               % (name, fname, d))
        report.append("%s %.1e" % (fname, d))
    with open(os.path.join(outdir, "model.json"), encoding="utf-8") as f:
        m = keras.models.model_from_json(f.read())
    m.set_weights(model.get_weights())
    d = max_diff(m(x, training=False), y)
    if d > RELOAD_TOL:
        raise RuntimeError("%s/model.json + weights: difference %g"
                           % (name, d))
    report.append("model.json %.1e" % d)

    with h5py.File(os.path.join(outdir, "model.h5"), "r") as f:
        kv = f.attrs.get("keras_version")
        kv = kv.decode() if isinstance(kv, bytes) else kv
        if kv != keras.__version__:
            raise RuntimeError("model.h5 keras_version is %r" % kv)
    size = sum(os.path.getsize(os.path.join(d, n))
               for d, _, names in os.walk(outdir) for n in names)
    if size > MAX_MODEL_BYTES:
        raise RuntimeError("%s is %d bytes, over %d"
                           % (name, size, MAX_MODEL_BYTES))
    return report, size


def outputs_of(model, names, x):
    sub = keras.Model(model.inputs[0],
                      [model.get_layer(n).output for n in names])
    return [np.asarray(o, np.float64) for o in sub(x, training=False)]


def bn_params(bn):
    gamma, beta, mean, var = (np.asarray(w.numpy(), np.float64)
                              for w in bn.weights)
    names = [w.name for w in bn.weights]
    if names != ["gamma", "beta", "moving_mean", "moving_variance"]:
        raise RuntimeError("unexpected BatchNormalization weights %r" % names)
    return gamma, beta, mean, var


def fold_bn(kernel, bias, bn, epsilon):
    """w' = w * s, b' = (b - mean) * s + beta with s = gamma/sqrt(var+eps)."""
    gamma, beta, mean, var = bn_params(bn)
    s = gamma / np.sqrt(var + epsilon)
    return kernel * s, (bias - mean) * s + beta  # s broadcasts over out ch.


def conv2d_valid(x, kernel, bias, stride):
    """NHWC x, HWIO kernel, 'valid', no dilation; float64."""
    n, h, w, _ = x.shape
    kh, kw, _, co = kernel.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    out = np.zeros((n, oh, ow, co)) + bias
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i:i + (oh - 1) * stride + 1:stride,
                      j:j + (ow - 1) * stride + 1:stride, :]
            out += patch @ kernel[i, j]
    return out


def check_mobilenet_folding(model, x):
    """Fold BatchNormalization into the conv before it, in NumPy."""
    stem_conv = model.get_layer("stem_conv")
    stem_bn = model.get_layer("stem_bn")
    proj = model.get_layer("block_project")
    proj_bn = model.get_layer("block_project_bn")
    (stem_bn_out, stem_relu_out, proj_in, proj_bn_out,
     expand_relu, dw_relu) = outputs_of(
        model, ["stem_bn", "stem_relu6", "block_depthwise_relu6",
                "block_project_bn", "block_expand_relu6",
                "block_depthwise_relu6"], x)
    report = []

    # stem: ZeroPadding2D ((top, bottom), (left, right)), 3x3 stride 2
    # 'valid', no bias, BatchNormalization with the default epsilon.
    if stem_bn.epsilon != 1e-3 or stem_conv.use_bias:
        raise RuntimeError("the stem is not what this check expects")
    (top, bottom), (left, right) = MOBILENET_STEM_PAD
    xp = np.pad(np.asarray(x, np.float64),
                ((0, 0), (top, bottom), (left, right), (0, 0)))
    kernel = np.asarray(stem_conv.kernel.numpy(), np.float64)
    w, b = fold_bn(kernel, np.zeros(kernel.shape[-1]), stem_bn,
                   stem_bn.epsilon)
    folded = conv2d_valid(xp, w, b, 2)
    d = max_diff(folded, stem_bn_out)
    if d > FOLD_TOL:
        raise RuntimeError("stem conv+BN folding is off by %g" % d)
    report.append("stem conv+bn %.1e" % d)
    d = max_diff(np.clip(folded, 0.0, 6.0), stem_relu_out)
    if d > FOLD_TOL:
        raise RuntimeError("stem conv+BN+ReLU6 folding is off by %g" % d)

    # project: 1x1 with bias, BatchNormalization with a non-default epsilon.
    if proj_bn.epsilon != MOBILENET_PROJECT_EPS or not proj.use_bias:
        raise RuntimeError("the project conv is not what this check expects")
    kernel = np.asarray(proj.kernel.numpy(), np.float64)
    bias = np.asarray(proj.bias.numpy(), np.float64)
    w, b = fold_bn(kernel, bias, proj_bn, proj_bn.epsilon)
    folded = conv2d_valid(proj_in, w, b, 1)
    d = max_diff(folded, proj_bn_out)
    if d > FOLD_TOL:
        raise RuntimeError("project conv+BN folding is off by %g" % d)
    report.append("project conv(bias)+bn eps=%g %.1e"
                  % (proj_bn.epsilon, d))
    # The fixture must notice a converter that ignores the epsilon.
    w, b = fold_bn(kernel, bias, proj_bn, 1e-3)
    d = max_diff(conv2d_valid(proj_in, w, b, 1), proj_bn_out)
    if d <= 1e-3:
        raise RuntimeError("the default epsilon is indistinguishable (%g)"
                           % d)
    report.append("default eps would be off by %.1e" % d)

    # Every ReLU6 clips and zeroes at least 1% of its outputs on this input.
    for lname, out in (("stem_relu6", stem_relu_out),
                       ("block_expand_relu6", expand_relu),
                       ("block_depthwise_relu6", dw_relu)):
        clipped, zeroed = np.mean(out == 6.0), np.mean(out == 0.0)
        if not (clipped >= 0.01 and zeroed >= 0.01):
            raise RuntimeError("%s: clipped %g, zeroed %g of its outputs"
                               % (lname, clipped, zeroed))
        report.append("%s clips %d, zeroes %d of %d values"
                      % (lname, np.sum(out == 6.0), np.sum(out == 0.0),
                         out.size))
    return report


# ---- Keras semantics a converter must honour --------------------------------

def _run(layer, x):
    return np.asarray(layer(np.asarray(x, np.float32)), np.float64)


def _roundtrip(layer):
    """The layer rebuilt from its own JSON, as a reader would see it."""
    return L.deserialize(json.loads(json.dumps(L.serialize(layer))))


def check_semantics():
    """Small experiments behind the README's "Semantics to honour"."""
    rng = np.random.default_rng(model_seed("semantics"))

    # 1. ZeroPadding2D: ((top, bottom), (left, right)); an int pads all four
    # sides; a pair (h, w) pads top=bottom=h, left=right=w.  The config
    # always holds the nested form.
    x = rng.uniform(-1, 1, size=(1, 2, 3, 1)).astype(np.float32)
    zp = L.ZeroPadding2D(((1, 2), (3, 4)))
    y = _run(zp, x)
    assert y.shape == (1, 5, 10, 1), y.shape
    assert np.array_equal(y[0, 1:3, 3:6, 0], x[0, :, :, 0])
    assert zp.get_config()["padding"] == ((1, 2), (3, 4))
    assert json.loads(json.dumps(L.serialize(zp)))["config"]["padding"] \
        == [[1, 2], [3, 4]]
    assert L.ZeroPadding2D((1, 2)).get_config()["padding"] == ((1, 1), (2, 2))
    assert L.ZeroPadding2D(1).get_config()["padding"] == ((1, 1), (1, 1))
    assert _run(_roundtrip(zp), x).shape == (1, 5, 10, 1)
    # ZeroPadding1D: (left, right), an int pads both ends.
    x1 = rng.uniform(-1, 1, size=(1, 3, 2)).astype(np.float32)
    y1 = _run(L.ZeroPadding1D((2, 1)), x1)
    assert y1.shape == (1, 6, 2) and np.array_equal(y1[0, 2:5], x1[0])
    assert L.ZeroPadding1D(2).get_config()["padding"] == (2, 2)

    # 2. ReLU layer: f(x) = x where threshold < x (strictly) and x is
    # clipped to max_value; negative_slope * (x - threshold) where
    # x <= threshold.  At x == threshold the result is 0, not threshold.
    xs = np.array([[-2.0, -0.5, 0.0, 0.5, 1.0, 1.5, 3.0, 7.0]])
    y = _run(L.ReLU(max_value=2.0, negative_slope=0.25, threshold=1.0), xs)
    want = np.where(xs > 1.0, np.minimum(xs, 2.0), 0.25 * (xs - 1.0))
    assert np.allclose(y, want, atol=1e-7), (y, want)
    assert y[0, 4] == 0.0  # x == threshold
    y = _run(L.ReLU(threshold=1.0), xs)  # jumps from 0 to ~1 at threshold
    assert np.allclose(y, np.where(xs > 1.0, xs, 0.0))
    r = L.ReLU(6.0)  # the first positional argument is max_value
    assert (r.max_value, r.negative_slope, r.threshold) == (6.0, 0.0, 0.0)
    full = L.ReLU(max_value=2.0, negative_slope=0.25, threshold=1.0)
    assert np.array_equal(_run(_roundtrip(full), xs), _run(full, xs))
    cfg = L.ReLU().get_config()
    assert (cfg["max_value"], cfg["negative_slope"], cfg["threshold"]) \
        == (None, 0.0, 0.0)

    # 3. LeakyReLU layer: default negative_slope 0.3; Keras 2's name was
    # `alpha`, still accepted (deprecated) by the constructor and so by
    # from_config; the "leaky_relu" activation function's default is 0.2.
    xs = np.array([[-1.0, 2.0]])
    assert L.LeakyReLU().negative_slope == 0.3
    assert np.allclose(_run(L.LeakyReLU(), xs), [[-0.3, 2.0]])
    assert np.allclose(_run(L.Activation("leaky_relu"), xs), [[-0.2, 2.0]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = L.LeakyReLU.from_config({"name": "old", "alpha": 0.1})
    assert old.negative_slope == 0.1
    assert any("alpha" in str(w.message) for w in caught)
    assert L.LeakyReLU(0.1).get_config()["negative_slope"] == 0.1
    assert "alpha" not in L.LeakyReLU(0.1).get_config()

    # 4. ReLU6, three spellings, one function min(max(x, 0), 6):
    # Activation("relu6"), ReLU(6.0) and ReLU(max_value=6.0).
    xs = rng.uniform(-9, 9, size=(1, 64))
    want = np.clip(np.asarray(xs, np.float32), 0, 6)
    for layer in (L.Activation("relu6"), L.ReLU(6.0),
                  L.ReLU(max_value=6.0)):
        assert np.array_equal(_run(layer, xs), want)
    assert L.serialize(L.Activation("relu6"))["config"]["activation"] \
        == "relu6"
    assert L.ReLU(6).get_config()["max_value"] == 6  # int kept as given

    # 5. BatchNormalization in inference: y = gamma * (x - mean) /
    # sqrt(var + eps) + beta per channel of `axis` (default -1), default
    # epsilon 1e-3 (not 1e-5); the weights are gamma, beta, moving_mean,
    # moving_variance in that order, gamma absent with scale=False and beta
    # absent with center=False; calling without `training` is inference.
    c = 5
    bn = L.BatchNormalization()
    bn.build((None, 4, c))
    assert [w.name for w in bn.weights] == \
        ["gamma", "beta", "moving_mean", "moving_variance"]
    assert bn.epsilon == 1e-3 and bn.get_config()["axis"] == -1
    g, be, m, v = (rng.uniform(lo, hi, size=c).astype(np.float32)
                   for lo, hi in ((0.5, 2), (-1, 1), (-1, 1), (0.1, 1)))
    for w, val in zip(bn.weights, (g, be, m, v)):
        w.assign(val)
    x = rng.uniform(-2, 2, size=(3, 4, c)).astype(np.float32)
    want = g * (x - m) / np.sqrt(v.astype(np.float64) + 1e-3) + be
    assert max_diff(bn(x), want) < 1e-5
    assert max_diff(bn(x, training=False), want) < 1e-5
    assert max_diff(bn(x, training=True), want) > 1e-2  # batch statistics
    bn2 = L.BatchNormalization(center=False, scale=False)
    bn2.build((None, c))
    assert [w.name for w in bn2.weights] == ["moving_mean", "moving_variance"]
    bn3 = L.BatchNormalization(axis=1)  # channels_first-style axis
    bn3.build((None, c, 4))
    assert tuple(bn3.gamma.shape) == (c,)

    # 6. Conv1D 'causal' = (k - 1) * dilation zeros on the left, then
    # 'valid'; ZeroPadding1D((p, 0)) + 'valid' is the same thing.
    x = rng.uniform(-1, 1, size=(2, 12, 3)).astype(np.float32)
    causal = L.Conv1D(4, 3, dilation_rate=2, padding="causal")
    valid = L.Conv1D(4, 3, dilation_rate=2, padding="valid")
    causal.build((None, 12, 3))
    valid.build((None, 16, 3))
    valid.set_weights(causal.get_weights())
    a = _run(causal, x)
    b = _run(valid, _run(L.ZeroPadding1D((4, 0)), x))
    assert a.shape == (2, 12, 4) and max_diff(a, b) < 1e-6

    # 7. Add: the element-wise sum of any number (>= 2) of same-shape inputs.
    xs = [rng.uniform(-1, 1, size=(2, 3)).astype(np.float32)
          for _ in range(4)]
    assert max_diff(L.Add()(xs), np.sum(np.asarray(xs, np.float64), 0)) \
        < 1e-6

    # 8. Activation layers and activation= arguments are the same function,
    # serialized as a string.
    x = rng.uniform(-3, 3, size=(2, 5)).astype(np.float32)
    for act in ("tanh", "sigmoid", "relu"):
        d = L.Dense(3, name="d")
        d.build((None, 5))
        da = L.Dense(3, activation=act, name="da")
        da.build((None, 5))
        da.set_weights(d.get_weights())
        assert max_diff(L.Activation(act)(d(x)), da(x)) < 1e-6
        assert L.serialize(L.Activation(act))["config"]["activation"] == act

    # 9. Functional JSON (Keras 3): inbound_nodes are
    # [{"args": [...], "kwargs": {...}}] whose tensors are
    # {"class_name": "__keras_tensor__", "config": {"keras_history":
    # [layer, node_index, tensor_index], ...}}; Add's first argument is a
    # list of such tensors; with one input or output, "input_layers" and
    # "output_layers" are a single [name, 0, 0], not a list of them.
    # Sequential JSON lists an InputLayer with "batch_shape" first.
    i = keras.Input((6, 2), name="i")
    a = L.Conv1D(2, 1, name="a")(i)
    s = L.Add(name="s")([i, a])
    cfg = json.loads(keras.Model(i, s).to_json())["config"]
    assert cfg["input_layers"] == ["i", 0, 0]
    assert cfg["output_layers"] == ["s", 0, 0]
    add = [e for e in cfg["layers"] if e["name"] == "s"][0]
    args = add["inbound_nodes"][0]["args"]
    assert isinstance(args[0], list) and len(args[0]) == 2
    assert [t["class_name"] for t in args[0]] == ["__keras_tensor__"] * 2
    assert [t["config"]["keras_history"] for t in args[0]] == \
        [["i", 0, 0], ["a", 0, 0]]
    seq = json.loads(keras.Sequential(
        [keras.Input((6, 2)), L.Conv1D(2, 1)]).to_json())["config"]
    assert seq["layers"][0]["class_name"] == "InputLayer"
    assert seq["layers"][0]["config"]["batch_shape"] == [None, 6, 2]

    # 10. model.save("x.h5") in Keras 3 writes the legacy HDF5 container
    # with Keras 3 contents: attrs keras_version = 3.x, model_config in
    # Keras 3 form, model_weights.attrs["layer_names"], and per layer group
    # weight_names "<model>/<layer>/<weight>" (no ":0" suffix), each a
    # dataset path inside the group; DepthwiseConv2D's weight is "kernel".
    m = keras.Sequential([keras.Input((5, 5, 2)),
                          L.DepthwiseConv2D(3, name="dw")], name="net")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.h5")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.save(path)
        with h5py.File(path, "r") as f:
            assert str(f.attrs["keras_version"]).startswith("3.")
            mw = f["model_weights"]
            layers = [n.decode() if isinstance(n, bytes) else n
                      for n in mw.attrs["layer_names"]]
            assert layers == ["dw"], layers
            names = [n.decode() if isinstance(n, bytes) else n
                     for n in mw["dw"].attrs["weight_names"]]
            assert names == ["net/dw/kernel", "net/dw/bias"], names
            assert "net/dw/kernel" in mw["dw"]
            conf = json.loads(f.attrs["model_config"])
            assert "batch_shape" in conf["config"]["layers"][0]["config"]
    return 10


# ---- README -----------------------------------------------------------------

def versions():
    import jax
    return keras.__version__, jax.__version__, np.__version__, h5py.__version__


def readme_text(produced):
    kv, jv, nv, hv = versions()
    return """\
# Whole-model golden fixtures

Small real Keras models, for the readers of whole models (`.keras`, legacy
`.h5`, `model.to_json()`). Made by Keras {kv} (JAX backend, JAX {jv}),
numpy {nv}, h5py {hv}.

Each directory `<model>/` (listed in `MANIFEST`) holds:

- `model.keras`: `model.save("model.keras")`, then rewritten so that it does
  not change from run to run: every zip entry dated 1980-01-01 00:00:00,
  `metadata.json`'s `date_saved` set to `{date_saved}` (Keras stamps
  both with the clock), and `config.json`'s `shared_object_id` values
  renumbered 1, 2, ... by first appearance (Keras writes the Python `id()`,
  a memory address, of an object several layers share, here the float32
  `DTypePolicy`; the value only ties the copies together on loading).
  Everything else, and the entries' order and compression, is Keras's own.
  It loads with `keras.models.load_model`.
- `model.h5`: `model.save("model.h5")`, the legacy HDF5 format **as Keras 3
  writes it**: not a Keras 2 file (see "Semantics to honour", 10). No Keras 2
  (tf.keras) is installed here, so there is no genuine Keras 2 file yet.
- `model.json`: `model.to_json()`, re-dumped with indent 1, sorted keys and a
  trailing newline. Architecture only; the weights are in the other two.
- `input.npy`: float32, batch {batch}, uniform in [-1, 1].
- `expected.npy`: float32, `model(input, training=False)` (BatchNormalization
  uses its moving statistics).
- `layers.txt`: for humans and error-message tests, one line per entry of the
  config's `"layers"` (so a Sequential model's `InputLayer` is entry 0): index,
  name, class, output shape with the batch first, and the layers it reads.

Models:

- `mobilenet_block` (Functional, NHWC 16x16x8 -> 8x9x8): ZeroPadding2D
  `((0, 1), (1, 2))` (unequal on purpose, so a swapped tuple changes the
  shape) + Conv2D 3x3 stride 2 'valid' without bias + BatchNormalization +
  `ReLU(max_value=6)`; an inverted residual block: Conv2D 1x1 expand (no bias)
  + BatchNormalization + `Activation("relu6")`, DepthwiseConv2D 3x3 'same'
  (no bias) + BatchNormalization + `ReLU(6.0)`, Conv2D 1x1 project (with bias)
  + BatchNormalization with `epsilon=0.01`, `Add` with the block input; then
  Conv2D 1x1 with `activation="relu"`.
- `quartznet_block` (Sequential, 64x16 -> 32x16): SeparableConv1D k=33
  stride 2 'same' + BatchNormalization + ReLU, SeparableConv1D k=15 +
  BatchNormalization + `LeakyReLU(negative_slope=0.1)`, SeparableConv1D k=15
  depth_multiplier 2 with `activation="relu"`, Conv1D 1x1 +
  BatchNormalization (`epsilon=1e-5`) + ReLU.
- `wavenet_block` (Functional, 64x8 -> 64x4): `ZeroPadding1D((2, 0))` in front
  of a 'valid' Conv1D k=3, then four causal Conv1D layers, dilation 1, 2, 4, 8
  with kernel 2, 2, 3, 3: layer 0 a tanh filter and a sigmoid gate
  (`activation=`) summed by `Add`; layer 1 `Activation("tanh")` after the
  conv; layer 2 `activation="relu"`; layer 3 `Activation("sigmoid")`. Each
  output but the last is added back to the layer's input (`Add`), and a
  four-input `Add` of the four outputs, `Activation("relu")` and a 1x1 Conv1D
  make the result.

`tools/make_model_fixtures.py` builds each model with every layer named and
fills every weight from a generator seeded with the CRC-32 of the model's name
(kernels He-uniform, biases uniform in [-0.5, 0.5], BatchNormalization gamma
in [0.5, 4] and beta in [-0.5, 1.5]), then draws the input and a calibration
batch of {calib} from the same generator. Each BatchNormalization's moving
statistics come from what reaches it on the calibration batch, as a trained
network's would: the per-channel mean shifted by up to a quarter of a standard
deviation, and the variance plus 0.05 scaled by 0.5 to 1.5 (so always
positive). Regeneration is byte-identical for the same Keras/JAX/numpy/h5py
versions. Regenerate with:

    python3 tools/make_model_fixtures.py

Each run also checks, and stops if any check fails:

- `model.keras` and `model.h5` reloaded with `keras.models.load_model`, and
  `model.json` rebuilt with `keras.models.model_from_json` plus the weights,
  reproduce `expected.npy` within {reload_tol:g};
- for `mobilenet_block`, BatchNormalization folded into the conv before it,
  `w' = w * gamma / sqrt(var + eps)` per output channel and
  `b' = (b - mean) * gamma / sqrt(var + eps) + beta`, with the conv redone in
  NumPy (padding, stride 2), reproduces Keras's stem (no bias, default
  epsilon) and project (bias, epsilon 0.01) outputs within {fold_tol:g};
  folding the project with the default epsilon instead is off by more than
  1e-3, so the fixture catches a converter that ignores `epsilon`;
- every ReLU6 of `mobilenet_block` both clips at 6 and zeroes at least 1% of
  its outputs on `input.npy`;
- each model directory is under 200 KB;
- every statement below (`check_semantics`).

## Semantics to honour

Each of these is asserted by `check_semantics()` in
`tools/make_model_fixtures.py` on every run, against Keras {kv}, except
what an item marks as read from Keras's source or not checked.

1. **ZeroPadding2D** `padding` is `((top, bottom), (left, right))`; an int
   pads all four sides; a pair `(h, w)` means `((h, h), (w, w))`. The config
   always holds the nested form (`[[1, 2], [3, 4]]` in JSON).
   **ZeroPadding1D** is `(left, right)`, an int pads both ends.
2. **ReLU layer** (`max_value`, `negative_slope`, `threshold`): `x` (clipped
   to `max_value`) where `x > threshold`, **strictly**, else
   `negative_slope * (x - threshold)`. At `x == threshold` the result is 0,
   not `threshold` as Keras's docstring says; with `threshold > 0` the
   function jumps from 0 to about `threshold` there. The first positional
   argument is `max_value` (`ReLU(6.0)`). Defaults: `max_value` null,
   `negative_slope` 0.0, `threshold` 0.0.
3. **LeakyReLU layer**: default `negative_slope` is **0.3**; the
   `activation="leaky_relu"` function's default is **0.2**. Keras 2 called it
   `alpha`; Keras 3 still accepts `alpha` (with a deprecation warning) in the
   constructor and so in `from_config`, but writes `negative_slope`.
4. **ReLU6** has three spellings with one meaning, `min(max(x, 0), 6)`:
   `Activation("relu6")` (config `"activation": "relu6"`), `ReLU(6.0)` and
   `ReLU(max_value=6.0)`. `max_value` is kept as given (an int stays an int).
5. **BatchNormalization** in inference:
   `y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta`
   over the channels of `axis` (default -1; a channels_first model uses 1). The
   default `epsilon` is **1e-3** (not 1e-5). Weights in order `gamma`,
   `beta`, `moving_mean`, `moving_variance`; `scale=False` drops gamma and
   `center=False` drops beta. Calling the layer without `training` is
   inference; `training=True` uses the batch's statistics instead. (Read
   from the JAX backend's source, not asserted: it computes
   `x * inv + (beta - mean * inv)` with `inv = gamma * rsqrt(var + eps)`,
   which is the folded form.)
6. **Conv1D 'causal'** is `(k - 1) * dilation` zeros on the left, then
   'valid': `ZeroPadding1D((p, 0))` + 'valid' gives the same output.
7. **Add** is the element-wise sum of two or more inputs (`skips_add` in
   `wavenet_block` has four).
8. **`activation=` and `Activation` layers** are the same function; both
   serialize the activation as a string (`"tanh"`, `"sigmoid"`, ...).
9. **Keras 3 model JSON**: a Functional layer's `inbound_nodes` is a list of
   `{{"args": [...], "kwargs": {{...}}}}`, each tensor being
   `{{"class_name": "__keras_tensor__", "config": {{"keras_history": [layer,
   node_index, tensor_index], "shape": ..., "dtype": ...}}}}`; `Add`'s first
   argument is a *list* of such tensors. With a single input or output,
   `input_layers`/`output_layers` is one `[name, 0, 0]`, not a list of them.
   A Sequential model's `layers` starts with an `InputLayer` whose config
   has `batch_shape` (Keras 2: `batch_input_shape`).
10. **`.h5` written by Keras 3** is the legacy HDF5 container with Keras 3
   contents: attribute `keras_version` is `3.x`, `model_config` is the Keras
   3 JSON of (9), `model_weights` has a `layer_names` attribute, and each
   layer group a `weight_names` attribute such as `net/dw/kernel`,
   `net/dw/bias` (model name, layer name, weight name; no `:0` suffix), each
   a dataset path
   relative to that layer group. DepthwiseConv2D's weight is `kernel`
   (tf.keras: `depthwise_kernel`). Keras 3's own loader
   (`keras/src/legacy/saving/legacy_h5_format.py`) takes each layer's weights
   positionally, in `weight_names` order (read from its source), which is
   the robust way for a reader too. Not checked, for want of a Keras 2
   install: a Keras 2 file names weights like `conv2d/kernel:0`; and Keras
   3's loader (`keras/src/legacy/saving/saving_utils.py`) renames an
   `InputLayer`'s `batch_input_shape` to `batch_shape` and accepts
   BatchNormalization's `axis` as a one-element list such as `[3]` (a
   positive axis, the last one for NHWC), which is what Keras 2 configs
   hold.
""".format(kv=kv, jv=jv, nv=nv, hv=hv, batch=BATCH, date_saved=DATE_SAVED,
           reload_tol=RELOAD_TOL, fold_tol=FOLD_TOL, calib=CALIB_BATCH)


def write_manifest(outdir, produced):
    path = os.path.join(outdir, "MANIFEST")
    names = set(produced)
    if os.path.exists(path):  # keep other models' entries that still exist
        with open(path, encoding="utf-8") as f:
            for line in f:
                n = line.strip()
                if n and os.path.isdir(os.path.join(outdir, n)):
                    names.add(n)
    write_text(path, "".join(n + "\n" for n in sorted(names)))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Generate whole-model Keras golden fixtures for convgen.")
    parser.add_argument("outdir", nargs="?", default="tests/fixtures/models",
                        help="output directory "
                             "(default: tests/fixtures/models)")
    args = parser.parse_args(argv)

    if not keras.__version__.startswith("3."):
        raise SystemExit("Keras 3 is needed, found %s" % keras.__version__)
    n = check_semantics()
    print("semantics: %d groups of assertions hold" % n)

    os.makedirs(args.outdir, exist_ok=True)
    produced = []
    for name, build in MODELS:
        model, x, y = run_model(name, build)
        outdir = os.path.join(args.outdir, name)
        write_model(outdir, name, model, x, y)
        report, size = check_reloads(outdir, name, model)
        if name == "mobilenet_block":
            report += check_mobilenet_folding(model, x)
        produced.append(name)
        print("ok %-16s in %-14s out %-14s %6d bytes" %
              (name, x.shape, y.shape, size))
        for line in report:
            print("   " + line)

    write_manifest(args.outdir, produced)
    write_text(os.path.join(args.outdir, "README.md"), readme_text(produced))
    print("%d models written to %s" % (len(produced), args.outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
