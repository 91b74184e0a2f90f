"""Run every (case, check, engine) through harness.judge.runner.run_one, with a progress bar, and gather what the report
shows: each case's forward check and, where the case asks for it (`check: [forward, backward]`), its backward check;
each stack's run, its culprit and every layer's error/bound."""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..cases.schema import Case
from ..cases.stacks import StackCase
from ..engines import is_reference, warm
from ..judge.diagnoser import Diagnoser
from ..judge.runner import Result, reference, run_one
from ..judge.sequence import culprit_of
from .pictures import budget_for, engine_pictures, gradient_pictures
from .results_json import case_info, deciding_tensor, item_key, record


class Progress:
    """A one-line bar on a terminal; on a pipe (CI logs) a line per tenth of the work instead."""

    def __init__(self, total: int, stream: TextIO | None = None):
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self._last_decile = -1

    def step(self, label: str) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.start
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns
            bar_w = 30
            filled = int(bar_w * self.done / max(self.total, 1))
            head = f"[{'#' * filled}{'.' * (bar_w - filled)}] {self.done}/{self.total} {elapsed:5.1f}s "
            self.stream.write("\r" + (head + label)[: width - 1].ljust(width - 1))
            self.stream.flush()
        else:
            decile = (10 * self.done) // max(self.total, 1)
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(f"report: {self.done}/{self.total} pairs ({100 * self.done // max(self.total, 1)}%)"
                                  f" {elapsed:.1f}s\n")
                self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class Collected:
    cases: list[dict[str, Any]] = field(default_factory=list)          # results_json.case_info per case
    records: list[dict[str, Any]] = field(default_factory=list)        # results_json.record per item
    # case id -> item key (results_json.item_key: the engine, or "ENGINE:backward") -> heatmap data
    pictures: dict[str, dict[str, Any]] = field(default_factory=dict)
    duration_s: float = 0.0


def _forward_pictures(case: Case, result: Result) -> tuple[dict | None, dict | None]:
    if result.output is None or result.bound is None or result.metrics is None:
        return None, None
    budget = budget_for(result.verdict != "pass", result.metrics.max_ratio)
    return engine_pictures(result.output.y, reference(case).y, result.bound.bound, case.geometry.channels_first,
                           budget)


def _backward_pictures(case: Case, result: Result) -> tuple[dict | None, dict | None]:
    """Per gradient tensor judged, its histogram, worst elements, pattern and (pictures.budget_for: a failing item's
    tensors, a passing one's near its bound) the pictures of |g_engine - g_oracle| / bound; the record's histogram,
    worst elements and pattern are those of its deciding tensor (results_json.deciding_tensor)."""
    got = (result.output.gradients or {}) if result.output is not None else {}
    tensors: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for name, (value, bound) in result.gradient_arrays.items():
        if name not in got:
            continue
        judged = result.gradient_metrics.get(name)
        budget = budget_for(result.verdict != "pass", judged.max_ratio if judged is not None else None)
        extra, pics = gradient_pictures(name, got[name], value, bound, case.geometry.channels_first, budget,
                                        layer=case.layer)
        extras[name] = extra
        tensors[name] = {"pics": pics, **extra}
    if not tensors:
        return None, None
    tensor = deciding_tensor(case, result)
    default = tensor if tensor in tensors else next(iter(tensors))
    return (extras.get(tensor) if tensor is not None else None), {"check": "backward", "tensor": default,
                                                                  "tensors": tensors}


def stack_info(one: StackCase) -> dict[str, Any]:
    """A stack's entry in ``cases``, as results_json.case_info's, with its layers under "stack"."""
    return {"id": one.id, "file": one.file, "line": one.line, "layer": one.layer, "input_shape": list(one.input_shape),
            "dtype": one.dtype, "seed": one.seed, "config": [dict(layer.config) for layer in one.layers], "swept": None,
            "source": one.source, "description": one.description or None,
            "stack": [{"layer": layer.layer, "config": dict(layer.config)} for layer in one.layers]}


def stack_record(one: StackCase, result: Result) -> dict[str, Any]:
    """A stack's record: a case's (results_json.record; no heatmap, one per layer would be), with the culprit layer
    (its "culprit" finding: the first layer over its bound, or None) and every layer's error/bound up to it."""
    rec = record(one, result, None)
    rec["culprit"] = culprit_of(result.findings)
    rec["layer_ratios"] = [m.max_ratio for m in result.layer_metrics]
    return rec


def run_stack_items(one: StackCase, engines: list[str], progress: Progress | None = None,
                    diagnoser: Diagnoser | None = None) -> list[dict]:
    """The records of one stack, one per engine."""
    records = []
    for engine in engines:
        records.append(stack_record(one, run_one(one, engine, "forward", diagnoser)))
        if progress:
            progress.step(f"{one.id} [{engine}] {records[-1]['verdict']}")
    return records


def run_case(case: Case, engines: list[str], progress: Progress | None = None, diagnoser: Diagnoser | None = None
             ) -> tuple[list[dict], dict]:
    """Records and heatmap data of one case: every check it asks for, in every engine, failures diagnosed by
    ``diagnoser`` (the arrays are dropped after each engine)."""
    records, pictures = [], {}
    for check in case.check:
        for engine in engines:
            result = run_one(case, engine, check, diagnoser)
            extra = None
            if not is_reference(engine):
                try:
                    extra, pics = (_backward_pictures if check == "backward" else _forward_pictures)(case, result)
                    if pics is not None:
                        pictures[item_key(engine, check)] = pics
                except Exception as exc:  # noqa: BLE001 - a picture problem must not lose the verdict
                    result.notes.append(f"report could not draw this {'gradient' if check == 'backward' else 'output'}"
                                        f": {type(exc).__name__}: {exc}")
            records.append(record(case, result, extra))
            result.output = None   # free the engine's output (and gradients) before the next engine runs
            result.gradient_arrays = {}
            if progress:
                label = engine if check == "forward" else f"{engine} {check}"
                progress.step(f"{case.id} [{label}] {result.verdict}")
    return records, pictures


def collect(cases: list[Case | StackCase], engines: list[str], stream: TextIO | None = None,
            diagnoser: Diagnoser | None = None) -> Collected:
    """Every case's (and stack's) records and pictures, in order; failures diagnosed by ``diagnoser`` (None: no
    findings)."""
    out = Collected()
    start = time.perf_counter()
    progress = Progress(sum(len(c.check) for c in cases) * len(engines), stream)
    if len(cases) > 1:
        warm(engines)   # the engines that run apart start together now, beside the first cases' work
    try:
        for case in cases:
            if isinstance(case, StackCase):   # a stack: its records beside the cases' (harness.judge.stack_run)
                out.cases.append(stack_info(case))
                out.records.extend(run_stack_items(case, engines, progress, diagnoser))
                continue
            out.cases.append(case_info(case))
            records, pictures = run_case(case, engines, progress, diagnoser)
            out.records.extend(records)
            if pictures:
                out.pictures[case.id] = pictures
    finally:
        progress.close()
    out.duration_s = time.perf_counter() - start
    return out
