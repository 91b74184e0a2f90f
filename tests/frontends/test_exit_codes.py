"""One exit-code contract for every entry point (issue 17): 0 all good, 1 a failing, unexpected or invalid item
(case or stack), 2 a usage error; a file of cases, of stacks or of both handled alike by every entry point.

The matrix runs each entry point on each kind of file: the CLI's subcommands in this process through
``harness.frontends.cli.main`` (what ``python -m harness`` calls; a real subprocess checks that path once), pytest in
subprocesses. The engines are the fast ones: the oracle, torch, and a wrong plug-in (below) for a failing file.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

# This module is the plug-in `buggy` of the pytest subprocesses it starts, imported there as
# tests.frontends.test_exit_codes with only the checkout on the path: so it imports no helper of tests/ (testkit).
ROOT = Path(__file__).resolve().parents[2]   # the checkout
BUGGY = "buggy=tests.frontends.test_exit_codes:flipped"
GOOD = ["oracle", "torch"]
BAD = ["oracle", BUGGY]


def flipped(layer, config, x, weights):
    """A port with the classic mistake (a true convolution: kernel flipped): every case fails in it."""
    from harness.reference import oracle

    rank = x.ndim - 2
    w = {k: (v if k == "bias" else np.flip(v, axis=tuple(range(rank)))).astype(np.float64)
         for k, v in weights.items()}
    return oracle.run(layer, config, x.astype(np.float64), w).astype(x.dtype)


def _flipped_stack(layers, x):
    """The same port applied layer by layer: every stack fails in it (its first layer is the culprit)."""
    outs = []
    for layer, config, weights in layers:
        x = flipped(layer, config, x, weights)
        outs.append(x)
    return outs


flipped.stack = _flipped_stack   # type: ignore[attr-defined]

CASE = """\
  - id: {id}
    layer: Conv1D
    input_shape: [1, 6, 2]
    config: {{filters: 2, kernel_size: 3{extra}}}
"""
STACK = """\
  - id: {id}
    input_shape: [1, 4, 4, 2]
    layers:
      - layer: Conv2D
        config: {{filters: 2, kernel_size: {k}, activation: relu}}
      - layer: Conv2D
        config: {{filters: 2, kernel_size: 1}}
