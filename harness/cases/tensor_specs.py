"""Validating a tensor spec (explicit values, an init, a file or a literal with a layout) against the shape the
layer needs."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import CaseError
from ..tensors.files import FileProblem, Layout
from ..tensors.files import literal as literal_source
from ..tensors.files import source as file_source
from ..tensors.values import INITS

# How a validator reports a problem: fail(field, message) -> the CaseError (naming the file and case) to raise.
Fail = Callable[[str | None, str], CaseError]
INIT_FIELDS = {
    "zeros": set(), "ones": set(), "constant": {"value"}, "uniform": {"low", "high"},
    "normal": {"mean", "std"}, "arange": {"start", "step"}, "linspace": {"start", "stop"}, "channels": {"values"},
    "sparse": {"entries"},
}


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def nested_shape(value: Any) -> tuple[int, ...] | None:
    """Shape of a rectangular nested list of numbers, or None when it is ragged or not numeric."""
    if is_number(value):
        return ()
    if not isinstance(value, list) or not value:
        return None
    inner = [nested_shape(v) for v in value]
    first = inner[0]
    if first is None or any(s != first for s in inner):   # ragged, or not numbers
        return None
    return (len(value), *first)


def _torch_layout_hint(got: tuple[int, ...], shape: tuple[int, ...], torch_layout: Layout | None) -> str:
    """Where a plain nested list has the tensor's torch-layout shape: how to say so (as a file's check does)."""
    try:
        want = (torch_layout or Layout(channels_first=True)).torch_shape(tuple(shape))
    except Exception:  # noqa: BLE001 - no torch layout for this tensor: no hint
        return ""
    if tuple(got) == tuple(want) != tuple(shape):
        return "; that is its torch layout's shape: write it as {values: [...], layout: torch}"
    return ""


def validate_tensor(fail: Fail, name: str, spec: Any, shape: tuple[int, ...], channel_axis: int,
                     base: Path | None = None, torch_layout: Layout | None = None) -> Any:
    """Check a tensor spec against the ``shape`` the layer needs (Keras layout); returns the spec to keep: as
    written, or for a `file` / `values` mapping a harness.tensors.files.TensorSource (its file checked now, its
    values read when the case runs). ``torch_layout`` says what `layout: torch` means for this tensor."""
    if isinstance(spec, list):
        got = nested_shape(spec)
        if got is None:
            raise fail(name, "an explicit tensor must be a rectangular nested list of numbers")
        if got != tuple(shape):
            raise fail(name, f"impossible shape: explicit values have shape {list(got)}, the layer needs "
                             f"{list(shape)} (Keras layout){_torch_layout_hint(got, shape, torch_layout)}")
        return spec
    if isinstance(spec, dict) and "init" not in spec and ("file" in spec or "values" in spec):
        return _validate_source(fail, name, spec, shape, base, torch_layout or Layout(channels_first=True))
    written = spec
    if isinstance(spec, str):
        spec = {"init": spec}
    if not isinstance(spec, dict) or "init" not in spec:
        raise fail(name, f"must be a nested list, an init name ({', '.join(INITS)}), a mapping with 'init', "
                         "{file: ...} or {values: [...], layout: torch}")
    init = spec["init"]
    if init not in INIT_FIELDS:
        raise fail(f"{name}.init", f"unknown init {init!r}; known: {', '.join(INITS)}")
    extra = set(spec) - {"init"} - INIT_FIELDS[init]
    if extra:
        raise fail(f"{name}.{sorted(extra)[0]}", f"not a field of init {init}; fields: "
                                                 f"{', '.join(sorted(INIT_FIELDS[init])) or 'none'}")
    for key in INIT_FIELDS[init] - {"values", "entries"}:
        if key in spec and not is_number(spec[key]):
            raise fail(f"{name}.{key}", f"must be a number, got {spec[key]!r}")
    if init == "constant" and "value" not in spec:
        raise fail(f"{name}.value", "init constant needs a value")
    if init == "channels":
        values = spec.get("values")
        if not isinstance(values, list) or not all(is_number(v) for v in values):
            raise fail(f"{name}.values", "must be a list of numbers, one per channel")
        if len(values) != shape[channel_axis]:
            raise fail(f"{name}.values", f"impossible shape: {len(values)} values for {shape[channel_axis]} channels")
    if init == "sparse":
        entries = spec.get("entries")
        if not isinstance(entries, list):
            raise fail(f"{name}.entries", "must be a list of {index: [...], value: number}")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or set(entry) != {"index", "value"} or not is_number(entry["value"]):
                raise fail(f"{name}.entries[{i}]", "must be {index: [...], value: number}")
            index = entry["index"]
            if not (isinstance(index, list) and len(index) == len(shape)
                    and all(is_int(j) and 0 <= j < n for j, n in zip(index, shape))):
                raise fail(f"{name}.entries[{i}].index", f"impossible index {index!r} for shape {list(shape)}")
    return written


def _validate_source(fail: Fail, name: str, spec: dict, shape: tuple[int, ...], base: Path | None,
                     torch_layout: Layout) -> Any:
    """A tensor read from a file, or a literal with a layout (harness.tensors.files): errors name the field."""
    where = fail(name, "")   # the case file and id, kept for errors when the values are read
    try:
        if "file" in spec and "values" in spec:
            raise FileProblem("values", "a tensor is read from a file or written as values, not both")
        if "values" in spec:
            got = nested_shape(spec["values"])
            if got is None:
                raise FileProblem("values", "must be a rectangular nested list of numbers")
            return literal_source(spec, got, shape, torch_layout, where.file, where.case or "", name)
        return file_source(spec, shape, base, torch_layout, where.file, where.case or "", name)
    except FileProblem as problem:
        raise fail(f"{name}.{problem.field}" if problem.field else name, problem.message) from None
