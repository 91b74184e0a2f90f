"""Weight-layout conversion between Keras and PyTorch convolution layers, both ways, in pure NumPy (public API).

Each family (harness/layers/families/) owns its own conversion; this module checks names and dispatches.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .layers.families import LayerKind, get_kind
from .layers.families.separable import fold_depthwise_bias, unfold_depthwise_bias
from .layers.layouts import as_array, check_names

__all__ = ["keras_to_torch", "torch_to_keras", "fold_depthwise_bias", "unfold_depthwise_bias"]


def _kind(layer: str) -> LayerKind:
    try:
        return get_kind(layer)
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None


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
    variant = {}
    if depthwise_bias is not None:
        if "depthwise_bias" not in kind.family.port_variants:
            raise ValueError(f"{what}: depthwise_bias applies to separable layers only")
        variant["depthwise_bias"] = depthwise_bias
    check_names(weights, kind.family.kernel_names, ("bias",), what)
    bias = weights.get("bias")
    bias = None if bias is None else as_array("bias", bias, 1, what)
    return kind.family.keras_to_torch(kind, weights, bias, what, **variant)


def torch_to_keras(layer: str, state: Mapping[str, np.ndarray], *, in_channels: int | None = None,
                   depth_multiplier: int | None = None) -> dict[str, np.ndarray]:
    """A torch state dict (NumPy arrays, names as keras_to_torch writes them) -> Keras weights.

    A torch depthwise weight (C*M, 1, *k) does not say how C*M splits into C and M: give ``in_channels`` or
    ``depth_multiplier`` (default: depth_multiplier 1, the Keras default) for depthwise and separable layers.
    A separable ``depthwise.bias`` is folded exactly into the one Keras bias, ``b_p + W_p^T b_d``.
    """
    kind = _kind(layer)
    return kind.family.torch_to_keras(kind, state, f"torch_to_keras({layer})", in_channels=in_channels,
                                      depth_multiplier=depth_multiplier)
