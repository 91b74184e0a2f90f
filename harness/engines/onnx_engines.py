"""Engines through ONNX: the Keras layer exported by Keras itself (tf2onnx) and run in onnxruntime or converted to
PyTorch by onnx2torch, and the harness's torch port exported by torch.onnx and run in onnxruntime.

All run in the "onnx" venv (engines/onnx.txt, `make engine-onnx`): tf2onnx, onnxruntime, onnx2torch, OpenVINO
next to the harness's own pins (tensorflow-cpu, keras, torch). onnxruntime runs on its CPU execution provider
with its default graph optimisations, as a user gets it.
"""
from __future__ import annotations

import os
import sys
import tempfile
from typing import Any, ClassVar

import numpy as np

from ..errors import EngineRejected, EngineSkip
from ..tensors.values import numpy_dtype
from . import export_cache, port_variants, torchvision_standin
from .base import CANONICAL_LAYOUT, Engine, EngineOption, EngineOutput, Isolation, Request
from .keras_graph import (
    export_torch_onnx,
    first_line,
    import_keras_on,
    keras_facts,
    keras_model,
    torch_port_and_input,
    versions,
)
from .stopwatch import third_party

ONNX_VENV = "onnx"
ORT_NO_FLOAT64 = ("onnxruntime has no float64 (tensor(double)) Conv kernel on its CPU execution provider "
                  "(NOT_IMPLEMENTED: Could not find an implementation for Conv)")
ORT_NO_BFLOAT16 = ("onnxruntime refuses a bfloat16 convolution graph on load: Conv and ConvTranspose take no "
                   "tensor(bfloat16) input at the opset the exporters write (INVALID_GRAPH: Type 'tensor(bfloat16)' of "
                   "input parameter ... of operator (Conv) is invalid)")
# ONNX elem types onnxruntime reports as 'tensor(...)' -> NumPy dtype names
_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(bfloat16)": "bfloat16"}


class OnnxGraphInvalid(RuntimeError):
    """A converter produced an ONNX graph that onnxruntime cannot load (its checker calls it invalid)."""


# What onnxruntime says where an op's shape inference refuses an attribute value at load ("[ShapeInferenceError]
# Attribute pads must not contain negative values"): a refusal of the configuration, not a malformed graph.
_SHAPE_CHECK = "[ShapeInferenceError]"
# How torch words a refusal of an argument its kernels do not take ("negative padding is not supported"), as opposed
# to a crash of the module a converter built.
_TORCH_REFUSES = "is not supported"


def _ort_session(model: bytes | str, facts: dict[str, Any] | None = None) -> Any:
    import onnxruntime as ort

    try:
        with third_party():
            return ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    except Exception as exc:   # onnxruntime raises its own classes per status code
        kind = type(exc).__name__
        if kind == "NotImplemented":   # a runtime without that kernel: a limit of the runtime, not a wrong answer
            raise EngineSkip(f"onnxruntime {ort.__version__} (CPU) has no kernel for this graph: "
                             f"{_ort_message(exc)}") from exc
        if kind in ("InvalidGraph", "InvalidArgument"):
            raise OnnxGraphInvalid(f"the exported ONNX graph is invalid for onnxruntime: {_ort_message(exc)}") from exc
        if _SHAPE_CHECK in str(exc):
            # An op's shape inference refuses an attribute value of this configuration (a transposed conv's
            # negative pads): the runtime's own argument check, as a framework refuses at call.
            raise EngineRejected(f"onnxruntime {ort.__version__} refused the exported graph at load: "
                                 f"{_ort_message(exc)}", facts) from exc
        raise


def _ort_message(exc: BaseException) -> str:
    """onnxruntime's sentence without the temporary path and the graph's node names it names (so that equal causes
    read equal)."""
    import re

    return re.sub(r"Load model from \S+ failed:\s*|Node \([^()]*\) ", "", first_line(exc))


def ort_run(model: bytes | str, x: np.ndarray, facts: dict[str, Any] | None = None) -> tuple[np.ndarray, list[str]]:
    """Run an ONNX model with one input in onnxruntime (CPU). Where the graph's input dtype differs from x's (a
    converter changed it), x is fed in the graph's dtype and a note says so; the output is as the graph gives it.
    ``facts``: the run's, carried by a refusal at load."""
    notes: list[str] = []
    session = _ort_session(model, facts)
    (inp,) = session.get_inputs()
    want = _ORT_TYPES.get(inp.type)
    if want is None:
        raise RuntimeError(f"the ONNX graph's input has type {inp.type}, which the harness cannot feed")
    if want != str(x.dtype):
        notes.append(f"the ONNX graph takes {want} where the layer takes {x.dtype}: the converter changed the "
                     f"dtype; the input was fed as {want}")
        x = x.astype(np.float32).astype(want) if str(x.dtype) == "bfloat16" else x.astype(want)
    with third_party():
        (y,) = session.run(None, {inp.name: np.ascontiguousarray(x)})
    return np.asarray(y), notes


