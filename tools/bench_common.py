"""What every figure of `make bench` (tools/bench.py) shares: running a command and measuring it, the Figure, and
the machine and its load as printed."""
from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

K = TypeVar("K", bound=Hashable)   # how a caller names its commands
ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
FRAMEWORKS = ("tensorflow", "keras", "torch", "jax")

SUBSET = ["cases/conv.yaml", "cases/depthwise.yaml", "cases/separable.yaml"]   # (a), (e): small shipped cases
QUICK_SUBSET = ["cases/conv.yaml"]
QUICK_CASES = 4                                                                # the first cases of QUICK_SUBSET


def command_text(cmd: list[str]) -> str:
    """A command as it can be pasted, with paths relative to the repository where they lie in it."""
    out = []
    for part in cmd:
        p = str(part)
        if p == PY:
            p = os.path.relpath(PY, ROOT) if PY.startswith(str(ROOT)) else p
        elif p.startswith(str(ROOT) + os.sep):
            p = os.path.relpath(p, ROOT)
        out.append(shlex.quote(p))
    return " ".join(out)


# ---- running and measuring a command --------------------------------------------------------------------------

@dataclass
class Run:
    cmd: list[str]
    wall_s: float
    rc: int
    maxrss_mb: float             # the largest single process of the run (getrusage of the waited-for tree)
    tree_peak_mb: float | None   # the most its processes held together, sampled every 0.2 s (None: not sampled)
    stdout: str = ""
    stderr: str = ""


def _children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (read from /proc; empty where /proc is not Linux's)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as fh:
                    stat = fh.read()
                parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        frontier += kids
    return out


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm", encoding="utf-8") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def run(cmd: list[str], sample: bool = False, env: dict[str, str] | None = None, timeout_s: float = 3600) -> Run:
    """Run ``cmd`` in the repository; wall time, exit status, peak memory (and the tree's, sampled)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, env=env)
        peak = [0.0]
        done = threading.Event()

        def sampler() -> None:
            while not done.wait(0.2):
                pids = [proc.pid, *_children(proc.pid)]
                peak[0] = max(peak[0], sum(rss_mb(p) for p in pids))

        thread = threading.Thread(target=sampler, daemon=True) if sample else None
        if thread:
            thread.start()
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)   # rusage of the child and of its waited-for descendants
        finally:
            timer.cancel()
            done.set()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if thread:
            thread.join()
        out.seek(0)
        err.seek(0)
        return Run(cmd, wall, proc.returncode, usage.ru_maxrss / 1024, peak[0] if sample else None,
                   out.read(), err.read())


def alternated(commands: Mapping[K, list[str]], repeat: int, sample: bool = False) -> dict[K, list[Run]]:
    """Each command ``repeat`` times, alternated (a, b, a, b, ...), so that a load change hits both alike."""
    runs: dict[K, list[Run]] = {k: [] for k in commands}
    for _ in range(repeat):
        for key, cmd in commands.items():
            runs[key].append(run(cmd, sample=sample))
    return runs


def median_s(runs: list[Run]) -> float:
    return statistics.median(r.wall_s for r in runs)


def failed(runs: list[Run]) -> str:
    bad = [r for r in runs if r.rc != 0]
    if not bad:
        return ""
    tail = (bad[0].stderr.strip() or bad[0].stdout.strip()).splitlines()[-3:]
    return f"exit {bad[0].rc}: " + " | ".join(tail)

# ---- the figures ------------------------------------------------------------------------------------------------


@dataclass
class Figure:
    key: str
    title: str
    value: float | None
    goal: str                      # e.g. "<= 1.25"
    met: bool | None
    text: str                      # the measurement in words
    commands: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def check(value: float | None, goal: str) -> bool | None:
    if value is None:
        return None
    op, limit = goal.split()
    return {"<=": value <= float(limit), "<": value < float(limit)}[op]


def last_json(r: Run) -> Any:
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---- output -----------------------------------------------------------------------------------------------------

def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            mem = f", {int(fh.readline().split()[1]) / 2**20:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs{mem}, Python {platform.python_version()}"


def load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def verdict(f: Figure) -> str:
    return {True: "meets goal", False: "MISSES goal", None: ""}[f.met]


def format_figure(f: Figure) -> str:
    unit = {"d": " s", "e": " s", "f": " GB"}.get(f.key, "")
    value = "-" if f.value is None else f"{f.value:.2f}{unit}"
    goal = f"goal {f.goal}{unit}" if f.goal[0] in "<>" else f.goal
    lines = [f"({f.key}) {f.title}: {value}  [{goal}] {verdict(f)}".rstrip(), f"    {f.text}"]
    lines += [f"    $ {c}" for c in f.commands]
    return "\n".join(lines)
