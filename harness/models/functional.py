"""Layers the port computes in its forward (no module): judged on the port's own tensors."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..reference.agreement import format_ratio
from . import crops, layer_refs, streams
from .capture import KerasNode
from .mapping import LayerMapping, Pair
from .unit_refs import ratio, reference_of


def port_value(keras_value: np.ndarray, torch_value: np.ndarray | None, torch_first: bool) -> np.ndarray | None:
    """The port's tensor in the Keras tensor's layout and shape, or None where no layout relates them."""
    if torch_value is None:
        return None
    layout = streams.match(keras_value, torch_value, torch_first)
    if layout is None:
        return None
    return np.asarray(layout.to_keras(torch_value)).reshape(keras_value.shape)


def judge_functional(mapping: LayerMapping, nodes: Sequence[KerasNode], port_out: np.ndarray, torch_first: bool,
                      dtype: str, by_unit: dict[int, Any], order: dict[int, int]) -> None:
    """A Keras layer the port computes in its forward (x + y, x * s, a reshape, a rescaling), judged on the port's
    own tensors: its inputs as the port's mapped modules output them, its output as the port's next mapped module
    reads it (or as the port returns it), against the layer's reference on those inputs and its bound. A layer the
    port leaves out (a rescaling of its input, a final softmax) fails here."""
    values: dict[int, np.ndarray] = {}   # Keras node index -> the port's tensor there, Keras layout
    readers: dict[int, tuple[Pair, int]] = {}
    for pair in mapping.pairs:
        got = port_value(pair.unit.last.output, crops.output(pair), torch_first)
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
            out = port_value(last.output, pair.calls[0].inputs[0], torch_first)
            where = f"as {pair.calls[0].path or '<root>'} reads it"
        elif last.index == final:
            out, where = port_value(last.output, port_out, torch_first), "as the port returns it"
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
                ref = reference_of(unit)
            except layer_refs.NoReference:
                continue
            y, bound = layer_refs.bound(ref, ins, dtype)
            if y.shape != out.shape:
                continue
            r = ratio(out, y, bound)
            values[last.index] = out
            d.isolated = r
            if r <= 1.0:
                d.verdict = "pass"
                d.note = f"computed in the port's forward: judged on the port's own tensors ({where})"
            else:
                same_as_input = len(ins) == 1 and ins[0].shape == out.shape and np.allclose(ins[0], out, rtol=1e-6)
                d.verdict = "fail"
                d.cause = (f"functional: the port's forward does not compute {head.kind} {unit.name!r}: its output "
                           f"{where} is its input unchanged" if same_as_input else
                           f"functional: the port's forward computes {head.kind} {unit.name!r} differently: its output "
                           f"{where} is off by {format_ratio(r)} x the bound, on the port's own inputs")
