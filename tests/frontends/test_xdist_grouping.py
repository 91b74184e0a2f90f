"""Parallel runs (pytest -n 2): the items of one case run in one xdist worker, which computes the case's reference
once; the big cases start first; the workers' BLAS and framework thread pools are sized before they load.

Checked on real runs (subprocesses), since what a pytest or xdist release does with the plugin's scheduler hook
is what matters, not what the hook returns."""
from __future__ import annotations

import json
import os

import pytest
from testkit import CASES, TESTS

from harness.cases.schema import load_file
from harness.cases.sharding import case_cost
from harness.frontends.xdist_scheduling import BIG_CASE_S, case_scope

PLUGINS = (TESTS / "plugins_for_tests.py").read_text()

# Loaded into the run under test with -p: logs, per xdist worker, each item it runs and each reference it
# computes (a call of harness.judge.runner.reference for a case not in its per-process cache), as JSON lines.
RECORDER = '''\
import json
import os

from harness.judge import runner

LOG = os.environ["HARNESS_TEST_LOG"]
WORKER = "main"   # the controller (or a serial run); PYTEST_XDIST_WORKER may be inherited from an outer xdist run


def pytest_configure(config):
    global WORKER
    if hasattr(config, "workerinput"):
        WORKER = config.workerinput["workerid"]


def _log(**record):
    with open(LOG, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"worker": WORKER, **record}) + "\\n")


_reference = runner.reference


def reference(case):
    if (case.file, case.id) not in runner._cache:
        _log(event="reference", case=case.id)
    return _reference(case)


runner.reference = reference


def pytest_runtest_call(item):
    _log(event="item", nodeid=item.nodeid)


def pytest_sessionfinish(session):
    threads = {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                        "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")}
    try:
        from threadpoolctl import threadpool_info

        blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    except ImportError:   # NumPy's wheels bundle OpenBLAS as scipy_openblas: ask it directly
        import ctypes
        import glob

        import numpy

        blas = []
        for lib in glob.glob(os.path.join(os.path.dirname(numpy.__file__) + ".libs", "*openblas*")):
            for symbol in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                           "openblas_get_num_threads64_", "openblas_get_num_threads"):
                fn = getattr(ctypes.CDLL(lib), symbol, None)
                if fn is not None:
                    blas.append(int(fn()))
                    break
    torch_threads = None
    if os.environ.get("HARNESS_TEST_TORCH"):
        import torch

        torch_threads = torch.get_num_threads()
    _log(event="threads", env=threads, blas=blas, torch=torch_threads)
'''

SMALL = "  - {{id: small-{i}, layer: {layer}, input_shape: {shape}, config: {config}, seed: {i}}}\n"
# 64 x 64 x 16 -> 16 filters, 5x5: 65536 outputs x K = 401, 2.6e7 multiply-adds: estimated above BIG_CASE_S, and
# still a fraction of a second in NumPy. Last in the file: scheduled first all the same.
BIG = "  - {id: big, layer: Conv2D, input_shape: [1, 64, 64, 16], config: {filters: 16, kernel_size: 5, padding: same}}\n"


def _cases(n_small: int = 10) -> str:
    kinds = [("Conv1D", "[2, 9, 3]", "{filters: 2, kernel_size: 3, padding: same}"),
             ("DepthwiseConv2D", "[1, 6, 5, 2]", "{kernel_size: 2, depth_multiplier: 2}"),
             ("SeparableConv1D", "[1, 8, 2]", "{filters: 3, kernel_size: 3}")]
    small = "".join(SMALL.format(i=i, layer=kinds[i % 3][0], shape=kinds[i % 3][1], config=kinds[i % 3][2])
                    for i in range(n_small))
    return "cases:\n" + small + BIG


@pytest.fixture
def project(pytester, monkeypatch):
    pytester.makepyfile(plugins_for_tests=PLUGINS, record_runs=RECORDER)
    log = pytester.path / "runs.jsonl"
    monkeypatch.setenv("HARNESS_TEST_LOG", str(log))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                 "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        monkeypatch.delenv(name, raising=False)   # what the plugin sets, not what this process inherited
    return pytester, log


def _run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p",
                                         "record_runs", *args, timeout=180)


def _records(log, event):
    return [r for r in map(json.loads, log.read_text().splitlines()) if r["event"] == event]


