"""The pytest plugin end to end, in subprocesses: collection, plug-in engines, messages, schema items, xdist."""
import re
import subprocess
import sys

import pytest

from testkit import TESTS

PLUGINS = (TESTS / "plugins_for_tests.py").read_text()

TWO_CASES = """\
cases:
  - id: conv
    layer: Conv1D
    input_shape: [2, 7, 3]
    config: {filters: 2, kernel_size: 3, padding: same}
  - id: dw
    layer: DepthwiseConv2D
    input_shape: [1, 5, 4, 2]
    config: {kernel_size: [3, 2], depth_multiplier: 2}
    dtype: float64
"""

BAD = """\
cases:
  - id: fine
    layer: SeparableConv1D
    input_shape: [1, 6, 2]
    config: {filters: 3, kernel_size: 2}
  - id: broken
    layer: Conv2D
    input_shape: [1, 5, 5, 2]
    config: {filters: 3, kernel_size: "3"}
"""

TIMEOUT = 120


@pytest.fixture
def project(pytester):
    """A pytester folder with the test plug-ins importable as `plugins_for_tests` (the folder is on PYTHONPATH)."""
    pytester.makepyfile(plugins_for_tests=PLUGINS)
    return pytester


def run(pytester, *args):
    # hypothesis's pytest plug-in is not needed by case files and costs a second per process.
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-ra", *args,
                                         timeout=TIMEOUT)


def no_traceback(result):
    text = result.stdout.str() + result.stderr.str()
    for sign in ("Traceback", "raise self.error", "def runtest", "_judge("):
        assert sign not in text, f"the output shows Python internals ({sign!r}):\n{text}"


def test_collection_named_files_and_cases_folder(project):
    (project.path / "cases").mkdir()
    (project.path / "cases" / "inside.yaml").write_text(TWO_CASES)
    (project.path / "other").mkdir()
    (project.path / "other" / "outside.yaml").write_text(TWO_CASES.replace("id: conv", "id: far"))
    # No argument: cases/ is collected, a YAML elsewhere is not.
    result = run(project, "--collect-only", "-q")
    items = {line for line in result.stdout.lines if "::" in line}
    want = {f"cases/inside.yaml::{c}[{e}]" for c in ("conv", "dw") for e in ("oracle", "keras", "torch")}
    assert items == want, f"collected {sorted(items)}, but should be {sorted(want)}"
    # Named on the command line: collected, one item per (case, engine).
    result = run(project, "--collect-only", "-q", "other/outside.yaml")
    items = {line for line in result.stdout.lines if "::" in line}
    want = {f"other/outside.yaml::{c}[{e}]" for c in ("far", "dw") for e in ("oracle", "keras", "torch")}
    assert items == want, f"collected {sorted(items)}, but should be {sorted(want)}"
    # A built-in named restricts the engines.
    result = run(project, "--collect-only", "-q", "--engine", "oracle", "other/outside.yaml")
    items = {line for line in result.stdout.lines if "::" in line}
    assert items == {"other/outside.yaml::far[oracle]", "other/outside.yaml::dw[oracle]"}, sorted(items)


