"""A NumPy port of the Keras layers written the way a PyTorch port is: torch layouts, explicit pads, grouped convs.

Every step a converter has to get right is a method (layout of x, padding per axis, each weight conversion, the
stages, bias, activation), so that a mutant is this port with one step broken the way a real converter broke it.
The arithmetic is float64 on the oracle's building block (oracle.conv); the result is cast to the case dtype,
as a real engine returns it.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .. import oracle
from ..activations import ACTIVATION_TABLE
from ..families import FAMILIES
from ..layers import Geometry, geometry, get_kind
from ..padding import pad_amounts

Pads = list[tuple[int, int]]


def pad_or_crop(x: np.ndarray, pads: Pads) -> np.ndarray:
    """Zero-pad the spatial axes of a channels-first array; a negative amount crops (as F.pad does)."""
    widths = [(0, 0), (0, 0)] + [(max(b, 0), max(a, 0)) for b, a in pads]
    x = np.pad(x, widths) if any(w != (0, 0) for w in widths) else x
    index = [slice(None), slice(None)]
    for b, a in pads:
        index.append(slice(-min(b, 0), x.shape[len(index)] + min(a, 0)))
    return x[tuple(index)]


def torch_conv(x: np.ndarray, weight: np.ndarray, g: Geometry, *, strides: tuple[int, ...],
               dilation: tuple[int, ...], groups: int, pads: Pads) -> np.ndarray:
    """What F.pad + F.convNd compute: x (N, C, *S), weight (O, C/groups, *K) -> (N, O, *S'), float64.

    Runs on the oracle's grouped cross-correlation (channels last, Keras kernel layout), so the port differs from
    the oracle only where a mutant makes it differ. An output too small to exist comes back with a 0-length axis
    (a wrong-shape verdict) instead of crashing.
    """
    rank = weight.ndim - 2
    xp = pad_or_crop(x, pads)
    ks = weight.shape[2:]
    out = [(n - ((k - 1) * d + 1)) // s + 1 for n, k, s, d in zip(xp.shape[2:], ks, strides, dilation)]
    if min(out) <= 0:
        return np.zeros((x.shape[0], weight.shape[0], *(max(o, 0) for o in out)))
    valid = dataclasses.replace(g, kernel_size=tuple(ks), strides=tuple(strides), dilation=tuple(dilation),
                                padding="valid", groups=groups)
    kernel = weight.transpose(*range(2, rank + 2), 1, 0)   # (O, C/g, *K) -> (*K, C/g, O)
    y = oracle.conv(np.moveaxis(xp, 1, -1), kernel, valid)
    return np.moveaxis(y, -1, 1)


def channel_view(v: np.ndarray, rank: int) -> np.ndarray:
    """A per-channel vector shaped to broadcast over (N, C, *S)."""
    return v.reshape((1, -1) + (1,) * rank)


class Port:
    """The correct port (a control: it must pass every case). Mutants subclass it and break one step."""

    name = "numpy_port"
    bug = "none: the port as it should be"
    diagnosis = "nothing wrong"
    families: tuple[str, ...] = tuple(FAMILIES)   # the families (by name) whose layers this mutant can break
    ranks: tuple[int, ...] | None = None       # the ranks whose layers it can break; None: every rank
    dtypes: tuple[str, ...] | None = None      # None: every dtype
    source = ""                                # a bug report that shipped this mistake, where one is known

    # ------------------------------------------------------------------ the plug-in interface
    def __call__(self, layer: str, config: dict[str, Any], x: np.ndarray, weights: dict[str, np.ndarray]
                 ) -> np.ndarray:
        """fn(layer, config, x, weights) -> y in the case dtype (NotImplementedError where the bug cannot occur)."""
        self.check(layer, str(x.dtype))
        w64 = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        return self.compute(layer, config, np.asarray(x, dtype=np.float64), w64, str(x.dtype)).astype(x.dtype)

    def applies(self, layer: str, dtype: str) -> bool:
        kind = get_kind(layer)
        return (kind.family.name in self.families and (self.ranks is None or kind.rank in self.ranks)
                and (self.dtypes is None or dtype in self.dtypes))

    def check(self, layer: str, dtype: str) -> None:
        if not self.applies(layer, dtype):
            raise NotImplementedError(f"mutant {self.name} does not apply to {layer} in {dtype}")

    # ------------------------------------------------------------------ the port
    def compute(self, layer: str, config: dict[str, Any], x: np.ndarray, weights: dict[str, np.ndarray],
                dtype: str) -> np.ndarray:
        """The port's output in float64, in the case's data_format (before the final cast). Mutants override
        stages(), never this, so that diagnosis (which calls stages) sees the same mistake."""
        return self.stages(layer, config, x, weights, dtype)[0]

    def stages(self, layer: str, config: dict[str, Any], x: np.ndarray, weights: dict[str, np.ndarray],
               dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(output, depthwise stage of a separable layer or None), both float64 in the case's data_format."""
        g = self.geometry(layer, config, x.shape)
        xc = self.to_internal(x, g)
        y, z = g.kind.family.port_stages(self, xc, weights, g, dtype)   # the family composes the steps below
        y = self.finish(y, weights.get("bias"), g)
        return self.from_internal(y, g), (None if z is None else self.from_internal(z, g))

    def geometry(self, layer: str, config: dict[str, Any], shape: tuple[int, ...]) -> Geometry:
        return geometry(layer, config, shape)

    # layout of activations: the case's data_format <-> the port's (N, C, *S)
    def to_internal(self, x: np.ndarray, g: Geometry) -> np.ndarray:
        return x if g.channels_first else np.moveaxis(x, -1, 1)

    def from_internal(self, y: np.ndarray, g: Geometry) -> np.ndarray:
        return y if g.channels_first else np.moveaxis(y, 1, -1)

    # padding: (before, after) per spatial axis
    def pad_axis(self, padding: str, n: int, k: int, s: int, d: int) -> tuple[int, int]:
        return pad_amounts(padding, n, k, s, d)

    def pads(self, x: np.ndarray, g: Geometry) -> Pads:
        return [self.pad_axis(g.padding, n, k, s, d)
                for n, k, s, d in zip(x.shape[2:], g.kernel_size, g.strides, g.dilation)]

    # weight conversions, Keras layout -> torch layout
    def spatial(self, kernel: np.ndarray, rank: int) -> np.ndarray:
        """The kernel's spatial axes as the port reads them (a hook for flips and H/W swaps)."""
        return kernel

    def conv_weight(self, kernel: np.ndarray, g: Geometry) -> np.ndarray:
        r = g.kind.rank
        return self.spatial(kernel, r).transpose(r + 1, r, *range(r))          # (*K, C/g, F) -> (F, C/g, *K)

    def depthwise_weight(self, kernel: np.ndarray, g: Geometry) -> np.ndarray:
        r = g.kind.rank
        k = self.spatial(kernel, r)
        c, m = k.shape[r:]
        return k.transpose(r, r + 1, *range(r)).reshape(c * m, 1, *k.shape[:r])   # (*K, C, M) -> (C*M, 1, *K)

    def pointwise_weight(self, kernel: np.ndarray, g: Geometry) -> np.ndarray:
        r = g.kind.rank
        cm, f = kernel.shape[-2:]
        return kernel.reshape(cm, f).T.reshape(f, cm, *(1,) * r)               # (1.., C*M, F) -> (F, C*M, 1..)

    def bias_vector(self, bias: np.ndarray, g: Geometry) -> np.ndarray:
        return bias

    # stages
    def conv_stage(self, x: np.ndarray, w: np.ndarray, g: Geometry) -> np.ndarray:
        return torch_conv(x, w, g, strides=g.strides, dilation=g.dilation, groups=g.groups, pads=self.pads(x, g))

    def depthwise_stage(self, x: np.ndarray, w: np.ndarray, g: Geometry) -> np.ndarray:
        return torch_conv(x, w, g, strides=g.strides, dilation=g.dilation, groups=x.shape[1], pads=self.pads(x, g))

    def between_stages(self, z: np.ndarray, g: Geometry, bias: np.ndarray | None, dtype: str) -> np.ndarray:
        """Between the depthwise and pointwise steps of a separable layer: nothing, in Keras."""
        return z

    def pointwise_stage(self, z: np.ndarray, w: np.ndarray, g: Geometry) -> np.ndarray:
        r = g.kind.rank
        return torch_conv(z, w, g, strides=(1,) * r, dilation=(1,) * r, groups=1, pads=[(0, 0)] * r)

    def finish(self, y: np.ndarray, bias: np.ndarray | None, g: Geometry) -> np.ndarray:
        if bias is not None:
            y = y + channel_view(self.bias_vector(bias, g), g.kind.rank)
        return self.activate(y, g.activation)

    def activate(self, y: np.ndarray, activation: str) -> np.ndarray:
        return ACTIVATION_TABLE[activation].reference(y)


def reference_port(layer: str, config: dict[str, Any], x: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    """The oracle as a plug-in, cast to the case dtype: the second control of the mutation score."""
    y = oracle.run(layer, config, np.asarray(x, dtype=np.float64),
                   {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()})
    return y.astype(x.dtype)


numpy_port = Port()
