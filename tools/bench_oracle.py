"""(b) of `make bench`: the float64 oracle against torch float64 conv2d, times interleaved in one process and each
one's peak memory in a fresh process (`tools/bench.py _measure ...`)."""
from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench_common import PY, ROOT, Figure, alternated, check, command_text, failed, last_json, rss_mb

# This tree's harness, not the one an editable install points at (run as a script, sys.path[0] is tools/): a
# worktree's figure must measure its own oracle.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# (b): the big worked example, and two large layers of the other families (defined here, not shipped cases).
BIG: list[dict[str, Any]] = [
    {"name": "depthwise-big-same", "file": "cases/worked_examples.yaml", "id": "depthwise-big-same"},
    # "gauge_goal": issue 21's goal for the reference's output and gauge together, a figure of its own.
    {"name": "separable-large", "gauge_goal": "<= 2", "entry": {
        "layer": "SeparableConv2D", "input_shape": [8, 64, 64, 64],
        "config": {"filters": 128, "kernel_size": 5, "depth_multiplier": 2, "padding": "same"}}},
    {"name": "conv2d-large", "entry": {
        "layer": "Conv2D", "input_shape": [8, 64, 64, 64],
        "config": {"filters": 128, "kernel_size": 3, "padding": "same"}}},
]
QUICK_BIG: list[dict[str, Any]] = [
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
    from harness.judge.runner import make_inputs
    from harness.reference import oracle

    case = _case_of(spec)
    inputs = make_inputs(case)
    x64, w64 = inputs.x64, inputs.weights64
    ops: dict[str, Any] = {}
    for impl in impls:
        if impl == "oracle":
            ops[impl] = lambda: oracle.run(case.layer, case.config, x64, w64)
        elif impl == "oracle+gauge":   # the reference's output and gauge, both whole (one paired pass)
            ops[impl] = lambda: oracle.run_and_gauge(case.layer, case.config, x64, w64)[0]
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
    before_mb = rss_mb(os.getpid())
    y = ops[impl]()
    return {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "before_mb": before_mb,
            "outputs": _size(y)}


def _torch_threads(impls: list[str]) -> Any:
    if "torch" in impls:
        import torch

        return torch.get_num_threads()
    return None


def oracle_vs_torch(quick: bool, repeat: int) -> list[Figure]:
    """Per layer: the implementations' times interleaved in one process (``_measure times``, one process for all
    the layers), and each one's peak memory in a fresh process of its own (``_measure memory``; not in --quick)."""
    impls = ["oracle", "torch"] if quick else ["oracle", "torch", "oracle+gauge"]
    specs = QUICK_BIG if quick else BIG
    me = str(Path(__file__).resolve().with_name("bench.py"))   # its main runs the fresh processes
    timing = [PY, me, "_measure", "times", ",".join(impls), json.dumps(specs)]
    memory: dict[tuple[str, str], list[str]] = {
        (impl, spec["name"]): [PY, me, "_measure", "memory", impl, json.dumps(spec)]
        for spec in ([] if quick else specs) for impl in impls}
    commands: dict[str | tuple[str, str], list[str]] = {"times": timing}   # times first, then every memory process
    commands.update(memory.items())
    runs = alternated(commands, repeat)
    timed = [] if failed(runs["times"]) else [last_json(r) for r in runs["times"]]
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
                words.append(f"oracle and gauge G (the reference's output and gauge, both whole, one paired pass) "
                             f"{sec['oracle+gauge']:.3g} s = {sec['oracle+gauge'] / t:.2f} x torch")
        else:
            words.append(f"timing failed: {failed(runs['times'])}")
        mine = {impl: runs[(impl, spec["name"])] for impl in impls if (impl, spec["name"]) in runs}
        peaks = {impl: max(last_json(r)["peak_mb"] for r in rs) for impl, rs in mine.items() if not failed(rs)}
        if peaks:
            before = min(last_json(rs[0])["before_mb"] for impl, rs in mine.items() if impl in peaks)
            extra["peak_mb"] = peaks
            words.append("peak memory of a process making one call: "
                         + ", ".join(f"{impl} {mb:.0f} MB" for impl, mb in peaks.items())
                         + f" (about {before:.0f} MB of it held before the call: inputs, imports)")
        words += [f"{impl}: {failed(rs)}" for impl, rs in mine.items() if failed(rs)]
        if quick:
            words.append("(--quick: no memory processes)")
        figures.append(Figure("b", f"oracle / torch float64 conv2d, {spec['name']}", ratio, "<= 2",
                              check(ratio, "<= 2"), "; ".join(words),
                              [command_text([*timing[:-1], json.dumps([spec])]),
                               *(command_text(c) for (impl, name), c in memory.items() if name == spec["name"])],
                              extra))
        if "gauge_goal" in spec and "oracle+gauge" in impls:
            figures.append(_gauge_figure(spec, extra, figures[-1].commands))
    return figures


def _gauge_figure(spec: dict[str, Any], extra: dict[str, Any], commands: list[str]) -> Figure:
    """Issue 21's goal: the reference's two float64 results (output and gauge G) against torch's one float64 pass."""
    sec = extra.get("seconds")
    both, t = (sec["oracle+gauge"], sec["torch"]) if sec else (None, None)
    ratio = both / t if both is not None and t else None
    words = (f"oracle output and gauge G together (oracle.run_and_gauge: one pass, both whole) {both:.3g} s, "
             f"torch float64 conv2d (the layer once) {t:.3g} s: {ratio:.2f} x torch (issue 21's goal: "
             f"{spec['gauge_goal']} x)") if ratio is not None else "timing failed (see the figure above)"
    return Figure("b", f"oracle and gauge / torch float64 conv2d, {spec['name']}", ratio, spec["gauge_goal"],
                  check(ratio, spec["gauge_goal"]), words, commands[:1], {"name": spec["name"], "seconds": sec})
