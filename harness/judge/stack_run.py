"""Run one (stack, engine): the reference, the engine's run of the whole sequence, the judgement of every layer.

harness.judge.runner.run_one calls `run` for a StackCase and records what it returns in its Result (the exceptions an
engine raises, skip, refusal or crash, are run_one's to report, as for a single layer). The engines that compute a
sequence say so (Engine.computes_sequences) and answer Engine.run_sequence; a plug-in does through its callable's
`stack` attribute.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import engines
from ..cases.stacks import StackCase
from ..engines.base import SequenceFn, SequenceOutput, run_sequence_function
from ..reference.agreement import Metrics
from .findings import Finding
from .forward import tag
from .sequence import judge, ratios_note
from .stack_reference import reference, sequence_request, unusable


@dataclass
class SequenceRun:
    """What a run of a sequence found, as harness.judge.runner.Result records it."""

    verdict: str                                   # pass | fail | skip
    message: str = ""
    check: str = ""                                # what decided a fail (sequence_judge) or a skip ("values")
    reason_id: str = ""                            # a skip's source: no-sequences | no-usable-bound
    metrics: Metrics | None = None                 # the culprit's, else the layer that used most of its budget
    layer_metrics: list[Metrics] = field(default_factory=list)   # per layer judged, in order
    findings: list[Finding] = field(default_factory=list)        # the culprit (kind "culprit", id its index)
    facts: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    notes: list[str] = field(default_factory=list)
    output_shape: tuple[int, ...] | None = None
    dtype: str | None = None


def computes(engine: str) -> bool:
    """Whether ``engine``'s class computes sequences (its module is imported, not its framework)."""
    try:
        return bool(engines.engine_class(engine).computes_sequences)
    except KeyError:   # an unknown engine: get() says so, with the known names, when it is run
        return True


def compute(stack: StackCase, engine: str, fn: SequenceFn | None = None) -> SequenceOutput:
    """Every layer's output as ``engine`` (or ``fn``, a sequence function) computes the stack."""
    request = sequence_request(stack, reference(stack).inputs)
    if fn is not None:
        return run_sequence_function(fn, request)
    return engines.get(engine).run_sequence(request)


def run(stack: StackCase, engine: str, fn: SequenceFn | None = None) -> SequenceRun:
    """Run and judge ``stack`` in ``engine`` (or in ``fn``, a sequence function standing in for it). An engine's
    exception (EngineSkip, EngineRejected, NotImplementedError, a crash) propagates to the caller."""
    if fn is None and not computes(engine):
        return SequenceRun("skip", f"{engine} computes one layer per request; stacks run in "
                                   f"{', '.join(engines.sequence_engines())} and in plug-ins whose callable has a "
                                   f"`stack` attribute, fn.stack(layers, x) -> every layer's output {tag(stack)}",
                           reason_id="no-sequences")
    ref = reference(stack)
    exact = engines.is_reference(engine) and fn is None
    if not exact:
        problem = unusable(stack, ref.layers)
        if problem:
            return SequenceRun("skip", f"{engine}: no usable error bound at {problem}; it would accept an all-zero "
                                       f"output: use fewer layers, smaller reductions or a wider dtype {tag(stack)}",
                               check="values", reason_id="no-usable-bound")
    # The reference engine's answer is the reference itself (as run_one reuses the oracle's output).
    if exact:
        params = sum(layer.geometry.param_count() for layer in stack.layers)
        out = SequenceOutput(ys=[r.y for r in ref.layers], params=params)
    else:
        out = compute(stack, engine, fn)
    names = [layer.layer for layer in stack.layers]
    judged = judge(stack, engine, names, out.ys, ref.layers)
    done = SequenceRun(judged.verdict, judged.message, judged.check, layer_metrics=judged.metrics,
                       findings=judged.findings, facts=dict(out.facts), params=out.params,
                       notes=[*out.notes, ratios_note(names, judged)])
    if out.ys:
        done.output_shape, done.dtype = tuple(out.ys[-1].shape), str(out.ys[-1].dtype)
    if judged.culprit is not None:
        done.metrics = judged.metrics[judged.culprit] if judged.culprit < len(judged.metrics) else None
    elif judged.metrics:
        done.metrics = max(judged.metrics, key=lambda m: m.max_ratio)
    return done
