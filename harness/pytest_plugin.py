"""pytest plugin: YAML case files become one item per (case, engine); failures read as domain messages."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from .runner import Result, run_one
from .schema import Case, CaseError, load_file
from .selection import select_engines


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "convolution equivalence harness")
    group.addoption("--engine", action="append", default=[], metavar="NAME|[NAME=]MODULE:CALLABLE",
                    help="restrict to a built-in engine (oracle, keras, torch) or add a plug-in engine "
                         "fn(layer, config, x, weights) -> y; repeatable")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        # xdist already puts one worker on each core; framework thread pools on top only contend
        # (torch: 10-40 ms per tiny conv with 2 threads vs 1-2 ms with 1). Read before any framework loads.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        config._harness_engines = select_engines(config.getoption("engine"))
    except (ValueError, ImportError) as exc:
        raise pytest.UsageError(str(exc)) from exc
    for engine in config._harness_engines:
        config.addinivalue_line("markers", f"{engine.replace('-', '_')}: items run by the {engine} engine")
    config._harness_named = {Path(a.split("::")[0]).resolve() for a in config.args}


def _wanted(file_path: Path, config: pytest.Config) -> bool:
    if file_path.suffix not in (".yaml", ".yml"):
        return False
    if file_path.resolve() in config._harness_named:
        return True
    try:
        rel = file_path.resolve().relative_to(config.rootpath.resolve())
    except ValueError:
        return False
    return rel.parts[:1] == ("cases",)


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if _wanted(file_path, parent.config):
        return CaseFile.from_parent(parent, path=file_path)
    return None


class CaseFile(pytest.File):
    def collect(self):
        cases, errors = load_file(self.path.relative_to(self.config.rootpath)
                                  if self.path.is_relative_to(self.config.rootpath) else self.path)
        owners: dict[str, str] = self.config.__dict__.setdefault("_harness_ids", {})
        for case in list(cases):
            # Ids are unique across the suite, as `validate` and `run` require: a second user of an id is an error.
            if owners.setdefault(case.id, case.file) != case.file:
                errors.append(CaseError(case.file, case.id, "id", f"duplicate id, already used in {owners[case.id]}"))
                cases.remove(case)
        for error in errors:
            yield InvalidCase.from_parent(self, name=f"{error.case or 'file'}[schema]", error=error)
        for case in cases:
            for engine in self.config._harness_engines:
                yield CaseItem.from_parent(self, name=f"{case.id}[{engine}]", case=case, engine=engine)


class CaseFailure(Exception):
    def __init__(self, result: Result):
        super().__init__(result.message)
        self.result = result


class Disagreement(CaseFailure):
    """The engine ran and its output (shape, dtype, values or an expected fact) is wrong."""


class HarnessError(CaseFailure):
    """An engine or the harness crashed: not a disagreement."""


class CaseItem(pytest.Item):
    def __init__(self, *, case: Case, engine: str, **kwargs):
        super().__init__(**kwargs)
        self.case, self.engine = case, engine
        self.add_marker(getattr(pytest.mark, engine.replace("-", "_")))
        # One case's items share a worker under --dist loadgroup: its reference is computed once.
        self.add_marker(pytest.mark.xdist_group(f"{case.file}::{case.id}"))
        if engine in case.xfail:
            # Strict: the known bug must still show; once the framework fixes it, the XPASS fails the run.
            self.add_marker(pytest.mark.xfail(reason=case.xfail[engine], strict=True, raises=Disagreement))

    def runtest(self) -> None:
        result = run_one(self.case, self.engine)
        self.user_properties.append(("verdict", result.verdict))
        if result.metrics is not None:
            self.user_properties.append(("max_ratio", result.metrics.max_ratio))
        if result.verdict in ("skip", "rejected"):
            # Reported at the case's YAML line, not at this line of the plugin.
            raise pytest.skip.Exception(result.message, _use_item_location=True)
        if result.verdict == "error":
            raise HarnessError(result)  # a crash never counts as a case's known bug (xfail raises=Disagreement)
        if result.verdict != "pass":
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
