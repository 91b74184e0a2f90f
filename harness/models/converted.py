"""What converters do that is the same function: a BatchNormalization folded into the conv before it, an activation
composed of several modules; the mapping adjusted so that neither is judged as a different function."""
from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np

from . import streams
from .capture import TorchCall
from .checks import split
from .mapping import CONV_ROLES, LayerMapping, Unit, torch_activation
from .weights_check import expected_params, same

FOLD_ULPS = 16   # a converter's rounding of each folded weight, in float32 ulps (relative 2^-20)


def fold_batch_norm(conv: Unit, bn: Unit) -> Unit:
    """The conv followed by a BatchNormalization as the one conv a converter folds them into (tf2onnx, torch.fx's
    fuser): kernel' = kernel * a per output channel (a separable layer's pointwise kernel), bias' = (bias - mean) * a
    + beta, a = gamma / sqrt(var + eps): exactly the composition, in float64."""
    c, b = conv.head, bn.head
    eps = float(b.config.get("epsilon", 1e-3))
    w = {k: v.astype(np.float64) for k, v in b.weights.items()}
    a = w.get("gamma", 1.0) / np.sqrt(w["moving_variance"] + eps)
    kernel_name = "pointwise_kernel" if conv.role == "separable" else "kernel"
    kernel = c.weights[kernel_name].astype(np.float64)
    # The output channels are the kernel's last axis, a depthwise kernel's last two, a transposed conv's second to
    # last ((*k, filters, in)).
    scale = a.reshape(kernel.shape[-2:]) if conv.role == "depthwise" else a[:, None] if conv.role == "conv_transpose" \
        else a
    bias = c.weights["bias"].astype(np.float64) if "bias" in c.weights else 0.0
    folded = {k: v.astype(np.float64) for k, v in c.weights.items()}
    folded.update({kernel_name: kernel * scale, "bias": (bias - w["moving_mean"]) * a + w.get("beta", 0.0)})
    node = replace(c, weights=folded, config={**c.config, "use_bias": True}, output=b.output)
    # What the folded bias is computed from: a converter's rounding of it is relative to this, not to |bias'|
    # (which may cancel): its share of the bound is added apart (_keras_side), and weights compare on it.
    scale_b = np.abs(bias * a) + np.abs(w["moving_mean"] * a) + np.abs(w.get("beta", 0.0))
    return Unit([node, b], conv.role, bn.activation if bn.activation != "linear" else conv.activation,
                tolerance=2.0 ** -20, extra_roundings=FOLD_ULPS, scales={"bias": scale_b})


def fold_where_converted(mapping: LayerMapping) -> dict[int, str]:
    """Pairs whose torch conv holds the conv's weights folded with the BatchNormalization after it (an unmapped
    unit reading only that conv's output) become one unit of both; returns the BN names folded, per unit id."""
    folded: dict[int, str] = {}
    unmapped = {u.head.index: (u, why) for u, why in mapping.keras_unmapped}
    readers = {u.head.sources[0]: (u, why) for u, why in unmapped.values()
               if u.head.kind == "BatchNormalization" and len(u.head.sources) == 1 and u.head.sources[0] is not None}
    for pair in mapping.pairs:
        unit = pair.unit
        if unit.role not in CONV_ROLES or len(unit.nodes) != 1:
            continue
        nxt = readers.get(unit.head.index)
        if nxt is None or sum(1 for n in unmapped.values() if unit.head.index in n[0].head.sources) > 1:
            continue
        fused = fold_batch_norm(unit, nxt[0])
        body = split(pair).body
        want = expected_params(fused)[-1]
        have = body[-1].module.weight.detach().cpu().numpy()
        if same(have, want["weight"], fused.tolerance):
            pair.unit = fused
            mapping.keras_unmapped.remove(nxt)
            folded[id(fused)] = nxt[0].name
    return folded


