"""PyTorch state dicts (.pt / .pth / .bin, torch.save's zip format) read without unpickling and without torch: the
archive's data.pkl is walked opcode by opcode (pickletools) by a small machine that knows containers, strings,
numbers and the few names a state dict uses (OrderedDict, torch's tensor rebuilders and storage types); any other
name is refused before anything could run. Each tensor's declared storage, offset, shape and strides are checked
against the cap and against the storage member's bytes before a byte is read; the older pickle-only format (torch
before 1.6) can be read only by unpickling, so it is refused."""
from __future__ import annotations

import io
import pickletools
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import (
    CHUNK,
    MEMBER_BYTES_ENV,
    Entry,
    FileProblem,
    Reader,
    check_member,
    check_present,
    declared_bytes,
    max_member_bytes,
    numeric,
    open_zip,
    stream_member,
)

MAX_PICKLE = 64 << 20
STORAGES = {"DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2", "BFloat16Storage": "bfloat16",
            "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
            "ByteStorage": "u1", "BoolStorage": "?"}
REBUILD = {"_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state"}
ALLOWED = {("collections", "OrderedDict")} | {("torch._utils", n) for n in REBUILD} | \
    {("torch", n) for n in STORAGES}


@dataclass(frozen=True)
class _Global:
    module: str
    name: str


@dataclass(frozen=True)
class _Storage:
    key: str
    kind: str    # a STORAGES name
    numel: int


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


class _Refused(Exception):
    """data.pkl holds something a state dict never needs."""


def _dtype(kind: str) -> np.dtype:
    if STORAGES[kind] == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(STORAGES[kind])


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not (isinstance(value, tuple) and all(type(v) is int for v in value)):
        raise _Refused(f"{what} is not a tuple of integers")
    return value


def _call(fn: _Global, args: Any) -> Any:
    if not isinstance(args, tuple):
        raise _Refused("a call's arguments are not a tuple")
    if fn.name == "OrderedDict":
        if args and not (len(args) == 1 and isinstance(args[0], list)):
            raise _Refused("OrderedDict with unexpected arguments")
        return dict(args[0]) if args else {}
    if fn.name == "_rebuild_tensor_v2":
        if len(args) < 4 or not isinstance(args[0], _Storage) or type(args[1]) is not int:
            raise _Refused("_rebuild_tensor_v2 with unexpected arguments")
        return _Tensor(args[0], args[1], _ints(args[2], "a tensor's shape"), _ints(args[3], "a tensor's stride"))
    if len(args) < 1 or not isinstance(args[0], _Tensor):   # _rebuild_parameter(_with_state): the tensor inside
        raise _Refused(f"{fn.name} with unexpected arguments")
    return args[0]


def read_pickle(data: bytes) -> Any:
    """The object data.pkl describes, built from its opcodes by a machine that can build only containers, scalars,
    storages and tensors (no import, no call outside ALLOWED)."""
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        if not marks:
            raise _Refused("a malformed pickle (no mark)")
        at = marks.pop()
        items = stack[at:]
        del stack[at:]
        return items

    arg: Any   # the opcode's argument: an int, a str, bytes, a float or None, by opcode
    for op, arg, _ in pickletools.genops(io.BytesIO(data)):
        name = op.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            break
        if name == "MARK":
            marks.append(len(stack))
        elif name in ("EMPTY_DICT",):
            stack.append({})
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(stack) < n:
                raise _Refused("a malformed pickle")
            packed = tuple(stack[-n:])
            del stack[-n:]
            stack.append(packed)
        elif name == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif name == "LIST":
            stack.append(pop_mark())
        elif name == "DICT":
            items = pop_mark()
            stack.append(dict(zip(items[::2], items[1::2])))
        elif name == "APPEND":
            value = stack.pop()
            stack[-1].append(value)
        elif name == "APPENDS":
            items = pop_mark()
            stack[-1].extend(items)
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            stack[-1][key] = value
        elif name == "SETITEMS":
            items = pop_mark()
            target = stack[-1]
            if not isinstance(target, dict):
                raise _Refused("items set on something that is not a mapping")
            for key, value in zip(items[::2], items[1::2]):
                target[key] = value
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            stack.append(memo[int(arg)])
        elif name in ("BININT", "BININT1", "BININT2", "INT", "LONG", "LONG1", "LONG4", "BINFLOAT", "FLOAT",
                      "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "BINSTRING",
                      "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8"):
            stack.append(arg)
        elif name == "NONE":
            stack.append(None)
        elif name in ("NEWTRUE", "NEWFALSE"):
            stack.append(name == "NEWTRUE")
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            if name == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
            else:
                attr, module = stack.pop(), stack.pop()
                if not (isinstance(module, str) and isinstance(attr, str)):
                    raise _Refused("a malformed global")
            if (module, attr) not in ALLOWED:
                raise _Refused(f"it names {module}.{attr}, which a state dict never needs")
            stack.append(_Global(module, attr))
        elif name == "REDUCE":
            args, fn = stack.pop(), stack.pop()
            if not isinstance(fn, _Global) or fn.name.endswith("Storage"):
                raise _Refused("it calls something that is not a tensor rebuilder")
            stack.append(_call(fn, args))
        elif name == "BUILD":
            state = stack.pop()   # an OrderedDict's attributes (_metadata) or a tensor's: not needed, not used
            if not isinstance(stack[-1], (dict, _Tensor)) or not isinstance(state, (dict, tuple, type(None))):
                raise _Refused("it sets the state of something that is not a mapping or a tensor")
        elif name == "BINPERSID":
            pid = stack.pop()
            ok = (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _Global)
                  and pid[1].name in STORAGES and isinstance(pid[2], str) and type(pid[4]) is int and pid[4] >= 0)
            if not ok:
                raise _Refused("a storage reference that is not (storage, type, key, location, size)")
            stack.append(_Storage(pid[2], pid[1].name, pid[4]))
        else:
            raise _Refused(f"its pickle uses {name}, which a state dict never needs")
    if len(stack) != 1:
        raise _Refused("a malformed pickle")
    return stack[0]


