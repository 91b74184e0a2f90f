"""Stacks: layers applied in sequence, each layer's output judged against the oracle's float64 composition.

A stack (a `stacks:` entry of a case file) is a list of layers, each a single-layer case's `layer`, `config` and
`weights`, validated as such on the shape that reaches it. Keras runs them as one functional model whose outputs
are every layer's output; torch as one `nn.Sequential` of the port's modules, forward hooks catching each layer's
output; both compute each layer in the stack's dtype on the previous layer's rounded output. The oracle composes
the layers in float64, without rounding between them: the exact composition, up to float64's own roundings.

The bound propagated through the stack. Layer i maps z_{i-1} to z_i = f_i(p_i), p_i = W_i * z_{i-1} + b_i: W_i *
is the layer's linear part (a conv; for a separable layer the depthwise then the pointwise conv), f_i its
activation. The oracle's layer i reads z*_{i-1}, the engine's its own output zh_{i-1} of the layer before. The
engine's pre-activation ph_i = fl(W_i * zh_{i-1} + b_i) is off from the exact p*_i by

    |ph_i - p*_i| <= |ph_i - (W_i * zh_{i-1} + b_i)| + |W_i * (zh_{i-1} - z*_{i-1})|
                  <= c (gamma_Ki(u) + gamma_Ki(u_64)) G_i(|zh_{i-1}|)  +  |W_i| * |zh_{i-1} - z*_{i-1}|
                  <= c (gamma_Ki(u) + gamma_Ki(u_64)) G_i(|z*_{i-1}| + B_{i-1})  +  |W_i| * B_{i-1}  =: E_i

The first term is layer i's own rounding on its actual input (the single-layer bound, harness.agreement, with the
gauge G_i, the layer on |x|, |w|, |b|, taken where that input may lie: G grows with |x|; and, as there, its
underflow etas (1 + gamma_Ki(u)) H_i (eta + eta_64), H_i = oracle.underflow_count); the second is the error
it was given, carried by the linear part: the same layer on magnitudes without its bias, applied to the previous
bound (oracle.gauge with x := B_{i-1}, b := 0). The activation then moves it by at most L_i E_i, L_i = sup |f_i'|
(1 for linear, relu, relu6, tanh; 1/4 for sigmoid; the activation table's `slope` for the others), and for a
non-decreasing f_i by at most the image of the interval, max(f_i(p*_i + E_i) - f_i(p*_i), f_i(p*_i) -
f_i(p*_i - E_i)), which is smaller: 0 where relu clamps (p*_i < -E_i), where every engine's output is exactly 0.
With its own evaluation error (a_i ulps of |z*_i|, as for one layer), per element, with B_{-1} = 0 (every engine
reads the same input):

    B_i = min(L_i E_i, image of [p*_i - E_i, p*_i + E_i] under f_i) + c a_i (u + u_64) |z*_i|

For linear and relu-like activations in their linear part this is the formula
B_i = c (gamma_Ki(u) + gamma_Ki(u_64)) G_i(|z*_{i-1}| + B_{i-1}) + L_i |W_i| * B_{i-1} (+ the ulps term).
The oracle's own float64 roundings are inside: its gamma_K(u_64) terms are carried like the engine's; the image is
computed in float64 and given float64's rounding of its operands as slack.

Each layer's ratio is max |zh_i - z*_i| / B_i; the stack passes when every ratio is at most 1. The layers are
judged in order and the first whose ratio exceeds 1 is the culprit: the layers before it were within their
bounds, and from |zh_{i-1} - z*_{i-1}| <= B_{i-1} a right layer i stays within B_i, so layer i computed
something else. The layers after it read its wrong output and are not judged. Where gamma_Ki(u) >= 1, or where
B_i >= |z*_i| at every element of a layer whose exact output is not all zero (a wrong all-zero output would pass
there), the stack is a skip for that dtype, saying so.
"""
from __future__ import annotations

import difflib
import functools
import math
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import yaml

