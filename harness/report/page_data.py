"""The report page's data: what results.json holds, cut to what the page reads (results.json itself stays whole).

The page parses one blob at load (per case its records, slim: the fields the matrix and the case's head need) and
one per case when it is opened (the lazy blob: the case as written, each item's repro, pictures, histogram, worst
elements and the pattern sentence's data). Cut, each for a reason a reader would not miss:
- fields the page never reads (the case's fields repeated in each record, the findings and decided_by that the
  message already renders, the engine and check that key the record) and empty values (null, "", [], {});
- metrics (a record's, each gradient tensor's) as a row of values in the order of meta's ``metric_keys`` (the
  keys, repeated in every record, were half their bytes), their floats to 6 significant digits (the page shows 3),
  but the ratio that decides (max_ratio) kept as results.json has it and the worst element's values at 9 digits
  (as the page shows them); an item's time to 3; its outcome where it differs from its verdict (a known bug);
- a ratio histogram's edges (the same for every item: once in meta) and its empty bins outside the filled span;
- an item's worst elements, where it has no maps (pictures.budget_for: a pass far under its bound), as the metrics
  table shows its worst element; a pattern with no element over the bound (the page says "all within" from the
  metrics).
"""
from __future__ import annotations

import math
from typing import Any

import yaml

from .pictures import HIST_LOG10_EDGES, NEAR_BOUND
from .results_json import item_key

# The record fields the page reads at load (static/report.js, case.js read `r.FIELD` of these alone; a test holds
# the scripts to this list), and those it reads per item only when the case is opened.
RECORD_FIELDS = ("verdict", "outcome", "message", "xfail", "tensor", "metrics", "baseline", "culprit",
                 "layer_ratios", "notes", "facts", "output_shape", "output_dtype", "params", "weight_shapes",
                 "gradients", "duration_s")
LAZY_FIELDS = ("repro", "details")
CASE_FIELDS = ("id", "file", "line", "layer", "dtype", "seed", "input_shape", "swept", "description", "stack")
# A metrics row's columns (case.js reads `m.FIELD` of these alone; worst_bound is not shown).
METRIC_KEYS = ("max_abs", "max_rel", "max_ratio", "n_over", "share_over", "worst_index", "worst_value",
               "worst_oracle", "k", "u", "n_elements", "shape")
KEPT_DIGITS = {"max_ratio": None, "worst_value": 9, "worst_oracle": 9}   # None: kept as results.json has it
DIGITS = 6


def check_of(rec: dict[str, Any]) -> str:
    return rec.get("check") or "forward"   # a record of schema 1.3 or older is a forward one


def items(doc: dict[str, Any]) -> list[dict[str, str]]:
    """The page's columns: per engine its forward item and, where the run has any, its backward item beside it
    (``key``: results_json.item_key, which keys a case's records and pictures on the page)."""
    backward = {r["engine"] for r in doc["results"] if check_of(r) == "backward"}
    out = []
    for e in doc["engines"]:
        out.append({"key": e, "engine": e, "check": "forward", "label": e})
        if e in backward:
            out.append({"key": item_key(e, "backward"), "engine": e, "check": "backward",
                        "label": f"{e} \u00b7 backward"})
    return out


def case_yaml(source: dict[str, Any]) -> str:
    return yaml.safe_dump(source, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True).rstrip()


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and not value)


def _short(value: Any, digits: int | None = DIGITS) -> Any:
    if digits is None or not isinstance(value, float) or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


def _metrics(m: dict[str, Any]) -> list[Any]:
    """A metrics object as a row of METRIC_KEYS (a key it lacks: null; trailing nulls left out)."""
    row = [_short(m.get(k), KEPT_DIGITS.get(k, DIGITS)) for k in METRIC_KEYS]
    while row and row[-1] is None:
        row.pop()
    return row


