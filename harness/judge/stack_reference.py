"""A sequence's reference: the oracle's float64 composition of its layers and the error bound propagated through them.

Each engine computes each layer in the sequence's dtype on the previous layer's rounded output. The oracle composes
the layers in float64, without rounding between them: the exact composition, up to float64's own roundings.

The bound propagated through the sequence. Layer i maps z_{i-1} to z_i = f_i(p_i), p_i = W_i * z_{i-1} + b_i: W_i *
is the layer's linear part (a conv; for a separable layer the depthwise then the pointwise conv), f_i its
activation. The oracle's layer i reads z*_{i-1}, the engine's its own output zh_{i-1} of the layer before. The
engine's pre-activation ph_i = fl(W_i * zh_{i-1} + b_i) is off from the exact p*_i by

    |ph_i - p*_i| <= |ph_i - (W_i * zh_{i-1} + b_i)| + |W_i * (zh_{i-1} - z*_{i-1})|
                  <= c (gamma_Ki(u) + gamma_Ki(u_64)) G_i(|zh_{i-1}|)  +  |W_i| * |zh_{i-1} - z*_{i-1}|
                  <= c (gamma_Ki(u) + gamma_Ki(u_64)) G_i(|z*_{i-1}| + B_{i-1})  +  |W_i| * B_{i-1}  =: E_i

The first term is layer i's own rounding on its actual input (the single-layer bound, harness.reference.agreement, with
the gauge G_i, the layer on |x|, |w|, |b|, taken where that input may lie: G grows with |x|; and, as there, its
underflow etas (1 + gamma_Ki(u)) H_i (eta + eta_64), H_i = oracle.underflow_count); the second is the error
it was given, carried by the linear part: the same layer on magnitudes without its bias, applied to the previous
bound (oracle.gauge with x := B_{i-1}, b := 0). The activation then moves it by at most L_i E_i, L_i = sup |f_i'|
(the activation table's declared `slope`), and for a non-decreasing f_i (the table's `monotone`) by at most the
image of the interval, max(f_i(p*_i + E_i) - f_i(p*_i), f_i(p*_i) - f_i(p*_i - E_i)), which is smaller: 0 where
relu clamps (p*_i < -E_i), where every engine's output is exactly 0. With its own evaluation error (a_i ulps of
|z*_i|, as for one layer), per element, with B_{-1} = 0 (every engine reads the same input):

    B_i = min(L_i E_i, image of [p*_i - E_i, p*_i + E_i] under f_i) + c a_i (u + u_64) |z*_i|

For linear and relu-like activations in their linear part this is the formula
B_i = c (gamma_Ki(u) + gamma_Ki(u_64)) G_i(|z*_{i-1}| + B_{i-1}) + L_i |W_i| * B_{i-1} (+ the ulps term).
The oracle's own float64 roundings are inside: its gamma_K(u_64) terms are carried like the engine's; the image is
computed in float64 and given float64's rounding of its operands as slack.

Where gamma_Ki(u) >= 1, or where B_i >= |z*_i| at every element of a layer whose exact output is not all zero (a
wrong all-zero output would pass there), the bound says nothing: `unusable` says where.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..cases.stacks import StackCase, StackLayer, slope
from ..engines.base import SequenceRequest, Step
from ..layers.activations import ACTIVATION_TABLE
from ..reference import oracle
from ..reference.agreement import ORACLE_DTYPE, SAFETY, flush_eta, gamma, rounding_eta, underflow_eta
from ..tensors.values import generate, round_to, unit_roundoff


@dataclass
class StackInputs:
    """The values every engine consumes: generated once in float64, rounded once to the stack's dtype."""

    x: np.ndarray
    weights: list[dict[str, np.ndarray]]     # per layer, Keras names and layout, the stack's dtype
    x64: np.ndarray
    weights64: list[dict[str, np.ndarray]]


@dataclass
class LayerReference:
    """One layer's exact output and the bound of an engine's distance to it."""

    y: np.ndarray          # the oracle's composition up to this layer, float64, channels last
    bound: np.ndarray      # B_i, per element
    gauge: np.ndarray      # G_i(|z*_{i-1}|): the scale of the output
    k: int                 # the layer's reduction length
    slope: float           # L_i


@dataclass
class StackReference:
    inputs: StackInputs
    layers: list[LayerReference]


def make_inputs(stack: StackCase) -> StackInputs:
    """The input (stream "input") and each layer's weights (streams "layers[i].NAME"), rounded once."""
    x = round_to(generate(stack.input, stack.input_shape, stack.seed, "input", -1), stack.dtype)
    weights = [{name: round_to(generate(layer.case.weights.get(name, "normal"), shape, stack.seed,
                                        f"layers[{i}].{name}"), stack.dtype)
                for name, shape in layer.geometry.weight_shapes().items()}
               for i, layer in enumerate(stack.layers)]
    return StackInputs(x=x, weights=weights, x64=x.astype(np.float64),
                       weights64=[{k: v.astype(np.float64) for k, v in w.items()} for w in weights])


def sequence_request(stack: StackCase, inputs: StackInputs) -> SequenceRequest:
    """What an engine is asked to compute for ``stack`` (Engine.run_sequence)."""
    steps = [Step(layer=layer.layer, config=layer.config, geometry=layer.geometry, input_shape=layer.input_shape,
                  weights=w) for layer, w in zip(stack.layers, inputs.weights)]
    return SequenceRequest(steps=steps, x=inputs.x, dtype=stack.dtype, x64=inputs.x64, weights64=inputs.weights64)


