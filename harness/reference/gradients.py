"""The float64 backward reference: a layer's gradients w.r.t. its input, kernels and bias, and their gauge G."""
from __future__ import annotations

import numpy as np

from ..layers.activations import ACTIVATION_TABLE
from ..layers.conv_ops import from_channels_last, to_channels_last
from ..layers.geometry import Geometry
from .oracle import pre_activation

__all__ = ["reference_gradients"]


def reference_gradients(x: np.ndarray, weights: dict[str, np.ndarray], g: Geometry, dy: np.ndarray, *,
                        magnitudes: bool = False, bias: bool | None = None) -> dict[str, np.ndarray]:
    """dL/dx, dL/d(each kernel) and dL/dbias of the layer, in float64, given dy = dL/d(its output).

    x and dy are in the layer's data_format (g.channels_first), dy after the activation; weights are the Keras
    weights by name, with 'bias' where g.use_bias. Returns {"x": dx in x's data_format, each kernel name: its
    gradient in Keras layout, "bias": (out,) where g.use_bias}.

    ``magnitudes``: the gauge G of the error bound instead, the same backward on |x|, |w|, |dy| and
    |f'(pre)| (the pre-activation of the real x and w: the derivative an engine takes is that of its own forward),
    so that each element's rounding errors are bounded by gamma_K * G, K from the family's
    ``backward_reduction_lengths``, as the forward's are by the oracle's gauge.
    """
    family = g.kind.family
    x_cl = to_channels_last(np.asarray(x, dtype=np.float64), g.channels_first)
    dy_cl = to_channels_last(np.asarray(dy, dtype=np.float64), g.channels_first)
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    # The forward up to the activation, as the oracle computes it (bias included: it moves the kinks).
    pre = pre_activation(x_cl, w, g)
    if dy_cl.shape != pre.shape:
        raise ValueError(f"dy has shape {np.shape(dy)}, but the layer's output has shape "
                         f"{from_channels_last(pre, g.channels_first).shape}")
    derivative = ACTIVATION_TABLE[g.activation].derivative(pre)
    kernels = {k: w[k] for k in family.kernel_names}
    if magnitudes:
        x_cl, dy_cl, derivative = np.abs(x_cl), np.abs(dy_cl), np.abs(derivative)
        kernels = {k: np.abs(v) for k, v in kernels.items()}
    dz = dy_cl * derivative                    # the gradient of the output before bias and activation
    grads = family.backward(x_cl, kernels, g, dz)
    grads["x"] = from_channels_last(grads["x"], g.channels_first)
    if g.use_bias if bias is None else bias:
        # The bias is added to every image and position of its channel: its gradient sums dz over all of them.
        # (``bias=True`` without a Keras bias: the sum a port variant's own bias gets, e.g. a torch block's.)
        grads["bias"] = dz.reshape(-1, dz.shape[-1]).sum(axis=0)
    return grads
