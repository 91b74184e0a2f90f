"""Findings: what a judgement or a diagnosis found, as data. Messages are rendered from them at the edge; every
consumer (fuzz grouping, scoreboard causes, known-bug matching, the report) reads the fields, never the prose."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# What a finding is about. A consumer groups by (kind, id): both are stable across configurations and wording.
KINDS = (
    "mutant",        # a known mistake (harness.mutation.mutants) reproduces the output: id = the mutant's name
    "gradient_mutant",   # a backward mutant reproduces the gradients: id = its name
    "known_bug",     # a registry entry (harness.known.registry) explains it: id = the registry id
    "inherited",     # the known bug of the engine a converter's graph comes from: id = the registry id
    # on a pass: that known bug holds on this run's facts, but the converter's output is right (it changed the
    # meaning of the graph it was given, which hides the bug from its users): id = the registry id
    "hidden",
    "pattern",       # a pattern of the values no mutant reproduces (permuted channels, per-channel offset, ...)
    "shape",         # how a wrong output shape differs (an axis, the batch, the channel count)
    "dtype",         # the dtype changed silently (evidence: whether the values agree anyway)
    "precision",     # computed or rounded in a narrower precision than the case's
    "stage",         # which stage of a layer with stages went wrong (separable: depthwise, pointwise)
    "error_cause",   # the likely cause of an engine's exception (an invalid exported graph, a crash)
    "diagnosis_failed",   # the diagnosis itself raised: id = the exception's type (the verdict stands without it)
    "culprit",       # a sequence's first layer over its bound: id = the layer's index
)


@dataclass(frozen=True)
class Finding:
    """One thing found about an item (a failing one; a pass only for a hidden known bug): its kind, a stable id
    within the kind, the sentence a person reads, and the numbers behind it (evidence), for reports and tests; text
    may carry one configuration's numbers, the (kind, id) pair never does."""

    kind: str
    id: str
    text: str
    evidence: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"finding kind={self.kind!r}, but should be one of {', '.join(KINDS)}")

    @property
    def key(self) -> str:
        """What alarms and causes are grouped by: 'kind:id'."""
        return f"{self.kind}:{self.id}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "text": self.text, "evidence": dict(self.evidence)}


def first(findings: Iterable[Finding], *kinds: str) -> Finding | None:
    """The first finding of one of ``kinds`` (any kind where none is given), the closest explanation first."""
    return next((f for f in findings if not kinds or f.kind in kinds), None)


# How a message heads a kind's sentences: an exception's likely cause apart from a failure's diagnosis.
_HEADS = {"error_cause": "cause"}


def render(findings: Iterable[Finding]) -> str:
    """The findings as the tail of a one-line message: '; diagnosis: A; B' (an error's causes '; cause: C'), in
    the order found; '' for none."""
    heads: dict[str, list[str]] = {}
    for f in findings:
        if f.text:
            heads.setdefault(_HEADS.get(f.kind, "diagnosis"), []).append(f.text)
    return "".join(f"; {head}: {'; '.join(texts)}" for head, texts in heads.items())
