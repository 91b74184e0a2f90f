"""The model diff: every mapped layer judged isolated, by its weights and its configuration, and along the stream."""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..keras_layer import import_keras
from ..reference.agreement import format_ratio
from . import crops, layer_refs, streams
from .capture import KerasNode, TorchCall, capture_keras, capture_torch
from .checks import Issue, Span, config_issues, copies, split
from .converted import FOLD_ULPS, fold_where_converted, unpair_composed_activations
from .functional import judge_functional
from .known_match import known_bug
from .mapping import CONV_ROLES, PADDED_ROLES, LayerMapping, Pair, Unit, align, torch_role
from .unit_refs import keras_side, ratio
from .weights_check import weight_issues


@dataclass
class LayerDiff:
    """One Keras unit's verdict: the port's module(s) against the oracle, and why it fails."""

    name: str                       # the Keras layer's name
    kind: str
    modules: list[str]              # the torch module paths mapped to it ([] unmapped)
    verdict: str                    # pass | fail | unjudged (no reference and no difference found)
    isolated: float | None = None   # max error/bound of the port's module fed the Keras layer's input
    keras: float | None = None      # max error/bound of Keras's own output (the oracle judges both)
    drift: float | None = None      # max |port stream - Keras stream| / max |Keras stream| at this point
    layout: str = ""                # how the port holds this layer's input (channels_first, ...)
    issues: list[Issue] = field(default_factory=list)
    cause: str = ""                 # the triage line
    fix: str = ""                   # the corrected torch code
    fixed: float | None = None      # error/bound with the fix applied
    note: str = ""                  # why unjudged, or what the stream shows
    # What it was judged on, for a repro (harness.frontends.model_session.write_repros); not serialised.
    unit: Any = field(default=None, repr=False, compare=False)
    calls: list[TorchCall] = field(default_factory=list, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "modules": self.modules, "verdict": self.verdict,
                "isolated": self.isolated, "keras": self.keras, "drift": self.drift, "layout": self.layout,
                "issues": [{"kind": i.kind, "id": i.id, "text": i.text, "fix": i.fix.text if i.fix else None}
                           for i in self.issues],
                "cause": self.cause, "fix": self.fix, "fixed": self.fixed, "note": self.note}


@dataclass
class DiffResult:
    """A model diff: every Keras unit's LayerDiff in graph order, the torch calls no Keras layer maps to, the port's
    final output against Keras's, and the culprit (the first failing layer); true when every mapped layer agrees."""

    layers: list[LayerDiff]
    torch_unmapped: list[tuple[str, str, str]]      # (module path, class, reason)
    output_drift: float
    culprit: str | None

    @property
    def failed(self) -> list[LayerDiff]:
        return [d for d in self.layers if d.verdict == "fail"]

    @property
    def passed(self) -> bool:
        return not self.failed

    def __bool__(self) -> bool:
        return self.passed

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "culprit": self.culprit, "output_drift": self.output_drift,
                "layers": [d.to_json() for d in self.layers],
                "torch_unmapped": [{"module": p, "kind": k, "reason": r} for p, k, r in self.torch_unmapped]}


def flat_origin(node: KerasNode, nodes: Sequence[KerasNode]) -> tuple[int, ...] | None:
    """The (N, *spatial, C) shape a 2-D input was flattened from by a Keras Flatten (through identities)."""
    src = node.sources[0] if node.sources else None
    while src is not None and src >= 0:
        producer = nodes[src]
        if producer.kind == "Flatten":
            return tuple(producer.operands[0].shape)
        if producer.kind not in ("Dropout", "Identity"):
            return None
        src = producer.sources[0]
    return None


class BaseForward:
    """A module that runs other hooked modules inside its call (timm's BatchNormAct2d: the norm, then its act),
    called as the torch.nn class it extends: the part the Keras layer computes. Attributes pass through, so that
    a fix edits the module itself."""

    def __init__(self, module: Any, kind: str) -> None:
        object.__setattr__(self, "module", module)
        object.__setattr__(self, "base", next(c for c in type(module).__mro__ if c.__name__ == kind))

    def __call__(self, x: Any) -> Any:
        return self.base.forward(self.module, x)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.module, name, value)

    def __deepcopy__(self, memo: dict[int, Any]) -> BaseForward:
        return BaseForward(copy.deepcopy(self.module, memo), self.base.__name__)


