"""Command line: validate and run cases, write reports, score the cases against mutants, fuzz, list coverage."""
from __future__ import annotations

import argparse
import math
import re
import signal
import sys
from collections.abc import Callable

from ..cases.selection import select_engines
from ..diagnosis.diagnose import Diagnoser
from ..engines import warm
from ..engines.worker import end_workers_on, raise_exit
from ..judge.runner import UNEXPECTED, Result, outcome, run_one
from ..known.facts import request_onednn, request_verbose
from ..models.render import render_text
from ..reference.agreement import Metrics, format_ratio
from . import diff_command, extract
from . import report_command as report
from . import scoreboard_command as scoreboard
from . import suite_commands as detection
from .cli_options import OPTION_GROUPS, exit_code, suite_from
from .model_session import diff_model

Handler = Callable[[argparse.Namespace], int]
AddArguments = Callable[[argparse.ArgumentParser], None]


def run_validate(args: argparse.Namespace) -> int:
    """Check case files (their cases and stacks) against the schema; exit 1 if any case or stack is invalid."""
    suite = suite_from(args)
    models = (f"; {len(suite.models)} valid models, {len(suite.model_errors)} invalid"
              if suite.models or suite.model_errors else "")
    print(f"{len(suite.cases)} valid cases, {len(suite.case_errors)} invalid; "
          f"{len(suite.stacks)} valid stacks, {len(suite.stack_errors)} invalid{models}")
    return exit_code(invalid=len(suite.errors))


def format_table(results: list[Result]) -> str:
    rows = [("engine", "verdict", "err/bound", "max abs", "max rel", "over", "params", "shape", "message")]
    for r in results:
        m = r.metrics
        rows.append((r.engine + ("" if r.check == "forward" else f" {r.check}"),
                     r.verdict.upper() if r.verdict != "pass" else "pass",
                     format_ratio(m.max_ratio) if m else "-", f"{m.max_abs:.3g}" if m else "-",
                     _max_rel(m), str(m.n_over) if m else "-",
                     str(r.params) if r.params is not None else "-",
                     "x".join(map(str, r.output_shape)) if r.output_shape else "-", r.message))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def _max_rel(m: Metrics | None) -> str:
    """The max rel cell: '-' where it is infinite only because the oracle is exactly 0 somewhere (a relative
    error is undefined there; max abs and err/bound say how far off it is), 'inf' where the error itself is."""
    if m is None or (math.isinf(m.max_rel) and math.isfinite(m.max_abs)):
        return "-"
    return f"{m.max_rel:.3g}"


def run_cases(args: argparse.Namespace) -> int:
    """Run cases (and stacks) in every engine and print, per case, a table of engines against the oracle."""
    suite = suite_from(args)   # --case names cases and stacks
    cases, stacks = suite.cases, suite.stacks
    engines = select_engines(args.engine)
    failed = 0
    shown: dict[str, dict] = {}   # the facts last printed per engine: printed again only where they change
    diagnoser = Diagnoser()   # failure messages name the known mistake that reproduces an engine's output
    if len(cases) + len(stacks) > 1:
        warm(engines)   # the engines that run apart start together now, beside the first case's work
    for case in cases:
        checks = [c for c in case.check if args.check in (None, c)]
        # The header first: what the engines write while they run (a port's own log line) lands under it.
        print(f"\n{case.file}::{case.id}  {case.layer} {list(case.input_shape)} {case.dtype}")
        results = [run_one(case, e, check, diagnoser) for check in checks for e in engines]
        for r in results:
            if r.check == "backward" and r.gradient_metrics:   # the largest error/bound of each gradient tensor
                r.notes.append("gradients: " + ", ".join(f"d{n} {m.max_ratio:.3g}"
                                                         for n, m in r.gradient_metrics.items()))
        failed += _print_results(results, shown)
    for one in stacks if args.check in (None, "forward") else []:
        print(f"\n{one.file}::{one.id}  stack {one.summary()} {list(one.input_shape)} {one.dtype}")
        results = [run_one(one, e) for e in engines]   # a stack is a case: every layer judged, the culprit named
        failed += _print_results(results, shown)
    for entry in suite.models if args.check in (None, "forward") else []:
        # A `models:` entry: the Keras model against its port (python -m harness diff), whatever the engines.
        print(f"\n{entry.file}::{entry.id}  model {entry.keras} against {entry.port}")
        diffed = diff_model(entry.keras, entry.port, torch_weights=entry.torch_weights,
                            transfer_weights=entry.transfer_weights, overrides=entry.overrides,
                            input_size=entry.input_size, seed=entry.seed, image=entry.image, batch=entry.batch,
                            torch_layout=entry.torch_layout)
        print(render_text(diffed.result, diffed.model, entry.port))
        failed += 0 if diffed.result.passed else 1
    also = f", {len(stacks)} stacks" if stacks else ""
    also += f", {len(suite.models)} models" if suite.models else ""
    print(f"\n{len(cases)} cases{also}, {failed} failing (case, engine) pairs, "
          f"{len(suite.case_errors)} invalid cases" + (f", {len(suite.stack_errors)} invalid stacks"
                                                        if suite.stack_errors else ""))
    return exit_code(unexpected=failed, invalid=len(suite.errors))


