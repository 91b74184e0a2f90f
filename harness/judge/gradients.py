"""The backward check: a layer's gradients (dL/dx, dL/d each kernel, dL/dbias) judged tensor by tensor against the
float64 oracle, each element within its own error bound.

The upstream gradient dy (the case's `grad_output`, seeded normal by default) is given like any tensor and rounded
once to the case dtype; every engine computes the vector-Jacobian product of the layer with it (no loss function:
nothing else rounds). The bound of a gradient tensor T, per element (README, "Tolerance model: backward"):

    (gamma_{K_T + 1}(u) + gamma_{K_T + 1}(u_64)) * G_T + A_T

- G_T is the same backward computed on |x|, |w|, |dy| and |f'(pre)| (harness.reference.gradients, magnitudes);
- K_T the roundings on the longest path of one of its terms (Family.backward_reduction_lengths), plus one for the
  product dy * f'(pre);
- A_T the activation's allowance: the engine takes the derivative at its own pre-activation, which differs from the
  oracle's by up to the forward bound e = (gamma_K(u) + gamma_K(u_64)) * G_fwd. Where a kink of the activation (relu's
  0, relu6's 0 and 6) lies within e of the oracle's pre-activation the engine may take the derivative on either side
  (a jump of 1); elsewhere its derivative moves by at most curvature * e + derivative_ulps * u
  (harness.layers.activations).
  That per-element error of dz = dy * f'(pre), E = |dy| * (jump + curvature * e + derivative_ulps * u), is carried
  through the same linear backward on magnitudes: A_T = backward(|x|, |w|, E)[T]. It is 0 for a linear layer.
  e includes the forward's underflow term (harness.reference.agreement.error_bound): a pre-activation can be off by it.

Two terms complete it (README, "Tolerance model: backward"):

- The engine's own rounding of the side it takes. Its gradient is fl(B dz_e), B the linear backward and dz_e its
  dz, which differs from the oracle's dz by up to E: |fl(B dz_e) - B dz| <= gamma_K |B| |dz_e| + |B| E <=
  gamma_K G_T + (1 + gamma_K) A_T. An engine taking relu'(0) = 1 (a port writing relu as x.clamp(min=0)) rounds
  terms the oracle's gauge does not have (|f'(pre)| = 0 there): without the factor it failed at 1 + u. A_T is
  itself computed in float64, so the factor is 1 + gamma_K(u) + gamma_K(u_64).
- Underflow: (1 + gamma_K(u)) H_T (eta_e + eta_64), H_T the etas (harness.reference.agreement.underflow_eta) that the
  roundings of one element may hold, each weighted by what multiplies it afterwards. Each stage of a gradient sums
  n >= 1 products and stores the sum: at most n + 1 <= 2n etas (sums add none), and an operand that carries etas of
  its own (dz = dy * f': one for the product, and |dy| for f' where it is computed; a separable layer's
  intermediate gradient dz W_p^T and its depthwise output z) has them multiplied by the other factor. So
  H_T <= 2 B_T(|x| + 1, |w| + 1, (|dy| + 1)(|f'| + 1)), the backward on magnitudes each raised by one: every
  product term is then at least 1 (2 x counts 2n >= n + 1 per sum) and at least the other factor's magnitude
  (times the count of etas its operand carries, bounded the same way stage by stage). It matters where gradients
  lie on the subnormal grid: float16 gradients below 2^-14 (a correct port failed at 3.52 without it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import engines
from ..engines.base import EngineOutput, Inputs
from ..layers.activations import get_activation
from ..layers.conv_ops import from_channels_last, to_channels_last
from ..layers.geometry import Geometry, output_shape
from ..reference import oracle
from ..reference.agreement import Bound, Metrics, gamma, measure, rounding_eta, underflow_eta, usable
from ..reference.gradients import reference_gradients
from ..tensors.values import generate, numpy_dtype, round_to, unit_roundoff
from .forward import mismatch, over_bound, tag

if TYPE_CHECKING:
    from ..cases.schema import Case

GRAD_OUTPUT_NAME = "grad_output"   # the tensor name its seeded stream is drawn under (harness.tensors.values.generate)


def gradient_names(g: Geometry) -> tuple[str, ...]:
    """The tensors a backward item judges, in the order it judges them: the input, each kernel, the bias."""
    return ("x", *g.kind.family.kernel_names, *(("bias",) if g.use_bias else ()))


def display_name(name: str) -> str:
    """'dx', 'dkernel', 'ddepthwise_kernel', 'dbias': the name a message gives a gradient tensor."""
    return f"d{name}"


@dataclass
class BackwardReference:
    """Everything a case's backward items are judged against (computed once per case and process)."""

    dy: np.ndarray                   # the upstream gradient, in the case dtype and the output's data_format
    grads: dict[str, np.ndarray]     # the oracle's gradients, float64 (x in its data_format, Keras layouts)
    gauges: dict[str, np.ndarray]    # G_T: the same backward on magnitudes
    allowance: dict[str, np.ndarray]   # A_T: what the activation's derivative may move at the engine's forward
    lengths: dict[str, int]          # K_T, the product dy * f' included
    weights64: dict[str, np.ndarray] = field(default_factory=dict)   # the Keras weights (for port variants)
    underflow: dict[str, np.ndarray] = field(default_factory=dict)   # H_T: the etas an element's roundings hold

    def expected(self, g: Geometry, out: EngineOutput) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                                                 dict[str, np.ndarray], dict[str, int]]:
        """Values, gauges, allowances and lengths of the gradients ``out``'s port has: the Keras layer's, or a port
        variant's (a torch separable block with a depthwise bias: out.intermediate["depthwise_bias"] is its b_d;
        Family.variant_gradients)."""
        family = g.kind.family
        variant = {k: v for k, v in out.intermediate.items() if k in VARIANT_TENSORS}
        if not variant:
            return self.grads, self.gauges, self.allowance, self.lengths
        magnitudes = {k: np.abs(v) for k, v in variant.items()}
        weights = {k: np.abs(v) for k, v in self.weights64.items()}
        return (family.variant_gradients(variant, self.weights64, self.grads),
                family.variant_gradients(magnitudes, weights, self.gauges),
                family.variant_gradients(magnitudes, weights, self.allowance),
                family.variant_gradient_lengths(variant, self.lengths, g))

    def expected_underflow(self, g: Geometry, out: EngineOutput) -> dict[str, np.ndarray]:
        """H_T of the gradients ``out``'s port has (as ``expected``): a port variant's tensors carry the Keras
        tensors' etas through the same map, and their own products and final rounding: at most K + 1 more."""
        family = g.kind.family
        variant = {k: v for k, v in out.intermediate.items() if k in VARIANT_TENSORS}
        if not variant:
            return self.underflow
        magnitudes = {k: np.abs(v) for k, v in variant.items()}
        weights = {k: np.abs(v) for k, v in self.weights64.items()}
        lengths = family.variant_gradient_lengths(variant, self.lengths, g)
        return {n: h + lengths.get(n, 0) + 1
                for n, h in family.variant_gradients(magnitudes, weights, self.underflow).items()}


