"""The options every subcommand shares (one parent parser), and the cases those options select."""
from __future__ import annotations

import argparse
import sys

from .errors import CaseError
from .schema import Case, load_paths
from .selection import register_pythons, select_cases


class EnginePython(argparse.Action):
    """--engine-python NAME=PATH, registered as it is parsed: every subcommand's handler then selects its
    engines with select_engines(args.engine) and finds the plug-in's interpreter in the registry."""

    def __call__(self, parser, namespace, value, option_string=None) -> None:
        try:
            register_pythons([value])
        except ValueError as exc:
            parser.error(str(exc))
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or []), value])   # never the shared default


def common_options() -> argparse.ArgumentParser:
    """A parent parser (``parents=[...]``) with the case paths, --case, --engine, --engine-python and
    --tf-onednn."""
    p = argparse.ArgumentParser(add_help=False)   # each subcommand's own parser adds -h
    p.add_argument("paths", nargs="*", default=["cases"], help="case files or folders (default: cases)")
    p.add_argument("--case", action="append", help="only this case id (repeatable)")
    p.add_argument("--engine", action="append", default=[],
                   help="built-in engine to restrict to, or [NAME=]MODULE:CALLABLE plug-in (repeatable)")
    p.add_argument("--engine-python", action=EnginePython, default=[], metavar="NAME=PATH",
                   help="run plug-in NAME in a worker process on the python at PATH (a port that lives in another "
                        "environment; repeatable)")
    p.add_argument("--tf-onednn", choices=("on", "off"), default=None,
                   help="TensorFlow's CPU kernel path for the keras engine: on (oneDNN) or off (Eigen); "
                        "default: TensorFlow's own choice for this CPU")
    return p


def cases_from(args: argparse.Namespace) -> tuple[list[Case], list[CaseError]]:
    """The cases ``args.paths`` and ``args.case`` name; each invalid case is printed to stderr as it is found."""
    cases, errors = load_paths(args.paths)
    for error in errors:   # printed before a bad --case stops the command: both mistakes show at once
        print(f"invalid case: {error}", file=sys.stderr)
    return select_cases(cases, args.case, args.paths), errors
