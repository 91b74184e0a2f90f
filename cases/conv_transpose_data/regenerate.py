"""Regenerates cases/conv_transpose_onnx.yaml and cases/conv_transpose_keras_tests.yaml (+ keras_correctness.npz).

Not part of the harness and not collected by pytest; kept so that the translation can be re-checked.

  ONNX part (needs the onnx package; run with .engines/onnx/bin/python):
      python cases/conv_transpose_data/regenerate.py onnx DATA_DIR
  where DATA_DIR holds ONNX's node test folders test_convtranspose*/ (model.onnx, test_data_set_0/*.pb). They are not
  in the onnx 1.23.2 wheel nor in onnx's main branch any more (removed by onnx/onnx#7959); the last tag that has them
  is v1.22.0 (git archive v1.22.0 onnx/backend/test/data/node). Its inputs, attributes and outputs are checked equal
  to what the 1.23.2 generator (onnx/backend/test/case/node/convtranspose.py) builds.

  Keras part (run with .venv/bin/python; imports keras's own test module for its NumPy reference functions):
      python cases/conv_transpose_data/regenerate.py keras
"""
from __future__ import annotations

import glob
import hashlib
import os
import sys
import textwrap

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.dirname(HERE)


# ---------------------------------------------------------------------------------------------------------- YAML
def num(v: float) -> str:
    v = float(v)
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.9g}"


def flow(a: np.ndarray, indent: int) -> str:
    """A nested YAML flow list; the innermost two levels on one line each."""
    a = np.asarray(a)
    if a.ndim == 1:
        return "[" + ", ".join(num(v) for v in a) + "]"
    if a.ndim == 2:
        one_line = "[" + ", ".join(flow(r, 0) for r in a) + "]"
        if len(one_line) + indent <= 118:
            return one_line
        lines, cur = [], ""
        for r in (flow(r, 0) for r in a):       # as many rows per line as fit in 118 columns
            if cur and indent + 1 + len(cur) + len(r) + 2 > 118:
                lines.append(cur)
                cur = ""
            cur = f"{cur}, {r}" if cur else r
        lines.append(cur)
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    pad = " " * (indent + 1)
    return "[" + (",\n" + pad).join(flow(r, indent + 1) for r in a) + "]"


def comment(text: str, indent: int = 2) -> list[str]:
    return textwrap.wrap(text, 118 - indent, initial_indent=" " * indent + "# ", subsequent_indent=" " * indent + "# ")


def yaml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(yaml_value(e) for e in v) + "]"
    return str(v)


def mapping(d: dict) -> str:
    return "{" + ", ".join(f"{k}: {yaml_value(v)}" for k, v in d.items()) + "}"


def tensor(prefix: str, a: np.ndarray) -> str:
    """`prefix` then the tensor: an init name where it is all zeros or all ones, else a flow list aligned under it."""
    a = np.asarray(a)
    if a.size and np.all(a == 1):
        return prefix + "ones"
    if a.size and np.all(a == 0):
        return prefix + "zeros"
    return prefix + flow(a, len(prefix))


