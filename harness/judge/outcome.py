"""The outcome policy and the case's expectations: where a known bug or a pinned refusal holds on a run's facts,
and what it makes of a verdict (xfail, xpass, a refusal as expected, a note)."""
from __future__ import annotations

from typing import Any

from ..cases.schema import Case
from ..known import facts
from ..known.registry import OUTPUT, Applicable, Expectation, applicable
from .findings import Finding
from .forward import tag
from .result import Result


def outcome(verdict: str, xfail: str | None) -> str:
    """The one outcome policy that pytest, the CLI and the report share: where the case's known bug holds
    (``xfail``), a fail is the expected "xfail" and a pass is an "xpass" (strict: the bug is gone, the run fails);
    otherwise the verdict itself (pass, fail, skip, rejected, error)."""
    if xfail and verdict in ("fail", "pass"):
        return "xfail" if verdict == "fail" else "xpass"
    return verdict


def run_facts(case: Case, result: Result) -> dict[str, Any]:
    """Every fact a condition may ask about one item: the process's, the case's, and the engine's run."""
    return {**facts.process_facts(), "dtype": case.dtype, "layer": case.layer, **result.facts}


def expected(case: Case, table: dict[str, Expectation], engine: str, result: Result) -> Applicable | None:
    """The case's expectation for ``engine`` (its own, else inherited: harness.known.registry.applicable) where its
    condition holds on this run's facts, else None. Where it does not hold the item is judged like any other,
    and a note says why."""
    found = applicable(table, engine)
    if found is None:
        return None
    expectation = found.expectation
    seen = expectation.evaluate(case, run_facts(case, result))
    if seen.holds:
        return found
    inherited = f" (inherited from {found.parent})" if found.parent else ""
    result.notes.append(f"not expected here{inherited}: {expectation.known or expectation.reason} "
                        f"(holds when {expectation.condition_text()}; here: {seen.explanation})")
    return None


def accepted_but_expected_to_refuse(case: Case, engine: str, result: Result) -> bool:
    """The engine produced an output where the case expects a refusal here: fail the item, and say so. An heir
    that accepts what the engine it inherits from refuses is no failure (a converter need not share a kernel's
    limits): it is judged on its values, and a note says so."""
    refusal = expected(case, case.rejected_by, engine, result)
    if refusal is not None and refusal.parent:
        result.notes.append(f"{refusal.parent} refuses this configuration ({refusal.label}); {engine} accepts it "
                            "and is judged on its values")
        return False
    if refusal:
        known = refusal.expectation.known
        result.verdict, result.decided_by, result.findings = "fail", "refusal", []
        result.message = result.headline = (f"{engine}: accepted the configuration, but should reject it "
                                            f"(expect.rejected_by{': ' + known if known else ''}) {tag(case)}")
    return refusal is not None


def refusal_source(refusal: Applicable) -> str:
    """' (ID)', ' (inherited from keras: ID)' or '' after "rejected, as the case expects"."""
    known = refusal.expectation.known
    if refusal.parent:
        return f" (inherited from {refusal.parent}{': ' + known if known else ''})"
    return f" ({known})" if known else ""


def known_bug_of(case: Case, engine: str, result: Result, check: str) -> str:
    """The case's known bug of ``engine`` that holds here ('' where none): what makes a fail an xfail.

    An inherited bug (``Engine.inherits``) is not strict: a converter may hide it by accident (tf2onnx folds an
    NHWC bias_add into the bias of an NCHW conv, which cancels the Keras bias bug), so a pass stays a pass, with a
    "hidden" finding: the converter changed the meaning of the graph it was given (a user who checks the converted
    model against the original finds them different), which the scoreboard counts. It explains only wrong values:
    a wrong shape or dtype is the converter's own failure."""
    bug = expected(case, case.xfail, engine, result)
    if bug is None:
        return ""
    if not bug.expectation.explains(case, OUTPUT):
        # A bug of the gradients alone: the forward item is judged like any other.
        why = f"the known bug {bug.label} does not explain the output (it moves {bug.expectation.moved_text()})"
        if result.verdict == "fail":
            result.message += f"; {why}: judged as a failure"
        else:
            result.notes.append(why)
        return ""
    if bug.parent is None:
        result.xfail_id = bug.label
        return bug.expectation.reason
    if result.verdict == "pass":
        result.notes.append(f"{bug.parent}'s known bug {bug.label} does not show here: the converter hides it")
        result.findings.append(Finding(
            "hidden", bug.label, f"{engine} hides {bug.parent}'s known bug {bug.label}: {bug.parent} computes it "
            f"wrong here and {engine} right, so {engine} does not compute {bug.parent}'s function (a conversion that "
            "changed the graph's meaning, or another backend of the same layer)",
            {"engine": bug.parent}))
        return ""
    if result.verdict == "fail" and check in ("shape", "dtype"):
        result.notes.append(f"{bug.parent}'s known bug {bug.label} holds here, but this {check} failure is not it: "
                            f"it is {engine}'s own")
        return ""
    inherited = f"inherited from {bug.parent}: {bug.label}"
    said = any(f.kind == "inherited" and f.id == bug.label and f.evidence.get("engine") == bug.parent
               for f in result.findings)
    if result.verdict == "fail" and not said:   # the diagnosis may have said it already
        result.message += f"; {inherited} ({bug.parent}'s known bug, carried through the conversion)"
    result.notes.append(f"{inherited}: {bug.parent}'s known bug holds here, evaluated on {engine}'s run facts")
    result.xfail_id, result.xfail_from = bug.label, bug.parent
    return inherited
