"""SeparableConv1D / 2D: depthwise (no bias), then a 1x1 pointwise conv, then the one bias; torch: two convs."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from .. import conv_grads, conv_ops
from ..conv_ops import torch_conv
from ..layouts import as_array, check_bias, check_names, conv_k2t, conv_t2k, copy, depthwise_k2t
from .base import COUNT, SIZES, Arg, Family, Geometry, LayerKind, PortSteps, batch_positions, require_sizes, taps
from .depthwise import depth_multiplier_weak_spots, keras_depthwise_kernel


class SeparableSteps(PortSteps):
    """The NumPy port's separable steps after the depthwise ones (DepthwiseSteps): what happens between the stages,
    then the 1x1 conv."""

    def pointwise_weight(self, kernel: np.ndarray, g: Geometry) -> np.ndarray:
        r = g.kind.rank
        cm, f = kernel.shape[-2:]
        return kernel.reshape(cm, f).T.reshape(f, cm, *(1,) * r)               # (1.., C*M, F) -> (F, C*M, 1..)

    def between_stages(self, z: np.ndarray, g: Geometry, bias: np.ndarray | None, dtype: str) -> np.ndarray:
        """Between the depthwise and pointwise steps of a separable layer: nothing, in Keras."""
        return z

    def pointwise_stage(self, z: np.ndarray, w: np.ndarray, g: Geometry) -> np.ndarray:
        r = g.kind.rank
        return torch_conv(z, w, g, strides=(1,) * r, dilation=(1,) * r, groups=1, pads=[(0, 0)] * r)


class SeparableFamily(Family):
    name = "separable"
    arguments: ClassVar[dict[str, Arg]] = {"filters": COUNT, "kernel_size": SIZES, "depth_multiplier": COUNT}
    torch_port = "harness.torch_port:_SeparableNd"
    port_steps = SeparableSteps
    requires = ("filters", "kernel_size")
    defaults: ClassVar[dict[str, Any]] = {"depth_multiplier": 1}
    kernel_names = ("depthwise_kernel", "pointwise_kernel")
    torch_names: ClassVar[dict[str, str]] = {"depthwise_kernel": "depthwise.weight",
                                             "pointwise_kernel": "pointwise.weight", "bias": "pointwise.bias"}
    stages: ClassVar[dict[str, str]] = {"depthwise": "the pointwise step"}
    # The hand-written torch block with a bias on the depthwise conv too (what folding undoes).
    port_variants = ("depthwise_bias",)

    def out_channels(self, g: Geometry) -> int:
        return g.filter_count

    def kernel_shapes(self, g: Geometry) -> dict[str, tuple[int, ...]]:
        c, m = g.in_channels, g.depth_multiplier
        return {"depthwise_kernel": (*g.kernel_size, c, m),
                "pointwise_kernel": (*(1,) * g.kind.rank, c * m, g.filter_count)}

    def reduction_length(self, g: Geometry) -> int:
        # A depthwise sum of `taps` terms, then a pointwise sum of C*M terms.
        return taps(g) + g.in_channels * g.depth_multiplier

    def forward(self, x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry) -> np.ndarray:
        # Keras SeparableConv: depthwise (no bias) then pointwise; the one bias comes after the pointwise step.
        return conv_ops.pointwise(self.stage_forward("depthwise", x, w, g), w["pointwise_kernel"])

    def variant_gradients(self, variant: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray],
                          grads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # The torch block with a depthwise bias b_d: its pointwise conv reads z + b_d, so dL/dW_p gains
        # b_d (x) dL/db (summed over positions); its pointwise bias b_p gets Keras's dL/db (b = b_p + W_p^T b_d);
        # and b_d, added at every position of the depthwise output (whose gradient is dz @ W_p^T), gets
        # W_p dL/db. Forward folding is exact; mapping these gradients back with it is not (a backward mutant).
        out = dict(grads)
        if "depthwise_bias" not in variant:
            return out
        bd = np.asarray(variant["depthwise_bias"], dtype=np.float64)
        pk = np.asarray(weights["pointwise_kernel"], dtype=np.float64)
        dbias = np.asarray(grads["bias"], dtype=np.float64)
        out["pointwise_kernel"] = grads["pointwise_kernel"] + np.outer(bd, dbias).reshape(pk.shape)
        out["depthwise_bias"] = pk.reshape(pk.shape[-2:]) @ dbias
        return out

    def variant_gradient_lengths(self, variant: Mapping[str, np.ndarray], lengths: Mapping[str, int],
                                 g: Geometry) -> dict[str, int]:
        out = dict(lengths)
        if "depthwise_bias" in variant:
            out["pointwise_kernel"] += 1                                   # z + b_d: one more rounding per term
            out["depthwise_bias"] = lengths["bias"] + g.filter_count       # then a dot product over the filters
        return out

    def forward_pair(self, x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry, magnitudes: bool
                     ) -> tuple[np.ndarray, np.ndarray | None]:
        # Both stages' magnitudes from the one depthwise pass (its patches serve x and |x|).
        z, z_abs = conv_ops.depthwise_pair(x, w["depthwise_kernel"], g, magnitudes)
        y = conv_ops.pointwise(z, w["pointwise_kernel"])
        del z
        return y, None if z_abs is None else conv_ops.pointwise(z_abs, np.abs(w["pointwise_kernel"]))

    def forward_rounded(self, x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry,
                        inner: Callable[[np.ndarray], np.ndarray],
                        outer: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        z = inner(self.stage_forward("depthwise", x, w, g))
        return outer(conv_ops.pointwise(z, w["pointwise_kernel"]))

    def stage_forward(self, stage: str, x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry) -> np.ndarray:
        if stage != "depthwise":
            return super().stage_forward(stage, x, w, g)
        return conv_ops.depthwise(x, w["depthwise_kernel"], g)

    def backward(self, x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry,
                 dz: np.ndarray) -> dict[str, np.ndarray]:
        # The chain rule through the two stages: the pointwise VJP needs the depthwise output (recomputed here, as
        # `forward` computes it), and hands the depthwise VJP the gradient of that output.
        z = self.stage_forward("depthwise", x, w, g)
        dz_depthwise, dpointwise = conv_grads.pointwise_backward(z, w["pointwise_kernel"], dz)
        dx, ddepthwise = conv_grads.depthwise_backward(x, w["depthwise_kernel"], dz_depthwise, g)
        return {"x": dx, "depthwise_kernel": ddepthwise, "pointwise_kernel": dpointwise}

    def backward_reduction_lengths(self, g: Geometry, input_shape: tuple[int, ...]) -> dict[str, int]:
        # As `reduction_length` adds its two stages' lengths (a term of y is rounded at most taps times in the
        # depthwise stage, then C*M times in the pointwise one, and (1 + theta_a)(1 + theta_b) = 1 + theta_(a+b)),
        # each gradient's length is the longest chain of roundings any one of its terms goes through, stage after
        # stage:
        #   pointwise_kernel: sum over batch x positions of z * dz, where z itself carries the depthwise stage's
        #                     taps roundings: taps + N*positions;
        #   the depthwise output's gradient dz @ W_p^T is a dot product over the F filters: F roundings, which
        #   every term of the two gradients below carries before the depthwise VJP adds its own:
        #   depthwise_kernel: F + N*positions (sum over batch x positions of x * that gradient);
        #   x:                F + taps*M (sum over the taps and the M channels each input channel feeds);
        #   bias:             N*positions - 1, a plain sum of dz, as for the other families.
        rows = batch_positions(g, input_shape)
        f = g.filter_count
        return {"x": f + taps(g) * g.depth_multiplier, "depthwise_kernel": f + rows,
                "pointwise_kernel": taps(g) + rows, "bias": rows - 1}

    def stage_reduction_length(self, stage: str, g: Geometry) -> int:
        if stage != "depthwise":
            return super().stage_reduction_length(stage, g)
        require_sizes(g)
        return taps(g)

    def keras_to_torch(self, kind: LayerKind, weights: Mapping[str, np.ndarray],  # type: ignore[override]  # **variant:
                       bias: np.ndarray | None, what: str, *,   # a family takes only its own port_variants
                       depthwise_bias: np.ndarray | None = None) -> dict[str, np.ndarray]:
        r = kind.rank
        dk = as_array("depthwise_kernel", weights["depthwise_kernel"], r + 2, what)
        pk = as_array("pointwise_kernel", weights["pointwise_kernel"], r + 2, what)
        cm = dk.shape[-2] * dk.shape[-1]
        if pk.shape[:r] != (1,) * r or pk.shape[r] != cm:
            raise ValueError(f"{what}: 'pointwise_kernel' should have shape {(1,) * r + (cm, '<filters>')} "
                             f"to follow depthwise_kernel {dk.shape}, got {pk.shape}")
        check_bias(bias, pk.shape[-1], what)
        state = {"depthwise.weight": copy(depthwise_k2t(dk, r)), "pointwise.weight": copy(pk.transpose(conv_k2t(r)))}
        if depthwise_bias is not None:
            bd = as_array("depthwise_bias", depthwise_bias, 1, what)
            check_bias(bd, cm, what, "depthwise_bias")
            state["depthwise.bias"] = copy(bd)
            # Even without a Keras bias the port needs one to cancel W_p^T b_d.
            state["pointwise.bias"] = unfold_depthwise_bias(pk, bd, bias)
        elif bias is not None:
            state["pointwise.bias"] = copy(bias)
        return state

    def torch_to_keras(self, kind: LayerKind, state: Mapping[str, np.ndarray], what: str, *,
                       in_channels: int | None, depth_multiplier: int | None) -> dict[str, np.ndarray]:
        r = kind.rank
        check_names(state, ("depthwise.weight", "pointwise.weight"), ("depthwise.bias", "pointwise.bias"), what)
        dk = keras_depthwise_kernel(state, "depthwise.weight", r, what, in_channels, depth_multiplier)
        cm = np.shape(state["depthwise.weight"])[0]
        pw = as_array("pointwise.weight", state["pointwise.weight"], r + 2, what)
        if pw.shape[1] != cm or pw.shape[2:] != (1,) * r:
            raise ValueError(f"{what}: 'pointwise.weight' should have shape (filters, {cm}{', 1' * r}) "
                             f"to follow depthwise.weight {np.shape(state['depthwise.weight'])}, got {pw.shape}")
        pk = copy(pw.transpose(conv_t2k(r)))
        out = {"depthwise_kernel": dk, "pointwise_kernel": pk}
        bp = state.get("pointwise.bias")
        bp = None if bp is None else as_array("pointwise.bias", bp, 1, what)
        check_bias(bp, pw.shape[0], what, "pointwise.bias")
        if "depthwise.bias" in state:
            bd = as_array("depthwise.bias", state["depthwise.bias"], 1, what)
            check_bias(bd, cm, what, "depthwise.bias")
            out["bias"] = fold_depthwise_bias(pk, bd, bp)  # a new Keras bias even when the pointwise had none
        elif bp is not None:
            out["bias"] = copy(bp)
        return out

    def port_stages(self, port: Any, x: np.ndarray, weights: Mapping[str, np.ndarray], g: Geometry,
                    dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
        z = port.depthwise_stage(x, port.depthwise_weight(weights["depthwise_kernel"], g), g)
        z = port.between_stages(z, g, weights.get("bias"), dtype)
        return port.pointwise_stage(z, port.pointwise_weight(weights["pointwise_kernel"], g), g), z

    def fuzz_config(self, draw: Callable[[Any], Any], st: Any, channels: int, max_channels: int) -> dict[str, Any]:
        return {"filters": draw(st.integers(1, max_channels)), "depth_multiplier": draw(st.integers(1, 3))}

    def weak_spots(self, g: Geometry) -> list[str]:
        return depth_multiplier_weak_spots(g)


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
    p: np.ndarray = pk.reshape(pk.shape[-2:])   # (C*M, F)
    bd = np.asarray(depthwise_bias, dtype=np.float64)
    check_bias(bd, p.shape[0], "fold_depthwise_bias", "depthwise_bias")
    b = np.zeros(p.shape[1]) if bias is None else np.asarray(bias, dtype=np.float64)
    check_bias(b, p.shape[1], "fold_depthwise_bias")
    return p, bd, b


def _result_dtype(*arrays: np.ndarray | None) -> np.dtype:
    return np.result_type(*(np.asarray(a).dtype for a in arrays if a is not None))


SEPARABLE = SeparableFamily()
KINDS = (
    LayerKind("SeparableConv1D", 1, SEPARABLE, paddings=("valid", "same", "causal")),
    LayerKind("SeparableConv2D", 2, SEPARABLE),
)
