"""Readers of tensor files, one module per format family: every declared size checked against a cap and against
the bytes really present before anything is read, archives read member by member in bounded chunks, no open file
handle kept between calls (a process caches each file's index, keyed by its modification stamp, never a handle)."""
from __future__ import annotations

import functools
import os

from .base import (
    DEFAULT_MEMBER_BYTES,
    DEFAULT_RATIO,
    DEFAULT_TENSOR_BYTES,
    MEMBER_BYTES_ENV,
    RATIO_ENV,
    TENSOR_BYTES_ENV,
    Entry,
    FileProblem,
    Reader,
    describe,
    max_member_bytes,
    max_ratio,
    max_tensor_bytes,
    one_line,
    stable,
)
from .keras_files import H5, KERAS_FORMAT, Keras
from .numpy_files import Npy, Npz
from .safetensors_file import Safetensors
from .torch_files import Torch

__all__ = ["DEFAULT_MEMBER_BYTES", "DEFAULT_RATIO", "DEFAULT_TENSOR_BYTES", "MEMBER_BYTES_ENV", "RATIO_ENV",
           "TENSOR_BYTES_ENV", "Entry", "FileProblem", "Reader", "describe", "max_member_bytes", "max_ratio",
           "max_tensor_bytes", "one_line", "stable", "KERAS_FORMAT", "READERS", "reader", "open_reader",
           "clear_cache", "CACHE_FILES"]

READERS: dict[str, type[Reader]] = {"npy": Npy, "npz": Npz, "safetensors": Safetensors, "torch": Torch,
                                    "keras": Keras, "h5": H5}
CACHE_FILES = 8   # files whose index a process keeps


def stamp(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size, st.st_ino


def reader(path: str, fmt: str) -> Reader:
    """The reader of ``path`` (its index built once per process and modification stamp)."""
    try:
        key = stamp(path)
    except OSError as exc:
        raise FileProblem("file", f"cannot read {path}: {exc.strerror or exc}") from None
    return open_reader(path, fmt, key)


@functools.lru_cache(maxsize=CACHE_FILES)
def open_reader(path: str, fmt: str, stamp: tuple[int, int, int]) -> Reader:
    return READERS[fmt](path)


def clear_cache() -> None:
    open_reader.cache_clear()
