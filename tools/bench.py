"""`make bench`: what the harness costs on this machine, measured in one run, each figure against its goal.

    python tools/bench.py [--quick] [--no-suite] [--repeat N] [--json FILE]

(a) harness overhead: `python -m harness run` (and `pytest -n 0`) on a fixed subset of the shipped cases against a
    bare script (tools/bench_bare.py) making the same Keras and PyTorch calls on the same inputs; goal <= 1.25.
(b) the float64 oracle against torch float64 conv2d (with groups) on the big worked example
    (cases/worked_examples.yaml depthwise-big-same) and on a large SeparableConv2D and a large Conv2D defined here:
    their calls interleaved in one process (best of up to 3 rounds), and each one's peak memory in a fresh process
    of its own; goal <= 2.
(c) `pytest cases -n 2` (as `make test` runs the cases) against `-n 0` on the shipped suite, every engine; goal
    <= 0.65 on 2 cores (--no-suite skips it: the suite takes minutes).
(d) collecting the cases and the tests (pytest --collect-only), without importing a framework; goal < 1 s. As
    any run after the first sees it (bytecode cached, in a private folder); also printed as this environment
    runs it (where PYTHONDONTWRITEBYTECODE=1 every run compiles and rewrites every test and harness module).
(e) writing the report (results.json + index.html) of 1000 cases: the subset's real records and pictures repeated
    to 1000 cases, as tests/test_report_browser.py does; goal < 15 s and a page < 10 MB.
(f) peak memory of the whole suite: the largest process of the runs of (c) (maxrss), and the most that the run's
    processes held together (sampled).

Every figure is printed with the command it came from. Wall times are medians of --repeat runs, alternated between
the two sides of a ratio; on a machine shared with other jobs they are noisy (the load average is printed).
--quick is a smoke test (tests/test_bench.py): a few small cases, small layers, torch only, no suite run, the
cases alone collected.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
BARE = ROOT / "tools" / "bench_bare.py"
FRAMEWORKS = ("tensorflow", "keras", "torch", "jax")

SUBSET = ["cases/conv.yaml", "cases/depthwise.yaml", "cases/separable.yaml"]   # (a), (e): small shipped cases
QUICK_SUBSET = ["cases/conv.yaml"]
QUICK_CASES = 4                                                                # the first cases of QUICK_SUBSET

# (b): the big worked example, and two large layers of the other families (defined here, not shipped cases).
BIG = [
    {"name": "depthwise-big-same", "file": "cases/worked_examples.yaml", "id": "depthwise-big-same"},
    {"name": "separable-large", "entry": {
        "layer": "SeparableConv2D", "input_shape": [8, 64, 64, 64],
        "config": {"filters": 128, "kernel_size": 5, "depth_multiplier": 2, "padding": "same"}}},
    {"name": "conv2d-large", "entry": {
        "layer": "Conv2D", "input_shape": [8, 64, 64, 64],
        "config": {"filters": 128, "kernel_size": 3, "padding": "same"}}},
]
QUICK_BIG = [
    {"name": "depthwise-small", "entry": {
        "layer": "DepthwiseConv2D", "input_shape": [2, 16, 16, 8],
        "config": {"kernel_size": 5, "depth_multiplier": 2, "padding": "same"}}},
    {"name": "separable-small", "entry": {
        "layer": "SeparableConv2D", "input_shape": [2, 16, 16, 8],
        "config": {"filters": 16, "kernel_size": 5, "depth_multiplier": 2, "padding": "same"}}},
    {"name": "conv2d-small", "entry": {
        "layer": "Conv2D", "input_shape": [2, 16, 16, 8], "config": {"filters": 16, "kernel_size": 3,
                                                                     "padding": "same"}}},
]


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


def _rss_mb(pid: int) -> float:
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
                peak[0] = max(peak[0], sum(_rss_mb(p) for p in pids))

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


def alternated(commands: dict[str, list[str]], repeat: int, sample: bool = False) -> dict[str, list[Run]]:
    """Each command ``repeat`` times, alternated (a, b, a, b, ...), so that a load change hits both alike."""
    runs: dict[str, list[Run]] = {k: [] for k in commands}
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


def prepare_bare(paths: list[str], ids: list[str] | None, folder: Path) -> tuple[Path, Path, int]:
    """SPEC.json and ARRAYS.npz of the cases (the harness's own inputs: the same values in both runs)."""
    import numpy as np

    from harness.judge.runner import make_inputs
    from harness.cases.selection import load_cases

    cases, _ = load_cases(paths, ids)
    spec, arrays = [], {}
    for i, case in enumerate(cases):
        inputs = make_inputs(case)
        names = list(case.geometry.weight_shapes())

        def plain(a):
            return a.astype(np.float32) if str(a.dtype) == "bfloat16" else a

        arrays[f"x{i}"] = plain(inputs.x)
        for j, name in enumerate(names):
            arrays[f"w{i}_{j}"] = plain(inputs.weights[name])
        spec.append({"id": case.id, "layer": case.layer, "config": case.config, "dtype": case.dtype,
                     "weights": names})
    spec_path, arrays_path = folder / "bare_spec.json", folder / "bare_arrays.npz"
    spec_path.write_text(json.dumps({"cases": spec}))
    np.savez(arrays_path, **arrays)
    return spec_path, arrays_path, len(cases)


def overhead(quick: bool, repeat: int, folder: Path) -> Figure:
    paths = QUICK_SUBSET if quick else SUBSET
    ids = None
    if quick:
        from harness.cases.selection import load_cases

        ids = [c.id for c in load_cases(paths)[0][:QUICK_CASES]]
    engines = ["torch"] if quick else ["keras", "torch"]
    spec, arrays, n = prepare_bare(paths, ids, folder)
    case_args = [a for i in ids or [] for a in ("--case", i)]
    # The built-in engines named: whatever else is installed, the harness runs what the bare script runs (+ oracle).
    engine_args = [a for e in ["oracle", *engines] for a in ("--engine", e)]
    commands = {
        "harness": [PY, "-m", "harness", "run", *paths, *case_args, *engine_args],
        "bare": [PY, str(BARE), str(spec), str(arrays), "--engines", ",".join(engines)],
    }
    if not quick:   # pytest on the same files (the cases' items only, every engine)
        commands["pytest"] = [PY, "-m", "pytest", *paths, "-n", "0", "-q", "-p", "no:cacheprovider", *engine_args]
    runs = alternated(commands, repeat)
    bare = median_s(runs["bare"])
    ratio = median_s(runs["harness"]) / bare
    text = (f"{n} cases ({' '.join(paths)}{', first ' + str(QUICK_CASES) if quick else ''}); harness run "
            f"{median_s(runs['harness']):.2f} s vs bare {bare:.2f} s ({'+'.join(engines)} calls only; the harness "
            "also runs the float64 oracle, the gauge, the bound and the judging)")
    extra = {"harness_s": median_s(runs["harness"]), "bare_s": bare, "cases": n}
    if "pytest" in runs:
        extra["pytest_s"] = median_s(runs["pytest"])
        extra["pytest_ratio"] = extra["pytest_s"] / bare
        text += f"; pytest -n 0 {extra['pytest_s']:.2f} s = {extra['pytest_ratio']:.2f} x bare"
    bad = "; ".join(f"{k}: {failed(v)}" for k, v in runs.items() if failed(v) and k != "harness")
    if bad:
        text += f" [{bad}]"
    try:
        extra["bare_result"] = json.loads(runs["bare"][-1].stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        pass
    return Figure("a", "harness wall time / bare script", ratio, "<= 1.25", check(ratio, "<= 1.25"), text,
                  [command_text(c) for c in commands.values()], extra)


# (b) ----------------------------------------------------------------------------------------------------------

def _case_of(spec: dict[str, Any]):
    if "file" in spec:
        from harness.cases.selection import load_cases

        return load_cases([str(ROOT / spec["file"])], [spec["id"]])[0][0]
    from harness.cases.schema import case_from_entry

    return case_from_entry("bench", {"id": spec["name"], **spec["entry"]})[0]


def _torch_forward(torch, case, x64, w64):
    """The case's layer (channels_last 2D, linear) in torch float64: F.pad for 'same', conv2d with groups."""
    import numpy as np

    from harness.layers.padding import pad_amounts

    F = torch.nn.functional
    g = case.geometry
    spatial = x64.shape[1:-1]
    pads = [pad_amounts(g.padding, n, k, s, d) for n, k, s, d in zip(spatial, g.kernel_size, g.strides, g.dilation)]
    flat = [p for pair in reversed(pads) for p in pair]
    xt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x64, -1, 1)))   # NCHW, as a torch user holds it
    kind = case.layer
    if kind.startswith("Conv"):
        w = torch.from_numpy(np.ascontiguousarray(np.moveaxis(w64["kernel"], (-1, -2), (0, 1))))
        layers = [(w, w64.get("bias"), g.groups)]
    else:
        dw = w64["depthwise_kernel" if kind.startswith("Separable") else "kernel"]
        c, m = dw.shape[-2:]
        w = torch.from_numpy(np.ascontiguousarray(np.moveaxis(dw.reshape(*dw.shape[:-2], c * m), -1, 0)[:, None]))
        if kind.startswith("Separable"):
            pw = torch.from_numpy(np.ascontiguousarray(np.moveaxis(w64["pointwise_kernel"], (-1, -2), (0, 1))))
            layers = [(w, None, c), (pw, w64.get("bias"), 1)]
        else:
            layers = [(w, w64.get("bias"), c)]
    layers = [(w, None if b is None else torch.from_numpy(b), groups) for w, b, groups in layers]

    def forward():
        with torch.no_grad():
            y = F.pad(xt, flat) if any(flat) else xt
            for i, (w, b, groups) in enumerate(layers):
                y = F.conv2d(y, w, b, stride=g.strides if i == 0 else 1, dilation=g.dilation if i == 0 else 1,
                             groups=groups)
            return y

    return forward


