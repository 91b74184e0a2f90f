"""PORT = a converter the harness has: the Keras model exported by Keras itself to ONNX (tf2onnx), then that file run
by onnxruntime (converter:tf2onnx) or turned into an nn.Module by onnx2torch (converter:onnx2torch)."""
from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

from ..engines import torchvision_standin

PREFIX = "converter:"
# converter name -> what the diff judges
CONVERTERS = {"tf2onnx": "the ONNX file Keras's export (tf2onnx) writes, run by onnxruntime",
              "onnx2torch": "that ONNX file converted to an nn.Module by onnx2torch, run in PyTorch"}
# The converters whose product is a torch module (captured by hooks); the others' is the ONNX file itself.
TO_MODULE = frozenset({"onnx2torch"})


def converter_of(port: str) -> str | None:
    """The converter a PORT names (``converter:NAME``), None for another PORT; ValueError for an unknown name."""
    if not port.startswith(PREFIX):
        return None
    name = port[len(PREFIX):]
    if name not in CONVERTERS:
        raise ValueError(f"PORT {port}: unknown converter {name!r}; the harness has "
                         + ", ".join(f"{PREFIX}{k} ({v})" for k, v in CONVERTERS.items()))
    return name


def keras_onnx(keras_model: Any, x: np.ndarray, port: str) -> bytes:
    """``keras_model`` exported by Keras to ONNX (model.export, format "onnx": tf2onnx), its input signature that
    of ``x``; tf2onnx's refusal is a usage error naming it."""
    import keras

    with tempfile.TemporaryDirectory(prefix="harness-diff-onnx-") as tmp:
        path = os.path.join(tmp, "model.onnx")
        try:
            keras_model.export(path, format="onnx", verbose=False,
                               input_signature=[keras.InputSpec(shape=tuple(x.shape), dtype=str(x.dtype), name="x")])
        except ValueError as exc:   # tf2onnx's refusals (an op it cannot convert) are ValueErrors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"PORT {port}: Keras/tf2onnx refused to export the model to ONNX: {first}") from None
        with open(path, "rb") as fh:
            return fh.read()


def onnx2torch_module(model: Any, port: str) -> Any:
    """onnx2torch's nn.Module of the ONNX model (torchvision's stand-in where the real one cannot load: onnx2torch
    imports it for its detection ops only)."""
    torchvision_standin.install()
    try:
        import onnx2torch
    except ImportError as exc:
        raise ValueError(f"PORT {port}: onnx2torch is not importable in this Python ({exc}): run `make engine-onnx`, "
                         "then `.engines/onnx/bin/python -m harness diff MODEL PORT ...`") from None
    try:
        return onnx2torch.convert(model).eval()
    except NotImplementedError as exc:   # onnx2torch's refusal: "Converter is not implemented (...)"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"PORT {port}: onnx2torch refused the exported ONNX: {first}") from None
