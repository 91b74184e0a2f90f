"""Fixtures of the tensor-file tests (harness/tensors/): each test reads its files afresh."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.tensors import files as tensor_files


@pytest.fixture(autouse=True)
def fresh_tensor_cache() -> Iterator[None]:
    """The file cache emptied before and after each test: a file a test writes or corrupts is read anew."""
    tensor_files.clear_cache()
    yield
    tensor_files.clear_cache()
