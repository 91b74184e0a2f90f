"""Tensors a case reads from files, and literals given in torch layout: the `file` and `values` tensor specs.

    {file: acts.npz, key: x}                                  .npy (no key), .npz, .safetensors (key)
    {file: model.weights.h5, layer: conv1, weight: kernel}    .keras, .weights.h5 / .h5: a layer's variable
    {file: model.pt, key: features.0.weight, layout: torch}   .pt / .pth / .bin: a torch state dict's entry
    {values: [[...]], layout: torch}                          a literal in torch layout

Nothing in a file is ever executed: .npy/.npz are read with allow_pickle=False (an object array is refused before
that, from its header), torch files with torch.load(weights_only=True) (torch imported only then), Keras files with
h5py, datasets only (a .keras archive's config.json is never read, so no layer, Lambda or object is deserialised),
.safetensors with the safetensors package (a JSON header and raw bytes, no pickle). Every problem is a FileProblem naming the spec's
field; the schema turns it into a CaseError naming the case file, the case and the field.

Validation reads what it needs to check presence and shape (the .npy header, the .npz member's header, the
safetensors header, the h5 dataset's shape; a torch file is loaded, memory-mapped) and a stated sha256; the values
are read when the case runs (TensorSource.load). Open files are kept per process in a small LRU keyed by path and
modification stamp, so a suite of many cases reading one file opens it once.
"""
from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import CaseError

if TYPE_CHECKING:
    from .layers import Geometry

# The format of a file, from its suffix (".weights.h5" is an ".h5").
KERAS_FORMAT = "keras"   # a .keras zip (its model.weights.h5 inside), as against a bare .h5
SUFFIXES = {".npy": "npy", ".npz": "npz", ".safetensors": "safetensors", ".keras": "keras", ".h5": "h5",
            ".hdf5": "h5", ".pt": "torch", ".pth": "torch", ".bin": "torch"}
# The fields that address a tensor inside a file of each format (all of them required).
ADDRESS = {"npy": (), "npz": ("key",), "safetensors": ("key",), "torch": ("key",), "keras": ("layer", "weight"),
           "h5": ("layer", "weight")}
FILE_FIELDS = {"file", "key", "layer", "weight", "layout", "sha256"}
LITERAL_FIELDS = {"values", "layout"}
KERAS_LAYOUT, TORCH_LAYOUT = "keras", "torch"   # the layouts a spec may state (layout names, not engine names)
LAYOUTS = (KERAS_LAYOUT, TORCH_LAYOUT)
CACHE_FILES = 8   # open files kept per process


class FileProblem(Exception):
    """What is wrong with a `file` / `values` spec: ``field`` is the spec's field (file, key, ...) or None for the
    tensor as a whole (its shape)."""

    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field, self.message = field, message


# ---------------------------------------------------------------- layouts

