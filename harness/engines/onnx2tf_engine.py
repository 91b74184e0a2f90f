"""onnx2tf: the harness's torch port exported by torch.onnx.export (its defaults; onnx2tf-legacy: dynamo=False) and
converted to TensorFlow by onnx2tf (its defaults: NCHW graphs become NHWC, input and output included), run as the
tf_keras model it returns.

onnx2tf pins NumPy 1.26 and TensorFlow 2.19: its own venv (engines/onnx2tf.txt, `make engine-onnx2tf`). For
inputs that look like images (4-D, 3 channels) onnx2tf fetches sample images from GitHub for its dummy inference;
the engine hands it generated ones instead (the harness runs offline).
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
from typing import Any, ClassVar

import numpy as np

from ..errors import EngineRejected
from . import port_variants
from .base import Engine, EngineOption, EngineOutput, Isolation, Request
from .keras_graph import export_torch_onnx, run_converted, torch_port_and_input, versions
from .stopwatch import third_party


class Onnx2TfEngine(Engine):
    name = "onnx2tf"
    weight_layout = "tensorflow"   # the converted graph's own constants
    framework = "tensorflow"
    isolation = Isolation(env=(("TF_CPP_MIN_LOG_LEVEL", "2"),), venv="onnx2tf")
    inherits = "torch"   # converts the torch port: the port's refusals (and torch's known bugs) are inherited
    dtype_limits: ClassVar[dict[str, str]] = {
        "bfloat16": "onnx2tf cannot convert a bfloat16 ONNX graph: it makes the graph's bfloat16 input a quint16 "
                    "tensor, which TensorFlow's convolution refuses next to bfloat16 weights (TypeError: ... has type "
                    "quint16 that does not match type bfloat16 of argument 'filter')"}
    options: ClassVar[dict[str, EngineOption]] = port_variants.OPTIONS
    exporter: ClassVar[str] = "dynamo"   # torch.onnx.export's exporter that feeds onnx2tf (keras_graph.EXPORTERS)

    def __init__(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import importlib

        import onnx2tf
        import torch


        self.torch, self.onnx2tf = torch, onnx2tf
        # For a 4-D input with 3 channels onnx2tf downloads sample images from GitHub to run its dummy inference
        # on (it checks its layout decisions with them); offline, it gets uniform [0, 1) images of that shape.
        patched: Any = importlib.import_module("onnx2tf.onnx2tf")
        patched.download_test_image_data = _offline_test_images

    def run(self, request: Request) -> EngineOutput:
        torch = self.torch
        g, x = request.geometry, request.inputs.x
        module, xt = torch_port_and_input(torch, request)
        styled = port_variants.restyle(module, xt.shape[2:], **port_variants.chosen(request.options, {}))
        x_first = x if g.channels_first else np.moveaxis(x, -1, 1)   # what the exported graph takes
        log = io.StringIO()
        with tempfile.TemporaryDirectory(prefix="harness-onnx2tf-") as tmp:
            path = os.path.join(tmp, "model.onnx")
            export_torch_onnx(torch, module, xt, path, request.layer, self.exporter)
            try:
                with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), third_party():
                    model = self.onnx2tf.convert(input_onnx_file_path=path,
                                                 output_folder_path=os.path.join(tmp, "tf"),
                                                 disable_model_save=True, non_verbose=True)
            except SystemExit as exc:   # onnx2tf reports a failed conversion by exiting
                raise RuntimeError(f"onnx2tf exited ({exc.code}) converting {request.layer}: "
                                   f"{_last_error(log.getvalue())}") from None
            except Exception as exc:
                op = _failed_op(log.getvalue())
                if op is None:   # not onnx2tf's own report of an op it could not convert: a crash
                    raise
                # onnx2tf names the ONNX op whose conversion raised ("onnx_op_name: /1/Add") and re-raises: the
                # converter's refusal of that op, with TensorFlow's (or tf_keras's) reason.
                raise EngineRejected(f"onnx2tf {versions('onnx2tf')['onnx2tf']} could not convert {op} in the "
                                     f"{self.exporter} exporter's ONNX of {request.layer}: {type(exc).__name__}: "
                                     f"{' '.join(str(exc).split())[:300]}") from exc
        notes: list[str] = [*styled]
        # onnx2tf turns the NCHW graph into NHWC, its input and output included.
        y = run_converted(model, np.moveaxis(x_first, 1, -1), str(x.dtype), notes)
        if g.channels_first and y.ndim == x.ndim:
            y = np.moveaxis(y, -1, 1)
        notes.append("TF layers: " + " ".join(sorted({type(layer).__name__ for layer in model.layers})))
        return EngineOutput(y=np.ascontiguousarray(y), params=int(sum(p.numel() for p in module.parameters())),
                            weight_shapes={k: tuple(v.shape) for k, v in module.state_dict().items()}, notes=notes)

    @classmethod
    def environment(cls) -> dict[str, dict[str, Any]]:
        return {cls.name: {**versions("onnx2tf", "torch", "onnxscript", "onnx", "tensorflow", "tf_keras", "onnxsim"),
                           "exporter": cls.exporter}}


class Onnx2TfLegacyEngine(Onnx2TfEngine):
    """onnx2tf fed by the legacy TorchScript exporter (torch.onnx.export(..., dynamo=False)), as most tutorials and
    scripts call it."""

    name = "onnx2tf-legacy"
    exporter = "legacy"
    # The same converter on the same port: onnx2tf's known behaviour (float16 built as float32, ...) holds here
    # where its condition does; a dynamo-only one that does not hold is a pass with a note, never a strict XPASS.
    inherits = "onnx2tf"


def _offline_test_images() -> np.ndarray:
    """What onnx2tf's download_test_image_data returns (20 images 128x128x3, float32 in [0, 1]), made here."""
    return np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)


def _failed_op(log: str) -> str | None:
    """The ONNX op onnx2tf's log names as the one whose conversion failed ("onnx_op_name: /1/Add" -> "/1/Add"),
    None where it names none."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", log)
    found = re.search(r"onnx_op_name: (\S+)", text)
    return found.group(1) if found else None


def _last_error(log: str) -> str:
    import re

    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in log.splitlines()]
    errors = [ln for ln in lines if "ERROR" in ln or "Error" in ln]
    return " | ".join(errors[-3:])[:400] if errors else (lines[-1][:300] if lines else "no message")
