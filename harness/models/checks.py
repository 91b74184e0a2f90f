"""The port's configuration against the Keras layer's: each difference an Issue with the Fix it implies (its weights:
weights_check)."""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..layers.padding import pad_amounts
from . import crops
from .mapping import PADDED_ROLES, Pair, Unit, torch_activation, torch_role

# A fix rewrites the span's modules (deep copies) so that the pair can be judged again: (modules, pads) in, out.
Modules = list[Any]


@dataclass
class Fix:
    """A correction derived from a cause, applied to copies of the port's modules and judged again."""

    text: str                                        # the corrected torch code, spelled out
    apply: Callable[[Modules], Modules]              # copies in, corrected copies out
    pads: tuple[tuple[int, int], ...] | None = None  # a pad to apply before the first module (padding fixes)
    drop_pads: bool = False                          # the port's own pad (module or functional) replaced
    crop: crops.Crop | None = None                   # a crop to apply after the modules (a transposed conv's)
    drop_crop: bool = False                          # the port's own crop after its module replaced by ``crop``


@dataclass
class Issue:
    """One difference between the port and the Keras layer (kind: config | weights | mapping | info), or what the
    registry knows of a numerics-only failure (kind known_bug, id the registry's)."""

    kind: str
    id: str
    text: str
    fix: Fix | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Span:
    """A pair's torch calls split by what they do: a leading pad module, the body, a trailing activation."""

    pad: Any | None
    body: list[Any]
    act: Any | None


def split(pair: Pair) -> Span:
    calls = list(pair.calls)
    padded = pair.unit.role in PADDED_ROLES
    pad = calls.pop(0) if len(calls) > 1 and torch_role(calls[0]) == "pad" and padded else None
    act = calls.pop() if len(calls) > 1 and torch_role(calls[-1]) == "act" and pair.unit.role != "act" else None
    return Span(pad, calls, act)


def copies(modules: Sequence[Any]) -> Modules:
    return [copy.deepcopy(m) for m in modules]


def required_pads(unit: Unit) -> tuple[tuple[int, int], ...]:
    """(before, after) per spatial axis that the Keras layer pads its input with (TensorFlow's 'same' split)."""
    c, x = unit.head.config, unit.head.inputs[0]
    spatial = x.shape[1:-1]
    r = len(spatial)
    ks = _tuple(c.get("kernel_size", 1), r)
    ss = _tuple(c.get("strides", 1), r)
    ds = _tuple(c.get("dilation_rate", 1), r)
    padding = str(c.get("padding", "valid")).lower()
    return tuple(pad_amounts(padding, n, k, s, d) for n, k, s, d in zip(spatial, ks, ss, ds))


def _tuple(v: Any, r: int) -> tuple[int, ...]:
    return tuple(int(i) for i in v) if isinstance(v, (list, tuple)) else (int(v),) * r


def torch_pads(span: Span, inferred: tuple[tuple[int, int], ...] | None) -> tuple[tuple[int, int], ...]:
    """What the port pads the first body conv's input with: its pad module, a pad in its forward (inferred from
    the shapes it was called on) and the conv's own symmetric padding, per spatial axis."""
    conv = span.body[0].module
    r = len(conv.kernel_size)
    own = conv.padding if not isinstance(conv.padding, str) else _string_pads(conv)
    total = [[int(p), int(p)] for p in own]
    if span.pad is not None:
        p = span.pad.module.padding
        flat = list(p) if isinstance(p, (list, tuple)) else [p] * (2 * r)
        for axis in range(r):   # torch pads: (last axis before, after, second to last before, after, ...)
            total[r - 1 - axis][0] += int(flat[2 * axis])
            total[r - 1 - axis][1] += int(flat[2 * axis + 1])
    if inferred:
        for axis, (b, a) in enumerate(inferred):
            total[axis][0] += b
            total[axis][1] += a
    return tuple((b, a) for b, a in total)


