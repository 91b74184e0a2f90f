"""Command line: validate and run cases, write reports, score the cases against mutants, fuzz, list coverage."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from . import extract, stack
from .cli_options import cases_from, common_options
from .detection import command as detection, diagnose
from .facts import request_onednn
from .report import command as report
from .scoreboard import command as scoreboard
from .runner import UNEXPECTED, Result, outcome, run_one
from .selection import select_engines

Handler = Callable[[argparse.Namespace], int]
AddArguments = Callable[[argparse.ArgumentParser], None]


def run_validate(args: argparse.Namespace) -> int:
    """Check case files against the schema; exit 1 if any case is invalid."""
    cases, errors = cases_from(args)
    print(f"{len(cases)} valid cases, {len(errors)} invalid")
    return 1 if errors else 0


def format_table(results: list[Result]) -> str:
    rows = [("engine", "verdict", "err/bound", "max abs", "max rel", "over", "params", "shape", "message")]
    for r in results:
        m = r.metrics
        rows.append((r.engine + ("" if r.check == "forward" else f" {r.check}"), r.verdict.upper() if r.verdict != "pass" else "pass",
                     f"{m.max_ratio:.3g}" if m else "-", f"{m.max_abs:.3g}" if m else "-",
                     f"{m.max_rel:.3g}" if m else "-", str(m.n_over) if m else "-",
                     str(r.params) if r.params is not None else "-",
                     "x".join(map(str, r.output_shape)) if r.output_shape else "-", r.message))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def run_cases(args: argparse.Namespace) -> int:
    """Run cases (and stacks) in every engine and print, per case, a table of engines against the oracle."""
    all_stacks, stack_errors = stack.load_paths(args.paths)
    for error in stack_errors:
        print(f"invalid stack: {error}", file=sys.stderr)
    stacks, args.case, want_cases = stack.select(all_stacks, args.case)   # --case names cases and stacks
    cases, errors = cases_from(args) if want_cases else ([], [])
    engines = select_engines(args.engine)
    failed = 0
    for case in cases:
        checks = [c for c in case.check if args.check in (None, c)]
        results = [run_one(case, e, check) for check in checks for e in engines]
        for r in results:
            if r.check == "backward" and r.gradient_metrics:   # the largest error/bound of each gradient tensor
                r.notes.append("gradients: " + ", ".join(f"d{n} {m.max_ratio:.3g}"
                                                         for n, m in r.gradient_metrics.items()))
        print(f"\n{case.file}::{case.id}  {case.layer} {list(case.input_shape)} {case.dtype}")
        failed += _print_results(results)
    for one in stacks if args.check in (None, "forward") else []:
        results = [stack.run_stack(one, e) for e in engines]
        print(f"\n{one.file}::{one.id}  stack {one.summary()} {list(one.input_shape)} {one.dtype}")
        failed += _print_results(results)
    also = f", {len(stacks)} stacks" if stacks else ""
    print(f"\n{len(cases)} cases{also}, {failed} failing (case, engine) pairs, "
          f"{len(errors) + len(stack_errors)} invalid cases")
    return 1 if failed or errors or stack_errors else 0


def _print_results(results: list[Result]) -> int:
    """One case's (or stack's) table, the facts and notes of each engine and a repro per unexpected outcome;
    returns how many were unexpected."""
    print(format_table(results))
    for r in results:
        if r.facts or r.notes:   # what decided the engine's behaviour (kernel path, layout) and what it did
            said = [", ".join(f"{k}={v}" for k, v in r.facts.items())] if r.facts else []
            print(f"  {r.engine}{'' if r.check == 'forward' else ' ' + r.check}: " + "; ".join(said + r.notes))
    failed = 0
    for r in results:
        status = outcome(r.verdict, r.xfail)
        if status in UNEXPECTED:
            failed += 1
            if status == "xpass":
                print(f"  known bug no longer shows (remove its xfail): {r.xfail}")
            print(f"  repro: {r.repro}")
    return failed


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", choices=("forward", "backward"), default=None,
                        help="run only this check of each case (default: the checks the case asks for)")


def subcommands() -> list[tuple[str, Handler, AddArguments | None]]:
    """(name, handler, its own options) of every subcommand, in the order --help lists them."""
    return [
        ("validate", run_validate, None),
        ("run", run_cases, add_run_arguments),
        ("report", report.run, report.add_arguments),
        ("scoreboard", scoreboard.run, scoreboard.add_arguments),
        ("mutants", detection.run_mutants, detection.add_mutants_arguments),
        ("lint", detection.run_lint, detection.add_lint_arguments),
        ("fuzz", detection.run_fuzz, detection.add_fuzz_arguments),
        ("coverage", detection.run_coverage, detection.add_coverage_arguments),
        ("extract", extract.run, extract.add_arguments),
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    common = common_options()   # paths, --case, --engine, --tf-onednn: defined once, shared by every subcommand
    for name, handler, add_arguments in subcommands():
        doc = (handler.__doc__ or "").strip()
        p = sub.add_parser(name, parents=[common], help=doc.splitlines()[0], description=doc)
        if add_arguments is not None:
            add_arguments(p)
        p.set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    diagnose.install()   # failure messages name the known mistake that reproduces an engine's output
    try:
        request_onednn(args.tf_onednn)   # before any engine imports TensorFlow; fuzz workers inherit it
        return args.handler(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