@dataclass(frozen=True)
class Layout:
    """How a tensor given in torch layout becomes the Keras layout the harness computes in: a weight through its
    family's converters (harness/families: torch_weight_shapes, weight_from_torch), an activation (input,
    grad_output) from channels first (N, C, *S) to the case's data_format."""

    weight: str | None = None              # the Keras weight name; None for an activation
    geometry: "Geometry | None" = None     # the case's, for a weight
    channels_first: bool = False           # an activation: the case's data_format

    def torch_shape(self, keras_shape: tuple[int, ...]) -> tuple[int, ...]:
        if self.weight is not None:
            g = self.geometry
            return tuple(g.kind.family.torch_weight_shapes(g)[self.weight])
        if self.channels_first:
            return tuple(keras_shape)
        return (keras_shape[0], keras_shape[-1], *keras_shape[1:-1])

    def to_keras(self, values: np.ndarray) -> np.ndarray:
        if self.weight is not None:
            g = self.geometry
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
            if self.fmt == "values":
                raw = np.asarray(self.spec["values"], dtype=np.float64)
            else:
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
        ok = isinstance(value, str) and value != "" or (name == "weight" and isinstance(value, int)
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
        verify_sha256(out.path, spec["sha256"], written)
    stored = _reader(out.path, fmt).shape(spec)
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
    check_shape(values_shape, out.shape, torch_layout, out.torch, "the values")
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
        raise FileProblem(None, f"impossible shape: {what} has shape {list(got)}, the layer needs {list(want)} "
                                f"in torch layout ({list(keras_shape)} in Keras layout)")


def as_float64(values: Any, what: str) -> np.ndarray:
    """A float or integer array as float64 (as literal values are); anything else is refused."""
    a = np.asarray(values)
    if not (a.dtype.kind in "fiu" or a.dtype.name == "bfloat16"):
        raise FileProblem(None, f"{what} holds {a.dtype} values; a tensor needs floats or integers")
    return a.astype(np.float64)


def _describe(spec: dict) -> str:
    if "file" not in spec:
        return "the values"
    parts = [repr(spec["file"])]
    parts += [f"{name} {spec[name]!r}" for name in ("key", "layer", "weight") if name in spec]
    return " ".join(parts)


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


# ---------------------------------------------------------------- readers (one per open file, cached)

def _reader(path: str, fmt: str) -> "_Reader":
    try:
        stamp = _stamp(path)
    except OSError as exc:
        raise FileProblem("file", f"cannot read {path}: {exc.strerror or exc}") from None
    return _open(path, fmt, stamp)


@functools.lru_cache(maxsize=CACHE_FILES)
def _open(path: str, fmt: str, stamp: tuple[int, int, int]) -> "_Reader":
    return READERS[fmt](path)


def clear_cache() -> None:
    """Forget the open files and checksums (tests; a long-lived process whose files changed is served anyway:
    the cache is keyed by each file's modification stamp)."""
    _open.cache_clear()
    _sha256.cache_clear()


class _Reader:
    """One open file: the shape of an entry (cheap, for validation) and its values (for the run)."""

    fmt = ""
    label = ""   # for messages

    def __init__(self, path: str):
        self.path, self.name = path, Path(path).name
        try:
            self.open()
        except FileProblem:
            raise
        except Exception as exc:   # a malformed file: its parser's words, on one line
            raise FileProblem("file", f"{self.name}: cannot read it as a {self.label} file: {_one_line(exc)}") from None

    def open(self) -> None:
        raise NotImplementedError

    def shape(self, spec: dict) -> tuple[int, ...]:
        return self._guard(self._shape, spec)

    def values(self, spec: dict) -> np.ndarray:
        return self._guard(self._values, spec)

    def _guard(self, fn, spec: dict):
        try:
            return fn(spec)
        except FileProblem:
            raise
        except Exception as exc:
            raise FileProblem("file", f"{self.name}: cannot read {_describe(spec)}: {_one_line(exc)}") from None

    def _shape(self, spec: dict) -> tuple[int, ...]:
        raise NotImplementedError

    def _values(self, spec: dict) -> np.ndarray:
        raise NotImplementedError

    def missing(self, field: str, what: str, name: Any, available: list[str]) -> FileProblem:
        shown = ", ".join(available[:20]) + (f", ... ({len(available)} in all)" if len(available) > 20 else "")
        return FileProblem(field, f"{self.name} has no {what} {name!r}; it has: {shown or 'none'}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:400] + " ...") if len(text) > 400 else text or type(exc).__name__


def _npy_header(fh, what: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header (a Python literal, read with ast.literal_eval by NumPy): refuses object
    arrays, whose data is a pickle (loading it could run code)."""
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(fh)
    else:
        shape, _, dtype = fmt._read_array_header(fh, version)   # 3.0: the 2.0 header in UTF-8
    if dtype.hasobject:
        raise FileProblem("file", f"{what} holds Python objects (a pickle), refused: loading them could run code; "
                                "save plain numeric arrays (np.save of a float or integer array)")
    if not (dtype.kind in "fiu"):
        raise FileProblem(None, f"{what} holds {dtype} values; a tensor needs floats or integers")
    return tuple(shape), dtype


class _Npy(_Reader):
    fmt = "npy"
    label = ".npy"

    def open(self) -> None:
        with open(self.path, "rb") as fh:
            self._stored = _npy_header(fh, self.name)[0]

    def _shape(self, spec: dict) -> tuple[int, ...]:
        return self._stored

    def _values(self, spec: dict) -> np.ndarray:
        return np.load(self.path, mmap_mode="r", allow_pickle=False)


class _Npz(_Reader):
    fmt = "npz"
    label = ".npz"

    def open(self) -> None:
        self._zip = zipfile.ZipFile(self.path)
        self._members = {n[:-4]: n for n in self._zip.namelist() if n.endswith(".npy")}
        self._shapes: dict[str, tuple[int, ...]] = {}

    def _member(self, key: str) -> str:
        if key not in self._members:
            raise self.missing("key", "array", key, sorted(self._members))
        return self._members[key]

    def _shape(self, spec: dict) -> tuple[int, ...]:
        key = spec["key"]
        if key not in self._shapes:
            with self._zip.open(self._member(key)) as fh:
                self._shapes[key] = _npy_header(fh, f"{self.name} key {key!r}")[0]
        return self._shapes[key]

    def _values(self, spec: dict) -> np.ndarray:
        self._shape(spec)   # refuses an object array from its header, before reading any of it
        with self._zip.open(self._member(spec["key"])) as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)


class _Safetensors(_Reader):
    fmt = "safetensors"
    label = "safetensors"

    def open(self) -> None:
        try:
            import ml_dtypes  # noqa: F401 - registers bfloat16 with NumPy, which safetensors' numpy reader asks for
            from safetensors import safe_open
        except ImportError as exc:
            raise FileProblem("file", f"reading .safetensors needs the safetensors package ({exc}); "
                                      "pip install -r requirements.txt") from None
        self._file = safe_open(self.path, framework="numpy")   # parses and checks the header; a bad one raises

    def _check(self, key: str) -> None:
        if key not in self._file.keys():
            raise self.missing("key", "tensor", key, sorted(self._file.keys()))

    def _shape(self, spec: dict) -> tuple[int, ...]:
        self._check(spec["key"])
        return tuple(self._file.get_slice(spec["key"]).get_shape())

    def _values(self, spec: dict) -> np.ndarray:
        self._check(spec["key"])
        return self._file.get_tensor(spec["key"])


class _Torch(_Reader):
    fmt = "torch"
    label = "PyTorch"

    def open(self) -> None:
        try:
            import torch
        except ImportError:
            raise FileProblem("file", f"{self.name} is a PyTorch file and torch is not installed") from None
        import pickle

        try:
            # weights_only: the unpickler admits tensors and plain containers only, never a global or a reduce
            # payload; mmap (zip format only): the tensors' data is read when it is used.
            state = torch.load(self.path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(self.path))
        except pickle.UnpicklingError as exc:
            # torch's message: a paragraph on weights_only, the reason (the global it refused), a pointer to docs
            paragraphs = [" ".join(p.split()) for p in str(exc).split("\n\n") if p.strip()] or [type(exc).__name__]
            detail = next((p for p in paragraphs[1:] if not p.startswith("Check the documentation")), paragraphs[0])
            raise FileProblem("file", f"{self.name} refused by torch.load(weights_only=True), which admits tensors "
                                      f"and plain containers only: {detail[:300]}") from None
        if not isinstance(state, dict):
            raise FileProblem("file", f"{self.name} holds a {type(state).__name__}, not a state dict "
                                      "(a mapping of name -> tensor)")
        self._state, self._torch = state, torch

    def _tensor(self, key: str):
        if key not in self._state:
            raise self.missing("key", "entry", key, [str(k) for k in self._state])
        value = self._state[key]
        if not isinstance(value, self._torch.Tensor):
            raise FileProblem("key", f"{self.name} entry {key!r} is a {type(value).__name__}, not a tensor")
        return value

    def _shape(self, spec: dict) -> tuple[int, ...]:
        return tuple(self._tensor(spec["key"]).shape)

    def _values(self, spec: dict) -> np.ndarray:
        t = self._tensor(spec["key"]).detach()
        if t.is_complex():
            raise FileProblem(None, f"{_describe(spec)} holds {t.dtype} values; a tensor needs floats or integers")
        if t.is_floating_point():
            t = t.to(self._torch.float64)   # exact from every torch float (bfloat16 has no NumPy dtype in torch)
        return t.numpy()


def _snake(name: str) -> str:
    """Keras's group name for a layer class (keras.src.utils.naming.to_snake_case): Conv2D -> conv2d,
    DepthwiseConv2D -> depthwise_conv2d."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _variable_names() -> dict[str, tuple[str, ...]]:
    from .families import LAYERS

    return {_snake(name): kind.weight_names for name, kind in LAYERS.items()}


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class _Keras(_Reader):
    """A Keras weights file, read with h5py (datasets and their names only). Keras 3 (.weights.h5, and the one
    inside a .keras archive) stores a layer's variables as layers/<class group>/vars/0, 1, ... with the layer's
    name as the `name` attribute of `vars`, unnamed: their names are the class's variables in order (kernel,
    bias; depthwise_kernel, pointwise_kernel, bias), known for the layers of this harness, else an index is needed.
    The legacy HDF5 format (model.save('x.h5'), Keras 2 save_weights) names them (`weight_names`)."""

    fmt = KERAS_FORMAT
    label = "Keras (.keras)"

    def open(self) -> None:
        import h5py

        if self.fmt == KERAS_FORMAT:
            with zipfile.ZipFile(self.path) as archive:   # config.json is never read: nothing is deserialised
                if "model.weights.h5" not in archive.namelist():
                    raise FileProblem("file", f"{self.name} is not a Keras archive: it has no model.weights.h5 "
                                              f"(it holds {', '.join(archive.namelist()[:10])})")
                self._bytes = archive.read("model.weights.h5")
            self._h5 = h5py.File(io.BytesIO(self._bytes), "r")
        else:
            self._h5 = h5py.File(self.path, "r")
        # layer name -> [(where, [(variable name or None, dataset), ...])]
        self._layers: dict[str, list[tuple[str, list[tuple[str | None, Any]]]]] = {}
        root = self._h5["model_weights"] if "model_weights" in self._h5 else self._h5
        if "layer_names" in root.attrs:
            for layer in map(_text, root.attrs["layer_names"]):
                group = root[layer]
                names = [_text(n) for n in group.attrs.get("weight_names", [])]
                self._layers.setdefault(layer, []).append(
                    (group.name, [(n.split("/")[-1].split(":")[0], group[n]) for n in names]))
        else:
            known = _variable_names()

            def visit(where: str, obj: Any) -> None:
                if isinstance(obj, h5py.Group) and where.split("/")[-1] == "vars" and "name" in obj.attrs:
                    keys = sorted((k for k in obj if k.isdigit() and isinstance(obj[k], h5py.Dataset)), key=int)
                    group = where.split("/")[-2] if "/" in where else ""
                    names = known.get(re.sub(r"_\d+$", "", group))
                    variables = [(names[i] if names and len(keys) <= len(names) else None, obj[k])
                                 for i, k in enumerate(keys)]
                    self._layers.setdefault(_text(obj.attrs["name"]), []).append((where, variables))

            self._h5.visititems(visit)

    def _dataset(self, spec: dict):
        layer, weight = spec["layer"], spec["weight"]
        found = self._layers.get(layer)
        if not found:
            raise self.missing("layer", "layer", layer, [n for n, v in self._layers.items() if any(x for _, x in v)])
        if len(found) > 1:
            raise FileProblem("layer", f"{self.name} has several layers named {layer!r} "
                                       f"({', '.join(w for w, _ in found)})")
        variables = found[0][1]
        listed = [f"{i}: {n or 'unnamed'} {list(d.shape)}" for i, (n, d) in enumerate(variables)]
        if isinstance(weight, int):
            if weight >= len(variables):
                raise self.missing("weight", f"variable in layer {layer!r} at index", weight, listed)
            return variables[weight][1]
        for name, dataset in variables:
            if name == weight:
                return dataset
        if variables and all(n is None for n, _ in variables):
            raise FileProblem("weight", f"{self.name} does not name the variables of layer {layer!r} (Keras 3 stores "
                                        f"them by position, and its class is not one this harness knows): give "
                                        f"weight as an index; its variables: {', '.join(listed)}")
        raise self.missing("weight", f"variable in layer {layer!r} named", weight, listed)

    def _shape(self, spec: dict) -> tuple[int, ...]:
        dataset = self._dataset(spec)
        if not (dataset.dtype.kind in "fiu"):
            raise FileProblem(None, f"{_describe(spec)} holds {dataset.dtype} values; a tensor needs floats or "
                                    "integers")
        return tuple(dataset.shape)

    def _values(self, spec: dict) -> np.ndarray:
        self._shape(spec)
        return np.asarray(self._dataset(spec)[()])


class _H5(_Keras):
    fmt = "h5"
    label = "Keras HDF5"


READERS: dict[str, type[_Reader]] = {"npy": _Npy, "npz": _Npz, "safetensors": _Safetensors, "torch": _Torch,
                                     "keras": _Keras, "h5": _H5}