# Tensors an engine reports in EngineOutput.intermediate that make its port a variant with other parameters.
VARIANT_TENSORS = ("depthwise_bias",)


def grad_output(case: Case) -> np.ndarray:
    """dy for ``case``: its `grad_output` spec over the output's shape, seeded, rounded once to the case dtype."""
    g = case.geometry
    shape = output_shape(g, case.input_shape)
    return round_to(generate(case.grad_output, shape, case.seed, GRAD_OUTPUT_NAME, 1 if g.channels_first else -1),
                    case.dtype)


def allowance_dz(case: Case, inputs: Inputs, dy64: np.ndarray) -> np.ndarray | None:
    """E, channels last: how far an engine's dz = dy * f'(pre_engine) may be from the oracle's (None: exact)."""
    g = case.geometry
    act = get_activation(g.activation)
    if not (act.kinks or act.curvature or act.derivative_ulps):
        return None
    u, u64 = unit_roundoff(case.dtype), unit_roundoff("float64")
    k = g.reduction_length()
    x_cl = to_channels_last(inputs.x64, g.channels_first)
    gauge = oracle.pre_activation(np.abs(x_cl), {n: np.abs(v) for n, v in inputs.weights64.items()}, g)
    # The forward bound of the pre-activation, its underflow term included (harness.reference.agreement.error_bound).
    h = oracle.underflow_count(g, x_cl, inputs.weights64, channels_last=True)
    eta = rounding_eta(case.dtype) + underflow_eta("float64")
    e = (gamma(k, u) + gamma(k, u64)) * gauge + (1.0 + gamma(k, u)) * np.asarray(h) * eta
    per_dy = act.curvature * e + act.derivative_ulps * u
    if act.kinks:
        pre = oracle.pre_activation(x_cl, inputs.weights64, g)
        for kink in act.kinks:
            per_dy = per_dy + (np.abs(pre - kink) <= e)   # the derivative jumps by 1 across a kink
    return np.abs(to_channels_last(dy64, g.channels_first)) * per_dy


