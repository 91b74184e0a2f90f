"""Weight-layout conversion between Keras and PyTorch convolution layers, both ways, in pure NumPy."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .layers import LayerKind, get_kind

__all__ = ["keras_to_torch", "torch_to_keras", "fold_depthwise_bias", "unfold_depthwise_bias"]


# ---------------------------------------------------------------- axis permutations
# Keras puts the spatial axes first and the channels last; torch puts (out, in) first. Writing the
# permutations for any rank keeps 1D and 2D on one code path.

def _conv_k2t(rank: int) -> tuple[int, ...]:
    """(*k, C_in, F) -> (F, C_in, *k): 2D gives (3, 2, 0, 1), 1D gives (2, 1, 0)."""
    return (rank + 1, rank, *range(rank))


def _conv_t2k(rank: int) -> tuple[int, ...]:
    """(F, C_in, *k) -> (*k, C_in, F), the inverse of _conv_k2t."""
    return (*range(2, rank + 2), 1, 0)


def _depthwise_k2t(kernel: np.ndarray, rank: int) -> np.ndarray:
    """(*k, C, M) -> (C*M, 1, *k). C before M in the reshape: output channel c*M + m in both frameworks."""
    k, (c, m) = kernel.shape[:rank], kernel.shape[rank:]
    return kernel.transpose(rank, rank + 1, *range(rank)).reshape(c * m, 1, *k)


def _depthwise_t2k(weight: np.ndarray, rank: int, depth_multiplier: int) -> np.ndarray:
    """(C*M, 1, *k) -> (*k, C, M), the inverse of _depthwise_k2t."""
    cm, k = weight.shape[0], weight.shape[2:]
    return weight.reshape(cm // depth_multiplier, depth_multiplier, *k).transpose(*range(2, rank + 2), 0, 1)


def _copy(a: np.ndarray) -> np.ndarray:
    # Contiguous copies: callers may hand the result to torch.from_numpy, and must not alias the input.
    return np.ascontiguousarray(a).copy()


# ---------------------------------------------------------------- validation

def _array(name: str, value: object, ndim: int, what: str) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim != ndim:
        raise ValueError(f"{what}: {name!r} should have {ndim} dimensions, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or a.dtype.name == "bfloat16"):
        raise ValueError(f"{what}: {name!r} should be a floating-point array, got dtype {a.dtype}")
    return a


def _check_names(given: Mapping[str, object], required: tuple[str, ...], optional: tuple[str, ...],
                 what: str) -> None:
    missing = [n for n in required if n not in given]
    unknown = [n for n in given if n not in required and n not in optional]
    if missing or unknown:
        expected = ", ".join(list(required) + [f"{n} (optional)" for n in optional])
        raise ValueError(f"{what}: expected weights {expected}; "
                         + "; ".join(p for p in (f"missing {missing}" if missing else "",
                                                 f"unknown {unknown}" if unknown else "") if p))


def _check_bias(bias: np.ndarray | None, length: int, what: str, name: str = "bias") -> None:
    if bias is not None and bias.shape != (length,):
        raise ValueError(f"{what}: {name!r} should have shape ({length},), got {bias.shape}")


def _kind(layer: str) -> LayerKind:
    try:
        return get_kind(layer)
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None


# ---------------------------------------------------------------- the depthwise bias of hand-written ports

def fold_depthwise_bias(pointwise_kernel: np.ndarray, depthwise_bias: np.ndarray,
                        bias: np.ndarray | None = None) -> np.ndarray:
    """Keras bias equal to a depthwise bias followed by a pointwise bias: ``b + W_p^T b_d``.

    ``pointwise_kernel`` is in Keras layout (1[, 1], C*M, F). Exact in real arithmetic because nothing
    non-linear sits between the depthwise and the pointwise step; computed in float64, returned in the
    inputs' common dtype.
    """
    p, bd, b = _fold_inputs(pointwise_kernel, depthwise_bias, bias)
    return (b + bd @ p).astype(_result_dtype(pointwise_kernel, depthwise_bias, bias))


def unfold_depthwise_bias(pointwise_kernel: np.ndarray, depthwise_bias: np.ndarray,
                          bias: np.ndarray | None = None) -> np.ndarray:
    """Pointwise bias that, after a depthwise bias ``b_d``, gives the Keras bias ``b``: ``b - W_p^T b_d``."""
    p, bd, b = _fold_inputs(pointwise_kernel, depthwise_bias, bias)
    return (b - bd @ p).astype(_result_dtype(pointwise_kernel, depthwise_bias, bias))


def _fold_inputs(pointwise_kernel: np.ndarray, depthwise_bias: np.ndarray,
                 bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pk = np.asarray(pointwise_kernel, dtype=np.float64)
    if pk.ndim < 2 or any(d != 1 for d in pk.shape[:-2]):
        raise ValueError(f"pointwise_kernel should have Keras shape (1[, 1], C*M, F), got {pk.shape}")
    p = pk.reshape(pk.shape[-2:])
    bd = np.asarray(depthwise_bias, dtype=np.float64)
    _check_bias(bd, p.shape[0], "fold_depthwise_bias", "depthwise_bias")
    b = np.zeros(p.shape[1]) if bias is None else np.asarray(bias, dtype=np.float64)
    _check_bias(b, p.shape[1], "fold_depthwise_bias")
    return p, bd, b


def _result_dtype(*arrays: np.ndarray | None) -> np.dtype:
    return np.result_type(*(np.asarray(a).dtype for a in arrays if a is not None))


# ---------------------------------------------------------------- Keras -> torch

def keras_to_torch(layer: str, weights: Mapping[str, np.ndarray], *,
                   depthwise_bias: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Keras weights (names as ``layer.weights[i].name``) -> a torch state dict of NumPy arrays.

    Conv and depthwise give ``weight`` (and ``bias``); separable gives ``depthwise.weight``,
    ``pointwise.weight`` (and ``pointwise.bias``), the attribute names of harness.torch_port. With
    ``depthwise_bias`` (separable only: the hand-written port with a bias on both convs) the result also has
    ``depthwise.bias`` and a pointwise bias ``b - W_p^T b_d``, so the block still computes the Keras function.
    """
    kind = _kind(layer)
    what = f"keras_to_torch({layer})"
    r = kind.rank
    if depthwise_bias is not None and kind.family != "separable":
        raise ValueError(f"{what}: depthwise_bias applies to separable layers only")
    _check_names(weights, kind.weight_names[:-1], ("bias",), what)
    bias = weights.get("bias")
    bias = None if bias is None else _array("bias", bias, 1, what)

    if kind.family in ("conv", "depthwise"):
        kernel = _array("kernel", weights["kernel"], r + 2, what)
        if kind.family == "conv":
            out_channels, weight = kernel.shape[-1], kernel.transpose(_conv_k2t(r))
        else:
            out_channels, weight = kernel.shape[-2] * kernel.shape[-1], _depthwise_k2t(kernel, r)
        _check_bias(bias, out_channels, what)
        state = {"weight": _copy(weight)}
        if bias is not None:
            state["bias"] = _copy(bias)
        return state

    dk = _array("depthwise_kernel", weights["depthwise_kernel"], r + 2, what)
    pk = _array("pointwise_kernel", weights["pointwise_kernel"], r + 2, what)
    cm = dk.shape[-2] * dk.shape[-1]
    if pk.shape[:r] != (1,) * r or pk.shape[r] != cm:
        raise ValueError(f"{what}: 'pointwise_kernel' should have shape {(1,) * r + (cm, '<filters>')} "
                         f"to follow depthwise_kernel {dk.shape}, got {pk.shape}")
    _check_bias(bias, pk.shape[-1], what)
    state = {"depthwise.weight": _copy(_depthwise_k2t(dk, r)), "pointwise.weight": _copy(pk.transpose(_conv_k2t(r)))}
    if depthwise_bias is not None:
        bd = _array("depthwise_bias", depthwise_bias, 1, what)
        _check_bias(bd, cm, what, "depthwise_bias")
        state["depthwise.bias"] = _copy(bd)
        # Even without a Keras bias the port needs one to cancel W_p^T b_d.
        state["pointwise.bias"] = unfold_depthwise_bias(pk, bd, bias)
    elif bias is not None:
        state["pointwise.bias"] = _copy(bias)
    return state