def runnable(call: TorchCall) -> Any:
    """What runs a call on the Keras layer's input: the module, or its torch.nn base where it nests others."""
    return BaseForward(call.module, call.kind) if call.nested else call.module


def _run(modules: Sequence[Any], x: np.ndarray, pre: Any, crop: crops.Crop | None = None) -> np.ndarray:
    """The modules in turn on ``x``, after ``pre``: zeros around the spatial axes ((before, after) per axis: a pad
    the port does in its forward, or a fix's), or the port's own pad module (a -inf pad before a max pool); then
    ``crop`` off the result (a transposed conv's crop the port does after its module: an activation after it is
    elementwise, so the crop goes last)."""
    import torch

    if isinstance(pre, tuple):
        x = streams.pad_zeros(x, pre)
    t = torch.from_numpy(np.array(x, copy=True))
    if pre is not None and not isinstance(pre, tuple):
        modules = [pre, *modules]
    with torch.no_grad():
        for m in modules:
            m.eval()
            t = m(t)
    return crops.apply(t.detach().numpy(), crop)


@dataclass
class _Fed:
    """The Keras layer's input as the port's first module takes it."""

    x: np.ndarray
    layout: streams.Layout
    inferred: tuple[tuple[int, int], ...] | None   # a pad the port does in its forward before the conv
    prepadded: bool = False                        # x holds that pad already (a pool's, with the port's value)
    padded_inside: bool = False                    # x is the input of a Keras ZeroPadding the module does itself


def _feed(pair: Pair, span: Span, flat: tuple[int, ...] | None, torch_first: bool,
          after_pad: bool, unpadded: np.ndarray | None = None) -> _Fed | None:
    keras_in = pair.unit.head.inputs[0]
    first = (span.pad or span.body[0])
    captured = first.inputs[0]
    layout = streams.match(keras_in, captured, torch_first, flat)
    if layout is not None:
        return _Fed(layout.to_torch(keras_in), layout, None)
    # A larger input than Keras's where no pad module ran just before: a pad in the port's forward. After a pad
    # module (mapped to a Keras ZeroPadding, judged there), the conv is fed Keras's own padded input.
    # A torch conv takes channels first whatever layout the port's input is in.
    if after_pad and pair.unit.role in ("conv", "depthwise", "separable"):
        moved = streams.channels_first(keras_in)
        if moved.ndim == captured.ndim and moved.shape[:2] == captured.shape[:2]:
            return _Fed(moved, streams.candidates(keras_in.shape, True)[0], None)
    if unpadded is not None:
        # Keras pads with a ZeroPadding layer the port has no module for: the port's conv pads itself (timm's
        # Conv2dSame pads in its forward). It is fed what the Keras pad layer read.
        inner = streams.match(unpadded, captured, torch_first)
        if inner is not None:
            return _Fed(inner.to_torch(unpadded), inner, None, padded_inside=True)
    if span.pad is None and pair.unit.role in PADDED_ROLES:
        moved = streams.channels_first(keras_in)
        inferred = streams.functional_pad(moved, captured)
        if inferred is not None:
            if pair.unit.role in ("conv", "depthwise", "separable"):
                return _Fed(moved, streams.candidates(keras_in.shape, True)[0], inferred)
            # A pool padded in the port's forward: with the value the port padded with (a max pool's -inf).
            fill = streams.pad_value(captured, inferred)
            padded = np.pad(moved, [(0, 0), (0, 0), *inferred], constant_values=fill)
            return _Fed(padded, streams.candidates(keras_in.shape, True)[0], inferred, prepadded=True)
    return None


