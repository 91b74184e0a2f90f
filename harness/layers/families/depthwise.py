"""DepthwiseConv1D / 2D: kernel (*k, C, M), output channel c*M + m; torch: a grouped conv (groups=C), weight
(C*M, 1, *k)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from .. import conv_grads, conv_ops
from ..conv_ops import torch_conv
from ..layouts import as_array, check_bias, check_names, copy, depthwise_k2t, depthwise_t2k, split_depth_multiplier
from .base import COUNT, SIZES, Arg, Family, Geometry, LayerKind, PortSteps, batch_positions, taps
from .conv import single_weight_state


class DepthwiseSteps(PortSteps):
    """The NumPy port's depthwise steps (a separable layer's first stage too): a grouped conv with groups=C."""

    def depthwise_weight(self, kernel: np.ndarray, g: Geometry) -> np.ndarray:
        r = g.kind.rank
        k = self.spatial(kernel, r)
        c, m = k.shape[r:]
        return k.transpose(r, r + 1, *range(r)).reshape(c * m, 1, *k.shape[:r])   # (*K, C, M) -> (C*M, 1, *K)

    def depthwise_stage(self, x: np.ndarray, w: np.ndarray, g: Geometry) -> np.ndarray:
        return torch_conv(x, w, g, strides=g.strides, dilation=g.dilation, groups=x.shape[1], pads=self.pads(x, g))


class DepthwiseFamily(Family):
    name = "depthwise"
    arguments: ClassVar[dict[str, Arg]] = {"kernel_size": SIZES, "depth_multiplier": COUNT}
    torch_port = "harness.torch_port:_DepthwiseNd"
    port_steps = DepthwiseSteps
    requires = ("kernel_size",)
    defaults: ClassVar[dict[str, Any]] = {"depth_multiplier": 1}
    kernel_names = ("kernel",)
    torch_names: ClassVar[dict[str, str]] = {"kernel": "weight", "bias": "bias"}

    def out_channels(self, g: Geometry) -> int:
        return g.in_channels * g.depth_multiplier

    def kernel_shapes(self, g: Geometry) -> dict[str, tuple[int, ...]]:
        return {"kernel": (*g.kernel_size, g.in_channels, g.depth_multiplier)}

    def reduction_length(self, g: Geometry) -> int:
        return taps(g)

    def forward(self, x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry) -> np.ndarray:
        return conv_ops.depthwise(x, w["kernel"], g)

    def forward_pair(self, x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry, magnitudes: bool
                     ) -> tuple[np.ndarray, np.ndarray | None]:
        return conv_ops.depthwise_pair(x, w["kernel"], g, magnitudes)   # one patch matrix for x and |x|

    def backward(self, x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry,
                 dz: np.ndarray) -> dict[str, np.ndarray]:
        dx, dkernel = conv_grads.depthwise_backward(x, w["kernel"], dz, g)
        return {"x": dx, "kernel": dkernel}

    def backward_reduction_lengths(self, g: Geometry, input_shape: tuple[int, ...]) -> dict[str, int]:
        rows = batch_positions(g, input_shape)
        # dx[c]: a dot product over the taps and the M output channels c*M + m that channel c feeds (an upper bound,
        # as for conv). dkernel: over the batch and the output positions. dbias: a plain sum of dz, no product.
        return {"x": taps(g) * g.depth_multiplier, "kernel": rows, "bias": rows - 1}

    def keras_to_torch(self, kind: LayerKind, weights: Mapping[str, np.ndarray], bias: np.ndarray | None,
                       what: str, **variant: Any) -> dict[str, np.ndarray]:
        kernel = as_array("kernel", weights["kernel"], kind.rank + 2, what)
        return single_weight_state(depthwise_k2t(kernel, kind.rank), bias, kernel.shape[-2] * kernel.shape[-1], what)

    def torch_to_keras(self, kind: LayerKind, state: Mapping[str, np.ndarray], what: str, *,
                       in_channels: int | None, depth_multiplier: int | None) -> dict[str, np.ndarray]:
        check_names(state, ("weight",), ("bias",), what)
        out = {"kernel": keras_depthwise_kernel(state, "weight", kind.rank, what, in_channels, depth_multiplier)}
        if "bias" in state:
            bias = as_array("bias", state["bias"], 1, what)
            check_bias(bias, np.shape(state["weight"])[0], what)
            out["bias"] = copy(bias)
        return out

    def port_stages(self, port: Any, x: np.ndarray, weights: Mapping[str, np.ndarray], g: Geometry,
                    dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
        return port.depthwise_stage(x, port.depthwise_weight(weights["kernel"], g), g), None

    def fuzz_config(self, draw: Callable[[Any], Any], st: Any, channels: int, max_channels: int) -> dict[str, Any]:
        return {"depth_multiplier": draw(st.integers(1, 3))}

    def weak_spots(self, g: Geometry) -> list[str]:
        return depth_multiplier_weak_spots(g)


def keras_depthwise_kernel(state: Mapping[str, np.ndarray], key: str, rank: int, what: str,
                           in_channels: int | None, depth_multiplier: int | None) -> np.ndarray:
    """A torch depthwise weight (C*M, 1, *k) -> the Keras kernel (*k, C, M); C*M is split as the caller says."""
    dw = as_array(key, state[key], rank + 2, what)
    if dw.shape[1] != 1:
        raise ValueError(f"{what}: {key!r} should have shape (C*M, 1, *kernel) "
                         f"(one input channel per group), got {dw.shape}")
    m = split_depth_multiplier(dw.shape[0], in_channels, depth_multiplier, what)
    return copy(depthwise_t2k(dw, rank, m))


def depth_multiplier_weak_spots(g: Geometry) -> list[str]:
    if g.in_channels == 1 or g.depth_multiplier == 1:
        return ["C == 1 or M == 1: every depth-multiplier channel order agrees"]
    return []


DEPTHWISE = DepthwiseFamily()
KINDS = (
    LayerKind("DepthwiseConv1D", 1, DEPTHWISE, paddings=("valid", "same", "causal")),
    LayerKind("DepthwiseConv2D", 2, DEPTHWISE),
)