"""
# Each kind of file (its text) and the engines it runs in: "failing" is a valid file whose items fail in a port.
KINDS: dict[str, tuple[str, list[str]]] = {
    "passing": ("cases:\n" + CASE.format(id="c1", extra="") + "stacks:\n" + STACK.format(id="s1", k=3), GOOD),
    "failing": ("cases:\n" + CASE.format(id="c1", extra="") + "stacks:\n" + STACK.format(id="s1", k=3), BAD),
    # One valid case beside the invalid one: the valid one still runs, the file is not green.
    "invalid-case": ("cases:\n" + CASE.format(id="c1", extra="") + CASE.format(id="c2", extra=", strides: 0"),
                     GOOD),
    # A stack whose 9x9 kernel does not fit its 4x4 input (the false green), beside a valid case.
    "invalid-stack": ("cases:\n" + CASE.format(id="c1", extra="") + "stacks:\n" + STACK.format(id="s9", k=9), GOOD),
    "stacks-alone": ("stacks:\n" + STACK.format(id="s1", k=3), GOOD),
    "stacks-alone-failing": ("stacks:\n" + STACK.format(id="s1", k=3), BAD),
}

# The contract, per entry point and kind of file. validate judges files, not engines: a failing file is valid.
# extract and fuzz read no case file: given one, they refuse it as a usage error.
EXPECTED: dict[str, dict[str, int]] = {
    "validate": {"passing": 0, "failing": 0, "invalid-case": 1, "invalid-stack": 1, "stacks-alone": 0,
                 "stacks-alone-failing": 0},
    "run": {"passing": 0, "failing": 1, "invalid-case": 1, "invalid-stack": 1, "stacks-alone": 0,
            "stacks-alone-failing": 1},
    "report": {"passing": 0, "failing": 1, "invalid-case": 1, "invalid-stack": 1, "stacks-alone": 0,
               "stacks-alone-failing": 1},
    "scoreboard": {"passing": 0, "failing": 1, "invalid-case": 1, "invalid-stack": 1, "stacks-alone": 0,
                   "stacks-alone-failing": 1},
    # A stack is judged by mutants and lint too (a mutant in each of its layers): a file of stacks alone is no
    # "nothing judged" exit 1; its wrong control fails mutants, and lint judges the file, not the engines.
    "mutants": {"passing": 0, "failing": 1, "invalid-case": 1, "invalid-stack": 1, "stacks-alone": 0,
                "stacks-alone-failing": 1},
    "lint": {"passing": 0, "failing": 0, "invalid-case": 1, "invalid-stack": 1, "stacks-alone": 0,
             "stacks-alone-failing": 0},
    "coverage": {"passing": 0, "failing": 0, "invalid-case": 1, "invalid-stack": 1, "stacks-alone": 0,
                 "stacks-alone-failing": 0},
    "fuzz": dict.fromkeys(KINDS, 2),
    "extract": dict.fromkeys(KINDS, 2),
    "pytest": {"passing": 0, "failing": 1, "invalid-case": 1, "invalid-stack": 1, "stacks-alone": 0,
               "stacks-alone-failing": 1},
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("kinds")
    out = {}
    for kind, (text, _) in KINDS.items():
        out[kind] = folder / f"{kind}.yaml"
        out[kind].write_text(text, encoding="utf-8")
    return out


def _engines(names: list[str]) -> list[str]:
    return [word for name in names for word in ("--engine", name)]


def _argv(command: str, path: Path, engines: list[str], out: Path) -> list[str]:
    """The command line of one entry point on one file (the engines where it takes them)."""
    if command in ("validate", "lint", "coverage"):   # they judge the file, not an engine
        return [command, str(path)]
    if command in ("report", "scoreboard"):
        return [command, str(path), *_engines(engines), "--out", str(out)]
    if command == "mutants":   # the engines are the controls (a wrong one is a failing control); one mutant that
        # the passing file's case kills (the whole catalogue would survive a one-case file: a weak suite fails)
        return ["mutants", str(path), "--mutant", "flipped_kernel", *_engines([e for e in engines if e != "oracle"])]
    if command == "fuzz":
        return ["fuzz", str(path), "--examples", "1", "--jobs", "1"]
    if command == "extract":
        return ["extract", str(path), "--out", str(out)]
    return [command, str(path), *_engines(engines)]


CLI = [c for c in EXPECTED if c != "pytest"]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("command", CLI)
def test_cli_exit_code(command: str, kind: str, files: dict[str, Path], tmp_path: Path, capsys) -> None:
    from harness.frontends import cli

    try:
        code = cli.main(_argv(command, files[kind], KINDS[kind][1], tmp_path / "out"))
    except SystemExit as exc:   # argparse's usage errors
        code = exc.code
    said = capsys.readouterr()
    assert code == EXPECTED[command][kind], f"{command} on {kind}: exit {code}\n{said.out}\n{said.err}"


def _subprocess(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("kind", list(KINDS))
def test_pytest_exit_code(kind: str, files: dict[str, Path], pytester: pytest.Pytester) -> None:
    # pytest's own codes: 0 all passed, 1 some item failed (an invalid case or stack is a failed item). In this
    # process (pytester), as the CLI's matrix; test_pytest_in_a_subprocess runs two of them for real.
    engines = [e for e in KINDS[kind][1] if e != "torch"]   # the oracle (and the port): no framework to import
    done = pytester.runpytest_inprocess(str(files[kind]), *_engines(engines), "-p", "no:cacheprovider",
                                        "-p", "no:xdist", "--rootdir", str(files[kind].parent))
    assert int(done.ret) == EXPECTED["pytest"][kind], "\n".join(done.outlines[-40:])


@pytest.mark.parametrize("kind", ["invalid-stack", "stacks-alone"])
def test_pytest_in_a_subprocess(kind: str, files: dict[str, Path]) -> None:
    done = _subprocess(["-m", "pytest", str(files[kind]), "--engine", "oracle", "-p", "no:cacheprovider", "-q",
                        "-p", "no:xdist"])
    assert done.returncode == EXPECTED["pytest"][kind], done.stdout[-3000:] + done.stderr[-2000:]


def test_python_m_harness_gives_the_codes_of_main(files: dict[str, Path]) -> None:
    """The in-process matrix is what `python -m harness` returns: one real subprocess per code."""
    assert _subprocess(["-m", "harness", "validate", str(files["invalid-stack"])]).returncode == 1
    assert _subprocess(["-m", "harness", "run", str(files["stacks-alone"]), "--engine", "oracle"]).returncode == 0
    assert _subprocess(["-m", "harness", "run", "no/such.yaml", "--engine", "oracle"]).returncode == 2


def test_invalid_case_in_pytest_is_one_line_and_the_others_run(tmp_path: Path) -> None:
    """A user's mistake that shows only when the case runs (a tensor file whose header lies about its size) is
    one error line in pytest, not an internal traceback; the file's other case still runs and passes."""
    np.save(tmp_path / "k.npy", np.ones((3, 2, 2)))
    data = (tmp_path / "k.npy").read_bytes()
    (tmp_path / "k.npy").write_bytes(data[:-40])   # the header says (3, 2, 2) float64; the body is cut short
    (tmp_path / "t.yaml").write_text(textwrap.dedent("""\
        cases:
          - id: good
            layer: Conv1D
            input_shape: [1, 6, 2]
            config: {filters: 2, kernel_size: 3}
          - id: cut
            layer: Conv1D
            input_shape: [1, 6, 2]
            config: {filters: 2, kernel_size: 3}
            weights: {kernel: {file: k.npy}}
        """), encoding="utf-8")
    done = _subprocess(["-m", "pytest", str(tmp_path / "t.yaml"), "--engine", "oracle", "-p", "no:cacheprovider",
                        "-q", "-p", "no:xdist", "-rA"])
    out = done.stdout
    assert done.returncode == 1, out
    assert "1 passed" in out and ("1 failed" in out or "1 error" in out), out
    assert "Traceback" not in out and "site-packages" not in out and 'File "' not in out, out
    assert "k.npy" in out and "cut" in out, out


