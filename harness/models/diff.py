"""The model diff: every mapped layer judged isolated, by its weights and its configuration, and along the stream."""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..layers.activations import ACTIVATION_TABLE
from ..reference.agreement import SAFETY, format_ratio, gamma
from ..tensors.values import unit_roundoff
from . import layer_refs, streams
from .capture import KerasNode, TorchCall, capture_keras, capture_torch
from .checks import Issue, Span, config_issues, copies, expected_params, same, split, weight_issues
from .mapping import PADDED_ROLES, LayerMapping, Pair, Unit, align, torch_activation, torch_role


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


def _reference(unit: Unit) -> layer_refs.LayerRef:
    head = unit.head
    if unit.role == "act" and len(unit.nodes) > 1:   # an idiom fused into one activation (mapping._fuse_idioms)
        return layer_refs.reference("Activation", {"activation": unit.activation}, {}, 1)
    weights64 = {k: v.astype(np.float64) for k, v in head.weights.items()}
    return layer_refs.reference(head.kind, head.config, weights64, len(head.inputs))


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


def _ratio(y: np.ndarray, ref: np.ndarray, bound: np.ndarray) -> float:
    err = np.abs(y.astype(np.float64) - ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(err == 0, 0.0, err / bound)
    r = np.where(np.isnan(r), np.inf, r)
    return float(np.max(r, initial=0.0))


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


def _run(modules: Sequence[Any], x: np.ndarray, pre: Any) -> np.ndarray:
    """The modules in turn on ``x``, after ``pre``: zeros around the spatial axes ((before, after) per axis: a pad
    the port does in its forward, or a fix's), or the port's own pad module (a -inf pad before a max pool)."""
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
    return t.detach().numpy()


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
                                                                if fed.padded_inside else "")
    flat_spatial = tuple(flat[1:]) if flat is not None and fed.layout.name.startswith("flattened") else None
    out.issues = config_issues(pair, span, fed.inferred) + weight_issues(pair, span, units, flat_spatial)
    modules = [runnable(c) for c in span.body] + ([runnable(span.act)] if span.act is not None else [])
    pads: Any = (None if fed.prepadded else fed.inferred) if span.pad is None else span.pad.module
    last_out = pair.calls[-1].output
    y_keras = unit.last.output
    origin = tuple(unit.head.operands[0].shape) if unit.role == "flatten" else None
    out_layout = streams.match(y_keras, last_out, torch_first, origin) if last_out is not None else None
    if out_layout is not None and last_out is not None:
        scale = float(np.max(np.abs(y_keras), initial=0.0))
        gap = float(np.max(np.abs(out_layout.to_keras(last_out).astype(np.float64) - y_keras), initial=0.0))
        out.drift = gap / scale if scale else gap
    if expected is not None:
        y, bound = expected
        out.isolated = _judged(modules, fed.x, pads, y, bound, y_keras, torch_first, origin)
        if out.isolated is None:
            out.note = "the port's output does not take the Keras layer's shape under any layout"
    if out.isolated is not None and out.isolated <= 1.0:
        for issue in out.issues:   # static padding attributes, but the module pads in its forward (Conv2dSame)
            if issue.kind == "config" and issue.id == "padding" and unit.role in ("conv", "depthwise", "separable"):
                issue.kind, issue.fix = "info", None
                issue.text += "; yet its output agrees here: it pads in its forward"
    failing = [i for i in out.issues if i.kind != "info"]
    if failing or (out.isolated is not None and out.isolated > 1.0) or (expected is not None and out.isolated is None):
        out.verdict = "fail"
    elif expected is None:
        out.verdict = "unjudged" if not out.issues else "pass"
    out.cause = triage(out, failing)
    fixes = [i.fix for i in failing if i.fix is not None]
    if fixes and expected is not None:
        fixed_modules = copies(modules)
        fixed_pads = pads
        for f in fixes:
            fixed_modules = f.apply(fixed_modules)
            if f.drop_pads:
                fixed_pads = f.pads
        out.fix = "; ".join(f.text for f in fixes)
        out.fixed = _judged(fixed_modules, fed.x, fixed_pads, expected[0], expected[1], y_keras, torch_first,
                            origin)
    return out


