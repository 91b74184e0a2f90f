"""The judgement of a sequence: every layer's output in order against its propagated bound; the first over it is the
culprit.

Each layer's ratio is max |zh_i - z*_i| / B_i (harness.judge.stack_reference derives B_i); the sequence passes when
every ratio is at most 1. The layers are judged in order and the first whose output has a wrong shape or dtype or whose
ratio exceeds 1 is the culprit: the layers before it were within their bounds, and from |zh_{i-1} - z*_{i-1}| <=
B_{i-1} a right layer i stays within B_i, so layer i computed something else. The layers after it read its wrong
output and are not judged. The messages are the single-layer judgement's (harness.judge.forward: mismatch, over_bound),
the layer named in them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import engines
from ..reference.agreement import Bound, Metrics, format_ratio, measure
from ..tensors.values import numpy_dtype, unit_roundoff
from .findings import Finding
from .forward import mismatch, over_bound
from .stack_reference import LayerReference


@dataclass
class SequenceJudgement:
    verdict: str                          # pass | fail
    message: str = ""
    check: str = ""                       # what decided a fail: outputs (their count) | shape | dtype | values
    metrics: list[Metrics] = field(default_factory=list)   # per layer judged, in order
    culprit: int | None = None            # the first layer over its bound (or of a wrong shape or dtype)
    findings: list[Finding] = field(default_factory=list)  # the culprit, as data (kind "culprit", id its index)


def step_name(i: int, layer: str) -> str:
    """How a message names step i: 'layers[1] (DepthwiseConv2D)'."""
    return f"layers[{i}] ({layer})"


def judge(case: Any, engine: str, names: Sequence[str], ys: Sequence[np.ndarray],
          refs: Sequence[LayerReference]) -> SequenceJudgement:
    """Every step's output in order: shape, dtype, values within B_i; the first that fails is the culprit.
    ``case`` names the item in messages (harness.judge.forward.tag: its file and id); ``names`` are the steps' layer
    kinds."""
    if len(ys) != len(refs):
        return SequenceJudgement("fail", mismatch(engine, "layer outputs", len(ys), f"{len(refs)} (one per layer)",
                                                  case), "outputs")
    exact = engines.is_reference(engine)
    want_dtype = "float64" if exact else str(numpy_dtype(case.dtype))
    u = unit_roundoff("float64" if exact else case.dtype)
    judged = SequenceJudgement("pass")
    for i, (layer, y, ref) in enumerate(zip(names, ys, refs)):
        name = step_name(i, layer)
        if tuple(y.shape) != ref.y.shape:
            return _culprit(judged, i, layer, "shape",
                            mismatch(engine, f"{name} output shape", tuple(y.shape), ref.y.shape, case))
        if str(y.dtype) != want_dtype:
            return _culprit(judged, i, layer, "dtype", mismatch(engine, f"{name} output dtype", y.dtype, want_dtype,
                                                                case))
        m = measure(y, ref.y, Bound(k=ref.k, u=u, bound=ref.bound))
        judged.metrics.append(m)
        if m.max_ratio > 1.0:
            return _culprit(judged, i, layer, "values", over_bound(engine, name, m, y.size, case))
    return judged


def _culprit(judged: SequenceJudgement, i: int, layer: str, check: str, message: str) -> SequenceJudgement:
    judged.verdict, judged.message, judged.check, judged.culprit = "fail", message, check, i
    ratio = judged.metrics[i].max_ratio if i < len(judged.metrics) else None
    # The headline names the culprit already: the runner does not render this finding into the message again.
    text = f"{step_name(i, layer)} is the culprit: the first layer off ({check}); the layers after it read its output"
    judged.findings.append(Finding("culprit", str(i), text, {"layer": i, "kind": layer, "check": check,
                                                           "max_ratio": ratio}))
    return judged


def ratios_note(names: Sequence[str], judged: SequenceJudgement) -> str:
    """'error/bound per layer: [0] Conv2D 0.012, [1] DepthwiseConv2D 3.2e+04 (culprit), [2] Conv2D not judged'."""
    parts = []
    for i, layer in enumerate(names):
        if i < len(judged.metrics):
            parts.append(f"[{i}] {layer} {format_ratio(judged.metrics[i].max_ratio)}"
                         + (" (culprit)" if i == judged.culprit else ""))
        elif i == judged.culprit:
            parts.append(f"[{i}] {layer} (culprit)")
        else:
            parts.append(f"[{i}] {layer} not judged (reads the culprit's output)")
    return "error/bound per layer: " + ", ".join(parts)


def culprit_of(findings: Sequence[Finding]) -> int | None:
    """The culprit's index from a result's findings (kind "culprit"), or None."""
    found = next((f for f in findings if f.kind == "culprit"), None)
    return None if found is None else int(found.id)
