"""The `report` subcommand: options, the run, and the two files it writes (atomically)."""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ..audit.coverage import coverage_table
from ..cases import sharding
from ..cases.selection import select_engines
from ..diagnosis.diagnose import Diagnoser
from ..report import baseline as baseline_mod
from ..report import environment, html, merge, models_html, results_json
from ..report.collect import collect
from ..report.write import write_all
from . import report_models
from .cli_options import exit_code, suite_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `report` beyond the common ones."""
    parser.add_argument("--baseline", metavar="OLD_results.json",
                        help="mark the (case, engine, check) items whose verdict or error ratio changed against this "
                             "earlier results.json")
    parser.add_argument("--out", default="reports", metavar="DIR",
                        help="folder for results.json and index.html (default: reports)")
    parser.add_argument("--shard", metavar="I/N",
                        help="run only shard I of N of the selected cases (a deterministic split, whole cases, "
                             "greedy by estimated cost) and write shard.json beside results.json, for --merge")
    parser.add_argument("--merge", nargs="+", metavar="SHARD/results.json",
                        help="run nothing: merge the results of every shard of one run (written with --shard) into "
                             "one results.json and index.html, as an unsharded run writes them")


def command_line(args: argparse.Namespace) -> list[str]:
    """The command that reproduces this report, rebuilt from the parsed options (whoever called us)."""
    line = ["python", "-m", "harness", "report", *args.paths]
    for case in args.case or []:
        line += ["--case", case]
    for engine in args.engine or []:
        line += ["--engine", engine]
    if args.baseline:
        line += ["--baseline", args.baseline]
    if getattr(args, "shard", None):
        line += ["--shard", args.shard]
    return [*line, "--out", args.out]


def merge_command_line(args: argparse.Namespace) -> list[str]:
    line = ["python", "-m", "harness", "report", "--merge", *args.merge]
    if args.baseline:
        line += ["--baseline", args.baseline]
    return [*line, "--out", args.out]


def build(args: argparse.Namespace) -> tuple[dict, dict]:
    """Run everything and return (results document, heatmap data); writes nothing (no model page either)."""
    doc, pictures, _ = build_with_shard(args)
    return doc, pictures


def build_with_shard(args: argparse.Namespace, staging: report_models.Staging | None = None
                     ) -> tuple[dict, dict, dict | None]:
    """build(), and with --shard the content of shard.json (else None); the `models:` entries' pages and repros
    go under ``staging`` where given (report_models.run_entry)."""
    shard = sharding.parse(args.shard) if getattr(args, "shard", None) else None   # a typo fails before the run
    old = results_json.load(args.baseline) if args.baseline else None   # a bad baseline fails before the run
    engines = select_engines(args.engine)
    suite = suite_from(args)
    cases, stacks, errors, models = suite.cases, suite.stacks, suite.errors, suite.models
    selection = cases
    if shard is not None:
        cases, positions = sharding.select(selection, *shard)
        # The stacks and model entries run in the first shard, after its cases (sharding's cost model prices one
        # layer).
        stacks = stacks if shard[0] == 1 else []
        models = models if shard[0] == 1 else []
        positions = positions + [len(selection) + i for i in range(len(stacks))]
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    # Every failure's findings in its record; a stack's records beside the cases' (no heatmap: one per layer would
    # be), its culprit and every layer's error/bound in them.
    collected = collect([*cases, *stacks], engines, diagnoser=Diagnoser())
    # Each model entry once, whatever the engines: the Keras model against its port (python -m harness diff).
    model_records = report_models.run_entries(models, staging, lambda said: print(said, file=sys.stderr))
    section = baseline_mod.compare(collected.records, old, args.baseline) if old is not None else None
    doc = results_json.document(
        cases=collected.cases, records=collected.records, engines=engines,
        invalid=[{"file": e.file, "case": e.case, "field": e.field, "message": e.message} for e in errors],
        environment=environment.capture(), created=created, paths=list(args.paths),
        command=command_line(args),
        duration_s=collected.duration_s, baseline=section, coverage=coverage_table(cases), models=model_records)
    side = None
    if shard is not None:
        side = merge.sidecar(index=shard[0], count=shard[1], selection=[*selection, *suite.stacks], positions=positions,
                             coverage=coverage_table(selection), pictures=collected.pictures,
                             estimated_s=sharding.estimated(cases, len(engines)))
    return doc, collected.pictures, side


def _merged(args: argparse.Namespace) -> tuple[dict, dict, None]:
    """--merge: the shards' results joined (harness.report.merge); options that select cases make no sense here."""
    given = [opt for opt, value in (("--case", args.case), ("--engine", args.engine), ("--shard", args.shard))
             if value]
    if given or list(args.paths) != ["cases"]:
        raise ValueError(f"--merge reads the shards' results files and runs nothing: drop "
                         f"{', '.join(given) or 'the case paths'} (each shard's run chose its cases)")
    doc, pictures, warnings = merge.merge(args.merge, merge_command_line(args), args.baseline)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"merged {len(args.merge)} shards: {len(doc['cases'])} cases, {len(doc['results'])} items")
    return doc, pictures, None


