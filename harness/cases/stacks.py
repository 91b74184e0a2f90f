"""Stacks as written: the `stacks:` entries of a case file validated into a sequence of steps, each a single-layer case.

A stack is the general "sequence of layers with captured intermediate outputs" (harness.judge.stack_reference computes
its exact composition and the bound propagated through it; harness.judge.sequence names the first layer over its
bound): here its steps come from YAML, each a single-layer case's `layer`, `config` and `weights` validated on the
shape that reaches it. A whole model (the model diff) is the same sequence with its steps read from the model.
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import engines
from ..errors import CaseError
from ..known.registry import Expectation
from ..layers.activations import ACTIVATION_TABLE
from ..layers.geometry import Geometry, output_shape
from ..tensors.values import DTYPES
from .schema import ID_PATTERN, Case, case_from_entry, entries_of, strip_lines

FILE_KEY = "stacks"
STACK_KEYS = {
    "id": "unique name (shared with the cases), part of the pytest id",
    "input_shape": "batch first, channels last",
    "dtype": "float16 | bfloat16 | float32 | float64",
    "seed": "random seed of the generated tensors",
    "input": "tensor spec of the input",
    "layers": "the layers in order: [{layer, config, weights}, ...]",
    "engine_options": "per engine name, options of that engine (none is taken by a stack yet)",
    "skip": "per engine name, the reason that engine is skipped for this stack",
    "description": "free text",
}
LAYER_KEYS = {"layer", "config", "weights"}
# An activation steeper than this (or unbounded) has no use in a propagated bound: the error grows by its slope at
# every layer.
MAX_SLOPE = 16.0


@dataclass
class StackLayer:
    """One step of a sequence: a single-layer case validated on the shape that reaches it."""

    case: Case

    @property
    def layer(self) -> str:
        return self.case.layer

    @property
    def config(self) -> dict[str, Any]:
        return self.case.config

    @property
    def geometry(self) -> Geometry:
        return self.case.geometry

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.case.input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return output_shape(self.geometry, self.input_shape)


@dataclass
class StackCase:
    """One runnable stack: its layers in order, one dtype, one seed. It runs through harness.judge.runner.run_one as a
    case does (its forward check only)."""

    id: str
    file: str
    input_shape: tuple[int, ...]
    layers: list[StackLayer]
    dtype: str = "float32"
    seed: int = 0
    input: Any = "normal"
    skip: dict[str, str] = field(default_factory=dict)
    engine_options: dict[str, dict] = field(default_factory=dict)
    description: str = ""
    line: int | None = None
    source: dict[str, Any] = field(default_factory=dict)
    check: tuple[str, ...] = ("forward",)
    # What run_one reads of every case: a stack pins no known bug or refusal (yet), and cannot be impossible.
    xfail: dict[str, Expectation] = field(default_factory=dict)
    rejected_by: dict[str, Expectation] = field(default_factory=dict)
    impossible: str = ""

    def summary(self) -> str:
        """'Conv2D -> DepthwiseConv2D -> Conv2D'."""
        return " -> ".join(layer.layer for layer in self.layers)

    @property
    def layer(self) -> str:
        """What a report shows in a case's layer column: 'stack: Conv2D -> DepthwiseConv2D -> Conv2D'."""
        return f"stack: {self.summary()}"


def slope(activation: str) -> float | None:
    """sup |f'| of an activation as the table declares it (harness.layers.activations: slope); None where it is unknown,
    unbounded or steeper than MAX_SLOPE: no propagated bound carries an error through it."""
    entry = ACTIVATION_TABLE.get(activation)
    if entry is None or not math.isfinite(entry.slope) or entry.slope > MAX_SLOPE:
        return None
    return float(entry.slope)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def stacks_of(doc: dict[str, Any], shown: str) -> tuple[list[StackCase], list[CaseError]]:
    """Every valid stack of a case file's document (schema.read_case_file: parsed once), and one error per invalid
    stack; ``shown`` is how stacks and errors name the file."""
    return entries_of(doc, FILE_KEY, shown, "stacks", lambda entry, label: stack_from_entry(shown, entry, label))


def stack_from_entry(file: str, entry: Any, label: str | None = None) -> StackCase:
    """One `stacks:` entry validated (CaseError names the file, the stack and the field, e.g.
    `layers[1].config.kernel_size`); tensor files are relative to ``file``'s folder."""
    label = label or (str(entry["id"]) if isinstance(entry, dict) and "id" in entry else "#1")

    def fail(fieldname: str | None, message: str) -> CaseError:
        return CaseError(file, label, fieldname, message)

    if not isinstance(entry, dict):
        raise fail(None, f"a stack is a mapping, got {type(entry).__name__}")
    data = strip_lines(entry)
    unknown = set(data) - set(STACK_KEYS)
    if unknown:
        raise fail(", ".join(sorted(unknown)), "unknown key of a stack; allowed: " + ", ".join(sorted(STACK_KEYS)))
    for required in ("id", "input_shape", "layers"):
        if required not in data:
            raise fail(required, "missing required key")
    _check_top(fail, data)
    stack = StackCase(id=data["id"], file=file, input_shape=tuple(data["input_shape"]), layers=[],
                      dtype=data.get("dtype", "float32"), seed=data.get("seed", 0),
                      skip=dict(data.get("skip") or {}), engine_options=dict(data.get("engine_options") or {}),
                      description=data.get("description", ""), line=entry.get("__line__"), source=data)
    shape = stack.input_shape
    for i, raw in enumerate(data["layers"]):
        layer = _layer(fail, stack, i, raw, shape, data.get("input", "normal"))
        stack.layers.append(layer)
        shape = layer.output_shape
    stack.input = stack.layers[0].case.input
    return stack


