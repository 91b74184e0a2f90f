"""Conv1D / Conv2D: grouped cross-correlation, kernel (*k, C/groups, F); torch nn.ConvNd weight (F, C/groups, *k)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from .. import conv_grads, conv_ops
from ..conv_ops import torch_conv
from ..layouts import as_array, check_bias, check_names, conv_k2t, conv_t2k, copy
from .base import COUNT, SIZES, Arg, Family, Geometry, LayerKind, PortSteps, batch_positions, taps


class ConvSteps(PortSteps):
    """The NumPy port's conv steps: the weight to torch's layout, then F.pad + F.convNd."""

    def conv_weight(self, kernel: np.ndarray, g: Geometry) -> np.ndarray:
        r = g.kind.rank
        return self.spatial(kernel, r).transpose(r + 1, r, *range(r))          # (*K, C/g, F) -> (F, C/g, *K)

    def conv_stage(self, x: np.ndarray, w: np.ndarray, g: Geometry) -> np.ndarray:
        return torch_conv(x, w, g, strides=g.strides, dilation=g.dilation, groups=g.groups, pads=self.pads(x, g))


class ConvFamily(Family):
    name = "conv"
    arguments: ClassVar[dict[str, Arg]] = {"filters": COUNT, "kernel_size": SIZES, "groups": COUNT}
    torch_port = "harness.torch_port:_ConvNd"
    port_steps = ConvSteps
    requires = ("filters", "kernel_size")
    defaults: ClassVar[dict[str, Any]] = {"groups": 1}
    kernel_names = ("kernel",)
    torch_names: ClassVar[dict[str, str]] = {"kernel": "weight", "bias": "bias"}

    def out_channels(self, g: Geometry) -> int:
        return g.filter_count

    def kernel_shapes(self, g: Geometry) -> dict[str, tuple[int, ...]]:
        return {"kernel": (*g.kernel_size, g.in_channels // g.groups, g.filter_count)}

    def reduction_length(self, g: Geometry) -> int:
        return taps(g) * (g.in_channels // g.groups)

    def impossible(self, g: Geometry) -> list[tuple[str, str]]:
        if g.in_channels % g.groups or g.filter_count % g.groups:
            return [("config.groups", (f"groups={g.groups} must divide the input channels ({g.in_channels}) "
                                       f"and filters ({g.filters})"))]
        return []

    def forward(self, x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry) -> np.ndarray:
        return conv_ops.conv(x, w["kernel"], g)

    def backward(self, x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry,
                 dz: np.ndarray) -> dict[str, np.ndarray]:
        dx, dkernel = conv_grads.conv_backward(x, w["kernel"], dz, g)
        return {"x": dx, "kernel": dkernel}

    def backward_reduction_lengths(self, g: Geometry, input_shape: tuple[int, ...]) -> dict[str, int]:
        rows = batch_positions(g, input_shape)
        # dx: a dot product over the taps and the F/groups output channels of its group that read it (an upper
        # bound: with strides fewer taps reach an element), one product and the sums. dkernel: a dot product over
        # the batch and the output positions. dbias: a plain sum of those dz, no product, so one rounding fewer.
        return {"x": taps(g) * (g.filter_count // g.groups), "kernel": rows, "bias": rows - 1}

    def keras_to_torch(self, kind: LayerKind, weights: Mapping[str, np.ndarray], bias: np.ndarray | None,
                       what: str, **variant: Any) -> dict[str, np.ndarray]:
        kernel = as_array("kernel", weights["kernel"], kind.rank + 2, what)
        return single_weight_state(kernel.transpose(conv_k2t(kind.rank)), bias, kernel.shape[-1], what)

    def torch_to_keras(self, kind: LayerKind, state: Mapping[str, np.ndarray], what: str, *,
                       in_channels: int | None, depth_multiplier: int | None) -> dict[str, np.ndarray]:
        return single_weight_keras(kind, state, what, out_axis=0)

    def in_channels_from(self, weights: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> int:
        return super().in_channels_from(weights, config) * int(config.get("groups", 1))

    def port_stages(self, port: Any, x: np.ndarray, weights: Mapping[str, np.ndarray], g: Geometry,
                    dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
        return port.conv_stage(x, port.conv_weight(weights["kernel"], g), g), None

    def fuzz_config(self, draw: Callable[[Any], Any], st: Any, channels: int, max_channels: int) -> dict[str, Any]:
        groups = draw(st.sampled_from([d for d in range(1, channels + 1) if channels % d == 0]))
        return {"filters": groups * draw(st.integers(1, 3)), "groups": groups}

    def weak_spots(self, g: Geometry) -> list[str]:
        if g.groups == 1 and g.in_channels == g.filters == 1:
            return ["one input and one output channel: kernel layouts cannot be told apart"]
        return []


def single_weight_state(weight: np.ndarray, bias: np.ndarray | None, out_channels: int,
                        what: str) -> dict[str, np.ndarray]:
    """The state dict of one nn.ConvNd: weight (and bias)."""
    check_bias(bias, out_channels, what)
    state = {"weight": copy(weight)}
    if bias is not None:
        state["bias"] = copy(bias)
    return state


def single_weight_keras(kind: LayerKind, state: Mapping[str, np.ndarray], what: str, out_axis: int
                        ) -> dict[str, np.ndarray]:
    """The Keras weights of one torch conv's state dict (weight, and bias of the length of the weight's
    ``out_axis``): the kernel by conv_t2k, which also takes a transposed conv's (in, out, *k) to (*k, out, in)."""
    check_names(state, ("weight",), ("bias",), what)
    weight = as_array("weight", state["weight"], kind.rank + 2, what)
    bias = state.get("bias")
    bias = None if bias is None else as_array("bias", bias, 1, what)
    check_bias(bias, weight.shape[out_axis], what)
    out = {"kernel": copy(weight.transpose(conv_t2k(kind.rank)))}
    if bias is not None:
        out["bias"] = copy(bias)
    return out


CONV = ConvFamily()
KINDS = (
    LayerKind("Conv1D", 1, CONV, paddings=("valid", "same", "causal")),
    LayerKind("Conv2D", 2, CONV),
    LayerKind("Conv3D", 3, CONV),
)
