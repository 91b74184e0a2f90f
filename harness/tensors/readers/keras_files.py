"""Keras weights readers (.weights.h5 / .h5, and the model.weights.h5 inside a .keras archive), with h5py: datasets
and their names only (a .keras archive's config.json is never read, so no layer, Lambda or object is deserialised).
Every h5py.File is opened for one call and closed before it returns (one kept open until interpreter shutdown made
HDF5 call back into a finalised Python: SIGSEGV). A .keras member stored (Keras writes it so) is read in place
through a bounded window of the archive; a compressed one is checked against the caps and inflated in bounded
chunks to a temporary file, removed with the reader. Links to other files, external and virtual datasets are
refused: a weights file names only its own bytes."""
from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import tempfile
import weakref
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...layers.families import LAYERS
from .base import (
    MEMBER_BYTES_ENV,
    Entry,
    FileProblem,
    Reader,
    check_member,
    declared_bytes,
    max_member_bytes,
    numeric,
    one_line,
    open_zip,
    read_exactly,
    stream_member,
)

KERAS_FORMAT = "keras"
WEIGHTS_MEMBER = "model.weights.h5"
MAX_CHUNKS = 100_000     # chunks of one dataset whose placement is checked (Keras writes contiguous datasets)
MAX_NAMES = 100_000      # layer names in a legacy file's attribute
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def snake(name: str) -> str:
    """Keras's group name for a layer class (keras.src.utils.naming.to_snake_case): Conv2D -> conv2d,
    DepthwiseConv2D -> depthwise_conv2d."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _variable_names() -> dict[str, tuple[str, ...]]:
    return {snake(name): kind.weight_names for name, kind in LAYERS.items()}


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class _Window(io.RawIOBase):
    """Bytes [start, start + size) of a file, as a file of its own (h5py reads a stored zip member through it)."""

    def __init__(self, path: str, start: int, size: int):
        self._fh, self._start, self._size, self._pos = open(path, "rb"), start, size, 0   # noqa: SIM115 - close() does

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), self._size - self._pos))
        if n == 0:
            return 0
        self._fh.seek(self._start + self._pos)
        got = self._fh.readinto(memoryview(buffer)[:n])
        self._pos += got
        return got

    def close(self) -> None:
        self._fh.close()
        super().close()


@dataclass(frozen=True)
class _Variable:
    name: str | None   # the Keras variable name, None where the file does not say
    path: str          # the dataset's path in the HDF5 file
    shape: tuple[int, ...]
    dtype: np.dtype


class Keras(Reader):
    """Keras 3 (.weights.h5, and the one inside a .keras archive) stores a layer's variables as
    layers/<class group>/vars/0, 1, ... with the layer's name as the `name` attribute of `vars`, unnamed: their names
    are the class's variables in order (kernel, bias; depthwise_kernel, pointwise_kernel, bias), known for the layers
    of this harness, else an index is needed. The legacy HDF5 format (model.save('x.h5'), Keras 2 save_weights)
    names them (`weight_names`)."""

    fmt = KERAS_FORMAT
    label = "Keras (.keras)"

    def open(self) -> None:
        self._window: tuple[int, int] | None = None   # a stored member: (start, size) in the archive
        self._file = self.path                         # the HDF5 file itself (a bare .h5, or the inflated member)
        if self.fmt == KERAS_FORMAT:
            self._locate()
        self._checked: dict[str, Entry] = {}
        with self._h5() as h5:
            self._layers = self._index(h5)

    # -- the HDF5 bytes: a bare file, a window into the archive, or a temporary file

    def _locate(self) -> None:
        what = f"{self.name} member {WEIGHTS_MEMBER}"
        with open_zip(self.path, self.name) as archive:   # config.json is never read: nothing is deserialised
            names = archive.namelist()
            if WEIGHTS_MEMBER not in names:
                raise FileProblem("file", f"{self.name} is not a Keras archive: it has no {WEIGHTS_MEMBER} "
                                          f"(it holds {', '.join(names[:10])})")
            info = archive.getinfo(WEIGHTS_MEMBER)
            check_member(info, what, max_member_bytes(), MEMBER_BYTES_ENV)
            try:   # an HDF5 file starts with its signature (Keras writes no user block): look before inflating it
                with archive.open(info) as fh:
                    head = fh.read(len(HDF5_SIGNATURE))
            except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
                raise FileProblem("file", f"{what} is corrupt: {one_line(exc)}") from None
            if head != HDF5_SIGNATURE:
                raise FileProblem("file", f"{what} is not an HDF5 file (it does not start with HDF5's signature)")
            if info.compress_type == zipfile.ZIP_STORED:
                with open(self.path, "rb") as fh:
                    fh.seek(info.header_offset)
                    local = read_exactly(fh, 30, what)
                if local[:4] != b"PK\x03\x04":
                    raise FileProblem("file", f"{what}: its local header is missing (a corrupt archive)")
                start = info.header_offset + 30 + sum(struct.unpack("<HH", local[26:30]))
                if start + info.file_size > os.path.getsize(self.path):
                    raise FileProblem("file", f"{what} declares {info.file_size} bytes, past the end of the "
                                              "archive (truncated)")
                self._window = (start, info.file_size)
                return
            fd, tmp = tempfile.mkstemp(prefix="harness-", suffix=".weights.h5")
            weakref.finalize(self, _unlink, tmp)   # with the reader (or at exit): a path, not a handle
            with os.fdopen(fd, "wb") as out:
                stream_member(archive, info, what, out.write)
            self._file = tmp

    @contextlib.contextmanager
    def _h5(self) -> Iterator[Any]:
        import h5py

        if self._window is None:
            with h5py.File(self._file, "r") as h5:
                yield h5
            return
        with _Window(self.path, *self._window) as window, h5py.File(window, "r") as h5:
            yield h5

    def _size(self) -> int:
        return self._window[1] if self._window else os.path.getsize(self._file)

    # -- the index: layer name -> [(where, [variables])], from names and shapes only

    def _index(self, h5: Any) -> dict[str, list[tuple[str, list[_Variable]]]]:
        import h5py

        def variable(name: str | None, group: Any, key: str) -> _Variable | None:
            link = group.get(key, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise FileProblem("file", f"{self.name}: {group.name}/{key} links elsewhere ({type(link).__name__}); "
                                          "a weights file names only its own data")
            obj = group[key]
            if not isinstance(obj, h5py.Dataset):
                return None
            return _Variable(name, obj.name, tuple(int(d) for d in obj.shape), obj.dtype)

        layers: dict[str, list[tuple[str, list[_Variable]]]] = {}
        root = h5.get("model_weights", h5)
        if "layer_names" in root.attrs:
            if root.attrs.get_id("layer_names").shape and np.prod(root.attrs.get_id("layer_names").shape) > MAX_NAMES:
                raise FileProblem("file", f"{self.name} lists more than {MAX_NAMES} layers: refused")
            for layer in map(_text, root.attrs["layer_names"]):
                if layer not in root:
                    continue
                group = root[layer]
                names = [_text(n) for n in group.attrs.get("weight_names", [])]
                found = [variable(n.split("/")[-1].split(":")[0], group, n) for n in names]
                layers.setdefault(layer, []).append((group.name, [v for v in found if v is not None]))
            return layers
        known = _variable_names()

        def visit(where: str, obj: Any) -> None:
            if isinstance(obj, h5py.Group) and where.split("/")[-1] == "vars" and "name" in obj.attrs:
                keys = sorted((k for k in obj if k.isdigit()), key=int)
                found = [v for v in (variable(None, obj, k) for k in keys) if v is not None]
                group = where.split("/")[-2] if "/" in where else ""
                names = known.get(re.sub(r"_\d+$", "", group))
                if names and len(found) <= len(names):
                    found = [_Variable(names[i], v.path, v.shape, v.dtype) for i, v in enumerate(found)]
                layers.setdefault(_text(obj.attrs["name"]), []).append((where, found))

        h5.visititems(visit)
        return layers

    def _variable(self, spec: dict) -> _Variable:
        layer, weight = spec["layer"], spec["weight"]
        found = self._layers.get(layer)
        if not found:
            raise self.missing("layer", "layer", layer, [n for n, v in self._layers.items() if any(x for _, x in v)])
        if len(found) > 1:
            raise FileProblem("layer", f"{self.name} has several layers named {layer!r} "
                                       f"({', '.join(w for w, _ in found)})")
        variables = found[0][1]
        listed = [f"{i}: {v.name or 'unnamed'} {list(v.shape)}" for i, v in enumerate(variables)]
        if isinstance(weight, int):
            if weight >= len(variables):
                raise self.missing("weight", f"variable in layer {layer!r} at index", weight, listed)
            return variables[weight]
        for v in variables:
            if v.name == weight:
                return v
        if variables and all(v.name is None for v in variables):
            raise FileProblem("weight", f"{self.name} does not name the variables of layer {layer!r} (Keras 3 stores "
                                        f"them by position, and its class is not one this harness knows): give "
                                        f"weight as an index; its variables: {', '.join(listed)}")
        raise self.missing("weight", f"variable in layer {layer!r} named", weight, listed)

    def entry(self, spec: dict) -> Entry:
        v = self._variable(spec)
        what = f"{self.name} layer {spec['layer']!r} weight {spec['weight']!r}"
        numeric(v.dtype, what)
        need = declared_bytes(v.shape, v.dtype, what)
        if v.path not in self._checked:
            with self._h5() as h5:
                self._check_storage(h5[v.path], need, what)
            self._checked[v.path] = Entry(v.shape, v.dtype, v.path)
        return self._checked[v.path]

    def _check_storage(self, dataset: Any, need: int, what: str) -> None:
        """The dataset's bytes lie inside this file: no external or virtual storage, no chunk past the end."""
        if dataset.external or dataset.is_virtual:
            raise FileProblem("file", f"{what} keeps its data in another file: refused")
        total, dsid = self._size(), dataset.id
        if need == 0:
            return
        if dataset.chunks is None:
            offset = dsid.get_offset()
            if offset is None:
                raise FileProblem("file", f"{what} declares {need} bytes of data and stores none")
            if offset + need > total:
                raise FileProblem("file", f"{what} declares {need} bytes of data at byte {offset}, past the end of "
                                          f"the {total}-byte file (truncated)")
            return
        n = dsid.get_num_chunks()
        if n == 0:
            raise FileProblem("file", f"{what} declares {need} bytes of data and stores none")
        if n > MAX_CHUNKS:
            raise FileProblem("file", f"{what} is stored in {n} chunks (at most {MAX_CHUNKS}): refused")
        for i in range(n):
            chunk = dsid.get_chunk_info(i)
            if chunk.byte_offset + chunk.size > total:
                raise FileProblem("file", f"{what}: a chunk lies past the end of the {total}-byte file (truncated)")

    def read(self, spec: dict, entry: Entry) -> np.ndarray:
        with self._h5() as h5:
            dataset = h5[entry.where]
            if tuple(dataset.shape) != entry.shape or dataset.dtype != entry.dtype:
                raise FileProblem("file", f"{self.name} changed while it was read")
            out = np.empty(entry.shape, dtype=entry.dtype)
            if out.size:
                dataset.read_direct(out)
        return out


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class H5(Keras):
    fmt = "h5"
    label = "Keras HDF5"