def _judged(modules: Sequence[Any], x: np.ndarray, pads: Any, y: np.ndarray,
            bound: np.ndarray, y_keras: np.ndarray, torch_first: bool,
            origin: tuple[int, ...] | None = None) -> float | None:
    try:
        got = _run(modules, x, pads)
    except Exception:   # noqa: BLE001 -- a module that cannot take the Keras input fails the pair, not the run
        return None
    layout = streams.match(y_keras, got, torch_first, origin)
    if layout is None:
        return None
    return _ratio(layout.to_keras(got), y, bound)


def triage(d: LayerDiff, failing: Sequence[Issue]) -> str:
    """One line: the weights layout, the configuration argument, the mapping, or numerics beyond the bound."""
    if d.verdict != "fail":
        return ""
    if failing:
        return "; ".join(f"{i.kind}: {i.text}" for i in failing)
    if d.isolated is None:
        return "shape: the port's module does not give the Keras layer's output shape"
    return (f"numerics: weights and configuration match, yet the module is off by {format_ratio(d.isolated)} x the "
            "bound (a framework bug, or a difference this diff does not name)")


FOLD_ULPS = 16   # a converter's rounding of each folded weight, in float32 ulps (relative 2^-20)


def fold_batch_norm(conv: Unit, bn: Unit) -> Unit:
    """The conv followed by a BatchNormalization as the one conv a converter folds them into (tf2onnx, torch.fx's
    fuser): kernel' = kernel * a per output channel (a separable layer's pointwise kernel), bias' = (bias - mean) * a
    + beta, a = gamma / sqrt(var + eps): exactly the composition, in float64."""
    c, b = conv.head, bn.head
    eps = float(b.config.get("epsilon", 1e-3))
    w = {k: v.astype(np.float64) for k, v in b.weights.items()}
    a = w.get("gamma", 1.0) / np.sqrt(w["moving_variance"] + eps)
    kernel_name = "pointwise_kernel" if conv.role == "separable" else "kernel"
    kernel = c.weights[kernel_name].astype(np.float64)
    scale = a.reshape(kernel.shape[-2:]) if conv.role == "depthwise" else a
    bias = c.weights["bias"].astype(np.float64) if "bias" in c.weights else 0.0
    folded = {k: v.astype(np.float64) for k, v in c.weights.items()}
    folded.update({kernel_name: kernel * scale, "bias": (bias - w["moving_mean"]) * a + w.get("beta", 0.0)})
    node = replace(c, weights=folded, config={**c.config, "use_bias": True}, output=b.output)
    # What the folded bias is computed from: a converter's rounding of it is relative to this, not to |bias'|
    # (which may cancel): its share of the bound is added apart (_keras_side), and weights compare on it.
    scale_b = np.abs(bias * a) + np.abs(w["moving_mean"] * a) + np.abs(w.get("beta", 0.0))
    return Unit([node, b], conv.role, bn.activation if bn.activation != "linear" else conv.activation,
                tolerance=2.0 ** -20, extra_roundings=FOLD_ULPS, scales={"bias": scale_b})


def _fold_where_converted(mapping: LayerMapping) -> dict[int, str]:
    """Pairs whose torch conv holds the conv's weights folded with the BatchNormalization after it (an unmapped
    unit reading only that conv's output) become one unit of both; returns the BN names folded, per unit id."""
    folded: dict[int, str] = {}
    unmapped = {u.head.index: (u, why) for u, why in mapping.keras_unmapped}
    readers = {u.head.sources[0]: (u, why) for u, why in unmapped.values()
               if u.head.kind == "BatchNormalization" and len(u.head.sources) == 1 and u.head.sources[0] is not None}
    for pair in mapping.pairs:
        unit = pair.unit
        if unit.role not in ("conv", "depthwise", "separable") or len(unit.nodes) != 1:
            continue
        nxt = readers.get(unit.head.index)
        if nxt is None or sum(1 for n in unmapped.values() if unit.head.index in n[0].head.sources) > 1:
            continue
        fused = fold_batch_norm(unit, nxt[0])
        body = split(pair).body
        want = expected_params(fused)[-1]
        have = body[-1].module.weight.detach().cpu().numpy()
        if same(have, want["weight"], fused.tolerance):
            pair.unit = fused
            mapping.keras_unmapped.remove(nxt)
            folded[id(fused)] = nxt[0].name
    return folded


