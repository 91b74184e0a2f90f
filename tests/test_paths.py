"""The pytest plugin from any working directory: case files outside the checkout, relative and absolute paths,
folders, `-c /dev/null` and `--rootdir`, unrelated YAML files, and a repro command that works where pytest ran.

Each check is a subprocess `python -m pytest ... --engine oracle` (no framework is imported: fast) on small case
files written to a tmp folder outside the checkout; nothing depends on the directory this module runs from.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent  # the checkout
SMALL_CASE = "conv1d-one-channel"  # a small case of cases/conv.yaml, no sweep: one oracle item
CASE = "cases:\n  - {id: c, layer: Conv1D, input_shape: [1, 5, 2], config: {filters: 2, kernel_size: 3}}\n"
FAILING = ("cases:\n  - {id: wrong, layer: Conv1D, input_shape: [1, 5, 2], config: {filters: 2, kernel_size: 3},\n"
           "     expect: {output_shape: [9, 9, 9]}}\n")
NOT_A_CASE_FILE = "foo: 1\n"  # e.g. a CI config next to the cases
NOT_A_CASE_FILE_ERROR = "a case file is a mapping with a list under 'cases'"
TIMEOUT = 120


def _env() -> dict[str, str]:
    # The outer run's options must not leak into the inner one.
    return {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}


def pytest_in(cwd: Path, *args: str) -> tuple[int, str]:
    """Run pytest (oracle engine only) in `cwd`; its exit code and its output."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "--engine", "oracle", "-p", "no:cacheprovider",
         "-p", "no:hypothesispytest", "-p", "no:randomly", "-rA"],
        cwd=cwd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    return proc.returncode, proc.stdout + proc.stderr


def passed_items(out: str) -> list[str]:
    """The item names (after the last `::`) of the PASSED lines of `-rA`'s summary."""
    return sorted(m.group(1) for m in re.finditer(r"^PASSED \S*::(\S+)", out, re.MULTILINE))


def assert_passed(rc: int, out: str, items: list[str]) -> None:
    assert rc == 0, f"pytest exited with {rc}:\n{out}"
    assert passed_items(out) == sorted(items), f"passed {passed_items(out)}, but should be {items}:\n{out}"
    assert re.search(rf"\b{len(items)} passed\b", out), out
    assert "cannot read YAML" not in out and "[schema]" not in out, out


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the checkout, holding `mine/cases.yaml` (one valid case, id `c`)."""
    assert not tmp_path.resolve().is_relative_to(ROOT)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "cases.yaml").write_text(CASE)
    return tmp_path


@pytest.mark.parametrize("suffix", ["", "::c", "::c[oracle]"])
def test_absolute_file_outside_the_checkout_from_the_checkout_root(outside, suffix):
    rc, out = pytest_in(ROOT, f"{outside / 'mine' / 'cases.yaml'}{suffix}")
    assert_passed(rc, out, ["c[oracle]"])


def test_absolute_folder_outside_the_checkout_from_the_checkout_root(outside):
    rc, out = pytest_in(ROOT, str(outside / "mine"))
    assert_passed(rc, out, ["c[oracle]"])


@pytest.mark.parametrize("suffix", ["", "[oracle]"])
def test_relative_path_into_the_checkout_from_one_of_its_subdirectories(suffix):
    assert (ROOT / "cases" / "conv.yaml").read_text().count(f"id: {SMALL_CASE}\n") == 1
    rc, out = pytest_in(ROOT / "tests", f"../cases/conv.yaml::{SMALL_CASE}{suffix}")
    assert_passed(rc, out, [f"{SMALL_CASE}[oracle]"])


@pytest.mark.parametrize("options", [[], ["-c", os.devnull], ["--rootdir", str(ROOT)]],
                         ids=["no-config", "config-devnull", "rootdir-checkout"])
@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "absolute"])
def test_from_an_unrelated_directory(outside, options, absolute):
    path = outside / "mine" / "cases.yaml" if absolute else Path("mine") / "cases.yaml"
    rc, out = pytest_in(outside, *options, str(path))
    assert_passed(rc, out, ["c[oracle]"])
    rc, out = pytest_in(outside, *options, str(path.parent))  # the folder too
    assert_passed(rc, out, ["c[oracle]"])


def test_a_non_case_yaml_is_left_alone_when_walked_but_named_gives_its_schema_error(outside):
    (outside / "mine" / "ci.yml").write_text(NOT_A_CASE_FILE)
    (outside / "mine" / "deeper").mkdir()
    (outside / "mine" / "deeper" / "compose.yaml").write_text(NOT_A_CASE_FILE)
    for cwd, arg in ((outside, "mine"), (outside, "."), (ROOT, str(outside / "mine"))):
        rc, out = pytest_in(cwd, arg)
        assert_passed(rc, out, ["c[oracle]"])
    # Named, it is a case file that is wrong: the schema error names it as the user can open it.
    for cwd, arg, shown in ((outside, "mine/ci.yml", "mine/ci.yml"),
                            (ROOT, str(outside / "mine" / "ci.yml"), str(outside / "mine" / "ci.yml"))):
        rc, out = pytest_in(cwd, arg)
        assert rc == 1, f"pytest exited with {rc}:\n{out}"
        assert re.search(r"\b1 failed\b", out) and "passed" not in out, out
        assert f"invalid case: {shown}: {NOT_A_CASE_FILE_ERROR}" in out, out
        assert re.search(r"FAILED \S*ci\.yml::file\[schema\]", out), out


def test_ids_stay_unique_across_files_outside_the_checkout(outside):
    (outside / "mine" / "again.yaml").write_text(CASE)  # id `c` again; again.yaml is collected first
    rc, out = pytest_in(outside, "mine")
    assert rc == 1, f"pytest exited with {rc}:\n{out}"
    assert passed_items(out) == ["c[oracle]"], out
    assert "invalid case: mine/cases.yaml::c: id: duplicate id, already used in mine/again.yaml" in out, out


@pytest.mark.parametrize("where", ["relative-below", "checkout-root", "sibling-folder"])
def test_the_repro_command_works_from_the_invocation_directory(outside, where):
    (outside / "mine" / "wrong.yaml").write_text(FAILING)
    (outside / "elsewhere").mkdir()
    cwd, arg = {"relative-below": (outside, "mine/wrong.yaml"),
                "checkout-root": (ROOT, str(outside / "mine" / "wrong.yaml")),
                "sibling-folder": (outside / "elsewhere", "../mine/wrong.yaml")}[where]
    rc, out = pytest_in(cwd, arg)
    assert rc == 1, f"pytest exited with {rc}:\n{out}"
    assert "output shape=(1, 3, 2), but should be (9, 9, 9)" in out, out
    match = re.search(r"repro: python -m harness run (\S+) --case wrong --engine oracle", out)
    assert match, f"no repro command in:\n{out}"
    shown = Path(match.group(1))
    assert shown.is_absolute() == (where != "relative-below"), shown  # relative only below the invocation dir
    assert (cwd / shown).is_file() and (cwd / shown).samefile(outside / "mine" / "wrong.yaml"), shown
    if where == "relative-below":  # and pasted as printed, in that directory, it reproduces the failure
        proc = subprocess.run([sys.executable, "-m", "harness", "run", str(shown), "--case", "wrong",
                               "--engine", "oracle"], cwd=cwd, env=_env(), capture_output=True, text=True,
                              timeout=TIMEOUT)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "output shape=(1, 3, 2), but should be (9, 9, 9)" in proc.stdout, proc.stdout + proc.stderr
