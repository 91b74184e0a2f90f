"""The NumPy port with a backward pass: the base of the backward mutants (harness.mutation.mutants, "backward").

A backward mutant's forward is the correct port's (detection.port.Port): its forward items pass, and only its
gradients can reveal it. Its gradients are computed the way an autograd port gets them, step by step, so that a
mutant overrides the one step a real port got wrong:

    dz = dy * f'(pre)                       output_gradient   (the forward's own pre-activation, float64)
    dx, dkernels = the layer's VJP          layer_backward    (harness/layers/conv_grads.py through the family)
    dbias = sum of dz                        (always: a torch block has a pointwise bias even where Keras has none)
    the block's own tensors                 block             (the torch separable block with a depthwise bias)
    back to Keras names and layouts         to_keras          (where converters put the mistakes)

Everything is float64; the plug-in call casts to the case dtype, as an engine returns it. With ``magnitudes`` the
same steps run on |x|, |w|, |dy|, |f'| (|b_d|): the gauge of the mutant's own gradients, which diagnosis uses as
the scale of an engine's rounding errors when it judges whether the engine made this mistake.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..engines.base import EngineOutput
from ..layers.activations import ACTIVATION_TABLE
from ..layers.conv_ops import from_channels_last, to_channels_last
from ..layers.geometry import Geometry
from ..reference.oracle import pre_activation
from .port import Port

Grads = dict[str, np.ndarray]


class GradientPort(Port):
    """The correct port with gradients (the control of the backward mutants: it must pass every backward item)."""

    name = "gradient_port"
    bug = "none: the port and its gradients as they should be"
    diagnosis = "nothing wrong"
    # The port variant this port is (harness.judge.gradients.VARIANT_TENSORS): diagnosis considers it only for an engine
    # that reports that variant's tensors (a torch block with a depthwise bias reports its b_d).
    port_variant: tuple[str, ...] = ()

    # ------------------------------------------------------------------ the plug-in interface
    def __call__(self, layer: str, config: dict[str, Any], x: np.ndarray,  # type: ignore[override]  # with
                 weights: dict[str, np.ndarray],   # grad_output it answers an EngineOutput, as a plug-in may
                 grad_output: np.ndarray | None = None) -> np.ndarray | EngineOutput:
        """fn(layer, config, x, weights[, grad_output]) -> y, or with grad_output an EngineOutput whose gradients
        are in the case dtype (x's data_format, Keras names and layouts), as an engine's."""
        y = super().__call__(layer, config, x, weights)   # the correct forward (raises where the bug cannot be)
        if grad_output is None:
            return y
        g = self.geometry(layer, config, x.shape)
        dtype = str(x.dtype)
        w64 = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        block = self.block(g, w64, dtype, None)
        grads = self.gradients(g, np.asarray(x, dtype=np.float64), w64, np.asarray(grad_output, dtype=np.float64),
                               dtype, variant=block)
        return EngineOutput(y=y, gradients={k: np.ascontiguousarray(v.astype(x.dtype)) for k, v in grads.items()},
                            intermediate=self.reported_block(g, block))

    # ------------------------------------------------------------------ the gradients
    def gradients(self, g: Geometry, x: np.ndarray, weights: Mapping[str, np.ndarray], dy: np.ndarray, dtype: str,
                  *, variant: Mapping[str, np.ndarray] | None = None, magnitudes: bool = False,
                  dz: np.ndarray | None = None) -> Grads:
        """This port's gradients in float64: {"x" in x's data_format, each kernel and "bias" in Keras layout, and
        what its conversion adds}.

        ``x`` and ``dy`` are in the case's data_format; ``weights`` the Keras weights. ``variant``: the port
        variant's tensors an engine reported (EngineOutput.intermediate, e.g. a torch block's "depthwise_bias"),
        which this port then has too. ``magnitudes``: the same steps on magnitudes (the gauge). ``dz``: the
        gradient before the activation given directly (channels last; for the activation's allowance), instead
        of dy * f'(pre).
        """
        family = g.kind.family
        x_cl = to_channels_last(np.asarray(x, dtype=np.float64), g.channels_first)
        w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        if dz is None:
            dz = self.output_gradient(x_cl, w, g, dy, magnitudes)
        if magnitudes:
            x_cl, w = np.abs(x_cl), {k: np.abs(v) for k, v in w.items()}
        raw = self.layer_backward(x_cl, {k: w[k] for k in family.kernel_names}, g, dz)
        raw["x"] = from_channels_last(raw["x"], g.channels_first)
        raw["bias"] = dz.reshape(-1, dz.shape[-1]).sum(axis=0)
        block = self.block(g, w, dtype, variant)
        if magnitudes:
            block = {k: np.abs(v) for k, v in block.items()}
        if block:
            raw = family.variant_gradients(block, w, raw)
        return self.to_keras(raw, g, w, block)

    def output_gradient(self, x_cl: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry, dy: np.ndarray,
                        magnitudes: bool) -> np.ndarray:
        """dz = dy * f'(pre), channels last, the derivative at the forward's pre-activation (bias included)."""
        dy_cl = to_channels_last(np.asarray(dy, dtype=np.float64), g.channels_first)
        derivative = ACTIVATION_TABLE[g.activation].derivative(pre_activation(x_cl, dict(w), g))
        return np.abs(dy_cl) * np.abs(derivative) if magnitudes else dy_cl * derivative

    def layer_backward(self, x_cl: np.ndarray, kernels: Mapping[str, np.ndarray], g: Geometry,
                       dz: np.ndarray) -> Grads:
        """The layer's VJP before bias: {"x" channels last, each kernel} (the family's, harness.layers.conv_grads)."""
        return g.kind.family.backward(x_cl, kernels, g, dz)

    def block(self, g: Geometry, weights: Mapping[str, np.ndarray], dtype: str,
              variant: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        """The tensors of the port variant this port is (none: the Keras layer itself; a separable block with a
        depthwise bias: {"depthwise_bias": b_d}). An engine's reported variant is taken as it is."""
        return {k: np.asarray(v, dtype=np.float64) for k, v in (variant or {}).items()}

    def reported_block(self, g: Geometry, block: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The variant tensors the plug-in reports (EngineOutput.intermediate), as the torch engine reports its
        block's b_d: the judge then expects the block's gradients
        (harness.judge.gradients.BackwardReference.expected)."""
        return {k: np.asarray(v, dtype=np.float64) for k, v in block.items()}

    def to_keras(self, grads: Grads, g: Geometry, weights: Mapping[str, np.ndarray],
                 block: Mapping[str, np.ndarray]) -> Grads:
        """The gradients as the engine reports them: Keras names and layouts (the layouts are Keras's already;
        a mutant converts them the wrong way). The bias gradient only where the Keras layer has a bias."""
        if not g.use_bias:
            grads = {k: v for k, v in grads.items() if k != "bias"}
        return grads


gradient_port = GradientPort()
