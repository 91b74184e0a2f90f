"""Run one (case, engine) pair: the reference, the engine's request, the judgement and the case's expectations."""
from __future__ import annotations

import shlex
import time
import traceback
from typing import cast

import numpy as np

from .. import engines
from ..cases.schema import MAX_ELEMENTS, Case
from ..cases.stacks import StackCase
from ..engines import stopwatch
from ..engines.base import EngineOutput, Inputs, Request
from ..engines.oracle_engine import OracleEngine
from ..errors import EngineRejected, EngineSkip
from ..known.registry import OUTPUT
from ..layers.geometry import ConfigProblem
from ..reference import oracle
from ..reference.agreement import usable
from ..tensors.values import generate, round_to, unit_roundoff
from . import gradients as backward
from .diagnoser import Diagnoser, ask
from .findings import render
from .forward import DIAGNOSED, Judging, Reference, check_expect, check_shape, check_values, judge, tag
from .outcome import accepted_but_expected_to_refuse, expected, known_bug_of, outcome, refusal_source, run_facts
from .result import ENGINE_WORDS, UNEXPECTED, VERDICTS, Result
from .stack_run import SequenceRun
from .stack_run import run as run_sequence

# Names other modules import from here, the judge's front door (the result and the outcome policy live beside it).
__all__ = ["ENGINE_WORDS", "FORWARD_FACTS", "UNEXPECTED", "VERDICTS", "Diagnoser", "Result", "item_label",
           "make_inputs", "outcome", "record_sequence", "reference", "repro_command", "request", "run_facts",
           "run_one"]

# The expect facts about the forward output: a case without the forward check judges them on its backward items.
FORWARD_FACTS = frozenset({"output", "output_at", "output_shape", "params", "weight_shapes"})


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
    """The oracle's answer and the gauge of ``case`` (harness.reference.oracle.reference_pair: one pass for both;
    for an output of more than one chunk both lazy, so that neither is held whole), computed once per process."""
    key = (case.file, case.id)
    if key not in _cache:
        _cache.clear()  # one case at a time: big outputs are not kept alive across cases
        inputs = make_inputs(case)
        reference_engine = cast(OracleEngine, engines.get(engines.REFERENCE))
        answer, gauge = reference_engine.run_and_gauge(request(case, engines.REFERENCE, inputs))
        _cache[key] = Reference(
            inputs=inputs,
            oracle=answer,
            gauge=gauge,
            underflow=oracle.underflow_count(case.geometry, inputs.x64, inputs.weights64),
            flushed=oracle.flushed_operands(case.layer, case.config, inputs.x64, inputs.weights64, case.dtype),
        )
    return _cache[key]


def request(case: Case, engine: str, inputs: Inputs) -> Request:
    """What ``engine`` is asked to compute for ``case``: the configuration (raw and normalised) and the inputs."""
    return Request(layer=case.layer, config=case.config, geometry=case.geometry, inputs=inputs,
                   options=case.engine_options.get(engine, {}))


def item_label(engine: str, check: str) -> str:
    """How an item of one check is named: ENGINE (forward) or ENGINE:backward, as in pytest's CASE[ENGINE:backward]."""
    return engine if check == "forward" else f"{engine}:{check}"


def repro_command(case: Case | StackCase, engine: str, check: str = "forward") -> str:
    # A plug-in is named by its MODULE:CALLABLE (its bare name means nothing to a new process), next to the
    # oracle alone so that the repro does not also run every built-in framework.
    engine_args = f"--engine {engine}" if engine in engines.BUILTIN else \
        "--engine oracle " + " ".join(shlex.quote(a) for a in engines.cli_args(engine))
    return (f"python -m harness run {shlex.quote(case.file)} --case {shlex.quote(case.id)} {engine_args}"
            + ("" if check == "forward" else f" --check {check}"))


