"""OpenVINO: the Keras layer (TensorFlow backend) exported by Keras to OpenVINO IR (model.export, format
"openvino": openvino.convert_model of the layer's tf.function), compiled for the CPU and run.

OpenVINO's CPU plugin picks its own inference precision: on CPUs with AVX512_BF16 or AMX it computes float32
(and float64) models in bfloat16 unless told otherwise. Both are what users get, so both are engines: `openvino`
(OpenVINO's default; a case may set `engine_options: {openvino: {precision: f32}}`) and `openvino-f32`
(INFERENCE_PRECISION_HINT=f32). Runs in the "onnx" venv (engines/onnx.txt), next to tf2onnx and onnxruntime.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import EngineRejected
from . import export_cache
from .base import CANONICAL_LAYOUT, Engine, EngineOption, EngineOutput, Isolation, Request
from .keras_graph import first_line, import_keras_on, keras_facts, keras_model, versions
from .stopwatch import third_party

# OpenVINO's names for the precisions its CPU plugin can be asked to infer in.
PRECISIONS = ("f32", "bf16", "f16")
_DTYPES = {"f32": "float32", "f16": "float16", "f64": "float64", "bf16": "bfloat16"}


class OpenVinoEngine(Engine):
    name = "openvino"
    weight_layout = CANONICAL_LAYOUT
    framework = "openvino"
    isolation = Isolation(venv="onnx")
    inherits = "keras"
    options: ClassVar[dict[str, EngineOption]] = {
        "precision": EngineOption(str, "the CPU plugin's INFERENCE_PRECISION_HINT: f32, bf16 or f16 (default: "
                                       "OpenVINO's own, bf16 on CPUs with AVX512_BF16 or AMX)"),
    }
    default_precision: str | None = None   # None: OpenVINO's default for this CPU

    def __init__(self) -> None:
        import openvino

        import_keras_on("tensorflow")
        self.ov = openvino
        self.core = openvino.Core()

    def run(self, request: Request) -> EngineOutput:
        precision = request.options.get("precision", self.default_precision)
        if precision is not None and precision not in PRECISIONS:
            raise ValueError(f"{self.name}: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        facts = keras_facts(request)
        model = keras_model(request)
        layer = model.layers[-1]
        config = {"INFERENCE_PRECISION_HINT": precision} if precision else {}
        try:
            path = export_cache.exported(model, request, "openvino", "model.xml")
        except Exception as exc:   # the TensorFlow frontend's refusal: an op (or a dtype) it cannot convert
            if "OpConversionFailure" not in type(exc).__name__:
                raise
            raise EngineRejected(f"OpenVINO {versions('openvino')['openvino']} refused to convert "
                                 f"{request.layer} ({request.dtype}): {_frontend_message(exc)}", facts) from exc
        with third_party():
            compiled = self.core.compile_model(path, "CPU", config)
        x = request.inputs.x
        notes: list[str] = []
        want = _DTYPES.get(compiled.inputs[0].get_element_type().to_string(), str(x.dtype))
        if want != str(x.dtype):
            notes.append(f"the OpenVINO model takes {want} where the layer takes {x.dtype}: the input was fed as "
                         f"{want}")
            x = x.astype(want)
        inferred = _type_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
        notes.append(f"OpenVINO CPU inference precision: {inferred} ("
                     + (f"asked for {precision}" if precision else "OpenVINO's default here") + ")")
        with third_party():
            y = compiled([np.ascontiguousarray(x)])[compiled.outputs[0]]
        return EngineOutput(y=np.ascontiguousarray(y), params=int(layer.count_params()),
                            weight_shapes={w.name: tuple(int(d) for d in w.shape) for w in layer.weights},
                            notes=notes, facts=facts)

    @classmethod
    def environment(cls) -> dict[str, dict[str, Any]]:
        info: dict[str, Any] = {**versions("keras", "tensorflow-cpu", "openvino"),
                                "precision": cls.default_precision or "default"}
        try:
            import sys

            ov = sys.modules.get("openvino")
            if ov is not None and hasattr(ov, "Core"):
                core = ov.Core()
                info.update(cpu_default_precision=_type_name(core.get_property("CPU", "INFERENCE_PRECISION_HINT")),
                            cpu_capabilities=list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")))
        except Exception as exc:  # noqa: BLE001 - a query an OpenVINO version lacks is recorded, never a crash
            info["query_error"] = first_line(exc)
        return {cls.name: info}


def _type_name(value: Any) -> str:
    """An OpenVINO element type as OpenVINO names it in its settings (bf16, f32), whatever the binding returns."""
    to_string = getattr(value, "to_string", None)
    return str(to_string()) if callable(to_string) else str(value)


def _frontend_message(exc: BaseException) -> str:
    """The frontend's summary lines ("No conversion rule found for operations: ...") without the C++ check's
    source location."""
    text = str(exc)
    summary = [line.strip(" -") for line in text.splitlines() if line.strip().startswith("--")]
    return "; ".join(summary) if summary else " ".join(text.split())[:300]


class OpenVinoF32Engine(OpenVinoEngine):
    """OpenVINO with INFERENCE_PRECISION_HINT=f32: float32 computed in float32 on every CPU."""

    name = "openvino-f32"
    options: ClassVar[dict[str, EngineOption]] = {}
    default_precision = "f32"