def judge_pair(pair: Pair, nodes: Sequence[KerasNode], units: Sequence[Unit], ref: layer_refs.LayerRef | None,
               expected: tuple[np.ndarray, np.ndarray] | None, torch_first: bool, after_pad: bool = False,
               unpadded: np.ndarray | None = None) -> LayerDiff:
    """One mapped pair: isolated (the port's modules on the Keras layer's input, against the oracle), weights,
    configuration, the stream's drift; the cause and its fix, judged again."""
    unit = pair.unit
    kind = unit.activation if unit.role == "act" and len(unit.nodes) > 1 else "+".join(n.kind for n in unit.nodes)
    out = LayerDiff(unit.name, kind,
                    [c.path or "<root>" for c in pair.calls], "pass")
    span = split(pair)
    flat = flat_origin(unit.head, nodes)
    fed = _feed(pair, span, flat, torch_first, after_pad, unpadded)
    if fed is None:
        out.verdict = "fail"
        out.cause = (f"shape: the port's module reads {list(span.body[0].inputs[0].shape)}, the Keras layer "
                     f"{list(unit.head.inputs[0].shape)} (no layout or padding explains it): the mapping is off or "
                     "the port's layers before it change the shape")
        return out
    out.layout = fed.layout.name + (f", padded {[list(p) for p in fed.inferred]} in its forward"
                                    if fed.inferred else "") + (", the Keras pad layer's input (the module pads)"
                                                                if fed.padded_inside else "") + (
        f", its output cropped {[list(p) for p in pair.crop]} in its forward" if pair.crop else "")
    flat_spatial = tuple(flat[1:]) if flat is not None and fed.layout.name.startswith("flattened") else None
    out.issues = config_issues(pair, span, fed.inferred) + weight_issues(pair, span, units, flat_spatial)
    modules = [runnable(c) for c in span.body] + ([runnable(span.act)] if span.act is not None else [])
    if unit.role == "conv_transpose":   # called with an output_size: run as called
        modules[0] = crops.with_output_padding(modules[0], pair.output_padding)
    pads: Any = (None if fed.prepadded else fed.inferred) if span.pad is None else span.pad.module
    last_out = crops.output(pair)
    y_keras = unit.last.output
    origin = tuple(unit.head.operands[0].shape) if unit.role == "flatten" else None
    out_layout = streams.match(y_keras, last_out, torch_first, origin) if last_out is not None else None
    if out_layout is not None and last_out is not None:
        scale = float(np.max(np.abs(y_keras), initial=0.0))
        gap = float(np.max(np.abs(out_layout.to_keras(last_out).astype(np.float64) - y_keras), initial=0.0))
        out.drift = gap / scale if scale else gap
    if expected is not None:
        y, bound = expected
        out.isolated = _judged(modules, fed.x, pads, y, bound, y_keras, torch_first, origin, pair.crop)
        if out.isolated is None:
            out.note = "the port's output does not take the Keras layer's shape under any layout"
            if unit.role == "conv_transpose" and last_out is not None:
                out.note += (f" (its module gives {list(last_out.shape[2:])}, Keras {list(y_keras.shape[1:-1])}, and "
                             "no later tensor of the port holds a crop of it)")
    if out.isolated is not None and out.isolated <= 1.0:
        for issue in out.issues:   # static padding attributes, but the module pads (or crops) in its forward
            if issue.kind == "config" and issue.id == "padding" and unit.role in CONV_ROLES:
                issue.kind, issue.fix = "info", None
                issue.text += ("; yet its output agrees here: it " +
                               ("crops" if unit.role == "conv_transpose" else "pads") + " in its forward")
    failing = [i for i in out.issues if i.kind != "info"]
    if failing or (out.isolated is not None and out.isolated > 1.0) or (expected is not None and out.isolated is None):
        out.verdict = "fail"
    elif expected is None:
        out.verdict = "unjudged" if not out.issues else "pass"
    out.cause = triage(out, failing)
    fixes = [i.fix for i in failing if i.fix is not None]
    if fixes and expected is not None:
        fixed_modules = copies(modules)
        fixed_pads, fixed_crop = pads, pair.crop
        for f in fixes:
            fixed_modules = f.apply(fixed_modules)
            if f.drop_pads:
                fixed_pads = f.pads
            if f.drop_crop:
                fixed_crop = f.crop
        out.fix = "; ".join(f.text for f in fixes)
        out.fixed = _judged(fixed_modules, fed.x, fixed_pads, expected[0], expected[1], y_keras, torch_first,
                            origin, fixed_crop)
    return out


