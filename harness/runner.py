"""Run one (case, engine) pair and judge it: shape, then dtype, then values, then the case's golden facts."""
from __future__ import annotations

import shlex
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import engines, facts, oracle
from .agreement import Bound, Metrics, error_bound, gamma, measure, usable
from .engines.base import EngineOutput, Inputs
from .errors import EngineRejected, EngineSkip
from .known import Expectation
from .layers import output_shape
from .schema import Case
from .tensors import generate, numpy_dtype, round_to, unit_roundoff

VERDICTS = ("pass", "fail", "skip", "rejected", "error")
UNEXPECTED = ("fail", "xpass", "error")   # the outcomes that make a run fail


def outcome(verdict: str, xfail: str | None) -> str:
    """The one outcome policy that pytest, the CLI and the report share: where the case's known bug holds
    (``xfail``), a fail is the expected "xfail" and a pass is an "xpass" (strict: the bug is gone, the run fails);
    otherwise the verdict itself (pass, fail, skip, rejected, error)."""
    if xfail and verdict in ("fail", "pass"):
        return "xfail" if verdict == "fail" else "xpass"
    return verdict


@dataclass
class Reference:
    """What every engine of a case is judged against (computed once per case and process)."""

    inputs: Inputs
    oracle: EngineOutput   # the oracle engine's answer; its item reuses it instead of computing it again
    gauge: np.ndarray      # G: the same layer on |x|, |w|, |b| (no activation)

    @property
    def y(self) -> np.ndarray:
        """The oracle output, float64."""
        return self.oracle.y


@dataclass
class Result:
    """The verdict of one engine on one case, with everything a report shows."""

    case_id: str
    file: str
    engine: str
    verdict: str                              # one of VERDICTS
    message: str = ""                         # failure or skip reason, one line
    metrics: Metrics | None = None
    output_shape: tuple[int, ...] | None = None
    dtype: str | None = None
    params: int | None = None
    weight_shapes: dict[str, tuple[int, ...]] | None = None
    notes: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    repro: str = ""
    details: str = ""                         # traceback of a harness error
    xfail: str = ""                           # the case's known bug of this engine, where it holds: a fail is expected
    facts: dict[str, Any] = field(default_factory=dict)   # what decided the engine's behaviour (oneDNN, layout)
    output: EngineOutput | None = field(default=None, repr=False)   # kept for reports and diagnosis
    bound: Bound | None = field(default=None, repr=False)


def make_inputs(case: Case) -> Inputs:
    g = case.geometry
    channel_axis = 1 if g.channels_first else -1
    x = round_to(generate(case.input, case.input_shape, case.seed, "input", channel_axis), case.dtype)
    weights = {
        name: round_to(generate(case.weights.get(name, "normal"), shape, case.seed, name), case.dtype)
        for name, shape in g.weight_shapes().items()
    }
    return Inputs(x=x, weights=weights, x64=x.astype(np.float64),
                  weights64={k: v.astype(np.float64) for k, v in weights.items()})


_cache: dict[tuple[str, str], Reference] = {}


def reference(case: Case) -> Reference:
    key = (case.file, case.id)
    if key not in _cache:
        _cache.clear()  # one case at a time: big outputs are not kept alive across cases
        inputs = make_inputs(case)
        _cache[key] = Reference(
            inputs=inputs,
            oracle=engines.get("oracle").run(case.layer, case.config, inputs, {}),
            gauge=oracle.gauge(case.layer, case.config, inputs.x64, inputs.weights64),
        )
    return _cache[key]


def repro_command(case: Case, engine: str) -> str:
    # A plug-in is named by its MODULE:CALLABLE (its bare name means nothing to a new process), next to the
    # oracle alone so that the repro does not also run every built-in framework.
    engine_args = f"--engine {engine}" if engine in engines.BUILTIN else \
        f"--engine oracle --engine {shlex.quote(engines.cli_spec(engine))}"
    return f"python -m harness run {shlex.quote(case.file)} --case {shlex.quote(case.id)} {engine_args}"


def tag(case: Case) -> str:
    return f"[{case.file.rsplit('/', 1)[-1]}::{case.id}]"


