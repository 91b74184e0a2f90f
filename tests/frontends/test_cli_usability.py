"""The command line a newcomer meets (issue 17, class 11): each subcommand takes only its own options, plug-ins
given as files, "did you mean" from the right names, a plug-in's missing weight, the torch-layout hint, whole
output lines, and no framework log noise unless --verbose."""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from testkit import ROOT


TWO = textwrap.dedent("""\
    cases:
      - id: first
        layer: Conv1D
        input_shape: [1, 6, 2]
        config: {filters: 3, kernel_size: 3}
      - id: second
        layer: DepthwiseConv2D
        input_shape: [1, 4, 4, 2]
        config: {kernel_size: 2}
    """)

# A correct port, as a user writes it in a file of their own (anywhere: it is given by its path).
PORT = textwrap.dedent("""\
    import sys

    import numpy as np

    from harness.reference import oracle


    def port(layer, config, x, weights):
        y = oracle.run(layer, config, x.astype(np.float64), {k: v.astype(np.float64) for k, v in weights.items()})
        return y.astype(x.dtype)


    def noisy(layer, config, x, weights):
        print(f"noisy: {layer} on stderr", file=sys.stderr)   # a port's own log line, mid-run
        return port(layer, config, x, weights)


    def reads_pointwise(layer, config, x, weights):
        weights["depthwise_kernel"]   # a separable layer's name, read for a DepthwiseConv2D
        return port(layer, config, x, weights)


    def near_zero(layer, config, x, weights):
        return port(layer, config, x, weights) + np.asarray(1e-30, x.dtype)
    """)

# Each subcommand's options from the ones several share: what its handler reads, nothing else.
SHARED = ("paths", "--case", "--engine", "--engine-python", "--tf-onednn", "--verbose")
USES = {
    "validate": {"paths", "--case", "--verbose"},
    "run": set(SHARED),
    "report": set(SHARED),
    "scoreboard": set(SHARED),
    "mutants": set(SHARED),
    "lint": {"paths", "--case", "--verbose"},
    "fuzz": {"--engine", "--engine-python", "--tf-onednn", "--verbose"},
    "coverage": {"paths", "--case", "--verbose"},
    "extract": {"--tf-onednn", "--verbose"},
    "diff": {"--tf-onednn", "--verbose"},
}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    from harness.frontends.cli import build_parser

    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _shared_options(parser: argparse.ArgumentParser) -> set[str]:
    taken = set()
    for action in parser._actions:
        taken.update(o for o in action.option_strings if o in SHARED)
        if not action.option_strings and action.dest in SHARED:
            taken.add(action.dest)
    return taken


def test_each_subcommand_takes_only_the_options_it_uses() -> None:
    parsers = _subparsers()
    assert set(parsers) == set(USES)
    wrong = {name: sorted(_shared_options(p) ^ USES[name]) for name, p in parsers.items()
             if _shared_options(p) != USES[name]}
    assert not wrong, f"options a subcommand takes but does not use, or lacks: {wrong}"


def test_extract_refuses_options_it_would_ignore(capsys) -> None:
    from harness.frontends.cli import build_parser

    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["extract", "--help"])
    assert stop.value.code == 0
    shown = capsys.readouterr().out
    for word in ("--engine", "--case", "paths"):
        assert word not in shown, f"extract --help lists {word}:\n{shown}"
    assert "MODEL" in shown
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["extract", "m.keras", "--out", "x", "--engine", "kersa"])
    assert stop.value.code == 2
    assert "--engine" in capsys.readouterr().err


def test_every_subcommand_help_line_is_a_whole_sentence() -> None:
    from harness.frontends.cli import build_parser

    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for choice in action._choices_actions:
        line = choice.help
        assert line.endswith(".") and line.count("(") == line.count(")"), \
            f"{choice.dest}: its help line is cut off: {line!r}"


# ---------------------------------------------------------------- plug-ins

