"""Case files: safe YAML loading, validation with precise errors, defaults and sweep expansion."""
from __future__ import annotations

import functools
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..engines import BUILTIN, engine_class
from ..errors import CaseError
from ..known.registry import Expectation, parse as parse_expectation
from ..layers.geometry import ACTIVATIONS, LAYERS, ConfigProblem, Geometry, geometry, impossible, output_shape
from ..tensors.files import FileProblem, Layout, literal as literal_source, source as file_source
from ..tensors.values import DTYPES, INITS

FILE_KEYS = {"defaults", "cases", "stacks"}   # stacks: harness/cases/stacks.py reads them
CASE_KEYS = {
    "id": "unique name, part of the pytest id",
    "layer": "Keras class name",
    "input_shape": "batch first, in the case's data_format",
    "config": "Keras constructor arguments",
    "dtype": "float16 | bfloat16 | float32 | float64",
    "seed": "random seed of the generated tensors",
    "input": "tensor spec of the input",
    "weights": "tensor spec per Keras weight name",
    "expect": "facts checked in every engine",
    "sweep": "cartesian product over config keys (and input_shape, dtype, seed)",
    "engine_options": "per engine name, options of that engine (e.g. torch: {depthwise_bias: true})",
    "skip": "per engine name, the reason that engine is skipped for this case",
    "xfail": "per engine name, a known bug of that engine (a registry id, or a reason with an optional condition): "
             "where it holds the item must fail (strict)",
    "description": "free text",
    "check": "what is judged: [forward] (the default), [backward] (the gradients) or [forward, backward]",
    "grad_output": "tensor spec of the upstream gradient dL/dy of the backward check (default: seeded normal)",
}
CHECKS = ("forward", "backward")
EXPECT_KEYS = {"output", "output_at", "output_shape", "params", "weight_shapes", "rejected_by", "gradients"}
# What a configuration that every engine must refuse cannot have (everything but rejected_by).
OUTPUT_FACTS = EXPECT_KEYS - {"rejected_by"}
# The most elements one generated tensor (input, weight, output) may hold: 2 GiB in float64, the oracle's dtype. A
# size a case file can write (kernel_size: 100000 with padding same) must not cost more than reading it.
MAX_ELEMENTS = 1 << 28
SWEEP_TOP_LEVEL = {"input_shape", "dtype", "seed"}
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.+-]+$")
INIT_FIELDS = {
    "zeros": set(), "ones": set(), "constant": {"value"}, "uniform": {"low", "high"},
    "normal": {"mean", "std"}, "arange": {"start", "step"}, "linspace": {"start", "stop"}, "channels": {"values"},
    "sparse": {"entries"},
}


@dataclass
class Case:
    """One runnable case: a YAML entry with defaults merged and one point of its sweep."""

    id: str                      # unique id, with swept values, e.g. "k3(strides=2,padding=same)"
    file: str                    # path of the YAML file
    layer: str
    input_shape: tuple[int, ...]
    config: dict[str, Any]
    dtype: str = "float32"
    seed: int = 0
    input: Any = "normal"
    weights: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, Any] = field(default_factory=dict)
    swept: dict[str, Any] = field(default_factory=dict)   # the values this point of the sweep set
    engine_options: dict[str, dict] = field(default_factory=dict)
    skip: dict[str, str] = field(default_factory=dict)
    xfail: dict[str, Expectation] = field(default_factory=dict)        # engine -> known bug it must still show
    rejected_by: dict[str, Expectation] = field(default_factory=dict)  # engine -> refusal it must still show
    source: dict[str, Any] = field(default_factory=dict)  # the entry as written (before sweep), for reports
    # Why the configuration cannot run (zero filters, a kernel that does not fit, ...): allowed only in a case
    # that pins the refusals (expect.rejected_by); empty for every other case.
    impossible: str = ""
    line: int | None = None
    check: tuple[str, ...] = ("forward",)   # the checks its items run (harness.judge.gradients for "backward")
    grad_output: Any = "normal"              # the backward check's upstream gradient (a tensor spec)

    @functools.cached_property
    def geometry(self) -> Geometry:
        return geometry(self.layer, self.config, self.input_shape)


