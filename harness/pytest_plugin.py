"""pytest plugin: YAML case files become one item per (case, engine); failures read as domain messages."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .facts import request_onednn
from .runner import Result, outcome, run_one
from .schema import Case, CaseError, load_file
from .selection import select_engines


# This plugin's state on pytest's config (pytest's stash: typed keys, no private attributes).
ENGINES = pytest.StashKey[list]()      # the engines this run selected
NAMED = pytest.StashKey[set]()         # the paths named on the command line
CASE_OWNERS = pytest.StashKey[dict]()  # case id -> the file that defined it (a duplicate id is an error)

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "convolution equivalence harness")
    group.addoption("--engine", action="append", default=[], metavar="NAME|[NAME=]MODULE:CALLABLE",
                    help="restrict to a built-in engine (oracle, keras, torch) or add a plug-in engine "
                         "fn(layer, config, x, weights) -> y; repeatable")
    group.addoption("--engine-python", action="append", default=[], metavar="NAME=PATH",
                    help="run plug-in engine NAME in a worker process on the python at PATH (a port that lives "
                         "in another environment); repeatable")
    group.addoption("--tf-onednn", choices=("on", "off"), default=None,
                    help="TensorFlow's CPU kernel path for the keras engine: on (oneDNN) or off (Eigen); sets "
                         "TF_ENABLE_ONEDNN_OPTS before TensorFlow loads (default: TensorFlow's own choice for "
                         "this CPU). Results record the path that ran.")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        # xdist already puts one worker on each core; framework thread pools on top only contend
        # (torch: 10-40 ms per tiny conv with 2 threads vs 1-2 ms with 1). Read before any framework loads.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        request_onednn(config.getoption("tf_onednn"))   # before any engine imports TensorFlow (workers inherit it)
    except ValueError as exc:
        raise pytest.UsageError(f"--tf-onednn: {exc}") from exc
    from .detection import diagnose

    diagnose.install()   # failure messages name the known mistake that reproduces an engine's output
    try:
        config.stash[ENGINES] = select_engines(config.getoption("engine"), config.getoption("engine_python"))
    except (ValueError, ImportError) as exc:
        raise pytest.UsageError(str(exc)) from exc
    for engine in config.stash[ENGINES]:
        config.addinivalue_line("markers", f"{engine.replace('-', '_')}: items run by the {engine} engine")
    # The paths named on the command line (or the configured testpaths when none is), resolved against the
    # directory pytest was invoked in, `::` suffixes dropped: a named file is always collected, a named folder
    # is searched for case files. A bare `pytest` run elsewhere (the invocation dir as default) names nothing.
    here = config.invocation_params.dir
    config.stash[NAMED] = set() if config.args_source == pytest.Config.ArgsSource.INVOCATION_DIR else {
        (here / a.split("::")[0]).resolve() for a in config.args}


_CASES_KEY = re.compile(r"""^["']?cases["']?[ \t]*:""", re.MULTILINE)


def _wanted(file_path: Path, config: pytest.Config) -> bool:
    if file_path.suffix not in (".yaml", ".yml"):
        return False
    path = file_path.resolve()
    if path in config.stash[NAMED]:
        return True  # named: always a case file, so that a bad one reports its schema error
    if path.is_relative_to(config.rootpath.resolve() / "cases"):
        return True  # the project's case folder: every YAML file there is a case file
    if not any(path.is_relative_to(named) for named in config.stash[NAMED]):
        return False
    # Found by searching a named folder: only a case file (a top-level `cases:` key), so that an unrelated
    # YAML file (a CI config, a docker-compose file) under `pytest .` is left alone rather than failed.
    try:
        return bool(_CASES_KEY.search(path.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return True  # unreadable: collected, its item reports why


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if _wanted(file_path, parent.config):
        return CaseFile.from_parent(parent, path=file_path)
    return None


class CaseFile(pytest.File):
    def collect(self):
        # Opened by its absolute path, whatever the current directory; shown to the user (in messages and in
        # the repro command) as a path that works from the directory pytest was invoked in: relative to it when
        # the file lies below it, else absolute.
        here, name = self.config.invocation_params.dir, str(self.path)
        for path, base in ((self.path, here), (self.path.resolve(), here.resolve())):
            if path.is_relative_to(base):
                name = str(path.relative_to(base))
                break
        cases, errors = load_file(self.path, name=name)
        owners = self.config.stash.setdefault(CASE_OWNERS, {})
        for case in list(cases):
            # Ids are unique across the suite, as `validate` and `run` require: a second user of an id is an error.
            if owners.setdefault(case.id, case.file) != case.file:
                errors.append(CaseError(case.file, case.id, "id", f"duplicate id, already used in {owners[case.id]}"))
                cases.remove(case)
        for error in errors:
            yield InvalidCase.from_parent(self, name=f"{error.case or 'file'}[schema]", error=error)
        for case in cases:
            for engine in self.config.stash[ENGINES]:
                yield CaseItem.from_parent(self, name=f"{case.id}[{engine}]", case=case, engine=engine)


class CaseFailure(Exception):
    def __init__(self, result: Result):
        super().__init__(result.message)
        self.result = result


class Disagreement(CaseFailure):
    """The engine ran and its output (shape, dtype, values or an expected fact) is wrong."""


class HarnessError(CaseFailure):
    """An engine or the harness crashed: not a disagreement."""


class KnownBugGone(CaseFailure):
    """The case's known bug was expected here (its condition holds) but the engine agreed: strict XPASS."""

    def __init__(self, result: Result):
        result.message = (f"{result.engine}: XPASS(strict): agrees with the oracle, but the case expects the known "
                          f"bug {result.xfail!r} here; remove the xfail or narrow its condition")
        super().__init__(result)


class CaseItem(pytest.Item):
    def __init__(self, *, case: Case, engine: str, **kwargs):
        super().__init__(**kwargs)
        self.case, self.engine = case, engine
        self.add_marker(getattr(pytest.mark, engine.replace("-", "_")))
        # One case's items share a worker under --dist loadgroup: its reference is computed once.
        self.add_marker(pytest.mark.xdist_group(f"{case.file}::{case.id}"))

    def runtest(self) -> None:
        result = run_one(self.case, self.engine)
        self.user_properties.append(("verdict", result.verdict))
        if result.metrics is not None:
            self.user_properties.append(("max_ratio", result.metrics.max_ratio))
        if result.verdict in ("skip", "rejected"):
            # Reported at the case's YAML line, not at this line of the plugin.
            raise pytest.skip.Exception(result.message, _use_item_location=True)
        if result.verdict == "error":
            raise HarnessError(result)  # a crash never counts as a case's known bug
        # The case's known bug, where its condition holds here (decided at run time, from the facts of the run):
        # strict, so the item must still disagree, and fails once the framework is fixed.
        status = outcome(result.verdict, result.xfail)
        if status == "xfail":
            raise pytest.xfail.Exception(f"{result.xfail} | {result.message}")
        if status == "xpass":
            raise KnownBugGone(result)
        if status != "pass":
            raise Disagreement(result)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CaseFailure):
            r = excinfo.value.result
            text = f"{r.message}\n  repro: {r.repro}"
            if r.notes:
                text += "\n  notes: " + "; ".join(r.notes)
            if r.details:
                text += "\n" + r.details
            return text
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, self.case.line and self.case.line - 1, f"{self.case.id} [{self.engine}]"


class InvalidCase(pytest.Item):
    """A case (or file) that cannot be run as written: fails with the schema error, no traceback."""

    def __init__(self, *, error: CaseError, **kwargs):
        super().__init__(**kwargs)
        self.error = error

    def runtest(self) -> None:
        raise self.error

    def repr_failure(self, excinfo, style=None):
        return f"invalid case: {self.error}"

    def reportinfo(self):
        return self.path, None, f"{self.error.case or self.path.name} [schema]"
