"""Tensors a case reads from files, and literals given in torch layout: the `file` and `values` tensor specs.

    {file: acts.npz, key: x}                                  .npy (no key), .npz, .safetensors (key)
    {file: model.weights.h5, layer: conv1, weight: kernel}    .keras, .weights.h5 / .h5: a layer's variable
    {file: model.pt, key: features.0.weight, layout: torch}   .pt / .pth / .bin: a torch state dict's entry
    {values: [[...]], layout: torch}                          a literal in torch layout

Nothing in a file is ever executed: .npy/.npz headers are parsed as plain literals (an object array is refused from
its header), torch files are walked opcode by opcode without unpickling (harness/tensors/readers/torch_files.py),
Keras files are read with h5py, datasets only (a .keras archive's config.json is never read, so no layer, Lambda or
object is deserialised), .safetensors from its JSON header. Every declared size is checked against a cap
(HARNESS_MAX_TENSOR_BYTES, default 2 GiB per tensor) and against the bytes really present before anything is
read, archives member by member in bounded chunks (harness/tensor_readers). Every problem is a FileProblem naming
the spec's field; the schema turns it into a CaseError naming the case file, the case and the field.

Validation runs every check of the addressed tensor (header, sizes, the bytes present, an archive member's stream
and CRC) and a stated sha256; the run runs the same checks again and reads the values (TensorSource.load). A
process keeps each file's index (never an open handle) in a small LRU keyed by path and modification stamp.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CaseError
from . import readers as tensor_readers
from .readers import FileProblem, Reader
from .readers import describe as _describe

__all__ = ["FileProblem", "Layout", "TensorSource", "source", "literal", "file_format", "check_shape", "as_float64",
           "verify_sha256", "clear_cache", "SUFFIXES", "ADDRESS", "LAYOUTS", "KERAS_LAYOUT", "TORCH_LAYOUT"]

if TYPE_CHECKING:
    from ..layers.geometry import Geometry

# The format of a file, from its suffix (".weights.h5" is an ".h5").
SUFFIXES = {".npy": "npy", ".npz": "npz", ".safetensors": "safetensors", ".keras": "keras", ".h5": "h5",
            ".hdf5": "h5", ".pt": "torch", ".pth": "torch", ".bin": "torch"}
# The fields that address a tensor inside a file of each format (all of them required).
ADDRESS = {"npy": (), "npz": ("key",), "safetensors": ("key",), "torch": ("key",), "keras": ("layer", "weight"),
           "h5": ("layer", "weight")}
FILE_FIELDS = {"file", "key", "layer", "weight", "layout", "sha256"}
LITERAL_FIELDS = {"values", "layout"}
KERAS_LAYOUT, TORCH_LAYOUT = "keras", "torch"   # the layouts a spec may state (layout names, not engine names)
LAYOUTS = (KERAS_LAYOUT, TORCH_LAYOUT)


# ---------------------------------------------------------------- layouts

@dataclass(frozen=True)
class Layout:
    """How a tensor given in torch layout becomes the Keras layout the harness computes in: a weight through its
    family's converters (harness/families: torch_weight_shapes, weight_from_torch), an activation (input,
    grad_output) from channels first (N, C, *S) to the case's data_format."""

    weight: str | None = None              # the Keras weight name; None for an activation
    geometry: Geometry | None = None     # the case's, for a weight
    channels_first: bool = False           # an activation: the case's data_format

    def torch_shape(self, keras_shape: tuple[int, ...]) -> tuple[int, ...]:
        if self.weight is not None:
            g = self.geometry
            assert g is not None   # a weight's layout carries the case's geometry (weight_layout)
            return tuple(g.kind.family.torch_weight_shapes(g)[self.weight])
        if self.channels_first:
            return tuple(keras_shape)
        return (keras_shape[0], keras_shape[-1], *keras_shape[1:-1])

    def to_keras(self, values: np.ndarray) -> np.ndarray:
        if self.weight is not None:
            g = self.geometry
            assert g is not None   # a weight's layout carries the case's geometry (weight_layout)
            return g.kind.family.weight_from_torch(self.weight, values, g)
        return values if self.channels_first else np.moveaxis(values, 1, -1)


# ---------------------------------------------------------------- a validated spec