# ---------------------------------------------------------------- torch -> Keras

def torch_to_keras(layer: str, state: Mapping[str, np.ndarray], *, in_channels: int | None = None,
                   depth_multiplier: int | None = None) -> dict[str, np.ndarray]:
    """A torch state dict (NumPy arrays, names as keras_to_torch writes them) -> Keras weights.

    A torch depthwise weight (C*M, 1, *k) does not say how C*M splits into C and M: give ``in_channels`` or
    ``depth_multiplier`` (default: depth_multiplier 1, the Keras default) for depthwise and separable layers.
    A separable ``depthwise.bias`` is folded exactly into the one Keras bias, ``b_p + W_p^T b_d``.
    """
    kind = _kind(layer)
    what = f"torch_to_keras({layer})"
    r = kind.rank
    if kind.family == "conv":
        _check_names(state, ("weight",), ("bias",), what)
        weight = _array("weight", state["weight"], r + 2, what)
        bias = state.get("bias")
        bias = None if bias is None else _array("bias", bias, 1, what)
        _check_bias(bias, weight.shape[0], what)
        out = {"kernel": _copy(weight.transpose(_conv_t2k(r)))}
        if bias is not None:
            out["bias"] = _copy(bias)
        return out

    prefix = "depthwise." if kind.family == "separable" else ""
    optional = ("depthwise.bias", "pointwise.bias") if prefix else ("bias",)
    required = ("depthwise.weight", "pointwise.weight") if prefix else ("weight",)
    _check_names(state, required, optional, what)
    dw = _array(prefix + "weight", state[prefix + "weight"], r + 2, what)
    cm = dw.shape[0]
    if dw.shape[1] != 1:
        raise ValueError(f"{what}: {prefix + 'weight'!r} should have shape (C*M, 1, *kernel) "
                         f"(one input channel per group), got {dw.shape}")
    m = _depth_multiplier(cm, in_channels, depth_multiplier, what)
    dk = _copy(_depthwise_t2k(dw, r, m))
    if not prefix:
        out = {"kernel": dk}
        if "bias" in state:
            bias = _array("bias", state["bias"], 1, what)
            _check_bias(bias, cm, what)
            out["bias"] = _copy(bias)
        return out

    pw = _array("pointwise.weight", state["pointwise.weight"], r + 2, what)
    if pw.shape[1] != cm or pw.shape[2:] != (1,) * r:
        raise ValueError(f"{what}: 'pointwise.weight' should have shape (filters, {cm}{', 1' * r}) "
                         f"to follow depthwise.weight {dw.shape}, got {pw.shape}")
    pk = _copy(pw.transpose(_conv_t2k(r)))
    out = {"depthwise_kernel": dk, "pointwise_kernel": pk}
    bp = state.get("pointwise.bias")
    bp = None if bp is None else _array("pointwise.bias", bp, 1, what)
    _check_bias(bp, pw.shape[0], what, "pointwise.bias")
    if "depthwise.bias" in state:
        bd = _array("depthwise.bias", state["depthwise.bias"], 1, what)
        _check_bias(bd, cm, what, "depthwise.bias")
        out["bias"] = fold_depthwise_bias(pk, bd, bp)  # a new Keras bias even when the pointwise had none
    elif bp is not None:
        out["bias"] = _copy(bp)
    return out


def _depth_multiplier(cm: int, in_channels: int | None, depth_multiplier: int | None, what: str) -> int:
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