def run_one(case: Case | StackCase, engine_name: str, check: str = "forward",
            diagnoser: Diagnoser | None = None) -> Result:
    """Run and judge one check ("forward": the output; "backward": the gradients, harness.judge.gradients); never
    raises: every outcome is a Result (skip, rejected and error included). ``diagnoser`` is asked for findings
    about a failure or an error (None: no findings)."""
    result = Result(case_id=case.id, file=case.file, engine=engine_name, verdict="error",
                    repro=repro_command(case, engine_name, check), check=check)
    start = time.perf_counter()
    stopwatch.take()   # what was counted before this item (another caller's runs) is not its own
    try:
        if engine_name in case.skip:
            _skip(result, f"case skips {engine_name}: {case.skip[engine_name]}", "case-skip", case.skip[engine_name])
            return result
        limit = _dtype_limit(engine_name, case.dtype)
        if limit:
            # Declared on the engine (Engine.dtype_limits): a runtime that cannot compute this dtype at all.
            _skip(result, f"{engine_name} cannot compute {case.dtype}: {limit} (a limit of the runtime, declared by "
                  f"the engine; not a bug) {tag(case)}", "dtype-limit", f"cannot compute {case.dtype}: {limit}")
            return result
        if isinstance(case, StackCase):   # layers in sequence: each layer's output judged (harness.judge.stack_run)
            return record_sequence(result, run_sequence(case, engine_name))
        if check == "backward":
            return _run_backward(case, engine_name, result, diagnoser)
        if case.impossible:   # before any size is asked: a pinned refusal may have none (groups: 0)
            return _run_impossible(case, engine_name, result)
        g = case.geometry
        if not engines.is_reference(engine_name) and not usable(g.reduction_length(), unit_roundoff(case.dtype)):
            # Decided before any framework runs: no output could fail such a check.
            _skip(result, f"{engine_name}: no usable error bound for K={g.reduction_length()} terms in {case.dtype} "
                  f"(gamma_K >= 1 would accept an all-zero output); use a smaller reduction or a wider dtype "
                  f"{tag(case)}", "no-usable-bound", f"no usable error bound in {case.dtype}")
            result.decided_by = "values"
            return result
        ref = reference(case)
        out = ref.oracle if engines.is_reference(engine_name) else \
            engines.get(engine_name).run(request(case, engine_name, ref.inputs))
        _record_output(result, out)
        judged = judge(case, engine_name, out, ref)
        result.verdict, result.headline, result.decided_by = judged.verdict, judged.message, judged.check
        result.bound, result.metrics = judged.bound, judged.metrics
        if judged.verdict == "skip":   # the values check's bound is vacuous
            result.reason_id, result.reason = "no-usable-bound", f"no usable error bound in {case.dtype}"
        if judged.verdict == "fail" and judged.check in DIAGNOSED and diagnoser is not None:
            result.findings = ask(diagnoser.forward, case, engine_name, out, ref, judged.bound)
        result.message = result.headline + render(result.findings)
        if not accepted_but_expected_to_refuse(case, engine_name, result):
            result.xfail = known_bug_of(case, engine_name, result, judged.check)
    except (EngineSkip, NotImplementedError) as exc:
        _skip(result, f"{engine_name} cannot run this case: {exc}", "engine-skip", str(exc))
    except EngineRejected as exc:
        result.facts = dict(getattr(exc, "facts", None) or {})
        result.decided_by, result.reason_id, result.reason = "refusal", "engine-refusal", str(exc)
        # A stack pins no refusal (StackCase.rejected_by stays empty; the registry reads a layer's geometry).
        refusal = expected(case, case.rejected_by, engine_name, result) if isinstance(case, Case) else None
        if refusal:
            # The refusal is the fact this case pins (a framework that starts accepting it is news); an heir
            # that refuses what the engine it inherits from refuses shows the same fact.
            result.verdict = "pass"
            result.message = result.headline = f"rejected, as the case expects{refusal_source(refusal)}: {exc}"
        else:
            result.verdict, result.message = "rejected", str(exc)
            result.headline = result.message
    except Exception as exc:  # noqa: BLE001 - a harness or engine crash is reported, never lost
        result.verdict, result.error_type = "error", type(exc).__name__
        result.reason = str(exc).splitlines()[0] if str(exc) else ""
        result.headline = f"{engine_name}: {type(exc).__name__}: {result.reason} {tag(case)}"
        if diagnoser is not None:
            result.findings = ask(diagnoser.error, case, engine_name, exc)
        result.message = result.headline + render(result.findings)
        result.details = traceback.format_exc()
    finally:
        result.duration_s = time.perf_counter() - start
        result.third_party_s = min(stopwatch.take(), result.duration_s)
    return result


