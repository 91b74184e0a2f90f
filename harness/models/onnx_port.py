"""PORT = an ONNX file run by onnxruntime: one run with every node's output kept, each node presented as the torch.nn
module it is equivalent to (harness.models.onnx_modules), so that the model diff maps, checks and fixes it as a
port's module while every verdict is onnxruntime's computation."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import streams
from .capture import TorchCall
from .onnx_modules import Runtime
from .onnx_present import Presenter

MISSING = ("onnxruntime and onnx are not importable in this Python ({why}): run `make engine-onnx`, then "
           "`.engines/onnx/bin/python -m harness diff MODEL PORT ...`")


def require_onnx(port: str) -> None:
    """A usage error (ValueError, one line) where onnx or onnxruntime cannot be imported."""
    try:
        import onnx  # noqa: F401 - importing them is the test
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ValueError(f"PORT {port}: " + MISSING.format(why=f"{type(exc).__name__}: {exc}")) from None


@dataclass
class OnnxCapture:
    """An ONNX file's run as the diff takes a port's: the presented calls, the graph's output, the nodes presented
    as no module (node, op, why) and the layout the graph's input was fed in."""

    calls: list[TorchCall]
    output: np.ndarray
    unlisted: list[tuple[str, str, str]] = field(default_factory=list)
    layout: str = "channels_first"
    notes: list[str] = field(default_factory=list)    # what the run tells beyond the verdicts, one line each


def load(source: str | bytes, port: str) -> Any:
    import onnx

    try:
        return onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(source)
    except Exception as exc:   # noqa: BLE001 -- protobuf's DecodeError, OSError: the file is not ONNX, one line
        raise ValueError(f"PORT {port}: not a readable ONNX model ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def graph_input(model: Any, port: str) -> Any:
    """The graph's one input (initializers listed as inputs by old exporters left out); ValueError for several."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ValueError(f"PORT {port}: the ONNX graph has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}):"
                         " the diff feeds one image (an exporter that made a layer's weights inputs, as Keras's "
                         "export does with a Normalization layer's mean and variance, needs them made initializers)")
    return inputs[0]


def _dims(inp: Any) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]


def prepare(source: str | bytes, port: str) -> tuple[Any, list[str]]:
    """The ONNX model with the graph inputs no node reads taken out (TensorFlow's grappler folds a Normalization
    layer's mean and variance into constants, and Keras's export still lists them as inputs: EfficientNetB0's);
    and a note saying which, where any."""
    model = load(source, port)
    read = {name for node in model.graph.node for name in node.input}
    outputs = {o.name for o in model.graph.output}
    unread = [i for i in model.graph.input if i.name not in read and i.name not in outputs]
    for i in unread:
        model.graph.input.remove(i)
    names = ", ".join(i.name for i in unread)
    return model, [f"the graph's inputs {names} are read by no node: left out (not fed)"] if unread else []


def graph_dims(model: Any, port: str) -> list[int | None]:
    """The static dims of the graph's one input (None where dynamic)."""
    return _dims(graph_input(model, port))


def input_layout(dims: list[int | None], x_shape: tuple[int, ...], requested: str | None, port: str) -> str:
    """The layout the graph takes the Keras input in, from its input's static dims (the batch left out); where both
    layouts fit (dynamic dims, or H = W = C) the one asked for (--torch-layout)."""
    shapes = {"channels_last": tuple(x_shape), "channels_first": streams.channels_first(np.empty(x_shape)).shape}
    fits = [name for name, shape in shapes.items()
            if len(dims) == len(shape) and all(d is None or d == s for d, s in zip(dims[1:], shape[1:]))]
    if not fits:
        raise ValueError(f"PORT {port}: the ONNX graph's input {dims} takes neither the Keras input "
                         f"{list(shapes['channels_last'])} (channels_last) nor {list(shapes['channels_first'])} "
                         "(channels_first)")
    if len(fits) == 1:
        return fits[0]
    if requested is None:
        raise ValueError(f"PORT {port}: the ONNX graph's input {dims} fits the Keras input in both layouts: give "
                         "--torch-layout channels_first|channels_last")
    return requested


def capture_onnx(source: str | bytes, x: np.ndarray, requested: str | None, port: str) -> OnnxCapture:
    """Run the ONNX graph once in onnxruntime on ``x`` (the Keras input, fed in the graph's layout) with every
    node's output kept, and present its nodes as module calls (graph order)."""
    import onnxruntime as ort
    from onnx import ValueInfoProto, numpy_helper

    model, notes = prepare(source, port)
    inp = graph_input(model, port)
    layout = input_layout(_dims(inp), tuple(x.shape), requested, port)
    feed = np.ascontiguousarray(streams.channels_first(x) if layout == "channels_first" else x)
    runtime = Runtime(next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13),
                      int(model.ir_version))
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    kept = type(model)()
    kept.CopyFrom(model)
    outputs = {o.name for o in kept.graph.output}
    names = [o.name for o in kept.graph.output]
    for node in kept.graph.node:
        for name in node.output:
            if name and name not in outputs:
                kept.graph.output.append(ValueInfoProto(name=name))
                outputs.add(name)
                names.append(name)
    options = ort.SessionOptions()
    options.log_severity_level = 3   # errors only: its warnings on the user's file (unused initializers) are noise
    try:
        session = ort.InferenceSession(kept.SerializeToString(), options, providers=["CPUExecutionProvider"])
        values.update(zip(names, session.run(None, {inp.name: feed})))
        # The file as it is, once more: with no output kept in between, onnxruntime may fuse nodes (a Conv with its
        # activation, a BatchNormalization into its Conv): a different computation from the one judged node by node.
        plain = session if len(names) == len(model.graph.output) else ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        as_is = np.asarray(plain.run(None, {inp.name: feed})[0])
    except Exception as exc:   # noqa: BLE001 -- onnxruntime's own classes per status code: one line
        raise ValueError(f"PORT {port}: onnxruntime cannot run the graph: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    dynamic = {inp.name}
    for node in model.graph.node:
        if any(name in dynamic for name in node.input):
            dynamic.update(name for name in node.output if name)
    presenter = Presenter(model, values, dynamic, runtime)
    presenter.run()
    output = np.asarray(values[model.graph.output[0].name])
    scale = float(np.max(np.abs(output), initial=0.0)) or 1.0
    gap = float(np.max(np.abs(as_is.astype(np.float64) - output), initial=0.0)) / scale
    note = (f"fed the graph's input {layout}; onnxruntime's run of the file as it is (free to fuse nodes) gives "
            + ("the same output as" if gap == 0 else f"an output off by {gap:.3g} of its scale from")
            + " its run with every node's output kept (the run the nodes are judged on)")
    return OnnxCapture(presenter.calls, output, presenter.unlisted, layout, [*notes, note])
