"""(c), (f) and (d) of `make bench`: the shipped suite run with -n 2 against -n 0 and its peak memory, and the
collection of the cases and tests without a framework."""
from __future__ import annotations

import os
import re
import statistics
import tempfile
from typing import Any

from bench_common import FRAMEWORKS, PY, Figure, Run, alternated, check, command_text, failed, median_s, run

SUITE_GOAL = "<= 0.6"   # issue 21
PARALLEL = ["-n", "2"]   # as `make test` runs the cases (the plug-in schedules by case; no --dist mode needed)


def _outcome(run_: Run) -> str:
    lines = [ln.strip("= ") for ln in run_.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", ln)]
    return lines[-1] if lines else f"exit {run_.rc}"


def suite(repeat: int) -> list[Figure]:
    commands = {"serial": [PY, "-m", "pytest", "cases", "-n", "0"],
                "parallel": [PY, "-m", "pytest", "cases", *PARALLEL]}
    runs = alternated(commands, repeat, sample=True)
    serial, parallel = median_s(runs["serial"]), median_s(runs["parallel"])
    ratio = parallel / serial
    cmds = [command_text(c) for c in commands.values()]
    speed = (f"-n 2 is {serial / parallel:.2f} x as fast as -n 0" if parallel < serial else
             f"-n 2 is {parallel / serial:.2f} x SLOWER than -n 0")
    fig_c = Figure("c", "pytest cases -n 2 / -n 0 (2 cores)", ratio, SUITE_GOAL, check(ratio, SUITE_GOAL),
                   f"-n 0 {serial:.1f} s ({_outcome(runs['serial'][-1])}), -n 2 {parallel:.1f} s "
                   f"({_outcome(runs['parallel'][-1])}): {speed}", cmds,
                   {"serial_s": serial, "parallel_s": parallel})
    peak = {k: max(r.maxrss_mb for r in v) for k, v in runs.items()}
    tree = {k: max(r.tree_peak_mb or 0.0 for r in v) for k, v in runs.items()}
    fig_f = Figure("f", "peak memory of the whole suite", max(peak.values()) / 1024, "(stated)", None,
                   f"largest process (maxrss): -n 0 {peak['serial'] / 1024:.2f} GB, -n 2 "
                   f"{peak['parallel'] / 1024:.2f} GB; all processes of the run together (sampled every 0.2 s): "
                   f"-n 0 {tree['serial'] / 1024:.2f} GB, -n 2 {tree['parallel'] / 1024:.2f} GB", cmds,
                   {"maxrss_mb": peak, "tree_peak_mb": tree})
    return [fig_c, fig_f]


COLLECT = """\
import sys, time
import pytest
start = time.perf_counter()
rc = pytest.main(['--collect-only', '-q', '-o', 'addopts=', '-p', 'no:cacheprovider', *sys.argv[1:]])
took = time.perf_counter() - start
loaded = sorted({m.split('.')[0] for m in sys.modules} & set(%r))
print('BENCH', rc, took, ','.join(loaded))
""" % (FRAMEWORKS,)   # noqa: UP031 - the program's own braces (a set) would need doubling in an f-string


def _collect_runs(cmd: list[str], repeat: int, env: dict[str, str] | None) -> dict[str, Any]:
    """``repeat`` runs of the collection program: pytest's own count (median), pytest.main's and the process's
    wall time, the items and the frameworks it imported; or what went wrong."""
    runs = [run(cmd, env=env) for _ in range(repeat)]
    pytest_s, main_s, loaded, items = [], [], "", 0
    for r in runs:
        said = re.search(r"(\d+) tests? collected in ([0-9.]+)s", r.stdout)
        mine = re.search(r"^BENCH (\S+) (\S+) (.*)$", r.stdout, re.MULTILINE)
        if said:
            items = int(said.group(1))
            pytest_s.append(float(said.group(2)))
        if mine:
            main_s.append(float(mine.group(2)))
            loaded = mine.group(3).strip()
    if not pytest_s or not main_s:
        return {"error": failed(runs) or runs[-1].stdout[-300:]}
    return {"pytest_s": statistics.median(pytest_s), "main_s": statistics.median(main_s),
            "process_s": median_s(runs), "items": items, "loaded": loaded}


def collection(repeat: int, quick: bool = False) -> Figure:
    """Collection as a developer's second and later runs see it: Python's bytecode and pytest's rewritten test
    modules cached (in a private cache folder, filled by one untimed run first). Also measured as this environment
    runs it, where a PYTHONDONTWRITEBYTECODE=1 (as some sandboxes and CI images set) makes every run compile and
    assertion-rewrite every harness and test module and hypothesis (a pytest plug-in's package) from source."""
    paths = ["cases"] if quick else ["cases", "tests"]
    cmd = [PY, "-c", COLLECT, *paths]
    no_cache = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        run(cmd, env=env)   # fills the cache
        warm = _collect_runs(cmd, repeat, env)
    as_is = _collect_runs(cmd, repeat, None)
    value = warm.get("pytest_s")
    loaded = ",".join(sorted({m for side in (warm, as_is) for m in side.get("loaded", "").split(",") if m}))
    if value is None:
        text = f"collection failed: {warm['error']}"
    else:
        text = (f"{warm['items']} items ({' and '.join(paths)}) collected in {value:.2f} s as pytest counts it, "
                f"bytecode cached as on any run after the first (pytest.main {warm['main_s']:.2f} s, the whole "
                f"process {warm['process_s']:.2f} s with Python's start and pytest's import); ")
        if "error" in as_is:
            text += f"in this environment as it is: failed ({as_is['error']}); "
        else:
            why = " (PYTHONDONTWRITEBYTECODE set: nothing cached)" if no_cache else ""
            text += (f"in this environment as it is{why}: {as_is['pytest_s']:.2f} s (pytest.main "
                     f"{as_is['main_s']:.2f} s); ")
        text += f"frameworks imported: {loaded or 'none'}"
    met = check(value, "< 1") if not loaded else False
    pytest_cmd = command_text([PY, "-m", "pytest", "--collect-only", "-q", "-o", "addopts=", "-p", "no:cacheprovider",
                               *paths])
    return Figure("d", f"collection of {' and '.join(paths)}, no framework", value, "< 1", met, text,
                  [(f"env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=CACHE {pytest_cmd}  (CACHE: a fresh folder "
                    "filled by one run first)"), f"{pytest_cmd}  (as it is)"],
                  {"items": warm.get("items", 0), "frameworks": loaded, "as_is_s": as_is.get("pytest_s"),
                   "as_is_caches_bytecode": not no_cache})
