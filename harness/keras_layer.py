"""The real Keras layer of a case, built for an input shape and given the harness's weights; keras imported lazily."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np


def torch_before_tensorflow() -> None:
    """Import torch, where it is installed, before TensorFlow is first loaded in this process.

    torch's C++ runtime loaded after TensorFlow's crashes or hangs in some processes (pytorch/pytorch#93884,
    #101152, tensorflow/tensorflow#60109; seen here: a SIGSEGV in ``import torch._C`` in an xdist worker that had
    run Keras first, and one in the garbage collector after); the other order is the one known to work. Any
    process of the harness may run both (the keras and torch engines, the model diff, pytest's workers), in an
    order that depends on its items: this fixes the order. Nothing where torch is not installed."""
    import importlib.util
    import sys

    loaded = sys.modules.keys() & {"torch", "tensorflow"}   # module names (the lint reads engine names)
    if loaded or importlib.util.find_spec("torch") is None:
        return
    import torch  # noqa: F401


def import_keras() -> Any:
    """Import keras on the TensorFlow backend unless KERAS_BACKEND already names another (the harness's default);
    torch first where it is installed (torch_before_tensorflow)."""
    # Both must be set before keras (and through it TensorFlow) is first imported; setdefault keeps a user's choice.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    torch_before_tensorflow()
    import keras

    return keras


def set_keras_weights(obj: Any, weights: Mapping[str, np.ndarray]) -> None:
    """Set a built Keras layer's weights from ``{weight name: array}`` (names as ``layer.weights[i].name``).

    The names must be exactly the layer's: a missing or extra weight raises ValueError instead of leaving a
    weight at its random initial value.
    """
    by_name = {w.name: w for w in obj.weights}
    if set(weights) != set(by_name):
        raise ValueError(f"Keras {type(obj).__name__} weights are {sorted(by_name)}, given {sorted(weights)}")
    obj.set_weights([np.asarray(weights[w.name]) for w in obj.weights])


def build_keras_layer(layer: str, config: Mapping[str, Any], dtype: str, input_shape: tuple[int, ...],
                      weights: Mapping[str, np.ndarray] | None = None) -> Any:
    """``keras.layers.<layer>(**config, dtype=dtype)`` built for ``input_shape`` (batch first), with ``weights``
    set when given (see set_keras_weights).

    Keras's own argument checks raise ValueError (a refused configuration); an unknown layer name raises
    ValueError too. Call the result on a NumPy array of ``dtype`` to run it.
    """
    keras = import_keras()
    cls = getattr(keras.layers, layer, None)
    if not isinstance(cls, type):
        raise ValueError(f"keras.layers has no layer class {layer!r}")
    obj = cls(**config, dtype=dtype)
    obj.build(tuple(input_shape))
    if weights is not None:
        set_keras_weights(obj, weights)
    return obj