def keras_onnx(request: Request) -> tuple[bytes, Any]:
    """The request's Keras layer (TensorFlow backend) exported by Keras to ONNX (model.export, format "onnx":
    tf2onnx.convert.from_function) and the Keras model. Exported once for keras-onnx and onnx2torch, which read the
    same ONNX (export_cache)."""
    model = keras_model(request)
    try:
        path = export_cache.exported(model, request, "onnx", "model.onnx")
    except ValueError as exc:   # tf2onnx's refusals (an op it cannot convert) are ValueErrors
        raise EngineRejected(f"Keras/tf2onnx refused to export {request.layer} to ONNX: {first_line(exc)}",
                             keras_facts(request)) from exc
    with open(path, "rb") as fh:
        return fh.read(), model


def _ops(model: bytes | str) -> list[str]:
    """The op types of an ONNX model (bytes, or a file whose external data is not read)."""
    import onnx

    graph = (onnx.load_from_string(model) if isinstance(model, bytes) else
             onnx.load(model, load_external_data=False)).graph
    return [node.op_type for node in graph.node]


def _keras_shapes(model: Any) -> tuple[int, dict[str, tuple[int, ...]]]:
    layer = model.layers[-1]
    return int(layer.count_params()), {w.name: tuple(int(d) for d in w.shape) for w in layer.weights}


class KerasOnnxEngine(Engine):
    """Keras layer (TensorFlow backend) -> model.export(format="onnx") (tf2onnx) -> onnxruntime on CPU."""

    name = "keras-onnx"
    weight_layout = CANONICAL_LAYOUT   # the Keras layer's weights, as it was exported
    framework = "onnxruntime"
    isolation = Isolation(venv=ONNX_VENV)
    inherits = "keras"
    dtype_limits: ClassVar[dict[str, str]] = {"float64": ORT_NO_FLOAT64, "bfloat16": ORT_NO_BFLOAT16}

    def __init__(self) -> None:
        import onnxruntime  # noqa: F401 - fail here (an error of the first item) if the venv lacks it

        import_keras_on("tensorflow")

    def run(self, request: Request) -> EngineOutput:
        model_bytes, model = keras_onnx(request)
        y, notes = ort_run(model_bytes, request.inputs.x, keras_facts(request))
        params, shapes = _keras_shapes(model)
        notes.append("ONNX ops: " + " ".join(_ops(model_bytes)))
        return EngineOutput(y=np.ascontiguousarray(y), params=params, weight_shapes=shapes, notes=notes,
                            facts=keras_facts(request))

    @classmethod
    def environment(cls) -> dict[str, dict[str, Any]]:
        return {cls.name: versions("keras", "tensorflow-cpu", "tf2onnx", "onnx", "onnxruntime")}


class TorchOnnxEngine(Engine):
    """The harness's torch port (harness.torch_port.from_keras) -> torch.onnx.export (its defaults: the dynamo
    exporter) -> onnxruntime on CPU. The input is moved to channels-first outside the graph, as the torch engine
    does."""

    name = "torch-onnx"
    weight_layout = "torch"
    framework = "onnxruntime"
    isolation = Isolation(venv=ONNX_VENV)
    inherits = "torch"   # built from the torch port: the port's refusals (and torch's known bugs) are its own
    dtype_limits: ClassVar[dict[str, str]] = {"float64": ORT_NO_FLOAT64, "bfloat16": ORT_NO_BFLOAT16}
    options: ClassVar[dict[str, EngineOption]] = port_variants.OPTIONS
    exporter: ClassVar[str] = "dynamo"   # torch.onnx.export's exporter (keras_graph.EXPORTERS)

    def __init__(self) -> None:
        import onnxruntime  # noqa: F401 - fail here (an error of the first item) if the venv lacks it
        import torch


        self.torch = torch

    def run(self, request: Request) -> EngineOutput:
        torch = self.torch
        g, x = request.geometry, request.inputs.x
        module, xt = torch_port_and_input(torch, request)
        styled = port_variants.restyle(module, xt.shape[2:], **port_variants.chosen(request.options, {}))
        x_first = x if g.channels_first else np.moveaxis(x, -1, 1)   # what the exported graph takes
        with tempfile.TemporaryDirectory(prefix="harness-onnx-") as tmp:
            path = os.path.join(tmp, "model.onnx")
            export_torch_onnx(torch, module, xt, path, request.layer, self.exporter)
            # From the file: the exporter may keep the weights next to it (model.onnx.data).
            y, notes = ort_run(path, x_first)   # the graph's input is channels-first
            ops = _ops(path)
        if not g.channels_first:
            y = np.moveaxis(y, 1, -1)
        notes += [*styled, f"ONNX ops ({self.exporter} exporter): " + " ".join(ops)]
        state = module.state_dict()
        return EngineOutput(y=np.ascontiguousarray(y), params=int(sum(p.numel() for p in module.parameters())),
                            weight_shapes={k: tuple(v.shape) for k, v in state.items()}, notes=notes)

    @classmethod
    def environment(cls) -> dict[str, dict[str, Any]]:
        return {cls.name: {**versions("torch", "onnxscript", "onnx", "onnxruntime"), "exporter": cls.exporter}}