def run_one(case: Case, engine_name: str) -> Result:
    """Run and judge; never raises: every outcome is a Result (skip, rejected and error included)."""
    result = Result(case_id=case.id, file=case.file, engine=engine_name, verdict="error",
                    repro=repro_command(case, engine_name))
    start = time.perf_counter()
    try:
        if engine_name in case.skip:
            result.verdict, result.message = "skip", f"case skips {engine_name}: {case.skip[engine_name]}"
            return result
        g = case.geometry
        if engine_name != "oracle" and not usable(g.reduction_length(), unit_roundoff(case.dtype)):
            # Decided before any framework runs: no output could fail such a check.
            result.verdict = "skip"
            result.message = (f"{engine_name}: no usable error bound for K={g.reduction_length()} terms in "
                              f"{case.dtype} (gamma_K >= 1 would accept an all-zero output); use a smaller "
                              f"reduction or a wider dtype {tag(case)}")
            return result
        if case.impossible:
            return _run_impossible(case, engine_name, result)
        ref = reference(case)
        out = ref.oracle if engine_name == "oracle" else engines.get(engine_name).run(
            case.layer, case.config, ref.inputs, case.engine_options.get(engine_name, {}))
        result.output, result.facts = out, dict(out.facts)
        result.verdict, result.message = _judge(case, engine_name, out, ref, result)
        if not _accepted_but_expected_to_refuse(case, engine_name, result):
            bug = _expected(case, case.xfail, engine_name, result)
            result.xfail = bug.reason if bug else ""
    except (EngineSkip, NotImplementedError) as exc:
        result.verdict, result.message = "skip", f"{engine_name} cannot run this case: {exc}"
    except EngineRejected as exc:
        result.facts = dict(getattr(exc, "facts", None) or {})
        refusal = _expected(case, case.rejected_by, engine_name, result)
        if refusal:
            # The refusal is the fact this case pins (a framework that starts accepting it is news).
            result.verdict = "pass"
            result.message = f"rejected, as the case expects{' (' + refusal.known + ')' if refusal.known else ''}: {exc}"
        else:
            result.verdict, result.message = "rejected", str(exc)
    except Exception as exc:  # noqa: BLE001 - a harness or engine crash is reported, never lost
        result.verdict = "error"
        result.message = f"{engine_name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} {tag(case)}"
        result.details = traceback.format_exc()
    finally:
        result.duration_s = time.perf_counter() - start
    return result


def _run_impossible(case: Case, engine: str, result: Result) -> Result:
    """A configuration that cannot run, pinned by its refusals: run the engine with no reference. A refusal is
    judged by the caller (EngineRejected); an output can only be wrong where a refusal is expected."""
    out = engines.get(engine).run(case.layer, case.config, make_inputs(case), case.engine_options.get(engine, {}))
    result.output, result.facts = out, dict(out.facts)
    result.output_shape, result.dtype = tuple(out.y.shape), str(out.y.dtype)
    if not _accepted_but_expected_to_refuse(case, engine, result):
        result.verdict = "skip"
        result.message = (f"{engine}: accepted a configuration the oracle refuses ({case.impossible}); there is no "
                          f"reference to judge its output {result.output_shape} against {tag(case)}")
    return result


def _accepted_but_expected_to_refuse(case: Case, engine: str, result: Result) -> bool:
    """The engine produced an output where the case expects a refusal here: fail the item, and say so."""
    refusal = _expected(case, case.rejected_by, engine, result)
    if refusal:
        result.verdict = "fail"
        result.message = (f"{engine}: accepted the configuration, but should reject it "
                          f"(expect.rejected_by{': ' + refusal.known if refusal.known else ''}) {tag(case)}")
    return refusal is not None


def run_facts(case: Case, result: Result) -> dict[str, Any]:
    """Every fact a condition may ask about one item: the process's, the case's, and the engine's run."""
    return {**facts.process_facts(), "dtype": case.dtype, "layer": case.layer, **result.facts}


def _expected(case: Case, table: dict[str, Expectation], engine: str, result: Result) -> Expectation | None:
    """The case's expectation for ``engine`` where its condition holds here, else None. Where it does not hold
    the item is judged like any other, and a note says why."""
    expectation = table.get(engine)
    if expectation is None:
        return None
    seen = expectation.evaluate(case, run_facts(case, result))
    if seen.holds:
        return expectation
    result.notes.append(f"not expected here: {expectation.known or expectation.reason} "
                        f"(holds when {expectation.condition_text()}; here: {seen.explanation})")
    return None


