"""Shards of a report and their merge: `report --shard I/N` and `report --merge shard*/results.json`.

A shard run (``python -m harness report PATHS --shard I/N --out DIR``) runs the cases of shard I
(harness.cases.sharding: every job computes the same split) and writes DIR/results.json and DIR/index.html of those
cases, like any report, and beside them DIR/shard.json: which shard it is, where its cases stand in the whole
selection, a digest of that selection, the coverage table of the whole selection and the heatmap data of its
cases (what the page draws, which results.json does not hold).

``merge`` reads the N results.json files (each with its shard.json), checks that they are the N shards of one
selection run with the same engines, and returns the document an unsharded run would have written: the cases and
their records (one per (case, engine, check) item: forward and backward items stay apart) in the selection's
order, the summary counted again, the selection's coverage. Only what describes the run itself differs:
``created`` (the earliest shard's), ``command`` (the merge), ``duration_s`` (the sum of the shards' run times),
each record's ``duration_s``, and ``environment`` (the first shard's; shards that ran elsewhere are named in the
warnings). A ``--baseline`` is compared on the merged records.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..cases.sharding import STRATEGY, case_key, check_complete, selection_digest
from . import baseline as baseline_mod
from . import results_json

SIDECAR = "shard.json"
FORMAT = "conv-equivalence-harness report shard"
VERSION = 1
# Top-level fields that every shard of one run must have alike (else they are not shards of one run).
SAME = ("paths", "engines", "reference", "tolerance", "invalid_cases")


def sidecar(*, index: int, count: int, selection: list[Any], positions: list[int], coverage: dict[str, Any],
            pictures: dict[str, Any], estimated_s: float) -> dict[str, Any]:
    """shard.json of one shard: ``selection`` is every selected case (in order), ``positions`` this shard's."""
    return {
        "format": FORMAT, "version": VERSION, "index": index, "count": count, "strategy": STRATEGY,
        "selection": {"cases": len(selection), "digest": selection_digest(case_key(c) for c in selection)},
        "positions": positions, "estimated_s": round(estimated_s, 3), "coverage": coverage, "pictures": pictures,
    }


def sidecar_text(data: dict[str, Any]) -> str:
    return json.dumps(results_json.finite(data), separators=(",", ":"), allow_nan=False, default=str) + "\n"


def _load(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    doc = results_json.load(path)
    side_path = Path(path).with_name(SIDECAR)
    try:
        side = json.loads(side_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no {SIDECAR} beside it; a shard is written by `python -m harness report PATHS "
                         f"--shard I/N --out DIR`") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {side_path}: {exc}") from exc
    if not isinstance(side, dict) or side.get("format") != FORMAT or side.get("version") != VERSION:
        raise ValueError(f"{side_path}: not a shard file of version {VERSION} ({FORMAT!r})")
    if len(side["positions"]) != len(doc["cases"]):
        raise ValueError(f"{side_path}: {len(side['positions'])} positions for {len(doc['cases'])} cases in {path}")
    return doc, side


def _differing_environment(first: dict[str, Any], other: dict[str, Any]) -> list[str]:
    keys = sorted(set(first) | set(other))
    return [k for k in keys if first.get(k) != other.get(k)]


def merge(paths: list[str], command: list[str], baseline_path: str | None = None
          ) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(the merged results document, the heatmap data of its cases, warnings) of the shards' results files.

    ValueError when they are not the complete set of shards of one run: a shard missing or given twice, shards
    of different selections (cases changed between jobs) or of different engines, paths or tolerance."""
    if not paths:
        raise ValueError("--merge: no results files given")
    old = results_json.load(baseline_path) if baseline_path else None   # a bad baseline fails first
    loaded = [(p, *_load(p)) for p in paths]
    loaded.sort(key=lambda t: t[2]["index"])
    first_path, first, first_side = loaded[0]
    count = first_side["count"]
    warnings: list[str] = []
    for path, doc, side in loaded[1:]:
        if side["count"] != count:
            raise ValueError(f"{path} is shard {side['index']}/{side['count']}, {first_path} is shard "
                             f"{first_side['index']}/{count}: not shards of one split")
        if side["selection"] != first_side["selection"]:
            raise ValueError(f"{path} and {first_path} were split from different selections of cases "
                             f"({side['selection']['cases']} vs {first_side['selection']['cases']} cases, or other "
                             "ids): every shard must run the same case paths and --case options on the same files")
        for key in SAME:
            if doc.get(key) != first.get(key):
                raise ValueError(f"{path} and {first_path} differ in {key!r}: not shards of one run")
        if side["coverage"] != first_side["coverage"]:
            raise ValueError(f"{path} and {first_path} differ in the coverage of their selection")
        diff = _differing_environment(first["environment"], doc["environment"])
        if diff:
            warnings.append(f"{path} ran in another environment than {first_path} (differs in "
                            f"{', '.join(diff)}); the merged report records the first shard's")
    indices = [side["index"] for _, _, side in loaded]
    check_complete(indices, count)

    total = first_side["selection"]["cases"]
    slots: list[tuple[dict[str, Any], list[dict[str, Any]]] | None] = [None] * total
    pictures: dict[str, Any] = {}
    for path, doc, side in loaded:
        by_case: dict[str, list[dict[str, Any]]] = {}
        for rec in doc["results"]:
            by_case.setdefault(rec["case_id"], []).append(rec)
        for info, position in zip(doc["cases"], side["positions"]):
            if not 0 <= position < total or slots[position] is not None:
                raise ValueError(f"{path}: case {info['id']!r} at position {position}, which is out of range or "
                                 "taken by another shard")
            slots[position] = (info, by_case.pop(info["id"], []))
        if by_case:
            raise ValueError(f"{path}: results of cases it does not list: {', '.join(sorted(by_case))}")
        pictures.update(side.get("pictures") or {})
    empty = [i for i, s in enumerate(slots) if s is None]
    if empty:
        raise ValueError(f"--merge: {len(empty)} of {total} cases of the selection are in no shard")

    filled = [s for s in slots if s is not None]   # every one (checked above)
    cases = [info for info, _ in filled]
    records = [rec for _, recs in filled for rec in recs]
    keys = [results_json.record_key(rec) for rec in records]
    if len(set(keys)) != len(keys):
        twice_items = sorted({k for k in keys if keys.count(k) > 1}, key=str)
        raise ValueError("--merge: the same (case, engine, check) item more than once: " + ", ".join(
            f"{c}[{e}{'' if k == 'forward' else ' ' + k}]" for c, e, k in twice_items[:5]))
    for rec in records:
        rec["baseline"] = None   # a shard's own comparison saw only its part of the run
    section = baseline_mod.compare(records, old, baseline_path) if old is not None and baseline_path else None
    doc = results_json.document(
        cases=cases, records=records, engines=first["engines"], invalid=first["invalid_cases"],
        environment=first["environment"], created=min(str(d.get("created")) for _, d, _ in loaded),
        paths=first["paths"], command=command,
        duration_s=sum(float(d.get("duration_s") or 0.0) for _, d, _ in loaded), baseline=section,
        coverage=first_side["coverage"],
        # the model entries ran in the first shard (their pages and repros are in its folder)
        models=[m for _, d, _ in loaded for m in d.get("models") or []])
    return doc, pictures, warnings
