"""The arbiter: Keras convolution semantics in vectorised NumPy float64 (asked of each family), and the gauge G."""
from __future__ import annotations

from typing import Any

import numpy as np

from .activations import ACTIVATION_TABLE
from .conv_ops import conv, depthwise, from_channels_last, pointwise, to_channels_last
from .layers import Geometry, geometry

__all__ = ["conv", "depthwise", "from_channels_last", "gauge", "pointwise", "pre_activation", "run",
           "to_channels_last"]


def pre_activation(x: np.ndarray, weights: dict[str, np.ndarray], g: Geometry) -> np.ndarray:
    """The layer before its activation, channels last, in float64."""
    x = np.asarray(x, dtype=np.float64)
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    y = g.kind.family.forward(x, w, g)
    if g.use_bias:
        y = y + w["bias"]
    return y


def run(layer: str, config: dict[str, Any], x: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    """Oracle output in float64, with the engine signature (x and result in the case's data_format)."""
    g = geometry(layer, config, x.shape)
    y = pre_activation(to_channels_last(x, g.channels_first), weights, g)
    return from_channels_last(ACTIVATION_TABLE[g.activation].reference(y), g.channels_first)


def gauge(layer: str, config: dict[str, Any], x: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    """G: the same layer (no activation) on |x|, |w|, |b|: the scale of each element's rounding error."""
    g = geometry(layer, config, x.shape)
    absw = {k: np.abs(np.asarray(v, dtype=np.float64)) for k, v in weights.items()}
    y = pre_activation(np.abs(to_channels_last(np.asarray(x, dtype=np.float64), g.channels_first)), absw, g)
    return from_channels_last(y, g.channels_first)