def unpadded_input(unit: Unit, nodes: Sequence[KerasNode], unmapped_pads: set[int]) -> np.ndarray | None:
    """What a Keras ZeroPadding layer with no torch module read, where it feeds this conv (or pool)."""
    src = unit.head.sources[0] if unit.head.sources else None
    if unit.role not in PADDED_ROLES or src is None or src not in unmapped_pads:
        return None
    return nodes[src].inputs[0]


def _unpair_composed_activations(mapping: LayerMapping, torch_first: bool) -> None:
    """An activation module of another function than the Keras activation it was paired with is a bug only where
    it reads the same tensor: a converter's hard_swish is x * relu6(x + 3) / 6, its Relu6 module reading x + 3. Such
    pairs (the module's input off the Keras activation's input by more than 1e-3 of its scale) are undone."""
    for pair in list(mapping.pairs):
        unit, call = pair.unit, pair.calls[0]
        if unit.role != "act" or len(pair.calls) != 1 or torch_activation(call) == unit.activation:
            continue
        keras_in = unit.head.inputs[0]
        layout = streams.match(keras_in, call.inputs[0], torch_first) if call.inputs else None
        if layout is None:
            continue
        scale = float(np.max(np.abs(keras_in), initial=0.0)) or 1.0
        gap = float(np.max(np.abs(layout.to_torch(keras_in).reshape(call.inputs[0].shape) - call.inputs[0]),
                           initial=0.0))
        if gap > 1e-3 * scale:
            mapping.pairs.remove(pair)
            why = (f"the port's {call.kind} {call.path} reads another tensor (off by {gap / scale:.2g} of its "
                   "scale): the activation is composed of several operations in the port")
            mapping.keras_unmapped.append((unit, why))
            mapping.torch_unmapped.append((call, f"part of the port's composition of {unit.name}'s activation"))


def diff_captured(nodes: Sequence[KerasNode], calls: Sequence[TorchCall], port_out: np.ndarray,
                  torch_first: bool = True, overrides: Mapping[str, Sequence[str]] | None = None,
                  mapping: LayerMapping | None = None) -> DiffResult:
    """Judge a captured pair of runs (capture.capture_keras / capture_torch)."""
    mapping = mapping or align(nodes, calls, overrides)
    folded = _fold_where_converted(mapping)
    _unpair_composed_activations(mapping, torch_first)
    units = [p.unit for p in mapping.pairs] + [u for u, _ in mapping.keras_unmapped]
    dtype = str(nodes[-1].output.dtype)
    by_unit: dict[int, LayerDiff] = {}
    pad_calls = {c.index + 1 for c in calls if torch_role(c) == "pad"}   # the calls right after a pad module
    unmapped_pads = {u.head.index for u, _ in mapping.keras_unmapped if u.role == "pad"}
    for pair in mapping.pairs:
        ref, expected, keras_ratio, reason = _keras_side(pair.unit, dtype)
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
        ref, expected, keras_ratio, reason = _keras_side(unit, dtype)
        by_unit[id(unit)] = LayerDiff(unit.name, unit.head.kind, [], "unjudged", keras=keras_ratio,
                                      note=why + (f" ({reason})" if reason else ""))
    order = {id(u): min(n.index for n in u.nodes) for u in units}
    _judge_functional(mapping, nodes, port_out, torch_first, dtype, by_unit, order)
    layers = [by_unit[k] for k in sorted(by_unit, key=lambda k: order[k])]
    for d in layers:
        if d.keras is not None and d.keras > 1.0:
            d.verdict = "fail"
            d.cause = (d.cause + "; " if d.cause else "") + (
                f"keras: Keras's own output is off the oracle by {format_ratio(d.keras)} x the bound")
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


def _port_value(keras_value: np.ndarray, torch_value: np.ndarray | None, torch_first: bool) -> np.ndarray | None:
    """The port's tensor in the Keras tensor's layout and shape, or None where no layout relates them."""
    if torch_value is None:
        return None
    layout = streams.match(keras_value, torch_value, torch_first)
    if layout is None:
        return None
    return np.asarray(layout.to_keras(torch_value)).reshape(keras_value.shape)