def _allowance(case: Case, inputs: Inputs, e_dz: np.ndarray | None, names: tuple[str, ...]
               ) -> dict[str, np.ndarray]:
    g = case.geometry
    if e_dz is None:
        out = {n: np.zeros(np.shape(inputs.x64) if n == "x" else np.shape(inputs.weights64[n])) for n in names
               if n != "bias"}
        return {**out, "bias": np.zeros(g.kind.family.out_channels(g))}
    x_cl = np.abs(to_channels_last(inputs.x64, g.channels_first))
    kernels = {n: np.abs(inputs.weights64[n]) for n in g.kind.family.kernel_names}
    out = g.kind.family.backward(x_cl, kernels, g, e_dz)
    out["x"] = from_channels_last(out["x"], g.channels_first)
    out["bias"] = e_dz.reshape(-1, e_dz.shape[-1]).sum(axis=0)
    return out


def underflow_counts(case: Case, inputs: Inputs, dy64: np.ndarray) -> dict[str, np.ndarray]:
    """H_T per gradient tensor (the module docstring derives it): 2 B_T(|x| + 1, |w| + 1, (|dy| + 1)(|f'| + 1)),
    in the tensors' layouts, "bias" always (a port variant may have one where Keras has none)."""
    g = case.geometry
    x_cl = to_channels_last(inputs.x64, g.channels_first)
    pre = oracle.pre_activation(x_cl, inputs.weights64, g)
    derivative = np.abs(get_activation(g.activation).derivative(pre))
    dz = (np.abs(to_channels_last(dy64, g.channels_first)) + 1.0) * (derivative + 1.0)
    kernels = {n: np.abs(inputs.weights64[n]) + 1.0 for n in g.kind.family.kernel_names}
    out = g.kind.family.backward(np.abs(x_cl) + 1.0, kernels, g, dz)
    out["x"] = from_channels_last(out["x"], g.channels_first)
    out["bias"] = dz.reshape(-1, dz.shape[-1]).sum(axis=0)
    return {n: 2.0 * v for n, v in out.items()}


_cache: dict[tuple[str, str], BackwardReference] = {}


def backward_reference(case: Case, inputs: Inputs) -> BackwardReference:
    """The case's BackwardReference (one case at a time is kept, as harness.judge.runner.reference keeps one)."""
    key = (case.file, case.id)
    if key not in _cache:
        _cache.clear()
        g = case.geometry
        dy = grad_output(case)
        dy64 = dy.astype(np.float64)
        names = gradient_names(g)
        # "bias" always: a port variant with a bias Keras lacks (a torch block's compensating pointwise bias) has
        # that gradient; the judge asks for it only where the layer or the engine has the tensor.
        grads = reference_gradients(inputs.x64, inputs.weights64, g, dy64, bias=True)
        gauges = reference_gradients(inputs.x64, inputs.weights64, g, dy64, magnitudes=True, bias=True)
        lengths = {n: k + 1 for n, k in g.kind.family.backward_reduction_lengths(g, case.input_shape).items()}
        _cache[key] = BackwardReference(dy=dy, grads=grads, gauges=gauges,
                                        allowance=_allowance(case, inputs, allowance_dz(case, inputs, dy64), names),
                                        lengths=lengths, weights64=inputs.weights64,
                                        underflow=underflow_counts(case, inputs, dy64))
    return _cache[key]


def unusable_lengths(case: Case) -> dict[str, int]:
    """The gradient tensors whose bound would be vacuous in the case dtype (gamma_K >= 1), by name."""
    g = case.geometry
    u = unit_roundoff(case.dtype)
    lengths = g.kind.family.backward_reduction_lengths(g, case.input_shape)
    return {n: k + 1 for n, k in lengths.items() if n in gradient_names(g) and not usable(k + 1, u)}


@dataclass
class GradientJudgement:
    verdict: str                                   # pass | fail
    message: str = ""                              # the headline (the runner adds the findings)
    tensor: str = ""                               # the tensor that decided a fail
    check: str = ""                                # presence (missing, unknown) | shape | dtype | values | expect
    metrics: dict[str, Metrics] = field(default_factory=dict)   # per tensor judged
    worst: str = ""                                # the tensor with the largest error/bound
    # per tensor judged: (the oracle's gradient, the per-element bound), for reports (heatmaps) and diagnosis
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def _bound(expected: tuple[dict, dict, dict, dict], underflow: dict[str, np.ndarray], name: str, dtype: str,
           reference_engine: bool) -> tuple[np.ndarray, np.ndarray, Bound]:
    """(gamma_K(u) + gamma_K(u_64)) G_T + (1 + gamma_K(u) + gamma_K(u_64)) A_T + (1 + gamma_K(u)) H_T (eta + eta_64):
    the rounding, the activation's allowance with the engine's rounding of the side it takes, and underflow."""
    values, gauges, allowance, lengths = expected
    value, gauge, k = values[name], gauges[name], lengths[name]
    engine_dtype = "float64" if reference_engine else dtype
    u, u64 = unit_roundoff(engine_dtype), unit_roundoff("float64")
    eta = rounding_eta(engine_dtype) + underflow_eta("float64")
    bound = (gamma(k, u) + gamma(k, u64)) * gauge + (1.0 + gamma(k, u)) * underflow[name] * eta
    if not reference_engine:
        bound = bound + (1.0 + gamma(k, u) + gamma(k, u64)) * allowance[name]
    return value, gauge, Bound(k=k, u=u, bound=bound)