def test_report_holds_the_stacks_records(files: dict[str, Path], tmp_path: Path) -> None:
    """A stack is in results.json as a case is: its entry (with its layers) and a record per engine, counted in
    the summary; a failing stack names its culprit layer."""
    import json

    from harness.frontends import cli

    assert cli.main(["report", str(files["stacks-alone-failing"]), *_engines(BAD), "--out", str(tmp_path)]) == 1
    doc = json.loads((tmp_path / "results.json").read_text())
    [info] = doc["cases"]
    assert info["id"] == "s1" and [layer["layer"] for layer in info["stack"]] == ["Conv2D", "Conv2D"], info
    records = {r["engine"]: r for r in doc["results"]}
    assert records["oracle"]["verdict"] == "pass" and records["buggy"]["verdict"] == "fail", records
    assert records["buggy"]["culprit"] == 0 and records["buggy"]["layer_ratios"][0] > 1, records["buggy"]
    assert doc["summary"]["buggy"]["fail"] == 1 and doc["summary"]["oracle"]["pass"] == 1, doc["summary"]


def test_validate_counts_cases_and_stacks(files: dict[str, Path], capsys) -> None:
    from harness.frontends import cli

    assert cli.main(["validate", str(files["invalid-stack"])]) == 1
    said = capsys.readouterr()
    assert "1 valid cases, 0 invalid; 0 valid stacks, 1 invalid" in said.out, said.out
    assert "invalid stack: " in said.err and "s9" in said.err and "Traceback" not in said.err, said.err


def test_mutants_and_lint_judge_a_file_of_stacks(files: dict[str, Path], capsys) -> None:
    """mutants kills a mutant in a stack's layer and names the layer; lint lists the stack with its kills; a stack no
    mutant can be seen in (every layer 1x1 on a constant input) is weak: exit 1."""
    from harness.frontends import cli

    assert cli.main(["mutants", str(files["stacks-alone"]), "--mutant", "flipped_kernel", "--engine", "torch"]) == 0
    out = capsys.readouterr().out
    assert "mutation score: 1/1 mutants killed" in out and "0 cases and 1 stacks" in out, out
    assert "flipped_kernel" in out and "1 killing cases: s1" in out and "control torch: 1 pass" in out, out
    assert cli.main(["lint", str(files["stacks-alone"])]) == 0
    out = capsys.readouterr().out
    assert f"ok   {files['stacks-alone']}::s1: kills" in out and "0 cases and 1 stacks linted" in out, out
    weak = files["stacks-alone"].parent / "weak-stack.yaml"
    weak.write_text("stacks:\n  - id: w\n    input_shape: [1, 4, 4, 2]\n    input: ones\n    layers:\n"
                    "      - {layer: Conv2D, config: {filters: 2, kernel_size: 1, use_bias: false}, "
                    "weights: {kernel: ones}}\n", encoding="utf-8")
    assert cli.main(["lint", str(weak)]) == 1
    assert f"WEAK {weak}::w: kills no mutant" in capsys.readouterr().out
