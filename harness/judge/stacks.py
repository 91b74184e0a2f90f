"""Stacks: layers applied in sequence, each layer's output judged against the oracle's float64 composition.

A stack (a `stacks:` entry of a case file) is a case like any other: loaded with the cases (harness.cases.suite), run by
harness.judge.runner.run_one in the engines that compute sequences (Engine.computes_sequences), judged layer by layer
(harness.judge.sequence), the first layer over its bound named the culprit. This module gathers the names its
users read; the pieces live in:

- harness.cases.stacks: the stack as written, validated (StackCase, StackLayer, stack_from_entry);
- harness.judge.stack_reference: the exact composition and the bound propagated through it (the derivation);
- harness.judge.sequence: the judgement of every layer, the culprit;
- harness.judge.stack_run: one (stack, engine) run, as run_one records it.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..cases.schema import read_case_file
from ..cases.stacks import (
    FILE_KEY,
    LAYER_KEYS,
    MAX_SLOPE,
    STACK_KEYS,
    StackCase,
    StackLayer,
    slope,
    stack_from_entry,
    stacks_of,
)
from ..cases.suite import (
    CASE_FILE_KEY,
    Suite,
    case_files,
    load_suite,
    load_suite_file,
    looks_like_case_file,
    select,
    select_suite,
)
from ..engines.base import SequenceFn, SequenceOutput
from ..errors import CaseError
from .runner import Result, record_sequence, repro_command, run_one
from .sequence import SequenceJudgement, culprit_of, judge, ratios_note
from .stack_reference import (
    LayerReference,
    StackInputs,
    StackReference,
    layer_reference,
    make_inputs,
    propagate,
    reference,
    sequence_request,
    through,
    unusable,
)
from .stack_run import compute
from .stack_run import run as run_sequence

__all__ = [
    "CASE_FILE_KEY", "FILE_KEY", "LAYER_KEYS", "MAX_SLOPE", "STACK_KEYS", "LayerReference",
    "SequenceFn", "SequenceJudgement", "SequenceOutput", "StackCase", "StackInputs", "StackLayer", "StackReference",
    "Suite", "case_files", "compute", "culprit", "culprit_of", "judge", "layer_reference", "load_file",
    "load_paths", "load_suite", "load_suite_file", "looks_like_case_file", "make_inputs", "propagate",
    "ratios_note", "reference", "run_stack", "select", "select_suite", "sequence_request", "slope", "stack_from_entry",
    "stacks_of", "through", "unusable",
]


def load_file(path: str | Path, name: str | None = None) -> tuple[list[StackCase], list[CaseError]]:
    """Every valid stack of a case file (none where it has no `stacks:`), and one error per invalid stack or for the
    file itself."""
    doc, errors = read_case_file(path, name)
    return ([], errors) if doc is None else stacks_of(doc, str(path) if name is None else name)


def load_paths(paths: Sequence[str | Path]) -> tuple[list[StackCase], list[CaseError]]:
    """The stacks of several files and folders, ids unique across them (harness.cases.suite.load_suite)."""
    suite = load_suite(paths)
    return suite.stacks, suite.stack_errors


def run_stack(stack: StackCase, engine: str, fn: SequenceFn | None = None) -> Result:
    """Run and judge one (stack, engine) through run_one. ``fn``, a sequence function fn(layers, x) -> every layer's
    output, computes the stack instead of the engine (for tests and the API: its exceptions propagate)."""
    if fn is None:
        return run_one(stack, engine)
    result = Result(case_id=stack.id, file=stack.file, engine=engine, verdict="error",
                    repro=repro_command(stack, engine))
    return record_sequence(result, run_sequence(stack, engine, fn))


def culprit(result: Result) -> int | None:
    """The index of the first layer over its bound in a stack's result (its "culprit" finding), or None."""
    return culprit_of(result.findings)
