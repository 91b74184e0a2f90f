"""The plug-in API as users meet it: a typo in --engine MODULE:CALLABLE is one clear error before any case runs
(registry, CLI, pytest), and two plug-ins under one name are an error unless they are the same spec."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness import engines
from harness.frontends.cli import main
from harness.cases.selection import select_engines
from testkit import ROOT

CASE = """\
cases:
  - id: one
    layer: Conv1D
    input_shape: [1, 5, 2]
    config: {filters: 2, kernel_size: 3}
"""


@pytest.fixture(autouse=True)
def own_registry(monkeypatch):
    """An empty registry of plug-ins for each test: what other tests in this process registered does not take
    its names, and what it registers is gone after it."""
    monkeypatch.setattr(engines, "_plugins", {})
    monkeypatch.setattr(engines, "_loaded", dict(engines._loaded))


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """Plug-in modules on sys.path: one whose dependency is missing, one that fails as it is imported."""
    (tmp_path / "needs_dependency.py").write_text("import no_such_dependency_xyz\n\ndef port(*args):\n    pass\n")
    (tmp_path / "fails_on_import.py").write_text("raise RuntimeError('cannot start')\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def error_of(spec: str) -> str:
    with pytest.raises(ValueError) as caught:
        engines.register_plugin(spec)
    assert spec not in engines._plugins.values(), "a spec that failed must not be registered"
    return str(caught.value)


@pytest.mark.parametrize("spec, said", [
    ("tests.plugins_for_tests:flipd",
     "--engine 'tests.plugins_for_tests:flipd': tests.plugins_for_tests has no attribute 'flipd'; "
     "did you mean 'flipped'?"),
    ("tests.plugins_for_test:flipped",
     "--engine 'tests.plugins_for_test:flipped': ModuleNotFoundError: no module named 'tests.plugins_for_test'; "
     "did you mean 'tests.plugins_for_tests'"),
    # Which other close names are offered depends on what the current directory holds (it is on sys.path).
    ("harnes.detection.mutants:flipped_kernel",
     "--engine 'harnes.detection.mutants:flipped_kernel': ModuleNotFoundError: no module named 'harnes'; "
     "did you mean "),
    ("mine=harness.mutation.mutants:MUTANTS",
     "--engine 'mine=harness.mutation.mutants:MUTANTS': harness.mutation.mutants:MUTANTS is not callable "
     "(a dict)"),
    ("harness.fuzz.search:Stats.mrge",
     "--engine 'harness.fuzz.search:Stats.mrge': harness.fuzz.search:Stats has no attribute 'mrge'; "
     "did you mean 'merge'?"),
    ("needs_dependency:port",
     "--engine 'needs_dependency:port': importing needs_dependency failed: ModuleNotFoundError: No module named "
     "'no_such_dependency_xyz' (a dependency of the plug-in is not installed here)"),
    ("fails_on_import:port",
     "--engine 'fails_on_import:port': importing fails_on_import failed: RuntimeError: cannot start"),
    ("tests.plugins_for_tests", "--engine 'tests.plugins_for_tests': a plug-in engine is [NAME=]MODULE:CALLABLE"),
    ("my port=tests.plugins_for_tests:flipped", "--engine 'my port=tests.plugins_for_tests:flipped': engine name "
                                                "'my port' may hold only letters, digits"),
    ("keras=tests.plugins_for_tests:flipped", "--engine 'keras=tests.plugins_for_tests:flipped': plug-in engine "
                                              "name 'keras' clashes with a built-in engine"),
])
def test_a_typo_in_a_plugin_spec_is_one_error_that_says_what_failed(spec, said, modules):
    error = error_of(spec)
    assert error.startswith(said), error
    if spec.startswith("harnes."):
        assert "'harness'" in error.split("did you mean", 1)[1].split("?")[0], error


def test_a_missing_attribute_without_a_close_match_lists_the_module_callables():
    text = error_of("tests.plugins_for_tests:zzz")
    assert "has no attribute 'zzz'; it has: accepting, correct, crashing, flipped" in text, text


def test_the_same_plugin_twice_is_one_engine():
    first = engines.register_plugin("tests.plugins_for_tests:flipped")
    assert engines.register_plugin("flipped=tests.plugins_for_tests:flipped") == first == "flipped"
    assert select_engines(["oracle", "tests.plugins_for_tests:flipped", "tests.plugins_for_tests:flipped"]) == \
        ["oracle", "flipped"]


def test_two_plugins_under_one_name_are_an_error_that_says_how_to_name_them():
    engines.register_plugin("port=tests.plugins_for_tests:correct")
    text = error_of("port=tests.plugins_for_tests:flipped")
    assert text == ("--engine 'tests.plugins_for_tests:correct' and --engine 'tests.plugins_for_tests:flipped': "
                    "two plug-in engines named 'port'; name them apart with NAME=MODULE:CALLABLE, e.g. --engine "
                    "port=tests.plugins_for_tests:correct --engine port_2=tests.plugins_for_tests:flipped"), text
    with pytest.raises(ValueError, match="two plug-in engines named 'flipped'"):
        select_engines(["tests.plugins_for_tests:flipped", "flipped=tests.fuzz_engines_for_tests:sticky"])
    # Named apart, both run.
    assert select_engines(["oracle", "port=tests.plugins_for_tests:correct", "other=tests.plugins_for_tests:flipped"]) \
        == ["oracle", "port", "other"]


def test_the_command_line_stops_on_a_typo_before_any_case_runs(tmp_path, capsys):
    cases = tmp_path / "one.yaml"
    cases.write_text(CASE)
    assert main(["run", str(cases), "--engine", "oracle", "--engine", "tests.plugins_for_tests:flipd"]) == 2
    out, err = capsys.readouterr()
    assert err.strip() == ("error: --engine 'tests.plugins_for_tests:flipd': tests.plugins_for_tests has no "
                           "attribute 'flipd'; did you mean 'flipped'?"), err
    assert "one" not in out, f"no case should run: {out}"
    assert main(["run", str(cases), "--engine", "oracle", "--engine", "tests.plugins_for_tests:flipped",
                 "--engine", "tests.fuzz_engines_for_tests:offset", "--engine", "x=tests.plugins_for_tests:flipped",
                 "--engine", "flipped=tests.fuzz_engines_for_tests:sticky"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --engine 'tests.plugins_for_tests:flipped' and --engine "
                          "'tests.fuzz_engines_for_tests:sticky': two plug-in engines named 'flipped'"), err


def test_pytest_stops_on_a_typo_at_configure_with_one_usage_error(tmp_path):
    (tmp_path / "one.yaml").write_text(CASE)
    done = subprocess.run([sys.executable, "-m", "pytest", "one.yaml", "-n", "2", "-p", "no:cacheprovider",
                           "--engine", "oracle", "--engine", "tests.plugins_for_tests:flipd"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    said = ("ERROR: --engine 'tests.plugins_for_tests:flipd': tests.plugins_for_tests has no attribute 'flipd'; "
            "did you mean 'flipped'?")
    assert done.stderr.count(said) == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr and "passed" not in done.stdout, done.stdout
