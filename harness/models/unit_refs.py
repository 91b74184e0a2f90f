"""A unit's float64 reference and bound on its Keras inputs, and the error/bound ratio every judgement reports."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..layers.activations import ACTIVATION_TABLE
from ..reference.agreement import SAFETY, gamma
from ..tensors.values import unit_roundoff
from . import layer_refs
from .mapping import Unit


def reference_of(unit: Unit) -> layer_refs.LayerRef:
    head = unit.head
    if unit.role == "act" and len(unit.nodes) > 1:   # an idiom fused into one activation (mapping._fuse_idioms)
        return layer_refs.reference("Activation", {"activation": unit.activation}, {}, 1)
    weights64 = {k: v.astype(np.float64) for k, v in head.weights.items()}
    return layer_refs.reference(head.kind, head.config, weights64, len(head.inputs))


def ratio(y: np.ndarray, ref: np.ndarray, bound: np.ndarray) -> float:
    err = np.abs(y.astype(np.float64) - ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(err == 0, 0.0, err / bound)
    r = np.where(np.isnan(r), np.inf, r)
    return float(np.max(r, initial=0.0))


def keras_side(unit: Unit, dtype: str) -> tuple[layer_refs.LayerRef | None, tuple[np.ndarray, np.ndarray] | None,
                                                 float | None, str]:
    """The unit's reference on Keras's captured input, and Keras's own output judged against it."""
    grow = unit.extra_roundings
    try:
        ref = reference_of(unit)
        if grow:
            ref = replace(ref, k=ref.k + grow)
    except layer_refs.NoReference as exc:
        return None, None, None, str(exc)
    xs = [op.astype(np.float64) for op in unit.head.operands]
    y, bound = layer_refs.bound(ref, xs, dtype)
    if "bias" in unit.scales:   # a folded bias's rounding, relative to what it is computed from (fold_batch_norm)
        slope = ACTIVATION_TABLE[unit.activation].slope if unit.activation in ACTIVATION_TABLE else math.inf
        bound = bound + slope * SAFETY * gamma(unit.extra_roundings, unit_roundoff(dtype)) * unit.scales["bias"]
    return ref, (y, bound), ratio(unit.last.output, y, bound), ""
