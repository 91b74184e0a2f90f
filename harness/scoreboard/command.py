"""The `scoreboard` subcommand: run the cases (and a fixed fuzz budget) in every installed engine, write JSON + HTML."""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from ..cli_options import cases_from
from ..errors import CaseError
from ..report import environment
from ..report.results_json import finite
from ..report.write import write_all
from .. import sharding
from ..runner import Result, run_one
from ..schema import Case, load_file, load_paths
from . import fuzzcases, installed, page
from .board import Board

SCHEMA_VERSION = "1.0"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `scoreboard` beyond the common ones."""
    parser.add_argument("--fuzz", type=int, default=0, metavar="N",
                        help="also run N configurations drawn by the fuzzer's strategy (the same N on every run; "
                             "written to DIR/scoreboard-fuzz.yaml, which the repro commands name)")
    parser.add_argument("--out", default="reports", metavar="DIR",
                        help="folder for scoreboard.json and scoreboard.html (default: reports)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="run the cases in N processes (each with its own engine workers; every N-th case per "
                             "process); the scoreboard is the same as with 1")


def command_line(args: argparse.Namespace) -> list[str]:
    line = ["python", "-m", "harness", "scoreboard", *args.paths]
    for case in args.case or []:
        line += ["--case", case]
    for engine in args.engine or []:
        line += ["--engine", engine]
    if args.fuzz:
        line += ["--fuzz", str(args.fuzz)]
    if getattr(args, "jobs", 1) > 1:
        line += ["--jobs", str(args.jobs)]
    return line + ["--out", args.out]


def _fuzz_cases(examples: int, out: Path) -> tuple[list[Case], list[CaseError], Path | None]:
    if examples <= 0:
        return [], [], None
    path = fuzzcases.write(fuzzcases.draw(examples), out)
    cases, errors = load_file(path)
    return cases, errors, path


def _progress(done: int, total: int, start: float, stream: TextIO, label: str = "") -> None:
    """A line per tenth of the work (the run is long; a log shows it moving)."""
    if total and (10 * done) // total != (10 * (done - 1)) // total:
        stream.write(f"scoreboard{label}: {done}/{total} items ({100 * done // total}%) "
                     f"{time.perf_counter() - start:.0f}s\n")
        stream.flush()


def _run_cases(cases: list[Case], engines: list[str], stream: TextIO, label: str = "") -> list[list[Result]]:
    """Every engine's result on every case, in order; the arrays are not kept (a scoreboard holds counts)."""
    start, total, done, out = time.perf_counter(), len(cases) * len(engines), 0, []
    for case in cases:
        row = []
        for engine in engines:
            result = run_one(case, engine)
            result.output, result.bound, result.gradient_arrays = None, None, {}
            row.append(result)
            done += 1
            _progress(done, total, start, stream, label)
        out.append(row)
    return out


def _shard_main(paths: list[str], selected: list[str] | None, fuzz_path: str | None, specs: list[str],
                index: int, count: int) -> dict[str, list[Result]]:
    """One process of --jobs: the cases of shard ``index`` of ``count`` (loaded here as the parent loaded them),
    every engine (plug-ins registered again from their specs): case key -> its results."""
    from .. import engines as registry
    from ..detection import diagnose
    from ..selection import select_cases

    diagnose.install()
    names = [registry.register_plugin(s) if ":" in s else s for s in specs]
    cases, _ = load_paths(paths)
    cases = select_cases(cases, selected, paths)
    if fuzz_path:
        cases += load_file(fuzz_path)[0]
    # Every count-th case, not sharding's cost split: that model prices an item at the oracle's cost, and a
    # converter's item costs about the same whatever the case (its conversion), so equal counts balance best.
    mine = cases[index - 1::count]
    rows = _run_cases(mine, names, sys.stderr, f" [job {index}/{count}]")
    return {sharding.case_key(case): row for case, row in zip(mine, rows)}


def _run_parallel(args: argparse.Namespace, cases: list[Case], engines: list[str], fuzz_path: Path | None
                  ) -> list[list[Result]]:
    """The items split over --jobs processes (started fresh: a framework loaded here is not forked)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from .. import engines as registry

    specs = [registry.cli_spec(e) for e in engines]
    jobs = args.jobs
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_shard_main, list(args.paths), args.case, str(fuzz_path) if fuzz_path else None,
                               specs, i, jobs) for i in range(1, jobs + 1)]
        by_key: dict[str, list[Result]] = {}
        for future in futures:
            by_key.update(future.result())
    return [by_key[sharding.case_key(case)] for case in cases]


def build(args: argparse.Namespace, stream: TextIO | None = None) -> dict[str, Any]:
    """Run every (case, engine) and return the scoreboard document; writes only the fuzz case file."""
    stream = stream or sys.stderr
    engines, missing = installed.choose(args.engine or [])
    cases, errors = cases_from(args)
    fuzzed, fuzz_errors, fuzz_path = _fuzz_cases(args.fuzz, Path(args.out))
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    board, start = Board(engines), time.perf_counter()
    everything = [*cases, *fuzzed]
    if getattr(args, "jobs", 1) > 1 and len(everything) > 1:
        rows = _run_parallel(args, everything, engines, fuzz_path)
    else:
        rows = _run_cases(everything, engines, stream)
    for case, row in zip(everything, rows):
        for result in row:
            board.add(case, result)
    rows = []
    for name in engines:
        row = installed.describe(name)
        row["totals"] = board.totals(name)
        rows.append(row)
    return {
        "schema_version": SCHEMA_VERSION, "created": created, "command": command_line(args),
        "paths": list(args.paths), "duration_s": round(time.perf_counter() - start, 3),
        "cases": {"shipped": len(cases), "fuzz": len(fuzzed), "invalid": len(errors) + len(fuzz_errors)},
        "fuzz": {"examples": args.fuzz, "drawn": len(fuzzed), "file": str(fuzz_path)} if fuzz_path else None,
        "environment": environment.capture(),
        "engines": rows, "not_installed": missing,
        "columns": board.columns(), "cells": board.as_dict(),
    }


def run(args: argparse.Namespace) -> int:
    """Run the cases (and --fuzz N configurations) in every installed engine; write scoreboard.json/.html under --out.

    One row per engine (versions, options), one column per layer kind x dtype and notable argument (groups > 1,
    dilation with stride, same padding, channels_first); each cell counts outcomes and groups its failures by
    diagnosed cause, with a repro command each (docs/scoreboard.md)."""
    doc = build(args)
    out = Path(args.out)
    json_path, html_path, md_path = out / "scoreboard.json", out / "scoreboard.html", out / "scoreboard.md"
    text = json.dumps(finite(doc), indent=1, allow_nan=False, default=str) + "\n"
    # every file complete in memory before any is written
    write_all({json_path: text, html_path: page.render(doc), md_path: page.markdown(doc)})
    for row in doc["engines"]:
        t = row["totals"]
        top = "; ".join(f"{c['count']} {c['cause']}" for c in t["causes"][:3])
        print(f"{row['name']:>16}: {t['pass']} pass, {t['fail']} fail, {t['xfail']} known bugs, {t['error']} error, "
              f"{t['skip']} skip, {t['rejected']} rejected" + (f"  [{row['versions']}]" if row["versions"] else "")
              + (f"\n{'':>18}{top}" if top else ""))
    for m in doc["not_installed"]:
        print(f"{m['engine']:>16}: {m['reason']}")
    print(f"wrote {html_path}, {json_path} and {md_path}")
    return 1 if doc["cases"]["invalid"] else 0
