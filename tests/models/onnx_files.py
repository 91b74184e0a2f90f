"""Writes the ONNX ports of tests/models/test_onnx_port.py into a folder: a small Keras model (conv 'same' at stride
2, BatchNorm, relu6, depthwise, BatchNorm, relu6, pooling, dense), its ONNX by Keras's own export (tf2onnx), and
four files broken by editing that graph; then runs `python -m harness diff` on each (and on the converter PORTs),
all in this one process (a process imports TensorFlow, torch and onnxruntime once): each run's exit code and output
in FOLDER/runs.json, its verdicts in FOLDER/RUN.json. Run in a Python with tf2onnx, onnxruntime and onnx2torch
(the engines' onnx venv): ``python tests/models/onnx_files.py FOLDER``."""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np

SIZE = 32


def build(folder: Path) -> None:
    import keras
    import onnx
    from onnx import helper, numpy_helper

    layers = keras.layers
    inp = keras.Input((SIZE, SIZE, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="conv")(inp)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(6.0, name="relu")(x)
    x = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = layers.BatchNormalization(name="dw_bn")(x)
    x = layers.ReLU(6.0, name="dw_relu")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(5, activation="softmax", name="dense")(x)
    model = keras.Model(inp, x)
    # Drawn weights and statistics (a fresh model's zeros and ones hide a bias or an eps bug; tf2onnx drops them).
    rng = np.random.default_rng(7)
    for v in model.weights:
        name = v.path.rsplit("/", 1)[-1]
        shape = tuple(v.shape)
        value = {"gamma": rng.uniform(0.5, 2.0, shape), "moving_variance": rng.uniform(0.05, 2.0, shape),
                 "moving_mean": rng.normal(0.0, 0.5, shape), "beta": rng.normal(0.0, 0.25, shape),
                 "bias": rng.normal(0.0, 0.25, shape)}.get(name, rng.normal(0.0, 0.5, shape))
        v.assign(np.asarray(value, np.float32))
    model.save(folder / "small.keras")
    path = folder / "small.onnx"
    model.export(str(path), format="onnx", verbose=False,
                 input_signature=[keras.InputSpec(shape=(1, SIZE, SIZE, 3), dtype="float32", name="x")])
    good = onnx.load(str(path))
    convs = [n for n in good.graph.node if n.op_type == "Conv"]

    def save(model: onnx.ModelProto, name: str) -> None:
        onnx.checker.check_model(model)
        onnx.save(model, str(folder / name))

    # 1. The stride-2 conv padded symmetrically (a port's padding=1): TensorFlow's 'same' pads only the end here.
    broken = onnx.ModelProto()
    broken.CopyFrom(good)
    conv = next(n for n in broken.graph.node if n.name == convs[0].name)
    pads = next(a for a in conv.attribute if a.name == "pads")
    assert list(pads.ints) == [0, 0, 1, 1], list(pads.ints)
    pads.ints[:] = [1, 1, 1, 1]
    save(broken, "pads_symmetric.onnx")
    # 2. The depthwise kernel's rows and columns swapped (its initializer transposed).
    broken = onnx.ModelProto()
    broken.CopyFrom(good)
    w = next(t for t in broken.graph.initializer if t.name == convs[1].input[1])
    w.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(np.swapaxes(numpy_helper.to_array(w), 2, 3)), w.name))
    save(broken, "kernel_transposed.onnx")
    # 3. The depthwise conv's BatchNorm (tf2onnx writes it as Mul then Add) as a BatchNormalization node with
    # torch's default epsilon 1e-5 instead of Keras's 1e-3, as torch.onnx would export a port that kept it.
    broken = onnx.ModelProto()
    broken.CopyFrom(good)
    mul = next(n for n in broken.graph.node if n.op_type == "Mul" and convs[1].output[0] in n.input)
    add = next(n for n in broken.graph.node if n.op_type == "Add" and mul.output[0] in n.input)
    weights = {v.path.rsplit("/", 1)[-1]: np.asarray(v.numpy()) for v in model.get_layer("dw_bn").weights}
    names = []
    for key in ("gamma", "beta", "moving_mean", "moving_variance"):
        names.append(f"dw_bn_{key}")
        broken.graph.initializer.append(numpy_helper.from_array(weights[key], names[-1]))
    bn = helper.make_node("BatchNormalization", [mul.input[0], *names], [add.output[0]], name="dw_bn_node",
                          epsilon=1e-5)
    nodes = list(broken.graph.node)
    at = nodes.index(mul)
    nodes = [n for n in nodes if n is not mul and n is not add]
    nodes.insert(at, bn)
    del broken.graph.node[:]
    broken.graph.node.extend(nodes)
    save(broken, "bn_eps.onnx")
    # 4. The first relu6 (Clip 0..6) a Relu: Keras's ReLU(6.0) unclipped.
    broken = onnx.ModelProto()
    broken.CopyFrom(good)
    clip = next(n for n in broken.graph.node if n.op_type == "Clip")
    clip.op_type = "Relu"
    del clip.input[1:]
    save(broken, "relu_not_relu6.onnx")
    # 5. Not broken: a second graph input that no node reads (as Keras's export of EfficientNetB0 leaves).
    extra = onnx.ModelProto()
    extra.CopyFrom(good)
    extra.graph.input.append(helper.make_tensor_value_info("unread", onnx.TensorProto.FLOAT, [1, 1, 1, 3]))
    save(extra, "unread_input.onnx")


