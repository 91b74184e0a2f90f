"""One configuration in every engine: its alarms (failures no known bug explains), counted in Stats."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..cases.schema import Case
from ..diagnosis.diagnose import Diagnoser as CatalogueDiagnoser
from ..errors import CaseError
from ..judge.diagnoser import Diagnoser
from ..judge.runner import Result, item_label, run_one
from .alarms import cause, known_bug, one_line, reason_key
from .configs import to_case
from .observe import observe
from .stats import Stats

# Alarms are grouped by their diagnosis: every configuration is diagnosed (the mutant catalogue's Diagnoser).
DIAGNOSER = CatalogueDiagnoser()


def run_checks(case: Case, engines: Iterable[str], diagnoser: Diagnoser | None = DIAGNOSER) -> dict[str, Result]:
    """Every engine's result on every check the case asks for, by item label (runner.item_label), forward first;
    failures diagnosed by ``diagnoser`` (their findings are what alarms are grouped by)."""
    return {item_label(engine, check): run_one(case, engine, check, diagnoser)
            for check in case.check for engine in engines}


def check_entry(entry: dict[str, Any], engines: Iterable[str], stats: Stats | None = None) -> list[str]:
    """Run one configuration in every engine; return the alarms (fail or error verdicts no known bug explains)."""
    return [alarm["message"] for alarm in check(entry, engines, stats)[0]]


def check(entry: dict[str, Any], engines: Iterable[str], stats: Stats | None
           ) -> tuple[list[dict[str, str]], dict[str, dict[str, Any]]]:
    """check_entry's work: the alarms ({engine, message, cause}) and, where there are any, what every engine
    computed (engine -> observation, see observe). ``stats`` counts the configuration once under each cause."""
    try:
        case = to_case(entry)
    except CaseError:
        if stats is not None:
            stats.invalid += 1
        return [], {}
    alarms, refused = [], False
    results = run_checks(case, engines)
    for engine, r in results.items():   # engine: a label, ENGINE or ENGINE:backward
        key = f"{engine} {case.dtype}"
        bug = known_bug(case, r)
        if bug is None and r.check != "forward" and r.verdict == "fail":
            # Gradients of a layer whose forward has a known bug here carry it (the bias bug moves dbias).
            forward = results.get(r.engine)
            bug = known_bug(case, forward) if forward is not None else None
        if r.verdict in ("fail", "error") and bug is None:
            alarms.append({"engine": engine, "message": r.message, "cause": cause(engine, r)})
        if stats is None:
            continue
        if bug is not None:
            stats.known_bugs[f"{key}: {bug.id}"] = stats.known_bugs.get(f"{key}: {bug.id}", 0) + 1
            example = f"{case.layer} {list(case.input_shape)} {case.dtype} {case.config}"
            stats.known_example.setdefault(bug.id, f"{example}: {one_line(r)[:200]}")
        if r.verdict == "pass":
            stats.runs[key] = stats.runs.get(key, 0) + 1
            ratio = r.metrics.max_ratio if r.metrics else 0.0
            if ratio >= stats.max_ratio.get(key, -1.0):
                stats.max_ratio[key] = ratio
                stats.worst[key] = f"{case.layer} {list(case.input_shape)} {case.config}"
        elif r.verdict == "rejected":
            refused = True
            reason = f"{engine}: {case.layer}: {reason_key(r)}"
            stats.rejected[reason] = stats.rejected.get(reason, 0) + 1
        elif r.verdict == "skip":
            reason = f"{engine}: {reason_key(r)}"
            stats.skipped[reason] = stats.skipped.get(reason, 0) + 1
    if stats is not None:
        stats.tried += 1
        stats.rejected_configs += refused
        for c in dict.fromkeys(a["cause"] for a in alarms):
            stats.alarms[c] = stats.alarms.get(c, 0) + 1
    return alarms, ({engine: observe(r) for engine, r in results.items()} if alarms else {})
