"""The mutant catalogue: deliberately broken ports, each one bug that a real converter or hand-written port shipped.

Each mutant is the NumPy port (port.Port) with one step broken, usable as a plug-in engine
``harness.mutation.mutants:NAME`` (fn(layer, config, x, weights) -> y in the case dtype). A mutant raises
NotImplementedError for layer kinds or dtypes where its bug cannot exist (a skip, not a kill). The same
catalogue is the dictionary of harness.diagnosis.diagnose.

The backward mutants (BACKWARD_MUTANTS) are ports whose forward is right and whose gradients carry one
mistake (gradient_port.GradientPort with one step broken): they break only the backward items of the
cases that ask for the backward check, and harness.diagnosis.gradients names them in a backward failure.

The mutants are defined by what they break (mutants_geometry, mutants_weights, mutants_steps, mutants_backward);
this module is their catalogue and the plug-in module that names them.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import engines
from ..engines.base import SequenceFn
from .gradient_port import GradientPort, gradient_port
from .mutants_backward import (
    GradBiasStopped,
    GradDepthwiseBiasFolded,
    GradDxTimesMultiplier,
    GradKernelForwardPermutation,
    GradPadSplitMirrored,
)
from .mutants_geometry import (
    BatchFirstOnly,
    CausalAsSame,
    CausalNoDilation,
    CausalRight,
    DilationIgnored,
    PadsHWSwapped,
    SameAsValid,
    SameExtraBefore,
    SameNoClamp,
    SameOutputFloor,
    SamePadFromK,
    SameSymmetric,
    StridesFirstAxisOnly,
)
from .mutants_steps import (
    TF32,
    ActivationBeforeBias,
    ActivationDropped,
    BiasAddFormatGuessed,
    BiasDropped,
    Float32Internal,
    Relu6AsRelu,
)
from .mutants_steps import round_mantissa as round_mantissa  # re-exported: callers round as TF32 does
from .mutants_transpose import (
    GradTransposeCropMirrored,
    TransposeInOutSwapped,
    TransposeOutputPaddingBefore,
    TransposeSameCropMirrored,
    TransposeStridesDilationSwapped,
    TransposeTorchRecipe,
)
from .mutants_weights import (
    ConvKernelReshaped,
    DepthwiseAsFullConv,
    DepthwiseBiasDropped,
    DepthwiseBiasMMajor,
    DepthwiseReshape,
    DepthwiseRowsMMajor,
    FlippedKernel,
    GroupsInterleaved,
    KernelHWSwapped,
    LayoutPermutationMissing,
    MultiplierChannelsMMajor,
    PointwiseNotTransposed,
    SeparableActivationAfterDepthwise,
    SeparableBiasAfterDepthwise,
    SeparableStrideTwice,
)
from .port import Port, numpy_port, reference_port

CLASSES: tuple[type[Port], ...] = (
    SameSymmetric, SameExtraBefore, SameNoClamp, SamePadFromK, SameOutputFloor, SameAsValid, PadsHWSwapped,
    CausalRight, CausalNoDilation, CausalAsSame, DilationIgnored, StridesFirstAxisOnly, BatchFirstOnly,
    FlippedKernel, KernelHWSwapped, ConvKernelReshaped, DepthwiseReshape, DepthwiseRowsMMajor,
    MultiplierChannelsMMajor, DepthwiseBiasMMajor, DepthwiseAsFullConv, PointwiseNotTransposed, GroupsInterleaved,
    LayoutPermutationMissing, SeparableBiasAfterDepthwise, DepthwiseBiasDropped, SeparableActivationAfterDepthwise,
    SeparableStrideTwice, BiasDropped, BiasAddFormatGuessed, ActivationDropped, ActivationBeforeBias, Relu6AsRelu,
    TF32, Float32Internal, TransposeSameCropMirrored, TransposeOutputPaddingBefore, TransposeTorchRecipe,
    TransposeInOutSwapped, TransposeStridesDilationSwapped,
)
MUTANTS: dict[str, Port] = {cls.name: cls() for cls in CLASSES}
# The backward mutants: run on the backward items of the cases with `check: [..., backward]`, killed there.
BACKWARD_CLASSES: tuple[type[GradientPort], ...] = (
    GradKernelForwardPermutation, GradDepthwiseBiasFolded, GradPadSplitMirrored, GradBiasStopped,
    GradDxTimesMultiplier, GradTransposeCropMirrored,
)
BACKWARD_MUTANTS: dict[str, GradientPort] = {cls.name: cls() for cls in BACKWARD_CLASSES}
CATALOGUE: dict[str, Port] = {**MUTANTS, **BACKWARD_MUTANTS}   # every mutant by name, forward and backward
# Controls: correct ports that must pass every case (the NumPy port itself and the oracle cast to the dtype);
# gradient_port, the correct port with gradients, is the backward mutants' control (run on backward items).
CONTROLS = {"numpy_port": numpy_port, "reference_port": reference_port, "gradient_port": gradient_port}
BACKWARD_CONTROL = "gradient_port"


def stack_function(port: Port | Any, at: int | None = None) -> SequenceFn:
    """A sequence function (Engine.run_sequence's, a plug-in's `stack`) computing each layer of a stack in its dtype
    with the correct NumPy port, and layer ``at`` (every layer where None) with ``port`` where its bug can occur;
    NotImplementedError (a skip) where it can occur in none."""
    def stack(layers: list[tuple[str, dict, dict[str, np.ndarray]]], x: np.ndarray) -> list[np.ndarray]:
        outs, applied = [], False
        for i, (layer, config, weights) in enumerate(layers):
            mine = (at is None or at == i) and (not isinstance(port, Port) or port.applies(layer, str(x.dtype)))
            applied = applied or mine
            x = (port if mine else numpy_port)(layer, config, x, weights)
            outs.append(x)
        if not applied:
            name = getattr(port, "name", getattr(port, "__name__", "port"))
            raise NotImplementedError(f"mutant {name} does not apply to "
                                      + ("any layer of this stack" if at is None else f"layers[{at}]"))
        return outs
    return stack


# Each mutant is a module attribute, so `--engine harness.mutation.mutants:flipped_kernel` names it; it and the
# forward controls compute stacks too, through their `stack` attribute (harness.engines.base.FunctionEngine).
for _port in (*MUTANTS.values(), numpy_port, reference_port):
    _port.stack = stack_function(_port)  # type: ignore[attr-defined]  # a plug-in's callable carries its stack function
globals().update(MUTANTS)
globals().update(BACKWARD_MUTANTS)
globals().update(CONTROLS)


def engine_spec(name: str) -> str:
    """The plug-in spec of a mutant or control: NAME=harness.mutation.mutants:NAME."""
    return f"{name}={__name__}:{name}"


def register(names: list[str] | None = None) -> list[str]:
    """Register mutants (default: all) as plug-in engines; returns their engine names."""
    return [engines.register_plugin(engine_spec(n)) for n in (names or list(MUTANTS))]