class _LineLoader(yaml.SafeLoader):
    """SafeLoader (no tag constructs Python objects) that remembers each mapping's line."""


def _construct_mapping(loader: yaml.BaseLoader, node: yaml.MappingNode) -> dict:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

if getattr(yaml, "__with_libyaml__", False):
    class _FastLineLoader(yaml.CSafeLoader):   # type: ignore[name-defined,misc]
        """_LineLoader's constructor and resolver (SafeLoader's: no tag constructs Python objects, the same values
        and lines) on libyaml's C parser, about 8 times as fast. Used where PyYAML was built with libyaml; a file it
        cannot parse is parsed again by _LineLoader, whose error message (with its source excerpt) the user sees."""

    _FastLineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _LOADERS: tuple[type, ...] = (_FastLineLoader, _LineLoader)
else:
    _LOADERS = (_LineLoader,)


def _parse(source: str | Path, loader: type) -> Any:
    with open(source, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=loader)  # noqa: S506 - both loaders derive from (C)SafeLoader


def load_yaml(source: str | Path) -> Any:
    """The YAML document of a file, with each mapping's line under ``__line__``; raises OSError, yaml.YAMLError.

    Parsed by libyaml where present; a file it refuses is parsed again by _LineLoader, so that an error is always
    reported by the pure-Python loader, in the words (and with the source excerpt) it always used."""
    *fast, last = _LOADERS
    for loader in fast:
        try:
            return _parse(source, loader)
        except yaml.YAMLError:
            pass
    return _parse(source, last)


def strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [strip_lines(v) for v in value]
    return value


def read_case_file(path: str | Path, name: str | None = None) -> tuple[dict[str, Any] | None, list[CaseError]]:
    """The document of a case file, parsed once (every entry point reads a file's cases and stacks from it), its
    top level checked: a mapping with `cases:`, `stacks:` or both, and no other key but `defaults`. None and the
    one error (naming ``name``, default ``path``) where it cannot be read or is no case file."""
    shown = str(path) if name is None else name
    try:
        doc = load_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        return None, [CaseError(shown, None, None, f"cannot read YAML: {exc}".replace("\n", " "))]
    if not isinstance(doc, dict) or not ({"cases", "stacks"} & set(doc)):
        return None, [CaseError(shown, None, None, "a case file is a mapping with a list under 'cases' (or 'stacks')")]
    unknown = set(doc) - FILE_KEYS - {"__line__"}
    if unknown:
        return None, [CaseError(shown, None, ", ".join(sorted(unknown)),
                                f"unknown top-level key; allowed: {', '.join(sorted(FILE_KEYS))}")]
    return doc, []


def load_file(path: str | Path, name: str | None = None) -> tuple[list[Case], list[CaseError]]:
    """Every valid case of a file, and one error per invalid case (a bad case never hides the others).

    The file is opened at `path` (absolute, or relative to the current directory); `name` (default: `path`)
    is how cases and errors name it to the user (`Case.file`, `CaseError.file`, the repro command), e.g. the
    path relative to the directory pytest was invoked in. (Its stacks: harness.cases.suite.load_suite_file.)
    """
    doc, errors = read_case_file(path, name)
    return ([], errors) if doc is None else cases_of(doc, path, name)


def cases_of(doc: dict[str, Any], path: str | Path, name: str | None = None) -> tuple[list[Case], list[CaseError]]:
    """The cases of a document read_case_file returned, as load_file names them (tensor files are relative to
    ``path``'s folder)."""
    source, path = path, str(path) if name is None else name
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        return [], [CaseError(path, None, "defaults", "must be a mapping")]
    if not isinstance(doc.get("cases", []), list):
        return [], [CaseError(path, None, "cases", "must be a list")]
    cases: list[Case] = []
    errors: list[CaseError] = []
    seen: set[str] = set()
    for position, entry in enumerate(doc.get("cases", [])):
        name = entry.get("id") if isinstance(entry, dict) else None
        label = str(name) if name is not None else f"#{position + 1}"
        if isinstance(name, str):  # checked first: an invalid first entry still owns its id
            if name in seen:
                errors.append(CaseError(path, label, "id", "duplicate id in this file"))
                continue
            seen.add(name)
        try:
            cases.extend(_expand(path, label, defaults, entry, Path(source).absolute().parent))
        except CaseError as exc:
            errors.append(exc)
    return cases, errors


