"""(a) of `make bench`: the harness's wall time against a bare script making the same framework calls."""
from __future__ import annotations

import json
from pathlib import Path

from bench_common import (
    PY,
    QUICK_CASES,
    QUICK_SUBSET,
    ROOT,
    SUBSET,
    Figure,
    alternated,
    check,
    command_text,
    failed,
    median_s,
)

BARE = ROOT / "tools" / "bench_bare.py"


def prepare_bare(paths: list[str], ids: list[str] | None, folder: Path) -> tuple[Path, Path, int]:
    """SPEC.json and ARRAYS.npz of the cases (the harness's own inputs: the same values in both runs)."""
    import numpy as np

    from harness.cases.selection import load_cases
    from harness.judge.runner import make_inputs

    cases, _ = load_cases(list(paths), ids)
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


PYTEST_GOAL = "<= 1.2"   # issue 21: pytest's own cost over the CLI's (the same items, the same engines) kept small


def overhead(quick: bool, repeat: int, folder: Path) -> list[Figure]:
    """(a) the CLI and (a2) `pytest -n 0` on the same cases, each against the bare script (alternated runs)."""
    paths = QUICK_SUBSET if quick else SUBSET
    ids = None
    if quick:
        from harness.cases.selection import load_cases

        ids = [c.id for c in load_cases(list(paths))[0][:QUICK_CASES]]
    engines = ["torch"] if quick else ["keras", "torch"]
    spec, arrays, n = prepare_bare(paths, ids, folder)
    case_args = [a for i in ids or [] for a in ("--case", i)]
    # The built-in engines named: whatever else is installed, the harness runs what the bare script runs (+ oracle).
    engine_args = [a for e in ["oracle", *engines] for a in ("--engine", e)]
    # pytest on the same cases' items, every engine named (--quick: the quick cases' node ids, FILE::ID[ENGINE])
    targets = list(paths) if ids is None else [f"{paths[0]}::{i}[{e}]" for i in ids for e in ["oracle", *engines]]
    commands = {
        "harness": [PY, "-m", "harness", "run", *paths, *case_args, *engine_args],
        "bare": [PY, str(BARE), str(spec), str(arrays), "--engines", ",".join(engines)],
        "pytest": [PY, "-m", "pytest", *targets, "-n", "0", "-q", "-p", "no:cacheprovider", *engine_args],
    }
    runs = alternated(commands, repeat)
    bare = median_s(runs["bare"])
    harness_s, pytest_s = median_s(runs["harness"]), median_s(runs["pytest"])
    ratio, pytest_ratio = harness_s / bare, pytest_s / bare
    cases = f"{n} cases ({' '.join(paths)}{', first ' + str(QUICK_CASES) if quick else ''})"
    calls = (f"({'+'.join(engines)} calls only; the harness also runs the float64 oracle, the gauge, the bound "
             "and the judging)")
    text = f"{cases}; harness run {harness_s:.2f} s vs bare {bare:.2f} s {calls}"
    pytest_text = (f"{cases}; pytest -n 0 {pytest_s:.2f} s vs bare {bare:.2f} s {calls}; pytest / harness run "
                   f"{pytest_s / harness_s:.2f}")
    extra = {"harness_s": harness_s, "bare_s": bare, "cases": n, "pytest_s": pytest_s, "pytest_ratio": pytest_ratio}
    bad = "; ".join(f"{k}: {failed(v)}" for k, v in runs.items() if failed(v) and k == "bare")
    if bad:
        text += f" [{bad}]"
        pytest_text += f" [{bad}]"
    try:
        extra["bare_result"] = json.loads(runs["bare"][-1].stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        pass
    return [Figure("a", "harness wall time / bare script", ratio, "<= 1.25", check(ratio, "<= 1.25"), text,
                   [command_text(commands[k]) for k in ("harness", "bare")], extra),
            Figure("a2", "pytest -n 0 wall time / bare script", pytest_ratio, PYTEST_GOAL,
                   check(pytest_ratio, PYTEST_GOAL), pytest_text,
                   [command_text(commands[k]) for k in ("pytest", "bare")], {"pytest_s": pytest_s, "bare_s": bare})]
