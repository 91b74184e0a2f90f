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
from ..runner import run_one
from ..schema import Case, load_file
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


def command_line(args: argparse.Namespace) -> list[str]:
    line = ["python", "-m", "harness", "scoreboard", *args.paths]
    for case in args.case or []:
        line += ["--case", case]
    for engine in args.engine or []:
        line += ["--engine", engine]
    if args.fuzz:
        line += ["--fuzz", str(args.fuzz)]
    return line + ["--out", args.out]


def _fuzz_cases(examples: int, out: Path) -> tuple[list[Case], list[CaseError], Path | None]:
    if examples <= 0:
        return [], [], None
    path = fuzzcases.write(fuzzcases.draw(examples), out)
    cases, errors = load_file(path)
    return cases, errors, path


def _progress(done: int, total: int, start: float, stream: TextIO) -> None:
    """A line per tenth of the work (the run is long; a log shows it moving)."""
    if total and (10 * done) // total != (10 * (done - 1)) // total:
        stream.write(f"scoreboard: {done}/{total} items ({100 * done // total}%) {time.perf_counter() - start:.0f}s\n")
        stream.flush()


def build(args: argparse.Namespace, stream: TextIO | None = None) -> dict[str, Any]:
    """Run every (case, engine) and return the scoreboard document; writes only the fuzz case file."""
    stream = stream or sys.stderr
    engines, missing = installed.choose(args.engine or [])
    cases, errors = cases_from(args)
    fuzzed, fuzz_errors, fuzz_path = _fuzz_cases(args.fuzz, Path(args.out))
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    board, start = Board(engines), time.perf_counter()
    total, done = (len(cases) + len(fuzzed)) * len(engines), 0
    for case in [*cases, *fuzzed]:
        for engine in engines:
            result = run_one(case, engine)
            result.output = None   # the arrays are not kept: a scoreboard holds counts and causes
            board.add(case, result)
            done += 1
            _progress(done, total, start, stream)
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
    json_path, html_path = out / "scoreboard.json", out / "scoreboard.html"
    text = json.dumps(finite(doc), indent=1, allow_nan=False, default=str) + "\n"
    write_all({json_path: text, html_path: page.render(doc)})   # both complete in memory before either is written
    for row in doc["engines"]:
        t = row["totals"]
        top = "; ".join(f"{c['count']} {c['cause']}" for c in t["causes"][:3])
        print(f"{row['name']:>16}: {t['pass']} pass, {t['fail']} fail, {t['xfail']} known bugs, {t['error']} error, "
              f"{t['skip']} skip, {t['rejected']} rejected" + (f"  [{row['versions']}]" if row["versions"] else "")
              + (f"\n{'':>18}{top}" if top else ""))
    for m in doc["not_installed"]:
        print(f"{m['engine']:>16}: {m['reason']}")
    print(f"wrote {html_path} and {json_path}")
    return 1 if doc["cases"]["invalid"] else 0
