"""Keras/TensorFlow padding arithmetic, shared by the oracle and the torch port."""
from __future__ import annotations

import math


def effective_kernel(k: int, dilation: int) -> int:
    """Extent of a dilated kernel: ``(k - 1) * d + 1``."""
    return (k - 1) * dilation + 1


def pad_amounts(padding: str, n: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) zero padding that Keras applies on one spatial axis of length ``n``."""
    ek = effective_kernel(k, dilation)
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        # Keras Conv1D 'causal': everything on the left, so output t never sees input > t.
        return ek - 1, 0
    if padding == "same":
        # TensorFlow's rule: output ceil(n/s); the odd pixel goes at the end (bottom/right).
        out = math.ceil(n / stride)
        total = max(0, (out - 1) * stride + ek - n)
        return total // 2, total - total // 2
    raise ValueError(f"unknown padding {padding!r}")


def output_length(padding: str, n: int, k: int, stride: int, dilation: int) -> int:
    """Length of one output spatial axis, or <= 0 when the kernel does not fit; ValueError for a size that is not
    positive (harness.layers.geometry.impossible names the case field first)."""
    if min(k, stride, dilation) <= 0:
        raise ValueError(f"kernel {k}, stride {stride} and dilation {dilation} must be positive")
    before, after = pad_amounts(padding, n, k, stride, dilation)
    span = n + before + after - effective_kernel(k, dilation)
    return span // stride + 1 if span >= 0 else 0
