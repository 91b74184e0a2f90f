"""The oracle as an engine: the float64 reference every other engine is judged against; its item checks a case's
golden facts (expect) against it."""
from __future__ import annotations

from typing import Any, cast

import numpy as np

from ..layers.geometry import refuse_impossible
from ..reference import oracle
from ..reference.gradients import reference_gradients
from .base import CANONICAL_LAYOUT, Engine, EngineOutput, Request, SequenceOutput, SequenceRequest


class OracleEngine(Engine):
    name = "oracle"
    reference = True          # judged in float64, exactly; its output is the reference of every other engine
    weight_layout = CANONICAL_LAYOUT   # every engine converts from it
    computes_gradients = True
    computes_sequences = True   # the exact composition: every layer in float64 on the float64 output before it

    def run(self, request: Request) -> EngineOutput:
        g, inputs = request.geometry, request.inputs
        refuse_impossible("oracle", request.layer, g, inputs.x.shape)
        return self._answer(request, oracle.run(request.layer, request.config, inputs.x64, inputs.weights64))

    def run_and_gauge(self, request: Request) -> tuple[EngineOutput, Any]:
        """run()'s answer and the gauge G, computed in one pass (harness.reference.oracle.reference_pair): both whole
        for an output of one chunk, both LazyArrays sharing a chunk cache beyond (the answer's y then stands in for
        an array: its readers index it or read its shape, dtype and size). What judge.runner.reference holds."""
        g, inputs = request.geometry, request.inputs
        refuse_impossible("oracle", request.layer, g, inputs.x.shape)
        y, gauge = oracle.reference_pair(request.layer, request.config, inputs.x64, inputs.weights64)
        return self._answer(request, cast(np.ndarray, y)), gauge

    @staticmethod
    def _answer(request: Request, y: np.ndarray) -> EngineOutput:
        g, inputs = request.geometry, request.inputs
        return EngineOutput(
            y=y, params=g.param_count(), weight_shapes={k: tuple(v.shape) for k, v in inputs.weights64.items()},
            gradients=None if request.grad_output is None else reference_gradients(
                inputs.x64, inputs.weights64, g, request.grad_output.astype("float64")),
        )

    def run_sequence(self, request: SequenceRequest) -> SequenceOutput:
        """Every layer's output of the float64 composition, without rounding between layers."""
        z = request.x.astype("float64") if request.x64 is None else request.x64
        ys = []
        for i, step in enumerate(request.steps):
            w = request.weights64[i] if request.weights64 else {k: v.astype("float64") for k, v in step.weights.items()}
            z = oracle.run(step.layer, step.config, z, w)
            ys.append(z)
        return SequenceOutput(ys=ys, params=sum(step.geometry.param_count() for step in request.steps))
