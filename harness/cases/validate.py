"""Validating one point of a case: layer, input shape, config, dtype, seed, sizes, tensors and the engine tables,
into a Case."""
from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

from ..engines import BUILTIN, engine_class
from ..errors import CaseError
from ..known.registry import parse as parse_expectation
from ..layers.families.base import LayerKind
from ..layers.geometry import ACTIVATIONS, LAYERS, ConfigProblem, impossible, output_shape
from ..tensors.files import Layout
from ..tensors.values import DTYPES
from .expectations import OUTPUT_FACTS, validate_check, validate_expect
from .model import Case
from .tensor_specs import Fail, is_int, validate_tensor

# The most elements one generated tensor (input, weight, output) may hold: 2 GiB in float64, the oracle's dtype. A
# size a case file can write (kernel_size: 100000 with padding same) must not cost more than reading it.
MAX_ELEMENTS = 1 << 28


def validate_case(path: str, case_id: str, data: dict, swept: dict, base: Path | None = None) -> Case:
    def fail(fieldname: str | None, message: str) -> CaseError:
        return CaseError(path, case_id, fieldname, message)

    layer = data["layer"]
    if layer not in LAYERS:
        raise fail("layer", f"unknown layer {layer!r}; known: {', '.join(LAYERS)}")
    kind = LAYERS[layer]
    shape = data["input_shape"]
    if not isinstance(shape, list) or not all(is_int(d) and d > 0 for d in shape):
        raise fail("input_shape", f"must be a list of positive integers, got {shape!r}")
    if len(shape) != kind.rank + 2:
        raise fail("input_shape", f"{layer} takes {kind.rank + 2}-d input (batch, {kind.rank} spatial, channels), "
                                  f"got {len(shape)}-d {shape}")
    config = data["config"]
    if not isinstance(config, dict):
        raise fail("config", "must be a mapping of Keras constructor arguments")
    pins_refusal = isinstance(data.get("expect"), dict) and bool(data["expect"].get("rejected_by"))
    _validate_config(fail, kind, config, pins_refusal)
    dtype = data.get("dtype", "float32")
    if dtype not in DTYPES:
        raise fail("dtype", f"must be one of {', '.join(DTYPES)}, got {dtype!r}")
    seed = data.get("seed", 0)
    if not is_int(seed) or seed < 0:
        raise fail("seed", f"must be a non-negative integer, got {seed!r}")
    case = Case(id=case_id, file=path, layer=layer, input_shape=tuple(shape), config=config, dtype=dtype,
                seed=seed, input=data.get("input", "normal"), weights=data.get("weights") or {},
                expect=data.get("expect") or {}, swept=swept,
                engine_options=data.get("engine_options") or {}, skip=data.get("skip") or {})
    try:
        g = case.geometry
    except ConfigProblem as problem:
        raise fail(problem.field, problem.message) from None
    problems = impossible(g, case.input_shape)
    if problems and not pins_refusal:
        raise fail(*problems[0])
    if problems and set(case.expect) & OUTPUT_FACTS:
        raise fail("expect", f"{problems[0][0]} {problems[0][1]}: a configuration pinned as refused has no output "
                             f"to check (expect.{sorted(set(case.expect) & OUTPUT_FACTS)[0]})")
    case.impossible = "; ".join(f"{field}: {message}" for field, message in problems)
    out = output_shape(g, case.input_shape) if not problems else ()
    channel_axis = 1 if g.channels_first else -1
    activation = Layout(channels_first=g.channels_first)   # what `layout: torch` means for input and grad_output
    case.input = validate_tensor(fail, "input", case.input, case.input_shape, channel_axis, base, activation)
    try:
        shapes = g.weight_shapes()
    except ConfigProblem:   # only where pinned as refused (else refused above): an engine must refuse it unsized
        shapes = {}
        if case.weights:
            raise fail("weights", f"{problems[0][0]} {problems[0][1]}: the weights of a configuration pinned as "
                                  "refused cannot be sized; leave them out") from None
    _check_sizes(fail, case, shapes, out)
    if not isinstance(case.weights, dict):
        raise fail("weights", "must be a mapping of Keras weight name -> tensor spec")
    weights = {}
    for name, spec in case.weights.items():
        if name not in shapes:
            why = " (use_bias is false)" if name == "bias" else ""
            raise fail(f"weights.{name}", f"{layer} has no weight {name!r}{why}; its weights: {', '.join(shapes)}")
        weights[name] = validate_tensor(fail, f"weights.{name}", spec, shapes[name], -1, base,
                                         Layout(weight=name, geometry=g))
    case.weights = weights
    validate_expect(fail, case.expect, shapes, out)
    validate_check(fail, case, data, shapes, out, channel_axis, base, activation)
    for key in ("engine_options", "skip", "xfail"):
        if not isinstance(data.get(key) or {}, dict):
            raise fail(key, "must be a mapping keyed by engine name")
    for engine, reason in (data.get("skip") or {}).items():
        _check_engine_name(fail, "skip", engine)
        if not isinstance(reason, str) or not reason.strip():
            raise fail(f"skip.{engine}", "needs the reason, as text")
    rejected_by = case.expect.get("rejected_by") or {}
    if isinstance(rejected_by, list):   # [engine, ...]: refused everywhere, the reason being the refusal itself
        rejected_by = {engine: {"reason": "listed in expect.rejected_by"} for engine in rejected_by}
    for key, what, table, target in (("xfail", "bug", data.get("xfail") or {}, case.xfail),
                                     ("expect.rejected_by", "refusal", rejected_by, case.rejected_by)):
        for engine, written in table.items():
            _check_engine_name(fail, key, engine)
            expectation, error = parse_expectation(written, f"{key}.{engine}", what)
            if error or expectation is None:   # parse gives one or the other
                field_name, _, message = (error or "").partition(": ")
                raise fail(field_name, message)
            target[engine] = expectation
    for engine, options in case.engine_options.items():
        takers = [e for e in BUILTIN if engine_class(e).options]
        if engine not in takers:
            raise fail(f"engine_options.{engine}", f"only these engines take options: {', '.join(takers)}")
        if not isinstance(options, dict):
            raise fail(f"engine_options.{engine}", "must be a mapping of option -> value")
        for option, message in engine_class(engine).option_problems(options, g.kind):
            raise fail(f"engine_options.{engine}.{option}", message)
    return case


