"""Compare a run with an earlier results.json: which (case, engine, check) items changed verdict or error ratio.

An item is matched by (case_id, engine, check); a baseline written before schema 1.4 has no "check": its records are
forward items, so that a backward item of this run is "new" against it, never compared with a forward one."""
from __future__ import annotations

from typing import Any

from .results_json import number, record_key

# A ratio "changed" when it moved by more than RATIO_FACTOR either way, or crossed 1 (the budget). Ratios
# under RATIO_FLOOR (1% of the budget) count as RATIO_FLOOR: rounding noise there is not a change.
RATIO_FACTOR = 2.0
RATIO_FLOOR = 0.01


def _ratio(rec: dict[str, Any]) -> float | None:
    m = rec.get("metrics")
    return number(m.get("max_ratio")) if m else None


def classify(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """The ``baseline`` field of a record: old verdict and ratio, and what changed (None: nothing)."""
    if old is None:
        return {"verdict": None, "max_ratio": None, "factor": None, "change": "new"}
    rn, ro = _ratio(new), _ratio(old)
    factor = None
    change = None
    if rn is not None and ro is not None:
        factor = 1.0 if rn == ro else max(rn, RATIO_FLOOR) / max(ro, RATIO_FLOOR)  # inf == inf: unchanged
    if new["verdict"] != old.get("verdict"):
        change = "verdict"
    elif (factor is not None and rn is not None and ro is not None
          and ((rn > 1.0) != (ro > 1.0) or factor > RATIO_FACTOR or factor < 1 / RATIO_FACTOR)):
        change = "ratio"
    return {"verdict": old.get("verdict"), "max_ratio": ro, "factor": factor, "change": change}


def compare(records: list[dict[str, Any]], old_doc: dict[str, Any], path: str) -> dict[str, Any]:
    """Set each record's ``baseline`` field; return the document's top-level ``baseline`` section."""
    old = {record_key(r): r for r in old_doc["results"] if isinstance(r, dict)}
    seen = set()
    counts = {"verdict": 0, "ratio": 0, "new": 0}
    for rec in records:
        key = record_key(rec)
        seen.add(key)
        rec["baseline"] = classify(rec, old.get(key))
        if rec["baseline"]["change"]:
            counts[rec["baseline"]["change"]] += 1
    # Only pairs this run could have produced count as gone: a run over one file (or one engine) against a
    # full baseline does not report every other item as missing.
    files, engines = {r["file"] for r in records}, {r["engine"] for r in records}
    missing = [(k, r) for k, r in old.items() if k not in seen]
    gone = [{"case_id": k[0], "engine": k[1], "check": k[2], "verdict": r.get("verdict")}
            for k, r in missing if r.get("file") in files and k[1] in engines]
    return {
        "path": path, "created": old_doc.get("created"), "schema_version": old_doc.get("schema_version"),
        "environment": old_doc.get("environment"), "changed": counts, "gone": gone,
        "not_compared": len(missing) - len(gone),
        "rule": (f"an item (case, engine, check) changed when its verdict differs, or its max error/bound moved by "
                 f"more than a factor {RATIO_FACTOR:g} either way or crossed 1 (ratios under {RATIO_FLOOR:g} count as "
                 f"{RATIO_FLOOR:g})"),
    }
