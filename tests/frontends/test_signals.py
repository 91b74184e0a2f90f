"""SIGTERM and SIGINT to `harness run`, `scoreboard --jobs 2`, `fuzz --jobs 2` and `pytest -n 2` end the whole process tree: the
harness, its job processes or xdist workers, their engine workers and whatever those started (none is orphaned)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import engines
# This module is the engine `test_signals:spawning` of the harness processes it starts, imported there with only
# ROOT and HERE on the path: so it imports no helper of tests/ (testkit) and finds the checkout itself.
HERE = Path(__file__).resolve().parent   # tests/frontends/
ROOT = HERE.parents[1]                   # the checkout

SPAWNED = "HARNESS_SIGNALS_TEST_CHILD"   # marks the engine's own child, so the test can tell when it runs

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree in /proc")


def spawning(layer, config, x, weights):
    """A plug-in engine (run in a worker) that starts a child of its own, as a converter's tool might, and then
    hangs: the harness is mid-run when the test signals it."""
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", SPAWNED])
    time.sleep(300)
    raise AssertionError("the signal never came")


# ---------------------------------------------------------------- the process tree, from /proc
def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = text.rsplit(")", 1)[1].split()[:2]
    return state, int(ppid)


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                children.setdefault(stat[1], []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in "ZX"   # a zombie has ended: only its parent has not reaped it yet


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def _spawned(pids: set[int]) -> list[int]:
    return [p for p in pids if SPAWNED in _cmdline(p)]


# ---------------------------------------------------------------- the commands
def _files(tmp_path: Path) -> Path:
    cases = "".join(f"  - {{id: c{i}, layer: DepthwiseConv2D, input_shape: [1, 5, 5, 2], config: {{kernel_size: 3}}, "
                    f"seed: {i}}}\n" for i in range(4))
    path = tmp_path / "cases.yaml"
    path.write_text("cases:\n" + cases)
    return path


ENGINES = ["--engine", "oracle", "--engine", "sp=test_signals:spawning", "--engine-python", f"sp={sys.executable}"]
COMMANDS = {   # command line, and how many engine workers (each with its child) it has once it is under way
    "run": (lambda tmp: [sys.executable, "-m", "harness", "run", str(_files(tmp)), *ENGINES], 1),
    "scoreboard --jobs 2": (lambda tmp: [sys.executable, "-m", "harness", "scoreboard", str(_files(tmp)), *ENGINES,
                                         "--jobs", "2", "--out", str(tmp / "out")], 2),
    "fuzz --jobs 2": (lambda tmp: [sys.executable, "-m", "harness", "fuzz", "--examples", "4", "--jobs", "2",
                                   "--layer", "Conv1D", "--dtype", "float32", *ENGINES], 2),
    "pytest -n 2": (lambda tmp: [sys.executable, "-m", "pytest", str(_files(tmp)), "-n", "2", "-p", "no:cacheprovider",
                                 "-q", *ENGINES], 2),
}


# SIGTERM and SIGINT to each command, sent to its pid alone (`kill PID`; none of its children is signalled);
# SIGKILL, which no process can handle, where a process of the harness's own is the parent of engine workers.
SIGNALLED = [(c, s) for c in COMMANDS for s in (signal.SIGTERM, signal.SIGINT)] + \
    [("run", signal.SIGKILL), ("scoreboard --jobs 2", signal.SIGKILL), ("fuzz --jobs 2", signal.SIGKILL)]


@pytest.mark.parametrize("command, signum", SIGNALLED, ids=[f"{c}-{s.name}" for c, s in SIGNALLED])
def test_a_signal_ends_the_whole_process_tree(tmp_path, command, signum):
    make, workers = COMMANDS[command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop(engines.PYTHONS_VARIABLE, None)
    proc = subprocess.Popen(make(tmp_path), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)   # no signal of ours reaches it
    tree: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(_spawned(tree)) < workers:   # every engine worker has started its child: the tree is whole
            assert proc.poll() is None, f"{command} ended early:\n{proc.stdout.read().decode()}"
            assert time.monotonic() < deadline, f"{command}: the engines' children never started; tree {tree}"
            time.sleep(0.1)
            tree = _descendants(proc.pid)
        time.sleep(0.3)
        tree |= _descendants(proc.pid)
        os.kill(proc.pid, signum)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{command} still ran 15 s after {signum.name}")
        deadline = time.monotonic() + 5
        while any(map(_alive, tree)) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = {p: _cmdline(p) for p in tree if _alive(p)}
        assert not left, f"{command}: after {signum.name}, {len(left)} of its {len(tree)} processes survive: {left}"
    finally:
        for pid in [proc.pid, *tree]:   # never leave a test's processes behind on a shared machine
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        proc.wait()