def load_paths(paths: list[str | Path]) -> tuple[list[Case], list[CaseError]]:
    """Load several files (folders are searched for *.yaml); ids must be unique across all of them."""
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.rglob("*.yaml")) + sorted(p.rglob("*.yml")) if p.is_dir() else [p])
    cases, errors, owner = [], [], {}
    for f in files:
        got, bad = load_file(f)
        errors.extend(bad)
        for case in got:
            if case.id in owner:
                errors.append(CaseError(str(f), case.id, "id", f"duplicate id, already used in {owner[case.id]}"))
                continue
            owner[case.id] = str(f)
            cases.append(case)
    return cases, errors


def case_from_entry(file: str, entry: Any, defaults: dict | None = None) -> list[Case]:
    """The cases of one case entry (a mapping as written under ``cases:``; one per point of its sweep), validated
    as if read from ``file`` with that file's ``defaults``. An invalid entry raises CaseError naming its id."""
    label = str(entry["id"]) if isinstance(entry, dict) and "id" in entry else "#1"   # as load_file names it
    return _expand(file, label, defaults or {}, entry, Path(file).absolute().parent)

def _merge(defaults: dict, entry: dict) -> dict:
    merged = dict(defaults)
    for key, value in entry.items():
        if key in ("config", "weights", "engine_options", "skip", "xfail") and isinstance(value, dict) \
                and isinstance(defaults.get(key), dict):
            merged[key] = {**defaults[key], **value}
        else:
            merged[key] = value
    return merged


def _expand(path: str, label: str, defaults: dict, entry: Any, base: Path | None = None) -> list[Case]:
    """The cases of one entry; ``base`` is the case file's folder, which `file` tensor specs are relative to."""
    def fail(fieldname: str | None, message: str) -> CaseError:
        return CaseError(path, label, fieldname, message)

    if not isinstance(entry, dict):
        raise fail(None, f"a case is a mapping, got {type(entry).__name__}")
    line = entry.get("__line__")
    raw = _merge(strip_lines(defaults), strip_lines(entry))
    unknown = set(raw) - set(CASE_KEYS)
    if unknown:
        raise fail(", ".join(sorted(unknown)), "unknown key; allowed: " + ", ".join(sorted(CASE_KEYS)))
    for required in ("id", "layer", "input_shape", "config"):
        if required not in raw:
            raise fail(required, "missing required key")
    if not isinstance(raw["id"], str) or not ID_PATTERN.match(raw["id"]):
        raise fail("id", f"must be a string of letters, digits and _.+- ; got {raw['id']!r}")
    sweep = raw.get("sweep") or {}
    if not isinstance(sweep, dict):
        raise fail("sweep", "must be a mapping of key -> list of values")
    for key, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise fail(f"sweep.{key}", "must be a non-empty list of values")
    out = []
    for point in itertools.product(*sweep.values()) if sweep else [()]:
        swept = dict(zip(sweep, point))
        data = {k: v for k, v in raw.items() if k != "sweep"}
        data["config"] = dict(data["config"]) if isinstance(data["config"], dict) else data["config"]
        for key, value in swept.items():
            if key in SWEEP_TOP_LEVEL:
                data[key] = value
            elif isinstance(data["config"], dict):
                data["config"][key] = value
        suffix = ",".join(f"{k}={_short(v)}" for k, v in swept.items())
        case_id = f"{raw['id']}({suffix})" if suffix else raw["id"]
        case = _validate(path, case_id, data, swept, base)
        case.source, case.line = strip_lines(entry), line
        out.append(case)
    for key, table in (("xfail", out[0].xfail), ("expect.rejected_by", out[0].rejected_by)):
        for engine, expectation in table.items():
            # A known behaviour holds only at the points of a sweep it touches; at none, the reference is dead.
            known = expectation.entry
            if known is not None and not any(known.applies(case) for case in out):
                raise fail(f"{key}.{engine}", f"{known.id} touches no configuration of this case "
                                              f"(it touches: {known.touches})")
    return out


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return str(value)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _validate(path: str, case_id: str, data: dict, swept: dict, base: Path | None = None) -> Case:
    def fail(fieldname: str | None, message: str) -> CaseError:
        return CaseError(path, case_id, fieldname, message)

    layer = data["layer"]
    if layer not in LAYERS:
        raise fail("layer", f"unknown layer {layer!r}; known: {', '.join(LAYERS)}")
    kind = LAYERS[layer]
    shape = data["input_shape"]
    if not isinstance(shape, list) or not all(_is_int(d) and d > 0 for d in shape):
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
    if not _is_int(seed) or seed < 0:
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
    case.input = _validate_tensor(fail, "input", case.input, case.input_shape, channel_axis, base, activation)
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
        weights[name] = _validate_tensor(fail, f"weights.{name}", spec, shapes[name], -1, base,
                                         Layout(weight=name, geometry=g))
    case.weights = weights
    _validate_expect(fail, case.expect, shapes, out)
    _validate_check(fail, case, data, shapes, out, channel_axis, base, activation)
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
    for key, kind, table, target in (("xfail", "bug", data.get("xfail") or {}, case.xfail),
                                     ("expect.rejected_by", "refusal", rejected_by, case.rejected_by)):
        for engine, written in table.items():
            _check_engine_name(fail, key, engine)
            expectation, problem = parse_expectation(written, f"{key}.{engine}", kind)
            if problem:
                field_name, _, message = problem.partition(": ")
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