def record_sequence(result: Result, run: SequenceRun) -> Result:
    """A sequence's run (harness.judge.stack_run) in ``result``: its verdict, each layer's metrics, and the culprit as a
    finding (the headline names it already: not rendered into the message again)."""
    result.verdict, result.message, result.headline, result.decided_by = run.verdict, run.message, run.message, \
        run.check
    result.metrics, result.layer_metrics, result.findings = run.metrics, run.layer_metrics, list(run.findings)
    result.facts, result.params, result.notes = dict(run.facts), run.params, [*result.notes, *run.notes]
    result.output_shape, result.dtype = run.output_shape, run.dtype
    if run.verdict == "skip":
        result.reason_id, result.reason = run.reason_id, run.message
    return result


def _skip(result: Result, message: str, reason_id: str, reason: str) -> None:
    """Make ``result`` a skip: its message, and where it comes from (reason_id, reason) for a reader to count."""
    result.verdict, result.message, result.headline = "skip", message, message
    result.reason_id, result.reason = reason_id, reason


def _run_backward(case: Case, engine: str, result: Result, diagnoser: Diagnoser | None) -> Result:
    """The backward check of one engine (its exceptions are run_one's to report): the engine's gradients with
    the case's grad_output, judged tensor by tensor (harness.judge.gradients.judge_gradients)."""
    if not engines.engine_class(engine).computes_gradients:
        _skip(result, f"{engine} computes no gradients (Engine.computes_gradients) {tag(case)}", "no-gradients",
              "computes no gradients")
        return result
    vacuous = backward.unusable_lengths(case)
    if vacuous and not engines.is_reference(engine):
        _skip(result, f"{engine}: no usable error bound for " + ", ".join(
            f"{backward.display_name(n)} (K={k})" for n, k in vacuous.items()) + f" in {case.dtype} (gamma_K >= 1 "
            f"would accept an all-zero gradient); use fewer positions or a wider dtype {tag(case)}",
            "no-usable-bound", f"no usable error bound in {case.dtype}")
        result.decided_by = "values"
        return result
    ref = reference(case)
    bref = backward.backward_reference(case, ref.inputs)
    if engines.is_reference(engine):
        out = EngineOutput(y=ref.y, params=ref.oracle.params, weight_shapes=ref.oracle.weight_shapes,
                           gradients=bref.grads)
    else:
        req = request(case, engine, ref.inputs)
        req.grad_output = bref.dy
        out = engines.get(engine).run(req)
    _record_output(result, out)
    judged = backward.judge_gradients(case, engine, out, bref)
    result.verdict, result.headline, result.decided_by = judged.verdict, judged.message, judged.check
    result.gradient_metrics, result.gradient_arrays = judged.metrics, judged.arrays
    result.tensor = judged.tensor or judged.worst
    result.metrics = judged.metrics.get(result.tensor)
    if result.verdict == "fail" and diagnoser is not None:
        result.findings = ask(diagnoser.gradients, case, engine, out, bref, judged.tensor)
    failing, check = (backward.display_name(judged.tensor), judged.check) if result.verdict == "fail" else ("", "")
    if result.verdict == "pass" and "forward" not in case.check:
        decided = _forward_facts(case, engine, out, ref)   # expect facts hold in every check
        if decided is not None:
            (result.verdict, result.headline, shape_failed), failing, check = decided, OUTPUT, "expect"
            result.decided_by = "expect"
            if shape_failed and diagnoser is not None:   # a wrong output shape: what the forward diagnosis explains
                result.findings = ask(diagnoser.forward, case, engine, out, ref, None)
    result.message = result.headline + render(result.findings)
    bug = expected(case, case.xfail, engine, result)
    if bug is not None:
        # The case's known bug may or may not show in the gradients (the bias bug moves dbias, not dx, through a
        # linear activation): not strict here. A fail it explains (a wrong value of a tensor it declares it moves)
        # is expected; any other is judged, and says why; a pass says so.
        explained = check in ("values", "expect") and bug.expectation.explains(case, failing)
        if result.verdict == "fail" and explained:
            result.xfail = bug.expectation.reason if bug.parent is None else f"inherited from {bug.parent}: {bug.label}"
            result.xfail_id, result.xfail_from = bug.label, bug.parent or ""
        elif result.verdict == "fail":
            why = f"moves {bug.expectation.moved_text()}" if check in ("values", "expect") else \
                f"is about values, and this is a {check} failure"
            result.message += f"; the known bug {bug.label} does not explain {failing} (it {why}): judged as a failure"
        else:
            result.notes.append(f"the known bug {bug.label} does not show in the gradients here")
    return result