def _string_pads(conv: Any) -> tuple[int, ...]:
    if conv.padding == "valid":
        return (0,) * len(conv.kernel_size)
    # torch's 'same' (stride 1 only) puts the odd pixel at the end like TensorFlow; counted as symmetric here only
    # when even: an odd total is reported through the config check as what torch does.
    return tuple(d * (k - 1) // 2 for k, d in zip(conv.kernel_size, conv.dilation))


def config_issues(pair: Pair, span: Span, inferred: tuple[tuple[int, int], ...] | None) -> list[Issue]:
    """Each configuration argument of the Keras layer the port computes differently, named, with its fix."""
    unit, node = pair.unit, pair.unit.head
    c = node.config
    issues: list[Issue] = []
    if unit.role in ("conv", "depthwise", "separable") and not hasattr(span.body[0].module, "kernel_size"):
        lin = span.body[-1].module   # a Linear porting a 1x1 conv on a 1x1 input: only its bias to check
        if bool(c.get("use_bias", True)) != (getattr(lin, "bias", None) is not None):
            issues.append(_bias_issue(pair, span))
    elif unit.role in ("conv", "depthwise", "separable"):
        conv = span.body[0].module
        r = len(conv.kernel_size)
        for arg, theirs, label in (("strides", conv.stride, "stride"), ("dilation_rate", conv.dilation, "dilation")):
            if _tuple(c.get(arg, 1), r) != tuple(theirs):
                issues.append(Issue("config", label, f"{label}: Keras {list(_tuple(c.get(arg, 1), r))}, the port "
                                    f"{list(theirs)}"))
        need, have = required_pads(unit), torch_pads(span, inferred)
        if need != have:
            issues.append(_padding_issue(unit, need, have))
        has_bias = (span.body[-1].module.bias is not None) or (unit.role == "separable"
                                                               and span.body[0].module.bias is not None)
        if bool(c.get("use_bias", True)) != has_bias:
            issues.append(_bias_issue(pair, span))
        elif unit.role == "separable" and span.body[0].module.bias is not None:
            issues.append(_separable_bias_issue(pair, span))
    if unit.role == "conv_transpose":
        issues += _transpose_issues(pair, span)
    if unit.role == "dense":
        lin = span.body[0].module
        if bool(c.get("use_bias", True)) != (lin.bias is not None):
            issues.append(_bias_issue(pair, span))
    if unit.role == "bn":
        bn = span.body[0].module
        eps = float(c.get("epsilon", 1e-3))
        if not np.isclose(float(bn.eps), eps, rtol=1e-6, atol=0.0):
            issues.append(Issue("config", "bn_eps", f"epsilon: Keras {eps:g}, the port {float(bn.eps):g}",
                                _set_attr(0, "eps", eps, f"nn.{span.body[0].kind}({bn.num_features}, eps={eps:g})")))
        momentum = float(c.get("momentum", 0.99))
        if bn.momentum is not None and not np.isclose(1.0 - float(bn.momentum), momentum):
            issues.append(Issue("info", "bn_momentum", f"momentum: Keras {momentum:g} (torch's "
                                f"{1 - momentum:g}), the port {float(bn.momentum):g}: no effect in inference, "
                                "only in training"))
        if not bn.track_running_stats:
            issues.append(Issue("config", "bn_batch_statistics", "the port's BatchNorm normalises with the batch's "
                                "statistics (track_running_stats=False): Keras uses its moving statistics"))
    if unit.role in ("maxpool", "avgpool"):
        issues += _pool_issues(unit, span, inferred)
    if unit.role == "pad":
        need = tuple(_keras_pads(c.get("padding", 0), node.inputs[0].ndim - 2))
        module = span.body[0].module
        flat = list(module.padding) if isinstance(module.padding, (list, tuple)) else [module.padding] * (2 * len(need))
        have = tuple((int(flat[2 * (len(need) - 1 - a)]), int(flat[2 * (len(need) - 1 - a) + 1]))
                     for a in range(len(need)))
        if need != have:
            spelled = tuple(v for b, a in reversed(need) for v in (b, a))
            issues.append(Issue("config", "padding", f"padding: Keras pads {[list(p) for p in need]} (before, after "
                                f"per axis), the port {[list(p) for p in have]}",
                                _set_attr(0, "padding", spelled, f"nn.{span.body[0].kind}({spelled})"),
                                {"keras": need, "port": have}))
    want_act = unit.activation
    have_act = torch_activation(span.act) if span.act is not None else (
        torch_activation(span.body[0]) if unit.role == "act" else "linear")
    if want_act != have_act and not (want_act == "linear" and unit.role != "act"):
        k = 0 if unit.role == "act" else len(span.body)   # where the activation module sits in the span
        issues.append(Issue("config", "activation", f"activation: Keras {want_act}, the port {have_act}",
                            _activation_fix(want_act, k, span)))
    return issues


def _transpose_issues(pair: Pair, span: Span) -> list[Issue]:
    """A Conv{N}DTranspose against the port's nn.ConvTransposeNd: stride, dilation, the crop off the full scatter
    (Keras's 'same'/'valid' and output_padding against the module's padding and output_padding plus what the port
    crops after it in its forward), the bias."""
    unit, conv = pair.unit, span.body[0].module
    c, r = unit.head.config, len(conv.kernel_size)
    issues = []
    for arg, theirs, label in (("strides", conv.stride, "stride"), ("dilation_rate", conv.dilation, "dilation")):
        if _tuple(c.get(arg, 1), r) != tuple(theirs):
            issues.append(Issue("config", label, f"{label}: Keras {list(_tuple(c.get(arg, 1), r))}, the port "
                                f"{list(theirs)}"))
    need: crops.Crop = ()
    have: crops.Crop = ()
    try:
        need = crops.keras_crops(unit)
    except ValueError:   # a config the harness's geometry refuses: no crop to compare (the reference says why)
        pass
    else:
        have = crops.port_crops(conv, pair.crop, pair.output_padding)
    if need != have:
        issues.append(_crop_issue(pair, span, need, have))
    if bool(c.get("use_bias", True)) != (conv.bias is not None):
        issues.append(_bias_issue(pair, span))
    return issues


def _crop_issue(pair: Pair, span: Span, need: crops.Crop, have: crops.Crop) -> Issue:
    """The crop difference of a transposed conv, with the fix: the module's own padding and output_padding where
    they express Keras's crop, else padding=0 and Keras's crop done after the module."""
    c, conv, call = pair.unit.head.config, span.body[0].module, span.body[0]
    r = len(need)
    axes = ("rows", "columns") if r == 2 else tuple(f"axis {i}" for i in range(r))
    say = ", ".join(f"{a} {list(p)}" for a, p in zip(axes, need))
    says = ", ".join(f"{a} {list(p)}" for a, p in zip(axes, have))
    called = pair.output_padding is not None
    output_paddings = conv.output_padding if pair.output_padding is None else pair.output_padding
    own = (f"padding={tuple(int(p) for p in conv.padding)}, output_padding="
           f"{tuple(int(p) for p in output_paddings)}")
    own += " (from its output_size argument)" if called else ""
    own += f", then {crops.spelled(pair.crop)}" if pair.crop else ""
    op = c.get("output_padding")
    text = (f"padding: Keras '{c.get('padding')}' at strides {c.get('strides')}"
            + (f", output_padding {op}" if op is not None else "")
            + f" crops {say} off the full scatter (before, after), the port ({own}) crops {says}")
    if crops.native(need, conv.stride, conv.dilation):
        padding, output_padding = tuple(b for b, _ in need), tuple(b - a for b, a in need)
        fix_text = f"nn.{call.kind}(..., padding={padding}, output_padding={output_padding})"
        after = None
    else:
        padding = output_padding = (0,) * r
        fix_text = f"nn.{call.kind}(..., padding=0, output_padding=0), then {crops.spelled(need)} in the forward"
        after = need
    fix_text += ", called without output_size" if called else ""

    def apply(modules: Modules) -> Modules:
        modules[0].padding, modules[0].output_padding = padding, output_padding
        return modules
    return Issue("config", "padding", text, Fix(fix_text, apply, crop=after, drop_crop=True),
                 {"keras": need, "port": have})


def _pool_issues(unit: Unit, span: Span, inferred: tuple[tuple[int, int], ...] | None) -> list[Issue]:
    """A pooling layer's window, stride and TensorFlow padding against the port's (its pool's own padding, a pad
    module before it, a pad in its forward)."""
    c, pool = unit.head.config, span.body[0].module
    spatial = unit.head.inputs[0].shape[1:-1]
    r = len(spatial)
    size = _tuple(c.get("pool_size", 2), r)
    stride = _tuple(c.get("strides") or c.get("pool_size", 2), r)
    issues = []
    for label, want, have in (("pool size", size, _tuple(pool.kernel_size, r)),
                              ("stride", stride, _tuple(pool.stride, r))):
        if want != have:
            issues.append(Issue("config", label.replace(" ", "_"),
                                f"{label}: Keras {list(want)}, the port {list(have)}"))
    padding = str(c.get("padding", "valid")).lower()
    need = tuple(pad_amounts(padding, n, k, s, 1) for n, k, s in zip(spatial, size, stride))
    own = _tuple(pool.padding, r)
    total = [[p, p] for p in own]
    if span.pad is not None:
        p = span.pad.module.padding
        flat = list(p) if isinstance(p, (list, tuple)) else [p] * (2 * r)
        for axis in range(r):
            total[r - 1 - axis][0] += int(flat[2 * axis])
            total[r - 1 - axis][1] += int(flat[2 * axis + 1])
    for axis, (b, a) in enumerate(inferred or ()):
        total[axis][0] += b
        total[axis][1] += a
    have_pads = tuple((b, a) for b, a in total)
    if need != have_pads:
        issues.append(Issue("config", "padding", f"padding: Keras '{padding}' pools over "
                            f"{[list(p) for p in need]} (before, after per axis; TensorFlow puts an odd pixel at "
                            "the end), the port over "
                            f"{[list(p) for p in have_pads]}", None, {"keras": need, "port": have_pads}))
    return issues


def _keras_pads(padding: Any, rank: int) -> list[tuple[int, int]]:
    """A ZeroPadding layer's padding argument as (before, after) per spatial axis."""
    if isinstance(padding, int):
        return [(padding, padding)] * rank
    out = []
    for p in padding:
        out.append((int(p), int(p)) if isinstance(p, int) else (int(p[0]), int(p[1])))
    return out


def _padding_issue(unit: Unit, need: tuple[tuple[int, int], ...], have: tuple[tuple[int, int], ...]) -> Issue:
    c = unit.head.config
    axes = ("rows", "columns") if len(need) == 2 else tuple(f"axis {i}" for i in range(len(need)))
    say = ", ".join(f"{a} {list(p)}" for a, p in zip(axes, need))
    says = ", ".join(f"{a} {list(p)}" for a, p in zip(axes, have))
    flat = [v for b, a in reversed(need) for v in (b, a)]
    pad_cls = f"nn.ZeroPad{len(need)}d"
    text = (f"padding: Keras '{c.get('padding')}' at strides {c.get('strides')} pads {say} (TensorFlow puts an "
            f"odd pixel at the end), the port pads {says}")
    return Issue("config", "padding", text,
                 Fix(f"{pad_cls}({tuple(flat)}) before the conv, and the conv with padding=0",
                     lambda modules: _zero_padding(modules), pads=need, drop_pads=True),
                 {"keras": need, "port": have})


def _zero_padding(modules: Modules) -> Modules:
    conv = modules[0]
    conv.padding = (0,) * len(conv.kernel_size)
    conv._reversed_padding_repeated_twice = [0] * (2 * len(conv.kernel_size))
    return modules


def _bias_issue(pair: Pair, span: Span) -> Issue:
    wants = bool(pair.unit.head.config.get("use_bias", True))
    last = len(span.body) - 1
    if wants:
        bias = pair.unit.head.weights["bias"]
        return Issue("config", "missing_bias", f"bias: Keras adds a bias, {span.body[last].path} has none",
                     _set_new_bias(last, bias, f"{span.body[last].kind}(..., bias=True) with Keras's bias loaded"))
    return Issue("config", "extra_bias", f"bias: Keras adds no bias, {span.body[last].path} has one",
                 _set_new_bias(last, None, f"{span.body[last].kind}(..., bias=False)"))


def _separable_bias_issue(pair: Pair, span: Span) -> Issue:
    bias = pair.unit.head.weights.get("bias")
    text = (f"bias: Keras's SeparableConv adds its one bias after the pointwise step; the port adds it on the "
            f"depthwise conv {span.body[0].path}")
    def apply(modules: Modules) -> Modules:
        modules = _set_new_bias(0, None, "").apply(modules)
        return _set_new_bias(1, bias, "").apply(modules)
    return Issue("config", "separable_bias", text,
                 Fix("depthwise conv bias=False, pointwise conv bias=True with Keras's bias loaded", apply))


def _set_new_bias(k: int, value: np.ndarray | None, text: str) -> Fix:
    def apply(modules: Modules) -> Modules:
        import torch

        target = modules[k]
        if value is None:
            target.bias = None
        else:
            target.bias = torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(value)).to(target.weight.dtype),
                                             requires_grad=False)
        return modules
    return Fix(text, apply)