def _check_engine_name(fail, key: str, engine: Any) -> None:
    """Built-in names, or a plug-in's name; a near miss of a built-in ('kersa') is a typo, not a plug-in."""
    import difflib

    if not isinstance(engine, str):
        raise fail(key, f"engine names are text, got {engine!r}")
    if engine not in BUILTIN_ENGINES:
        near = difflib.get_close_matches(engine, BUILTIN_ENGINES, n=1, cutoff=0.6)
        if near:
            raise fail(f"{key}.{engine}", f"unknown engine {engine!r}; did you mean {near[0]!r}?")


def _validate_config(fail, kind, config: dict, pins_refusal: bool = False) -> None:
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
        ok = (_is_int(v) and v >= least) or (arg.per_axis and isinstance(v, list) and len(v) == kind.rank
                                             and all(_is_int(e) and e >= least for e in v))
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


def _check_sizes(fail, case: Case, shapes: dict[str, tuple[int, ...]], out: tuple[int, ...]) -> None:
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
            field = "input_shape" if what == "input" or not sizes else f"config.{max(sizes, key=sizes.get)}"
            raise fail(field, f"impossible size: the {what} would hold {n:.3g} elements {list(shape)}, more than "
                              f"the {MAX_ELEMENTS:.3g} (2^{MAX_ELEMENTS.bit_length() - 1}) a case may generate")


def _nested_shape(value: Any) -> tuple[int, ...] | None:
    """Shape of a rectangular nested list of numbers, or None when it is ragged or not numeric."""
    if _is_number(value):
        return ()
    if not isinstance(value, list) or not value:
        return None
    inner = [_nested_shape(v) for v in value]
    if any(s is None for s in inner) or len(set(inner)) != 1:
        return None
    return (len(value), *inner[0])


def _torch_layout_hint(got: tuple[int, ...], shape: tuple[int, ...], torch_layout: Layout | None) -> str:
    """Where a plain nested list has the tensor's torch-layout shape: how to say so (as a file's check does)."""
    try:
        want = (torch_layout or Layout(channels_first=True)).torch_shape(tuple(shape))
    except Exception:  # noqa: BLE001 - no torch layout for this tensor: no hint
        return ""
    if tuple(got) == tuple(want) != tuple(shape):
        return "; that is its torch layout's shape: write it as {values: [...], layout: torch}"
    return ""