from . import engines, oracle
from .activations import ACTIVATION_TABLE
from .agreement import ORACLE_DTYPE, SAFETY, Bound, Metrics, format_ratio, gamma, measure, underflow_eta
from .errors import CaseError, EngineRejected, EngineSkip
from .judgement import mismatch, tag
from .layers import Geometry, output_shape
from .runner import Result, repro_command
from .schema import ID_PATTERN, Case, case_from_entry, load_yaml, strip_lines
from .schema import load_file as schema_load_file
from .selection import select_cases
from .tensors import DTYPES, generate, numpy_dtype, round_to, unit_roundoff

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
# The engines that compute a whole stack themselves (besides plug-ins with a `stack` function).
STACK_ENGINES = ("oracle", "keras", "torch")
# sup |f'| of the activations whose slope is known exactly here; any other comes from the activation table.
SLOPES = {"linear": 1.0, "relu": 1.0, "relu6": 1.0, "sigmoid": 0.25, "tanh": 1.0}
# An activation steeper than this (or unbounded) has no use in a propagated bound.
MAX_SLOPE = 16.0


# A plug-in's stack function: [(layer, config, weights), ...] and x (channels last, the stack's dtype) -> every
# layer's output, in order.
StackFn = Callable[[list[tuple[str, dict, dict[str, np.ndarray]]], np.ndarray], Sequence[np.ndarray]]


# ---------------------------------------------------------------- the stack, validated

@dataclass
class StackLayer:
    """One layer of a stack: a single-layer case validated on the shape that reaches it."""

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
    """One runnable stack: its layers in order, one dtype, one seed."""

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

    def summary(self) -> str:
        """'Conv2D -> DepthwiseConv2D -> Conv2D'."""
        return " -> ".join(layer.layer for layer in self.layers)


def lipschitz(activation: str) -> float | None:
    """sup |f'| of an activation (None where unknown or steeper than MAX_SLOPE): SLOPES, else the larger of the
    table's stated `slope` and its derivative sampled on [-64, 64]."""
    if activation in SLOPES:
        return SLOPES[activation]
    return _table_slope(activation)


@functools.lru_cache(maxsize=None)
def _table_slope(activation: str) -> float | None:
    entry = ACTIVATION_TABLE.get(activation)
    stated, derivative = getattr(entry, "slope", None), getattr(entry, "derivative", None)
    if stated is None or derivative is None:
        return None
    with np.errstate(all="ignore"):
        sampled = float(np.max(np.abs(derivative(_slope_grid()))))
    slope = max(float(stated), sampled)
    return slope if math.isfinite(slope) and slope <= MAX_SLOPE else None


@functools.lru_cache(maxsize=1)
def _slope_grid() -> np.ndarray:
    """Where an activation's derivative is sampled: [-64, 64] in steps of 1e-3."""
    return np.linspace(-64.0, 64.0, 128001)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def load_file(path: str | Path, name: str | None = None) -> tuple[list[StackCase], list[CaseError]]:
    """Every valid stack of a case file (its `stacks:` list; none where it has none), and one error per invalid
    stack. ``name`` is how stacks and errors name the file (as schema.load_file's)."""
    shown = str(path) if name is None else name
    try:
        doc = load_yaml(path)   # the case files' own safe loader (libyaml where present), lines under __line__
    except (OSError, yaml.YAMLError) as exc:
        return [], [CaseError(shown, None, None, f"cannot read YAML: {exc}".replace("\n", " "))]
    if not isinstance(doc, dict) or FILE_KEY not in doc:
        return [], []
    unknown = set(doc) - {"defaults", "cases", FILE_KEY, "__line__"}
    if unknown:
        return [], [CaseError(shown, None, ", ".join(sorted(unknown)),
                              "unknown top-level key; allowed: cases, defaults, stacks")]
    if not isinstance(doc[FILE_KEY], list):
        return [], [CaseError(shown, None, FILE_KEY, "must be a list of stacks")]
    stacks: list[StackCase] = []
    errors: list[CaseError] = []
    seen: set[str] = set()
    for position, entry in enumerate(doc[FILE_KEY]):
        label = str(entry["id"]) if isinstance(entry, dict) and "id" in entry else f"{FILE_KEY}#{position + 1}"
        if label in seen:
            errors.append(CaseError(shown, label, "id", "duplicate id in this file"))
            continue
        seen.add(label)
        try:
            stacks.append(stack_from_entry(shown, entry, label))
        except CaseError as exc:
            errors.append(exc)
    return stacks, errors


