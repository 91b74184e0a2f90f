"""References of the nodes that interleave convs: element-wise ops, pooling, data movement, rescaling,
normalization and the activation layers (each kind's K, G and H derived where it is defined)."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..layers.padding import pad_amounts
from .ref_base import (
    KERAS_EPSILON,
    Arrays,
    LayerRef,
    NoReference,
    Weights,
    _activation,
    _channels_last,
    _ints,
)


def _elementwise(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """The merge layers and keras.ops (broadcasting; a constant as a 0-d operand). Add: n - 1 sums in any order, K =
    n - 1, G = sum |x_i|, H = 1 (sums add no eta, the store one). Subtract: K = 1, G = |a| + |b|. Average: the sum
    and a division by n, or a product by a rounded 1/n: K = n + 1, G = sum |x_i| / n, H = 2. Multiply: K = n - 1,
    G = |prod x_i|; each product's eta is later multiplied by some of the other factors: H = 1 + (n - 2) prod
    max(1, |x_i|). TrueDivide a / b, or a times a rounded 1 / b: K = 2, G = |a / b|, H = 1 + |a| (1/b's eta times
    |a|, and the product's). Maximum, Minimum: exact (K = 0)."""
    if (kind in ("Subtract", "TrueDivide", "Divide") and n != 2) or n < 1:
        raise NoReference(f"{kind}: {n} inputs")

    def op(xs: Arrays, w: Weights, mag: bool) -> np.ndarray:
        if kind == "Add" or (kind == "Subtract" and mag):
            return np.asarray(sum(xs[1:], xs[0]))
        if kind == "Subtract":
            return xs[0] - xs[1]
        if kind == "Average":
            return np.asarray(sum(xs[1:], xs[0])) / n
        if kind == "Multiply":
            return np.asarray(math.prod(xs[1:], start=xs[0]))
        if kind in ("TrueDivide", "Divide"):
            with np.errstate(divide="ignore", invalid="ignore"):
                return xs[0] / xs[1]
        return (np.maximum if kind == "Maximum" else np.minimum).reduce(np.broadcast_arrays(*xs))

    k = {"Add": n - 1, "Subtract": 1, "Average": n + 1, "Multiply": n - 1, "TrueDivide": 2, "Divide": 2}.get(kind, 0)

    def etas(xs: Arrays) -> float | np.ndarray:
        if kind == "Multiply":
            return 1.0 + (n - 2) * math.prod(np.maximum(1.0, np.abs(x)) for x in xs)
        if kind in ("TrueDivide", "Divide"):
            return 1.0 + np.abs(xs[0])
        return {"Add": 1.0, "Subtract": 1.0, "Average": 2.0}.get(kind, 0.0)

    return LayerRef(kind, "linear", k, op, {}, etas)


def _pool(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """Max pooling: exact (K = 0), 'same' padding with -inf (never chosen). Average pooling: the sum of the window's
    valid elements over their count (TF's 'same' counts only those): at most P - 1 sums and a division, or a
    product by a rounded reciprocal, K = P + 1 (P the pool's size), G = the same on |x|, H = 2."""
    _channels_last(kind, config)
    rank = int(kind[-2])
    pool = _ints(config.get("pool_size", 2), rank)
    strides = _ints(config.get("strides") or pool, rank)
    padding = str(config.get("padding", "valid")).lower()
    average = kind.startswith("Average")

    def windows(x: np.ndarray, fill: float) -> np.ndarray:
        pads = [pad_amounts(padding, d, p, s, 1) for d, p, s in zip(x.shape[1:-1], pool, strides)]
        xp = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=fill)
        view = sliding_window_view(xp, pool, axis=tuple(range(1, rank + 1)))
        return view[(slice(None), *(slice(None, None, s) for s in strides))]

    def op(xs: Arrays, w: Weights, mag: bool) -> np.ndarray:
        axes = tuple(range(-rank, 0))
        if not average:
            return windows(xs[0], -np.inf).max(axis=axes)
        counts = windows(np.ones((1, *xs[0].shape[1:-1], 1)), 0.0).sum(axis=axes)
        return windows(xs[0], 0.0).sum(axis=axes) / counts

    return LayerRef(kind, "linear", math.prod(pool) + 1 if average else 0, op, {},
                    lambda xs: 2.0 if average else 0.0)


def _global_pool(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """The mean (sum of N and a division, or a product by a rounded 1/N: K = N + 1, G = mean |x|, H = 2) or the max
    (exact) over the spatial axes; keepdims as configured."""
    rank = int(kind[-2])
    first = config.get("data_format", "channels_last") == "channels_first"
    axes = tuple(range(2, rank + 2)) if first else tuple(range(1, rank + 1))
    keep = bool(config.get("keepdims", False))
    average = "Average" in kind

    def op(xs: Arrays, w: Weights, mag: bool) -> np.ndarray:
        return (np.mean if average else np.max)(xs[0], axis=axes, keepdims=keep)

    return LayerRef(kind, "linear", -1 if average else 0, op, {}, lambda xs: 2.0 if average else 0.0,
                    k_of=lambda xs: math.prod(xs[0].shape[a] for a in axes) + 1 if average else 0)


def _movement(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """Data movement and inference identities: exact, K = 0, H = 0."""
    first = config.get("data_format", "channels_last") == "channels_first"

    def op(xs: Arrays, w: Weights, mag: bool) -> np.ndarray:
        x = xs[0]
        if kind == "Flatten":   # Keras moves channels_first to channels_last first
            x = np.moveaxis(x, 1, -1) if first and x.ndim > 2 else x
            return x.reshape(x.shape[0], -1)
        if kind == "Reshape":
            return x.reshape(x.shape[0], *config["target_shape"])
        if kind == "Concatenate":
            return np.concatenate(xs, axis=int(config.get("axis", -1)))
        if kind.startswith("ZeroPadding"):
            rank = int(kind[-2])
            pads = config["padding"]
            pads = [_ints(p, 2) for p in pads] if rank > 1 else [_ints(pads, 2)]
            spatial = [(0, 0), *pads, (0, 0)] if not first else [(0, 0), (0, 0), *pads]
            return np.pad(x, spatial)
        return x

    return LayerRef(kind, "linear", 0, op)


def _rescaling(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """x scale + offset, both rounded to the dtype by Keras: the product, the sum and scale's rounding, K = 3 (the
    offset's rounding is one of its own 2), G = |x| |scale| + |offset|; H = 2 (the product, the store)."""
    scale = np.asarray(config.get("scale", 1.0), dtype=np.float64)
    offset = np.asarray(config.get("offset", 0.0), dtype=np.float64)

    def op(xs: Arrays, w: Weights, mag: bool) -> np.ndarray:
        s, o = (np.abs(scale), np.abs(offset)) if mag else (scale, offset)
        return xs[0] * s + o

    return LayerRef(kind, "linear", 3, op, {}, lambda xs: 2.0)


def _normalization(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """keras.layers.Normalization: (x - mean) / max(sqrt(var), eps), or with ``invert`` mean + x max(sqrt(var),
    eps), eps = keras.config.epsilon() (KERAS_EPSILON); mean and variance (its weights, or its config) aligned to
    the kept axes from the right. The difference, the square root (var is exact: halved, 1), the division or a
    reciprocal and a product (2): K = 4, which also covers eps's own rounding where it is the floor; G = (|x| +
    |mean|) / s. Inverted: the square root, the product, the sum (+1 for eps): K = 4, G = |mean| + |x| s. H = 2.
    Given in the config (Python floats), mean and variance are rounded to the dtype by Keras: 2 more (mean's 1,
    variance's halved by the square root, 1 with the sum's slack): K = 6."""
    source = weights if "mean" in weights else config
    if source.get("mean") is None or source.get("variance") is None:
        raise NoReference(f"{kind}: no mean and variance (neither weights nor config)")
    mean, var = (np.asarray(source[k], dtype=np.float64) for k in ("mean", "variance"))
    axis = config.get("axis", (-1,))
    axis = () if axis is None else _ints(axis, 1)
    invert = bool(config.get("invert", False))

    def aligned(v: np.ndarray, ndim: int) -> np.ndarray:
        keep = sorted(a % ndim for a in axis)
        view = [1] * ndim
        for i in range(1, v.ndim + 1):
            view[keep[-i]] = v.shape[-i]
        return v.reshape(view)

    def op(xs: Arrays, w: Weights, mag: bool) -> np.ndarray:
        x = xs[0]
        m, s = aligned(np.abs(mean) if mag else mean, x.ndim), np.maximum(np.sqrt(aligned(var, x.ndim)), KERAS_EPSILON)
        if invert:
            return m + x * s
        return (x + m if mag else x - m) / s

    return LayerRef(kind, "linear", 4 if source is weights else 6, op, {}, lambda xs: 2.0)


def _activation_kind(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """Activation, ReLU, LeakyReLU, Softmax: the identity as pre-activation (K = 0, exact) and the table's
    activation after it (softmax too, over the last axis only)."""
    name = config.get("activation", "softmax" if kind == "Softmax" else None)
    if kind == "ReLU":
        slope, threshold, top = (config.get(k) for k in ("negative_slope", "threshold", "max_value"))
        if slope or threshold or top not in (None, 6, 6.0):
            raise NoReference(f"{kind}: negative_slope={slope}, threshold={threshold}, max_value={top} (not in the "
                              "activation table)")
        name = "relu" if top is None else "relu6"
    if kind == "LeakyReLU":
        if config.get("negative_slope", 0.3) != 0.2:   # the table's leaky_relu is Keras's function default, 0.2
            raise NoReference(f"{kind}: negative_slope={config.get('negative_slope', 0.3)} (the table has 0.2)")
        name = "leaky_relu"
    if name == "softmax" and config.get("axis", -1) not in (-1, [-1], (-1,)):
        raise NoReference(f"{kind}: axis {config.get('axis')!r} (the last axis only)")
    return LayerRef(kind, _activation(kind, name), 0, lambda xs, w, mag: xs[0])


