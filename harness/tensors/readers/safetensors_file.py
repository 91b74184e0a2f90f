""".safetensors reader: the format's 8-byte length and JSON header parsed here (bounded), each tensor's declared
shape and dtype checked against the cap and against its data offsets, and those against the file's length, before
a byte of data is read; the data read with a plain file read (no mmap or handle kept)."""
from __future__ import annotations

import json
import os
import struct

import numpy as np

from .base import Entry, FileProblem, Reader, check_present, declared_bytes, numeric, read_exactly

MAX_HEADER = 100 << 20   # the safetensors library's own limit
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
          "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}


def _dtype(name: str) -> np.dtype:
    if name in DTYPES:
        return np.dtype(DTYPES[name])
    import ml_dtypes  # bfloat16 and the float8 kinds (NumPy has none)

    table = {"BF16": ml_dtypes.bfloat16, "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2}
    if name not in table:
        raise ValueError(f"unknown dtype {name!r}")
    return np.dtype(table[name])


class Safetensors(Reader):
    fmt = "safetensors"
    label = "safetensors"

    def open(self) -> None:
        total = os.path.getsize(self.path)
        with open(self.path, "rb") as fh:
            if total < 8:
                raise ValueError(f"{total} bytes: too short for the header's length")
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > min(MAX_HEADER, total - 8):
                raise ValueError(f"header length {n} runs past the end of the file ({total} bytes)")
            header = json.loads(read_exactly(fh, n, self.name).decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        self._start, self._data_len = 8 + n, total - 8 - n
        self._tensors: dict[str, dict] = {}
        for key, info in header.items():
            if key == "__metadata__":
                continue
            ok = (isinstance(info, dict) and isinstance(info.get("dtype"), str)
                  and isinstance(info.get("shape"), list) and isinstance(info.get("data_offsets"), list)
                  and len(info["data_offsets"]) == 2
                  and all(type(v) is int and v >= 0 for v in info["data_offsets"] + info["shape"]))
            if not ok:
                raise ValueError(f"tensor {key!r}: not {{dtype, shape, data_offsets}}")
            self._tensors[key] = info

    def entry(self, spec: dict) -> Entry:
        key = spec["key"]
        if key not in self._tensors:
            raise self.missing("key", "tensor", key, sorted(self._tensors))
        info, what = self._tensors[key], f"{self.name} key {key!r}"
        try:
            dtype = _dtype(info["dtype"])
        except ValueError as exc:
            raise FileProblem(None, f"{what} holds {info['dtype']} values ({exc}); a tensor needs floats or "
                                    "integers") from None
        numeric(dtype, what)
        shape = tuple(info["shape"])
        need = declared_bytes(shape, dtype, what)
        begin, end = info["data_offsets"]
        check_present(need, end - begin, what, f"declares shape {list(shape)} of {dtype.name}:")
        if end > self._data_len:
            raise FileProblem("file", f"{what}: its data ends at byte {end}, past the {self._data_len} bytes of "
                                      "data the file holds (truncated)")
        return Entry(shape, dtype, self._start + begin)

    def read(self, spec: dict, entry: Entry) -> np.ndarray:
        n = declared_bytes(entry.shape, entry.dtype, self.name)
        with open(self.path, "rb") as fh:
            fh.seek(entry.where)
            data = read_exactly(fh, n, self.name)
        return np.frombuffer(data, dtype=entry.dtype).reshape(entry.shape)