def unpair_composed_activations(mapping: LayerMapping, torch_first: bool) -> None:
    """An activation module of another function than the Keras activation it was paired with is a bug only where
    it reads the same tensor: a converter's hard_swish is x * relu6(x + 3) / 6, its Relu6 module reading x + 3. Such
    pairs (the module's input off the Keras activation's input by more than 1e-3 of its scale) are undone."""
    compose_silu(mapping, torch_first)
    for pair in list(mapping.pairs):
        unit, call = pair.unit, pair.calls[0]
        if unit.role != "act" or len(pair.calls) != 1 or torch_activation(call) == unit.activation:
            continue
        keras_in = unit.head.inputs[0]
        layout = streams.match(keras_in, call.inputs[0], torch_first) if call.inputs else None
        if layout is None:
            continue
        scale = float(np.max(np.abs(keras_in), initial=0.0)) or 1.0
        gap = float(np.max(np.abs(layout.to_torch(keras_in).reshape(call.inputs[0].shape) - call.inputs[0]),
                           initial=0.0))
        if gap > 1e-3 * scale:
            mapping.pairs.remove(pair)
            why = (f"the port's {call.kind} {call.path} reads another tensor (off by {gap / scale:.2g} of its "
                   "scale): the activation is composed of several operations in the port")
            mapping.keras_unmapped.append((unit, why))
            mapping.torch_unmapped.append((call, f"part of the port's composition of {unit.name}'s activation"))



def compose_silu(mapping: LayerMapping, torch_first: bool) -> None:
    """A Sigmoid module paired with a Keras silu (an activation layer's, or a conv's fused one) whose output times its
    input is the Keras output (within 1e-3 of its scale), where a later module of the port reads that product: the
    port computes x * sigmoid(x), the multiply in its forward (onnx2torch's module of tf2onnx's graph). The call
    becomes that composition: the port's own Sigmoid module, then the product with its input, as the port computes
    it. (A port that leaves the multiply out has no module reading the product: its Sigmoid stays a sigmoid.)"""
    calls = sorted([c for p in mapping.pairs for c in p.calls] + [c for c, _ in mapping.torch_unmapped],
                   key=lambda c: c.index)
    for pair in mapping.pairs:
        unit, span = pair.unit, split(pair)
        call = span.act if span.act is not None else (pair.calls[0] if unit.role == "act" and len(pair.calls) == 1
                                                      else None)
        if call is None or unit.activation != "silu" or call.kind != "Sigmoid" or call.output is None \
                or not call.inputs:
            continue
        x = call.inputs[0]
        layout = streams.match(unit.last.output, x, torch_first)
        if layout is None:
            continue
        product = x * call.output.reshape(x.shape)   # float32, as the port's multiply rounds it
        y = layout.to_torch(unit.last.output).reshape(x.shape)
        scale = float(np.max(np.abs(y), initial=0.0)) or 1.0
        if float(np.max(np.abs(product.astype(np.float64) - y), initial=0.0)) > 1e-3 * scale \
                or not _read_later(product, call.index, calls, scale):
            continue
        composed = replace(call, kind="SiLU", module=_silu_of()(call.module), output=product,
                           cls=f"{call.cls} times its input")
        pair.calls = [composed if c is call else c for c in pair.calls]


def _read_later(value: np.ndarray, after: int, calls: list[TorchCall], scale: float) -> bool:
    """Whether a call after index ``after`` reads ``value`` (of its size, within 1e-3 of ``scale``)."""
    for c in calls:
        if c.index > after and c.inputs and c.inputs[0].size == value.size and float(np.max(np.abs(
                c.inputs[0].reshape(value.shape).astype(np.float64) - value), initial=0.0)) <= 1e-3 * scale:
            return True
    return False


@functools.cache
def _silu_of() -> type:
    """nn.SiLU whose forward is a port's x * sigmoid_module(x) (built on first use: torch loads lazily)."""
    import torch

    class SiluOf(torch.nn.SiLU):
        def __init__(self, sigmoid: torch.nn.Module) -> None:
            super().__init__()
            self.sigmoid = sigmoid

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.sigmoid(x)

    return SiluOf
