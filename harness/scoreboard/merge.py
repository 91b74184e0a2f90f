"""Scoreboards of shards (by engine, by case: a CI matrix's jobs) merged into one board."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..layers.geometry import LAYERS
from .board import NOTABLE, OUTCOMES, _dtype_order, shares


def merge_cells(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Cells of one engine (the same column of several shards, or several columns) as one: counts added, causes
    merged by their label (counts and outcomes added, the first example kept), skip reasons merged; most frequent
    first, as Cell.as_dict orders them."""
    counts = {o: sum(c.get(o, 0) for c in cells) for o in OUTCOMES}
    causes: dict[str, dict[str, Any]] = {}
    skips: dict[str, int] = {}
    for cell in cells:
        for cause in cell.get("causes", []):
            mine = causes.setdefault(cause["cause"], {"cause": cause["cause"], "count": 0, "outcomes": {},
                                                       "example": cause.get("example", {})})
            mine["count"] += cause["count"]
            for key, n in cause.get("outcomes", {}).items():
                mine["outcomes"][key] = mine["outcomes"].get(key, 0) + n
        for skip in cell.get("skips", []):
            skips[skip["reason"]] = skips.get(skip["reason"], 0) + skip["count"]
    return {**counts, "total": sum(counts.values()),
            "causes": sorted(causes.values(), key=lambda c: (-c["count"], c["cause"])),
            "skips": [{"reason": r, "count": n} for r, n in sorted(skips.items(), key=lambda kv: -kv[1])]}


def _columns(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The union of the shards' columns, in a board's order (layer kinds in registry order, dtypes, then the
    notable arguments in NOTABLE order)."""
    seen = {c["id"]: c for doc in docs for c in doc["columns"]}
    kinds = list(LAYERS)
    layer_dtype = sorted((c for c in seen.values() if c["kind"] == "layer-dtype"),
                         key=lambda c: (kinds.index(c["layer"]) if c["layer"] in kinds else len(kinds),
                                        c["layer"], _dtype_order(c["dtype"])))
    notable = [n for n, _, _ in NOTABLE]
    others = sorted((c for c in seen.values() if c["kind"] != "layer-dtype"),
                    key=lambda c: notable.index(c["id"]) if c["id"] in notable else len(notable))
    return [*layer_dtype, *others]


def _timing(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One engine's timing over its shards: items, total and slowest add up exactly; a median of the union needs
    every item's seconds, which a board does not keep, so where several shards ran the engine it is left out."""
    timings = [r.get("timing") or {} for r in rows]
    if len(timings) == 1:
        return timings[0]
    items = sum(t.get("items", 0) for t in timings)
    slowest = [t["max_s"] for t in timings if t.get("max_s") is not None]
    total = sum(t.get("total_s", 0.0) for t in timings)
    return {"items": items, "median_s": None, "max_s": max(slowest) if slowest else None,
            "total_s": round(total, 3), **shares(total, sum(t.get("third_party_s") or 0.0 for t in timings))}


def merge(docs: list[dict[str, Any]], command: list[str]) -> dict[str, Any]:
    """One scoreboard document from the shards' (the same engine in several case shards counts once per item)."""
    columns = _columns(docs)
    names = list(dict.fromkeys(row["name"] for doc in docs for row in doc["engines"]))
    for name in names:   # an engine in several boards: only as distinct case shards of one split
        shards = [doc.get("shard") for doc in docs if any(row["name"] == name for row in doc["engines"])]
        counts = {str(s).partition("/")[2] for s in shards}
        if len(shards) > 1 and (None in shards or len(set(shards)) < len(shards) or len(counts) > 1):
            raise ValueError(f"engine {name} is in {len(shards)} of the scoreboards, which are not distinct shards of "
                             f"one --shard I/N split ({', '.join(str(s) for s in shards)}): its items would count "
                             f"twice")
    cells = {name: {c["id"]: merge_cells([doc["cells"][name][c["id"]] for doc in docs
                                          if c["id"] in doc["cells"].get(name, {})])
                    for c in columns}
             for name in names}
    layer_columns = [c["id"] for c in columns if c["kind"] == "layer-dtype"]
    engines = []
    for name in names:
        rows = [row for doc in docs for row in doc["engines"] if row["name"] == name]
        engines.append({**rows[0], "totals": merge_cells([cells[name][c] for c in layer_columns]),
                        "timing": _timing(rows)})
    missing = {m["engine"]: m for doc in docs for m in doc.get("not_installed", []) if m["engine"] not in names}
    merged: dict[str, Any] = {
        "schema_version": docs[0]["schema_version"],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command,
        "paths": list(dict.fromkeys(p for doc in docs for p in doc.get("paths", []))),
        "duration_s": round(sum(doc.get("duration_s", 0.0) for doc in docs), 3),
        "cases": {key: sum(doc["cases"].get(key, 0) for doc in docs) for key in ("shipped", "fuzz", "invalid")},
        "fuzz": next((doc["fuzz"] for doc in docs if doc.get("fuzz")), None),
        "environment": docs[0].get("environment", {}),
        "engines": engines, "not_installed": list(missing.values()),
        "columns": columns, "cells": cells,
        "shards": [{"command": doc.get("command"), "created": doc.get("created")} for doc in docs],
    }
    stacks = [doc["stacks"] for doc in docs if doc.get("stacks")]
    if stacks:
        by_engine: dict[str, dict[str, int]] = {}
        for part in stacks:
            for engine, counts in part["by_engine"].items():
                mine = by_engine.setdefault(engine, dict.fromkeys(OUTCOMES, 0))
                for key, n in counts.items():
                    mine[key] = mine.get(key, 0) + n
        # Every engine shard runs every stack, a case shard only its share: the count is the most one shard ran.
        merged["stacks"] = {"count": max(p["count"] for p in stacks), "by_engine": by_engine,
                            "unexpected": [u for p in stacks for u in p["unexpected"]]}
    return merged
