"""How cases, the fuzzer and the diagnosis refer to known behaviour (harness.known.bugs holds the entries): a case's
expectation (xfail, rejected_by) parsed and evaluated on a run's facts, inheritance along Engine.inherits, the bug
that explains a failure, and the README's list."""
from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .bugs import GRADIENTS, OUTPUT, REGISTRY, TENSORS, Case, Known
from .conditions import Evaluation, describe, evaluate, validate

__all__ = ["GRADIENTS", "ID_LIKE", "OUTPUT", "REGISTRY", "TENSORS", "Applicable", "Case", "Expectation", "Known",
           "applicable", "entries", "lineage", "markdown", "matching_bug", "parse"]

ID_LIKE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)+$")   # a registry id, as opposed to a reason written as text


@dataclass(frozen=True)
class Expectation:
    """What a case says about one engine: a known bug (xfail) or a refusal (rejected_by), and when it holds."""

    reason: str                               # shown in verdicts
    known: str | None = None                  # registry id
    when: Mapping[str, Any] | None = None     # the case's own condition, on top of the registry's
    tensors: tuple[str, ...] = ()             # a reason's own declaration of what it moves (TENSORS); () = any

    @property
    def entry(self) -> Known | None:
        return REGISTRY.get(self.known) if self.known else None

    def explains(self, case: Case, tensor: str) -> bool:
        """Whether this expectation explains a failure of ``tensor`` ("output", "dx", "dbias", ...): a registry
        bug only for what it declares it moves; a reason for what the case declares (anything, where it declares
        nothing)."""
        if self.entry is not None:
            return self.entry.moves(case, tensor)
        return not self.tensors or tensor in self.tensors or (tensor != OUTPUT and GRADIENTS in self.tensors)

    def moved_text(self) -> str:
        """What the expectation explains, in words."""
        if self.entry is not None:
            return self.entry.tensors_text()
        return ", ".join("every gradient" if t == GRADIENTS else t for t in self.tensors) or "anything"

    def evaluate(self, case: Case, facts: Mapping[str, Any]) -> Evaluation:
        """Whether the expectation holds for this case here: the registry's condition, the configurations it
        touches, and the case's own condition."""
        own = evaluate(self.when, facts)
        if self.entry is None:
            return own
        if not self.entry.applies(case):
            return Evaluation(False, f"{self.known} does not touch this configuration")
        registry = evaluate(self.entry.when, facts)
        if not self.when:
            return registry
        return Evaluation(registry.holds and own.holds, f"{registry.explanation}, {own.explanation}")

    def condition_text(self) -> str:
        parts = [describe(self.entry.when)] if self.entry else []
        if self.when:
            parts.append(describe(self.when))
        return ", ".join(parts) or "always"


def parse(value: Any, field: str, kind: str) -> tuple[Expectation | None, str | None]:
    """An xfail (kind 'bug') or rejected_by (kind 'refusal') entry as written -> (Expectation, None) or
    (None, problem naming the field). Forms: a registry id; a reason (text, holds everywhere);
    {known: ID, when: {...}} or {reason: TEXT, when: {...}}."""
    if isinstance(value, str):
        value = {"known": value} if value in REGISTRY or ID_LIKE.match(value) else {"reason": value}
    if not isinstance(value, dict):
        return None, f"{field}: must be a registry id, a reason, or {{known: ID | reason: TEXT, when: {{...}}}}"
    unknown = set(value) - {"known", "reason", "when", "tensors"}
    if unknown:
        return None, f"{field}.{sorted(unknown)[0]}: unknown key; allowed: known, reason, when, tensors"
    known, reason, when = value.get("known"), value.get("reason"), value.get("when")
    tensors = value.get("tensors", [])
    if isinstance(tensors, str):
        tensors = [tensors]
    if not (isinstance(tensors, list) and all(t in TENSORS for t in tensors)):
        return None, f"{field}.tensors: must be a list of {', '.join(TENSORS)}; got {value.get('tensors')!r}"
    if tensors and known is not None:
        return None, f"{field}.tensors: the registry declares what {known} moves; tensors go with a reason"
    if tensors and kind != "bug":
        return None, f"{field}.tensors: a refusal moves no tensor"
    if known is None and not (isinstance(reason, str) and reason.strip()):
        return None, f"{field}: needs a registry id (known) or the reason, as text"
    if known is not None:
        entry = REGISTRY.get(known) if isinstance(known, str) else None
        if entry is None:
            near = difflib.get_close_matches(str(known), REGISTRY, n=1, cutoff=0.5)
            hint = f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(REGISTRY)}"
            return None, f"{field}: unknown known-behaviour id {known!r}{hint}"
        if entry.kind != kind:
            return None, f"{field}: {known} is a {entry.kind}, but this field takes a {kind}"
        reason = reason or f"{known}: {entry.summary}"
    if when is not None:
        problems = validate(when, f"{field}.when")
        if problems:
            return None, problems[0]
    return Expectation(reason=str(reason), known=known, when=when, tensors=tuple(tensors)), None   # text by now


def entries(engine: str | None = None, kind: str | None = None) -> list[Known]:
    return [k for k in REGISTRY.values() if (engine is None or k.engine == engine) and (kind is None or k.kind == kind)]


def lineage(engine: str) -> list[str]:
    """``engine``, then the engines whose known behaviour it inherits (``Engine.inherits``), nearest first: an
    engine built from the Keras graph (the ONNX of a buggy Keras layer is buggy too) inherits keras's."""
    from .. import engines  # at call time: the registry's engine modules are not needed to parse a case

    chain = [engine]
    while True:
        try:
            parent = engines.engine_class(chain[-1]).inherits
        except KeyError:   # an unknown name (a mutant name in a test, a plug-in not registered here) inherits nothing
            parent = None
        if not parent or parent in chain:
            return chain
        chain.append(parent)


@dataclass(frozen=True)
class Applicable:
    """A case's expectation as it applies to one engine: its own, or inherited from ``parent``."""

    expectation: Expectation
    parent: str | None = None                 # the engine it is inherited from; None: the engine's own

    @property
    def label(self) -> str:
        """The registry id, or the reason as written."""
        return self.expectation.known or self.expectation.reason


def applicable(table: Mapping[str, Expectation], engine: str) -> Applicable | None:
    """``engine``'s entry of a case's xfail or rejected_by table; where it has none of its own, the nearest
    engine's it inherits from (to be evaluated on ``engine``'s own run facts)."""
    for name in lineage(engine):
        if name in table:
            return Applicable(table[name], None if name == engine else name)
    return None


def matching_bug(engine: str, case: Case, facts: Mapping[str, Any], mutant: str | None) -> Known | None:
    """The known bug of ``engine`` (or of an engine it inherits from) that explains a disagreement on ``case``
    here: its condition holds, the case triggers it, and (where the entry has a mutant) the diagnosis named
    that mutant."""
    for name in lineage(engine):
        for k in entries(name, "bug"):
            if evaluate(k.when, facts).holds and k.applies(case) and (k.mutant is None or k.mutant == mutant):
                return k
    return None


def markdown() -> str:
    """The registry as the README lists it (a test keeps the README's copy identical)."""
    return "\n".join(f"- `{k.id}` ({k.kind}, {k.engine}; holds when `{describe(k.when)}`): {k.summary}.\n"
                     f"  Touches: {k.touches}.{f' Moves: {k.tensors_text()}.' if k.kind == 'bug' else ''} "
                     f"Seen: {k.seen}.\n  Repro: `{k.repro}`" for k in REGISTRY.values())
