"""A NumPy port of the Keras layers written the way a PyTorch port is: torch layouts, explicit pads, grouped convs.

Every step a converter has to get right is a method (layout of x, padding per axis, each weight conversion, the
stages, bias, activation; a family's own steps are its Family.port_steps), so that a mutant is this port with one
step broken the way a real converter broke it. The arithmetic is float64 on the oracle's building block
(conv_ops.torch_conv on conv_ops.conv); the result is cast to the case dtype,
as a real engine returns it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..layers.activations import ACTIVATION_TABLE
from ..layers.conv_ops import Pads, pad_or_crop, torch_conv
from ..layers.families import FAMILIES
from ..layers.families.base import PortSteps
from ..layers.geometry import Geometry, geometry, get_kind
from ..layers.padding import pad_amounts
from ..reference import oracle

__all__ = ["Pads", "Port", "channel_view", "numpy_port", "pad_or_crop", "reference_port", "torch_conv"]

# Each family's steps (Family.port_steps), the most derived only (a separable port's steps may extend the depthwise
# ones): the port's bases, so that a mutant overrides a step by its name and reaches the family's with super().
STEPS: tuple[type, ...] = tuple(dict.fromkeys(f.port_steps for f in FAMILIES.values() if f.port_steps))
STEPS = tuple(s for s in STEPS if not any(o is not s and issubclass(o, s) for o in STEPS))
if TYPE_CHECKING:
    FamilySteps = PortSteps   # what a type checker can see of a class made from a registry
else:
    FamilySteps = type("FamilySteps", STEPS or (PortSteps,), {"__module__": __name__})


def channel_view(v: np.ndarray, rank: int) -> np.ndarray:
    """A per-channel vector shaped to broadcast over (N, C, *S)."""
    return v.reshape((1, -1) + (1,) * rank)


class Port(FamilySteps):
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
        y, z = g.kind.family.port_stages(self, xc, weights, g, dtype)   # the family composes its steps
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

    # weight conversions, Keras layout -> torch layout (each family's own are its port_steps)
    def spatial(self, kernel: np.ndarray, rank: int) -> np.ndarray:
        """The kernel's spatial axes as the port reads them (a hook for flips and H/W swaps)."""
        return kernel

    def bias_vector(self, bias: np.ndarray, g: Geometry) -> np.ndarray:
        return bias

    # after the family's stages
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
