"""Command line: validate case files, run cases and print per-case tables; other modules add subcommands."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from .facts import request_onednn
from .runner import UNEXPECTED, Result, outcome, run_one
from .schema import load_paths
from .selection import select_engines

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def register(fn):
        COMMANDS[name] = fn
        return fn
    return register


def _load(args: argparse.Namespace):
    cases, errors = load_paths(args.paths)
    for error in errors:
        print(f"invalid case: {error}", file=sys.stderr)
    wanted = getattr(args, "case", None)
    if wanted:
        unmatched = [w for w in wanted if not any(w in (c.id, c.id.split("(")[0]) for c in cases)]
        if unmatched:  # a typo must not pass as "0 cases, 0 failing"
            raise ValueError(f"--case {', '.join(unmatched)}: no such case in {' '.join(map(str, args.paths))}")
        cases = [c for c in cases if c.id in wanted or c.id.split("(")[0] in wanted]
    return cases, errors


@command("validate")
def cmd_validate(args: argparse.Namespace) -> int:
    """Check case files against the schema; exit 1 if any case is invalid."""
    cases, errors = _load(args)
    print(f"{len(cases)} valid cases, {len(errors)} invalid")
    return 1 if errors else 0


def format_table(results: list[Result]) -> str:
    rows = [("engine", "verdict", "err/bound", "max abs", "max rel", "over", "params", "shape", "message")]
    for r in results:
        m = r.metrics
        rows.append((r.engine, r.verdict.upper() if r.verdict != "pass" else "pass",
                     f"{m.max_ratio:.3g}" if m else "-", f"{m.max_abs:.3g}" if m else "-",
                     f"{m.max_rel:.3g}" if m else "-", str(m.n_over) if m else "-",
                     str(r.params) if r.params is not None else "-",
                     "x".join(map(str, r.output_shape)) if r.output_shape else "-", r.message))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows)


@command("run")
def cmd_run(args: argparse.Namespace) -> int:
    """Run cases in every engine and print, per case, a table of engines against the oracle."""
    cases, errors = _load(args)
    engines = select_engines(args.engine)
    failed = 0
    for case in cases:
        results = [run_one(case, e) for e in engines]
        print(f"\n{case.file}::{case.id}  {case.layer} {list(case.input_shape)} {case.dtype}")
        print(format_table(results))
        for r in results:
            if r.facts or r.notes:   # what decided the engine's behaviour (kernel path, layout) and what it did
                print(f"  {r.engine}: " + "; ".join([", ".join(f"{k}={v}" for k, v in r.facts.items())] + r.notes))
        for r in results:
            status = outcome(r.verdict, r.xfail)
            if status in UNEXPECTED:
                failed += 1
                if status == "xpass":
                    print(f"  known bug no longer shows (remove its xfail): {r.xfail}")
                print(f"  repro: {r.repro}")
    print(f"\n{len(cases)} cases, {failed} failing (case, engine) pairs, {len(errors)} invalid cases")
    return 1 if failed or errors else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn in COMMANDS.items():
        p = sub.add_parser(name, help=(fn.__doc__ or "").strip().splitlines()[0])
        p.add_argument("paths", nargs="*", default=["cases"], help="case files or folders (default: cases)")
        p.add_argument("--case", action="append", help="only this case id (repeatable)")
        p.add_argument("--engine", action="append", default=[],
                       help="built-in engine to restrict to, or [NAME=]MODULE:CALLABLE plug-in (repeatable)")
        p.add_argument("--tf-onednn", choices=("on", "off"), default=None,
                       help="TensorFlow's CPU kernel path for the keras engine: on (oneDNN) or off (Eigen); "
                            "default: TensorFlow's own choice for this CPU")
        for extra in EXTRA_ARGUMENTS.get(name, []):
            extra(p)
    return parser


# Subcommands defined in other modules add their own options here.
EXTRA_ARGUMENTS: dict[str, list[Callable[[argparse.ArgumentParser], None]]] = {}


# Modules that register more subcommands (report, lint, mutants, fuzz, coverage) with @command.
SUBCOMMAND_MODULES = ("harness.report.command", "harness.detection.command")


def _load_subcommands() -> None:
    import importlib

    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name)


def main(argv: list[str] | None = None) -> int:
    _load_subcommands()
    args = build_parser().parse_args(argv)
    try:
        request_onednn(args.tf_onednn)   # before any engine imports TensorFlow; fuzz workers inherit it
        return COMMANDS[args.command](args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
