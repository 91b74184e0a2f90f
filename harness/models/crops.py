"""A transposed conv's crop: what Keras cuts off the full scatter, what the port's nn.ConvTransposeNd cuts (its
padding and output_padding), and what the port cuts in its forward after the module, read from its own tensors.

The full scatter of n input positions is (n - 1) * s + d * (k - 1) + 1 long. Keras keeps L positions of it starting
at `before` (harness.layers.families.transpose.crops: (before, after) per axis, a negative `after` appending zeros);
nn.ConvTransposeNd(padding=p, output_padding=op) keeps positions p .. full - (p - op), the crop (p, p - op); a crop
the port does after the module adds to it."""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..layers.families import LAYERS
from ..layers.geometry import geometry
from .capture import TorchCall
from .mapping import Pair, Unit

Crop = tuple[tuple[int, int], ...]


def keras_crops(unit: Unit) -> Crop:
    """(before, after) per spatial axis that the Keras Conv{N}DTranspose crops off the full scatter."""
    node = unit.head
    kind = LAYERS[node.kind]
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in node.config.items() if k in kind.config_keys}
    config.update(activation=None, padding=str(config.get("padding", "valid")).lower())
    x = node.inputs[0]
    return tuple(geometry(node.kind, config, tuple(x.shape)).pad_widths(tuple(x.shape[1:-1])))


def module_crops(module: Any, output_padding: Sequence[int] | None = None) -> Crop:
    """What an nn.ConvTransposeNd crops itself: (padding, padding - output_padding) per axis (``output_padding``:
    what it was called with, where not its own)."""
    ops = module.output_padding if output_padding is None else output_padding
    return tuple((int(p), int(p) - int(op)) for p, op in zip(module.padding, ops))


def port_crops(module: Any, after: Crop | None, output_padding: Sequence[int] | None = None) -> Crop:
    """The port's whole crop: its module's, plus what it crops off the module's output in its forward."""
    own = module_crops(module, output_padding)
    if not after:
        return own
    return tuple((b + b2, a + a2) for (b, a), (b2, a2) in zip(own, after))


def native(crop: Crop, strides: Sequence[int], dilation: Sequence[int]) -> bool:
    """Whether nn.ConvTransposeNd's own padding and output_padding express a crop (output_padding must stay below
    max(stride, dilation)), as harness.layers.families.transpose.torch_mixin decides."""
    return all(0 <= b - a < max(s, d) for (b, a), s, d in zip(crop, strides, dilation))


def apply(a: np.ndarray, crop: Crop | None) -> np.ndarray:
    """A channels-first tensor cropped (before, after) on each spatial axis; a negative amount appends zeros."""
    if not crop:
        return a
    widths = [(0, 0), (0, 0), *((max(-b, 0), max(-e, 0)) for b, e in crop)]
    a = np.pad(a, widths) if any(w != (0, 0) for w in widths) else a
    index = (slice(None), slice(None), *(slice(max(b, 0), a.shape[2 + i] - max(e, 0)) for i, (b, e) in enumerate(crop)))
    return a[index]


def output(pair: Pair) -> np.ndarray | None:
    """The port's output of a pair as its forward goes on with it: the last call's output, cropped where the port
    crops a transposed conv's output after the module (and the last call, an activation, did not read the crop)."""
    out, first = pair.calls[-1].output, pair.calls[0].output
    if out is None or pair.crop is None or first is None or out.shape[2:] != first.shape[2:]:
        return out
    return apply(out, pair.crop)


def infer_crop(pair: Pair, calls: Sequence[TorchCall], port_out: np.ndarray) -> Crop | None:
    """Where the port crops its transposed conv's output in its forward: the window of the module's output (its own
    run) of the Keras output's size that a later tensor of the port holds exactly (a later module's input or output,
    a channel block of it where the port concatenates, or the port's output): a slice or F.pad copies values
    exactly. None where the module gives the Keras shape already, or no later tensor holds such a window."""
    body = next((c for c in reversed(pair.calls) if c.kind.startswith("ConvTranspose")), None)
    y_keras = pair.unit.last.output
    if body is None or body.output is None or body.output.ndim != y_keras.ndim:
        return None
    full = body.output
    want = tuple(y_keras.shape[1:-1])
    have = tuple(full.shape[2:])
    filters = full.shape[1]
    if have == want or full.shape[0] != y_keras.shape[0] or filters != y_keras.shape[-1] \
            or any(h < w for h, w in zip(have, want)):
        return None
    windows = list(np.ndindex(*(h - w + 1 for h, w in zip(have, want))))
    later = [t for c in calls if c.index > body.index for t in (*c.inputs, c.output) if t is not None]
    for t in [*later, port_out]:
        if t.ndim != full.ndim or t.shape[0] != full.shape[0] or tuple(t.shape[2:]) != want or t.shape[1] < filters:
            continue
        for c0 in range(t.shape[1] - filters + 1):
            block = t[:, c0:c0 + filters]
            for offsets in windows:
                window = full[(slice(None), slice(None), *(slice(o, o + w) for o, w in zip(offsets, want)))]
                if window.dtype == block.dtype and np.array_equal(window, block):
                    return tuple((o, h - w - o) for o, h, w in zip(offsets, have, want))
    return None


def called_output_padding(call: TorchCall) -> tuple[int, ...] | None:
    """The output_padding a transposed conv's call used where its output is not the length the module's own
    arguments give (an output_size argument: torch then chooses output_padding); None where it is."""
    m, y = call.module, call.output
    x = call.inputs[0] if call.inputs else None
    if x is None or y is None or x.ndim != y.ndim or x.ndim != len(m.kernel_size) + 2:
        return None
    natural = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, d, k, op in
                    zip(x.shape[2:], m.stride, m.padding, m.dilation, m.kernel_size, m.output_padding))
    if tuple(y.shape[2:]) == natural:
        return None
    return tuple(int(op + g - n) for op, g, n in zip(m.output_padding, y.shape[2:], natural))


def with_output_padding(module: Any, output_padding: Sequence[int] | None) -> Any:
    """A copy of a transposed conv with the output_padding its call used (the module itself where none)."""
    if output_padding is None:
        return module
    module = copy.deepcopy(module)
    module.output_padding = tuple(output_padding)
    return module


def infer_crops(pairs: Sequence[Pair], calls: Sequence[TorchCall], port_out: np.ndarray) -> None:
    """Set each transposed conv pair's ``crop`` from the port's own tensors (infer_crop) and its call's
    ``output_padding`` where an output_size argument chose it (called_output_padding)."""
    for pair in pairs:
        if pair.unit.role == "conv_transpose":
            pair.crop = infer_crop(pair, calls, port_out)
            pair.output_padding = called_output_padding(pair.calls[0])


def spelled(crop: Crop) -> str:
    """A crop as the torch statement that does it on y (channels first): a slice, or F.pad where it appends."""
    if all(a >= 0 for _, a in crop):
        return "y = y[:, :, " + ", ".join(f"{b or ''}:{-a if a else ''}" for b, a in crop) + "]"
    return "y = F.pad(y, (" + ", ".join(str(-v) for b, a in reversed(crop) for v in (b, a)) + "))"
