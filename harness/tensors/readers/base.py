"""What every tensor-file reader shares: the problem it raises, the limits (a cap on each declared size, on an
archive member, on how far a member may inflate), the checks of a declared size against the cap and against the
bytes really present, and bounded reading of zip members."""
from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Limits: environment variables, read at every check (a test, or a user with a bigger model, sets them).
TENSOR_BYTES_ENV, DEFAULT_TENSOR_BYTES = "HARNESS_MAX_TENSOR_BYTES", 2 << 30    # one tensor's declared bytes
MEMBER_BYTES_ENV, DEFAULT_MEMBER_BYTES = "HARNESS_MAX_MEMBER_BYTES", 16 << 30   # one archive member (a whole model)
RATIO_ENV, DEFAULT_RATIO = "HARNESS_MAX_INFLATE_RATIO", 100   # how far a compressed member may inflate ...
RATIO_FLOOR = 1 << 20                                          # ... once it inflates past this (zeros compress well)
CHUNK = 1 << 20            # bytes read at a time from a compressed member
MAX_NPY_HEADER = 1 << 16   # NumPy writes a few hundred bytes; it reads at most 10000 by default


class FileProblem(Exception):
    """What is wrong with a `file` / `values` spec: ``field`` is the spec's field (file, key, ...) or None for the
    tensor as a whole (its shape)."""

    def __init__(self, field: str | None, message: str):
        message = stable(message)
        super().__init__(message)
        self.field, self.message = field, message


def _limit(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    try:
        return max(0, int(text)) if text else default
    except ValueError:
        return default


def max_tensor_bytes() -> int:
    return _limit(TENSOR_BYTES_ENV, DEFAULT_TENSOR_BYTES)


def max_member_bytes() -> int:
    return _limit(MEMBER_BYTES_ENV, DEFAULT_MEMBER_BYTES)


def max_ratio() -> int:
    return _limit(RATIO_ENV, DEFAULT_RATIO)


def size(n: int) -> str:
    """Bytes for a message: exact below 1 KiB, else in binary units (and the exact count)."""
    if n < 1024:
        return f"{n} bytes"
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit} ({n} bytes)"
    return f"{n} bytes"


def stable(text: str) -> str:
    """One line, no memory address: a parser's words can carry `<ast.BoolOp object at 0x7f...>`."""
    text = re.sub(r"<([\w.]+) object at 0x[0-9a-fA-F]+>", r"<\1>", " ".join(str(text).split()))
    text = re.sub(r"\bat 0x[0-9a-fA-F]+", "", text)
    return (text[:400] + " ...") if len(text) > 400 else text


def one_line(exc: BaseException) -> str:
    return stable(str(exc)) or type(exc).__name__


def describe(spec: dict) -> str:
    if "file" not in spec:
        return "the literal"
    parts = [repr(spec["file"])]
    parts += [f"{name} {spec[name]!r}" for name in ("key", "layer", "weight") if name in spec]
    return " ".join(parts)


def declared_bytes(shape: tuple[int, ...], dtype: np.dtype, what: str) -> int:
    """The bytes ``shape`` of ``dtype`` needs, refused over the cap (computed in Python integers: a declared shape
    of 2**40 x 2**40 neither overflows nor allocates)."""
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise FileProblem("file", f"{what} declares an impossible shape {list(shape)}")
    n = dtype.itemsize
    for d in shape:
        n *= d
    cap = max_tensor_bytes()
    if n > cap:
        raise FileProblem("file", f"{what} declares shape {list(shape)} of {dtype.name}, {size(n)}: over the cap "
                                  f"of {size(cap)} per tensor (set {TENSOR_BYTES_ENV} to raise it)")
    return n


def check_present(need: int, present: int, what: str, declares: str) -> None:
    """The data a header declares must be the bytes really there."""
    if need != present:
        raise FileProblem("file", f"{what} {declares} {need} bytes of data, but {present} bytes are there "
                                  f"({'truncated' if present < need else 'trailing bytes'}): refused")


# ---------------------------------------------------------------- zip members

