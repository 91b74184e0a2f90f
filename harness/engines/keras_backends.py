"""Keras 3 on its other backends: the same real layer (harness.keras_layer) run on JAX or PyTorch.

Keras reads KERAS_BACKEND once, at its first import, so each backend runs in its own worker process (its
``isolation`` env); keras-jax also needs JAX, in its own venv (engines/keras-jax.txt, `make engine-keras-jax`).
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ..errors import EngineRejected
from .base import CANONICAL_LAYOUT, Engine, EngineOutput, Isolation, Request
from .keras_graph import first_line, import_keras_on, keras_facts, keras_layer, versions
from .stopwatch import third_party
from .torch_engine import TorchThreads


class _KerasBackendEngine(Engine):
    """The Keras layer of the request on ``backend``, weights set with set_weights, called on the input."""

    backend: str = ""
    weight_layout = CANONICAL_LAYOUT
    # The same Keras layer: Keras's own refusals (argument checks) hold here too; its TensorFlow-backend bugs and
    # TensorFlow's kernel refusals do not (their conditions name keras_backend, tensorflow or onednn).
    inherits = "keras"
    dists: tuple[str, ...] = ("keras",)

    def __init__(self) -> None:
        self.keras = import_keras_on(self.backend)

    def run(self, request: Request) -> EngineOutput:
        keras = self.keras
        obj = keras_layer(request, self.backend)
        facts = keras_facts(request, self.backend)
        try:
            with third_party():
                y = obj(request.inputs.x)
        except ValueError as exc:   # Keras's checks at call (e.g. an input the kernel does not fit)
            raise EngineRejected(f"Keras ({self.backend}) refused {request.layer} at call: "
                                 f"{type(exc).__name__}: {first_line(exc)}", facts) from exc
        # As the backend gives it: a dtype the backend changed (e.g. float64 without x64) must show.
        y = np.asarray(keras.ops.convert_to_numpy(y))
        return EngineOutput(y=np.ascontiguousarray(y), params=int(obj.count_params()),
                            weight_shapes={w.name: tuple(int(d) for d in w.shape) for w in obj.weights},
                            facts=facts)

    @classmethod
    def environment(cls) -> dict[str, dict[str, Any]]:
        info: dict[str, Any] = {"backend": cls.backend, **versions(*cls.dists)}
        keras = sys.modules.get("keras")
        if keras is not None and hasattr(keras, "backend"):
            info["loaded_backend"] = keras.backend.backend()
        return {cls.name: info}


class KerasJaxEngine(_KerasBackendEngine):
    name = "keras-jax"
    backend = "jax"
    framework = "jax"
    dists = ("keras", "jax", "jaxlib", "ml_dtypes")
    # JAX truncates float64 to float32 (with a UserWarning) unless x64 is enabled before it loads: a user who
    # asks Keras for float64 on JAX enables it.
    isolation = Isolation(env=(("KERAS_BACKEND", "jax"), ("JAX_ENABLE_X64", "1"), ("JAX_PLATFORMS", "cpu")),
                          venv="keras-jax")

    @classmethod
    def environment(cls) -> dict[str, dict[str, Any]]:
        found = super().environment()
        jax = sys.modules.get("jax")
        if jax is not None and hasattr(jax, "config"):
            found[cls.name].update(x64=bool(jax.config.jax_enable_x64),
                                   devices=[str(d) for d in jax.devices()])
        return found


class KerasTorchEngine(TorchThreads, _KerasBackendEngine):
    name = "keras-torch"
    backend = "torch"
    framework = "torch"
    dists = ("keras", "torch")
    isolation = Isolation(env=(("KERAS_BACKEND", "torch"),))   # our venv: keras and torch are both pinned there