def test_flipped_kernel_plugin_fails_with_a_domain_message(project):
    project.makefile(".yaml", flip=TWO_CASES)
    result = run(project, "--engine", "oracle", "--engine", "plugins_for_tests:flipped", "flip.yaml")
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    for case in ("conv", "dw"):
        pattern = (r"flipped: max error/bound \S+ at \((\d+, )+\d+\): \S+ vs \S+ oracle "
                   r"\(\d+ of \d+ elements over the bound\) \[flip\.yaml::" + case + r"\]")
        assert re.search(pattern, out), f"no failure message matching {pattern!r} in:\n{out}"
        ratio = float(re.search(r"max error/bound (\S+) at .*\[flip\.yaml::" + case + r"\]", out).group(1))
        assert ratio > 100, f"max error/bound={ratio}, but should be far over 1 for a flipped kernel"
        assert f"repro: python -m harness run flip.yaml --case {case} --engine" in out, out
    no_traceback(result)
    # The repro line must reproduce: run it as printed, from the same folder.
    repro = re.search(r"repro: (python -m harness run flip\.yaml --case conv .*)$", out, re.M).group(1)
    done = subprocess.run(repro.replace("python", sys.executable, 1), shell=True, cwd=project.path,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 1, f"repro exit={done.returncode}, but should be 1:\n{done.stdout}{done.stderr}"
    assert re.search(r"^flipped\s+FAIL", done.stdout, re.M), f"repro does not show the failure:\n{done.stdout}"


def test_correct_plugin_passes_in_every_dtype(project):
    project.makefile(".yaml", ok=TWO_CASES + "    sweep: {dtype: [float16, bfloat16, float32, float64]}\n")
    result = run(project, "--engine", "oracle", "--engine", "plugins_for_tests:correct", "ok.yaml")
    result.assert_outcomes(passed=2 + 2 * 4)


def test_not_implemented_plugin_skips(project):
    project.makefile(".yaml", skip=TWO_CASES)
    result = run(project, "--engine", "oracle", "--engine", "plugins_for_tests:unsupported", "skip.yaml")
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(["*unsupported cannot run this case: Conv1D is not implemented by this plug-in*"])


def test_malformed_file_gives_a_schema_item_and_others_still_run(project):
    project.makefile(".yaml", bad=BAD, good=TWO_CASES)
    (project.path / "broken.yaml").write_text("cases:\n  - id: x\n    config: {filters: 3\n")
    result = run(project, "--engine", "oracle", "bad.yaml", "good.yaml", "broken.yaml")
    # bad.yaml: 'fine' passes, 'broken' is a failed schema item; good.yaml: 2 pass; broken.yaml: 1 schema item.
    result.assert_outcomes(passed=3, failed=2)
    out = result.stdout.str()
    assert "invalid case: bad.yaml::broken: config.kernel_size: must be a positive integer" in out, out
    assert re.search(r"FAILED bad\.yaml::broken\[schema\]", out), out
    assert re.search(r"FAILED broken\.yaml::file\[schema\]", out), out
    assert "broken.yaml: cannot read YAML" in out, out
    no_traceback(result)


def test_xdist_gives_the_same_verdicts(project):
    project.makefile(".yaml", mix=TWO_CASES + "    sweep: {strides: [1, 2]}\n")
    args = ["--engine", "oracle", "--engine", "plugins_for_tests:flipped", "--engine",
            "plugins_for_tests:unsupported", "mix.yaml"]
    serial = run(project, *args).parseoutcomes()
    parallel = run(project, "-n", "2", *args).parseoutcomes()
    want = {"passed": 3, "failed": 3, "skipped": 3}
    assert {k: serial.get(k) for k in want} == want, f"serial outcomes={serial}, but should be {want}"
    assert {k: parallel.get(k) for k in want} == want, f"-n 2 outcomes={parallel}, but should be {want}"


def test_a_crash_is_not_the_known_bug_of_a_strict_xfail(project):
    # xfail names a disagreement the engine must still show; a crash of that engine is a failure of its own.
    marked = TWO_CASES.replace("    dtype: float64\n", "    dtype: float64\n    xfail: {flipped: known flip}\n"
                               "").replace("padding: same}\n", "padding: same}\n    xfail: {crashing: known}\n")
    project.makefile(".yaml", marked=marked)
    result = run(project, "--engine", "oracle", "--engine", "plugins_for_tests:flipped",
                 "--engine", "plugins_for_tests:crashing", "marked.yaml")
    # conv: flipped fails (not marked), crashing errors under its xfail -> failed; dw: flipped xfails,
    # crashing errors -> failed.
    result.assert_outcomes(passed=2, failed=3, xfailed=1)
    result.stdout.fnmatch_lines(["*crashing: RuntimeError: the port crashed*"])
