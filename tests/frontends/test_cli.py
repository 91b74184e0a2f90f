"""`python -m harness validate|run`: exit codes, error text, the per-case table."""
import re
import subprocess
import sys
import textwrap

import pytest

GOOD = textwrap.dedent("""\
    cases:
      - id: first
        layer: Conv1D
        input_shape: [1, 6, 2]
        config: {filters: 3, kernel_size: 3}
      - id: second
        layer: DepthwiseConv2D
        input_shape: [1, 4, 4, 2]
        config: {kernel_size: 2}
        sweep: {strides: [1, 2]}
    """)
BAD = GOOD + """\
  - id: broken
    layer: Conv2D
    input_shape: [1, 5, 5, 2]
    config: {filters: 3, kernel_size: 3, padding: causal}
"""


def harness(*args, cwd):
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    return tmp_path


def test_validate_good_file(files):
    done = harness("validate", "good.yaml", cwd=files)
    assert done.returncode == 0, f"exit={done.returncode}, but should be 0:\n{done.stdout}{done.stderr}"
    assert "3 valid cases, 0 invalid" in done.stdout, done.stdout


def test_validate_bad_file(files):
    done = harness("validate", "bad.yaml", cwd=files)
    assert done.returncode == 1, f"exit={done.returncode}, but should be 1:\n{done.stdout}{done.stderr}"
    assert "invalid case: bad.yaml::broken: config.padding: Conv2D takes padding valid | same, got 'causal'" \
        in done.stderr, done.stderr
    assert "3 valid cases, 1 invalid" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr


def test_run_prints_the_table(files):
    done = harness("run", "good.yaml", "--case", "first", "--engine", "oracle", cwd=files)
    assert done.returncode == 0, f"exit={done.returncode}, but should be 0:\n{done.stdout}{done.stderr}"
    out = done.stdout
    assert "good.yaml::first  Conv1D [1, 6, 2] float32" in out, out
    assert re.search(r"^engine\s+verdict\s+err/bound\s+max abs\s+max rel\s+over\s+params\s+shape\s+message", out, re.M)
    # Conv1D 2 -> 3 channels, k=3: 3*2*3 + 3 = 21 parameters; output length 6 - 3 + 1 = 4.
    assert re.search(r"^oracle\s+pass\s+0\s+0\s+0\s+0\s+21\s+1x4x3\s*$", out, re.M), out
    assert "second" not in out, "--case first should run only that case"
    assert "1 cases, 0 failing (case, engine) pairs, 0 invalid cases" in out, out


def test_run_selects_every_point_of_a_sweep_by_its_base_id(files):
    done = harness("run", "good.yaml", "--case", "second", "--engine", "oracle", cwd=files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "good.yaml::second(strides=1)" in done.stdout and "good.yaml::second(strides=2)" in done.stdout
    # DepthwiseConv2D C=2, M=1, k=2: 2*2*2 + 2 = 10 parameters; strides 2 on 4x4 valid -> 2x2.
    assert re.search(r"^oracle\s+pass\s+0\s+0\s+0\s+0\s+10\s+1x2x2x2\s*$", done.stdout, re.M), done.stdout


def test_unknown_engine_is_a_usage_error(files):
    done = harness("run", "good.yaml", "--engine", "tensorflow-lite", cwd=files)
    assert done.returncode == 2, f"exit={done.returncode}, but should be 2:\n{done.stdout}{done.stderr}"
    assert "--engine 'tensorflow-lite': not a built-in engine" in done.stderr, done.stderr


def test_a_case_id_that_matches_nothing_is_a_usage_error(files):
    done = harness("run", "good.yaml", "--case", "frist", "--engine", "oracle", cwd=files)
    assert done.returncode == 2, f"exit={done.returncode}, but should be 2:\n{done.stdout}{done.stderr}"
    assert "--case frist: no such case in good.yaml" in done.stderr, done.stderr


# Each subcommand's own option, next to the common ones every subcommand takes.
OWN_OPTION = {"validate": None, "run": None, "report": "--baseline", "scoreboard": "--fuzz", "mutants": "--killers",
              "lint": "--weak-only", "fuzz": "--examples", "coverage": "--missing-only", "extract": "--out",
              "diff": "--transfer-weights"}


def test_help_lists_every_subcommand(tmp_path):
    done = harness("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "{" + ",".join(OWN_OPTION) + "}" in done.stdout, done.stdout


@pytest.mark.parametrize("name", OWN_OPTION)
def test_subcommand_help(name, capsys):
    from harness.frontends.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([name, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0, out
    # The shared options each takes are tests/frontends/test_cli_usability.py's: here, its own option and --verbose.
    for option in ("--verbose", OWN_OPTION[name]):
        assert option is None or option in out, f"`{name} --help` does not list {option}:\n{out}"
