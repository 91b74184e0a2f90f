"""The real Keras layer of a case, built for an input shape and given the harness's weights; keras imported lazily."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np


def import_keras() -> Any:
    """Import keras on the TensorFlow backend unless KERAS_BACKEND already names another (the harness's default)."""
    # Both must be set before keras (and through it TensorFlow) is first imported; setdefault keeps a user's choice.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
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