def _validate_tensor(fail, name: str, spec: Any, shape: tuple[int, ...], channel_axis: int,
                     base: Path | None = None, torch_layout: Layout | None = None) -> Any:
    """Check a tensor spec against the ``shape`` the layer needs (Keras layout); returns the spec to keep: as
    written, or for a `file` / `values` mapping a harness.tensors.files.TensorSource (its file checked now, its
    values read when the case runs). ``torch_layout`` says what `layout: torch` means for this tensor."""
    if isinstance(spec, list):
        got = _nested_shape(spec)
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
        if key in spec and not _is_number(spec[key]):
            raise fail(f"{name}.{key}", f"must be a number, got {spec[key]!r}")
    if init == "constant" and "value" not in spec:
        raise fail(f"{name}.value", "init constant needs a value")
    if init == "channels":
        values = spec.get("values")
        if not isinstance(values, list) or not all(_is_number(v) for v in values):
            raise fail(f"{name}.values", "must be a list of numbers, one per channel")
        if len(values) != shape[channel_axis]:
            raise fail(f"{name}.values", f"impossible shape: {len(values)} values for {shape[channel_axis]} channels")
    if init == "sparse":
        entries = spec.get("entries")
        if not isinstance(entries, list):
            raise fail(f"{name}.entries", "must be a list of {index: [...], value: number}")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or set(entry) != {"index", "value"} or not _is_number(entry["value"]):
                raise fail(f"{name}.entries[{i}]", "must be {index: [...], value: number}")
            index = entry["index"]
            if not (isinstance(index, list) and len(index) == len(shape)
                    and all(_is_int(j) and 0 <= j < n for j, n in zip(index, shape))):
                raise fail(f"{name}.entries[{i}].index", f"impossible index {index!r} for shape {list(shape)}")
    return written


def _validate_source(fail, name: str, spec: dict, shape: tuple[int, ...], base: Path | None,
                     torch_layout: Layout) -> Any:
    """A tensor read from a file, or a literal with a layout (harness.tensors.files): errors name the field."""
    where = fail(name, "")   # the case file and id, kept for errors when the values are read
    try:
        if "file" in spec and "values" in spec:
            raise FileProblem("values", "a tensor is read from a file or written as values, not both")
        if "values" in spec:
            got = _nested_shape(spec["values"])
            if got is None:
                raise FileProblem("values", "must be a rectangular nested list of numbers")
            return literal_source(spec, got, shape, torch_layout, where.file, where.case, name)
        return file_source(spec, shape, base, torch_layout, where.file, where.case, name)
    except FileProblem as problem:
        raise fail(f"{name}.{problem.field}" if problem.field else name, problem.message) from None


def _validate_check(fail, case: Case, data: dict, shapes: dict[str, tuple[int, ...]], out: tuple[int, ...],
                    channel_axis: int, base: Path | None = None, activation: Layout | None = None) -> None:
    """`check`, `grad_output` and `expect.gradients` (harness.judge.gradients): set on ``case`` once valid."""
    check = data.get("check", ["forward"])
    if isinstance(check, str):
        check = [check]
    if not (isinstance(check, list) and check and all(c in CHECKS for c in check) and len(set(check)) == len(check)):
        raise fail("check", f"must be a list of {' and/or '.join(CHECKS)}, got {data.get('check')!r}")
    case.check = tuple(c for c in CHECKS if c in check)
    backward = "backward" in case.check
    if "grad_output" in data:
        if not backward:
            raise fail("grad_output", "is the backward check's upstream gradient: add backward to check")
        case.grad_output = data["grad_output"]
    if backward and case.impossible:
        raise fail("check", "a configuration pinned as refused has no gradients to check")
    if backward:
        case.grad_output = _validate_tensor(fail, "grad_output", case.grad_output, out, channel_axis, base,
                                            activation)
    golden = case.expect.get("gradients")
    if golden is None:
        return
    if not backward:
        raise fail("expect.gradients", "golden gradients need the backward check: add backward to check")
    if not isinstance(golden, dict):
        raise fail("expect.gradients", "must be a mapping x | weight name -> nested list of numbers")
    tensors = {"x": case.input_shape, **shapes}
    for name, value in golden.items():
        if name not in tensors:
            raise fail(f"expect.gradients.{name}", f"{case.layer} has no tensor {name!r}; its tensors: "
                                                   f"{', '.join(tensors)}")
        got = _nested_shape(value) if isinstance(value, list) else None
        if got != tuple(tensors[name]):
            raise fail(f"expect.gradients.{name}", f"impossible shape: the values have shape "
                                                   f"{list(got) if got else value!r}, {name} is {list(tensors[name])}")