def write_npz(path: str, arrays: dict) -> None:
    """np.savez's format with a fixed timestamp per member, so that the same arrays give the same bytes (and sha256)."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for key, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
            z.writestr(zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---------------------------------------------------------------------------------------------------------- ONNX
ONNX_LEFT_OUT = {
    "test_convtranspose_group_2": "group=2: Keras's Conv*Transpose has no groups argument",
    "test_convtranspose_group_2_image_3": "group=2: Keras's Conv*Transpose has no groups argument",
    "test_convtranspose_pads": "pads=[1, 2, 1, 2], strides [3, 2], kernel 3: the height crop (1, 1) is Keras 'same' "
                               "with output_padding 0, but the width crop (2, 2) takes 2 off each end of a 7-long "
                               "scatter; Keras's 'same' crops at most ek // 2 = 1 per end and 'valid' none, so no "
                               "Keras layer gives the 7x3 output",
}

# Per test: Keras layer, config, data_format written, and why the attributes are that Keras config.
ONNX_MAP = {
    "test_convtranspose": ("Conv2DTranspose", {"kernel_size": 3, "padding": "valid"}, "channels_first",
                           "no attributes: stride 1, pads 0 = the full scatter = Keras 'valid'"),
    "test_convtranspose_1d": ("Conv1DTranspose", {"kernel_size": 3, "padding": "valid"}, "channels_last",
                              ("no attributes: the full scatter = Keras 'valid'; written channels last "
                              "(x and y transposed from NCW)")),
    "test_convtranspose_3d": ("Conv3DTranspose", {"kernel_size": 3, "padding": "valid"}, "channels_first",
                              "no attributes: the full scatter = Keras 'valid'"),
    "test_convtranspose_autopad_same": (
        "Conv2DTranspose", {"kernel_size": 3, "strides": 2, "padding": "same"}, "channels_last",
        ("auto_pad SAME_UPPER, strides 2: output n*s = 6 of the 7-long scatter, the extra position cropped at the "
        "end = Keras 'same' (crop (0, 1)); written channels last")),
    "test_convtranspose_dilations": (
        "Conv2DTranspose", {"kernel_size": 2, "dilation_rate": 2, "padding": "valid"}, "channels_first",
        "dilations 2, pads 0: the full scatter of the dilated 2x2 kernel (extent 3) = Keras 'valid'"),
    "test_convtranspose_pad": (
        "Conv2DTranspose", {"kernel_size": 3, "strides": [3, 2], "padding": "valid", "output_padding": [1, 1]},
        "channels_first",
        ("strides [3, 2], output_padding [1, 1], pads 0: the full scatter (9x7) and one zero row and column at the "
        "end = Keras 'valid' with output_padding [1, 1] (10x8)")),
    "test_convtranspose_output_shape": (
        "Conv2DTranspose", {"kernel_size": 3, "strides": [3, 2], "padding": "valid", "output_padding": [1, 1]},
        "channels_last",
        ("strides [3, 2], output_shape [10, 8]: ONNX's pads total s*(n-1) + ek - out = -1 per axis, i.e. one zero "
        "row and column appended to the 9x7 scatter = Keras 'valid' with output_padding [1, 1]; written channels "
        "last (the same x, W, y as test_convtranspose_pad)")),
    "test_convtranspose_kernel_shape": (
        "Conv2DTranspose", {"kernel_size": [3, 3], "strides": [3, 2], "padding": "valid", "output_padding": [1, 1]},
        "channels_first",
        ("kernel_shape [3, 3], strides [3, 2], output_padding [1, 1], output_shape [10, 8]: pads total "
        "s*(n-1) + op + ek - out = 0, the 10x8 output = Keras 'valid' with output_padding [1, 1] (the same x, W, y "
        "and Keras layer as test_convtranspose_pad)")),
}


def onnx_part(data_dir: str) -> None:
    import onnx
    from onnx import numpy_helper
    from onnx.backend.test.case.node import collect_testcases

    generated = {c.name: c for c in collect_testcases(None) if c.name.startswith("test_convtranspose")}
    found = sorted(os.path.basename(d) for d in glob.glob(os.path.join(data_dir, "test_convtranspose*")))
    assert found == sorted(generated), (found, sorted(generated))
    assert sorted(found) == sorted([*ONNX_MAP, *ONNX_LEFT_OUT]), found
    out = [HEADER_ONNX.format(version=onnx.__version__, n=len(ONNX_MAP), total=len(found),
                              left_out="".join(f"{line}\n" for k, v in ONNX_LEFT_OUT.items()
                                                    for line in comment(f"{k}: {v}", 0)))]
    for name in found:
        d = os.path.join(data_dir, name)
        model = onnx.load(os.path.join(d, "model.onnx"))
        node = model.graph.node[0]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        ins = [numpy_helper.to_array(onnx.load_tensor(p))
               for p in sorted(glob.glob(os.path.join(d, "test_data_set_0", "input_*.pb")))]
        y = numpy_helper.to_array(onnx.load_tensor(os.path.join(d, "test_data_set_0", "output_0.pb")))
        gin, gout = generated[name].data_sets[0]
        assert all(np.array_equal(a, b) for a, b in zip(ins, gin)) and np.array_equal(y, gout[0]), name
        assert list(node.attribute) == list(generated[name].model.graph.node[0].attribute), name
        if name in ONNX_LEFT_OUT:
            continue
        assert set(attrs) <= {"strides", "output_padding", "output_shape", "kernel_shape", "dilations", "auto_pad"}
        assert len(ins) == 2, "no test has B"
        x, w = ins
        layer, config, fmt, why = ONNX_MAP[name]
        rank = x.ndim - 2
        kernel = w.transpose(*range(2, rank + 2), 1, 0)           # (C_in, C_out, *k) -> (*k, C_out, C_in)
        config = {"filters": int(w.shape[1]), **config, "use_bias": False}
        if fmt == "channels_first":
            config["data_format"] = "channels_first"
        else:
            x, y = np.moveaxis(x, 1, -1), np.moveaxis(y, 1, -1)
        cid = "onnx-ct-" + name[len("test_"):].replace("_", "-")
        attr_text = ", ".join(f"{k}={v.decode() if isinstance(v, bytes) else v}" for k, v in attrs.items()) or "none"
        lines = comment(f"ONNX {onnx.__version__} node test {name} (onnx/backend/test/data/node/{name}/): attributes "
                        f"{attr_text}; x {list(ins[0].shape)}, W {list(w.shape)} -> y {list(gout[0].shape)}. "
                        f"As Keras: {why}.")
        dilated = max(np.atleast_1d(config.get("dilation_rate", 1))) > 1
        if dilated:
            lines += comment("TensorFlow's Eigen kernels (oneDNN off) refuse a dilation > 1 in a transposed conv: "
                             "a refusal there, the ONNX output with oneDNN on.")
        lines += [
            f"  - id: {cid}",
            f"    description: ONNX node test {name}",
            f"    layer: {layer}",
            f"    input_shape: {list(x.shape)}",
            f"    config: {mapping(config)}",
            tensor("    input: ", x),
            "    weights:",
            tensor("      kernel: ", kernel) + ("   # W is all ones" if np.all(kernel == 1) else ""),
            "    expect:",
            f"      output_shape: {list(y.shape)}",
        ]
        if dilated:
            lines.append("      rejected_by: {keras: tf-conv-transpose-dilation-refused-without-onednn}")
        expect = [tensor("      output: ", y)]
        out.append("\n".join(lines + expect) + "\n\n")
    with open(os.path.join(CASES, "conv_transpose_onnx.yaml"), "w") as f:
        f.write("".join(out).rstrip("\n") + "\n")


HEADER_ONNX = """\
# ONNX's own ConvTranspose node tests (onnx {version}: onnx/backend/test/case/node/convtranspose.py builds them;
# their data, onnx/backend/test/data/node/test_convtranspose*/, is taken from onnx's git tag v1.22.0, the last that
# ships it, and is byte-for-byte what the {version} generator produces), as Keras Conv*Transpose cases: the ONNX
# input as the case input, W (C_in, C_out, *k) as the Keras kernel (*k, C_out, C_in), no bias (no test has B), and
# the ONNX expected output as expect.output, unchanged (transposed to channels last where a case says so).
# Written by conv_transpose_data/regenerate.py.
#
# {n} of the {total} node tests are here. Left out, as no Keras layer computes them:
{left_out}#
# Also looked at, not node tests, and not expressible either (onnx/backend/test/data/pytorch-*): test_ConvTranspose2d
# and test_ConvTranspose2d_no_bias (pads 1 per end with output_padding 1: the output starts one position into the
# scatter, where Keras's 'same' with output_padding 1 and kernel 3 starts at 0), test_operator_convtranspose (pads 1
# per end with output_padding 2, likewise).
defaults:
  dtype: float32

