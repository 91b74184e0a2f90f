"""Keras <-> PyTorch weight layouts as axis permutations for any rank, and the checks converters share."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# ---------------------------------------------------------------- axis permutations
# Keras puts the spatial axes first and the channels last; torch puts (out, in) first. Writing the
# permutations for any rank keeps 1D and 2D on one code path.

def conv_k2t(rank: int) -> tuple[int, ...]:
    """(*k, C_in, F) -> (F, C_in, *k): 2D gives (3, 2, 0, 1), 1D gives (2, 1, 0)."""
    return (rank + 1, rank, *range(rank))


def conv_t2k(rank: int) -> tuple[int, ...]:
    """(F, C_in, *k) -> (*k, C_in, F), the inverse of conv_k2t."""
    return (*range(2, rank + 2), 1, 0)


def depthwise_k2t(kernel: np.ndarray, rank: int) -> np.ndarray:
    """(*k, C, M) -> (C*M, 1, *k). C before M in the reshape: output channel c*M + m in both frameworks."""
    k, (c, m) = kernel.shape[:rank], kernel.shape[rank:]
    return kernel.transpose(rank, rank + 1, *range(rank)).reshape(c * m, 1, *k)


def depthwise_t2k(weight: np.ndarray, rank: int, depth_multiplier: int) -> np.ndarray:
    """(C*M, 1, *k) -> (*k, C, M), the inverse of depthwise_k2t."""
    cm, k = weight.shape[0], weight.shape[2:]
    return weight.reshape(cm // depth_multiplier, depth_multiplier, *k).transpose(*range(2, rank + 2), 0, 1)


def copy(a: np.ndarray) -> np.ndarray:
    # Contiguous copies: callers may hand the result to torch.from_numpy, and must not alias the input.
    return np.ascontiguousarray(a).copy()


# ---------------------------------------------------------------- validation

def as_array(name: str, value: object, ndim: int, what: str) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim != ndim:
        raise ValueError(f"{what}: {name!r} should have {ndim} dimensions, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or a.dtype.name == "bfloat16"):
        raise ValueError(f"{what}: {name!r} should be a floating-point array, got dtype {a.dtype}")
    return a


def check_names(given: Mapping[str, object], required: tuple[str, ...], optional: tuple[str, ...],
                 what: str) -> None:
    missing = [n for n in required if n not in given]
    unknown = [n for n in given if n not in required and n not in optional]
    if missing or unknown:
        expected = ", ".join(list(required) + [f"{n} (optional)" for n in optional])
        raise ValueError(f"{what}: expected weights {expected}; "
                         + "; ".join(p for p in (f"missing {missing}" if missing else "",
                                                 f"unknown {unknown}" if unknown else "") if p))


def check_bias(bias: np.ndarray | None, length: int, what: str, name: str = "bias") -> None:
    if bias is not None and bias.shape != (length,):
        raise ValueError(f"{what}: {name!r} should have shape ({length},), got {bias.shape}")


def split_depth_multiplier(cm: int, in_channels: int | None, depth_multiplier: int | None, what: str) -> int:
    """M of a torch depthwise weight with C*M outputs, from in_channels or depth_multiplier (default 1)."""
    if in_channels is not None:
        if in_channels <= 0 or cm % in_channels:
            raise ValueError(f"{what}: in_channels={in_channels} does not divide the {cm} depthwise outputs")
        m = cm // in_channels
        if depth_multiplier is not None and depth_multiplier != m:
            raise ValueError(f"{what}: in_channels={in_channels} and depth_multiplier={depth_multiplier} "
                             f"disagree with {cm} depthwise outputs")
        return m
    m = 1 if depth_multiplier is None else depth_multiplier
    if m <= 0 or cm % m:
        raise ValueError(f"{what}: depth_multiplier={m} does not divide the {cm} depthwise outputs")
    return m
