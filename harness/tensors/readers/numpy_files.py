""".npy and .npz readers: the .npy header parsed here (a dict literal, never evaluated as code, its errors without
memory addresses), its declared size checked against the cap and the bytes present, .npz members read one at a
time in bounded chunks (a member's declared size checked before it is inflated; its stream checked to the byte)."""
from __future__ import annotations

import ast
import os
import struct
import zipfile
from typing import Any

import numpy as np

from .base import (
    CHUNK,
    MAX_NPY_HEADER,
    TENSOR_BYTES_ENV,
    Entry,
    FileProblem,
    Reader,
    check_member,
    check_present,
    declared_bytes,
    max_tensor_bytes,
    numeric,
    open_zip,
    read_exactly,
    stream_member,
)

HEADER_KEYS = {"descr", "fortran_order", "shape"}


def npy_header(fh: Any, what: str) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """Shape, dtype, Fortran order and the header's length (where the data starts) of a .npy stream. The header
    is a Python dict literal: parsed with ast.literal_eval (no names, no calls), then every value checked."""
    magic = read_exactly(fh, 8, what)
    if magic[:6] != b"\x93NUMPY":
        raise FileProblem("file", f"{what} is not a .npy array (it does not start with NumPy's magic bytes)")
    major = magic[6]
    if major == 1:
        length, start = struct.unpack("<H", read_exactly(fh, 2, what))[0], 10
    elif major in (2, 3):
        length, start = struct.unpack("<I", read_exactly(fh, 4, what))[0], 12
    else:
        raise FileProblem("file", f"{what} is a .npy of unknown version {major}.{magic[7]}")
    if length > MAX_NPY_HEADER:
        raise FileProblem("file", f"{what} declares a header of {length} bytes (at most {MAX_NPY_HEADER}): refused")
    text = read_exactly(fh, length, what).decode("utf-8" if major == 3 else "latin1", errors="replace")
    bad = FileProblem("file", f"{what} has a malformed header: not a plain dict literal of descr, fortran_order "
                              "and shape (refused; nothing in it was run)")
    try:
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise bad from None
    if not isinstance(header, dict) or set(header) != HEADER_KEYS:
        raise bad
    shape, fortran = header["shape"], header["fortran_order"]
    if not (isinstance(shape, tuple) and all(type(d) is int and d >= 0 for d in shape)) or type(fortran) is not bool:
        raise bad
    try:
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except Exception:   # noqa: BLE001 - a hostile descr makes NumPy raise any of several types
        raise FileProblem("file", f"{what} has a malformed header: its descr is not a NumPy dtype") from None
    numeric(dtype, what)
    return shape, dtype, fortran, start + length


def _array(data: bytes | bytearray | memoryview, entry: Entry) -> np.ndarray:
    fortran = entry.where[1]
    flat = np.frombuffer(data, dtype=entry.dtype, count=int(np.prod(entry.shape, dtype=np.int64)))
    return flat.reshape(entry.shape, order="F" if fortran else "C")


def _read_into(fh: Any, n: int, what: str) -> bytearray:
    """n bytes in chunks (a stream shorter than its header says is refused)."""
    out = bytearray(n)
    view, got = memoryview(out), 0
    while got < n:
        block = fh.read(min(CHUNK, n - got))
        if not block:
            raise FileProblem("file", f"{what} ends after {got} of {n} bytes of data (truncated)")
        view[got:got + len(block)] = block
        got += len(block)
    return out


class Npy(Reader):
    fmt = "npy"
    label = ".npy"

    def open(self) -> None:
        with open(self.path, "rb") as fh:
            shape, dtype, fortran, start = npy_header(fh, self.name)
        self._entry = Entry(shape, dtype, (start, fortran))
        self._present = os.path.getsize(self.path) - start

    def entry(self, spec: dict) -> Entry:
        e = self._entry
        need = declared_bytes(e.shape, e.dtype, self.name)
        check_present(need, self._present, self.name, f"declares shape {list(e.shape)} of {e.dtype.name}:")
        return e

    def read(self, spec: dict, entry: Entry) -> np.ndarray:
        n = declared_bytes(entry.shape, entry.dtype, self.name)
        with open(self.path, "rb") as fh:
            fh.seek(entry.where[0])
            return _array(_read_into(fh, n, self.name), entry)


class Npz(Reader):
    fmt = "npz"
    label = ".npz"

    def open(self) -> None:
        with open_zip(self.path, self.name) as archive:
            self._members = {i.filename[:-4]: i for i in archive.infolist() if i.filename.endswith(".npy")}
        self._entries: dict[str, Entry] = {}
        self._verified: set[str] = set()

    def _member(self, key: str) -> zipfile.ZipInfo:
        if key not in self._members:
            raise self.missing("key", "array", key, sorted(self._members))
        return self._members[key]

    def entry(self, spec: dict) -> Entry:
        key = spec["key"]
        info, what = self._member(key), f"{self.name} key {key!r}"
        check_member(info, what, max_tensor_bytes() + MAX_NPY_HEADER, TENSOR_BYTES_ENV)
        with open_zip(self.path, self.name) as archive:
            if key not in self._entries:
                try:
                    with archive.open(info) as fh:
                        shape, dtype, fortran, start = npy_header(fh, what)
                except (zipfile.BadZipFile, EOFError, OSError) as exc:
                    raise FileProblem("file", f"{what} is corrupt: {exc}") from None
                self._entries[key] = Entry(shape, dtype, (start, fortran))
            e = self._entries[key]
            need = declared_bytes(e.shape, e.dtype, what)
            check_present(need, info.file_size - e.where[0], what, f"declares shape {list(e.shape)} of "
                                                                   f"{e.dtype.name}:")
            if key not in self._verified:   # the stream itself: its length and CRC, in bounded chunks
                stream_member(archive, info, what)
                self._verified.add(key)
        return e

    def read(self, spec: dict, entry: Entry) -> np.ndarray:
        key = spec["key"]
        info, what = self._member(key), f"{self.name} key {key!r}"
        n = declared_bytes(entry.shape, entry.dtype, what)
        with open_zip(self.path, self.name) as archive:
            try:
                with archive.open(info) as fh:
                    read_exactly(fh, entry.where[0], what)
                    data = _read_into(fh, n, what)
                    if fh.read(1):
                        raise FileProblem("file", f"{what} holds more data than its header declares")
            except (zipfile.BadZipFile, EOFError, OSError) as exc:
                raise FileProblem("file", f"{what} is corrupt: {exc}") from None
        return _array(data, entry)
