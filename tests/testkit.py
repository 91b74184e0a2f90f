"""Shared by the tests of every folder: the checkout's paths, and a YAML case file written and loaded in one call.

Importable as ``testkit`` in every pytest process: tests/conftest.py puts tests/ on sys.path. A test module that a
subprocess imports as an engine (frontends/test_signals.py, frontends/test_exit_codes.py) imports no testkit: only
the checkout, or its own folder, is on that process's path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import engines
from harness.cases.schema import Case, load_file
from harness.engines.worker import WorkerEngine

TESTS = Path(__file__).resolve().parent   # tests/: the helper modules (plugins_for_tests, ...) live here
ROOT = TESTS.parent                        # the checkout
CASES = ROOT / "cases"                     # the shipped case files
HARNESS = ROOT / "harness"


def write_yaml(folder: Path, text: str, name: str = "c.yaml") -> Path:
    """``text`` written to folder/name (UTF-8); the file's path."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_cases(folder: Path, text: str, name: str = "c.yaml") -> list[Case]:
    """The cases of a YAML text written to folder/name, which must load without an error."""
    cases, errors = load_file(write_yaml(folder, text, name))
    assert not errors, errors
    return cases


def load_case(folder: Path, text: str, name: str = "c.yaml") -> Case:
    """The first case of a YAML text written to folder/name, which must load without an error."""
    cases = load_cases(folder, text, name)
    assert cases, f"{name} holds no case:\n{text}"
    return cases[0]


def register_plugins(*names: str) -> None:
    """The plug-in engines of tests/plugins_for_tests.py of these names, each registered under its own name."""
    for name in names:
        engines.register_plugin(f"{name}=tests.plugins_for_tests:{name}")


def close_workers(*names: str) -> None:
    """These engines dropped from the registry's loaded ones, and the worker process of each that runs apart stopped
    (a worker holds a framework, about 1 GB for a converter's)."""
    for name in names:
        worker = engines._loaded.pop(name, None)
        if isinstance(worker, WorkerEngine):
            worker.close()


def hand_ports() -> Any:
    """tests/models/ports (the hand-written PyTorch ports), imported on tests/models's path; skips the test where
    torch or keras is missing. Call it inside a test or fixture: importing it imports torch."""
    import os
    import sys

    import pytest

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    folder = str(Path(__file__).resolve().parent / "models")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import ports

    return ports


def diff_cli(saved: dict[str, Path], factory: str, *args: str) -> tuple[int, dict[str, Any], str]:
    """`python -m harness diff saved['model'] saved['port']:FACTORY ARGS` in this process, its --json written under
    saved['root']: (exit code, the JSON, stdout)."""
    import contextlib
    import io
    import json

    from harness.frontends.cli import main

    out = saved["root"] / f"{factory}-{len(list(saved['root'].iterdir()))}.json"
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        code = main(["diff", str(saved["model"]), f"{saved['port']}:{factory}", "--json", str(out), *args])
    return code, json.loads(out.read_text()), text.getvalue()