def mentions_stacks(path: str | Path) -> bool:
    """Whether a file has a top-level `stacks:` key (read as text: no YAML parsed)."""
    try:
        return bool(STACKS_KEY.search(Path(path).read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return False


STACKS_KEY = re.compile(r"""^["']?stacks["']?[ \t]*:""", re.MULTILINE)


def load_paths(paths: Sequence[str | Path]) -> tuple[list[StackCase], list[CaseError]]:
    """The stacks of several files (folders searched for *.yaml, *.yml); ids unique across them."""
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.rglob("*.yaml")) + sorted(p.rglob("*.yml")) if p.is_dir() else [p])
    stacks, errors, owner = [], [], {}
    for f in files:
        if not mentions_stacks(f):
            continue
        got, bad = load_file(f)
        errors.extend(bad)
        for stack in got:
            if stack.id in owner:
                errors.append(CaseError(str(f), stack.id, "id", f"duplicate id, already used in {owner[stack.id]}"))
                continue
            owner[stack.id] = str(f)
            stacks.append(stack)
    return stacks, errors


# ---------------------------------------------------------------- one loader for cases and stacks

@dataclass
class Suite:
    """What case files hold: the valid cases and stacks, and one error per invalid case, stack or file. Every entry
    point loads files through load_suite (pytest through load_suite_file), so that a file of cases, of stacks or of
    both is read, validated and counted the same way everywhere."""

    cases: list[Case] = field(default_factory=list)
    stacks: list[StackCase] = field(default_factory=list)
    case_errors: list[CaseError] = field(default_factory=list)    # invalid cases, and files that cannot be read
    stack_errors: list[CaseError] = field(default_factory=list)   # invalid stacks

    @property
    def errors(self) -> list[CaseError]:
        return [*self.case_errors, *self.stack_errors]