def test_the_items_of_a_case_share_a_worker_that_computes_its_reference_once(project):
    pytester, log = project
    pytester.makefile(".yaml", suite=_cases())
    engines = ["--engine", "oracle", "--engine", "plugins_for_tests:correct", "--engine",
               "again=plugins_for_tests:correct"]
    result = _run(pytester, "-n", "2", *engines, "suite.yaml")
    result.assert_outcomes(passed=11 * 3)

    items = _records(log, "item")
    assert len(items) == 33, items
    workers_of: dict[str, set[str]] = {}
    for r in items:
        workers_of.setdefault(case_scope(r["nodeid"]), set()).add(r["worker"])
    split = {case: sorted(w) for case, w in workers_of.items() if len(w) != 1}
    assert not split, f"cases whose items ran on more than one worker: {split}"
    assert {r["worker"] for r in items} == {"gw0", "gw1"}, "both workers should have had cases to run"

    references = _records(log, "reference")
    counts: dict[str, int] = {}
    for r in references:
        counts[r["case"]] = counts.get(r["case"], 0) + 1
    assert counts == {f"small-{i}": 1 for i in range(10)} | {"big": 1}, \
        f"references computed per case: {counts}, but should be one per case"
    for r in references:   # ...in the worker that ran the case's items
        assert workers_of[f"suite.yaml::{r['case']}"] == {r["worker"]}, r

    # The big case, last in the file, is the first work its worker got.
    (worker,) = workers_of["suite.yaml::big"]
    first = [r["nodeid"] for r in items if r["worker"] == worker][:3]
    assert all(n.startswith("suite.yaml::big[") for n in first), f"{worker} began with {first}"


def test_serial_run_keeps_the_file_order_and_one_reference_per_case(project):
    pytester, log = project
    pytester.makefile(".yaml", suite=_cases(4))
    _run(pytester, "--engine", "oracle", "--engine", "plugins_for_tests:correct", "suite.yaml"
         ).assert_outcomes(passed=10)
    order = [case_scope(r["nodeid"]).split("::")[1] for r in _records(log, "item")]
    assert order == [c for c in ("small-0", "small-1", "small-2", "small-3", "big") for _ in range(2)], order
    assert len(_records(log, "reference")) == 5


