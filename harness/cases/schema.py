"""Case files: safe YAML loading (with each mapping's line), the file's top level, and the cases of a file or of
several; the Case model, the sweep and the validators live beside it (model, sweep, validate, ...)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..errors import CaseError
from .model import Case
from .sweep import ID_PATTERN, case_from_entry, expand, strip_lines
from .validate import MAX_ELEMENTS

# Names other modules import from here, the case files' front door (they live in the modules beside it).
__all__ = ["FILE_KEYS", "ID_PATTERN", "MAX_ELEMENTS", "Case", "case_from_entry", "cases_of", "load_file", "load_paths",
           "load_yaml", "read_case_file", "strip_lines"]

FILE_KEYS = {"defaults", "cases", "stacks", "models"}   # stacks: cases/stacks.py; models: cases/model_entries.py


class _LineLoader(yaml.SafeLoader):
    """SafeLoader (no tag constructs Python objects) that remembers each mapping's line."""


def _construct_mapping(loader: yaml.BaseLoader, node: yaml.MappingNode) -> dict:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

if getattr(yaml, "__with_libyaml__", False):
    class _FastLineLoader(yaml.CSafeLoader):
        """_LineLoader's constructor and resolver (SafeLoader's: no tag constructs Python objects, the same values
        and lines) on libyaml's C parser, about 8 times as fast. Used where PyYAML was built with libyaml; a file it
        cannot parse is parsed again by _LineLoader, whose error message (with its source excerpt) the user sees."""

    _FastLineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _LOADERS: tuple[type, ...] = (_FastLineLoader, _LineLoader)
else:
    _LOADERS = (_LineLoader,)


def _parse(source: str | Path, loader: type) -> Any:
    with open(source, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=loader)  # noqa: S506 - both loaders derive from (C)SafeLoader


def load_yaml(source: str | Path) -> Any:
    """The YAML document of a file, with each mapping's line under ``__line__``; raises OSError, yaml.YAMLError.

    Parsed by libyaml where present; a file it refuses is parsed again by _LineLoader, so that an error is always
    reported by the pure-Python loader, in the words (and with the source excerpt) it always used."""
    *fast, last = _LOADERS
    for loader in fast:
        try:
            return _parse(source, loader)
        except yaml.YAMLError:
            pass
    return _parse(source, last)


def read_case_file(path: str | Path, name: str | None = None) -> tuple[dict[str, Any] | None, list[CaseError]]:
    """The document of a case file, parsed once (every entry point reads a file's cases and stacks from it), its
    top level checked: a mapping with `cases:`, `stacks:` or both, and no other key but `defaults`. None and the
    one error (naming ``name``, default ``path``) where it cannot be read or is no case file."""
    shown = str(path) if name is None else name
    try:
        doc = load_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        return None, [CaseError(shown, None, None, f"cannot read YAML: {exc}".replace("\n", " "))]
    if not isinstance(doc, dict) or not ({"cases", "stacks", "models"} & set(doc)):
        return None, [CaseError(shown, None, None,
                                "a case file is a mapping with a list under 'cases' (or 'stacks', 'models')")]
    unknown = set(doc) - FILE_KEYS - {"__line__"}
    if unknown:
        return None, [CaseError(shown, None, ", ".join(sorted(unknown)),
                                f"unknown top-level key; allowed: {', '.join(sorted(FILE_KEYS))}")]
    return doc, []


def load_file(path: str | Path, name: str | None = None) -> tuple[list[Case], list[CaseError]]:
    """Every valid case of a file, and one error per invalid case (a bad case never hides the others).

    The file is opened at `path` (absolute, or relative to the current directory); `name` (default: `path`)
    is how cases and errors name it to the user (`Case.file`, `CaseError.file`, the repro command), e.g. the
    path relative to the directory pytest was invoked in. (Its stacks: harness.cases.suite.load_suite_file.)
    """
    doc, errors = read_case_file(path, name)
    return ([], errors) if doc is None else cases_of(doc, path, name)


def cases_of(doc: dict[str, Any], path: str | Path, name: str | None = None) -> tuple[list[Case], list[CaseError]]:
    """The cases of a document read_case_file returned, as load_file names them (tensor files are relative to
    ``path``'s folder)."""
    source, path = path, str(path) if name is None else name
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        return [], [CaseError(path, None, "defaults", "must be a mapping")]
    if not isinstance(doc.get("cases", []), list):
        return [], [CaseError(path, None, "cases", "must be a list")]
    cases: list[Case] = []
    errors: list[CaseError] = []
    seen: set[str] = set()
    for position, entry in enumerate(doc.get("cases", [])):
        name = entry.get("id") if isinstance(entry, dict) else None
        label = str(name) if name is not None else f"#{position + 1}"
        if isinstance(name, str):  # checked first: an invalid first entry still owns its id
            if name in seen:
                errors.append(CaseError(path, label, "id", "duplicate id in this file"))
                continue
            seen.add(name)
        try:
            cases.extend(expand(path, label, defaults, entry, Path(source).absolute().parent))
        except CaseError as exc:
            errors.append(exc)
    return cases, errors


def load_paths(paths: Sequence[str | Path]) -> tuple[list[Case], list[CaseError]]:
    """Load several files (folders are searched for *.yaml); ids must be unique across all of them."""
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.rglob("*.yaml")) + sorted(p.rglob("*.yml")) if p.is_dir() else [p])
    cases: list[Case] = []
    errors: list[CaseError] = []
    owner: dict[str, str] = {}   # case id -> the file that has it
    for f in files:
        got, bad = load_file(f)
        errors.extend(bad)
        for case in got:
            if case.id in owner:
                errors.append(CaseError(str(f), case.id, "id", f"duplicate id, already used in {owner[case.id]}"))
                continue
            owner[case.id] = str(f)
            cases.append(case)
    return cases, errors


T = TypeVar("T")


def entries_of(doc: dict[str, Any], key: str, shown: str, what: str,
               parse: Callable[[Any, str], T]) -> tuple[list[T], list[CaseError]]:
    """The valid entries under a file's top-level ``key`` (``parse(entry, label)`` raising CaseError for an invalid
    one: one error each, a bad entry never hides the others), ids unique within the file; ``what`` names an entry
    in the message for a ``key`` that is no list."""
    if key not in doc:
        return [], []
    if not isinstance(doc[key], list):
        return [], [CaseError(shown, None, key, f"must be a list of {what}")]
    out: list[T] = []
    errors: list[CaseError] = []
    seen: set[str] = set()
    for position, entry in enumerate(doc[key]):
        label = str(entry["id"]) if isinstance(entry, dict) and "id" in entry else f"{key}#{position + 1}"
        if label in seen:
            errors.append(CaseError(shown, label, "id", "duplicate id in this file"))
            continue
        seen.add(label)
        try:
            out.append(parse(entry, label))
        except CaseError as exc:
            errors.append(exc)
    return out, errors