def case_files(paths: Sequence[str | Path]) -> list[Path]:
    """The files ``paths`` name (folders searched for *.yaml, *.yml); ValueError for a path that does not exist
    (a usage error: a typo must not read as an empty, green suite)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise ValueError(f"no such case file or folder: {p}")
        files.extend(sorted(p.rglob("*.yaml")) + sorted(p.rglob("*.yml")) if p.is_dir() else [p])
    return files


def load_suite_file(path: str | Path, name: str | None = None, owners: dict[str, str] | None = None) -> Suite:
    """The cases and stacks of one file (``name``: how they and the errors name it, as schema.load_file's). Ids are
    unique within the file and across the files loaded with the same ``owners`` (id -> file), cases and stacks
    sharing one name space: a second user of an id is an error."""
    shown = str(path) if name is None else name
    cases, case_errors = schema_load_file(path, name=shown)
    stacks, stack_errors = load_file(path, name=shown) if mentions_stacks(path) else ([], [])
    if any(e.case is None for e in case_errors):   # the file itself is unreadable: said once
        stack_errors = [e for e in stack_errors if e.case is not None]
    owners = {} if owners is None else owners
    suite = Suite(case_errors=case_errors, stack_errors=stack_errors)
    for case in cases:
        if owners.setdefault(case.id, shown) != shown:
            suite.case_errors.append(CaseError(shown, case.id, "id", f"duplicate id, already used in {owners[case.id]}"))
        else:
            suite.cases.append(case)
    mine = {case.id for case in suite.cases}
    for one in stacks:
        if one.id in mine:
            suite.stack_errors.append(CaseError(shown, one.id, "id", "duplicate id, already used by a case of this file"))
        elif owners.setdefault(one.id, shown) != shown:
            suite.stack_errors.append(CaseError(shown, one.id, "id", f"duplicate id, already used in {owners[one.id]}"))
        else:
            suite.stacks.append(one)
    return suite


def load_suite(paths: Sequence[str | Path]) -> Suite:
    """The cases and stacks of several files and folders, ids unique across all of them (load_suite_file)."""
    suite, owners = Suite(), {}
    for f in case_files(paths):
        got = load_suite_file(f, owners=owners)
        suite.cases += got.cases
        suite.stacks += got.stacks
        suite.case_errors += got.case_errors
        suite.stack_errors += got.stack_errors
    return suite


def select_suite(suite: Suite, ids: list[str] | None, paths: Sequence[str | Path]) -> Suite:
    """The cases and stacks ``ids`` (`--case`, repeatable) name, all where none is; an id that names neither raises
    ValueError (harness.selection.select_cases). The errors are kept whole: an invalid entry is never selected away
    unseen."""
    stacks, rest, want_cases = select(suite.stacks, ids)
    cases = select_cases(suite.cases, rest, list(paths)) if want_cases else []
    return Suite(cases=cases, stacks=stacks, case_errors=suite.case_errors, stack_errors=suite.stack_errors)


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
    if lipschitz(activation) is None:
        raise fail(f"{where}.config.activation", f"{activation!r} has no known slope sup|f'| (harness.stack.SLOPES, "
                                                 f"or the activation table's slope up to {MAX_SLOPE:g}): the error "
                                                 f"bound cannot carry an error through it")
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


# ---------------------------------------------------------------- the reference: composition and bounds

@dataclass
class StackInputs:
    """The values every engine consumes: generated once in float64, rounded once to the stack's dtype."""

    x: np.ndarray
    weights: list[dict[str, np.ndarray]]     # per layer, Keras names and layout, the stack's dtype
    x64: np.ndarray
    weights64: list[dict[str, np.ndarray]]


@dataclass
class LayerReference:
    """One layer's exact output and the bound of an engine's distance to it."""

    y: np.ndarray          # the oracle's composition up to this layer, float64, channels last
    bound: np.ndarray      # B_i, per element
    gauge: np.ndarray      # G_i(|z*_{i-1}|): the scale of the output
    k: int                 # the layer's reduction length
    slope: float           # L_i


@dataclass
class StackReference:
    inputs: StackInputs
    layers: list[LayerReference]


def make_inputs(stack: StackCase) -> StackInputs:
    """The input (stream "input") and each layer's weights (streams "layers[i].NAME"), rounded once."""
    x = round_to(generate(stack.input, stack.input_shape, stack.seed, "input", -1), stack.dtype)
    weights = [{name: round_to(generate(layer.case.weights.get(name, "normal"), shape, stack.seed,
                                        f"layers[{i}].{name}"), stack.dtype)
                for name, shape in layer.geometry.weight_shapes().items()}
               for i, layer in enumerate(stack.layers)]
    return StackInputs(x=x, weights=weights, x64=x.astype(np.float64),
                       weights64=[{k: v.astype(np.float64) for k, v in w.items()} for w in weights])


def layer_reference(layer: StackLayer, dtype: str, z: np.ndarray, carried: np.ndarray | None,
                    w: dict[str, np.ndarray]) -> LayerReference:
    """Layer i on the exact composition's output ``z`` (float64) and the bound B_i, given B_{i-1} (``carried``;
    None for the first layer, whose input every engine reads exactly)."""
    name, config, g = layer.layer, layer.config, layer.geometry
    slope = lipschitz(g.activation)
    if slope is None:
        raise ValueError(f"{name}: activation {g.activation!r} has no known slope")
    y = oracle.run(name, config, z, w)
    exact_gauge = oracle.gauge(name, config, z, w)
    k = g.reduction_length()
    u, u64 = unit_roundoff(dtype), unit_roundoff(ORACLE_DTYPE)
    reach = exact_gauge if carried is None else oracle.gauge(name, config, np.abs(z) + carried, w)
    # E: the pre-activation's error, its own rounding on the engine's actual input and the error it was given.
    # Underflow (harness.agreement.error_bound): H etas of the layer's own roundings, each through the rest of its
    # sum's roundings; and, where the activation's evaluation rounds, one for its output.
    eta = underflow_eta(dtype) + underflow_eta(ORACLE_DTYPE)
    underflow = (1.0 + gamma(k, u)) * np.asarray(oracle.underflow_count(g, z, w)) * eta
    pre_error = SAFETY * ((gamma(k, u) + gamma(k, u64)) * reach + underflow)
    if carried is not None:
        without_bias = {n: (np.zeros_like(v) if n == "bias" else v) for n, v in w.items()}
        pre_error = pre_error + oracle.gauge(name, config, carried, without_bias)
    pre = y if g.activation == "linear" else oracle.run(name, {**config, "activation": None}, z, w)
    act = ACTIVATION_TABLE[g.activation]
    rounds = 1.0 if act.ulps or act.absolute_ulps else 0.0
    bound = through(g.activation, pre, y, pre_error) + SAFETY * (act.ulps * (u + u64) * np.abs(y) + rounds * eta)
    return LayerReference(y=y, bound=bound, gauge=exact_gauge, k=k, slope=slope)


def through(activation: str, pre: np.ndarray, y: np.ndarray, error: np.ndarray) -> np.ndarray:
    """How far f(p) may be from f(pre) for |p - pre| <= error: L * error, and for a non-decreasing f the image of
    the interval, max(f(pre + error) - f(pre), f(pre) - f(pre - error)), where it is smaller (0 where relu clamps);
    the image is computed in float64, so it is given float64's rounding of its operands as slack."""
    slope = lipschitz(activation)
    if slope is None:
        raise ValueError(f"activation {activation!r} has no known slope")
    if activation == "linear":
        return error
    if not monotone(activation):
        return slope * error
    f = ACTIVATION_TABLE[activation].reference
    with np.errstate(all="ignore"):
        image = np.maximum(f(pre + error) - y, y - f(pre - error))
    slack = 8.0 * unit_roundoff(ORACLE_DTYPE) * (slope * (np.abs(pre) + error) + np.abs(y))
    return np.minimum(slope * error, image + slack)


@functools.lru_cache(maxsize=None)
def monotone(activation: str) -> bool:
    """Whether f never decreases: the activations of SLOPES do not; another, where its derivative sampled on
    [-64, 64] is nowhere negative."""
    if activation in SLOPES:
        return True
    derivative = getattr(ACTIVATION_TABLE.get(activation), "derivative", None)
    if derivative is None:
        return False
    with np.errstate(all="ignore"):
        return bool(np.min(derivative(_slope_grid())) >= 0.0)


def propagate(stack: StackCase, inputs: StackInputs) -> list[LayerReference]:
    """Every layer's exact output and bound, in order (the module docstring derives B_i)."""
    out: list[LayerReference] = []
    z, carried = inputs.x64, None
    for layer, w in zip(stack.layers, inputs.weights64):
        out.append(layer_reference(layer, stack.dtype, z, carried, w))
        z, carried = out[-1].y, out[-1].bound
    return out


_cache: dict[tuple[str, str], StackReference] = {}


def reference(stack: StackCase) -> StackReference:
    """The stack's inputs, exact outputs and bounds, computed once per stack and process (one stack kept)."""
    key = (stack.file, stack.id)
    if key not in _cache:
        _cache.clear()
        inputs = make_inputs(stack)
        _cache[key] = StackReference(inputs=inputs, layers=propagate(stack, inputs))
    return _cache[key]


def unusable(stack: StackCase, layers: list[LayerReference]) -> str:
    """Where the bound says nothing ('' where it is usable at every layer): gamma_K >= 1, or a layer whose bound
    B_i is at least |z*_i| at every element, so that a wrong all-zero output would pass there (where z*_i is all
    zero, relu having clamped every element, an all-zero output is right and the bound is ~0: usable)."""
    u = unit_roundoff(stack.dtype)
    for i, (layer, ref) in enumerate(zip(stack.layers, layers)):
        where = f"layers[{i}] ({layer.layer})"
        if gamma(ref.k, u) >= 1.0:
            return f"{where}: K={ref.k} terms in {stack.dtype} (gamma_K >= 1)"
        if np.any(ref.y) and np.all(ref.bound >= np.abs(ref.y)):
            scale = ref.gauge > 0
            share = float(np.median(ref.bound[scale] / ref.gauge[scale])) if np.any(scale) else math.inf
            return (f"{where}: the propagated bound is at least |y| at every element (median {share:.3g} x the "
                    "gauge G)")
    return ""


# ---------------------------------------------------------------- engines

@dataclass
class StackOutput:
    """One engine's answer for a stack: every layer's output, channels last, in the dtype it computed."""

    ys: list[np.ndarray]
    params: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _keras(stack: StackCase, inputs: StackInputs) -> StackOutput:
    """One Keras functional model of the real layers, its outputs every layer's output."""
    from .keras_layer import build_keras_layer, import_keras

    engine = engines.get("keras")   # imports Keras on TensorFlow and knows TensorFlow's CPU kernel path
    if getattr(engine, "refusal", ""):
        raise EngineSkip(engine.refusal)
    keras = import_keras()
    objs = []
    for i, (layer, w) in enumerate(zip(stack.layers, inputs.weights)):
        try:
            objs.append(build_keras_layer(layer.layer, layer.config, stack.dtype, layer.input_shape, w))
        except ValueError as exc:   # Keras's own argument checks
            raise EngineRejected(f"Keras refused layers[{i}] {layer.layer}: {type(exc).__name__}: {exc}") from exc
    x_in = keras.Input(batch_shape=stack.input_shape, dtype=stack.dtype)
    h, outs = x_in, []
    for obj in objs:
        h = obj(h)
        outs.append(h)
    model = keras.Model(x_in, outs)
    import tensorflow as tf

    try:
        ys = model(inputs.x, training=False)
    except (tf.errors.OpError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise EngineRejected(f"Keras/TensorFlow refused the stack at call: {type(exc).__name__}: {first}") from exc
    return StackOutput(ys=[np.asarray(y) for y in ys], params=int(model.count_params()),
                       facts={"onednn": getattr(engine, "onednn", None), "keras_layer_format": "channels_last"})


def _torch(stack: StackCase, inputs: StackInputs) -> StackOutput:
    """One nn.Sequential of the torch port's modules; forward hooks catch every layer's output."""
    import torch

    from . import torch_port

    tdtype = getattr(torch, stack.dtype)
    model = torch.nn.Sequential(*[
        torch_port.from_keras(layer.layer, layer.config, w, in_channels=layer.geometry.in_channels, dtype=tdtype)
        for layer, w in zip(stack.layers, inputs.weights)])
    outs: list[Any] = []
    for module in model:
        module.register_forward_hook(lambda _m, _i, out: outs.append(out))
    x = inputs.x.astype(np.float32) if stack.dtype == "bfloat16" else inputs.x
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(tdtype).movedim(-1, 1)   # torch modules are channels first
    try:
        with torch.no_grad():
            model(xt)
    except RuntimeError as exc:
        if "not implemented" in str(exc):
            raise EngineSkip(f"PyTorch CPU has no kernel for this: {str(exc).splitlines()[0]}") from exc
        raise
    return StackOutput(ys=[_numpy(t.movedim(1, -1), stack.dtype) for t in outs],
                       params=int(sum(p.numel() for p in model.parameters())))


def _numpy(t: Any, dtype: str) -> np.ndarray:
    """A torch tensor as a NumPy array of ``dtype`` (bfloat16 through float32: exact)."""
    t = t.detach()
    return np.ascontiguousarray(t.float().numpy().astype(numpy_dtype(dtype)) if dtype == "bfloat16" else t.numpy())


def plugin_stack(engine: str) -> StackFn | None:
    """A plug-in's stack function: the `stack` attribute of its callable (None for every other engine)."""
    if engine in engines.BUILTIN:
        return None
    return getattr(getattr(engines.get(engine), "fn", None), "stack", None)


def compute(stack: StackCase, engine: str, inputs: StackInputs, fn: StackFn | None = None) -> StackOutput:
    """Every layer's output as ``engine`` (or ``fn``, a stack function) computes the stack."""
    fn = fn or plugin_stack(engine)
    if fn is not None:
        layers = [(layer.layer, dict(layer.config), {k: v.copy() for k, v in w.items()})
                  for layer, w in zip(stack.layers, inputs.weights)]
        return StackOutput(ys=[np.asarray(y) for y in fn(layers, inputs.x.copy())])
    build = _BUILDERS.get(engine)
    if build is not None:
        return build(stack, inputs)
    raise EngineSkip(f"{engine} computes one layer per request; stacks run in {', '.join(STACK_ENGINES)} and in "
                     "plug-ins whose callable has a `stack` attribute, fn.stack(layers, x) -> every layer's output")


# The built-in engines that build a whole stack (one Keras model; one nn.Sequential of the port).
_BUILDERS: dict[str, Callable[["StackCase", "StackInputs"], "StackOutput"]] = {"keras": _keras, "torch": _torch}


# ---------------------------------------------------------------- judgement

@dataclass
class StackJudgement:
    verdict: str                          # pass | fail
    message: str = ""
    metrics: list[Metrics] = field(default_factory=list)   # per layer judged, in order
    culprit: int | None = None            # the first layer over its bound (or of a wrong shape or dtype)


def judge(stack: StackCase, engine: str, out: StackOutput, layers: list[LayerReference]) -> StackJudgement:
    """Every layer's output in order: shape, dtype, values within B_i; the first that fails is the culprit."""
    if len(out.ys) != len(layers):
        return StackJudgement("fail", mismatch(engine, "layer outputs", len(out.ys), f"{len(layers)} (one per layer)",
                                               stack))
    want_dtype = "float64" if engines.is_reference(engine) else str(numpy_dtype(stack.dtype))
    u = unit_roundoff("float64" if engines.is_reference(engine) else stack.dtype)
    judged = StackJudgement("pass")
    for i, (layer, y, ref) in enumerate(zip(stack.layers, out.ys, layers)):
        name = f"layers[{i}] ({layer.layer})"
        if tuple(y.shape) != ref.y.shape:
            return _culprit(judged, i, mismatch(engine, f"{name} output shape", tuple(y.shape), ref.y.shape, stack))
        if str(y.dtype) != want_dtype:
            return _culprit(judged, i, mismatch(engine, f"{name} output dtype", y.dtype, want_dtype, stack))
        m = measure(y, ref.y, Bound(k=ref.k, u=u, bound=ref.bound))
        judged.metrics.append(m)
        if m.max_ratio > 1.0:
            return _culprit(judged, i, f"{engine}: {name} max error/bound {format_ratio(m.max_ratio)} at {tuple(m.worst_index)}: "
                                       f"{m.worst_value:.9g} vs {m.worst_oracle:.9g} oracle ({m.n_over} of {y.size} "
                                       f"elements over the bound) {tag(stack)}")
    return judged


def _culprit(judged: StackJudgement, i: int, message: str) -> StackJudgement:
    judged.verdict, judged.message, judged.culprit = "fail", message, i
    return judged


@dataclass
class StackResult(Result):
    """A Result (as the CLI and pytest show it) with each layer's metrics and the culprit."""

    layer_metrics: list[Metrics] = field(default_factory=list)
    culprit: int | None = None


def ratios_note(stack: StackCase, judged: StackJudgement) -> str:
    """'error/bound per layer: [0] Conv2D 0.012, [1] DepthwiseConv2D 3.2e+04 (culprit), [2] Conv2D not judged'."""
    parts = []
    for i, layer in enumerate(stack.layers):
        if i < len(judged.metrics):
            parts.append(f"[{i}] {layer.layer} {format_ratio(judged.metrics[i].max_ratio)}"
                         + (" (culprit)" if i == judged.culprit else ""))
        elif i == judged.culprit:
            parts.append(f"[{i}] {layer.layer} (culprit)")
        else:
            parts.append(f"[{i}] {layer.layer} not judged (reads the culprit's output)")
    return "error/bound per layer: " + ", ".join(parts)


def run_stack(stack: StackCase, engine: str, fn: StackFn | None = None) -> StackResult:
    """Run and judge one (stack, engine); ``fn`` computes the stack instead of the engine (a stack function).
    Never raises: every outcome is a result (skip, rejected and error included)."""
    result = StackResult(case_id=stack.id, file=stack.file, engine=engine, verdict="error",
                         repro=repro_command(stack, engine))   # type: ignore[arg-type]
    start = time.perf_counter()
    try:
        _run(stack, engine, fn, result)
    except (EngineSkip, NotImplementedError) as exc:
        result.verdict, result.message = "skip", f"{engine} cannot run this stack: {exc} {tag(stack)}"
    except EngineRejected as exc:
        result.verdict, result.message = "rejected", str(exc)
    except Exception as exc:  # noqa: BLE001 - a harness or engine crash is reported, never lost
        first = str(exc).splitlines()[0] if str(exc) else ""
        result.verdict, result.message = "error", f"{engine}: {type(exc).__name__}: {first} {tag(stack)}"
        result.details = traceback.format_exc()
    finally:
        result.duration_s = time.perf_counter() - start
    return result


def _run(stack: StackCase, engine: str, fn: StackFn | None, result: StackResult) -> None:
    if engine in stack.skip:
        result.verdict, result.message = "skip", f"stack skips {engine}: {stack.skip[engine]}"
        return
    ref = reference(stack)
    exact = engines.is_reference(engine) and fn is None
    if not exact:
        problem = unusable(stack, ref.layers)
        if problem:
            result.verdict = "skip"
            result.message = (f"{engine}: no usable error bound at {problem}; it would accept an all-zero output: use "
                              f"fewer layers, smaller reductions or a wider dtype {tag(stack)}")
            return
    out = StackOutput(ys=[r.y for r in ref.layers], params=sum(l.geometry.param_count() for l in stack.layers)) \
        if exact else compute(stack, engine, ref.inputs, fn)
    result.facts, result.params = dict(out.facts), out.params
    result.notes.extend(out.notes)
    if out.ys:
        result.output_shape, result.dtype = tuple(out.ys[-1].shape), str(out.ys[-1].dtype)
    judged = judge(stack, engine, out, ref.layers)
    result.verdict, result.message = judged.verdict, judged.message
    result.layer_metrics, result.culprit = judged.metrics, judged.culprit
    if judged.culprit is not None:
        result.metrics = judged.metrics[judged.culprit] if judged.culprit < len(judged.metrics) else None
    elif judged.metrics:
        result.metrics = max(judged.metrics, key=lambda m: m.max_ratio)
    result.notes.append(ratios_note(stack, judged))


def select(stacks: list[StackCase], ids: list[str] | None) -> tuple[list[StackCase], list[str] | None, bool]:
    """For `--case`: the stacks ``ids`` name (all where none is named), the ids left for the cases, and whether
    any case is wanted (False where every id named is a stack's)."""
    if not ids:
        return stacks, ids, True
    rest = [i for i in ids if not any(s.id == i for s in stacks)]
    return [s for s in stacks if s.id in ids], rest or None, bool(rest)
