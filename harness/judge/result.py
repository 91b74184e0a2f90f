"""The Result of one (case, engine, check) item: its verdict, the check that decided it, metrics and findings."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engines.base import EngineOutput
from ..reference.agreement import Bound, Metrics
from .findings import Finding

VERDICTS = ("pass", "fail", "skip", "rejected", "error")
UNEXPECTED = ("fail", "xpass", "error")   # the outcomes that make a run fail


# Where a skip or refusal comes from, as Result.reason_id: the engine's own words (Result.reason holds its
# exception text, which a reader may normalise), or the harness's decision (reason: a fixed sentence).
ENGINE_WORDS = ("engine-skip", "engine-refusal")


@dataclass
class Result:
    """The verdict of one engine on one case, with everything a report shows."""

    case_id: str
    file: str
    engine: str
    verdict: str                              # one of VERDICTS
    # The one line a person reads: the headline, then the findings rendered (harness.judge.findings.render), then what
    # the known-bug logic adds. Shown by reports and JSON; no consumer parses it: they read the fields below.
    message: str = ""
    metrics: Metrics | None = None
    output_shape: tuple[int, ...] | None = None
    dtype: str | None = None
    params: int | None = None
    weight_shapes: dict[str, tuple[int, ...]] | None = None
    notes: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    # Of duration_s, the seconds inside the engine's framework or converter calls (harness.engines.stopwatch)
    third_party_s: float = 0.0
    repro: str = ""
    details: str = ""                         # traceback of a harness error
    xfail: str = ""                           # the case's known bug of this engine, where it holds: a fail is expected
    facts: dict[str, Any] = field(default_factory=dict)   # what decided the engine's behaviour (oneDNN, layout)
    output: EngineOutput | None = field(default=None, repr=False)   # kept for reports and diagnosis
    bound: Bound | None = field(default=None, repr=False)
    check: str = "forward"                    # forward (the output) | backward (the gradients)
    # backward: per gradient tensor judged ("x", kernels, "bias", ...), its metrics; `metrics` is then the
    # deciding (failing) tensor's, else the one that used most of its budget
    gradient_metrics: dict[str, Metrics] = field(default_factory=dict)
    tensor: str = ""                          # backward: the tensor `metrics` describes ("x", a kernel name, "bias")
    # backward: per tensor judged, (the oracle's gradient, its per-element bound); the engine's are in
    # output.gradients. Kept for reports (heatmaps), dropped with the output.
    gradient_arrays: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    headline: str = ""                        # what failed or why it was skipped, one line, without findings
    # the check that decided a fail, skip or refusal: shape | dtype | values | expect (judgement.CHECKS), presence
    # (a gradient missing or unknown), refusal (expected or unexpected), or '' (a pass, an error)
    decided_by: str = ""
    findings: list[Finding] = field(default_factory=list)   # what the diagnoser found, the closest first
    reason_id: str = ""                       # a skip's or refusal's source: ENGINE_WORDS or a harness decision
    reason: str = ""                          # its words: the engine's exception text, else a fixed sentence
    error_type: str = ""                      # an error's exception type (its text is in reason)
    xfail_id: str = ""                        # the known bug in xfail: its registry id (or its reason as written)
    xfail_from: str = ""                      # the engine it is inherited from, or '' for the engine's own
    # a sequence (a stack): per layer judged, in order, its metrics (`metrics` is the culprit's, else the largest);
    # the culprit is a finding of kind "culprit" (harness.judge.sequence)
    layer_metrics: list[Metrics] = field(default_factory=list)