class Torch(Reader):
    fmt = "torch"
    label = "PyTorch"

    def open(self) -> None:
        if not zipfile.is_zipfile(self.path):
            raise FileProblem("file", f"{self.name} is not in torch.save's zip format (the default since torch 1.6): "
                                      "an older or bare pickle is read only by unpickling it, which could run code; "
                                      "refused (save it again with torch.save, or as .safetensors)")
        with open_zip(self.path, self.name) as archive:
            pickles = [i for i in archive.infolist() if i.filename.endswith("/data.pkl")
                       and i.filename.count("/") == 1]
            if len(pickles) != 1:
                raise FileProblem("file", f"{self.name} is a zip but not a torch.save archive (no single "
                                          "<folder>/data.pkl)")
            info = pickles[0]
            self._prefix = info.filename[:-len("data.pkl")]
            check_member(info, f"{self.name} {info.filename}", MAX_PICKLE, MEMBER_BYTES_ENV)
            sink = bytearray()
            stream_member(archive, info, f"{self.name} {info.filename}", sink.extend)
            order = self._prefix + "byteorder"
            big = order in archive.namelist() and archive.read(order).strip() == b"big"
            self._members = {i.filename: i for i in archive.infolist()}
        try:
            state = read_pickle(bytes(sink))
        except _Refused as exc:
            raise FileProblem("file", f"{self.name} refused without unpickling it: {exc}") from None
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise FileProblem("file", f"{self.name}: cannot read it as a {self.label} file: a malformed pickle "
                                      f"({type(exc).__name__})") from None
        if not isinstance(state, dict):
            raise FileProblem("file", f"{self.name} holds a {type(state).__name__}, not a state dict "
                                      "(a mapping of name -> tensor)")
        self._state, self._big = state, big
        self._verified: set[str] = set()

    def _tensor(self, key: str) -> _Tensor:
        if key not in self._state:
            raise self.missing("key", "entry", key, [str(k) for k in self._state])
        value = self._state[key]
        if not isinstance(value, _Tensor):
            raise FileProblem("key", f"{self.name} entry {key!r} is a {type(value).__name__}, not a tensor")
        return value

    def entry(self, spec: dict) -> Entry:
        t, what = self._tensor(spec["key"]), f"{self.name} key {spec['key']!r}"
        dtype = _dtype(t.storage.kind)
        if self._big:
            dtype = dtype.newbyteorder(">")
        numeric(dtype, what)
        declared_bytes(t.shape, dtype, what)
        if len(t.stride) != len(t.shape) or t.offset < 0 or any(s < 0 for s in t.stride):
            raise FileProblem("file", f"{what} declares an impossible view (offset {t.offset}, shape "
                                      f"{list(t.shape)}, stride {list(t.stride)})")
        member = f"{self._prefix}data/{t.storage.key}"
        if member not in self._members:
            raise FileProblem("file", f"{what}: its storage {t.storage.key!r} is missing from the archive")
        info = self._members[member]
        check_member(info, f"{self.name} {member}", max_member_bytes(), MEMBER_BYTES_ENV)
        check_present(t.storage.numel * dtype.itemsize, info.file_size, f"{what}: its storage",
                      f"declares {t.storage.numel} {dtype.name} values,")
        if all(t.shape):
            last = t.offset + sum((n - 1) * s for n, s in zip(t.shape, t.stride))
            if last >= t.storage.numel:
                raise FileProblem("file", f"{what} declares a view (offset {t.offset}, shape {list(t.shape)}, "
                                          f"stride {list(t.stride)}) past its storage of {t.storage.numel} values")
        if member not in self._verified:   # the bytes themselves: length and CRC, in bounded chunks
            with open_zip(self.path, self.name) as archive:
                stream_member(archive, info, f"{self.name} {member}")
            self._verified.add(member)
        return Entry(t.shape, dtype, t)

    def read(self, spec: dict, entry: Entry) -> np.ndarray:
        t, dtype = entry.where, entry.dtype
        if not all(t.shape):
            return np.empty(t.shape, dtype=dtype)
        last = t.offset + sum((n - 1) * s for n, s in zip(t.shape, t.stride))
        start, stop = t.offset * dtype.itemsize, (last + 1) * dtype.itemsize
        member = f"{self._prefix}data/{t.storage.key}"
        with open_zip(self.path, self.name) as archive, archive.open(member) as fh:
            fh.seek(start)
            data = bytearray()
            while len(data) < stop - start:
                block = fh.read(min(CHUNK, stop - start - len(data)))
                if not block:
                    raise FileProblem("file", f"{self.name} {member} is truncated")
                data.extend(block)
        flat = np.frombuffer(bytes(data), dtype=dtype)
        view = np.lib.stride_tricks.as_strided(flat, shape=t.shape, strides=[s * dtype.itemsize for s in t.stride])
        return np.array(view)