def judge_gradients(case: Case, engine: str, out: EngineOutput, ref: BackwardReference) -> GradientJudgement:
    """Each gradient tensor in turn (input, kernels, bias, then a port variant's own): its presence, shape,
    dtype and values; the first that fails decides, and the message names it (dx, dkernel, dbias)."""
    g = case.geometry
    got = out.gradients or {}
    reference_engine = engines.is_reference(engine)
    want_dtype = "float64" if reference_engine else str(numpy_dtype(case.dtype))
    result = GradientJudgement("pass")
    names = list(gradient_names(g)) + [n for n in got if n not in gradient_names(g)]
    expected, underflow = ref.expected(g, out), ref.expected_underflow(g, out)
    worst = -1.0
    for name in names:
        shown = display_name(name)
        if name not in got:
            return _fail(result, name, "presence", f"{engine}: {shown} missing from the engine's gradients "
                         f"(it returned {sorted(got) or 'none'}) {tag(case)}")
        try:
            value, _gauge, bound = _bound(expected, underflow, name, case.dtype, reference_engine)
        except KeyError:
            return _fail(result, name, "presence", f"{engine}: {shown} is not a gradient of {case.layer} "
                         f"(its tensors: {', '.join(display_name(n) for n in gradient_names(g))}) {tag(case)}")
        y = np.asarray(got[name])
        if tuple(y.shape) != tuple(value.shape):
            return _fail(result, name, "shape", mismatch(engine, f"{shown} shape", tuple(y.shape),
                                                         tuple(value.shape), case))
        if str(y.dtype) != want_dtype:
            return _fail(result, name, "dtype", mismatch(engine, f"{shown} dtype", y.dtype, want_dtype, case))
        m = measure(y, value, bound)
        result.metrics[name] = m
        result.arrays[name] = (value, np.asarray(bound.bound))
        if m.max_ratio > worst:
            worst, result.worst = m.max_ratio, name
        if m.max_ratio > 1.0:
            return _fail(result, name, "values", over_bound(engine, shown, m, y.size, case))
    golden = _golden_gradients(case, engine, got, expected, underflow)
    if golden:
        return _fail(result, golden[0], "expect", golden[1])
    return result


def _fail(result: GradientJudgement, name: str, check: str, message: str) -> GradientJudgement:
    result.verdict, result.tensor, result.check, result.message = "fail", name, check, message
    return result


def _golden_gradients(case: Case, engine: str, got: dict[str, np.ndarray], expected: tuple[dict, dict, dict, dict],
                      underflow: dict[str, np.ndarray]) -> tuple[str, str] | None:
    """The case's hand-computed gradients (expect.gradients: {x|KERNEL|bias: value}) within the case dtype's
    rounding of the decimals (as expect.output) and the engine's bound."""
    for name, written in (case.expect.get("gradients") or {}).items():
        want = np.asarray(written, dtype=np.float64)
        value = np.asarray(got[name], dtype=np.float64)
        if value.shape != want.shape:
            return name, mismatch(engine, f"{display_name(name)} shape", value.shape, want.shape, case,
                                  "expect.gradients")
        _, gauge, bound = _bound(expected, underflow, name, case.dtype, engines.is_reference(engine))
        allowed = bound.bound + gamma(3, unit_roundoff(case.dtype)) * gauge
        bad = np.abs(value - want) > allowed
        if np.any(bad):
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            return name, mismatch(engine, f"{display_name(name)} at {at}", f"{value[at]:.9g}", f"{want[at]:.9g}",
                                  case, "expect.gradients")
    return None


def summary(metrics: dict[str, Metrics]) -> dict[str, Any]:
    """Per tensor, what results.json records: its largest error/bound and where."""
    return {name: m.as_dict() for name, m in metrics.items()}