def _print_results(results: list[Result], shown: dict[str, dict] | None = None) -> int:
    """One case's (or stack's) table, each engine's notes and its facts where they differ from the facts last
    printed for it (``shown``: the same facts after every case hide the table; every result keeps its own), and a
    repro per unexpected outcome; returns how many were unexpected."""
    print(format_table(results))
    shown = {} if shown is None else shown
    for r in results:
        new_facts = bool(r.facts) and shown.get(r.engine) != r.facts
        if new_facts or r.notes:   # what decided the engine's behaviour (kernel path, layout) and what it did
            said = [", ".join(f"{k}={v}" for k, v in r.facts.items())] if new_facts else []
            print(f"  {r.engine}{'' if r.check == 'forward' else ' ' + r.check}: " + "; ".join(said + r.notes))
        if r.facts:
            shown[r.engine] = r.facts
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
        ("diff", diff_command.run, diff_command.add_arguments),
    ]


# The shared options (harness.frontends.cli_options.OPTION_GROUPS) each subcommand's handler reads: it takes those only,
# so that an option it would ignore is a usage error rather than silently dropped. Every one takes --verbose.
SHARED_OPTIONS: dict[str, tuple[str, ...]] = {
    "validate": ("cases",),
    "run": ("cases", "engines", "tf"),
    "report": ("cases", "engines", "tf"),
    "scoreboard": ("cases", "engines", "tf"),
    "mutants": ("cases", "engines", "tf"),   # --engine: the correct ports that control the mutants
    "lint": ("cases",),
    "fuzz": ("engines", "tf"),               # draws its own configurations: no case files
    "coverage": ("cases",),
    "extract": ("tf",),                      # MODEL is its own positional; it runs the model on TensorFlow
    "diff": ("tf",),                         # MODEL and PORT are its positionals
}


def summary_line(doc: str) -> str:
    """The first sentence of a docstring, whatever its line breaks: the one-line help of a subcommand."""
    text = " ".join(doc.split())
    end = re.search(r"\.(\s|$)", text)
    return text[:end.start() + 1] if end else text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, handler, add_arguments in subcommands():
        doc = (handler.__doc__ or "").strip()
        p = sub.add_parser(name, help=summary_line(doc), description=doc)
        for group in SHARED_OPTIONS[name]:
            OPTION_GROUPS[group](p)
        if add_arguments is not None:
            add_arguments(p)
        OPTION_GROUPS["verbose"](p)
        p.set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Whole lines in the order they were written, when stdout and stderr share a pipe (`cmd 2>&1 | cat`): a
    # block-buffered stdout would reach it in 8 KiB pieces, cut mid-line, after lines written since to stderr.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)
    args = build_parser().parse_args(argv)
    request_verbose(args.verbose)   # before any framework is imported; the processes a run starts inherit it
    # SIGTERM (a CI timeout, a supervisor) unwinds as Ctrl-C does: workers and job processes end with us.
    end_workers_on((signal.SIGTERM, signal.SIGHUP), raise_exit)
    try:
        request_onednn(getattr(args, "tf_onednn", None))   # before any engine imports TensorFlow; workers inherit it
        return args.handler(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:   # Ctrl-C: a line, not a traceback (finally blocks and atexit stop the workers)
        print("interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
