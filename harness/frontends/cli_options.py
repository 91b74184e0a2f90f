"""The options several subcommands share (by group), the cases and stacks they select, the exit code."""
from __future__ import annotations

import argparse
import sys

from ..cases.schema import Case
from ..cases.selection import register_pythons
from ..cases.suite import Suite, load_suite, select_suite
from ..errors import CaseError


class EnginePython(argparse.Action):
    """--engine-python NAME=PATH, registered as it is parsed: every subcommand's handler then selects its
    engines with select_engines(args.engine) and finds the plug-in's interpreter in the registry."""

    def __call__(self, parser, namespace, value, option_string=None) -> None:
        try:
            register_pythons([value])
        except ValueError as exc:
            parser.error(str(exc))
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or []), value])   # never the shared default


def add_case_options(p: argparse.ArgumentParser) -> None:
    """The case files to read and the cases to select: paths and --case."""
    p.add_argument("paths", nargs="*", default=["cases"], help="case files or folders (default: cases)")
    p.add_argument("--case", action="append", help="only this case id (repeatable)")


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """The engines to run: --engine and --engine-python."""
    p.add_argument("--engine", action="append", default=[], metavar="ENGINE",
                   help="built-in engine to restrict to, or a plug-in: [NAME=]MODULE:CALLABLE or "
                        "[NAME=]PATH/TO/FILE.py:CALLABLE (repeatable)")
    p.add_argument("--engine-python", action=EnginePython, default=[], metavar="NAME=PATH",
                   help="run plug-in NAME in a worker process on the python at PATH (a port that lives in another "
                        "environment; repeatable)")


def add_tf_option(p: argparse.ArgumentParser) -> None:
    """TensorFlow's kernel path, for the subcommands that may import TensorFlow: --tf-onednn."""
    p.add_argument("--tf-onednn", choices=("on", "off"), default=None,
                   help="TensorFlow's CPU kernel path for the keras engine: on (oneDNN) or off (Eigen); "
                        "default: TensorFlow's own choice for this CPU")


def add_verbose_option(p: argparse.ArgumentParser) -> None:
    """--verbose: the frameworks' own log lines (TensorFlow's C++ and absl logs, Keras's messages)."""
    p.add_argument("--verbose", action="store_true",
                   help="show the frameworks' own log lines (TensorFlow/absl, Keras), silenced by default")


# The options several subcommands share, by group: each subcommand takes the groups its handler reads
# (harness.frontends.cli.SHARED_OPTIONS), so that none accepts an option it would silently ignore.
OPTION_GROUPS = {"cases": add_case_options, "engines": add_engine_options, "tf": add_tf_option,
                 "verbose": add_verbose_option}


def exit_code(*, unexpected: int = 0, invalid: int = 0, judged: int | None = None) -> int:
    """The one exit code of every subcommand that has run (usage errors are 2: harness.frontends.cli.main): 1 where an
    item's outcome is unexpected (fail, xpass, error), an entry (case or stack) is invalid, or nothing could be
    judged (``judged`` == 0: a command that judged nothing never reads as green); else 0."""
    return 1 if unexpected or invalid or judged == 0 else 0


def cases_from(args: argparse.Namespace) -> tuple[list[Case], list[CaseError]]:
    """The cases ``args.paths`` and ``args.case`` name, and every error (of cases and of stacks: suite_from)."""
    suite = suite_from(args)
    return suite.cases, suite.errors


def suite_from(args: argparse.Namespace) -> Suite:
    """The cases and stacks ``args.paths`` and ``args.case`` name (every entry point loads files here, so that a
    file of cases, of stacks or of both is read and counted alike); each invalid case and stack is printed to
    stderr as it is found. ValueError (exit 2) for a path that does not exist or a --case that names nothing."""
    suite = load_suite(args.paths)
    for error in suite.case_errors:   # printed before a bad --case stops the command: both mistakes show at once
        print(f"invalid case: {error}", file=sys.stderr)
    for error in suite.stack_errors:
        print(f"invalid stack: {error}", file=sys.stderr)
    for error in suite.model_errors:
        print(f"invalid model entry: {error}", file=sys.stderr)
    selected = select_suite(suite, args.case, args.paths)
    command = getattr(args, "command", "run")
    if selected.models and command not in ("validate", "run", "report"):
        # Only run, report and pytest diff a `models:` entry: any other command would leave it out and read as green.
        print(f"note: {len(selected.models)} `models:` entries are diffed by `python -m harness run`, `report` and "
              f"pytest, not by {command}", file=sys.stderr)
        if not selected.cases and not selected.stacks:
            raise ValueError(f"{command}: the files hold only `models:` entries, which it does not judge: "
                             "run them with `python -m harness run FILE`, `report FILE` or pytest")
    return selected