def run(args: argparse.Namespace) -> int:
    """Run cases in every engine; write results.json and a self-contained index.html under --out."""
    start = time.perf_counter()
    out = Path(args.out)
    # The model entries' pages and repros are written as they run, into a folder of --out that replaces models/
    # only once everything else is written.
    staging = None if getattr(args, "merge", None) else report_models.Staging(out)
    try:
        if staging is None:
            doc, pictures, side = _merged(args)
        else:
            doc, pictures, side = build_with_shard(args, staging)
        json_path, html_path = out / "results.json", out / "index.html"
        files = {json_path: results_json.dumps(doc), html_path: html.render(doc, pictures)}
        if side is not None:
            files[out / merge.SIDECAR] = merge.sidecar_text(side)
            print(f"shard {side['index']}/{side['count']}: {len(doc['cases'])} of {side['selection']['cases']} "
                  f"cases (estimated {side['estimated_s']:.1f} s)")
        # Every text is complete in memory before any file is touched.
        write_all(files)
        if staging is not None:
            staging.replace()
    finally:
        if staging is not None:
            staging.discard()
    stale = out / merge.SIDECAR
    if side is None and stale.exists():   # a shard's sidecar beside a whole report would make it look like a shard
        stale.unlink()
    bad = 0
    for engine, s in doc["summary"].items():
        bad += results_json.unexpected(s)
        known = f" ({s['xfail']} known bugs)" if s["xfail"] else ""
        xpass = f", {s['xpass']} known bugs that no longer fail (remove their xfail)" if s["xpass"] else ""
        b = s.get("backward") or {}
        backward = (f" (of them backward: {b['pass']} pass, {b['fail']} fail, {b['skip']} skip, {b['error']} error)"
                    if b.get("total") else "")
        print(f"{engine:>10}: {s['pass']} pass, {s['fail']} fail{known}, {s['skip']} skip, {s['rejected']} rejected, "
              f"{s['error']} error{xpass}{backward}")
    stacks = sum(1 for c in doc["cases"] if c.get("stack"))
    if stacks:   # counted above with the cases: one record per (stack, engine)
        print(f"{'':>10}  of the items, {stacks * len(doc['engines'])} are of {stacks} stacks (each layer's "
              "error/bound in its record's layer_ratios; no heatmaps)")
    models = doc.get("models") or []
    bad += models_html.unexpected(models)
    if models:
        counts = {v: sum(1 for m in models if m["verdict"] == v) for v in ("pass", "fail", "error")}
        print(f"{'models':>10}: {counts['pass']} pass, {counts['fail']} fail, {counts['error']} error (each entry's "
              f"page under {out / report_models.MODELS_DIR})")
        for m in models:
            if m["verdict"] == "fail":
                print(f"{'':>10}  {m['id']}: fail: {m['failed']} of {m['mapped']} mapped layers; first {m['culprit']}: "
                      f"{m['cause']}")
            elif m["verdict"] == "error":
                print(f"{'':>10}  {m['id']}: error: {m['message']}")
    if doc["baseline"]:
        ch = doc["baseline"]["changed"]
        print(f"vs baseline {doc['baseline']['path']}: {ch['verdict']} verdict changes, {ch['ratio']} ratio changes, "
              f"{ch['new']} new, {len(doc['baseline']['gone'])} gone, {doc['baseline']['not_compared']} not compared "
              "(other files or engines)")
    print(f"wrote {html_path} ({html_path.stat().st_size / 1e6:.2f} MB) and {json_path} "
          f"({json_path.stat().st_size / 1e6:.2f} MB) in {time.perf_counter() - start:.1f} s")
    return exit_code(unexpected=bad, invalid=len(doc["invalid_cases"]))