BUILTIN_ENGINES = tuple(BUILTIN)


def _check_engine_name(fail: Fail, key: str, engine: Any) -> None:
    """Built-in names, or a plug-in's name; a near miss of a built-in ('kersa') is a typo, not a plug-in."""
    if not isinstance(engine, str):
        raise fail(key, f"engine names are text, got {engine!r}")
    if engine not in BUILTIN_ENGINES:
        near = difflib.get_close_matches(engine, BUILTIN_ENGINES, n=1, cutoff=0.6)
        if near:
            raise fail(f"{key}.{engine}", f"unknown engine {engine!r}; did you mean {near[0]!r}?")


def _validate_config(fail: Fail, kind: LayerKind, config: dict, pins_refusal: bool = False) -> None:
    """Types and names; with ``pins_refusal`` (the case expects refusals) a zero or a negative integer may stand
    where a framework needs a positive value, so that the framework's own check is what the case pins (Keras's
    test_bad_init_args pins exactly these)."""
    low = -math.inf if pins_refusal else 1
    unknown = set(config) - kind.config_keys
    if unknown:
        raise fail("config." + ",".join(sorted(unknown)),
                   f"not an argument of {kind.name}; accepted: {', '.join(sorted(kind.config_keys))}")
    for key in kind.requires:
        if key not in config:
            raise fail(f"config.{key}", f"required by {kind.name}")
    for key, arg in kind.arguments.items():   # the family's numeric arguments and the common ones, as declared
        if key not in config or (config[key] is None and arg.optional):
            continue
        v, least = config[key], min(low, arg.minimum)
        ok = (is_int(v) and v >= least) or (arg.per_axis and isinstance(v, list) and len(v) == kind.rank
                                             and all(is_int(e) and e >= least for e in v))
        if not ok:
            raise fail(f"config.{key}", f"must be {arg.expects(kind.rank)}, got {v!r}")
    if "padding" in config and str(config["padding"]).lower() not in kind.paddings:  # Keras lowercases it
        raise fail("config.padding", f"{kind.name} takes padding {' | '.join(kind.paddings)}, "
                                     f"got {config['padding']!r}")
    if config.get("data_format", "channels_last") not in ("channels_last", "channels_first"):
        raise fail("config.data_format", f"must be channels_last or channels_first, got {config['data_format']!r}")
    if config.get("activation") is not None and config["activation"] not in ACTIVATIONS:
        raise fail("config.activation", f"must be one of {', '.join(ACTIVATIONS)} or null, "
                                        f"got {config['activation']!r}")
    if "use_bias" in config and not isinstance(config["use_bias"], bool):
        raise fail("config.use_bias", f"must be true or false, got {config['use_bias']!r}")


def _check_sizes(fail: Fail, case: Case, shapes: dict[str, tuple[int, ...]], out: tuple[int, ...]) -> None:
    """Every tensor the case generates within MAX_ELEMENTS, checked before anything is allocated; the error names
    input_shape, or the size argument with the largest value (the likely typo). A configuration pinned as refused
    generates its input alone (harness.judge.runner gives its engines no weights it cannot afford)."""
    tensors = [("input", case.input_shape)]
    if not case.impossible:
        tensors += [*((f"weight {n!r}", s) for n, s in shapes.items()), ("output", out)]
    for what, shape in tensors:
        n = math.prod(shape) if shape else 0
        if n > MAX_ELEMENTS:
            numeric = LAYERS[case.layer].arguments   # the layer's size arguments, as its family declares them
            sizes = {k: max(v) if isinstance(v, list) else v for k, v in case.config.items()
                     if k in numeric and v is not None}
            field = "input_shape" if what == "input" or not sizes else f"config.{max(sizes, key=lambda k: sizes[k])}"
            raise fail(field, f"impossible size: the {what} would hold {n:.3g} elements {list(shape)}, more than "
                              f"the {MAX_ELEMENTS:.3g} (2^{MAX_ELEMENTS.bit_length() - 1}) a case may generate")
