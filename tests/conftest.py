"""Shared test configuration for every folder of tests/: the helper modules importable, pytester, shared fixtures.

The test folders mirror the harness's packages (tests/layers/ tests harness/layers/, ...); tests of the public
modules at the top of harness/ and the cross-cutting ones (no framework import, paths) stay at the top.
Helpers that tests and engine specs import by name (``plugins_for_tests``, ``fake_worker_engines``,
``fuzz_engines_for_tests``, ``lazy_import``, ``test_report_helpers``, ``testkit``) live in tests/ itself.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/ on sys.path in every test process, whatever pytest's import mode and the folder a test module is in:
# `import plugins_for_tests` and `from testkit import ...` work from tests/*/ as from tests/. The checkout too
# (where pytest did not start in it): engine specs such as `tests.plugins_for_tests:flipped` name modules from there.
TESTS = str(Path(__file__).resolve().parent)
ROOT = str(Path(__file__).resolve().parents[1])
for folder in (ROOT, TESTS):
    if folder not in sys.path:
        sys.path.insert(0, folder)

pytest_plugins = ["pytester"]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Tests import keras directly (pytest.importorskip("keras")), not through harness.keras_layer.import_keras:
    # torch goes first in every test process all the same, once collection is over (collecting loads no framework,
    # test_no_framework_import.py). harness.keras_layer.torch_before_tensorflow says why.
    if "tensorflow" not in sys.modules:
        from harness.keras_layer import torch_before_tensorflow

        torch_before_tensorflow()


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """torch on one thread for the test, its count restored after: tiny convolutions spend far longer in intra-op
    threads waiting for each other than computing (and the fuzz workers run so). torch is imported when a test
    asks for this, not at collection; without torch the test skips."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
