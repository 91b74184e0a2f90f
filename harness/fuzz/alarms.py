"""What an alarm is counted under: its cause (from the result's fields), the known bug that explains it, and
refusal reasons made alike across configurations."""
from __future__ import annotations

import re

from ..cases.schema import Case
from ..diagnosis.causes import label
from ..judge.findings import first
from ..judge.runner import Result, run_facts
from ..known.registry import Known, matching_bug
from .configs import FUZZ_FILE


def cause(engine: str, result: Result) -> str:
    """What alarms are grouped by: the engine (an item label) and the cause label of the result's fields
    (harness.diagnosis.causes.label): its first (closest) finding's kind and id, else the check that failed, else
    the error type. Stable across configurations and wording: one mistake seen in many configurations is one
    cause, and rewording a finding's sentence moves no alarm. (Later findings, such as which axis a wrong shape
    differs in, vary with the configuration.)"""
    return f"{engine}: {label(result.verdict, result)}"[:240]


_DIGITS = re.compile(r"\d+(?:\.\d+)?")


def without_numbers(text: str) -> str:
    """An exception's text (hypothesis's own, when it stops a search) without its numbers, one line."""
    return _DIGITS.sub("#", text.split("\n")[0]).strip()


def reason_key(result: Result) -> str:
    """A refusal or skip reason without the configuration and numbers, so that alike ones count together: the
    harness's own reasons are fixed sentences (Result.reason_id); an engine's words (its exception text) lose the
    layer it echoes and their numbers."""
    text = result.reason.split("\n")[0]
    if result.reason_id not in ("engine-skip", "engine-refusal"):
        return text[:110]
    for sep in (") at call: ", "): "):   # drop "Keras refused Layer(args...)" before the framework's own words
        if "refused" in text and sep in text:
            text = text.split(sep, 1)[1]
            break
    text = re.sub(r"\{[^}]*\}", "{...}", text)   # sets print in any order
    return re.sub(r"\d+", "#", text)[:110].strip()


def known_bug(case: Case, result: Result) -> Known | None:
    """The registry entry (harness/known/registry.py) that explains a failure of ``result.engine`` on ``case`` here: its
    condition holds for this process's facts and the run's own (``result.facts``: the kernel path, the layout
    the layer ran in), the configuration triggers it, and, where the entry names a mutant, the diagnosis named
    that mutant first (the first mutant finding: its closest reproduction). Only wrong values (a fail) qualify."""
    if result.verdict != "fail":
        return None
    named = first(result.findings, "mutant")
    facts = run_facts(case, result)
    return matching_bug(result.engine, case, facts, named.id if named is not None else None)


def one_line(result: Result) -> str:
    """The message's first line for a person, without its [fuzz.yaml::ID] tag (an id no printed case has)."""
    return result.message.split("\n")[0].replace(f" [{FUZZ_FILE}::{result.case_id}]", "").strip()
