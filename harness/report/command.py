"""The `report` subcommand: options, the run, and the two files it writes (atomically)."""
from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from pathlib import Path

from ..cli_options import cases_from
from ..detection.coverage import coverage_table
from ..selection import select_engines
from . import baseline as baseline_mod
from . import environment, html, results_json
from .collect import collect
from .write import write_all


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `report` beyond the common ones."""
    parser.add_argument("--baseline", metavar="OLD_results.json",
                        help="mark the (case, engine) pairs whose verdict or error ratio changed against this "
                             "earlier results.json")
    parser.add_argument("--out", default="reports", metavar="DIR",
                        help="folder for results.json and index.html (default: reports)")


def command_line(args: argparse.Namespace) -> list[str]:
    """The command that reproduces this report, rebuilt from the parsed options (whoever called us)."""
    line = ["python", "-m", "harness", "report", *args.paths]
    for case in args.case or []:
        line += ["--case", case]
    for engine in args.engine or []:
        line += ["--engine", engine]
    if args.baseline:
        line += ["--baseline", args.baseline]
    return line + ["--out", args.out]


def build(args: argparse.Namespace) -> tuple[dict, dict]:
    """Run everything and return (results document, heatmap data); writes nothing."""
    old = results_json.load(args.baseline) if args.baseline else None   # a bad baseline fails before the run
    engines = select_engines(args.engine)
    cases, errors = cases_from(args)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    collected = collect(cases, engines)
    section = baseline_mod.compare(collected.records, old, args.baseline) if old is not None else None
    doc = results_json.document(
        cases=collected.cases, records=collected.records, engines=engines,
        invalid=[{"file": e.file, "case": e.case, "field": e.field, "message": e.message} for e in errors],
        environment=environment.capture(), created=created, paths=list(args.paths),
        command=command_line(args),
        duration_s=collected.duration_s, baseline=section, coverage=coverage_table(cases))
    return doc, collected.pictures


def run(args: argparse.Namespace) -> int:
    """Run cases in every engine; write results.json and a self-contained index.html under --out."""
    start = time.perf_counter()
    doc, pictures = build(args)
    out = Path(args.out)
    json_path, html_path = out / "results.json", out / "index.html"
    # Both texts are complete in memory before either file is touched.
    write_all({json_path: results_json.dumps(doc), html_path: html.render(doc, pictures)})
    bad = 0
    for engine, s in doc["summary"].items():
        bad += results_json.unexpected(s)
        known = f" ({s['xfail']} known bugs)" if s["xfail"] else ""
        xpass = f", {s['xpass']} known bugs that no longer fail (remove their xfail)" if s["xpass"] else ""
        print(f"{engine:>10}: {s['pass']} pass, {s['fail']} fail{known}, {s['skip']} skip, {s['rejected']} rejected, "
              f"{s['error']} error{xpass}")
    if doc["baseline"]:
        ch = doc["baseline"]["changed"]
        print(f"vs baseline {doc['baseline']['path']}: {ch['verdict']} verdict changes, {ch['ratio']} ratio changes, "
              f"{ch['new']} new, {len(doc['baseline']['gone'])} gone, {doc['baseline']['not_compared']} not compared "
              "(other files or engines)")
    print(f"wrote {html_path} ({html_path.stat().st_size / 1e6:.2f} MB) and {json_path} "
          f"({json_path.stat().st_size / 1e6:.2f} MB) in {time.perf_counter() - start:.1f} s")
    return 1 if bad or doc["invalid_cases"] else 0