cases:
"""

# --------------------------------------------------------------------------------------------------------- Keras
KERAS_TEST = "keras/src/layers/convolutional/conv_transpose_test.py"

# ConvTransposeCorrectnessTest.test_conv{1,2,3}d_transpose: each parameter set as written; the input's spatial size
# reduced from the test's (1D [2, 8, 4], 2D [2, 14, 14, 4], 3D [2, 8, 8, 8, 4]) so that the expected output stays
# inline and small; random normal x, kernel and bias as the test draws them (here seeded, stored rounded to float32).
TEST_INPUT = {"test_conv1d_transpose": [2, 8, 4], "test_conv2d_transpose": [2, 14, 14, 4],
              "test_conv3d_transpose": [2, 8, 8, 8, 4]}
CORRECTNESS = {
    "test_conv1d_transpose": ("Conv1DTranspose", [2, 4, 4], [
        dict(filters=5, kernel_size=2, strides=2, padding="valid", output_padding=None, data_format="channels_last",
             dilation_rate=1),
        dict(filters=6, kernel_size=2, strides=3, padding="same", output_padding=2, data_format="channels_last",
             dilation_rate=(1,)),
        dict(filters=6, kernel_size=(2,), strides=(2,), padding="valid", output_padding=None,
             data_format="channels_last", dilation_rate=1),
    ]),
    "test_conv2d_transpose": ("Conv2DTranspose", [1, 2, 2, 4], [
        dict(filters=5, kernel_size=2, strides=2, padding="valid", output_padding=None, data_format="channels_last",
             dilation_rate=1),
        dict(filters=6, kernel_size=7, strides=16, padding="same", output_padding=2, data_format="channels_last",
             dilation_rate=(1, 1), input_shape=[1, 2, 1, 4]),
        dict(filters=6, kernel_size=(2, 3), strides=(2, 1), padding="valid", output_padding=None,
             data_format="channels_last", dilation_rate=(1, 1)),
        dict(filters=2, kernel_size=(7, 7), strides=(16, 16), padding="valid", output_padding=None,
             data_format="channels_last", dilation_rate=(1, 1), input_shape=[1, 2, 1, 4],
             output_rows=[0, 3, 6, 7, 15, 16, 22, 23, 31]),
    ]),
    "test_conv3d_transpose": ("Conv3DTranspose", [1, 2, 1, 2, 4], [
        dict(filters=5, kernel_size=2, strides=2, padding="valid", output_padding=None, data_format="channels_last",
             dilation_rate=1),
        dict(filters=6, kernel_size=2, strides=3, padding="same", output_padding=2, data_format="channels_last",
             dilation_rate=(1, 1, 1)),
        dict(filters=6, kernel_size=(2, 2, 3), strides=(2, 1, 2), padding="valid", output_padding=None,
             data_format="channels_last", dilation_rate=(1, 1, 1)),
    ]),
}

# ConvTransposeBasicTest.test_conv{1,2,3}d_transpose_basic (run_layer_test: output shape and two weights), a few of
# its parameter sets at their own input shapes; no expected values (the oracle judges them).
BASIC = [
    ("test_conv1d_transpose_basic", 2, "Conv1DTranspose",
     dict(filters=6, kernel_size=2, strides=3, padding="same", output_padding=2, data_format="channels_last",
          dilation_rate=(1,)), [2, 8, 4], [2, 23, 6]),
    ("test_conv2d_transpose_basic", 3, "Conv2DTranspose",
     dict(filters=6, kernel_size=(2, 3), strides=(2, 1), padding="valid", output_padding=None,
          data_format="channels_first", dilation_rate=(1, 1)), [2, 4, 8, 8], [2, 6, 16, 10]),
    ("test_conv2d_transpose_basic", 4, "Conv2DTranspose",
     dict(filters=2, kernel_size=(7, 7), strides=(16, 16), padding="valid", output_padding=None,
          data_format="channels_last", dilation_rate=(1, 1)), [1, 14, 14, 2], [1, 224, 224, 2]),
    ("test_conv3d_transpose_basic", 3, "Conv3DTranspose",
     dict(filters=6, kernel_size=(2, 2, 3), strides=(2, 1, 2), padding="valid", output_padding=None,
          data_format="channels_last", dilation_rate=(1, 1, 1)), [2, 8, 8, 8, 4], [2, 16, 9, 17, 6]),
]

# ConvTransposeBasicTest.test_bad_init_args: every construction it expects a ValueError from, in its order.
BAD_INIT = [
    ("filters-zero", "Conv1DTranspose", dict(filters=0, kernel_size=1), [1, 4, 2]),
    ("kernel-zero-on-one-axis", "Conv2DTranspose", dict(filters=2, kernel_size=[1, 0]), [1, 4, 4, 2]),
    ("strides-zero-on-one-axis", "Conv2DTranspose", dict(filters=2, kernel_size=[2, 2], strides=[1, 0]),
     [1, 4, 4, 2]),
    ("output-padding-equal-strides", "Conv1DTranspose", dict(filters=2, kernel_size=3, strides=2, output_padding=2),
     [1, 4, 2]),
    ("output-padding-above-strides", "Conv2DTranspose", dict(filters=2, kernel_size=3, strides=2, output_padding=3),
     [1, 4, 4, 2]),
    ("output-padding-equal-strides-one-axis", "Conv2DTranspose",
     dict(filters=2, kernel_size=3, strides=[2, 3], output_padding=[1, 3]), [1, 4, 4, 2]),
    ("strides-with-dilation", "Conv2DTranspose", dict(filters=2, kernel_size=[2, 2], strides=2, dilation_rate=[2, 1]),
     [1, 4, 4, 2]),
    ("output-padding-equal-strides-k2", "Conv1DTranspose", dict(filters=2, kernel_size=2, strides=2, output_padding=2),
     [1, 4, 2]),
    ("output-padding-with-stride-1", "Conv2DTranspose",
     dict(filters=16, kernel_size=3, strides=[1, 1], output_padding=1), [1, 4, 4, 2]),
    ("output-padding-with-stride-1-3d", "Conv3DTranspose", dict(filters=8, kernel_size=3, strides=1, output_padding=1),
     [1, 4, 4, 4, 2]),
]


def keras_config(params: dict) -> dict:
    """The test's constructor arguments as a case config (tuples as lists; output_padding None left out)."""
    out = {}
    for k, v in params.items():
        if k in ("input_shape", "output_rows") or (k == "output_padding" and v is None):
            continue
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


