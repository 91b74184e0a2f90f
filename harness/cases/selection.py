"""The one place that turns --engine and --case options into the engines and the cases to run."""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .. import engines
from ..errors import CaseError
from .schema import Case, load_paths


def select_engines(specs: list[str] | None, pythons: list[str] | None = None) -> list[str]:
    """``--engine`` values -> engine names.

    A built-in name (oracle, keras, torch) restricts the run to the built-ins named; ``[NAME=]MODULE:CALLABLE``
    adds a plug-in. With no built-in named, all built-ins run. ``pythons`` (``--engine-python NAME=PATH``) runs
    plug-in NAME in a worker on that interpreter; each must name a plug-in of ``specs``.
    """
    named = register_pythons(pythons)   # first: a plug-in on another interpreter must not be imported here
    builtins, plugins = [], []
    for spec in specs or []:
        if ":" in spec:
            plugins.append(engines.register_plugin(spec))
        elif spec in engines.BUILTIN:
            builtins.append(spec)
        else:   # the near misses among engine names (the CLI's and pytest's --engine alike)
            hint = engines.suggest_engine(spec) or (
                f"; a plug-in file names its function: {spec}:FUNCTION" if spec.endswith(".py") else "")
            raise ValueError(f"--engine {spec!r}: not a built-in engine{hint} (built-in: "
                             f"{', '.join(engines.BUILTIN)}; a plug-in: [NAME=]MODULE:CALLABLE or "
                             "[NAME=]PATH.py:CALLABLE)")
    for name in named:
        if name not in plugins:
            raise ValueError(f"--engine-python {name}=...: no plug-in engine {name!r} on this command line "
                             f"(add --engine {name}=MODULE:CALLABLE)")
    chosen = builtins or list(engines.DEFAULT_ENGINES)
    return list(dict.fromkeys(chosen + plugins))


def register_pythons(specs: list[str] | None) -> list[str]:
    """``--engine-python NAME=PATH`` values -> the registry (plug-in NAME runs in a worker on the interpreter at
    PATH); the names, in order."""
    names = []
    for spec in specs or []:
        name, _, path = spec.partition("=")
        if not name or not path:
            raise ValueError(f"--engine-python {spec!r}: must be NAME=PATH, the python of the environment "
                             "plug-in NAME runs in")
        if not os.path.exists(os.path.expanduser(path)):
            raise ValueError(f"--engine-python {spec!r}: {path} does not exist")
        engines.set_plugin_python(name, path)
        names.append(name)
    return names


def select_cases(cases: list[Case], case_ids: list[str] | None, paths: Sequence[str | os.PathLike]) -> list[Case]:
    """The cases named by ``case_ids`` (all when none), each by its full id or by the base id of a sweep (``k3``
    selects ``k3(strides=1)`` and ``k3(strides=2)``). An id that matches no case raises ValueError naming
    ``paths``: a typo must not pass as "0 cases, 0 failing"."""
    if not case_ids:
        return cases
    unmatched = [w for w in case_ids if not any(w in (c.id, c.id.split("(")[0]) for c in cases)]
    if unmatched:
        raise ValueError(f"--case {', '.join(unmatched)}: no such case in {' '.join(map(str, paths))}")
    return [c for c in cases if c.id in case_ids or c.id.split("(")[0] in case_ids]


def load_cases(paths: str | os.PathLike | Iterable[str | os.PathLike], case_ids: str | Iterable[str] | None = None
               ) -> tuple[list[Case], list[CaseError]]:
    """The valid cases of case files and folders (``*.yaml`` searched recursively) that ``case_ids`` selects
    (see select_cases), and one CaseError per invalid case; ids must be unique across all the files. One path
    (a str or a Path) is a list of one, as one id is; TypeError for anything else."""
    listed: list[str | os.PathLike] = _listed(paths, (str, os.PathLike), "paths",
                                              "a path (str or os.PathLike) or a list of paths")
    ids = None if case_ids is None else _listed(case_ids, (str,), "case_ids", "a case id (str) or a list of them")
    cases, errors = load_paths([Path(p) for p in listed])
    return select_cases(cases, ids, listed), errors


def _listed(value: object, types: tuple[type, ...], name: str, what: str) -> list:
    # A string is iterable: taken as a list it would be one path (or id) per character, "/" the whole disk.
    if isinstance(value, types):
        return [value]
    wrong = value
    if isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        items = list(value)
        wrong = next((v for v in items if not isinstance(v, types)), items)
        if wrong is items:
            return items
    raise TypeError(f"load_cases: {name} must be {what}, got {type(wrong).__name__} {repr(wrong)[:60]}")
