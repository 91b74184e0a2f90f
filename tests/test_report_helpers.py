"""Shared by the report tests: a small case file, plug-in engines (one deliberately wrong) and a runner."""
from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path

import numpy as np

from harness.reference import oracle
from harness.frontends.cli import main

# arange-2x2 is computed by hand in test_report.py: x = [[0,1,2],[3,4,5],[6,7,8]], kernel [[0,1],[2,3]].
CASES_YAML = textwrap.dedent("""\
    cases:
      - id: arange-2x2
        description: "hand-computed; tricky text </script><b>not bold</b> & more"
        layer: Conv2D
        input_shape: [1, 3, 3, 1]
        config: {filters: 1, kernel_size: 2, use_bias: false}
        input: {init: arange}
        weights: {kernel: {init: arange}}
      - id: seq
        layer: Conv1D
        input_shape: [2, 9, 3]
        config: {filters: 2, kernel_size: 3}
        sweep: {padding: [valid, same]}
        xfail: {report-flip: "known: this plug-in flips the kernel"}
      - id: wide
        layer: DepthwiseConv2D
        input_shape: [1, 12, 10, 6]
        config: {kernel_size: 3, padding: same}
        xfail: {report-2d: "marked as a bug that report-2d does not have: an XPASS"}
    """)


def flipped(layer, config, x, weights):
    """A true convolution (spatial kernel axes reversed): the classic porting mistake; must fail."""
    rank = 2 if layer.endswith("2D") else 1
    w = {k: (v if k == "bias" else np.flip(v, axis=tuple(range(rank)))).astype(np.float64) for k, v in weights.items()}
    return oracle.run(layer, config, x.astype(np.float64), w).astype(x.dtype)


def only_2d(layer, config, x, weights):
    """Right for 2D layers, skips 1D ones."""
    if not layer.endswith("2D"):
        raise NotImplementedError(f"{layer} is not implemented by this plug-in")
    y = oracle.run(layer, config, x.astype(np.float64), {k: v.astype(np.float64) for k, v in weights.items()})
    return y.astype(x.dtype)


FLIP = f"report-flip={__name__}:flipped"
ONLY_2D = f"report-2d={__name__}:only_2d"


def write_cases(folder: Path) -> Path:
    path = folder / "report_cases.yaml"
    path.write_text(CASES_YAML)
    return path


def run_report(cases: Path, out: Path, *extra: str) -> int:
    """`python -m harness report` (cli.main: parse, run, ValueError -> exit 2), in this process."""
    return main(["report", str(cases), "--engine", "oracle", "--engine", FLIP, "--engine", ONLY_2D,
                 "--out", str(out), *extra])


def strict_json(path: Path) -> dict:
    """Parse as standard JSON: NaN/Infinity literals (which browsers reject) raise."""
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name} in {path}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def multiply(doc: dict, pictures: dict, n_cases: int) -> tuple[dict, dict]:
    """A results document of ``n_cases`` cases made by repeating a real one (for size and load-time checks)."""
    out = copy.deepcopy(doc)
    out["cases"], out["results"], pics = [], [], {}
    base_cases = doc["cases"]
    for i in range(n_cases):
        info = copy.deepcopy(base_cases[i % len(base_cases)])
        old_id = info["id"]
        info["id"] = f"{old_id}-{i:04d}"
        out["cases"].append(info)
        for rec in doc["results"]:
            if rec["case_id"] == old_id:
                out["results"].append({**rec, "case_id": info["id"]})
        if old_id in pictures:
            pics[info["id"]] = pictures[old_id]
    return out, pics


# ---------------------------------------------------------------- backward items (check: [forward, backward])

# Two cases with the backward check (a channels_first one: dx in the input's layout) and one forward-only case.
BACKWARD_CASES_YAML = textwrap.dedent("""\
    cases:
      - id: bw-conv2d
        layer: Conv2D
        input_shape: [2, 6, 5, 3]
        config: {filters: 4, kernel_size: 3, padding: same}
        check: [forward, backward]
      - id: bw-dw1d-cf
        layer: DepthwiseConv1D
        input_shape: [2, 3, 8]
        config: {kernel_size: 3, depth_multiplier: 2, data_format: channels_first}
        check: [forward, backward]
      - id: fw-only
        layer: Conv1D
        input_shape: [1, 7, 2]
        config: {filters: 2, kernel_size: 3}
    """)


def kernel_grad_flipped(layer, config, x, weights, grad_output=None):
    """The right output and dx, but every kernel's gradient with its spatial axes reversed: the backward item fails
    on dkernel (ddepthwise_kernel), after dx passed; the forward item passes."""
    from harness.reference.gradients import reference_gradients
    from harness.engines.base import EngineOutput
    from harness.layers.geometry import geometry

    w64 = {k: v.astype(np.float64) for k, v in weights.items()}
    y = oracle.run(layer, config, x.astype(np.float64), w64).astype(x.dtype)
    if grad_output is None:
        return y
    g = geometry(layer, config, x.shape)
    grads = reference_gradients(x.astype(np.float64), w64, g, grad_output.astype(np.float64))
    rank = len(g.kernel_size)
    grads = {k: (np.flip(v, axis=tuple(range(rank))) if k not in ("x", "bias") else v).astype(x.dtype)
             for k, v in grads.items()}
    return EngineOutput(y=y, gradients=grads)


BW_FLIP = f"report-bwflip={__name__}:kernel_grad_flipped"


def write_backward_cases(folder: Path) -> Path:
    path = folder / "report_backward_cases.yaml"
    path.write_text(BACKWARD_CASES_YAML)
    return path


def run_backward_report(cases: Path, out: Path, *extra: str) -> int:
    """`python -m harness report` of the backward cases in the oracle and the kernel-gradient-flipping plug-in."""
    return main(["report", str(cases), "--engine", "oracle", "--engine", BW_FLIP, "--out", str(out), *extra])