@dataclass(frozen=True)
class TensorSource:
    """A validated `file` or `values` spec: materialised (float64, Keras layout, ``shape``) by ``load``."""

    spec: dict                 # as written
    shape: tuple[int, ...]     # what the layer needs, Keras layout
    case_file: str             # for errors at run time (a file changed since validation)
    case_id: str
    field: str                 # input | weights.NAME | grad_output
    path: str | None = None    # the file, resolved (None for a literal)
    fmt: str = "values"        # values | npy | npz | safetensors | keras | h5 | torch
    layout: Layout | None = None  # what torch layout means for this tensor
    torch: bool = False           # the spec says layout: torch

    def __repr__(self) -> str:   # the spec as written: what a user recognises (and stable across runs)
        return f"TensorSource({self.spec!r})"

    def load(self, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """The values, float64, in Keras layout; a CaseError if the file no longer matches its validation, or if
        ``shape`` (what the caller needs) is not the shape it was validated for."""
        try:
            if shape is not None and tuple(shape) != self.shape:
                raise FileProblem(None, f"validated for shape {list(self.shape)}, but {list(shape)} is asked for")
            assert self.layout is not None   # source() and literal() set it
            if self.fmt == "values":
                raw = np.asarray(self.spec["values"], dtype=np.float64)
            else:
                assert self.path is not None   # a file's (source() resolved it)
                if "sha256" in self.spec:
                    verify_sha256(self.path, self.spec["sha256"], self.spec["file"])
                raw = _reader(self.path, self.fmt).values(self.spec)
            values = as_float64(raw, _describe(self.spec))
            check_shape(values.shape, self.shape, self.layout, self.torch, _describe(self.spec))
            out = self.layout.to_keras(values) if self.torch else values
            return np.ascontiguousarray(out, dtype=np.float64)
        except FileProblem as problem:
            where = f"{self.field}.{problem.field}" if problem.field else self.field
            raise CaseError(self.case_file, self.case_id, where, problem.message) from None


def source(spec: dict, shape: tuple[int, ...], base: str | Path | None, torch_layout: Layout,
           case_file: str, case_id: str, field: str) -> TensorSource:
    """Validate a `file` spec (fields, file, address, sha256, stored shape): a TensorSource, or FileProblem."""
    unknown = set(spec) - FILE_FIELDS
    if unknown:
        raise FileProblem(sorted(unknown)[0], f"not a field of a file tensor; fields: "
                                              f"{', '.join(sorted(FILE_FIELDS))}")
    layout = _layout(spec)
    written = spec["file"]
    if not isinstance(written, str) or not written.strip():
        raise FileProblem("file", f"must be a path (relative to the case file's folder), got {written!r}")
    path = Path(written).expanduser()
    if not path.is_absolute():
        path = Path(base or ".") / path
    fmt = file_format(written)
    address, kind = ADDRESS[fmt], Path(written).suffix.lower()
    for name in ("key", "layer", "weight"):
        if name in spec and name not in address:
            needs = " and ".join(address) or "nothing (the file is one array)"
            raise FileProblem(name, f"a {kind} file takes no {name}; it is addressed by {needs}")
    for name in address:
        if name not in spec:
            raise FileProblem(name, f"a {kind} file needs {' and '.join(address)} (missing {name})")
        value = spec[name]
        ok = (isinstance(value, str) and value != "") or (name == "weight" and isinstance(value, int)
                                                         and not isinstance(value, bool) and value >= 0)
        if not ok:
            raise FileProblem(name, f"must be a name{' or an index' if name == 'weight' else ''}, got {value!r}")
    stated = spec.get("sha256")
    if "sha256" in spec and not (isinstance(stated, str) and re.fullmatch(r"[0-9a-fA-F]{64}", stated)):
        raise FileProblem("sha256", f"must be 64 hexadecimal digits, got {spec['sha256']!r}")
    if not path.is_file():
        why = "is a folder" if path.is_dir() else "does not exist"
        where = "" if Path(written).expanduser().is_absolute() else ", relative to the case file's folder"
        raise FileProblem("file", f"{written!r} {why} (looked for {path}{where})")
    out = TensorSource(spec=dict(spec), shape=tuple(shape), case_file=case_file, case_id=case_id, field=field,
                       path=str(path), fmt=fmt, layout=torch_layout, torch=layout == TORCH_LAYOUT)
    if "sha256" in spec:
        verify_sha256(str(path), spec["sha256"], written)
    stored = _reader(str(path), fmt).shape(spec)
    check_shape(stored, out.shape, torch_layout, out.torch, _describe(spec))
    return out


def literal(spec: dict, values_shape: tuple[int, ...], shape: tuple[int, ...], torch_layout: Layout,
            case_file: str, case_id: str, field: str) -> TensorSource:
    """Validate a `{values, layout}` spec whose nested list has ``values_shape``: a TensorSource, or FileProblem."""
    unknown = set(spec) - LITERAL_FIELDS
    if unknown:
        raise FileProblem(sorted(unknown)[0], "not a field of a literal tensor; fields: values, layout")
    layout = _layout(spec)
    out = TensorSource(spec=dict(spec), shape=tuple(shape), case_file=case_file, case_id=case_id, field=field,
                       layout=torch_layout, torch=layout == TORCH_LAYOUT)
    check_shape(values_shape, out.shape, torch_layout, out.torch, "the literal")
    return out


def _layout(spec: dict) -> str:
    layout = spec.get("layout", KERAS_LAYOUT)
    if layout not in LAYOUTS:
        raise FileProblem("layout", f"must be keras (the default) or torch, got {layout!r}")
    return layout


def file_format(written: str) -> str:
    suffix = Path(written).suffix.lower()
    if suffix not in SUFFIXES:
        raise FileProblem("file", f"unknown file type {suffix or written!r}; known: {', '.join(SUFFIXES)} "
                                  "(.keras and .weights.h5 are Keras files, .pt/.pth/.bin torch state dicts)")
    return SUFFIXES[suffix]


def check_shape(got: tuple[int, ...], keras_shape: tuple[int, ...], layout: Layout, torch: bool, what: str) -> None:
    """``got`` must be the layer's shape in the stated layout (torch: ``layout``'s torch shape)."""
    got = tuple(int(d) for d in got)
    want: tuple[int, ...] | None
    try:
        want = layout.torch_shape(keras_shape)
    except ValueError as exc:
        if torch:
            raise FileProblem("layout", f"no torch layout for this tensor here: {exc}") from None
        want = None
    if not torch:
        if got != tuple(keras_shape):
            hint = "; that is its torch layout's shape: add layout: torch" if got == want != tuple(keras_shape) else ""
            raise FileProblem(None, f"impossible shape: {what} has shape {list(got)}, the layer needs "
                                    f"{list(keras_shape)} (Keras layout){hint}")
        return
    if got != want:
        assert want is not None   # the torch layout exists (raised above where it does not)
        raise FileProblem(None, f"impossible shape: {what} has shape {list(got)}, the layer needs {list(want)} "
                                f"in torch layout ({list(keras_shape)} in Keras layout)")


def as_float64(values: Any, what: str) -> np.ndarray:
    """A float or integer array as float64 (as literal values are); anything else is refused."""
    a = np.asarray(values)
    if not (a.dtype.kind in "fiu" or a.dtype.name == "bfloat16"):
        raise FileProblem(None, f"{what} holds {a.dtype} values; a tensor needs floats or integers")
    return a.astype(np.float64)


# ---------------------------------------------------------------- checksums

def _stamp(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size, st.st_ino


@functools.lru_cache(maxsize=64)
def _sha256(path: str, stamp: tuple[int, int, int]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str, stated: str, written: str) -> None:
    try:
        actual = _sha256(path, _stamp(path))
    except OSError as exc:
        raise FileProblem("file", f"cannot read {written!r}: {exc}") from None
    if actual != stated.lower():
        raise FileProblem("sha256", f"{written!r} has sha256 {actual}, the case states {stated.lower()}")


# ---------------------------------------------------------------- readers (harness/tensor_readers)

def _reader(path: str, fmt: str) -> Reader:
    return tensor_readers.reader(path, fmt)


def clear_cache() -> None:
    """Forget the files' indexes and checksums (tests; a long-lived process whose files changed is served anyway:
    the cache is keyed by each file's modification stamp)."""
    tensor_readers.clear_cache()
    _sha256.cache_clear()
