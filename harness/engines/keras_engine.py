"""Keras 3 on the TensorFlow backend: the real layer, built, weights set with set_weights, called."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import facts as env
from ..errors import EngineRejected, EngineSkip
from .base import EngineOutput, Inputs


def _import_keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise EngineSkip(f"keras runs on the {keras.backend.backend()!r} backend; this engine needs tensorflow "
                         "(set KERAS_BACKEND=tensorflow before keras is first imported)")
    return keras


def _is_nchw_refusal(exc: Exception) -> bool:
    text = str(exc)
    return "NHWC" in text or "channels_first" in text.lower() and "not supported" in text.lower()


class KerasEngine:
    name = "keras"

    def __init__(self) -> None:
        self.keras = _import_keras()
        import tensorflow as tf

        # Keras runs grouped convs through a tf.function per layer; every new case "retraces" by design.
        tf.get_logger().setLevel("ERROR")
        self.onednn = env.onednn()
        asked = env.requested_onednn()
        if asked is not None and self.onednn is not None and asked != self.onednn:
            # A run that asked for one kernel path must not be reported as having tested it on the other.
            self.refusal = (f"TensorFlow runs with oneDNN {'on' if self.onednn else 'off'}, but this run asked "
                            f"for {'on' if asked else 'off'} ({env.ONEDNN_VARIABLE} must be set before TensorFlow "
                            "is first imported in the process; some builds ignore it)")
        else:
            self.refusal = ""

    def _build(self, layer: str, config: dict[str, Any], dtype: str, input_shape: tuple[int, ...]):
        try:
            obj = getattr(self.keras.layers, layer)(**config, dtype=dtype)
            obj.build(input_shape)
        except ValueError as exc:  # Keras's own argument checks; a TypeError would be a harness bug: an error
            raise EngineRejected(f"Keras refused {layer}({_args(config)}): {type(exc).__name__}: {exc}",
                                 self._facts(config)) from exc
        return obj

    def _call(self, obj, x: np.ndarray, weights: dict[str, np.ndarray], layer: str, config: dict) -> np.ndarray:
        import tensorflow as tf

        by_name = {w.name: w for w in obj.weights}
        missing = set(weights) ^ set(by_name)
        if missing:  # the layer database disagrees with Keras: a harness bug, never a quiet skip
            raise RuntimeError(f"Keras {layer} weights are {sorted(by_name)}, the harness gives {sorted(weights)}")
        obj.set_weights([weights[w.name] for w in obj.weights])
        try:
            return obj(x).numpy()
        except (tf.errors.OpError, ValueError) as exc:
            if _is_nchw_refusal(exc):
                raise
            raise EngineRejected(f"Keras/TensorFlow refused {layer}({_args(config)}) at call: "
                                 f"{type(exc).__name__}: {_op_message(exc)}", self._facts(config)) from exc

    def _facts(self, config: dict[str, Any]) -> dict[str, Any]:
        """What decided this run: the kernel path, the data_format the layer ran in, XLA (grouped convs)."""
        return {"onednn": self.onednn, "keras_layer_format": config.get("data_format", "channels_last"),
                # Keras compiles a conv with XLA when the kernel's input depth differs from the channel count.
                "keras_xla": int(config.get("groups", 1)) > 1}

    def run(self, layer: str, config: dict[str, Any], inputs: Inputs, options: dict[str, Any]) -> EngineOutput:
        import tensorflow as tf

        if self.refusal:
            raise EngineSkip(self.refusal)
        dtype = str(inputs.x.dtype)
        obj = self._build(layer, config, dtype, inputs.x.shape)
        params = int(obj.count_params())
        shapes = {w.name: tuple(int(d) for d in w.shape) for w in obj.weights}
        notes: list[str] = []
        ran = config
        try:
            y = self._call(obj, inputs.x, inputs.weights, layer, config)
        except (tf.errors.OpError, ValueError) as exc:
            if config.get("data_format") != "channels_first" or not _is_nchw_refusal(exc):
                raise
            # TensorFlow's CPU kernels implement NHWC only; run the same layer channels_last and transpose
            # around it, as a user on CPU must. The weights' layout does not depend on data_format.
            notes.append(f"channels_first run as channels_last with transposes: TensorFlow refused NCHW "
                         f"({_op_message(exc)[:160]}) [tf-eigen-nchw-conv-refused]")
            last = ran = {**config, "data_format": "channels_last"}
            x_last = np.moveaxis(inputs.x, 1, -1)
            obj = self._build(layer, last, dtype, x_last.shape)
            y = np.moveaxis(self._call(obj, x_last, inputs.weights, layer, last), -1, 1)
        return EngineOutput(y=y, params=params, weight_shapes=shapes, notes=notes, facts=self._facts(ran))


def _args(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in config.items())


def _op_message(exc: Exception) -> str:
    """TensorFlow's own sentence, without Keras's 'Exception encountered when calling ...' wrapper."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # Keras colours the op name
    for line in text.splitlines():
        line = re.sub(r"\{\{function_node [^}]*\}\}", "", line).strip()
        if line and not line.startswith(("Exception encountered", "Arguments received")):
            return line
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
