"""Keras 3 on the TensorFlow backend: the real layer, built, weights set with set_weights, called."""
from __future__ import annotations

import functools
import inspect
import os
import re
import sys
from typing import Any

import numpy as np

from ..errors import EngineRejected, EngineSkip
from ..keras_layer import build_keras_layer, import_keras, set_keras_weights
from ..known import facts as env
from .base import CANONICAL_LAYOUT, Engine, EngineOutput, Request, SequenceOutput, SequenceRequest
from .stopwatch import third_party

# TensorFlow's oneDNN kernels allocate from a pool (BFC) that keeps every byte it ever held: on the big worked example
# (20x64x64x1000 float32) about 700 MB stayed with TensorFlow after the call, beside the output, for the rest of
# the process (the torch engine ran on top of it). With the system allocator TensorFlow frees what it no longer
# holds; the values are the same (measured, bit for bit; an allocator does no arithmetic). Read when TensorFlow is
# imported, so set before; setdefault keeps a user's choice. KerasEngine.environment reports it.
ALLOCATOR_VARIABLE = "TF_ONEDNN_USE_SYSTEM_ALLOCATOR"


def _tensorflow_environment() -> None:
    os.environ.setdefault(ALLOCATOR_VARIABLE, "1")


def _import_keras():
    _tensorflow_environment()
    keras = import_keras()
    if keras.backend.backend() != "tensorflow":
        raise EngineSkip(f"keras runs on the {keras.backend.backend()!r} backend; this engine needs tensorflow "
                         "(set KERAS_BACKEND=tensorflow before keras is first imported)")
    return keras


# TensorFlow's names of a layout at any rank: channels last N[D][H]WC (NWC, NHWC, NDHWC), channels first
# NC[D][H]W (NCW, NCHW, NCDHW). A CPU kernel that refuses channels first names one of them ("The Conv2D op currently
# only supports the NHWC tensor format on the CPU. The op was given the format: NCHW"; "CPU implementation of
# Conv3D currently only supports the NHWC tensor format").
_LAYOUT_NAME = re.compile(r"\bN(?:[DHW]{1,3}C|C[DHW]{1,3})\b")


def _is_nchw_refusal(exc: Exception) -> bool:
    """TensorFlow refused a channels-first layout (of any rank)."""
    text = str(exc)
    return bool(_LAYOUT_NAME.search(text)) or ("channels_first" in text.lower() and "not supported" in text.lower())


@functools.cache
def _initializer_args(cls: Any) -> tuple[str, ...]:
    """A Keras layer class's ``*_initializer`` constructor arguments (none for anything but a class)."""
    if not isinstance(cls, type):
        return ()
    try:
        init = cls.__init__   # type: ignore[misc]  # a class here (checked above): its constructor's arguments
        return tuple(n for n in inspect.signature(init).parameters if n.endswith("_initializer"))
    except (TypeError, ValueError):
        return ()


