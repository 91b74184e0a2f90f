"""The judgement of one engine's output: named checks in order (shape, dtype, values, expect), one message shape."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from . import engines
from .agreement import Bound, Metrics, error_bound, format_ratio, gamma, lazy_sum, measure
from .engines.base import CANONICAL_LAYOUT, EngineOutput
from .layers import output_shape
from .tensors import numpy_dtype, unit_roundoff

if TYPE_CHECKING:
    from .runner import Reference
    from .schema import Case

# Explains a disagreement (the likely mistake) in one sentence, or ''. The core does not import the mutant
# catalogue: entry points (the CLI, the pytest plugin) install harness.detection.diagnose.explain here.
Diagnose = Callable[["Case", str, EngineOutput, "Reference", "Bound | None"], str]
_diagnose: Diagnose | None = None


def install_diagnosis(fn: Diagnose | None) -> None:
    """Set (or, with None, remove) the hook that failure messages ask for a diagnosis."""
    global _diagnose
    _diagnose = fn


def tag(case: "Case") -> str:
    return f"[{case.file.rsplit('/', 1)[-1]}::{case.id}]"


def mismatch(engine: str, what: str, actual: Any, expected: Any, case: "Case", source: str = "") -> str:
    """The one shape of a failure: '{engine}: {what}={actual}, but should be {expected} [{file}::{case}]'."""
    return f"{engine}: {what}={actual}, but should be {expected}{f' ({source})' if source else ''} {tag(case)}"


@dataclass
class Judging:
    """What the checks see: the case, the engine's answer, the reference, and what earlier checks found."""

    case: "Case"
    engine: str
    out: EngineOutput
    ref: "Reference"
    bound: Bound | None = None
    metrics: Metrics | None = None
    gauge: np.ndarray | None = None

    def diagnosis(self) -> str:
        """'; diagnosis: ...' naming the known mistake that reproduces the engine's output, or ''."""
        if _diagnose is None:
            return ""
        text = _diagnose(self.case, self.engine, self.out, self.ref, self.bound)
        return f"; diagnosis: {text}" if text else ""


@dataclass
class Judgement:
    verdict: str                # pass | fail | skip
    message: str = ""
    check: str = ""             # the check that decided a fail or skip
    bound: Bound | None = None
    metrics: Metrics | None = None


Outcome = tuple[str, str] | None   # (verdict, message) stops the judgement; None goes on


def check_shape(j: Judging) -> Outcome:
    y, case = j.out.y, j.case
    want = output_shape(case.geometry, case.input_shape)
    if tuple(y.shape) != want:
        return "fail", mismatch(j.engine, "output shape", tuple(y.shape), want, case) + j.diagnosis()
    return None


def check_dtype(j: Judging) -> Outcome:
    want = "float64" if engines.is_reference(j.engine) else str(numpy_dtype(j.case.dtype))
    if str(j.out.y.dtype) != want:
        # The diagnosis says whether the values agree anyway (a float64 case answered in float32 may still be
        # right to float32's precision: the dtype changed silently, the arithmetic did not go wrong).
        return "fail", mismatch(j.engine, "output dtype", j.out.y.dtype, want, j.case) + j.diagnosis()
    return None


def check_values(j: Judging) -> Outcome:
    """Every element within its error bound (harness.agreement) of the float64 oracle."""
    case, out, ref, g = j.case, j.out, j.ref, j.case.geometry
    # The gauge and so the bound may be lazy (computed per block): measure reads them block by block.
    j.gauge = ref.gauge if out.gauge_extra is None else lazy_sum(ref.gauge, out.gauge_extra)
    bound_dtype = "float64" if engines.is_reference(j.engine) else case.dtype
    j.bound = bound = error_bound(g.reduction_length() + out.extra_roundings, bound_dtype, j.gauge, ref.y, g.activation,
                                  underflow=ref.underflow)
    if bound.vacuous:
        return "skip", (f"{j.engine}: no usable error bound for K={bound.k} terms at u={bound.u:.3g} "
                        f"(gamma_K >= 1 would accept an all-zero output) {tag(case)}")
    j.metrics = m = measure(out.y, ref.y, bound)
    if m.max_ratio > 1.0:
        return "fail", (f"{j.engine}: max error/bound {format_ratio(m.max_ratio)} at {tuple(m.worst_index)}: "
                        f"{m.worst_value:.9g} vs {m.worst_oracle:.9g} oracle ({m.n_over} of {out.y.size} elements "
                        f"over the bound) {tag(case)}" + j.diagnosis())
    return None


