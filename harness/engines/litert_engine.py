"""LiteRT (TensorFlow Lite): the Keras layer (TensorFlow backend) exported by Keras (model.export, format "litert":
SavedModel -> tf.lite.TFLiteConverter, default options) and run in the LiteRT interpreter (ai-edge-litert) with
its default delegates (XNNPACK on CPU), as a user deploying the model gets it.

Runs in the "onnx" venv (engines/onnx.txt), next to the other converters of the Keras graph.
"""
from __future__ import annotations

import os
import re
import tempfile
from typing import Any, ClassVar

import numpy as np

from ..errors import EngineRejected, EngineSkip
from .base import CANONICAL_LAYOUT, Engine, EngineOutput, Isolation, Request
from .keras_graph import export, first_line, import_keras_on, keras_facts, keras_model, versions
from .stopwatch import third_party


class TFLiteConverterFailed(RuntimeError):
    """The TFLite converter failed its own checks on a valid graph (a converter bug, not a refusal)."""


class LiteRtEngine(Engine):
    name = "litert"
    weight_layout = CANONICAL_LAYOUT
    framework = "ai_edge_litert"
    isolation = Isolation(venv="onnx")
    inherits = "keras"
    # TFLite's builtin convolution kernels compute float32 (and quantised integers) only: for other dtypes Keras's
    # exporter lets the converter keep TensorFlow's own ops (SELECT_TF_OPS, "Flex"), which the LiteRT interpreter
    # cannot run (RuntimeError: "Select TensorFlow op(s) ... not supported by this interpreter").
    dtype_limits: ClassVar[dict[str, str]] = {
        dtype: f"LiteRT has no builtin {dtype} convolution kernel: the converter keeps TensorFlow's "
               "op (Flex), which the LiteRT interpreter cannot run"
        for dtype in ("float16", "bfloat16", "float64")}

    def __init__(self) -> None:
        from ai_edge_litert import interpreter

        import_keras_on("tensorflow")
        self.interpreter = interpreter

    def run(self, request: Request) -> EngineOutput:
        facts = keras_facts(request)
        model = keras_model(request)
        layer = model.layers[-1]
        with tempfile.TemporaryDirectory(prefix="harness-litert-") as tmp:
            path = os.path.join(tmp, "model.tflite")
            try:
                export(model, path, "litert", request)
            except Exception as exc:   # the converter raises ConverterError for refusals and crashes
                if "ConverterError" not in type(exc).__name__:
                    raise
                why = _converter_message(str(exc))
                if not any(sign in why for sign in _REFUSALS):   # its own verifier failed on a valid graph: a bug
                    raise TFLiteConverterFailed(f"the TFLite converter failed on {request.layer} ({request.dtype}): "
                                                f"{why}") from None
                raise EngineRejected(f"the TFLite converter refused {request.layer} ({request.dtype}): {why}",
                                     facts) from exc
            with third_party():
                interp = self.interpreter.Interpreter(model_path=path)
        try:
            with third_party():
                interp.allocate_tensors()
        except RuntimeError as exc:   # ops the converter kept from TensorFlow (no kernel here), or a kernel's refusal
            if "Select TensorFlow op" not in str(exc):
                if _PREPARE_FAILED not in str(exc):
                    raise
                # A builtin kernel's own checks of its tensors refuse the model (TRANSPOSE_CONV: the output shape
                # does not map back onto the input), as TensorFlow's kernel refuses the layer at call.
                raise EngineRejected(f"the LiteRT interpreter refused the TFLite model of {request.layer} "
                                     f"({request.dtype}): {' '.join(str(exc).split())[:300]}", facts) from exc
            flex = sorted(set(re.findall(r"\((Flex\w+)\)", str(exc))))
            raise EngineSkip(f"the TFLite model keeps TensorFlow ops ({', '.join(flex) or 'Flex'}) that the LiteRT "
                             "interpreter cannot run (no Flex delegate)") from exc
        (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
        x = request.inputs.x
        notes: list[str] = []
        want = np.dtype(inp["dtype"])
        if want != x.dtype:
            notes.append(f"the TFLite model takes {want} where the layer takes {x.dtype}: the input was fed as {want}")
            x = x.astype(want)
        with third_party():
            interp.set_tensor(inp["index"], np.ascontiguousarray(x))
            interp.invoke()
        y = np.array(interp.get_tensor(out["index"]))   # a copy: the interpreter owns its buffer
        ops = sorted({op["op_name"] for op in _ops(interp)})
        if ops:
            notes.append("TFLite ops: " + " ".join(ops))
        return EngineOutput(y=np.ascontiguousarray(y), params=int(layer.count_params()),
                            weight_shapes={w.name: tuple(int(d) for d in w.shape) for w in layer.weights},
                            notes=notes, facts=facts)

    @classmethod
    def environment(cls) -> dict[str, dict[str, Any]]:
        return {cls.name: versions("keras", "tensorflow-cpu", "ai-edge-litert")}


def _ops(interp: Any) -> list[dict[str, Any]]:
    try:
        return list(interp._get_ops_details())   # private, but the only listing of a model's ops it offers
    except Exception:  # noqa: BLE001 - the op list is a note, never a failure
        return []


# What the interpreter says where a builtin kernel's Prepare refuses the model's tensors ("tflite/kernels/
# transpose_conv.cc:315 computed_input_height != SizeOfDimension(input, 1) (2 != 3)Node number 0 (TRANSPOSE_CONV)
# failed to prepare.").
_PREPARE_FAILED = "failed to prepare"
# What the converter says when it cannot express an op (as opposed to failing its own checks on a valid graph).
_REFUSALS = ("neither a custom op nor a flex op", "failed to legalize", "is not supported", "not supported by")


def _converter_message(text: str) -> str:
    """The converter's own sentences ("'tf.Transpose' op x should be of the same rank with y ..."), without the
    MLIR locations (loc(callsite(fused[...]))) it prefixes them with."""
    picked = []
    for line in text.splitlines():
        line = line.strip()
        if "error:" in line:
            line = line.split("error:", 1)[1].strip()
        elif not line.startswith("loc("):
            continue
        if line.startswith("loc(") and "): " in line:
            line = line.rsplit("): ", 1)[1].strip()
        picked.append(line)
    return "; ".join(dict.fromkeys(p for p in picked if p))[:400] or first_line(Exception(text))
