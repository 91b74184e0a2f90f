"""The scoreboard's table: columns (layer kind x dtype, notable arguments) and, per engine, one cell per column."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..cases.schema import Case
from ..diagnosis.causes import finding_label, label, reason_label
from ..judge.findings import first
from ..judge.runner import Result, outcome
from ..layers.geometry import LAYERS, Geometry
from ..tensors.values import DTYPES

OUTCOMES = ("pass", "fail", "xfail", "xpass", "error", "skip", "rejected")
FAILING = ("fail", "xfail", "xpass", "error")   # the outcomes whose causes a cell lists
# Arguments converters get wrong most often, each a column of its own (a case counts in every one it has).
NOTABLE: tuple[tuple[str, str, Callable[[Geometry], bool]], ...] = (
    ("groups > 1", "grouped convolution (groups > 1)", lambda g: g.groups > 1),
    ("dilation with stride", "any stride > 1 together with any dilation > 1",
     lambda g: max(g.strides) > 1 and max(g.dilation) > 1),
    ("same padding", "padding 'same'", lambda g: g.padding == "same"),
    ("channels_first", "data_format channels_first", lambda g: g.channels_first),
    ("output_padding", "a transposed conv's output_padding > 0 on some axis",
     lambda g: "output_padding" in g.kind.config_keys and max(g.arg("output_padding") or (0,)) > 0),
)


def kind_column(case: Case) -> str:
    return f"{case.layer} {case.dtype}"


def columns_of(case: Case) -> list[str]:
    """Every column ``case`` counts in: its layer kind x dtype, and each notable argument it has."""
    return [kind_column(case), *(name for name, _, has in NOTABLE if has(case.geometry))]


@dataclass
class Cause:
    """Failures of one cell with one cause: how many, of which outcomes, and one to reproduce."""

    count: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    example: dict[str, Any] = field(default_factory=dict)   # case, file, repro, message, findings

    def as_dict(self, cause: str) -> dict[str, Any]:
        return {"cause": cause, "count": self.count, "outcomes": self.outcomes, "example": self.example}


@dataclass
class Cell:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    causes: dict[str, Cause] = field(default_factory=dict)
    skips: dict[str, int] = field(default_factory=dict)   # skip reason -> count (a runtime limit, no bound, ...)

    def add(self, case: Case, result: Result) -> None:
        status = outcome(result.verdict, result.xfail or None)
        self.counts[status] += 1
        # A pass that hides a known bug of the engine the converter's graph comes from is a finding too: counted
        # under its cause (outcome "pass"), with a repro, so that the board shows which converters change meaning.
        hidden = first(result.findings, "hidden") if status == "pass" else None
        if status in FAILING or hidden:
            cause = self.causes.setdefault(finding_label(hidden) if hidden else label(status, result), Cause())
            cause.count += 1
            cause.outcomes[status] = cause.outcomes.get(status, 0) + 1
            if not cause.example:
                cause.example = {"case": case.id, "file": case.file, "repro": result.repro,
                                 "message": hidden.text if hidden else result.message,
                                 "findings": [f.to_json() for f in result.findings]}
        elif status == "skip":
            reason = reason_label(result)
            self.skips[reason] = self.skips.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        ranked = sorted(self.causes.items(), key=lambda kv: (-kv[1].count, kv[0]))
        return {**self.counts, "total": sum(self.counts.values()),
                "causes": [c.as_dict(name) for name, c in ranked],
                "skips": [{"reason": r, "count": n} for r, n in sorted(self.skips.items(), key=lambda kv: -kv[1])]}


@dataclass
class Board:
    """Cells by engine and column, filled one result at a time."""

    engines: list[str]
    cells: dict[str, dict[str, Cell]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)   # the columns some case counted in
    durations: dict[str, list[float]] = field(default_factory=dict)   # engine -> seconds of each of its items
    # engine -> seconds its items spent inside the framework's or converter's own calls (Result.third_party_s)
    third_party: dict[str, float] = field(default_factory=dict)

    def add(self, case: Case, result: Result) -> None:
        self.durations.setdefault(result.engine, []).append(result.duration_s)
        self.third_party[result.engine] = self.third_party.get(result.engine, 0.0) + result.third_party_s
        row = self.cells.setdefault(result.engine, {})
        for column in columns_of(case):
            self.used.add(column)
            row.setdefault(column, Cell()).add(case, result)

    def columns(self) -> list[dict[str, Any]]:
        """The columns some case counted in: layer kinds in registry order, dtypes narrowest last, then the
        notable arguments."""
        out = [{"id": f"{layer} {dtype}", "kind": "layer-dtype", "layer": layer, "dtype": dtype}
               for layer in LAYERS for dtype in sorted(DTYPES, key=_dtype_order) if f"{layer} {dtype}" in self.used]
        out += [{"id": name, "kind": "notable", "means": means} for name, means, _ in NOTABLE if name in self.used]
        return out

    def as_dict(self) -> dict[str, dict[str, Any]]:
        ids = [c["id"] for c in self.columns()]
        return {engine: {column: self.cells.get(engine, {}).get(column, Cell()).as_dict() for column in ids}
                for engine in self.engines}

    def timing(self, engine: str) -> dict[str, Any]:
        """An engine's seconds per item (run_one's wall time: conversion, the engine's run, judging): the median,
        the slowest (a first item pays its worker's start) and the sum, so that a regression shows on the board;
        and of the sum, the seconds inside the framework's or converter's own calls (third_party_s) and the
        share left to the harness (its port, the worker protocol, the reference, the judging, the diagnosis)."""
        seconds = sorted(self.durations.get(engine, []))
        if not seconds:
            return {"items": 0, "median_s": None, "max_s": None, "total_s": 0.0, "third_party_s": 0.0,
                    "harness_share": None}
        mid = len(seconds) // 2
        median = seconds[mid] if len(seconds) % 2 else (seconds[mid - 1] + seconds[mid]) / 2
        # One rounding for both, so that the median never reads above the slowest (0.0011 over 0.001 did).
        return {"items": len(seconds), "median_s": round(median, 4), "max_s": round(seconds[-1], 4),
                "total_s": round(sum(seconds), 3), **shares(sum(seconds), self.third_party.get(engine, 0.0))}

    def totals(self, engine: str) -> dict[str, Any]:
        """An engine's counts over its layer-kind x dtype cells (each item once) and its causes, merged."""
        merged = Cell()
        for column, cell in self.cells.get(engine, {}).items():
            if column in {c["id"] for c in self.columns() if c["kind"] == "notable"}:
                continue
            for key, n in cell.counts.items():
                merged.counts[key] += n
            for name, cause in cell.causes.items():
                mine = merged.causes.setdefault(name, Cause(example=cause.example))
                mine.count += cause.count
                for key, n in cause.outcomes.items():
                    mine.outcomes[key] = mine.outcomes.get(key, 0) + n
            for reason, n in cell.skips.items():
                merged.skips[reason] = merged.skips.get(reason, 0) + n
        return merged.as_dict()


def shares(total_s: float, third_party_s: float) -> dict[str, Any]:
    """Of ``total_s`` seconds, those inside third-party calls and the harness's share of the rest (None where
    nothing ran)."""
    return {"third_party_s": round(third_party_s, 3),
            "harness_share": round(max(0.0, total_s - third_party_s) / total_s, 4) if total_s > 0 else None}


def _dtype_order(dtype: str) -> int:
    return ("float32", "float64", "float16", "bfloat16").index(dtype) if dtype in DTYPES else 99