def _forward_facts(case: Case, engine: str, out: EngineOutput, ref: Reference) -> tuple[str, str, bool] | None:
    """The case's expect facts about the forward output (shape, params, weight shapes, golden values), judged on
    the output of a backward run, for a case without a forward item to judge them: (fail, headline, whether the
    output shape failed) or None."""
    if not FORWARD_FACTS & set(case.expect):
        return None
    j = Judging(case=case, engine=engine, out=out, ref=ref)
    if {"output", "output_at"} & set(case.expect):
        shape = check_shape(j)   # golden values of an output of the wrong shape cannot be compared
        if shape is not None:
            return shape[0], shape[1] + " (expect.output)", True
        # Only for the bound that golden values are judged within (the values themselves are the forward
        # check's, which this case does not ask for).
        check_values(j)
    decided = check_expect(j)
    return None if decided is None else (decided[0], decided[1], False)


def _record_output(result: Result, out: EngineOutput) -> None:
    """What a result keeps of an engine's answer: the output itself, its facts, shape, dtype, counts and notes."""
    result.output, result.facts = out, dict(out.facts)
    result.output_shape, result.dtype = tuple(out.y.shape), str(out.y.dtype)
    result.params, result.weight_shapes = out.params, out.weight_shapes
    result.notes.extend(out.notes)


def _run_impossible(case: Case, engine: str, result: Result) -> Result:
    """A configuration that cannot run, pinned by its refusals: run the engine with no reference. A refusal is
    judged by the caller (EngineRejected); an output can only be wrong where a refusal is expected."""
    inputs, unsized = _impossible_inputs(case)
    out = engines.get(engine).run(request(case, engine, inputs))
    if unsized:   # said only where the engine ran on: one that refuses never reads the weights
        result.notes.append(f"the engine was given no weights: {unsized}")
    result.output, result.facts = out, dict(out.facts)
    result.output_shape, result.dtype = tuple(out.y.shape), str(out.y.dtype)
    if not accepted_but_expected_to_refuse(case, engine, result):
        _skip(result, f"{engine}: accepted a configuration the oracle refuses ({case.impossible}); there is no "
              f"reference to judge its output {result.output_shape} against {tag(case)}", "no-reference",
              "accepted a configuration the oracle refuses; no reference to judge it against")
    return result


def _impossible_inputs(case: Case) -> tuple[Inputs, str]:
    """The inputs of a configuration that cannot run: the input, and the weights only where the family can size
    them within what a case may generate (schema.MAX_ELEMENTS): a framework refuses before it reads them. With
    the reason the weights were left out, or ''."""
    g = case.geometry
    x = round_to(generate(case.input, case.input_shape, case.seed, "input", 1 if g.channels_first else -1), case.dtype)
    try:
        shapes = g.weight_shapes()
    except ConfigProblem as problem:
        shapes, why = {}, str(problem)
    else:
        why = "" if all(np.prod(s) <= MAX_ELEMENTS for s in shapes.values()) else "too large to generate"
    if why:
        shapes = {}
    weights = {name: round_to(generate(case.weights.get(name, "normal"), shape, case.seed, name), case.dtype)
               for name, shape in shapes.items()}
    return Inputs(x=x, weights=weights, x64=x.astype(np.float64),
                  weights64={k: v.astype(np.float64) for k, v in weights.items()}), why


def _dtype_limit(engine: str, dtype: str) -> str:
    """The engine's declared runtime limit for ``dtype`` (Engine.dtype_limits), or ''."""
    try:
        return engines.engine_class(engine).dtype_limits.get(dtype, "")
    except KeyError:   # an unknown engine: get() says so, with the known names, when it is run
        return ""