def _check_top(fail: Callable[[str | None, str], CaseError], data: dict) -> None:
    """The stack's own fields: id, input_shape, dtype, seed, layers, skip, engine_options, description."""
    if not isinstance(data["id"], str) or not ID_PATTERN.match(data["id"]):
        raise fail("id", f"must be a string of letters, digits and _.+- ; got {data['id']!r}")
    shape = data["input_shape"]
    if not isinstance(shape, list) or len(shape) < 3 or not all(_is_int(d) and d > 0 for d in shape):
        raise fail("input_shape", f"must be a list of positive integers (batch, spatial..., channels), got {shape!r}")
    if data.get("dtype", "float32") not in DTYPES:
        raise fail("dtype", f"must be one of {', '.join(DTYPES)}, got {data['dtype']!r}")
    seed = data.get("seed", 0)
    if not _is_int(seed) or seed < 0:
        raise fail("seed", f"must be a non-negative integer, got {seed!r}")
    if not isinstance(data["layers"], list) or not data["layers"]:
        raise fail("layers", "must be a non-empty list of {layer, config, weights}")
    skip = data.get("skip") or {}
    if not isinstance(skip, dict):
        raise fail("skip", "must be a mapping keyed by engine name")
    for engine, reason in skip.items():
        near = difflib.get_close_matches(str(engine), list(engines.BUILTIN), n=1, cutoff=0.6)
        if engine not in engines.BUILTIN and near:   # a near miss of a built-in is a typo, not a plug-in
            raise fail(f"skip.{engine}", f"unknown engine {engine!r}; did you mean {near[0]!r}?")
        if not isinstance(reason, str) or not reason.strip():
            raise fail(f"skip.{engine}", "needs the reason, as text")
    options = data.get("engine_options") or {}
    if not isinstance(options, dict):
        raise fail("engine_options", "must be a mapping keyed by engine name")
    for engine, taken in options.items():
        if taken:
            raise fail(f"engine_options.{engine}", "no engine takes options in a stack (torch's depthwise_bias is a "
                                                   "single-layer case's port variant)")
    if not isinstance(data.get("description", ""), str):
        raise fail("description", "must be text")


def _layer(fail: Callable[[str | None, str], CaseError], stack: StackCase, i: int, raw: Any,
           shape: tuple[int, ...], input_spec: Any) -> StackLayer:
    """Layer i validated as a single-layer case (schema.case_from_entry) on ``shape``, the shape reaching it."""
    where = f"layers[{i}]"
    if not isinstance(raw, dict):
        raise fail(where, f"a layer is a mapping {{layer, config, weights}}, got {type(raw).__name__}")
    unknown = set(raw) - LAYER_KEYS
    if unknown:
        raise fail(f"{where}.{sorted(unknown)[0]}", f"unknown key of a layer; allowed: {', '.join(sorted(LAYER_KEYS))}")
    for required in ("layer", "config"):
        if required not in raw:
            raise fail(f"{where}.{required}", "missing required key")
    entry = {"id": stack.id, "layer": raw["layer"], "input_shape": list(shape), "config": raw["config"],
             "dtype": stack.dtype, "seed": stack.seed, "weights": raw.get("weights") or {}}
    if i == 0:
        entry["input"] = input_spec
    try:
        (case,) = case_from_entry(stack.file, entry)
    except CaseError as exc:
        raise _renamed(exc, where, i, shape) from None
    if case.config.get("data_format", "channels_last") != "channels_last":
        raise fail(f"{where}.config.data_format", "a stack runs channels_last only (channels_first is covered by "
                                                  "the single-layer cases)")
    activation = case.geometry.activation
    if slope(activation) is None:
        raise fail(f"{where}.config.activation", f"{activation!r} has no known slope sup|f'| up to {MAX_SLOPE:g} "
                                                 "(harness.layers.activations: slope): the error bound cannot carry an "
                                                 "error through it")
    return StackLayer(case=case)


def _renamed(exc: CaseError, where: str, i: int, shape: tuple[int, ...]) -> CaseError:
    """A single-layer error as the stack's: fields under layers[i], the input's and first shape's as they are."""
    name, message = exc.field, exc.message
    if name == "input_shape" and i:
        name, message = where, f"{message} (its input is the output of layers[{i - 1}], shape {list(shape)})"
    elif name is None:
        name = where
    elif not (i == 0 and name.startswith("input")):
        name = f"{where}.{name}"
    return CaseError(exc.file, exc.case, name, message)
