"""The oracle as an engine item: it checks a case's golden facts (expect) against the float64 reference."""
from __future__ import annotations

from typing import Any

from .. import oracle
from ..layers import geometry, refuse_impossible
from .base import EngineOutput, Inputs


class OracleEngine:
    name = "oracle"

    def run(self, layer: str, config: dict[str, Any], inputs: Inputs, options: dict[str, Any]) -> EngineOutput:
        g = geometry(layer, config, inputs.x.shape)
        refuse_impossible("oracle", layer, g, inputs.x.shape)
        return EngineOutput(
            y=oracle.run(layer, config, inputs.x64, inputs.weights64),
            params=g.param_count(),
            weight_shapes={k: tuple(v.shape) for k, v in inputs.weights64.items()},
        )