class TorchOnnxLegacyEngine(TorchOnnxEngine):
    """torch-onnx fed by the legacy TorchScript exporter (torch.onnx.export(..., dynamo=False)), as most tutorials
    and scripts call it: F.pad becomes a Pad whose pads are computed in the graph, relu6 a Clip."""

    name = "torch-onnx-legacy"
    exporter = "legacy"
    # The same runtime on the same port: torch-onnx's known behaviour holds here where its condition does.
    inherits = "torch-onnx"


def _import_onnx2torch() -> Any:
    """onnx2torch imports torchvision (for its NMS and RoiAlign converters only); where PyPI's CUDA build of it
    cannot load next to the CPU torch, a stand-in takes its place (harness/engines/torchvision_standin.py)."""
    torchvision_standin.install()
    import onnx2torch

    return onnx2torch


class Onnx2TorchEngine(Engine):
    """The ONNX that Keras exports (as keras-onnx) -> onnx2torch.convert -> a torch.fx module run in PyTorch."""

    name = "onnx2torch"
    weight_layout = CANONICAL_LAYOUT
    framework = "torch"
    isolation = Isolation(venv=ONNX_VENV)
    inherits = "keras"
    # onnx2torch turns every initializer into a tensor with torch.from_numpy, which takes no ml_dtypes.bfloat16
    # array ("can't convert np.ndarray of type ml_dtypes.bfloat16"): no bfloat16 graph converts.
    dtype_limits: ClassVar[dict[str, str]] = {
        "bfloat16": "onnx2torch cannot convert a bfloat16 ONNX graph: it reads each initializer with torch.from_numpy, "
                    "which refuses ml_dtypes.bfloat16 arrays (TypeError: can't convert np.ndarray of type "
                    "ml_dtypes.bfloat16)"}

    def __init__(self) -> None:
        import onnx
        import torch

        import_keras_on("tensorflow")
        self.torch, self.onnx, self.onnx2torch = torch, onnx, _import_onnx2torch()

    def run(self, request: Request) -> EngineOutput:
        torch = self.torch
        model_bytes, model = keras_onnx(request)
        onnx_model = self.onnx.load_from_string(model_bytes)
        try:
            with third_party():
                module = self.onnx2torch.convert(onnx_model).eval()
        except NotImplementedError as exc:   # onnx2torch's refusal: "Converter is not implemented (...)"
            raise EngineRejected(f"onnx2torch refused the ONNX of {request.layer}: {first_line(exc)}",
                                 keras_facts(request)) from exc
        notes: list[str] = ["ONNX ops: " + " ".join(node.op_type for node in onnx_model.graph.node)]
        x = request.inputs.x
        elem = onnx_model.graph.input[0].type.tensor_type.elem_type
        want = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}.get(elem, str(x.dtype))
        tdtype = getattr(torch, want)
        if want != str(x.dtype):
            notes.append(f"the ONNX graph takes {want} where the layer takes {x.dtype}: the converter changed the "
                         f"dtype; the input was fed as {want}")
        xt = torch.from_numpy(np.ascontiguousarray(x.astype(np.float32) if str(x.dtype) == "bfloat16" else x))
        try:
            with torch.no_grad(), third_party():
                yt = module(xt.to(tdtype))
        except RuntimeError as exc:   # torch's own argument checks ("negative padding is not supported")
            if _TORCH_REFUSES not in str(exc):
                raise
            raise EngineRejected(f"torch refused the module onnx2torch built from the ONNX of {request.layer}: "
                                 f"{first_line(exc)}", keras_facts(request)) from exc
        y = yt.float().numpy().astype(_bfloat16()) if yt.dtype == torch.bfloat16 else yt.numpy()
        params, shapes = _keras_shapes(model)
        return EngineOutput(y=np.ascontiguousarray(y), params=params, weight_shapes=shapes, notes=notes,
                            facts=keras_facts(request))

    @classmethod
    def environment(cls) -> dict[str, dict[str, Any]]:
        info = versions("keras", "tensorflow-cpu", "tf2onnx", "onnx", "onnx2torch", "torch", "torchvision")
        standin = getattr(sys.modules.get("torchvision"), "__harness_standin__", None)
        if standin:
            info["torchvision_standin"] = standin
        return {cls.name: info}


def _bfloat16() -> Any:
    return numpy_dtype("bfloat16")
