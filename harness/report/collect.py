"""Run every (case, engine) through harness.runner.run_one, with a progress bar, and gather what the report shows."""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..engines import is_reference
from ..runner import reference, run_one
from ..schema import Case
from .pictures import engine_pictures
from .results_json import case_info, record


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
    records: list[dict[str, Any]] = field(default_factory=list)        # results_json.record per pair
    pictures: dict[str, dict[str, Any]] = field(default_factory=dict)  # case id -> engine -> heatmap data
    duration_s: float = 0.0


def run_case(case: Case, engines: list[str], progress: Progress | None = None) -> tuple[list[dict], dict]:
    """Records and heatmap data of one case in every engine (arrays are dropped before the next case)."""
    records, pictures = [], {}
    for engine in engines:
        result = run_one(case, engine)
        extra = None
        if not is_reference(engine) and result.output is not None and result.bound is not None \
                and result.metrics is not None:
            try:
                extra, pictures[engine] = engine_pictures(
                    result.output.y, reference(case).y, result.bound.bound, case.geometry.channels_first,
                    failing=result.verdict != "pass")
            except Exception as exc:  # noqa: BLE001 - a picture problem must not lose the verdict
                result.notes.append(f"report could not draw this output: {type(exc).__name__}: {exc}")
        result.output = None  # free the engine's output before the next engine runs
        records.append(record(case, result, extra))
        if progress:
            progress.step(f"{case.id} [{engine}] {result.verdict}")
    return records, pictures


def collect(cases: list[Case], engines: list[str], stream: TextIO | None = None) -> Collected:
    out = Collected()
    start = time.perf_counter()
    progress = Progress(len(cases) * len(engines), stream)
    try:
        for case in cases:
            out.cases.append(case_info(case))
            records, pictures = run_case(case, engines, progress)
            out.records.extend(records)
            if pictures:
                out.pictures[case.id] = pictures
    finally:
        progress.close()
    out.duration_s = time.perf_counter() - start
    return out