def _validate_expect(fail, expect: Any, shapes: dict[str, tuple[int, ...]], out: tuple[int, ...]) -> None:
    if not isinstance(expect, dict):
        raise fail("expect", "must be a mapping")
    unknown = set(expect) - EXPECT_KEYS
    if unknown:
        raise fail("expect." + ",".join(sorted(unknown)), f"unknown key; allowed: {', '.join(sorted(EXPECT_KEYS))}")
    if "output_shape" in expect:
        v = expect["output_shape"]
        if not (isinstance(v, list) and all(_is_int(d) for d in v)):
            raise fail("expect.output_shape", f"must be a list of integers, got {v!r}")
    if "output" in expect:
        got = _nested_shape(expect["output"])
        if got is None:
            raise fail("expect.output", "must be a rectangular nested list of numbers")
        if got != tuple(out):
            raise fail("expect.output", f"impossible shape: the values have shape {list(got)}, the layer's output "
                                        f"is {list(out)}")
    for i, item in enumerate(expect.get("output_at") or []):
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, list) and all(_is_int(j) for j in index) and not (
                len(index) <= len(out) and all(0 <= j < n for j, n in zip(index, out))):
            raise fail(f"expect.output_at[{i}].index", f"impossible index {index} for the output shape {list(out)}")
    rejected_by = expect.get("rejected_by")
    if rejected_by is not None and not (isinstance(rejected_by, list) and all(isinstance(e, str) for e in rejected_by)
                                        or isinstance(rejected_by, dict)):
        raise fail("expect.rejected_by", f"must be a list of engine names or a mapping engine -> registry id or "
                                         f"{{known | reason, when}}, got {rejected_by!r}")
    for i, item in enumerate(expect.get("output_at") or []):
        if not (isinstance(item, dict) and set(item) == {"index", "value"} and isinstance(item["index"], list)
                and all(_is_int(j) for j in item["index"]) and _nested_shape(item["value"]) is not None):
            raise fail(f"expect.output_at[{i}]", "must be {index: [leading indices], value: number or nested list}")
    params = expect.get("params")
    if params is not None and not (_is_int(params) or (isinstance(params, dict)
                                                        and all(_is_int(v) for v in params.values()))):
        raise fail("expect.params", f"must be an integer or a mapping engine -> integer, got {params!r}")
    ws = expect.get("weight_shapes")
    if ws is not None:
        if not isinstance(ws, dict):
            raise fail("expect.weight_shapes", "must be a mapping weight name -> shape, or engine -> that mapping")
        per_engine = all(isinstance(v, dict) for v in ws.values())
        for table in (ws.values() if per_engine else [ws]):
            for name, shape in table.items():
                if not (isinstance(shape, list) and all(_is_int(d) for d in shape)):
                    raise fail(f"expect.weight_shapes.{name}", f"must be a list of integers, got {shape!r}")
        if not per_engine:
            missing = set(shapes) - set(ws)
            if missing:
                raise fail("expect.weight_shapes", f"missing weight {', '.join(sorted(missing))}: the layer has "
                                                   f"{', '.join(shapes)}")