def build_sigmoid(folder: Path) -> None:
    """A sigmoid of inputs down to about -30 (the seeded normal input, times 10), and its ONNX export: onnxruntime's
    CPU Sigmoid is accurate to about 2^-24 absolute, not relative, so its small outputs are off (x < -10: relative
    error above 1e-3; x < -17: above 100%)."""
    import keras

    inp = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(10.0, name="scale")(inp)
    x = keras.layers.Activation("sigmoid", name="sig")(x)
    model = keras.Model(inp, x)
    model.save(folder / "sig.keras")
    model.export(str(folder / "sig.onnx"), format="onnx", verbose=False,
                 input_signature=[keras.InputSpec(shape=(1, 8, 8, 3), dtype="float32", name="x")])


# run -> MODEL, PORT and extra arguments of `python -m harness diff MODEL PORT`
RUNS = {
    "small": ["small.keras", "small.onnx"],
    "pads_symmetric": ["small.keras", "pads_symmetric.onnx"],
    "kernel_transposed": ["small.keras", "kernel_transposed.onnx"],
    "bn_eps": ["small.keras", "bn_eps.onnx"],
    "relu_not_relu6": ["small.keras", "relu_not_relu6.onnx"],
    "unread_input": ["small.keras", "unread_input.onnx"],
    "tf2onnx": ["small.keras", "converter:tf2onnx", "--save-onnx", "saved_tf2onnx.onnx"],
    "onnx2torch": ["small.keras", "converter:onnx2torch"],
    "sigmoid": ["sig.keras", "sig.onnx"],
    "sigmoid_onnx2torch": ["sig.keras", "converter:onnx2torch"],
}


def diff_all(folder: Path) -> None:
    from harness.frontends import cli

    runs = {}
    for name, (model, port, *extra) in RUNS.items():
        port = str(folder / port) if port.endswith(".onnx") else port
        extra = [str(folder / e) if e.endswith(".onnx") else e for e in extra]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = cli.main(["diff", str(folder / model), port, "--json", str(folder / f"{name}.json"), *extra])
        runs[name] = {"rc": rc, "stdout": out.getvalue()}
    (folder / "runs.json").write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    build(out)
    build_sigmoid(out)
    diff_all(out)
    print("written:", " ".join(sorted(p.name for p in out.iterdir())))
