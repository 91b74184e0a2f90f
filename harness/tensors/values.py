"""Deterministic generation of inputs and weights: float64 first, then rounded once to the case dtype."""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .files import TensorSource

DTYPES = ("float16", "bfloat16", "float32", "float64")
INITS = ("zeros", "ones", "constant", "uniform", "normal", "arange", "linspace", "channels", "sparse")


def numpy_dtype(name: str) -> np.dtype:
    """NumPy dtype for a case dtype; bfloat16 comes from ml_dtypes (a TensorFlow dependency, no framework)."""
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def unit_roundoff(name: str) -> float:
    """u = 2**-p for a format with p significand bits (round to nearest)."""
    return {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": 2.0**-24, "float64": 2.0**-53}[name]


def _rng(seed: int, name: str) -> np.random.Generator:
    # One stream per (seed, tensor name): adding a weight never changes the input; no global state.
    tag = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, tag])


def generate(spec: Any, shape: tuple[int, ...], seed: int, name: str, channel_axis: int = -1) -> np.ndarray:
    """Materialise a validated tensor spec as a float64 array of ``shape`` (Keras layout, the case's data_format)."""
    if isinstance(spec, TensorSource):   # a file, or a literal in torch layout (harness.tensors.files)
        return spec.load(shape)
    if isinstance(spec, str):
        spec = {"init": spec}
    if isinstance(spec, list):
        return np.asarray(spec, dtype=np.float64).reshape(shape)
    init = spec["init"]
    if init == "zeros":
        return np.zeros(shape)
    if init == "ones":
        return np.ones(shape)
    if init == "constant":
        return np.full(shape, float(spec["value"]))
    if init == "uniform":
        return _rng(seed, name).uniform(spec.get("low", -1.0), spec.get("high", 1.0), shape)
    if init == "normal":
        return spec.get("mean", 0.0) + spec.get("std", 1.0) * _rng(seed, name).standard_normal(shape)
    if init == "arange":
        return spec.get("start", 0.0) + spec.get("step", 1.0) * np.arange(int(np.prod(shape))).reshape(shape)
    if init == "linspace":   # evenly spaced over the elements in C order, both ends included
        return np.linspace(spec.get("start", 0.0), spec.get("stop", 1.0), int(np.prod(shape))).reshape(shape)
    if init == "channels":
        values = np.asarray(spec["values"], dtype=np.float64)
        view = [1] * len(shape)
        view[channel_axis] = len(values)
        return np.broadcast_to(values.reshape(view), shape).copy()
    if init == "sparse":
        out = np.zeros(shape)
        for entry in spec["entries"]:
            out[tuple(entry["index"])] = entry["value"]
        return out
    raise ValueError(f"unknown init {init!r}")


def round_to(values: np.ndarray, dtype: str) -> np.ndarray:
    """Round float64 values once to the case dtype (what every engine and the oracle then consume)."""
    return np.asarray(values, dtype=np.float64).astype(numpy_dtype(dtype))