def _main(*argv: str) -> int:
    from harness.frontends import cli

    try:
        return cli.main(list(argv))
    except SystemExit as exc:   # argparse's usage errors
        return int(exc.code)


@pytest.fixture
def port_file(tmp_path: Path) -> Path:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "myport.py").write_text(PORT, encoding="utf-8")
    (tmp_path / "two.yaml").write_text(TWO, encoding="utf-8")
    return elsewhere / "myport.py"


def test_a_plugin_given_by_its_file_path_runs(port_file: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    code = _main("run", "two.yaml", "--engine", "oracle", "--engine", f"{port_file}:port")
    said = capsys.readouterr()
    assert code == 0, said.out + said.err
    assert len(re.findall(r"^port\s+pass\b", said.out, re.M)) == 2, said.out
    # Relative to the current directory, and named, as people write it.
    code = _main("run", "two.yaml", "--case", "first", "--engine", "mine=elsewhere/myport.py:port")
    said = capsys.readouterr()
    assert code == 0 and re.search(r"^mine\s+pass\b", said.out, re.M), said.out + said.err


def test_a_plugin_that_cannot_be_found_says_what_was_tried(port_file: Path, tmp_path: Path, monkeypatch,
                                                           capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "away").mkdir()
    (tmp_path / "away" / "myimport.py").write_text(PORT, encoding="utf-8")   # not on the path
    assert _main("run", "two.yaml", "--engine", "myimport:port") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "no module named 'myimport'" in err and str(tmp_path) in err, err
    assert "zipimport" not in err and "importlib" not in err, f"suggests modules nobody wrote:\n{err}"
    assert "myimport.py:port" in err, f"the file-path form is not offered:\n{err}"
    assert _main("run", "two.yaml", "--engine", "elsewhere/nosuch.py:port") == 2
    err = capsys.readouterr().err.strip()
    assert "no such file" in err and "nosuch.py" in err and len(err.splitlines()) == 1, err
    assert _main("run", "two.yaml", "--engine", f"{port_file}:prot") == 2
    err = capsys.readouterr().err
    assert "has no attribute 'prot'" in err and "did you mean 'port'" in err, err


def test_an_engine_typo_gets_did_you_mean_on_the_cli_and_in_pytest(tmp_path: Path, monkeypatch, capsys) -> None:
    from harness.cases.selection import select_engines

    monkeypatch.chdir(tmp_path)
    (tmp_path / "two.yaml").write_text(TWO, encoding="utf-8")
    assert _main("run", "two.yaml", "--engine", "kersa") == 2
    err = capsys.readouterr().err
    assert "did you mean 'keras'" in err, err
    with pytest.raises(ValueError, match="did you mean 'keras'"):   # what pytest's --engine calls
        select_engines(["kersa"])


def test_a_plugin_reading_a_weight_the_layer_has_not_says_which_it_has(port_file: Path, tmp_path: Path) -> None:
    from harness import engines
    from harness.api import load_cases, run_one

    name = engines.register_plugin(f"reads={port_file}:reads_pointwise")
    cases, errors = load_cases([tmp_path / "two.yaml"], ["second"])
    assert not errors
    result = run_one(cases[0], name)
    assert result.verdict == "error"
    assert ("plug-in reads read weight 'depthwise_kernel', but DepthwiseConv2D passes only: kernel, bias"
            in result.message), result.message


def test_max_rel_is_not_inf_where_the_oracle_is_zero(port_file: Path, tmp_path: Path) -> None:
    from harness import engines
    from harness.api import load_cases, run_one
    from harness.frontends.cli import format_table

    (tmp_path / "zero.yaml").write_text(textwrap.dedent("""\
        cases:
          - id: zero
            layer: Conv1D
            input_shape: [1, 6, 2]
            config: {filters: 3, kernel_size: 3}
            weights: {kernel: zeros, bias: zeros}
        """), encoding="utf-8")
    name = engines.register_plugin(f"near_zero={port_file}:near_zero")
    cases, _ = load_cases([tmp_path / "zero.yaml"])
    result = run_one(cases[0], name)
    assert result.metrics is not None and result.metrics.max_rel == float("inf")   # the data stays as measured
    header, row = format_table([result]).splitlines()
    cells = dict(zip(re.split(r"\s{2,}", header.strip()), re.split(r"\s{2,}", row.strip())))
    assert cells["max rel"] == "-", row


# ---------------------------------------------------------------- literals

def test_a_torch_layout_literal_gets_the_layout_hint(tmp_path: Path, capsys) -> None:
    torch_shaped = np.arange(8.0).reshape(2, 4, 1, 1).tolist()   # Conv2D C=4 -> F=2, k=1: Keras [1, 1, 4, 2]
    (tmp_path / "lit.yaml").write_text(textwrap.dedent(f"""\
        cases:
          - id: plain
            layer: Conv2D
            input_shape: [1, 4, 4, 4]
            config: {{filters: 2, kernel_size: 1}}
            weights: {{kernel: {torch_shaped}}}
          - id: mapping
            layer: Conv2D
            input_shape: [1, 4, 4, 4]
            config: {{filters: 2, kernel_size: 1}}
            weights: {{kernel: {{values: {torch_shaped}}}}}
        """), encoding="utf-8")
    assert _main("validate", str(tmp_path / "lit.yaml")) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("invalid case")]
    assert len(lines) == 2, lines
    for line in lines:
        assert "needs [1, 1, 4, 2]" in line and "layout: torch" in line, line
        assert "values has" not in line, f"grammar: {line}"