def _judged(modules: Sequence[Any], x: np.ndarray, pads: Any, y: np.ndarray,
            bound: np.ndarray, y_keras: np.ndarray, torch_first: bool,
            origin: tuple[int, ...] | None = None, crop: crops.Crop | None = None) -> float | None:
    try:
        got = _run(modules, x, pads, crop)
    except Exception:   # noqa: BLE001 -- a module that cannot take the Keras input fails the pair, not the run
        return None
    layout = streams.match(y_keras, got, torch_first, origin)
    if layout is None:
        return None
    return ratio(layout.to_keras(got), y, bound)


def triage(d: LayerDiff, failing: Sequence[Issue], known: str = "") -> str:
    """One line: the weights layout, the configuration argument, the mapping, or numerics beyond the bound (``known``:
    what the registry says of it, harness.models.known_match)."""
    if d.verdict != "fail":
        return ""
    if failing:
        return "; ".join(f"{i.kind}: {i.text}" for i in failing)
    if d.isolated is None:
        return "shape: the port's module does not give the Keras layer's output shape"
    return (f"numerics: weights and configuration match, yet the module is off by {format_ratio(d.isolated)} x the "
            f"bound{known or ' (a framework bug, or a difference this diff does not name)'}")


def numerics_only(d: LayerDiff) -> bool:
    """A failing layer whose weights and configuration match the Keras layer's: its module computes a different
    function on the same input (a framework's bug, or a difference no check names)."""
    return (d.verdict == "fail" and d.isolated is not None and d.isolated > 1.0
            and not [i for i in d.issues if i.kind != "info"])


def look_up_port(d: LayerDiff, engine: str | None, dtype: str) -> None:
    """A numerics-only failure of the port's module looked up in the registry as the single-layer case of the layer
    for ``engine`` (the framework the port's modules run in: "torch"; None where the runtime is no engine of the
    registry's): the cause names the entry whose condition holds, or says none does, and a known_bug issue holds
    the entry's id as data."""
    if not numerics_only(d) or d.unit is None:
        return
    if engine is None:
        d.cause = triage(d, [], " (the port runs in onnxruntime, which no engine of the registry is by itself: not "
                                "looked up)")
        return
    bug = known_bug(d.unit, engine, dtype)
    if bug is None:
        d.cause = triage(d, [], f": no registered {engine} bug holds here (harness/known: a new one, or one this "
                                "lookup cannot see)")
        return
    d.issues.append(Issue("known_bug", bug.id, f"the registry's {bug.id}: {bug.summary}"))
    d.cause = triage(d, [], f": the registry's {bug.id} ({bug.summary.split(':')[0]}) holds here")


def unpadded_input(unit: Unit, nodes: Sequence[KerasNode], unmapped_pads: set[int]) -> np.ndarray | None:
    """What a Keras ZeroPadding layer with no torch module read, where it feeds this conv (or pool)."""
    src = unit.head.sources[0] if unit.head.sources else None
    if unit.role not in PADDED_ROLES or src is None or src not in unmapped_pads:
        return None
    return nodes[src].inputs[0]