def check_member(info: zipfile.ZipInfo, what: str, cap: int, env: str) -> None:
    """A zip member's declared sizes, from the archive's directory, before a byte is inflated: under ``cap``, and
    not inflating more than the ratio allows (a decompression bomb)."""
    if info.flag_bits & 0x1:
        raise FileProblem("file", f"{what} is encrypted")
    if info.file_size > cap:
        raise FileProblem("file", f"{what} declares {size(info.file_size)}: over the cap of {size(cap)} "
                                  f"(set {env} to raise it)")
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > RATIO_FLOOR:
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > max_ratio():
            raise FileProblem("file", f"{what} inflates {ratio:.0f}x ({size(info.compress_size)} to "
                                      f"{size(info.file_size)}): refused as a decompression bomb (limit "
                                      f"{max_ratio()}x; set {RATIO_ENV} to raise it)")


def stream_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, what: str,
                  sink: Callable[[bytes], object] | None = None) -> None:
    """Inflate a member in bounded chunks (to ``sink``, or only to check it): exactly its declared size, its CRC
    right (zipfile checks it at the end). A stream longer or shorter than declared is refused."""
    got = 0
    try:
        with archive.open(info) as fh:
            for block in iter(lambda: fh.read(CHUNK), b""):
                got += len(block)
                if sink is not None:
                    sink(block)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise FileProblem("file", f"{what} is corrupt: {one_line(exc)}") from None
    if got != info.file_size:
        raise FileProblem("file", f"{what} inflates to {got} bytes, its directory says {info.file_size}")


def read_exactly(fh: Any, n: int, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise FileProblem("file", f"{what} ends after {len(data)} of {n} bytes (truncated)")
    return data


def open_zip(path: str, name: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise FileProblem("file", f"{name} is not a readable zip archive: {one_line(exc)}") from None


# ---------------------------------------------------------------- the reader interface

@dataclass(frozen=True)
class Entry:
    """A tensor in a file, checked: its shape, dtype, and where its bytes are (format-specific)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    where: Any = None


class Reader:
    """One file's index (names, shapes, dtypes, where the data is), built when first asked and kept; no open file
    handle outlives a call. ``entry`` runs every check on an addressed tensor; validation asks it for the shape,
    the run asks it again and then reads (the same checks at both)."""

    fmt = ""
    label = ""   # for messages

    def __init__(self, path: str):
        self.path, self.name = path, Path(path).name
        try:
            self.open()
        except FileProblem:
            raise
        except Exception as exc:   # noqa: BLE001 - a malformed file: its parser's words, on one line
            raise FileProblem("file", f"{self.name}: cannot read it as a {self.label} file: {one_line(exc)}") from None

    def open(self) -> None:
        raise NotImplementedError

    def shape(self, spec: dict) -> tuple[int, ...]:
        return self._guard(lambda s: self.entry(s).shape, spec)

    def values(self, spec: dict) -> np.ndarray:
        return self._guard(lambda s: self.read(s, self.entry(s)), spec)

    def _guard(self, fn: Callable[[dict], Any], spec: dict) -> Any:
        try:
            return fn(spec)
        except FileProblem:
            raise
        except Exception as exc:   # noqa: BLE001 - a hostile file makes its parser raise anything: one FileProblem
            raise FileProblem("file", f"{self.name}: cannot read {describe(spec)}: {one_line(exc)}") from None

    def entry(self, spec: dict) -> Entry:
        raise NotImplementedError

    def read(self, spec: dict, entry: Entry) -> np.ndarray:
        raise NotImplementedError

    def missing(self, field: str, what: str, name: Any, available: list[str]) -> FileProblem:
        shown = ", ".join(available[:20]) + (f", ... ({len(available)} in all)" if len(available) > 20 else "")
        return FileProblem(field, f"{self.name} has no {what} {name!r}; it has: {shown or 'none'}")


def numeric(dtype: np.dtype, what: str) -> None:
    """A tensor holds floats or integers (bfloat16 included): anything else is refused, from the header."""
    if dtype.hasobject:
        raise FileProblem("file", f"{what} holds Python objects (a pickle), refused: loading them could run code; "
                                  "save plain numeric arrays (np.save of a float or integer array)")
    if not (dtype.kind in "fiu" or dtype.name == "bfloat16"):
        raise FileProblem(None, f"{what} holds {dtype} values; a tensor needs floats or integers")


def chunks(total: int) -> Iterator[int]:
    while total > 0:
        yield min(total, CHUNK)
        total -= CHUNK