def slim_record(rec: dict[str, Any]) -> dict[str, Any]:
    """The fields of a record the page reads at load, empty ones left out, metric floats shortened."""
    out: dict[str, Any] = {}
    for key in RECORD_FIELDS:
        value: Any = rec.get(key)
        if _empty(value):
            continue
        if key == "outcome" and value == rec.get("verdict"):
            continue   # the page reads a missing outcome as the verdict
        if key == "metrics":
            value = _metrics(value)
        elif key == "duration_s":
            value = _short(value, 3)
        elif key == "gradients":
            value = {name: _metrics(m) for name, m in value.items()}
        elif key == "layer_ratios":
            value = [_short(x) for x in value]
        out[key] = value
    return out


def compact_histogram(h: dict[str, Any] | None) -> dict[str, Any] | None:
    """A ratio histogram without its edges (meta's ``hist_edges``) and its empty bins: ``counts`` from bin
    ``from`` on, through the last filled one; the out-of-range counts where nonzero. Another edge set is kept
    whole (the page reads either)."""
    if not h or h.get("log10_edges") != HIST_LOG10_EDGES:
        return h
    counts = h["counts"]
    filled = [i for i, n in enumerate(counts) if n]
    first, last = (filled[0], filled[-1]) if filled else (0, -1)
    out: dict[str, Any] = {"from": first, "counts": counts[first:last + 1]}
    out.update({k: h[k] for k in ("zero", "below", "above", "nonfinite") if h.get(k)})
    return out


def _pictured(extra: dict[str, Any], pics: dict[str, Any] | None) -> dict[str, Any]:
    """An item's (or gradient tensor's) picture data for the page: its maps where drawn, with its worst elements;
    its histogram; its pattern where an element is over the bound."""
    out: dict[str, Any] = {}
    if pics:
        out["pics"] = pics
        out["worst_elements"] = extra.get("worst_elements")
    hist = compact_histogram(extra.get("ratio_histogram"))
    if hist:
        out["ratio_histogram"] = hist
    pattern = extra.get("pattern")
    if pattern and pattern.get("n_over"):
        out["pattern"] = pattern
    return out


def lazy_item(rec: dict[str, Any], pics: dict[str, Any] | None) -> dict[str, Any]:
    """What the page reads of one item when its case is opened."""
    out = {k: rec[k] for k in LAZY_FIELDS if not _empty(rec.get(k))}
    if pics and "tensors" in pics:   # a backward item: each gradient tensor's data; the record's are its deciding one's
        tensors = {name: _pictured(t, t.get("pics")) for name, t in pics["tensors"].items()}
        out["pics"] = {"check": pics.get("check"), "tensor": pics.get("tensor"), "tensors": tensors}
    else:
        out.update(_pictured(rec, pics))
    return out


def page_data(doc: dict[str, Any], pictures: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], list[dict]]:
    """(what the page parses at load, one lazily parsed blob per case); a case's records and pictures are keyed by
    item (results_json.item_key: the engine, or "ENGINE:backward")."""
    by_case: dict[str, dict[str, dict]] = {}
    for rec in doc["results"]:
        by_case.setdefault(rec["case_id"], {})[item_key(rec["engine"], check_of(rec))] = rec
    cases, lazy = [], []
    for info in doc["cases"]:
        recs = by_case.get(info["id"], {})
        slim = {e: slim_record(r) for e, r in recs.items()}
        cases.append({k: info.get(k) for k in CASE_FIELDS if not _empty(info.get(k))} | {"r": slim})
        pics = pictures.get(info["id"], {})
        items_of_case = {e: lazy_item(r, pics.get(e)) for e, r in recs.items()}
        lazy.append({"yaml": case_yaml(info.get("source") or {}), "config": info.get("config"),
                     "e": {e: v for e, v in items_of_case.items() if v}})
    baseline = doc.get("baseline")
    meta = {k: doc.get(k)
            for k in ("created", "command", "paths", "duration_s", "schema_version", "engines", "reference")}
    meta["baseline"] = ({k: v for k, v in baseline.items() if k != "environment"} if baseline else None)
    meta["items"] = items(doc)
    meta["hist_edges"] = HIST_LOG10_EDGES
    meta["metric_keys"] = METRIC_KEYS
    meta["near_bound"] = NEAR_BOUND
    return {"meta": meta, "cases": cases}, lazy
