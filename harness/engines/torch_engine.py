"""PyTorch: the public torch port (real nn.Conv modules) built from the Keras weights and called."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import EngineSkip
from ..layers import geometry, refuse_impossible
from ..tensors import generate, numpy_dtype
from .base import EngineOutput, Inputs


class TorchEngine:
    name = "torch"

    def __init__(self) -> None:
        import torch

        from .. import torch_port

        self.torch, self.port = torch, torch_port

    def run(self, layer: str, config: dict[str, Any], inputs: Inputs, options: dict[str, Any]) -> EngineOutput:
        torch = self.torch
        dtype_name = str(inputs.x.dtype)
        tdtype = getattr(torch, dtype_name)
        g = geometry(layer, config, inputs.x.shape)
        refuse_impossible("torch port", layer, g, inputs.x.shape)
        depthwise_bias = None
        gauge_extra = None
        unknown = set(options) - {"depthwise_bias"}  # the schema checks this; plug-ins calling us directly may not
        if unknown or (options.get("depthwise_bias") and g.kind.family != "separable"):
            raise ValueError(f"torch engine options {sorted(options)} do not apply to {layer}")
        if options.get("depthwise_bias"):
            # The hand-written port with a bias on the depthwise conv too: give it a random depthwise bias
            # and the pointwise bias that makes the block equal to Keras (what folding undoes).
            depthwise_bias = generate("normal", (g.in_channels * g.depth_multiplier,), 0, "depthwise_bias").astype(
                inputs.x.dtype)
        weights = {k: v.astype(np.float64) for k, v in inputs.weights.items()}
        module = self.port.from_keras(layer, config, weights, in_channels=g.in_channels,
                                      depthwise_bias=depthwise_bias, dtype=tdtype)
        x = inputs.x.astype(np.float32) if dtype_name == "bfloat16" else inputs.x
        xt = torch.from_numpy(np.ascontiguousarray(x)).to(tdtype)
        if not g.channels_first:  # torch modules are channels-first; move C around them
            xt = xt.movedim(-1, 1)
        stages: dict[str, Any] = {}
        if g.kind.family == "separable":
            # The depthwise stage's output, kept so that a failing separable layer can say which stage went wrong.
            module.depthwise.register_forward_hook(lambda _m, _i, out: stages.__setitem__("depthwise", out))
        try:
            with torch.no_grad():
                yt = module(xt)
        except RuntimeError as exc:
            if "not implemented" in str(exc):
                raise EngineSkip(f"PyTorch CPU has no kernel for this: {str(exc).splitlines()[0]}") from exc
            raise
        if not g.channels_first:
            yt = yt.movedim(1, -1)
        y = yt.float().numpy().astype(numpy_dtype(dtype_name)) if dtype_name == "bfloat16" else yt.numpy()
        intermediate: dict[str, np.ndarray] = {}
        if "depthwise" in stages:
            zt = stages["depthwise"] if g.channels_first else stages["depthwise"].movedim(1, -1)
            intermediate["depthwise"] = np.ascontiguousarray(
                zt.float().numpy().astype(numpy_dtype(dtype_name)) if dtype_name == "bfloat16" else zt.numpy())
            if depthwise_bias is not None:   # this block's depthwise conv adds its own bias
                intermediate["depthwise_bias"] = depthwise_bias.astype(np.float64)
        state = module.state_dict()
        if depthwise_bias is not None:
            # |W_p| |b_d| + |b_p'| enter the block's sums; Keras weights alone do not show them.
            wp = np.abs(state["pointwise.weight"].double().numpy().reshape(g.filters, -1))
            extra = np.abs(depthwise_bias.astype(np.float64)) @ wp.T + np.abs(state["pointwise.bias"].double().numpy())
            gauge_extra = extra.reshape((1, -1) + (1,) * g.kind.rank) if g.channels_first else extra
        return EngineOutput(
            y=np.ascontiguousarray(y),
            params=int(sum(p.numel() for p in module.parameters())),
            weight_shapes={k: tuple(v.shape) for k, v in state.items()},
            gauge_extra=gauge_extra,
            # Its depthwise sums add b_d: one more rounding on that path than Keras's block.
            extra_roundings=1 if depthwise_bias is not None else 0,
            intermediate=intermediate,
        )
