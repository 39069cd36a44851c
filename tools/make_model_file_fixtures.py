#!/usr/bin/env python3
"""Write the whole-model fixtures of tests/test_model_file.c.

Small Keras models saved as Keras saves them, for the C readers of
runtime/model_file.c:

    seq.keras      Sequential: Conv2D, BatchNormalization, ReLU,
                   ZeroPadding2D, DepthwiseConv2D (Keras 3 archive)
    fun.keras      Functional: SeparableConv1D and Conv1D added, then a
                   nested Sequential (Conv1D, BatchNormalization), then ReLU
    f64.keras      Sequential of float64 layers (JAX with x64 enabled), so
                   the weights file holds float64 datasets
    seq.h5         seq as a legacy HDF5 file (Keras 3's model.save("x.h5"))
    fun.h5         fun as a legacy HDF5 file (the nested model is one entry)
    keras2.h5      seq.h5 with its text attributes rewritten as Keras 2 wrote
                   them through h5py 2: fixed-length byte strings, and bn's
                   weight_names split into weight_names0 and weight_names1
                   as Keras splits a list too long for one attribute.
                   Keras 2 itself is not installed here, so this file is
                   made with h5py from seq.h5.

plus expected.txt, what the readers must find, one line each:

    model <file> <format> <class_name> <number of layers>
    layer <name> <number of tensors>
    tensor <shape as 3,3,2,3, or - for a scalar> <first> <last> <sum>

first and last are float32 values printed with 9 significant digits (the
float64 file's values rounded to float32, as the reader converts them), sum
is the float64 sum of the float32 values.

Every variable is set from a seeded generator, so the values are the same
on every run; the files themselves carry Keras's save date (metadata.json,
zip timestamps), so their bytes differ from run to run.

Usage: python3 tools/make_model_file_fixtures.py [OUTDIR]
(default tests/fixtures/model_files). Needs Keras 3 with JAX, numpy, h5py.
"""

import os

os.environ["KERAS_BACKEND"] = "jax"

import sys  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)  # for f64.keras only: floatx stays float32

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402


def fill(model, seed):
    """Sets every variable to seeded values; BatchNormalization's variance stays positive."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False, recursive=True):
        for v in layer.weights:
            values = rng.uniform(-1.0, 1.0, size=v.shape)
            if "variance" in v.path:
                values = np.abs(values) + 0.5
            v.assign(values.astype(v.dtype))


def sequential():
    model = keras.Sequential([
        keras.Input((6, 6, 2)),
        layers.Conv2D(3, 3, padding="same", name="c1"),
        layers.BatchNormalization(name="bn"),
        layers.ReLU(name="relu"),
        layers.ZeroPadding2D(1, name="pad"),
        layers.DepthwiseConv2D(3, name="dw"),
    ], name="seq")
    fill(model, 1)
    return model


def functional():
    x = keras.Input((8, 3), name="x")
    a = layers.SeparableConv1D(4, 3, padding="same", name="sep")(x)
    b = layers.Conv1D(4, 1, name="c")(x)
    y = layers.Add(name="add")([a, b])
    inner = keras.Sequential([
        keras.Input((8, 4)),
        layers.Conv1D(2, 1, name="inner_conv"),
        layers.BatchNormalization(name="inner_bn"),
    ], name="inner")
    y = layers.ReLU(name="out")(inner(y))
    model = keras.Model(x, y, name="fun")
    fill(model, 2)
    return model


def float64_model():
    model = keras.Sequential([
        keras.Input((5, 5, 2)),
        layers.Conv2D(2, 3, name="c64", dtype="float64"),
        layers.DepthwiseConv2D(2, name="dw64", dtype="float64"),
    ], name="m64")
    fill(model, 3)
    return model


def keras2_style(src, dst):
    """Copies a legacy .h5 with its text attributes as fixed-length bytes."""
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        for key, value in f.attrs.items():
            g.attrs[key] = value
        for name in f:
            f.copy(f[name], g, name=name)

        def fixed(attrs, key):
            value = attrs[key]
            if isinstance(value, np.ndarray):
                items = [s.encode() if isinstance(s, str) else bytes(s) for s in value.tolist()]
                if items:
                    attrs[key] = np.array(items)  # dtype S<n>: fixed length
            else:
                attrs[key] = np.bytes_(value.encode() if isinstance(value, str) else value)

        for key in ("model_config", "backend", "keras_version"):
            if key in g.attrs:
                fixed(g.attrs, key)
        weights = g["model_weights"]
        for key in ("layer_names", "backend", "keras_version"):
            fixed(weights.attrs, key)
        for layer in weights:
            fixed(weights[layer].attrs, "weight_names")
        bn = weights["bn"].attrs
        names = bn["weight_names"]
        del bn["weight_names"]
        bn["weight_names0"] = names[:2]
        bn["weight_names1"] = names[2:]


def expected_lines(filename, fmt, model, entries):
    lines = [f"model {filename} {fmt} {model.__class__.__name__} {len(entries)}"]
    for name, tensors in entries:
        lines.append(f"layer {name} {len(tensors)}")
        for t in tensors:
            t = np.asarray(t, dtype=np.float32)
            shape = ",".join(str(d) for d in t.shape) or "-"
            flat = t.reshape(-1)
            first = f"{flat[0]:.9g}" if flat.size else "0"
            last = f"{flat[-1]:.9g}" if flat.size else "0"
            total = float(np.sum(flat.astype(np.float64)))
            lines.append(f"tensor {shape} {first} {last} {total:.17g}")
    return lines


def keras_entries(model, prefix=""):
    """What the .keras reader lists: every layer, nested ones as outer/inner."""
    entries = []
    for layer in model.layers:
        name = prefix + layer.name
        if isinstance(layer, keras.Model):
            entries.append((name, []))
            entries += keras_entries(layer, name + "/")
        else:
            entries.append((name, [v.numpy() for v in layer.weights]))
    return entries


def legacy_entries(model):
    """What the .h5 reader lists: every top-level layer with all its weights
    (a Functional model's layers include its InputLayer)."""
    return [(layer.name, [v.numpy() for v in layer.weights]) for layer in model.layers]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/model_files"
    os.makedirs(out, exist_ok=True)
    seq, fun, f64 = sequential(), functional(), float64_model()
    lines = [
        "# What tests/test_model_file.c must read from these files; made by",
        f"# tools/make_model_file_fixtures.py (Keras {keras.__version__}, JAX {jax.__version__},"
        f" h5py {h5py.__version__}, numpy {np.__version__}).",
    ]
    for filename, model in (("seq.keras", seq), ("fun.keras", fun), ("f64.keras", f64)):
        model.save(os.path.join(out, filename))
        lines += expected_lines(filename, "keras", model, keras_entries(model))
    for filename, model in (("seq.h5", seq), ("fun.h5", fun)):
        model.save(os.path.join(out, filename))
        lines += expected_lines(filename, "h5", model, legacy_entries(model))
    keras2_style(os.path.join(out, "seq.h5"), os.path.join(out, "keras2.h5"))
    lines += expected_lines("keras2.h5", "h5", seq, legacy_entries(seq))
    with open(os.path.join(out, "expected.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