# ---------------------------------------------------------------- output

def _harness(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """python -m harness with stdout and stderr on one pipe, as `cmd 2>&1 | cat` sees them."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(cwd)]), **(env or {})}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)


def test_stdout_and_stderr_lines_stay_whole_and_in_order(tmp_path: Path) -> None:
    (tmp_path / "noisyport.py").write_text(PORT, encoding="utf-8")
    (tmp_path / "two.yaml").write_text(TWO, encoding="utf-8")
    done = _harness("run", "two.yaml", "--engine", "oracle", "--engine", "noisyport:noisy", cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    at = {key: next(i for i, line in enumerate(lines) if line.startswith(key))
          for key in ("two.yaml::first", "noisy: Conv1D", "two.yaml::second", "noisy: DepthwiseConv2D", "2 cases")}
    assert "noisy: Conv1D on stderr" in lines and "noisy: DepthwiseConv2D on stderr" in lines, done.stdout
    # Each case's header, then what its engines wrote while they ran, then the next case.
    assert list(at.values()) == sorted(at.values()), f"lines out of the order they were written:\n{done.stdout}"


def test_facts_are_printed_once_per_engine_not_after_every_case(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "two.yaml").write_text(TWO, encoding="utf-8")
    rich = "rich=tests.plugins_for_tests:rich"
    assert _main("run", "two.yaml", "--engine", "oracle", "--engine", rich) == 0
    out = capsys.readouterr().out
    said = [line for line in out.splitlines() if line.strip().startswith("rich:")]
    assert len([line for line in said if "rich=True" in line]) == 1, out
    assert any("converted by the rich plug-in" in line for line in said), out   # notes stay per case


QUIET = re.compile(r"absl::InitializeLog|^[IWE]\d{4} \d\d:\d\d:\d\d|oneDNN custom operations", re.M)


def test_framework_log_noise_is_silenced_unless_verbose(tmp_path: Path) -> None:
    (tmp_path / "two.yaml").write_text(TWO, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "HARNESS_VERBOSE")}
    args = ("run", "two.yaml", "--case", "first", "--engine", "keras")
    quiet = subprocess.run([sys.executable, "-m", "harness", *args], cwd=tmp_path, capture_output=True, text=True,
                           timeout=300, env={**env, "PYTHONPATH": str(ROOT)})
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert not QUIET.search(quiet.stderr), f"framework log lines without --verbose:\n{quiet.stderr}"
    loud = subprocess.run([sys.executable, "-m", "harness", *args, "--verbose"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**env, "PYTHONPATH": str(ROOT)})
    assert loud.returncode == 0, loud.stdout + loud.stderr
    assert QUIET.search(loud.stderr), f"--verbose should show TensorFlow's own lines (the control):\n{loud.stderr}"


def test_any_process_that_imports_the_engines_imports_tensorflow_quietly() -> None:
    """A worker process (engine workers, fuzz workers, xdist workers) imports harness.engines before any
    framework: TensorFlow's import-time lines are gone there too, and HARNESS_VERBOSE=1 (what --verbose sets for
    the processes a run starts) brings them back."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "HARNESS_VERBOSE")}
    env["PYTHONPATH"] = str(ROOT)
    code = "import harness.engines, tensorflow as tf; print(float(tf.reduce_sum(tf.ones([2]))))"
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert quiet.stdout.strip() == "2.0", quiet.stdout + quiet.stderr
    assert not QUIET.search(quiet.stderr), quiet.stderr
    loud = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**env, "HARNESS_VERBOSE": "1"})
    assert QUIET.search(loud.stderr), f"the control: TensorFlow writes these lines:\n{loud.stderr}"


