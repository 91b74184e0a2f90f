"""pytest plugin: YAML case files become one item per (case, engine); failures read as domain messages."""
from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import pytest

from ..cases.schema import Case
from ..cases.selection import select_engines
from ..cases.stacks import StackCase
from ..cases.suite import load_suite_file, looks_like_case_file
from ..diagnosis.diagnose import Diagnoser
from ..engines.worker import die_of, end_with_parent, end_workers_on
from ..errors import CaseError
from ..judge.runner import Result, item_label, outcome, run_one
from ..known.facts import request_onednn
from ..tensors.files import TensorSource
from .model_item import ModelItem
from .xdist_scheduling import CASE_SCHEDULED_DIST, case_scheduler_class, longest_first

# Deterministic sharding (--shard I/N) lives in its own module; loaded with this plugin.
pytest_plugins = ["harness.frontends.shard"]

# This plugin's state on pytest's config (pytest's stash: typed keys, no private attributes).
ENGINES = pytest.StashKey[list]()      # the engines this run selected
NAMED = pytest.StashKey[set]()         # the paths named on the command line
CASE_OWNERS = pytest.StashKey[dict]()  # case id -> the file that defined it (a duplicate id is an error)
DIAGNOSER = pytest.StashKey[Diagnoser]()   # failure messages name the known mistake that reproduces the output

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


# The variables that size the thread pools of the BLAS NumPy loads (OpenBLAS, MKL, Accelerate), of torch (OpenMP)
# and of TensorFlow (its intra-op and inter-op pools). Each library reads its variable once, when it loads.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