def _set_attr(k: int, name: str, value: Any, text: str) -> Fix:
    def apply(modules: Modules) -> Modules:
        setattr(modules[k], name, value)
        return modules
    return Fix(text, apply)


TORCH_ACTIVATIONS = {"relu": "ReLU()", "relu6": "ReLU6()", "hard_sigmoid": "Hardsigmoid()",
                     "hard_silu": "Hardswish()", "silu": "SiLU()", "sigmoid": "Sigmoid()", "tanh": "Tanh()",
                     "gelu": "GELU()", "elu": "ELU()", "selu": "SELU()", "softplus": "Softplus()",
                     "softsign": "Softsign()", "softmax": "Softmax(dim=-1)", "linear": "Identity()"}


def _activation_fix(name: str, k: int, span: Span) -> Fix | None:
    spelled = TORCH_ACTIVATIONS.get(name)
    if spelled is None:
        return None

    def apply(modules: Modules) -> Modules:
        import torch

        # An ONNX port's module runs the activation it is given in onnxruntime (models.onnx_modules).
        like = getattr(modules[min(k, len(modules) - 1)], "activation_like", None)
        module = (like(name) if like is not None else None) or eval(f"torch.nn.{spelled}", {"torch": torch})
        if k < len(modules):
            modules[k] = module
        else:
            modules.append(module)
        return modules
    return Fix(f"nn.{spelled}", apply)
