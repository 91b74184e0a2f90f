"""The engine worker's wire format: length-prefixed frames of a JSON header and an .npz payload, lossless arrays."""
from __future__ import annotations

import io
import json
import struct
from typing import Any, BinaryIO

import numpy as np

from ..errors import EngineRejected, EngineSkip
from ..layers.geometry import geometry
from .base import EngineOutput, Inputs, Request

# A frame: a magic (4 bytes: anything else on the pipe, a stray print, is seen at once rather than read as a
# length), header length (4 bytes) and payload length (8 bytes), big-endian, then the JSON header, then the .npz
# payload (empty when the frame carries no array).
PREFIX = struct.Struct("!4sIQ")
MAGIC = b"HWF1"
Arrays = dict[str, np.ndarray]


# ---------------------------------------------------------------- arrays
def canonical(dtype: np.dtype) -> np.dtype:
    """The one dtype instance an array of ``dtype`` crosses as: NumPy's shared instance of its type, in native
    byte order. An unpickled array's dtype is an equal copy, not that instance; a big-endian one is equal in
    value only. TypeError for what has no such type (strings, records, objects)."""
    if dtype.fields is None and dtype.subdtype is None and (
            dtype.kind in "biufc" or (dtype.kind == "V" and dtype.type is not np.void)):
        return np.dtype(dtype.type)   # a user-defined type (ml_dtypes' bfloat16) has one instance too
    raise TypeError(f"dtype {dtype} has no canonical form")


def _native(dtype: np.dtype) -> bool:
    # NumPy's own numeric types travel as themselves; a user-defined type (ml_dtypes' bfloat16 is one) would be
    # written by np.save as raw void ('<V2') and lose its name, so it travels as unsigned ints of its width.
    return dtype.kind in "biufc"


def dtype_named(name: str) -> np.dtype:
    """The canonical dtype a header names: NumPy's, or an ml_dtypes type (bfloat16 and kin) where NumPy has
    none."""
    try:
        return canonical(np.dtype(name))
    except TypeError:
        try:
            import ml_dtypes
        except ImportError as exc:   # the far side sent one; this side's environment cannot hold it
            raise TypeError(f"dtype {name} needs the ml_dtypes package in this environment") from exc
        found = getattr(ml_dtypes, name, None)
        if found is None:
            raise TypeError(f"dtype {name} is neither NumPy's nor ml_dtypes'") from None
        return canonical(np.dtype(found))


def pack(header: dict[str, Any], arrays: Arrays) -> bytes:
    """One frame: ``header`` (JSON-ready) plus ``arrays``, recorded in it as key -> dtype name and bit-exact."""
    stored, dtypes = {}, {}
    for key, value in arrays.items():
        value = np.asarray(value)
        try:
            dtype = canonical(value.dtype)
        except TypeError:
            raise TypeError(f"array {key!r} of dtype {value.dtype} cannot cross to the worker (not a numeric "
                            "dtype)") from None
        # The same values in the canonical dtype: a view where only the instance differs, else a byte swap.
        value = value.view(dtype) if value.dtype == dtype else value.astype(dtype)
        dtypes[key] = dtype.name
        stored[key] = value if _native(dtype) else value.view(f"u{dtype.itemsize}")   # the bits, renamed there
    payload = b""
    if stored:
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **stored)
        payload = buffer.getvalue()
    head = json.dumps({**header, "arrays": dtypes}, default=_json_default).encode()
    return PREFIX.pack(MAGIC, len(head), len(payload)) + head + payload


def lengths(prefix: bytes) -> tuple[int, int]:
    """(header length, payload length) of a frame's prefix; ValueError where it is no frame's."""
    magic, head_len, payload_len = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ValueError(f"not a frame: it starts with {prefix[:16]!r}")
    return head_len, payload_len


def unpack(head: bytes, payload: bytes) -> tuple[dict[str, Any], Arrays]:
    """(header, arrays) of a frame's two parts."""
    header = json.loads(head)
    dtypes: dict[str, str] = header.pop("arrays", {})
    arrays: Arrays = {}
    if dtypes:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            for key, name in dtypes.items():
                arrays[key] = _arrived(key, npz[key], dtype_named(name))
    return header, arrays