def check_expect(j: Judging) -> Outcome:
    """The case's golden facts (expect): output shape, parameter count, weight shapes, golden values."""
    case, engine, out, exp = j.case, j.engine, j.out, j.case.expect
    y = out.y   # no float64 copy of the whole output: 625 MB on the big worked example, for a shape and a few values
    if "output_shape" in exp and tuple(y.shape) != tuple(exp["output_shape"]):
        return "fail", mismatch(engine, "output shape", tuple(y.shape), tuple(exp["output_shape"]), case, "expect")
    want_params = exp.get("params")
    if isinstance(want_params, dict):
        want_params = want_params.get(engine)
    if want_params is not None and out.params is not None and out.params != want_params:
        return "fail", mismatch(engine, "params", out.params, want_params, case, "expect")
    shapes = exp.get("weight_shapes")
    if shapes and all(isinstance(v, dict) for v in shapes.values()):
        shapes = shapes.get(engine)
    elif shapes and engines.engine_class(engine).weight_layout != CANONICAL_LAYOUT:
        shapes = None  # a plain table is in Keras layout: it describes only engines that report that layout
    if shapes and out.weight_shapes is not None:
        got = {k: list(v) for k, v in out.weight_shapes.items()}
        if got != {k: list(v) for k, v in shapes.items()}:
            return "fail", mismatch(engine, "weight shapes", got, shapes, case, "expect")
    return _golden_values(j, y)


def _golden_values(j: Judging, y: np.ndarray) -> Outcome:
    case, exp = j.case, j.case.expect
    golden = []
    if "output" in exp:
        golden.append(((), np.asarray(exp["output"], dtype=np.float64)))
    for item in exp.get("output_at") or []:
        golden.append((tuple(item["index"]), np.asarray(item["value"], dtype=np.float64)))
    for index, want in golden:
        got = np.asarray(y[index], dtype=np.float64)
        if got.shape != want.shape:
            return "fail", mismatch(j.engine, f"output{list(index)} shape", got.shape, want.shape, case, "expect")
        # A golden value is exact arithmetic on the decimals as written; the case dtype rounded those
        # once (each product moves by at most gamma_3(u) of its magnitude), then the engine's own bound.
        allowed = j.bound.bound[index] + gamma(3, unit_roundoff(case.dtype)) * j.gauge[index]
        bad = np.abs(got - want) > allowed
        if np.any(bad):
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            full = index + at
            return "fail", mismatch(j.engine, f"output at {full}", f"{float(y[full]):.9g}", f"{float(want[at]):.9g}",
                                    case, "expect.output")
    return None


# The checks, in order: the first that decides stops the judgement (a wrong shape has no values to compare).
CHECKS: tuple[tuple[str, Callable[[Judging], Outcome]], ...] = (
    ("shape", check_shape),
    ("dtype", check_dtype),
    ("values", check_values),
    ("expect", check_expect),
)


def judge(case: "Case", engine: str, out: EngineOutput, ref: "Reference") -> Judgement:
    """Run CHECKS on one engine's output; pass when none objects."""
    j = Judging(case=case, engine=engine, out=out, ref=ref)
    for name, check in CHECKS:
        decided = check(j)
        if decided is not None:
            return Judgement(decided[0], decided[1], name, j.bound, j.metrics)
    return Judgement("pass", bound=j.bound, metrics=j.metrics)