def test_workers_size_blas_and_framework_threads_before_numpy_loads(project, monkeypatch):
    pytest.importorskip("torch")
    pytester, log = project
    monkeypatch.setenv("HARNESS_TEST_TORCH", "1")
    pytester.makefile(".yaml", suite=_cases(2))
    _run(pytester, "-n", "2", "--engine", "oracle", "suite.yaml").assert_outcomes(passed=3)
    threads = [r for r in _records(log, "threads") if r["worker"] != "main"]   # the controller loaded NumPy first
    assert {r["worker"] for r in threads} == {"gw0", "gw1"}, threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    share = max(1, cores // 2)
    for r in threads:
        assert r["env"] == {"OMP_NUM_THREADS": str(share), "OPENBLAS_NUM_THREADS": str(share),
                            "MKL_NUM_THREADS": str(share), "TF_NUM_INTRAOP_THREADS": str(share)}, r
        assert r["blas"] and set(r["blas"]) == {share}, f"NumPy's BLAS runs {r['blas']} threads in {r['worker']}"
        assert r["torch"] == share, r


def test_a_case_is_its_own_scope_and_its_cost_is_known_at_collection(tmp_path):
    assert case_scope("cases/conv.yaml::k3(strides=2,padding=same)[torch]") == "cases/conv.yaml::k3(strides=2,padding=same)"
    assert case_scope("cases/a.yml::x[y]z[keras]") == "cases/a.yml::x[y]z"
    assert case_scope("cases/a.yaml::file[schema]") == "cases/a.yaml::file"
    assert case_scope("tests/frontends/test_plugin.py::test_x[a.yaml::b[c]]") is None
    assert case_scope("tests/frontends/test_plugin.py::test_x") is None
    (tmp_path / "s.yaml").write_text(_cases(3))
    cases, errors = load_file(tmp_path / "s.yaml")
    assert not errors
    costs = {c.id: case_cost(c) for c in cases}
    assert costs["big"] >= BIG_CASE_S, costs
    assert all(0 < costs[f"small-{i}"] < BIG_CASE_S for i in range(3)), costs
    shipped, _ = load_file(CASES / "worked_examples.yaml")
    big = [c.id for c in shipped if case_cost(c) >= BIG_CASE_S]
    assert big == ["depthwise-big-same"], big


# A plug-in engine that kills its process (SIGSEGV, as a framework's crash would) on one case: run in-process (no
# --engine-python), so the xdist worker running the item dies with it.
CRASHING = '''\
import os
import signal

from plugins_for_tests import correct


def crash_on_c3(layer, config, x, weights):
    if x.shape[0] == 3:   # only small-3 has batch 3
        os.kill(os.getpid(), signal.SIGSEGV)
    return correct(layer, config, x, weights)
'''


@pytest.mark.parametrize("where", ["middle", "last"])
def test_a_crashed_worker_fails_its_item_once_and_the_run_ends(project, where):
    # xdist's LoadScopeScheduling (3.8) put the crashed worker's units back whole: the crashing item ran again
    # (and crashed the next worker), and the run hung on a unit with nothing left to send (CI timed out at 90 min).
    pytester, log = project
    pytester.makepyfile(crashing=CRASHING)
    lines = _cases(6).splitlines(keepends=True)
    crash = next(line for line in lines if "small-3" in line).replace("[2, 9, 3]", "[3, 9, 3]")
    lines = [crash if "small-3" in line else line for line in lines]
    if where == "last":   # the crash comes after every other unit was sent: the other worker is shutting down
        lines = [line for line in lines if line is not crash] + [crash]
    cases = "".join(lines)
    pytester.makefile(".yaml", suite=cases)
    result = _run(pytester, "-n", "2", "--engine", "oracle", "--engine", "crashing:crash_on_c3", "suite.yaml")
    result.assert_outcomes(passed=13, failed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*worker 'gw*' crashed while running 'suite.yaml::small-3*"])
    ran = [r["nodeid"] for r in _records(log, "item")]
    crashing = [n for n in ran if n == "suite.yaml::small-3[crash_on_c3]"]
    assert len(crashing) == 1, f"the crashing item ran {len(crashing)} times: {ran}"
    others = [n for n in ran if n not in crashing]
    assert len(others) == len(set(others)) == 13, f"every other item should run once: {sorted(others)}"


class _Node:
    """What the scheduler uses of xdist's WorkerController: the batches it was sent, and shutdown."""

    def __init__(self, name: str):
        self.name, self.sent, self.shutting_down = name, [], False
        self.gateway = type("Gateway", (), {"id": name})()

    def send_runtest_some(self, indices):
        self.sent.extend(indices)

    def shutdown(self):
        self.shutting_down = True

    def __repr__(self):
        return self.name


def test_the_scheduler_requeues_only_what_a_crashed_worker_had_not_run(pytestconfig, monkeypatch):
    # Driven as xdist's DSession drives it (add_node, add_node_collection, schedule, mark_test_complete,
    # remove_node), with a replacement worker that joins while another's collection comes in.
    pytest.importorskip("xdist")
    from harness.frontends.xdist_scheduling import case_scheduler_class

    monkeypatch.setattr(pytestconfig.option, "dist", "load", raising=False)
    monkeypatch.setattr(pytestconfig.option, "numprocesses", 2, raising=False)
    monkeypatch.setattr(pytestconfig.option, "tx", ["2*popen"], raising=False)
    collection = [f"s.yaml::c{i}[{e}]" for i in range(6) for e in ("oracle", "torch")]
    sched = case_scheduler_class()(pytestconfig)
    a, b = _Node("a"), _Node("b")
    for node in (a, b):
        sched.add_node(node)
        sched.add_node_collection(node, collection)
    sched.schedule()
    assert a.sent == [0, 1, 4, 5] and b.sent == [2, 3, 6, 7], (a.sent, b.sent)   # two cases each, whole
    for index in (2, 3, 6):       # b ran c1 and the first item of c3, then crashed on c3[torch]
        sched.mark_test_complete(b, index)
    assert sched.remove_node(b) == "s.yaml::c3[torch]"
    assert "s.yaml::c3" not in sched.workqueue, "the crashing item must not run again"
    c, d = _Node("c"), _Node("d")  # replacements: c joins, d joins and d's collection comes in before c's
    sched.add_node(c)
    sched.add_node(d)
    sched.add_node_collection(d, collection)
    sched.schedule()              # must not give c work before its collection is in
    assert c.sent == [] and d.sent, (c.sent, d.sent)
    sched.add_node_collection(c, collection)
    sched.schedule()
    done: set[tuple[str, int]] = set()
    while any((n.name, i) not in done for n in (a, c, d) for i in n.sent):   # the workers run all they get
        for node in (a, c, d):
            for index in [i for i in node.sent if (node.name, i) not in done]:
                done.add((node.name, index))
                sched.mark_test_complete(node, index)
    rest = a.sent + c.sent + d.sent
    assert sorted(rest) == [0, 1, 4, 5, 8, 9, 10, 11], f"each item once, none of what b ran or crashed on: {rest}"
    assert sched.tests_finished