def keras_part() -> None:
    import keras
    from keras.src.layers.convolutional import conv_transpose_test as kt

    refs = {1: kt.np_conv1d_transpose, 2: kt.np_conv2d_transpose, 3: kt.np_conv3d_transpose}
    rng = np.random.default_rng(20260101)
    arrays: dict[str, np.ndarray] = {}
    sha = "SHA256"
    body: list[str] = []

    # test_conv1d_transpose_consistency: ones input (1, 3, 1), kernel arange(1, k + 1), bias zeros, every point of its
    # product (kernel_size 1-4, strides 1-4, same/valid, output_padding None or 1-4; output_padding >= strides
    # skipped).
    body += ["", *comment(
        f"{KERAS_TEST}: ConvTransposeCorrectnessTest.test_conv1d_transpose_consistency, every point of its "
        "parameterized.product (kernel_size 1-4, strides 1-4, padding same/valid, output_padding None or 1-4; the "
        "points with output_padding >= strides are skipped there, and left out here): a ones input of shape "
        "(1, 3, 1), the kernel arange(1, k + 1), a zero bias; expect.output is the test's own expected value, "
        "np_conv1d_transpose of the test file (exact integers).")]
    n_consistency = 0
    for k in range(1, 5):
        for s in range(1, 5):
            for padding in ("same", "valid"):
                for op in [None, 1, 2, 3, 4]:
                    if op is not None and op >= s:
                        continue
                    x = np.ones((1, 3, 1))
                    kernel = np.arange(1, k + 1).reshape((k, 1, 1)).astype(np.float64)
                    want = kt.np_conv1d_transpose(x=x, kernel_weights=kernel, bias_weights=np.zeros((1,)), strides=s,
                                                  padding=padding, output_padding=op, data_format="channels_last",
                                                  dilation_rate=1)
                    config = {"filters": 1, "kernel_size": k, "strides": s, "padding": padding}
                    if op is not None:
                        config["output_padding"] = op
                    cid = f"keras-ct-consistency-k{k}-s{s}-{padding}-op{'none' if op is None else op}"
                    if n_consistency == 0:
                        body += [
                            "  - &consistency",
                            f"    id: {cid}",
                            (f"    description: {KERAS_TEST}::ConvTransposeCorrectnessTest::"
                            "test_conv1d_transpose_consistency (the point of its grid in config)"),
                            "    layer: Conv1DTranspose",
                            "    input_shape: [1, 3, 1]",
                            f"    config: {mapping(config)}",
                            "    input: ones",
                            "    weights: {kernel: {init: arange, start: 1}, bias: zeros}   # np.arange(1, k + 1)",
                            f"    expect: {{output: {flow(want, 0)}}}",
                        ]
                    else:
                        body += [f"  - {{<<: *consistency, id: {cid}, config: {mapping(config)},",
                                 f"     expect: {{output: {flow(want, 0)}}}}}"]
                    n_consistency += 1

    # test_conv{1,2,3}d_transpose: random x, kernel and bias; expected from the test's NumPy reference.
    n_correct = 0
    for test, (layer, shape, param_sets) in CORRECTNESS.items():
        rank = len(shape) - 2
        body += ["", *comment(
            f"{KERAS_TEST}: ConvTransposeCorrectnessTest.{test}, each of its parameter sets (the layer's config as "
            f"written there) on a smaller input than the test's {TEST_INPUT[test]} (each case's input_shape); x, "
            "kernel and bias random normal as the test draws them, seeded, stored as float32 in "
            "conv_transpose_data/keras_correctness.npz; expect.output is np_conv"
            f"{rank}d_transpose of the test file on those values (computed in float64, written to 9 significant "
            "digits).")]
        for i, params in enumerate(param_sets, 1):
            in_shape = params.get("input_shape", shape)
            config = keras_config(params)
            layer_obj = getattr(keras.layers, layer)(**{k: v for k, v in params.items()
                                                        if k not in ("input_shape", "output_rows")})
            layer_obj.build(tuple(in_shape))
            kshape = tuple(layer_obj.kernel.shape)
            x = rng.normal(size=in_shape).astype(np.float32)
            kernel = rng.normal(size=kshape).astype(np.float32)
            bias = rng.normal(size=(params["filters"],)).astype(np.float32)
            want = refs[rank](x.astype(np.float64), kernel.astype(np.float64), bias.astype(np.float64),
                              params["strides"], params["padding"], params["output_padding"], params["data_format"],
                              params["dilation_rate"])
            key = f"{test}_{i}"
            arrays[f"{key}/x"], arrays[f"{key}/kernel"], arrays[f"{key}/bias"] = x, kernel, bias
            cid = f"keras-ct-{test[len('test_'):].replace('_', '-')}-{i}"
            if want.size <= 800:
                golden = [tensor("      output: ", want)]
            else:
                # Too many values to write out: the rows of the first spatial axis where each pixel's scatter
                # starts, is in the middle and ends, and rows no pixel reaches (bias only), via output_at.
                rows = params["output_rows"]
                golden = ["      output_at:"] + [tensor(f"        - {{index: [0, {r}], value: ", want[0, r]) + "}"
                                                   for r in rows]
                body += comment(f"The output has {want.size} values: expect.output_at gives the test's expected "
                                f"values on rows {rows} of its {want.shape[1]} (the oracle judges every value).", 2)
            body += [
                f"  - id: {cid}",
                f"    description: {KERAS_TEST}::ConvTransposeCorrectnessTest::{test}, parameter set {i}",
                f"    layer: {layer}",
                f"    input_shape: {list(in_shape)}",
                f"    config: {mapping(config)}",
                f"    input: {{file: {NPZ}, key: {key}/x, sha256: {sha}}}",
                "    weights:",
                f"      kernel: {{file: {NPZ}, key: {key}/kernel, sha256: {sha}}}",
                f"      bias: {{file: {NPZ}, key: {key}/bias, sha256: {sha}}}",
                "    expect:",
                f"      output_shape: {list(want.shape)}",
                *golden,
            ]
            n_correct += 1

    # test_conv{1,2,3}d_transpose_basic: shapes and weights only.
    body += ["", *comment(
        f"{KERAS_TEST}: ConvTransposeBasicTest.test_conv{{1,2,3}}d_transpose_basic (run_layer_test: the output "
        "shape, two trainable weights), a few of their parameter sets at the tests' own input shapes; the expected "
        "output shape as written there, the weights' shapes and count (kernel (*k, filters, in), bias (filters)); "
        "random values, judged by the oracle. The channels_first set is one the test skips on TensorFlow "
        "(\"channels_first unsupported on CPU with TF\"); the harness runs it, transposing where TensorFlow's CPU "
        "kernels refuse NCHW.")]
    for test, i, layer, params, in_shape, out_shape in BASIC:
        config = keras_config(params)
        layer_obj = getattr(keras.layers, layer)(**params)
        layer_obj.build(tuple(in_shape))
        kshape = [int(v) for v in layer_obj.kernel.shape]
        cid = f"keras-ct-{test[len('test_'):].replace('_', '-')}-{i}"
        body += [
            f"  - id: {cid}",
            f"    description: {KERAS_TEST}::ConvTransposeBasicTest::{test}, parameter set {i}",
            f"    layer: {layer}",
            f"    input_shape: {list(in_shape)}",
            f"    config: {mapping(config)}",
            (f"    expect: {{output_shape: {list(out_shape)}, params: {layer_obj.count_params()}, "
            f"weight_shapes: {{kernel: {kshape}, bias: [{params['filters']}]}}}}"),
        ]

    body += ["", *comment(
        f"{KERAS_TEST}: ConvTransposeBasicTest.test_bad_init_args, every construction it expects a ValueError from: "
        "Keras refuses each at construction (keras-argument-checks-refused; strides > 1 with dilation > 1: "
        "keras-conv-strides-with-dilation-refused), the oracle and the torch port refuse the ones the harness's "
        "configuration check deems impossible (zero filters, kernel or stride; output_padding not below the strides) "
        "and compute the strides-with-dilation one.")]
    for name, layer, config, in_shape in BAD_INIT:
        body += [
            f"  - id: keras-ct-bad-init-{name}",
            f"    description: {KERAS_TEST}::ConvTransposeBasicTest::test_bad_init_args",
            f"    layer: {layer}",
            f"    input_shape: {in_shape}",
            f"    config: {mapping(config)}",
        ]
        if name == "strides-with-dilation":
            body.append("    expect: {rejected_by: {keras: keras-conv-strides-with-dilation-refused}}")
        else:
            first = not any("&impossible" in line for line in body)
            body += ["    expect:", "      rejected_by: &impossible" if first else "      rejected_by: *impossible"]
            if first:
                body += ["        keras: keras-argument-checks-refused",
                     "        oracle: \"the harness's own configuration check (harness.layers.geometry.impossible)\"",
                         "        torch: \"the torch port refuses what the harness's configuration check refuses\""]

    npz_path = os.path.join(HERE, NPZ_NAME)
    write_npz(npz_path, arrays)
    head = HEADER_KERAS.format(version=keras.__version__, consistency=n_consistency, correct=n_correct,
                               basic=len(BASIC), bad=len(BAD_INIT))
    text = head + "\n".join(body).lstrip("\n").replace(sha, sha256(npz_path)) + "\n"
    with open(os.path.join(CASES, "conv_transpose_keras_tests.yaml"), "w") as f:
        f.write(text)


