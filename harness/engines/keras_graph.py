"""What the converter engines share: the Keras layer of a request as a one-layer Keras model (its graph is what
tf2onnx, OpenVINO and the TFLite converter convert), the facts an engine built from that graph reports so that
Keras's known behaviour is inherited where it holds, and versions read from package metadata.

Nothing here imports a framework at import time; Keras (and TensorFlow) load on the first call.
"""
from __future__ import annotations

import re
from typing import Any

from ..errors import EngineRejected, EngineSkip
from ..keras_layer import build_keras_layer, import_keras, set_keras_weights
from ..known import facts as env
from ..layers.geometry import refuse_impossible
from .base import Request
from .stopwatch import third_party


def versions(*dists: str) -> dict[str, Any]:
    """{distribution: installed version or None}, from package metadata (no import)."""
    return {dist: env.dist_version(dist) for dist in dists}


def keras_facts(request: Request, backend: str = "tensorflow") -> dict[str, Any]:
    """The facts under which the Keras graph of ``request`` was built, in the condition language's names.

    ``onednn`` is None (unknown): a converter reads the graph and never runs TensorFlow's CPU kernels, so a
    condition on the kernel path (a refusal of the Eigen kernels) does not hold for it, whatever the path of
    the harness's own process; the Keras layer on another backend runs no TensorFlow kernel either."""
    config = request.config
    found = {"keras_backend": backend, "keras_layer_format": config.get("data_format", "channels_last"),
             "keras_xla": backend == "tensorflow" and int(config.get("groups", 1)) > 1, "onednn": None}
    if backend != "tensorflow":   # TensorFlow computes nothing (keras-jax's venv has none): its version is no fact
        found["tensorflow"] = None
    return found


def _args(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in config.items())


def import_keras_on(backend: str) -> Any:
    """keras, on ``backend`` (KERAS_BACKEND must have been set before keras was first imported in this process:
    an engine's isolation env does that in its worker)."""
    keras = import_keras()
    if keras.backend.backend() != backend:
        raise EngineSkip(f"keras runs on the {keras.backend.backend()!r} backend in this process; this engine needs "
                         f"{backend!r} (KERAS_BACKEND={backend} before keras is first imported: its worker sets it)")
    return keras


def keras_layer(request: Request, backend: str = "tensorflow") -> Any:
    """The real Keras layer of the request, built for its input and given its weights (Keras layout).
    Keras's own argument checks (ValueError) are the framework's refusal: EngineRejected, with the facts."""
    import_keras_on(backend)
    x = request.inputs.x
    try:
        with third_party():
            obj = build_keras_layer(request.layer, request.config, request.dtype, x.shape)
    except ValueError as exc:
        raise EngineRejected(f"Keras refused {request.layer}({_args(request.config)}): {type(exc).__name__}: {exc}",
                             keras_facts(request, backend)) from exc
    try:
        with third_party():
            set_keras_weights(obj, request.inputs.weights)
    except ValueError as exc:   # the family's weight names disagree with Keras: a harness bug, never a refusal
        raise RuntimeError(str(exc)) from exc
    return obj


def keras_model(request: Request) -> Any:
    """The layer as a functional Keras model over a fixed-shape input (TensorFlow backend), ready for
    ``model.export`` (the way Keras's users reach ONNX, OpenVINO and LiteRT)."""
    keras = import_keras_on("tensorflow")
    obj = keras_layer(request)
    x = request.inputs.x
    try:
        with third_party():
            inp = keras.Input(batch_shape=tuple(x.shape), dtype=request.dtype, name="x")
            out = obj(inp)   # symbolic: runs no kernel
    except ValueError as exc:
        raise EngineRejected(f"Keras refused {request.layer}({_args(request.config)}) for input {tuple(x.shape)}: "
                             f"{type(exc).__name__}: {exc}", keras_facts(request)) from exc
    with third_party():
        return keras.Model(inp, out)


def export(model: Any, path: str, fmt: str, request: Request) -> None:
    """``model.export(path, format=fmt)`` with the input signature given (the model is never called, so that no
    TensorFlow kernel runs: converters read the graph)."""
    import keras

    x = request.inputs.x
    with third_party():
        model.export(path, format=fmt, verbose=False,
                     input_signature=[keras.InputSpec(shape=tuple(x.shape), dtype=request.dtype, name="x")])


def first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line[:limit]