def diff_captured(nodes: Sequence[KerasNode], calls: Sequence[TorchCall], port_out: np.ndarray,
                  torch_first: bool = True, overrides: Mapping[str, Sequence[str]] | None = None,
                  mapping: LayerMapping | None = None, port_engine: str | None = "torch") -> DiffResult:
    """Judge a captured pair of runs (capture.capture_keras / capture_torch). ``port_engine``: the registry's engine
    the port's modules run in (None: a runtime the registry has no engine for, onnxruntime)."""
    mapping = mapping or align(nodes, calls, overrides)
    folded = fold_where_converted(mapping)
    unpair_composed_activations(mapping, torch_first)
    crops.infer_crops(mapping.pairs, calls, port_out)
    units = [p.unit for p in mapping.pairs] + [u for u, _ in mapping.keras_unmapped]
    dtype = str(nodes[-1].output.dtype)
    by_unit: dict[int, LayerDiff] = {}
    pad_calls = {c.index + 1 for c in calls if torch_role(c) == "pad"}   # the calls right after a pad module
    unmapped_pads = {u.head.index for u, _ in mapping.keras_unmapped if u.role == "pad"}
    for pair in mapping.pairs:
        ref, expected, keras_ratio, reason = keras_side(pair.unit, dtype)
        d = judge_pair(pair, nodes, units, ref, expected, torch_first, pair.calls[0].index in pad_calls,
                       unpadded_input(pair.unit, nodes, unmapped_pads))
        d.keras, d.unit, d.calls = keras_ratio, pair.unit, list(pair.calls)
        if id(pair.unit) in folded:
            d.name, d.keras = pair.unit.head.name, None
            d.note = (f"the port's conv holds {folded[id(pair.unit)]} (BatchNormalization) folded into its weights: "
                      f"judged as the fold (the exact composition), its weights within {FOLD_ULPS} ulps")
        if reason and not d.note:
            d.note = reason
        by_unit[id(pair.unit)] = d
    for unit, why in mapping.keras_unmapped:
        ref, expected, keras_ratio, reason = keras_side(unit, dtype)
        by_unit[id(unit)] = LayerDiff(unit.name, unit.head.kind, [], "unjudged", keras=keras_ratio,
                                      note=why + (f" ({reason})" if reason else ""), unit=unit)
    order = {id(u): min(n.index for n in u.nodes) for u in units}
    judge_functional(mapping, nodes, port_out, torch_first, dtype, by_unit, order)
    layers = [by_unit[k] for k in sorted(by_unit, key=lambda k: order[k])]
    for d in layers:
        look_up_port(d, port_engine, dtype)
        if d.keras is not None and d.keras > 1.0:
            d.verdict = "fail"
            bug = known_bug(d.unit, "keras", dtype) if d.unit is not None else None
            known = (f": the registry's {bug.id} ({bug.summary.split(':')[0]})" if bug is not None else
                     ": no registered bug explains it here (harness/known: a new one, or one this lookup cannot see)")
            d.cause = (d.cause + "; " if d.cause else "") + (
                f"keras: Keras's own output is off the oracle by {format_ratio(d.keras)} x the bound{known}")
    culprit = next((d.name for d in layers if d.verdict == "fail"), None)
    if culprit is not None:
        seen = False
        for d in layers:
            if d.name == culprit:
                seen = True
            elif seen and d.verdict != "fail" and d.drift is not None and d.drift > 1e-3:
                d.note = f"reads {culprit}'s output (the stream differs by {d.drift:.3g} of its scale here)"
    final = nodes[-1].output
    layout = streams.match(final, port_out, torch_first)
    if layout is None:
        drift = float("inf")
    else:
        scale = float(np.max(np.abs(final), initial=0.0)) or 1.0
        drift = float(np.max(np.abs(layout.to_keras(port_out).astype(np.float64) - final), initial=0.0)) / scale
    unmapped = [(c.path or "<root>", c.kind, why) for c, why in mapping.torch_unmapped]
    return DiffResult(layers, unmapped, drift, culprit)


def diff(keras_model: Any, torch_module: Any, x: np.ndarray, *, torch_first: bool = True,
         overrides: Mapping[str, Sequence[str]] | None = None) -> DiffResult:
    """Run both models on ``x`` (batch first, channels last: the Keras input) and judge every mapped layer."""
    keras = import_keras()
    nodes = capture_keras(keras, keras_model, x)
    xt = streams.channels_first(x) if torch_first else x
    calls, port_out = capture_torch(torch_module, np.ascontiguousarray(xt))
    return diff_captured(nodes, calls, port_out, torch_first, overrides)
