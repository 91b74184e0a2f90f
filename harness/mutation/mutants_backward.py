"""The backward mutants: ports whose forward is right and whose gradients carry one mistake
(harness.mutation.gradient_port.GradientPort with one step broken)."""
from __future__ import annotations

import numpy as np

from ..layers.layouts import conv_k2t
from ..layers.padding import pad_amounts
from ..tensors.values import generate, round_to
from .gradient_port import GradientPort
from .mutants_geometry import PADDED, replace_geometry
from .mutants_weights import DW

# ---------------------------------------------------------------- backward: the forward right, the gradients wrong


class GradKernelForwardPermutation(GradientPort):
    name = "grad_kernel_forward_permutation"
    bug = ("weight gradient converted back from torch layout with the forward (Keras -> torch) permutation instead "
           "of its inverse: (F, C, kh, kw).permute(3, 2, 0, 1) gives (kw, kh, F, C), kernel height/width and in/out "
           "channels swapped (a wrong shape unless kh == kw and C/groups == F; in 1D the permutation is its own "
           "inverse, and so is the depthwise kernel's transpose in 2D)")
    diagnosis = ("the kernel gradient converted back to Keras layout with the forward (Keras -> torch) permutation "
                 "instead of its inverse: height/width and in/out channels swapped")
    families = ("conv", "separable")   # the conv kernel; the pointwise kernel (its depthwise one is unaffected)
    ranks = (2,)

    def to_keras(self, grads, g, weights, block):
        grads = dict(super().to_keras(grads, g, weights, block))
        perm = conv_k2t(g.kind.rank)
        for name in ("kernel", "pointwise_kernel"):
            if name in grads:
                torch_layout = grads[name].transpose(perm)   # (F, C/groups, *K): what autograd hands back
                grads[name] = np.ascontiguousarray(torch_layout.transpose(perm))   # conv_k2t where conv_t2k is due
        return grads


class GradDepthwiseBiasFolded(GradientPort):
    name = "grad_depthwise_bias_folded"
    bug = ("a torch separable block with a depthwise bias b_d (compensated in the pointwise bias) whose gradients are "
           "mapped back to Keras with the forward fold, as if folding were exact for gradients: dbias := dL/db_p + "
           "W_p^T dL/db_d, and the block's dW_p (its z carries b_d) taken as Keras's")
    diagnosis = ("the depthwise bias's gradient folded into the bias gradient as the forward folds the bias "
                 "(dL/db_p + W_p^T dL/db_d), the block's pointwise-kernel gradient taken as Keras's: folding is "
                 "exact for values, not for gradients")
    families = ("separable",)
    source = "harness/engines/torch_engine.py TorchEngine._gradients (what it must not do)"
    port_variant = ("depthwise_bias",)

    def block(self, g, weights, dtype, variant):
        if variant:
            return super().block(g, weights, dtype, variant)
        # The block's own depthwise bias, drawn as the torch engine draws it (engine option depthwise_bias).
        b_d = round_to(generate("normal", (g.in_channels * g.depth_multiplier,), 0, "depthwise_bias"), dtype)
        return {"depthwise_bias": np.asarray(b_d, dtype=np.float64)}

    def reported_block(self, g, block):
        # The judge's expectation for the block (Family.variant_gradients) is built from the Keras layer's bias
        # gradient: without a Keras bias the block is reported as the Keras layer it claims to be (its dW_p and the
        # bias the fold makes then fail as such).
        return super().reported_block(g, block) if g.use_bias else {}

    def to_keras(self, grads, g, weights, block):
        grads = dict(grads)
        d_bd = grads.pop("depthwise_bias")
        pk = np.asarray(weights["pointwise_kernel"], dtype=np.float64)
        # harness.layers.families.separable.fold_depthwise_bias (b + W_p^T b_d) applied to the gradients. The fold
        # makes a Keras bias even where the layer has none, as torch_to_keras does for the block's weights.
        grads["bias"] = grads["bias"] + d_bd @ pk.reshape(pk.shape[-2:])
        return grads


class GradPadSplitMirrored(GradientPort):
    name = "grad_pad_split_mirrored"
    families = PADDED   # a transposed conv pads no input
    bug = ("the backward pass of a 'same' or 'causal' padded conv pads the other way round (a hand-written backward "
           "that recomputes the pads with the split mirrored: the odd 'same' pixel before instead of after, the "
           "causal padding after); the forward pads right")
    diagnosis = ("the gradients computed with the padding split mirrored (the odd 'same' pixel before instead of "
                 "after, causal padding after): the backward pass pads the other way round from the forward")

    def layer_backward(self, x_cl, kernels, g, dz):
        widths = [pad_amounts(g.padding, n, k, s, d)[::-1]
                  for n, k, s, d in zip(x_cl.shape[1:-1], g.kernel_size, g.strides, g.dilation)]
        xp = np.pad(x_cl, [(0, 0), *widths, (0, 0)])
        valid = replace_geometry(g, padding="valid")   # x padded here, the mirrored way: the VJP itself pads nothing
        family = g.kind.family
        out = family.backward(xp, kernels, valid, dz)
        if family.stages:
            # Only the padded (first) step's VJP pads the other way: the later steps read what the forward
            # computed (saved by autograd), so their kernels' gradients are the right ones.
            right = family.backward(x_cl, kernels, g, dz)
            out.update({name: right[name] for name in family.kernel_names[1:]})
        interior = (slice(None), *(slice(b, b + n) for (b, _), n in zip(widths, x_cl.shape[1:-1])), slice(None))
        out["x"] = out["x"][interior]
        return out


class GradBiasStopped(GradientPort):
    name = "grad_bias_stopped"
    bug = ("a stop-gradient on the bias (detached, or a frozen buffer instead of a parameter): dbias is zero (the "
           "pointwise bias of a separable layer); the forward adds it as it should")
    diagnosis = "the bias gradient zero: the bias detached from the graph (a stop-gradient on it)"

    def to_keras(self, grads, g, weights, block):
        grads = dict(super().to_keras(grads, g, weights, block))
        if "bias" in grads:
            grads["bias"] = np.zeros_like(grads["bias"])
        return grads


class GradDxTimesMultiplier(GradientPort):
    name = "grad_dx_times_multiplier"
    bug = ("dx scaled by the depth multiplier M: each input channel's gradient, already summed over the M filters "
           "that read it, multiplied by M again (a port that feeds each channel to its filters as M copies and "
           "counts the copies twice)")
    diagnosis = "dx scaled by the depth multiplier M (each input channel's gradient counted once more per filter copy)"
    families = DW

    def to_keras(self, grads, g, weights, block):
        grads = dict(super().to_keras(grads, g, weights, block))
        grads["x"] = grads["x"] * g.depth_multiplier
        return grads