def torch_port_and_input(torch: Any, request: Request) -> tuple[Any, Any]:
    """The harness's torch port of ``request`` in eval mode (in the case dtype) and its input as a channels-first
    tensor: what engines that convert the torch port (torch-onnx, nobuco, onnx2tf) start from. Refuses an
    impossible configuration as the torch engine does."""
    import numpy as np

    from .. import torch_port  # at call time: it imports torch (frameworks load lazily)

    g, x = request.geometry, request.inputs.x
    refuse_impossible("torch port", request.layer, g, x.shape)
    tdtype = getattr(torch, request.dtype)
    weights = {k: v.astype(np.float64) for k, v in request.inputs.weights.items()}
    module = torch_port.from_keras(request.layer, request.config, weights, in_channels=g.in_channels,
                                   dtype=tdtype).eval()
    x_first = x if g.channels_first else np.moveaxis(x, -1, 1)
    # bfloat16 has no NumPy-to-torch path: via float32, exact for every bfloat16 value.
    xt = torch.from_numpy(np.ascontiguousarray(x_first.astype(np.float32) if request.dtype == "bfloat16"
                                               else x_first)).to(tdtype)
    return module, xt


# torch.onnx.export's two exporters: "dynamo" (torch.export + onnxscript, the default since torch 2.9) and "legacy"
# (the TorchScript exporter, dynamo=False: what most tutorials and scripts call).
EXPORTERS = ("dynamo", "legacy")


def memoise_onnx_registry() -> bool:
    """Build torch.onnx's op registry once per process rather than once per export: the dynamo exporter calls
    ONNXRegistry.from_torchlib() on every export (0.5 s of its 0.7 s on a one-layer port), and only reads the
    registry afterwards unless a custom_translation_table registers ops into it (never given here; get_decomps
    returns a sorted copy). Keyed by the opset asked for. False where this torch has no such registry (another
    version: each export builds its own, as torch does)."""
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:
        return False
    registry = getattr(_registration, "ONNXRegistry", None)
    build = getattr(registry, "from_torchlib", None)
    if registry is None or build is None:
        return False
    if getattr(build, "harness_memoised", False):
        return True
    original, built = build.__func__, {}

    def from_torchlib(cls: Any, *args: Any, **kwargs: Any) -> Any:
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in built:
            built[key] = original(cls, *args, **kwargs)
        return built[key]

    from_torchlib.harness_memoised = True   # type: ignore[attr-defined]
    registry.from_torchlib = classmethod(from_torchlib)
    return True


def export_torch_onnx(torch: Any, module: Any, xt: Any, path: str, layer: str, exporter: str = "dynamo") -> None:
    """torch.onnx.export of the port (its defaults but the exporter; input "x", output "y"), its warnings and
    progress lines silenced; the exporter's refusal of an op is the engine's refusal (EngineRejected)."""
    import contextlib
    import io
    import warnings

    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    if exporter == "dynamo":
        memoise_onnx_registry()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), third_party():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, (xt,), path, input_names=["x"], output_names=["y"], verbose=False,
                              dynamo=exporter == "dynamo")
        except torch.onnx.errors.UnsupportedOperatorError as exc:   # the exporter's refusal
            raise EngineRejected(f"torch.onnx.export ({exporter}) refused the port of {layer}: "
                                 f"{first_line(exc)}") from exc


def run_converted(model: Any, feed: Any, layer_dtype: str, notes: list[str]) -> Any:
    """A converted Keras model (nobuco's, onnx2tf's) called on ``feed``, fed in the dtype its input takes: where the
    converter changed it, the input is cast (bfloat16 through float32) and a note says so."""
    import numpy as np

    dtype = model.inputs[0].dtype
    want = str(np.dtype(dtype.as_numpy_dtype)) if hasattr(dtype, "as_numpy_dtype") else layer_dtype
    if want != layer_dtype:
        notes.append(f"the converted model takes {want} where the layer takes {layer_dtype}: the converter changed "
                     f"the dtype; the input was fed as {want}")
        feed = feed.astype(np.float32).astype(want) if layer_dtype == "bfloat16" else feed.astype(want)
    try:
        with third_party():
            y = model(np.ascontiguousarray(feed), training=False)
    except Exception as exc:
        if not any(cls.__name__ == "OpError" for cls in type(exc).__mro__):
            raise
        # A TensorFlow kernel's own check refuses the converted graph at call ("Current CPU implementations do not
        # yet support dilation rates larger than 1"), as the keras engine reads TensorFlow's refusals at call.
        found = re.search(r"\}\} ([^\[]+)", str(exc))
        raise EngineRejected(f"TensorFlow refused the converted model at call: {type(exc).__name__}: "
                             f"{found.group(1).strip() if found else first_line(exc)}") from exc
    return np.asarray(y.numpy() if hasattr(y, "numpy") else y)
