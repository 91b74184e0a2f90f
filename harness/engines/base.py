"""What an engine is: a callable from (case, inputs) to an output, plus what it reports about itself."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np


@dataclass
class Inputs:
    """The values every engine consumes: generated once in float64, rounded once to the case dtype."""

    x: np.ndarray                       # in the case dtype and data_format
    weights: dict[str, np.ndarray]      # Keras names and layout, case dtype
    x64: np.ndarray                     # the same values in float64 (exactly)
    weights64: dict[str, np.ndarray]


@dataclass
class EngineOutput:
    """One engine's answer for one case."""

    y: np.ndarray                                   # in the case data_format and (expected) dtype
    params: int | None = None                       # parameter count as that framework counts it
    weight_shapes: dict[str, tuple[int, ...]] | None = None   # in that engine's own layout
    notes: list[str] = field(default_factory=list)  # e.g. "NCHW run as NHWC: TF CPU kernels refuse NCHW"
    # Added to the gauge G where an engine computes on magnitudes the Keras weights do not show
    # (a torch separable block with a depthwise bias carries |W_p||b_d| and a different pointwise bias).
    gauge_extra: np.ndarray | None = None
    extra_roundings: int = 0                        # roundings beyond the Keras layer's path (added to K)
    intermediate: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. the depthwise stage of separable
    # Facts of this run that decide the framework's behaviour, in the condition language's names
    # (harness/conditions.py FACTS), e.g. {"onednn": True, "keras_layer_format": "channels_first"}.
    facts: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    name: str

    def run(self, layer: str, config: dict[str, Any], inputs: Inputs, options: dict[str, Any]) -> EngineOutput:
        ...


PluginFn = Callable[[str, dict, np.ndarray, dict], np.ndarray]


class FunctionEngine:
    """A user's plug-in: ``fn(layer, config, x, weights) -> y`` (raise NotImplementedError to skip)."""

    def __init__(self, name: str, fn: PluginFn):
        self.name, self.fn = name, fn

    def run(self, layer: str, config: dict[str, Any], inputs: Inputs, options: dict[str, Any]) -> EngineOutput:
        # Copies, so a plug-in that writes into its arguments cannot corrupt other engines' inputs.
        weights = {k: v.copy() for k, v in inputs.weights.items()}
        y = self.fn(layer, dict(config), inputs.x.copy(), weights)
        return EngineOutput(y=np.asarray(y))