def _ops(impls: list[str], spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(the case, implementation -> a call computing the layer) on the case's own inputs."""
    from harness.reference import oracle
    from harness.judge.runner import make_inputs

    case = _case_of(spec)
    inputs = make_inputs(case)
    x64, w64 = inputs.x64, inputs.weights64
    ops: dict[str, Any] = {}
    for impl in impls:
        if impl == "oracle":
            ops[impl] = lambda: oracle.run(case.layer, case.config, x64, w64)
        elif impl == "oracle+gauge":   # the reference's two float64 passes, each made whole

            def both():
                y = oracle.run(case.layer, case.config, x64, w64)
                oracle.gauge(case.layer, case.config, x64, w64)
                return y

            ops[impl] = both
        elif impl == "torch":
            import torch

            ops[impl] = _torch_forward(torch, case, x64, w64)
        else:
            raise ValueError(f"unknown implementation {impl!r}")
    return case, ops


def _size(y: Any) -> int:
    return int(y.numel() if hasattr(y, "numel") else y.size)


def measure_times(impls: list[str], spec: dict[str, Any], budget_s: float = 30.0) -> dict[str, Any]:
    """Every implementation's best time, their calls interleaved (a, b, c, a, b, c, ...) in one process, so that
    the load of other jobs hits them alike: up to 3 rounds, while the rounds so far took under ``budget_s``."""
    case, ops = _ops(impls, spec)
    times: dict[str, list[float]] = {impl: [] for impl in impls}
    outputs = 0
    started = time.perf_counter()
    while len(times[impls[0]]) < 3 and (not times[impls[0]] or time.perf_counter() - started < budget_s):
        for impl in impls:
            start = time.perf_counter()
            y = ops[impl]()
            times[impl].append(time.perf_counter() - start)
            outputs = _size(y)
            del y
    return {"seconds": {impl: min(t) for impl, t in times.items()}, "rounds": len(times[impls[0]]),
            "outputs": outputs, "k": case.geometry.reduction_length(), "threads": _torch_threads(impls)}


def measure_memory(impl: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One call in this (fresh) process: its peak memory, and what the process held before it (inputs made)."""
    _, ops = _ops([impl], spec)
    before_mb = _rss_mb(os.getpid())
    y = ops[impl]()
    return {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "before_mb": before_mb,
            "outputs": _size(y)}


def _torch_threads(impls: list[str]) -> Any:
    if "torch" in impls:
        import torch

        return torch.get_num_threads()
    return None


def _last_json(r: Run) -> Any:
    return json.loads(r.stdout.strip().splitlines()[-1])


def oracle_vs_torch(quick: bool, repeat: int) -> list[Figure]:
    """Per layer: the implementations' times interleaved in one process (``_measure times``, one process for all
    the layers), and each one's peak memory in a fresh process of its own (``_measure memory``; not in --quick)."""
    impls = ["oracle", "torch"] if quick else ["oracle", "torch", "oracle+gauge"]
    specs = QUICK_BIG if quick else BIG
    me = str(Path(__file__).resolve())
    timing = [PY, me, "_measure", "times", ",".join(impls), json.dumps(specs)]
    memory = {(impl, spec["name"]): [PY, me, "_measure", "memory", impl, json.dumps(spec)]
              for spec in ([] if quick else specs) for impl in impls}
    runs = alternated({"times": timing, **memory}, repeat)
    timed = [] if failed(runs["times"]) else [_last_json(r) for r in runs["times"]]
    figures = []
    for i, spec in enumerate(specs):
        words, ratio, extra = [], None, {"name": spec["name"]}
        if timed:
            per = [t[i] for t in timed]
            sec = {impl: statistics.median(p["seconds"][impl] for p in per) for impl in impls}
            o, t = sec["oracle"], sec["torch"]
            ratio = o / t if t > 0 else None
            extra.update(seconds=sec, outputs=per[0]["outputs"], k=per[0]["k"], rounds=per[0]["rounds"])
            words.append(f"{per[0]['outputs'] / 1e6:.3g} M outputs, K = {per[0]['k']}; best of {per[0]['rounds']} "
                         f"interleaved call(s): oracle {o:.3g} s, torch float64 conv2d {t:.3g} s "
                         f"({per[0]['threads']} threads)")
            if "oracle+gauge" in sec:
                words.append(f"oracle and gauge G (the reference's two passes, each made whole) "
                             f"{sec['oracle+gauge']:.3g} s = {sec['oracle+gauge'] / t:.2f} x torch")
        else:
            words.append(f"timing failed: {failed(runs['times'])}")
        mine = {impl: runs[(impl, spec["name"])] for impl in impls if (impl, spec["name"]) in runs}
        peaks = {impl: max(_last_json(r)["peak_mb"] for r in rs) for impl, rs in mine.items() if not failed(rs)}
        if peaks:
            before = min(_last_json(rs[0])["before_mb"] for impl, rs in mine.items() if impl in peaks)
            extra["peak_mb"] = peaks
            words.append("peak memory of a process making one call: "
                         + ", ".join(f"{impl} {mb:.0f} MB" for impl, mb in peaks.items())
                         + f" (about {before:.0f} MB of it held before the call: inputs, imports)")
        words += [f"{impl}: {failed(rs)}" for impl, rs in mine.items() if failed(rs)]
        if quick:
            words.append("(--quick: no memory processes)")
        figures.append(Figure("b", f"oracle / torch float64 conv2d, {spec['name']}", ratio, "<= 2",
                              check(ratio, "<= 2"), "; ".join(words),
                              [command_text(timing[:-1] + [json.dumps([spec])]),
                               *(command_text(c) for (impl, name), c in memory.items() if name == spec["name"])],
                              extra))
    return figures


# (c), (f) -------------------------------------------------------------------------------------------------------

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
    fig_c = Figure("c", "pytest cases -n 2 / -n 0 (2 cores)", ratio, "<= 0.65", check(ratio, "<= 0.65"),
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


# (d) ------------------------------------------------------------------------------------------------------------

COLLECT = """\
import sys, time
import pytest
start = time.perf_counter()
rc = pytest.main(['--collect-only', '-q', '-o', 'addopts=', '-p', 'no:cacheprovider', *sys.argv[1:]])
took = time.perf_counter() - start
loaded = sorted({m.split('.')[0] for m in sys.modules} & set(%r))
print('BENCH', rc, took, ','.join(loaded))
""" % (FRAMEWORKS,)


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
                  [f"env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=CACHE {pytest_cmd}  (CACHE: a fresh folder "
                   "filled by one run first)", f"{pytest_cmd}  (as it is)"],
                  {"items": warm.get("items", 0), "frameworks": loaded, "as_is_s": as_is.get("pytest_s"),
                   "as_is_caches_bytecode": not no_cache})


# (e) ------------------------------------------------------------------------------------------------------------

def multiply(doc: dict[str, Any], pictures: dict[str, Any], n_cases: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A results document of ``n_cases`` cases made by repeating a real one (tests/test_report_helpers.multiply)."""
    out = copy.deepcopy(doc)
    out["cases"], out["results"], pics = [], [], {}
    by_case: dict[str, list[dict[str, Any]]] = {}
    for rec in doc["results"]:
        by_case.setdefault(rec["case_id"], []).append(rec)
    base = doc["cases"]
    for i in range(n_cases):
        info = copy.deepcopy(base[i % len(base)])
        old_id = info["id"]
        info["id"] = f"{old_id}-{i:04d}"
        out["cases"].append(info)
        out["results"] += [{**rec, "case_id": info["id"]} for rec in by_case.get(old_id, [])]
        if old_id in pictures:
            pics[info["id"]] = pictures[old_id]
    return out, pics


def report_1000(quick: bool, folder: Path, n_cases: int = 1000) -> Figure:
    from harness.report import html, results_json
    from harness.report.merge import SIDECAR
    from harness.report.write import write_all

    source = folder / "report-source"
    paths = QUICK_SUBSET if quick else SUBSET
    engines = ["oracle"] if quick else ["oracle", "keras", "torch"]
    cmd = [PY, "-m", "harness", "report", *paths, "--shard", "1/1", "--out", str(source),
           *[a for e in engines for a in ("--engine", e)]]
    made = run(cmd)
    if not (source / "results.json").exists():
        return Figure("e", f"report of {n_cases} cases", None, "< 15", False,
                      f"the source report failed: {failed([made])}", [command_text(cmd)])
    doc = results_json.load(source / "results.json")
    pictures = json.loads((source / SIDECAR).read_text(encoding="utf-8"))["pictures"]
    big, pics = multiply(doc, pictures, n_cases)
    out = folder / "report-1000"
    start = time.perf_counter()
    write_all({out / "results.json": results_json.dumps(big), out / "index.html": html.render(big, pics)})
    seconds = time.perf_counter() - start
    page_mb = (out / "index.html").stat().st_size / 1e6
    json_mb = (out / "results.json").stat().st_size / 1e6
    met = bool(check(seconds, "< 15")) and page_mb < 10
    text = (f"{len(big['cases'])} cases x {len(doc['engines'])} engines ({len(doc['cases'])} real cases of "
            f"{' '.join(paths)} repeated, with their pictures): results.json + index.html rendered and written in "
            f"{seconds:.2f} s; page {page_mb:.1f} MB (goal < 10 MB), results.json {json_mb:.1f} MB; the source "
            f"report ({len(doc['cases'])} cases run in {'+'.join(engines)}) took {made.wall_s:.1f} s")
    return Figure("e", f"report of {n_cases} cases (render + write)", seconds, "< 15", met, text,
                  [command_text(cmd), f"then in-process: results_json.dumps + html.render + write_all of that "
                                      f"document repeated to {n_cases} cases (tools/bench.py report_1000)"],
                  {"page_mb": page_mb, "json_mb": json_mb, "source_s": made.wall_s})


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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_measure":   # a fresh process of (b): _measure times|memory IMPL[,IMPL...] SPEC
        what, impls, spec = argv[1], argv[2], json.loads(argv[3])
        print(json.dumps([measure_times(impls.split(","), one) for one in spec] if what == "times"
                         else measure_memory(impls, spec)))
        return 0
    p = argparse.ArgumentParser(prog="tools/bench.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: few small cases, torch only, no suite run")
    p.add_argument("--no-suite", action="store_true", help="skip (c) and (f): the shipped suite twice (minutes)")
    p.add_argument("--repeat", type=int, default=1, metavar="N", help="runs per command, alternated; medians")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--only", metavar="LETTERS", default="abcdef", help="only these figures, e.g. --only ad")
    args = p.parse_args(argv)
    started = time.perf_counter()
    print(f"make bench{' --quick (a smoke test: small sizes, not the figures)' if args.quick else ''} on {machine()}; "
          f"load average {load()} at the start "
          f"(other jobs on this machine make every wall time noisy); medians of {args.repeat} run(s)", flush=True)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        folder = Path(tmp)
        steps = [("a", lambda: [overhead(args.quick, args.repeat, folder)]),
                 ("b", lambda: oracle_vs_torch(args.quick, args.repeat)),
                 ("cf", lambda: suite(args.repeat)),
                 ("d", lambda: [collection(args.repeat, args.quick)]),
                 ("e", lambda: [report_1000(args.quick, folder)])]
        for keys, step in steps:
            if not set(keys) & set(args.only):
                continue
            if keys == "cf" and (args.quick or args.no_suite):
                print("(c), (f) skipped (--quick or --no-suite): they run the shipped suite twice", flush=True)
                continue
            for f in step():
                if f.key in args.only:
                    figures.append(f)
                    print(format_figure(f), flush=True)
    missed = [f"({f.key})" for f in figures if f.met is False]
    print(f"bench took {time.perf_counter() - started:.0f} s; load average {load()} at the end; "
          + (f"goals missed: {' '.join(missed)}" if missed else "every goal measured is met"))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "quick": args.quick, "repeat": args.repeat,
                                               "figures": [f.__dict__ for f in figures]}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