class KerasEngine(Engine):
    name = "keras"
    weight_layout = CANONICAL_LAYOUT
    framework = "tensorflow"
    computes_gradients = True
    computes_sequences = True   # one functional model of the real layers, its outputs every layer's output

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
        # Every weight is set from the case right after the build (set_weights, names checked), so the layer's
        # random initialisers (a seed generator and a random draw per weight) would only be overwritten: the
        # weights the case does not name an initialiser for start at zeros (one fill op). The layer, its
        # argument checks, build, set_weights and call are Keras's own, as before.
        cheap = {name: "zeros" for name in _initializer_args(getattr(self.keras.layers, layer, None))
                 if name not in config}
        try:
            with third_party():
                obj = build_keras_layer(layer, {**config, **cheap}, dtype, input_shape)
        except ValueError as exc:  # Keras's own argument checks; a TypeError would be a harness bug: an error
            raise EngineRejected(f"Keras refused {layer}({_args(config)}): {type(exc).__name__}: {exc}",
                                 self._facts(config, len(input_shape))) from exc
        return obj

    def _call(self, obj, x: np.ndarray, weights: dict[str, np.ndarray], layer: str, config: dict,
              dy: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        """The layer's output, and with ``dy`` its gradients: GradientTape's vector-Jacobian product with dy
        (output_gradients, no loss to round) w.r.t. the input ("x") and each trainable weight by its name."""
        import tensorflow as tf

        try:
            with third_party():
                set_keras_weights(obj, weights)
        except ValueError as exc:  # the family's weight names disagree with Keras: a harness bug, never a skip
            raise RuntimeError(str(exc)) from exc
        try:
            with third_party():
                return self._forward(obj, x, layer, dy)
        except (tf.errors.OpError, ValueError) as exc:
            if _is_nchw_refusal(exc):
                raise
            raise EngineRejected(f"Keras/TensorFlow refused {layer}({_args(config)}) at call: "
                                 f"{type(exc).__name__}: {_op_message(exc)}", self._facts(config, x.ndim)) from exc

    @staticmethod
    def _forward(obj: Any, x: np.ndarray, layer: str, dy: np.ndarray | None
                 ) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        import tensorflow as tf

        if dy is None:
            # np.asarray reads the output tensor's own buffer (read-only); .numpy() would copy it: 328 MB more at
            # the peak of the big worked example.
            return np.asarray(obj(x)), None
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            yt = obj(xt)
        variables = list(obj.trainable_weights)
        grads = tape.gradient(yt, [xt, *variables], output_gradients=tf.constant(dy))
        missing = [v.name for v, gr in zip(variables, grads[1:]) if gr is None]
        if grads[0] is None or missing:
            raise RuntimeError(f"GradientTape returned no gradient for {missing or ['x']} of {layer}")
        return yt.numpy(), {"x": grads[0].numpy(), **{v.name: gr.numpy() for v, gr in zip(variables, grads[1:])}}

    def _facts(self, config: dict[str, Any], ndim: int) -> dict[str, Any]:
        """What decided this run: the kernel path, the data_format the layer ran in, XLA (grouped convs, and
        channels_first convs of 3 spatial axes)."""
        layer_format = config.get("data_format", "channels_last")
        return {"onednn": self.onednn, "keras_layer_format": layer_format,
                # Keras (keras/src/backend/tensorflow/nn.py, conv) compiles a conv with XLA when the kernel's input
                # depth differs from the channel count, and for a channels_first input of rank 5 (NCDHW).
                "keras_xla": int(config.get("groups", 1)) > 1 or (layer_format == "channels_first" and ndim == 5)}

    def run(self, request: Request) -> EngineOutput:
        import tensorflow as tf

        layer, config, inputs = request.layer, request.config, request.inputs
        if self.refusal:
            raise EngineSkip(self.refusal)
        dtype = str(inputs.x.dtype)
        obj = self._build(layer, config, dtype, inputs.x.shape)
        params = int(obj.count_params())
        shapes = {w.name: tuple(int(d) for d in w.shape) for w in obj.weights}
        notes: list[str] = []
        ran = config
        dy = request.grad_output
        try:
            y, gradients = self._call(obj, inputs.x, inputs.weights, layer, config, dy)
        except (tf.errors.OpError, ValueError) as exc:
            if config.get("data_format") != "channels_first" or not _is_nchw_refusal(exc):
                raise
            # TensorFlow's CPU kernels implement NHWC only; run the same layer channels_last and transpose
            # around it, as a user on CPU must. The weights' layout does not depend on data_format.
            notes.append(f"channels_first run as channels_last with transposes: TensorFlow refused the "
                         f"channels-first layout ({_op_message(exc)[:160]}) [tf-eigen-nchw-conv-refused]")
            last = ran = {**config, "data_format": "channels_last"}
            x_last = np.moveaxis(inputs.x, 1, -1)
            obj = self._build(layer, last, dtype, x_last.shape)
            y, gradients = self._call(obj, x_last, inputs.weights, layer, last,
                                      None if dy is None else np.moveaxis(dy, 1, -1))
            y = np.moveaxis(y, -1, 1)
            if gradients is not None:
                gradients["x"] = np.ascontiguousarray(np.moveaxis(gradients["x"], -1, 1))
        return EngineOutput(y=y, params=params, weight_shapes=shapes, notes=notes,
                            facts=self._facts(ran, inputs.x.ndim), gradients=gradients)

    def run_sequence(self, request: SequenceRequest) -> SequenceOutput:
        """One Keras functional model of the real layers (each built, its weights set), whose outputs are every
        layer's output: Keras computes each layer in the sequence's dtype on the previous layer's output."""

        if self.refusal:
            raise EngineSkip(self.refusal)
        with third_party():
            return self._sequence(request)

    def _sequence(self, request: SequenceRequest) -> SequenceOutput:
        import tensorflow as tf

        objs = []
        for i, step in enumerate(request.steps):
            try:
                objs.append(build_keras_layer(step.layer, step.config, request.dtype, step.input_shape, step.weights))
            except ValueError as exc:   # Keras's own argument checks
                raise EngineRejected(f"Keras refused layers[{i}] {step.layer}: {type(exc).__name__}: {exc}") from exc
        x_in = self.keras.Input(batch_shape=request.x.shape, dtype=request.dtype)
        h, outs = x_in, []
        for obj in objs:
            h = obj(h)
            outs.append(h)
        model = self.keras.Model(x_in, outs)
        try:
            ys = model(request.x, training=False)
        except (tf.errors.OpError, ValueError) as exc:
            raise EngineRejected(f"Keras/TensorFlow refused the sequence at call: {type(exc).__name__}: "
                                 f"{_op_message(exc)}") from exc
        return SequenceOutput(ys=[np.asarray(y) for y in ys], params=int(model.count_params()),
                              facts={"onednn": self.onednn, "keras_layer_format": "channels_last"})

    @classmethod
    def thread_count(cls) -> Any:
        tf = sys.modules.get("tensorflow")
        if tf is None or not hasattr(tf, "config"):
            return None
        threading = tf.config.threading
        return [threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads()]

    @classmethod
    def set_threads(cls, count: Any) -> None:
        """An int (intra and inter op) or [intra, inter]; 0 keeps TensorFlow's default."""
        intra, inter = (count, count) if isinstance(count, int) else count
        if not (intra or inter):
            return
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        _tensorflow_environment()
        import tensorflow as tf

        if intra:
            tf.config.threading.set_intra_op_parallelism_threads(intra)
        if inter:
            tf.config.threading.set_inter_op_parallelism_threads(inter)

    @classmethod
    def environment(cls) -> dict[str, dict[str, Any]]:
        """Versions from metadata; runtime state only where this process imported TensorFlow / Keras."""
        tf_info: dict[str, Any] = {"version": env.version("tensorflow"), "loaded": False,
                                   "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
                                   ALLOCATOR_VARIABLE: os.environ.get(ALLOCATOR_VARIABLE)}
        tf = sys.modules.get("tensorflow")
        if tf is not None and hasattr(tf, "config"):
            tf_info.update(
                loaded=True, version=getattr(tf, "__version__", tf_info["version"]),
                onednn_enabled=env.onednn(), onednn_requested=os.environ.get(env.REQUEST_VARIABLE),
                intra_op_threads=env.attempt(tf.config.threading.get_intra_op_parallelism_threads),
                inter_op_threads=env.attempt(tf.config.threading.get_inter_op_parallelism_threads),
                gpus=env.attempt(lambda: [d.name for d in tf.config.list_physical_devices("GPU")]),
                tf32_enabled=env.attempt(tf.config.experimental.tensor_float_32_execution_enabled))
        keras_info: dict[str, Any] = {"version": env.version("keras"), "loaded": False,
                                      "KERAS_BACKEND": os.environ.get("KERAS_BACKEND")}
        keras = sys.modules.get("keras")
        if keras is not None and hasattr(keras, "backend"):
            keras_info.update(loaded=True, version=getattr(keras, "__version__", keras_info["version"]),
                              backend=env.attempt(keras.backend.backend))
        return {"tensorflow": tf_info, "keras": keras_info}


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