# ---------------------------------------------------------------- the README's weight-name table

def _size(term: str, sizes: dict[str, int]) -> int:
    """A dimension as the README writes it (``C/G``, ``C·M``, ``kh``, ``1``) on the given sizes."""
    parts = re.split(r"\s*([·/])\s*", term.strip())
    value = sizes[parts[0]] if parts[0] in sizes else int(parts[0])
    for op, name in zip(parts[1::2], parts[2::2]):
        value = value * sizes[name] if op == "·" else value // sizes[name]
    return value


def test_the_readme_weight_table_is_what_the_families_say() -> None:
    """Every layer kind's weights in the README (name, Keras shape, torch shape), evaluated on a geometry whose
    sizes are all different, equal the families' own shapes: the table cannot drift from the code."""
    from harness.layers.geometry import LAYERS, geometry

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (?:`(\w+)` )?\| `(\w+)` \| `\(([^`]*)\)` \| `\(([^`]*)\)` \|", text, re.M)
    table: dict[str, dict[str, tuple[str, str]]] = {}
    layer = ""
    for kind, weight, keras_shape, torch_shape in rows:
        layer = kind if kind in LAYERS else layer
        table.setdefault(layer, {})[weight] = (keras_shape, torch_shape)
    assert set(table) == set(LAYERS), f"the README's weight table lists {sorted(table)}"
    sizes = {"C": 6, "F": 10, "G": 2, "M": 3, "k": 5, "kd": 4, "kh": 5, "kw": 7}
    kernels = {1: [5], 2: [5, 7], 3: [4, 5, 7]}
    for name, kind in LAYERS.items():
        config: dict = {"kernel_size": kernels[kind.rank]}
        config.update({"conv": {"filters": 10, "groups": 2}, "depthwise": {"depth_multiplier": 3},
                       "separable": {"filters": 10, "depth_multiplier": 3},
                       "conv_transpose": {"filters": 10}}[kind.family.name])
        g = geometry(name, config, (1, *(11, 13, 17)[:kind.rank], 6))
        keras, torch = g.weight_shapes(), g.kind.family.torch_weight_shapes(g)
        assert set(table[name]) == set(keras), f"{name}: the README lists {sorted(table[name])}, not {sorted(keras)}"
        for weight, (keras_text, torch_text) in table[name].items():
            said = [tuple(_size(d, sizes) for d in t.split(",") if d.strip()) for t in (keras_text, torch_text)]
            assert said == [tuple(keras[weight]), tuple(torch[weight])], f"{name}.{weight}: README says {said}"
