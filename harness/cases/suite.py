"""The one loader of case files: a file of cases, of stacks or of both, each file parsed once, ids unique across all.

Every entry point (the CLI's subcommands, pytest, the scoreboard's workers) loads files here, so that a file is
read, validated and counted the same way everywhere.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CaseError
from .model_entries import ModelEntry, models_of
from .schema import Case, cases_of, read_case_file
from .selection import select_cases
from .stacks import StackCase, stacks_of

# A top-level `cases:` or `stacks:` key, read as text: how a YAML file found by searching a folder is told to be a
# case file without parsing it (pytest collects those only; a CI config beside them is left alone).
CASE_FILE_KEY = re.compile(r"""^["']?(?:cases|stacks|models)["']?[ \t]*:""", re.MULTILINE)


@dataclass
class Suite:
    """What case files hold: the valid cases and stacks, and one error per invalid case, stack or file."""

    cases: list[Case] = field(default_factory=list)
    stacks: list[StackCase] = field(default_factory=list)
    case_errors: list[CaseError] = field(default_factory=list)    # invalid cases, and files that cannot be read
    stack_errors: list[CaseError] = field(default_factory=list)   # invalid stacks
    models: list[ModelEntry] = field(default_factory=list)        # `models:` entries (python -m harness diff)
    model_errors: list[CaseError] = field(default_factory=list)

    @property
    def errors(self) -> list[CaseError]:
        return [*self.case_errors, *self.stack_errors, *self.model_errors]

    @property
    def items(self) -> list[Case | StackCase]:
        """Everything runnable, cases first: what run_one takes."""
        return [*self.cases, *self.stacks]


def looks_like_case_file(path: str | Path) -> bool:
    """Whether a file has a top-level `cases:` or `stacks:` key (read as text; unreadable: True, so that whoever
    loads it says why)."""
    try:
        return bool(CASE_FILE_KEY.search(Path(path).read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return True


def case_files(paths: Sequence[str | Path]) -> list[Path]:
    """The files ``paths`` name (folders searched for *.yaml, *.yml); ValueError for a path that does not exist
    (a usage error: a typo must not read as an empty, green suite)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise ValueError(f"no such case file or folder: {p}")
        files.extend(sorted(p.rglob("*.yaml")) + sorted(p.rglob("*.yml")) if p.is_dir() else [p])
    return files


def load_suite_file(path: str | Path, name: str | None = None, owners: dict[str, str] | None = None) -> Suite:
    """The cases and stacks of one file, parsed once (``name``: how they and the errors name it, as
    schema.load_file's). Ids are unique within the file and across the files loaded with the same ``owners``
    (id -> file), cases and stacks sharing one name space: a second user of an id is an error."""
    shown = str(path) if name is None else name
    doc, file_errors = read_case_file(path, shown)
    if doc is None:   # the file itself is unreadable or no case file: said once
        return Suite(case_errors=file_errors)
    cases, case_errors = cases_of(doc, path, shown)
    stacks, stack_errors = stacks_of(doc, shown)
    models, model_errors = models_of(doc, path, shown)
    owners = {} if owners is None else owners
    suite = Suite(case_errors=case_errors, stack_errors=stack_errors, model_errors=model_errors)
    for case in cases:
        if owners.setdefault(case.id, shown) != shown:
            suite.case_errors.append(CaseError(shown, case.id, "id",
                                               f"duplicate id, already used in {owners[case.id]}"))
        else:
            suite.cases.append(case)
    mine = {case.id for case in suite.cases}
    for one in stacks:
        if one.id in mine:
            suite.stack_errors.append(CaseError(shown, one.id, "id",
                                                "duplicate id, already used by a case of this file"))
        elif owners.setdefault(one.id, shown) != shown:
            suite.stack_errors.append(CaseError(shown, one.id, "id", f"duplicate id, already used in {owners[one.id]}"))
        else:
            suite.stacks.append(one)
    for entry in models:
        if owners.setdefault(entry.id, shown) != shown or entry.id in mine or any(st.id == entry.id for st in stacks):
            suite.model_errors.append(CaseError(shown, entry.id, "id", "duplicate id, already used"))
        else:
            suite.models.append(entry)
    return suite


def load_suite(paths: Sequence[str | Path]) -> Suite:
    """The cases and stacks of several files and folders, ids unique across all of them (load_suite_file)."""
    suite = Suite()
    owners: dict[str, str] = {}
    for f in case_files(paths):
        got = load_suite_file(f, owners=owners)
        suite.cases += got.cases
        suite.stacks += got.stacks
        suite.case_errors += got.case_errors
        suite.stack_errors += got.stack_errors
        suite.models += got.models
        suite.model_errors += got.model_errors
    return suite


def select(stacks: list[StackCase], ids: list[str] | None) -> tuple[list[StackCase], list[str] | None, bool]:
    """For `--case`: the stacks ``ids`` name (all where none is named), the ids left for the cases, and whether
    any case is wanted (False where every id named is a stack's)."""
    if not ids:
        return stacks, ids, True
    rest = [i for i in ids if not any(s.id == i for s in stacks)]
    return [s for s in stacks if s.id in ids], rest or None, bool(rest)


def select_suite(suite: Suite, ids: list[str] | None, paths: Sequence[str | Path]) -> Suite:
    """The cases and stacks ``ids`` (`--case`, repeatable) name, all where none is; an id that names neither raises
    ValueError (harness.cases.selection.select_cases). The errors are kept whole: an invalid entry is never selected
    away unseen."""
    model_ids = {m.id for m in suite.models}
    models = [m for m in suite.models if not ids or m.id in ids]
    others = [i for i in ids if i not in model_ids] if ids else ids
    if ids and not others:   # every id named is a model's
        return Suite(models=models, case_errors=suite.case_errors, stack_errors=suite.stack_errors,
                     model_errors=suite.model_errors)
    stacks, rest, want_cases = select(suite.stacks, others)
    cases = select_cases(suite.cases, rest, list(paths)) if want_cases else []
    return Suite(cases=cases, stacks=stacks, case_errors=suite.case_errors, stack_errors=suite.stack_errors,
                 models=models, model_errors=suite.model_errors)