def _arrived(key: str, value: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``value`` as read from the payload, in the canonical ``dtype`` its header names: the same type (a view,
    so that the array holds the canonical instance), or the unsigned ints that carried a user-defined type's
    bits; anything else is refused, never reinterpreted."""
    carrier = np.dtype(f"u{dtype.itemsize}") if not _native(dtype) else dtype
    if value.dtype != carrier:
        raise ValueError(f"array {key!r} arrived as {value.dtype}, but its header says {dtype.name}")
    return value.view(dtype)


def _json_default(value: Any) -> Any:
    # Facts and counts an engine computes with NumPy (np.bool_, np.int64) are plain values on the far side.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} {value!r} cannot cross to the worker (not JSON)")


def read_frame(stream: BinaryIO) -> tuple[dict[str, Any], Arrays] | None:
    """The next frame of a blocking stream, or None at its end (the other side closed it)."""
    prefix = _read_exact(stream, PREFIX.size)
    if prefix is None:
        return None
    head_len, payload_len = lengths(prefix)
    head, payload = _read_exact(stream, head_len), _read_exact(stream, payload_len)
    if head is None or payload is None:
        raise EOFError("the stream ended inside a frame")
    return unpack(head, payload)


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    parts, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            return None
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


# ---------------------------------------------------------------- EngineOutput
def output_frame(out: EngineOutput, **extra: Any) -> bytes:
    """An EngineOutput, whole: y, params, weight shapes, notes, gauge_extra, extra roundings, stages, facts;
    ``extra``: more header fields about the answer (the worker's third_party_s)."""
    arrays: Arrays = {"y": np.asarray(out.y)}
    if out.gauge_extra is not None:
        arrays["gauge_extra"] = np.asarray(out.gauge_extra)
    stages = list(out.intermediate)
    arrays.update({f"stage{i}": np.asarray(out.intermediate[name]) for i, name in enumerate(stages)})
    weight_shapes = None if out.weight_shapes is None else {k: list(v) for k, v in out.weight_shapes.items()}
    header = {"ok": True, "params": out.params, "weight_shapes": weight_shapes, "notes": list(out.notes),
              "extra_roundings": out.extra_roundings, "facts": dict(out.facts), "stages": stages, **extra}
    return pack(header, arrays)


def output_of(header: dict[str, Any], arrays: Arrays) -> EngineOutput:
    shapes = header["weight_shapes"]
    return EngineOutput(
        y=arrays["y"], params=header["params"],
        weight_shapes=None if shapes is None else {k: tuple(v) for k, v in shapes.items()},
        notes=list(header["notes"]), gauge_extra=arrays.get("gauge_extra"),
        extra_roundings=header["extra_roundings"],
        intermediate={name: arrays[f"stage{i}"] for i, name in enumerate(header["stages"])},
        facts=dict(header["facts"]))


# ---------------------------------------------------------------- Request
def request_frame(request: Request) -> bytes:
    """What the worker needs of a Request: the geometry is not sent (the worker rebuilds it from the config and
    the input's shape), nor the float64 copies of the inputs (exact widenings of the values sent)."""
    names = list(request.inputs.weights)
    arrays = {"x": request.inputs.x, **{f"w{i}": request.inputs.weights[n] for i, n in enumerate(names)}}
    header = {"op": "run", "layer": request.layer, "config": request.config, "options": request.options,
              "weights": names}
    return pack(header, arrays)


def request_of(header: dict[str, Any], arrays: Arrays) -> Request:
    x = arrays["x"]
    weights = {name: arrays[f"w{i}"] for i, name in enumerate(header["weights"])}
    inputs = Inputs(x=x, weights=weights, x64=x.astype(np.float64),
                    weights64={k: v.astype(np.float64) for k, v in weights.items()})
    return Request(layer=header["layer"], config=header["config"],
                   geometry=geometry(header["layer"], header["config"], x.shape), inputs=inputs,
                   options=header["options"])


# ---------------------------------------------------------------- errors
def error_frame(exc: BaseException, trace: str, **extra: Any) -> bytes:
    """An exception of the worker: EngineRejected (with its facts), EngineSkip and NotImplementedError cross as
    themselves (the runner gives each its own verdict); any other as a RuntimeError with the worker's traceback."""
    kinds = ((EngineRejected, "rejected"), (EngineSkip, "skip"), (NotImplementedError, "not_implemented"))
    kind = next((k for cls, k in kinds if isinstance(exc, cls)), "error")
    return pack({"ok": False, "kind": kind, "type": type(exc).__name__, "message": str(exc),
                 "facts": dict(getattr(exc, "facts", None) or {}), "traceback": trace, **extra}, {})


def raise_error(header: dict[str, Any], pid: int) -> None:
    """Raise, in this process, the exception an error frame describes."""
    kind, message = header["kind"], header["message"]
    if kind == "rejected":
        raise EngineRejected(message, header["facts"])
    if kind == "skip":
        raise EngineSkip(message)
    if kind == "not_implemented":
        raise NotImplementedError(message)
    raise RuntimeError(f"{header['type']}: {message}\n\nin the engine worker (pid {pid}):\n{header['traceback']}")
