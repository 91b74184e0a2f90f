"""The oracle's value pass and gauge pass in one: each family's forward_pair (the depthwise families build each patch
matrix once for x and |x|; the others run their forward twice), its bias added."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..layers.geometry import Geometry


def layer(x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry, value: bool, magnitudes: bool
          ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The layer before its activation, its bias added, on channels-last x and w (``value``) and on |x|, |w| and
    |b| (``magnitudes``: the gauge G); what was not asked for is None. ``w`` holds the signed float64 weights."""
    assert value or magnitudes, "nothing asked for"
    family = g.kind.family
    abs_w = {k: np.abs(v) for k, v in w.items()} if magnitudes else w
    if value:
        y, gauge = family.forward_pair(x, w, g, magnitudes)
    else:
        y, gauge = None, family.forward_pair(np.abs(x), abs_w, g, False)[0]
    if g.use_bias:
        inputs = [x, *w.values()]
        y = None if y is None else _plus(y, w["bias"], inputs)
        gauge = None if gauge is None else _plus(gauge, abs_w["bias"], inputs)
    return y, gauge


def _plus(a: np.ndarray, bias: np.ndarray, inputs: list[np.ndarray]) -> np.ndarray:
    """a + bias: in place where ``a`` is this pass's own array (the same sums, no copy of a big output), out of
    place where it may share memory with an input (a family's forward may return a view of one)."""
    if a.flags.writeable and not any(np.may_share_memory(a, v) for v in inputs):
        a += bias
        return a
    return a + bias
