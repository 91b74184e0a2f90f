"""The judgement of one engine's output: named checks in order (shape, dtype, values, expect), one message shape."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import engines
from ..engines.base import CANONICAL_LAYOUT, EngineOutput, Inputs
from ..layers.geometry import output_shape
from ..reference.agreement import Bound, LazyArray, Metrics, error_bound, format_ratio, gamma, lazy_sum, measure
from ..tensors.values import numpy_dtype, unit_roundoff

if TYPE_CHECKING:
    from ..cases.schema import Case
    from ..cases.stacks import StackCase


@dataclass
class Reference:
    """What every engine of a case is judged against (computed once per case and process: judge.runner.reference).

    Its memory (harness.reference.oracle.reference_pair): the inputs, and the oracle output and the gauge, both
    float64, computed in one pass: whole where the output is one chunk (at most
    harness.reference.oracle.CHUNK_ELEMENTS elements, or one image), else one chunk of each: both are then
    LazyArrays (harness.reference.agreement) sharing a chunk cache, a chunk of images computed when either is
    indexed, every element exactly as oracle.run and oracle.gauge compute it (the big worked example: 66 MB, where
    the output whole was 656 MB).
    Index them (y[index], gauge[index]); np.asarray makes them whole, which only small cases should do.
    """

    inputs: Inputs
    oracle: EngineOutput   # the oracle engine's answer; its item reuses it instead of computing it again
    gauge: np.ndarray | LazyArray   # G: the same layer on |x|, |w|, |b| (no activation)
    # H: how many underflow etas an output element may hold (harness.reference.oracle.underflow_count; a number, or per
    # output channel where a stored intermediate stage is multiplied on)
    underflow: float | np.ndarray = 0.0
    # D: what reading subnormal operands as zero may change (harness.reference.oracle.flushed_operands); None: none
    flushed: np.ndarray | None = None

    @property
    def y(self) -> np.ndarray:
        """The oracle output, float64 (a LazyArray standing in for it beyond one chunk: see above)."""
        return self.oracle.y


def tag(case: Case | StackCase) -> str:
    return f"[{case.file.rsplit('/', 1)[-1]}::{case.id}]"


def mismatch(engine: str, what: str, actual: Any, expected: Any, case: Case, source: str = "") -> str:
    """The one shape of a failure: '{engine}: {what}={actual}, but should be {expected} [{file}::{case}]'."""
    return f"{engine}: {what}={actual}, but should be {expected}{f' ({source})' if source else ''} {tag(case)}"


def over_bound(engine: str, what: str, m: Metrics, size: int, case: Case) -> str:
    """The one shape of a value failure, for an output, a gradient tensor or a layer of a stack (``what``: '' for
    the output, else what is named): '{engine}: {what} max error/bound R at (i, ...): y vs y* oracle (N of SIZE
    elements over the bound) [{file}::{case}]'."""
    return (f"{engine}: {what + ' ' if what else ''}max error/bound {format_ratio(m.max_ratio)} at "
            f"{tuple(m.worst_index)}: {m.worst_value:.9g} vs {m.worst_oracle:.9g} oracle ({m.n_over} of {size} "
            f"elements over the bound) {tag(case)}")


@dataclass
class Judging:
    """What the checks see: the case, the engine's answer, the reference, and what earlier checks found."""

    case: Case
    engine: str
    out: EngineOutput
    ref: Reference
    bound: Bound | None = None
    metrics: Metrics | None = None
    gauge: np.ndarray | LazyArray | None = None


@dataclass
class Judgement:
    verdict: str                # pass | fail | skip
    message: str = ""           # the headline: what failed, one line, no diagnosis (the runner adds findings)
    check: str = ""             # the check that decided a fail or skip (a name of CHECKS)
    bound: Bound | None = None
    metrics: Metrics | None = None


Outcome = tuple[str, str] | None   # (verdict, message) stops the judgement; None goes on


def check_shape(j: Judging) -> Outcome:
    y, case = j.out.y, j.case
    want = output_shape(case.geometry, case.input_shape)
    if tuple(y.shape) != want:
        return "fail", mismatch(j.engine, "output shape", tuple(y.shape), want, case)
    return None


def check_dtype(j: Judging) -> Outcome:
    want = "float64" if engines.is_reference(j.engine) else str(numpy_dtype(j.case.dtype))
    if str(j.out.y.dtype) != want:
        # A diagnosis says whether the values agree anyway (a float64 case answered in float32 may still be
        # right to float32's precision: the dtype changed silently, the arithmetic did not go wrong).
        return "fail", mismatch(j.engine, "output dtype", j.out.y.dtype, want, j.case)
    return None


def check_values(j: Judging) -> Outcome:
    """Every element within its error bound (harness.reference.agreement) of the float64 oracle."""
    case, out, ref, g = j.case, j.out, j.ref, j.case.geometry
    # The gauge and so the bound may be lazy (computed per block): measure reads them block by block.
    j.gauge = gauge = ref.gauge if out.gauge_extra is None else lazy_sum(ref.gauge, out.gauge_extra)
    bound_dtype = "float64" if engines.is_reference(j.engine) else case.dtype
    j.bound = bound = error_bound(g.reduction_length() + out.extra_roundings, bound_dtype, gauge, ref.y, g.activation,
                                  underflow=ref.underflow, flushed=ref.flushed)
    if bound.vacuous:
        return "skip", (f"{j.engine}: no usable error bound for K={bound.k} terms at u={bound.u:.3g} "
                        f"(gamma_K >= 1 would accept an all-zero output) {tag(case)}")
    j.metrics = m = measure(out.y, ref.y, bound)
    if m.max_ratio > 1.0:
        return "fail", over_bound(j.engine, "", m, out.y.size, case)
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
    assert j.bound is not None and j.gauge is not None   # check_values ran before (CHECKS) and found a bound
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
# A fail of the first three is what a diagnosis explains (harness.judge.runner.Diagnoser.forward); expect is the case's.
CHECKS: tuple[tuple[str, Callable[[Judging], Outcome]], ...] = (
    ("shape", check_shape),
    ("dtype", check_dtype),
    ("values", check_values),
    ("expect", check_expect),
)
DIAGNOSED = ("shape", "dtype", "values")


def judge(case: Case, engine: str, out: EngineOutput, ref: Reference) -> Judgement:
    """Run CHECKS on one engine's output; pass when none objects."""
    j = Judging(case=case, engine=engine, out=out, ref=ref)
    for name, check in CHECKS:
        decided = check(j)
        if decided is not None:
            return Judgement(decided[0], decided[1], name, j.bound, j.metrics)
    return Judgement("pass", bound=j.bound, metrics=j.metrics)
