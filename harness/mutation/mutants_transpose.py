"""Forward mutants of a transposed conv (Conv1DTranspose ... Conv3DTranspose): the crop off the full scatter taken
wrong, in and out channels swapped, strides and dilation swapped. A kernel not flipped where a port computes the
transposed conv as a conv of the zero-stuffed input is the flipped_kernel mutant (mutants_weights) on this family."""
from __future__ import annotations

import numpy as np

from ..layers.families.transpose import crops, gather, kernel_gradient
from ..layers.padding import effective_kernel
from .gradient_port import GradientPort
from .mutants_geometry import replace_geometry
from .port import Port

TRANSPOSED = ("conv_transpose",)


class TransposeSameCropMirrored(Port):
    name = "transpose_same_crop_mirrored"
    bug = ("'same' cropped on the wrong side: the odd position cut off the start of the scatter instead of its end "
           "(torch's padding=1, output_padding=1 for a 3-tap kernel at stride 2)")
    diagnosis = "the 'same' crop mirrored: the odd position cut off the start instead of the end"
    families = TRANSPOSED

    def transpose_crops(self, x, g):
        cut = super().transpose_crops(x, g)
        return [(a, b) if g.padding == "same" and a >= 0 else (b, a) for b, a in cut]


class TransposeOutputPaddingBefore(Port):
    name = "transpose_output_padding_before"
    bug = "output_padding added at the start of the output instead of its end"
    diagnosis = "output_padding put at the start of the output instead of the end"
    families = TRANSPOSED

    def transpose_crops(self, x, g):
        cut = super().transpose_crops(x, g)
        paddings = g.arg("output_padding") or (0,) * g.kind.rank
        return [(b - op, a + op) for (b, a), op in zip(cut, paddings)]


class TransposeTorchRecipe(Port):
    name = "transpose_torch_same_recipe"
    bug = ("Keras 'same' ported as torch's padding=(k-1)//2, output_padding=stride-1 (right for an odd kernel and "
           "stride 2 only up to the crop's side, wrong by a position for an even kernel)")
    diagnosis = "'same' taken as torch's padding=(k-1)//2, output_padding=stride-1"
    families = TRANSPOSED

    def transpose_crops(self, x, g):
        cut = super().transpose_crops(x, g)
        if g.padding != "same" or g.arg("output_padding") is not None:
            return cut
        out = []
        for k, s, d in zip(g.kernel_size, g.strides, g.dilation):
            p = (effective_kernel(k, d) - 1) // 2
            out.append((p, p - (s - 1)))
        return out


class TransposeInOutSwapped(Port):
    name = "transpose_in_out_swapped"
    bug = ("the Keras kernel (*k, filters, in) permuted as a conv's (*k, in, filters) would be: torch gets "
           "(filters, in, *k) data in its (in, filters, *k) weight")
    diagnosis = "the transposed kernel's in and out channels swapped"
    families = TRANSPOSED

    def transpose_weight(self, kernel, g):
        r = g.kind.rank
        k = self.spatial(kernel, r)
        swapped = k.transpose(r, r + 1, *range(r))                            # (F, C, *K)
        return np.ascontiguousarray(swapped).reshape(k.shape[r + 1], k.shape[r], *k.shape[:r])


class TransposeStridesDilationSwapped(Port):
    name = "transpose_strides_dilation_swapped"
    bug = "strides and dilation_rate passed to each other's torch argument"
    diagnosis = "the strides taken as the dilation and the dilation as the strides"
    families = TRANSPOSED

    def transpose_stage(self, x, w, g):
        return super().transpose_stage(x, w, replace_geometry(g, strides=g.dilation, dilation=g.strides))


class GradTransposeCropMirrored(GradientPort):
    name = "grad_transpose_crop_mirrored"
    bug = ("the backward pass of a 'same' transposed conv uncrops dy on the wrong side (a hand-written backward "
           "that recomputes the crop with its odd position at the start); the forward crops right")
    diagnosis = ("the gradients computed with the 'same' crop mirrored: dy placed back into the full scatter one "
                 "position off, so dx and dkernel read it shifted")
    families = TRANSPOSED

    def layer_backward(self, x_cl, kernels, g, dz):
        cut = [(a, b) if g.padding == "same" and a >= 0 else (b, a) for b, a in crops(g)]
        kernel = kernels["kernel"]
        return {"x": gather(dz, kernel, tuple(x_cl.shape[1:-1]), g.strides, g.dilation, cut),
                "kernel": kernel_gradient(x_cl, dz, kernel.shape, g.strides, g.dilation, cut)}