def layer_reference(layer: StackLayer, dtype: str, z: np.ndarray, carried: np.ndarray | None,
                    w: dict[str, np.ndarray]) -> LayerReference:
    """Layer i on the exact composition's output ``z`` (float64) and the bound B_i, given B_{i-1} (``carried``;
    None for the first layer, whose input every engine reads exactly)."""
    name, config, g = layer.layer, layer.config, layer.geometry
    slope_i = slope(g.activation)
    if slope_i is None:
        raise ValueError(f"{name}: activation {g.activation!r} has no known slope")
    y = oracle.run(name, config, z, w)
    exact_gauge = oracle.gauge(name, config, z, w)
    k = g.reduction_length()
    u, u64 = unit_roundoff(dtype), unit_roundoff(ORACLE_DTYPE)
    reach = exact_gauge if carried is None else oracle.gauge(name, config, np.abs(z) + carried, w)
    # E: the pre-activation's error, its own rounding on the engine's actual input and the error it was given.
    # Underflow (harness.reference.agreement.error_bound): H etas of the layer's own roundings, each through the rest of
    # its sum's roundings; and, where the activation's evaluation rounds, one for its output.
    eta = rounding_eta(dtype) + underflow_eta(ORACLE_DTYPE)
    underflow = (1.0 + gamma(k, u)) * np.asarray(oracle.underflow_count(g, z, w)) * eta
    daz = oracle.flushed_operands(name, config, z, w, dtype)   # subnormal operands read as 0 (TensorFlow)
    if daz is not None:
        underflow = underflow + (1.0 + gamma(k, u)) * daz
    pre_error = SAFETY * ((gamma(k, u) + gamma(k, u64)) * reach + underflow)
    if carried is not None:
        without_bias = {n: (np.zeros_like(v) if n == "bias" else v) for n, v in w.items()}
        pre_error = pre_error + oracle.gauge(name, config, carried, without_bias)
    pre = y if g.activation == "linear" else oracle.run(name, {**config, "activation": None}, z, w)
    act = ACTIVATION_TABLE[g.activation]
    rounds = 1.0 if act.ulps or act.absolute_ulps else 0.0
    flushed = flush_eta(dtype) + underflow_eta(ORACLE_DTYPE)   # an underflowing activation result flushed to 0
    bound = through(g.activation, pre, y, pre_error) + SAFETY * (act.ulps * (u + u64) * np.abs(y) + rounds * flushed)
    return LayerReference(y=y, bound=bound, gauge=exact_gauge, k=k, slope=slope_i)


def through(activation: str, pre: np.ndarray, y: np.ndarray, error: np.ndarray) -> np.ndarray:
    """How far f(p) may be from f(pre) for |p - pre| <= error: L * error, and for a non-decreasing f (the table's
    `monotone`) the image of the interval, max(f(pre + error) - f(pre), f(pre) - f(pre - error)), where it is
    smaller (0 where relu clamps); the image is computed in float64, so it is given float64's rounding of its
    operands as slack."""
    slope_f = slope(activation)
    if slope_f is None:
        raise ValueError(f"activation {activation!r} has no known slope")
    if activation == "linear":
        return error
    act = ACTIVATION_TABLE[activation]
    if not act.monotone:
        return slope_f * error
    with np.errstate(all="ignore"):
        image = np.maximum(act.reference(pre + error) - y, y - act.reference(pre - error))
    slack = 8.0 * unit_roundoff(ORACLE_DTYPE) * (slope_f * (np.abs(pre) + error) + np.abs(y))
    return np.minimum(slope_f * error, image + slack)


def propagate(stack: StackCase, inputs: StackInputs) -> list[LayerReference]:
    """Every layer's exact output and bound, in order (the module docstring derives B_i)."""
    out: list[LayerReference] = []
    z, carried = inputs.x64, None
    for layer, w in zip(stack.layers, inputs.weights64):
        out.append(layer_reference(layer, stack.dtype, z, carried, w))
        z, carried = out[-1].y, out[-1].bound
    return out


_cache: dict[tuple[str, str], StackReference] = {}


def reference(stack: StackCase) -> StackReference:
    """The stack's inputs, exact outputs and bounds, computed once per stack and process (one stack kept)."""
    key = (stack.file, stack.id)
    if key not in _cache:
        _cache.clear()
        inputs = make_inputs(stack)
        _cache[key] = StackReference(inputs=inputs, layers=propagate(stack, inputs))
    return _cache[key]


def unusable(stack: StackCase, layers: list[LayerReference]) -> str:
    """Where the bound says nothing ('' where it is usable at every layer): gamma_K >= 1, or a layer whose bound
    B_i is at least |z*_i| at every element, so that a wrong all-zero output would pass there (where z*_i is all
    zero, relu having clamped every element, an all-zero output is right and the bound is ~0: usable)."""
    u = unit_roundoff(stack.dtype)
    for i, (layer, ref) in enumerate(zip(stack.layers, layers)):
        where = f"layers[{i}] ({layer.layer})"
        if gamma(ref.k, u) >= 1.0:
            return f"{where}: K={ref.k} terms in {stack.dtype} (gamma_K >= 1)"
        if np.any(ref.y) and np.all(ref.bound >= np.abs(ref.y)):
            scale = ref.gauge > 0
            share = float(np.median(ref.bound[scale] / ref.gauge[scale])) if np.any(scale) else math.inf
            return (f"{where}: the propagated bound is at least |y| at every element (median {share:.3g} x the "
                    "gauge G)")
    return ""