def worker_threads(workers: int) -> int:
    """Threads each of ``workers`` xdist workers may use: its share of this process's cores, at least one."""
    return max(1, _cpu_count() // max(1, workers))


def _limit_worker_threads(config: pytest.Config) -> None:
    """Size the thread pools of xdist workers to their share of the cores, before any worker starts.

    A worker imports NumPy (this plugin does) before its own pytest_configure runs, and OpenBLAS sizes its pool
    when it loads: set in the worker, the variables come too late. Set here, in the controller, before xdist
    starts the workers, they are inherited (each worker is a fresh process started with this environment).
    Variables the user set are kept. Over-subscribed pools only contend: torch took 12-20 ms per tiny conv with
    2 threads in each of 2 workers on 2 cores, 1.2 ms with 1."""
    if hasattr(config, "workerinput"):
        # A worker started some other way (--tx): too late for NumPy's BLAS, in time for the frameworks.
        for name in THREAD_VARIABLES:
            os.environ.setdefault(name, "1")
        return
    if getattr(config.option, "dist", "no") == "no":
        return
    workers = len(getattr(config.option, "tx", None) or ())
    if workers:
        threads = str(worker_threads(workers))
        for name in THREAD_VARIABLES:
            os.environ.setdefault(name, threads)


def _end_workers_with_pytest() -> None:
    """Engine workers never outlive pytest: on SIGTERM (whose default action runs no atexit) they are killed
    before pytest dies of it, and an xdist worker whose controller is gone kills its own and exits."""
    import signal

    end_workers_on((signal.SIGTERM, signal.SIGHUP), die_of)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        end_with_parent()


# The pids of this controller's xdist workers (pytest_xdist_newgateway).
_XDIST_WORKERS: set[int] = set()


def _local_pid(gateway) -> int | None:
    # execnet's popen gateway keeps its subprocess.Popen; another transport (ssh, socket) has no local pid.
    pid = getattr(getattr(getattr(gateway, "_io", None), "popen", None), "pid", None)
    return pid if isinstance(pid, int) else None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_newgateway(gateway) -> None:
    pid = _local_pid(gateway)
    if pid is not None:
        _XDIST_WORKERS.add(pid)
    if len(_XDIST_WORKERS) == 1:
        _interrupt_ends_xdist_workers()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    # A worker that ended (or crashed and was replaced) is forgotten: its pid may be reused by another process.
    _XDIST_WORKERS.discard(_local_pid(getattr(node, "gateway", None)) or -1)


def _interrupt_ends_xdist_workers() -> None:
    """SIGINT to the controller alone (`kill -INT`, a supervisor) ends its xdist workers at once (SIGTERM: each
    kills its engine workers and dies), then interrupts the controller as usual. xdist would instead ask each
    worker to finish and wait 10 s for one stuck in an engine call before killing it, orphaning the engine's
    children until their parent-watch saw it. Ctrl-C in a terminal signals the workers too: nothing changes."""
    import signal

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return   # someone else's handler: theirs to keep

    def interrupt(signum: int, frame) -> None:
        for pid in list(_XDIST_WORKERS):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                _XDIST_WORKERS.discard(pid)
        signal.default_int_handler(signum, frame)

    try:
        signal.signal(signal.SIGINT, interrupt)
    except ValueError:   # not the main thread
        pass


def pytest_configure(config: pytest.Config) -> None:
    _limit_worker_threads(config)
    _end_workers_with_pytest()
    try:
        request_onednn(config.getoption("tf_onednn"))   # before any engine imports TensorFlow (workers inherit it)
    except ValueError as exc:
        raise pytest.UsageError(f"--tf-onednn: {exc}") from exc
    config.stash[DIAGNOSER] = Diagnoser()
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


# A framework's import leaves millions of objects that live as long as the process (TensorFlow's alone is most of
# them), and every full collection of the cyclic GC walks them all: 0.2-0.3 s each, a dozen or so in a run of the
# cases (Python's own as allocations pile up, and pytest's at the end, which looks for unraisable exceptions).
# Once an item has imported that much, they are collected once and frozen (gc.freeze: kept out of every later
# collection); what the items allocate afterwards is collected as before.
FREEZE_AFTER_MODULES = 200   # modules imported since the last freeze (TensorFlow: thousands; torch: hundreds)
_modules_at_freeze = len(sys.modules)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    global _modules_at_freeze
    if len(sys.modules) - _modules_at_freeze >= FREEZE_AFTER_MODULES:
        gc.collect()   # the garbage of the items so far is collected, not frozen
        gc.freeze()
        _modules_at_freeze = len(sys.modules)


# hypothesis's plug-in (a pytest11 entry point) imports hypothesis in its terminal summary, whether or not any test
# used it: through pytest's assertion rewriter, which rewrites every module of a plug-in's distribution from source
# (nothing cached under PYTHONDONTWRITEBYTECODE), 0.7 s of CPU at the end of every run of the cases alone.
HYPOTHESIS_PLUGIN = "hypothesispytest"
HYPOTHESIS_REPORT_KEYS = ("_hypothesis_stats", "_hypothesis_failing_examples")   # what its summary prints from


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Before the terminal summary (which the terminal reporter writes after every pytest_sessionfinish): when
    hypothesis's summary has nothing to say, its plug-in is unregistered so that it does not import hypothesis.
    It has nothing to say when hypothesis never ran here (not imported: nothing observed) and no report, a worker's
    included, carries its statistics or a failing example, and its statistics were not asked for."""
    config = session.config
    plugin = config.pluginmanager.get_plugin(HYPOTHESIS_PLUGIN)
    if plugin is None or "hypothesis" in sys.modules or config.getoption("hypothesis_show_statistics", False):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    for reports in getattr(reporter, "stats", {}).values():
        for report in reports:
            if any(key in getattr(report, "__dict__", ()) for key in HYPOTHESIS_REPORT_KEYS):
                return
    config.pluginmanager.unregister(plugin)


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
    # Found by searching a named folder: only a case file (a top-level `cases:` or `stacks:` key), so that an
    # unrelated YAML file (a CI config, a docker-compose file) under `pytest .` is left alone rather than failed;
    # an unreadable one is collected, its item reports why.
    return looks_like_case_file(path)


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
        # The one loader every entry point uses (harness.cases.suite.load_suite_file): cases and stacks, ids unique
        # across the suite as `validate` and `run` require (a second user of an id is an error).
        owners = self.config.stash.setdefault(CASE_OWNERS, {})
        suite = load_suite_file(self.path, name=name, owners=owners)
        cases, stacks = suite.cases, suite.stacks
        for error in suite.errors:
            yield InvalidCase.from_parent(self, name=f"{error.case or 'file'}[schema]", error=error)
        for case in cases:
            for check in case.check:
                for engine in self.config.stash[ENGINES]:
                    # The backward check's items are CASE[ENGINE:backward], beside CASE[ENGINE] (forward).
                    yield CaseItem.from_parent(self, name=f"{case.id}[{item_label(engine, check)}]", case=case,
                                               engine=engine, check=check)
        for one in stacks:
            for engine in self.config.stash[ENGINES]:
                yield StackItem.from_parent(self, name=f"{one.id}[{engine}]", case=one, engine=engine)
        for entry in suite.models:   # Keras against the user's port: one item, whatever the engines
            yield ModelItem.from_parent(self, name=f"{entry.id}[diff]", entry=entry)


# ---------------------------------------------------------------- xdist: one case per worker, longest first
# (the scheduler and its crash recovery: harness/frontends/xdist_scheduling.py)

@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # Only in xdist workers (each collects the same items and orders them the same way, as xdist requires): a
    # serial run keeps the order of the files.
    if hasattr(config, "workerinput"):
        items[:] = longest_first(items, lambda item: item.case if isinstance(item, CaseItem) else None)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getoption("dist") not in CASE_SCHEDULED_DIST:
        return None
    return case_scheduler_class()(config, log)


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
    def __init__(self, *, case: Case | StackCase, engine: str, check: str = "forward", **kwargs):
        super().__init__(**kwargs)
        self.case, self.engine, self.check = case, engine, check
        self.add_marker(getattr(pytest.mark, engine.replace("-", "_")))
        # Under xdist, one case's items share a worker (CaseScheduling, above): its reference is computed once.

    def runtest(self) -> None:
        result = run_one(self.case, self.engine, self.check, self.config.stash[DIAGNOSER])
        if result.verdict == "error":
            _check_tensor_files(self.case)   # a tensor file at fault is the user's mistake: one line
        self.user_properties.append(("verdict", result.verdict))
        if result.metrics is not None:
            self.user_properties.append(("max_ratio", result.metrics.max_ratio))
        if result.layer_metrics:   # a stack: each layer's error/bound, up to the culprit
            self.user_properties.append(("layer_ratios", [m.max_ratio for m in result.layer_metrics]))
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
        if isinstance(excinfo.value, CaseError):   # the user's mistake, found when the case ran: one line
            return f"invalid case: {excinfo.value}"
        if isinstance(excinfo.value, pytest.xfail.Exception):
            # pytest shows an xfail by its reason; formatting the traceback it never shows read and parsed the
            # source of every frame (0.4 s per xfail item).
            return str(excinfo.value)
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
        suffix = "" if self.check == "forward" else f" {self.check}"
        return self.path, self.case.line and self.case.line - 1, f"{self.case.id} [{self.engine}{suffix}]"


class StackItem(CaseItem):
    """One (stack, engine): run as a case (run_one), every layer's output judged in order against the oracle's
    composition; a failure names the first layer over its bound, the culprit."""

    def reportinfo(self):
        return self.path, self.case.line and self.case.line - 1, f"{self.case.id} [{self.engine}] stack"


def _check_tensor_files(case: Case | StackCase) -> None:
    """After an item's error: read the tensor files its case names again, so that one the schema could not fault
    without reading it whole (a body shorter than its header says) fails the item as an invalid case (CaseError:
    one line, as at collection) instead of as a harness error with an internal traceback. A stack's are its
    layers'."""
    if isinstance(case, StackCase):
        for layer in case.layers:
            _check_tensor_files(layer.case)
        return
    for spec in (case.input, *case.weights.values(), getattr(case, "grad_output", None)):
        if isinstance(spec, TensorSource):
            spec.load()


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