def _judge(case: Case, engine: str, out: EngineOutput, ref: Reference, result: Result) -> tuple[str, str]:
    y = out.y
    result.output_shape, result.dtype = tuple(y.shape), str(y.dtype)
    result.params, result.weight_shapes = out.params, out.weight_shapes
    result.notes.extend(out.notes)
    where = tag(case)
    want_shape = output_shape(case.geometry, case.input_shape)
    if tuple(y.shape) != want_shape:
        return "fail", (f"{engine}: output shape={tuple(y.shape)}, but should be {want_shape} {where}"
                        + _diagnosis(case, engine, out, ref))
    want_dtype = "float64" if engine == "oracle" else str(numpy_dtype(case.dtype))
    if str(y.dtype) != want_dtype:
        return "fail", f"{engine}: output dtype={y.dtype}, but should be {want_dtype} {where}"
    gauge = ref.gauge if out.gauge_extra is None else ref.gauge + out.gauge_extra
    bound_dtype = "float64" if engine == "oracle" else case.dtype
    g = case.geometry
    bound = error_bound(g.reduction_length() + out.extra_roundings, bound_dtype, gauge, ref.y, g.activation)
    result.bound = bound
    if bound.vacuous:
        return "skip", (f"{engine}: no usable error bound for K={bound.k} terms at u={bound.u:.3g} "
                        f"(gamma_K >= 1 would accept an all-zero output) {where}")
    m = measure(y, ref.y, bound)
    result.metrics = m
    if m.max_ratio > 1.0:
        idx = tuple(m.worst_index)
        return "fail", (f"{engine}: max error/bound {m.max_ratio:.3g} at {idx}: {m.worst_value:.9g} vs "
                        f"{m.worst_oracle:.9g} oracle ({m.n_over} of {y.size} elements over the bound) {where}"
                        + _diagnosis(case, engine, out, ref, bound))
    return _check_expect(case, engine, out, bound, gauge, where)


def _diagnosis(case: Case, engine: str, out: EngineOutput, ref: Reference, bound: Bound | None = None) -> str:
    """'; diagnosis: ...' naming the known mistake that reproduces the engine's output, or ''."""
    from .detection.diagnose import explain  # lazy: the mutant catalogue is needed only when something fails

    text = explain(case, engine, out, ref, bound)
    return f"; diagnosis: {text}" if text else ""


def _check_expect(case: Case, engine: str, out: EngineOutput, bound: Bound, gauge: np.ndarray,
                  where: str) -> tuple[str, str]:
    exp = case.expect
    y = np.asarray(out.y, dtype=np.float64)
    if "output_shape" in exp and tuple(y.shape) != tuple(exp["output_shape"]):
        return "fail", f"{engine}: output shape={tuple(y.shape)}, but should be {tuple(exp['output_shape'])} (expect) {where}"
    want_params = exp.get("params")
    if isinstance(want_params, dict):
        want_params = want_params.get(engine)
    if want_params is not None and out.params is not None and out.params != want_params:
        return "fail", f"{engine}: params={out.params}, but should be {want_params} (expect) {where}"
    shapes = exp.get("weight_shapes")
    if shapes and all(isinstance(v, dict) for v in shapes.values()):
        shapes = shapes.get(engine)
    elif shapes and engine not in ("oracle", "keras"):
        shapes = None  # a plain table is in Keras layout: it describes the oracle and Keras
    if shapes and out.weight_shapes is not None:
        got = {k: list(v) for k, v in out.weight_shapes.items()}
        if got != {k: list(v) for k, v in shapes.items()}:
            return "fail", f"{engine}: weight shapes={got}, but should be {shapes} (expect) {where}"
    golden = []
    if "output" in exp:
        golden.append(((), np.asarray(exp["output"], dtype=np.float64)))
    for item in exp.get("output_at") or []:
        golden.append((tuple(item["index"]), np.asarray(item["value"], dtype=np.float64)))
    for index, want in golden:
        got = y[index]
        if got.shape != want.shape:
            return "fail", f"{engine}: output{list(index)} shape={got.shape}, but should be {want.shape} (expect) {where}"
        # A golden value is exact arithmetic on the decimals as written; the case dtype rounded those
        # once (each product moves by at most gamma_3(u) of its magnitude), then the engine's own bound.
        allowed = bound.bound[index] + gamma(3, unit_roundoff(case.dtype)) * gauge[index]
        bad = np.abs(got - want) > allowed
        if np.any(bad):
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            full = index + at
            return "fail", (f"{engine}: output at {full}={y[full]:.9g}, but should be {float(want[at]):.9g} "
                            f"(expect.output) {where}")
    return "pass", ""