def _judge_functional(mapping: LayerMapping, nodes: Sequence[KerasNode], port_out: np.ndarray, torch_first: bool,
                      dtype: str, by_unit: dict[int, LayerDiff], order: dict[int, int]) -> None:
    """A Keras layer the port computes in its forward (x + y, x * s, a reshape, a rescaling), judged on the port's
    own tensors: its inputs as the port's mapped modules output them, its output as the port's next mapped module
    reads it (or as the port returns it), against the layer's reference on those inputs and its bound. A layer the
    port leaves out (a rescaling of its input, a final softmax) fails here."""
    values: dict[int, np.ndarray] = {}   # Keras node index -> the port's tensor there, Keras layout
    readers: dict[int, tuple[Pair, int]] = {}
    for pair in mapping.pairs:
        got = _port_value(pair.unit.last.output, pair.calls[-1].output, torch_first)
        if got is not None:
            values[pair.unit.last.index] = got
        for k, src in enumerate(pair.unit.head.sources):
            if src is not None and pair.calls[0].inputs and k == 0:
                readers.setdefault(src, (pair, k))
    final = nodes[-1].index
    for unit, _ in sorted(mapping.keras_unmapped, key=lambda item: order[id(item[0])]):
        d = by_unit[id(unit)]
        head, last = unit.head, unit.last
        if last.index in readers:
            pair, _ = readers[last.index]
            out = _port_value(last.output, pair.calls[0].inputs[0], torch_first)
            where = f"as {pair.calls[0].path or '<root>'} reads it"
        elif last.index == final:
            out, where = _port_value(last.output, port_out, torch_first), "as the port returns it"
        else:
            continue
        ins: list[np.ndarray] = []
        for src, operand in zip(head.sources, head.operands):
            value = operand if src is None or src == -1 else values.get(src)
            if value is None:
                break
            ins.append(np.asarray(value, dtype=np.float64))
        else:
            if out is None:
                continue
            try:
                ref = _reference(unit)
            except layer_refs.NoReference:
                continue
            y, bound = layer_refs.bound(ref, ins, dtype)
            if y.shape != out.shape:
                continue
            ratio = _ratio(out, y, bound)
            values[last.index] = out
            d.isolated = ratio
            if ratio <= 1.0:
                d.verdict = "pass"
                d.note = f"computed in the port's forward: judged on the port's own tensors ({where})"
            else:
                same_as_input = len(ins) == 1 and ins[0].shape == out.shape and np.allclose(ins[0], out, rtol=1e-6)
                d.verdict = "fail"
                d.cause = (f"functional: the port's forward does not compute {head.kind} {unit.name!r}: its output "
                           f"{where} is its input unchanged" if same_as_input else
                           f"functional: the port's forward computes {head.kind} {unit.name!r} differently: its output "
                           f"{where} is off by {format_ratio(ratio)} x the bound, on the port's own inputs")


def _keras_side(unit: Unit, dtype: str) -> tuple[layer_refs.LayerRef | None, tuple[np.ndarray, np.ndarray] | None,
                                                 float | None, str]:
    """The unit's reference on Keras's captured input, and Keras's own output judged against it."""
    grow = unit.extra_roundings
    try:
        ref = _reference(unit)
        if grow:
            ref = replace(ref, k=ref.k + grow)
    except layer_refs.NoReference as exc:
        return None, None, None, str(exc)
    xs = [op.astype(np.float64) for op in unit.head.operands]
    y, bound = layer_refs.bound(ref, xs, dtype)
    if "bias" in unit.scales:   # a folded bias's rounding, relative to what it is computed from (fold_batch_norm)
        slope = ACTIVATION_TABLE[unit.activation].slope if unit.activation in ACTIVATION_TABLE else math.inf
        bound = bound + slope * SAFETY * gamma(unit.extra_roundings, unit_roundoff(dtype)) * unit.scales["bias"]
    return ref, (y, bound), _ratio(unit.last.output, y, bound), ""


def diff(keras_model: Any, torch_module: Any, x: np.ndarray, *, torch_first: bool = True,
         overrides: Mapping[str, Sequence[str]] | None = None) -> DiffResult:
    """Run both models on ``x`` (batch first, channels last: the Keras input) and judge every mapped layer."""
    from ..keras_layer import import_keras

    keras = import_keras()
    nodes = capture_keras(keras, keras_model, x)
    xt = streams.channels_first(x) if torch_first else x
    calls, port_out = capture_torch(torch_module, np.ascontiguousarray(xt))
    return diff_captured(nodes, calls, port_out, torch_first, overrides)