NPZ_NAME = "keras_correctness.npz"
NPZ = f"conv_transpose_data/{NPZ_NAME}"

HEADER_KERAS = """\
# Keras's own conv-transpose tests (keras {version}: keras/src/layers/convolutional/conv_transpose_test.py) as cases;
# each case's description names its test function (and parameter set). Written by conv_transpose_data/regenerate.py.
#   - ConvTransposeCorrectnessTest.test_conv1d_transpose_consistency: {consistency} cases, the test's whole grid, with
#     the test's expected values (its NumPy reference np_conv1d_transpose; integers).
#   - ConvTransposeCorrectnessTest.test_conv1d/2d/3d_transpose: {correct} cases, every parameter set, on smaller inputs,
#     expected values from the test's NumPy references (np_conv1d/2d/3d_transpose).
#   - ConvTransposeBasicTest.test_conv1d/2d/3d_transpose_basic: {basic} of its 10 parameter sets, output shape and
#     weight shapes only (no expected values in the test).
#   - ConvTransposeBasicTest.test_bad_init_args: its {bad} refused constructions, as pinned refusals.
# Left out: test_output_padding_serialization (get_config / from_config round trip: no computation to compare) and
# test_shape_inference_static_unknown_shape (symbolic None dimensions; a case has a concrete input shape).
defaults:
  dtype: float32

cases:
"""

if __name__ == "__main__":
    if sys.argv[1] == "onnx":
        onnx_part(sys.argv[2])
    elif sys.argv[1] == "keras":
        keras_part()
