"""Mapping: which torch leaf calls compute which Keras node, by graph order, type and weight shapes; overridable."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..layers.families import FAMILIES, LAYERS
from .capture import IDENTITIES_KERAS, IDENTITIES_TORCH, KerasNode, TorchCall

# Keras activation names as the harness's table spells them (aliases folded).
ALIASES = {"swish": "silu", "hard_swish": "hard_silu", None: "linear"}

# A torch leaf module class -> the role it plays. Conv modules are told apart by their groups (conv_role).
TORCH_ROLES = {
    "BatchNorm1d": "bn", "BatchNorm2d": "bn", "BatchNorm3d": "bn", "SyncBatchNorm": "bn", "Linear": "dense",
    **{f"ZeroPad{r}d": "pad" for r in (1, 2, 3)}, **{f"ConstantPad{r}d": "pad" for r in (1, 2, 3)},
    **{f"MaxPool{r}d": "maxpool" for r in (1, 2, 3)}, **{f"AvgPool{r}d": "avgpool" for r in (1, 2, 3)},
    **{f"AdaptiveAvgPool{r}d": "gap" for r in (1, 2, 3)}, **{f"AdaptiveMaxPool{r}d": "gmp" for r in (1, 2, 3)},
    "Flatten": "flatten", "Unflatten": "reshape",
    "ReLU": "act", "ReLU6": "act", "Hardtanh": "act", "Hardswish": "act", "Hardsigmoid": "act", "SiLU": "act",
    "Sigmoid": "act", "Tanh": "act", "GELU": "act", "ELU": "act", "SELU": "act", "Softplus": "act",
    "Softsign": "act", "LeakyReLU": "act", "Softmax": "act",
}
KERAS_ROLES = {
    # The conv families' kinds play their family's role (conv, depthwise, separable, conv_transpose: Conv3D and
    # Conv{N}DTranspose included): a new family's kinds are mapped by its module, not by this table.
    **{name: kind.family.name for name, kind in LAYERS.items()},
    "BatchNormalization": "bn", "Dense": "dense",
    **{f"ZeroPadding{r}D": "pad" for r in (1, 2, 3)}, **{f"MaxPooling{r}D": "maxpool" for r in (1, 2, 3)},
    **{f"AveragePooling{r}D": "avgpool" for r in (1, 2, 3)}, **{f"GlobalAveragePooling{r}D": "gap" for r in (1, 2, 3)},
    **{f"GlobalMaxPooling{r}D": "gmp" for r in (1, 2, 3)},
    "Flatten": "flatten", "Reshape": "reshape", "ReLU": "act", "Activation": "act", "Softmax": "act",
    "LeakyReLU": "act", "ELU": "act", "HardSigmoid": "act",
}
# The roles of the conv families: a fused activation, stride, dilation, padding (or a transposed conv's crop), bias.
CONV_ROLES = frozenset(FAMILIES)
# Roles whose TensorFlow 'same' padding a port may do with a pad module just before (belonging to the layer).
PADDED_ROLES = frozenset({"conv", "depthwise", "separable", "maxpool", "avgpool"})
# Roles a port usually computes in its forward without a module (x + y, x * s, torch.cat, a reshape).
FUNCTIONAL_ROLES = frozenset({"add", "mul", "concat", "reshape", "rescale", "other"})


@dataclass
class Unit:
    """What the mapping pairs: one Keras node (an idiom of several, such as hard_sigmoid, counts as one)."""

    nodes: list[KerasNode]
    role: str
    activation: str = "linear"      # the activation the unit ends with (fused or an activation layer's)
    # A unit whose weights a converter folded (a BatchNormalization into the conv before it: converted.fold_batch_norm):
    # its weights are the exact fold, the port's its rounding: compared within ``tolerance`` (relative), and the
    # bound counts ``extra_roundings`` more roundings per term.
    tolerance: float = 2.0 ** -22
    extra_roundings: int = 0
    scales: dict[str, np.ndarray] = field(default_factory=dict)   # per torch weight name: what it is relative to

    @property
    def head(self) -> KerasNode:
        return self.nodes[0]

    @property
    def last(self) -> KerasNode:
        return self.nodes[-1]

    @property
    def name(self) -> str:
        return self.nodes[-1].name if len(self.nodes) == 1 else f"{self.nodes[0].name}..{self.nodes[-1].name}"


@dataclass
class Pair:
    unit: Unit
    calls: list[TorchCall]
    by: str = "order"               # order (the aligner) | map (the user's --map)
    # What the port crops off its transposed conv's output in its forward (x[..., :-1, :-1], F.pad with negative
    # amounts, a pad module after it), (before, after) per spatial axis, read from the port's own tensors
    # (harness.models.crops.infer_crops); None where it crops nothing after the module.
    crop: tuple[tuple[int, int], ...] | None = None
    # The output_padding its transposed conv was called with where not the module's own (an output_size argument,
    # the U-Net idiom up(x, output_size=skip.shape)): the isolated run and the config check use it.
    output_padding: tuple[int, ...] | None = None


@dataclass
class LayerMapping:
    pairs: list[Pair] = field(default_factory=list)
    keras_unmapped: list[tuple[Unit, str]] = field(default_factory=list)    # (unit, reason)
    torch_unmapped: list[tuple[TorchCall, str]] = field(default_factory=list)


def keras_activation(node: KerasNode) -> str:
    """The activation a Keras node applies (fused into a conv or dense, or the activation layer's own)."""
    c = node.config
    if node.kind == "ReLU":
        if c.get("negative_slope") or c.get("threshold"):
            return "relu-variant"
        return {None: "relu", 6.0: "relu6"}.get(c.get("max_value"), f"relu(max_value={c.get('max_value')})")
    if node.kind == "Softmax":
        return "softmax"
    if node.kind == "LeakyReLU":
        return "leaky_relu"
    act = c.get("activation")
    if isinstance(act, str) or act is None:
        return ALIASES.get(act, act) or "linear"
    return str(getattr(act, "__name__", act))


def keras_role(node: KerasNode) -> str:
    if node.kind in KERAS_ROLES:
        return KERAS_ROLES[node.kind]
    if node.kind in ("Add", "Subtract", "Average", "Maximum", "Minimum"):
        return "add"
    if node.kind in ("Multiply", "TrueDivide", "Divide"):
        return "mul"
    if node.kind == "Concatenate":
        return "concat"
    if node.kind in ("Rescaling", "Normalization"):
        return "rescale"
    return "other"


def torch_activation(call: TorchCall) -> str:
    """The harness's name for a torch activation module (with its arguments where they change it)."""
    m = call.module
    kind = call.kind
    if kind == "Hardtanh":
        lo, hi = float(m.min_val), float(m.max_val)
        return "relu6" if (lo, hi) == (0.0, 6.0) else f"hardtanh({lo:g}, {hi:g})"
    if kind == "GELU":
        return "gelu" if m.approximate == "none" else "gelu(tanh)"
    return {"ReLU": "relu", "ReLU6": "relu6", "Hardswish": "hard_silu", "Hardsigmoid": "hard_sigmoid",
            "SiLU": "silu", "Sigmoid": "sigmoid", "Tanh": "tanh", "ELU": "elu", "SELU": "selu",
            "Softplus": "softplus", "Softsign": "softsign", "LeakyReLU": "leaky_relu",
            "Softmax": "softmax"}.get(kind, kind)


def torch_role(call: TorchCall) -> str:
    m = call.module
    if call.kind in ("Conv1d", "Conv2d", "Conv3d"):
        if m.groups == 1 and m.in_channels > 1:
            return "conv"
        if m.groups == m.in_channels:
            return "depthwise" if m.in_channels > 1 else "conv"
        return "conv"
    if call.kind in ("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"):
        return "conv_transpose" if m.groups == 1 else "other"   # Keras's transposed convs have no groups
    return TORCH_ROLES.get(call.kind, "other")


def pointwise_on_a_point(unit: Unit) -> bool:
    """A 1x1 Conv on a 1x1 input (MobileNetV3's classifier) computes what a Dense does: a Linear may port it."""
    kernel = unit.head.weights.get("kernel")
    x = unit.head.inputs[0] if unit.head.inputs else None
    return (unit.role == "conv" and kernel is not None and x is not None and all(d == 1 for d in kernel.shape[:-2])
            and all(d == 1 for d in x.shape[1:-1]))


def transpose_signature(unit: Unit, module: object) -> float:
    """How a torch transposed conv's weight fits a Keras Conv{N}DTranspose kernel (*k, filters, in): 0 of another
    rank (Conv2DTranspose is nn.ConvTranspose2d); 1 the shape torch gives it, (in, filters, *k); 0.5 any other shape
    (in and filters swapped, the kernel's axes permuted: the weights check names which)."""
    kernel = unit.head.weights.get("kernel")
    weight = getattr(module, "weight", None)
    if kernel is None or weight is None or weight.ndim != kernel.ndim:
        return 0.0
    want = (kernel.shape[-1], kernel.shape[-2], *kernel.shape[:-2])
    return 1.0 if tuple(weight.shape) == want else 0.5


def _fuse_idioms(nodes: Sequence[KerasNode]) -> list[Unit]:
    """Keras nodes as units: identities dropped, `ReLU(6)(x + 3) * (1/6)` (Keras's hard_sigmoid, as MobileNetV3
    writes it) one activation unit."""
    units: list[Unit] = []
    i = 0
    while i < len(nodes):
        n = nodes[i]
        if n.kind in IDENTITIES_KERAS:
            i += 1
            continue
        if (i + 2 < len(nodes) and n.is_op and n.kind == "Add" and _const(n) == 3.0
                and nodes[i + 1].kind == "ReLU" and nodes[i + 1].config.get("max_value") == 6.0
                and nodes[i + 1].sources == [n.index] and nodes[i + 2].is_op and nodes[i + 2].kind == "Multiply"
                and nodes[i + 2].sources[0] == nodes[i + 1].index
                and abs((_const(nodes[i + 2]) or 0.0) - 1.0 / 6.0) < 1e-12):
            units.append(Unit(list(nodes[i:i + 3]), "act", "hard_sigmoid"))
            i += 3
            continue
        role = keras_role(n)
        units.append(Unit([n], role, keras_activation(n) if role in CONV_ROLES | {"act", "dense"} else "linear"))
        i += 1
    return units


def _const(node: KerasNode) -> float | None:
    consts = [float(v) for v, s in zip(node.operands, node.sources) if s is None]
    return consts[0] if len(consts) == 1 else None


def _call_sizes(call: TorchCall) -> list[int]:
    sizes = [int(p.numel()) for p in call.module.parameters()]
    return sizes + [int(b.numel()) for n, b in call.module.named_buffers() if n in ("running_mean", "running_var")]


class _Scorer:
    """How well consecutive calls (1 to 3) compute a unit: 0 not at all; a role match, more with matching
    parameter sizes; a trailing activation module takes the unit's fused activation, a leading pad module its
    padding. Roles and sizes are computed once per call."""

    def __init__(self, calls: Sequence[TorchCall]) -> None:
        self.calls = list(calls)
        self.roles = [torch_role(c) for c in calls]
        self.sizes = [_call_sizes(c) for c in calls]
        self.keras_sizes: dict[int, list[int]] = {}

    def full(self, unit: Unit, span: Sequence[TorchCall]) -> float:
        """The score of a span given as calls (which must be consecutive in the scorer's list)."""
        if not span:
            return 0.0
        start = next(k for k, c in enumerate(self.calls) if c.index == span[0].index)
        return self(unit, start, start + len(span))

    def __call__(self, unit: Unit, start: int, stop: int) -> float:
        roles = self.roles[start:stop]
        lo, hi = start, stop
        if roles[0] == "pad" and unit.role in PADDED_ROLES:
            lo += 1
        if roles[-1] == "flatten" and unit.role == "gap" and hi - lo > 1:   # AdaptiveAvgPool2d(1) + Flatten
            hi -= 1
        if roles[-1] == "act" and unit.role != "act":
            if unit.activation == "linear":
                return 0.0
            hi -= 1
        body = self.roles[lo:hi]
        if not body:
            return 0.0
        if unit.role == "separable":
            if body not in (["depthwise", "conv"], ["conv", "conv"]):
                return 0.0
        elif len(body) != 1 or (body[0] != unit.role and not (body[0] == "dense" and pointwise_on_a_point(unit))):
            return 0.0
        keras_sizes = self.keras_sizes.setdefault(id(unit), sorted(int(np.size(w)) for w in unit.head.weights.values()))
        torch_sizes = sorted(s for k in range(lo, hi) for s in self.sizes[k])
        signature = 1.0
        if unit.role == "conv_transpose":
            signature = transpose_signature(unit, self.calls[lo].module)
            if not signature:
                return 0.0
        # All weight sizes equal: 1; the largest equal (a bias missing or extra): 0.5.
        bonus = 1.0 if keras_sizes == torch_sizes else (
            0.5 if keras_sizes and torch_sizes and keras_sizes[-1] == torch_sizes[-1] else 0.0)
        bonus = min(bonus, signature)
        return 2.0 + bonus + 0.1 * (stop - start - 1)


def align(nodes: Sequence[KerasNode], calls: Sequence[TorchCall],
          overrides: Mapping[str, Sequence[str]] | None = None) -> LayerMapping:
    """Pair Keras units with spans of torch calls: the best-scoring order-preserving alignment (a weighted longest
    common subsequence over graph order, spans of 1 to 3 calls), then the user's overrides (Keras layer name ->
    torch module paths) replace whatever the aligner chose for those."""
    units = _fuse_idioms(nodes)
    torch_calls = [c for c in calls if c.kind not in IDENTITIES_TORCH]
    overrides = dict(overrides or {})
    forced = {n for paths in overrides.values() for n in paths}
    free_units = [u for u in units if u.name not in overrides]
    free_calls = [c for c in torch_calls if c.path not in forced]
    n, m = len(free_units), len(free_calls)
    span_score = _Scorer(free_calls)
    score = np.zeros((n + 1, m + 1))
    move = np.zeros((n + 1, m + 1), dtype=np.int8)   # 0 skip unit, -1 skip call, s > 0 a span of s calls
    for i in range(1, n + 1):
        for j in range(0, m + 1):
            best, how = score[i - 1, j], 0
            if j and score[i, j - 1] > best:
                best, how = score[i, j - 1], -1
            for s in (1, 2, 3):
                if j >= s:
                    gain = span_score(free_units[i - 1], j - s, j)
                    if gain and score[i - 1, j - s] + gain > best:
                        best, how = score[i - 1, j - s] + gain, s
            score[i, j], move[i, j] = best, how
    pairs: list[Pair] = []
    used: set[int] = set()
    i, j = n, m
    while i > 0:
        how = int(move[i, j])
        if how > 0:
            pairs.append(Pair(free_units[i - 1], list(free_calls[j - how:j])))
            used.update(c.index for c in free_calls[j - how:j])
            i, j = i - 1, j - how
        elif how < 0:
            j -= 1
        else:
            i -= 1
    pairs.reverse()
    pairs = _rematch(pairs, free_units, free_calls, span_score, used)
    by_path: dict[str, list[TorchCall]] = {}
    for c in torch_calls:
        by_path.setdefault(c.path, []).append(c)
    for unit in units:
        if unit.name in overrides:
            missing = [p for p in overrides[unit.name] if p not in by_path]
            if missing:
                raise ValueError(f"--map: {unit.name!r} -> {missing[0]!r}: no torch module of that name was called")
            chosen = [by_path[p][0] for p in overrides[unit.name]]
            pairs.append(Pair(unit, chosen, "map"))
            used.update(c.index for c in chosen)
    known_names = {u.name for u in units}
    unknown = [name for name in overrides if name not in known_names]
    if unknown:
        raise ValueError(f"--map: {unknown[0]!r} is not a layer of the Keras model")
    order = {id(u): k for k, u in enumerate(units)}
    pairs.sort(key=lambda p: order[id(p.unit)])
    mapped = {id(p.unit) for p in pairs}
    result = LayerMapping(pairs=pairs)
    for u in units:
        if id(u) not in mapped:
            result.keras_unmapped.append((u, _why_unmapped(u)))
    for c in torch_calls:
        if c.index not in used:
            result.torch_unmapped.append((c, "no Keras layer computes this here"))
    return result


def _rematch(pairs: list[Pair], units: Sequence[Unit], calls: Sequence[TorchCall], score: _Scorer,
             used: set[int]) -> list[Pair]:
    """Branches put in another order: Keras's topological order and the port's call order differ where a model
    branches (Xception's residual convs), and the order-preserving alignment then pairs layers of one role but
    different weights. Such pairs are undone, and every unit left is paired with a left call of its role and
    weight sizes (with a trailing activation call for a fused activation), the first in call order."""
    kept: list[Pair] = []
    for p in pairs:
        has_weights = bool(p.unit.head.weights)
        lo, hi = p.calls[0].index, p.calls[-1].index
        if has_weights and score.full(p.unit, [c for c in calls if lo <= c.index <= hi]) < 2.5:
            used.difference_update(c.index for c in p.calls)
        else:
            kept.append(p)
    paired = {id(p.unit) for p in kept}
    position = {c.index: k for k, c in enumerate(calls)}
    for unit in units:
        if id(unit) in paired or unit.role in FUNCTIONAL_ROLES or not unit.head.weights:
            continue
        for c in calls:
            if c.index in used:
                continue
            k = position[c.index]
            spans = [calls[k:k + s] for s in (3, 2, 1) if k + s <= len(calls)]
            span = next((sp for sp in spans if all(x.index not in used for x in sp)
                         and score(unit, k, k + len(sp)) >= 2.5), None)
            if span is not None:
                kept.append(Pair(unit, list(span), "weights"))
                used.update(x.index for x in span)
                paired.add(id(unit))
                break
    return kept


def _why_unmapped(unit: Unit) -> str:
    if unit.role in FUNCTIONAL_ROLES:
        return "computed in the port's forward (no module): judged where its output reaches a mapped layer"
    return "no torch module of this type at this point of the port"
