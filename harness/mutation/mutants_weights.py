"""Forward mutants of the weights and the layer's structure: kernels flipped or laid out wrong, depthwise and
grouped channels in the wrong order, a separable layer's steps misplaced."""
from __future__ import annotations

import numpy as np

from ..tensors.values import generate, round_to
from .port import Port, channel_view, torch_conv

DW = ("depthwise", "separable")
# ---------------------------------------------------------------- kernels and layouts


class FlippedKernel(Port):
    name = "flipped_kernel"
    bug = "kernel flipped: a true convolution (scipy.signal.convolve) instead of cross-correlation"
    diagnosis = "the kernel flipped: true convolution instead of cross-correlation"

    def spatial(self, kernel, rank):
        return np.flip(kernel, axis=tuple(range(rank)))


class KernelHWSwapped(Port):
    name = "kernel_hw_swapped"
    bug = "kernel height and width swapped in the layout conversion (permute (3,2,1,0) instead of (3,2,0,1))"
    diagnosis = "the kernel's height and width swapped"
    ranks = (2,)
    source = "https://github.com/apple/coremltools/pull/55"

    def spatial(self, kernel, rank):
        return kernel.swapaxes(0, 1)


class ConvKernelReshaped(Port):
    name = "conv_kernel_reshaped"
    bug = "conv kernel (*K, C, F) reshaped to (F, C, *K) instead of transposed"
    diagnosis = "the conv kernel reshaped to (F, C, *K) where a transpose is needed"
    families = ("conv",)

    def conv_weight(self, kernel, g):
        r = g.kind.rank
        return kernel.reshape(kernel.shape[r + 1], kernel.shape[r], *kernel.shape[:r])


class DepthwiseReshape(Port):
    name = "depthwise_reshape"
    bug = "depthwise kernel (*K, C, M) reshaped straight to (C*M, 1, *K) instead of transposed first"
    diagnosis = "the depthwise kernel reshaped (*K, C, M) -> (C*M, 1, *K) where a transpose is needed"
    families = DW
    source = "https://github.com/AlexanderLutsenko/nobuco/issues/2"

    def depthwise_weight(self, kernel, g):
        r = g.kind.rank
        c, m = kernel.shape[r:]
        return kernel.reshape(c * m, 1, *kernel.shape[:r])


class DepthwiseRowsMMajor(Port):
    name = "depthwise_rows_m_major"
    bug = "depthwise kernel converted with transpose(M, C, *K): filter rows in m*C+c order under groups=C"
    diagnosis = "the depthwise filters in m*C + c order (kernel transposed (M, C) instead of (C, M))"
    families = DW
    source = "https://github.com/gmalivenko/onnx2keras/pull/150"

    def depthwise_weight(self, kernel, g):
        r = g.kind.rank
        c, m = kernel.shape[r:]
        return kernel.transpose(r + 1, r, *range(r)).reshape(m * c, 1, *kernel.shape[:r])


class MultiplierChannelsMMajor(Port):
    name = "multiplier_channels_m_major"
    bug = "depth-multiplier outputs laid out m*C + c (M depthwise convs concatenated) instead of c*M + m"
    diagnosis = "the depth-multiplier output channels in m*C + c order instead of c*M + m"
    families = DW

    def depthwise_stage(self, x, w, g):
        z = super().depthwise_stage(x, w, g)
        n, cm = z.shape[:2]
        c = x.shape[1]
        return z.reshape(n, c, cm // c, *z.shape[2:]).swapaxes(1, 2).reshape(z.shape)


class DepthwiseBiasMMajor(Port):
    name = "depthwise_bias_m_major"
    bug = "depthwise bias laid out m*C + c while the filters are c*M + m"
    diagnosis = "the depthwise bias in m*C + c order"
    families = ("depthwise",)

    def bias_vector(self, bias, g):
        return bias.reshape(g.in_channels, g.depth_multiplier).T.reshape(-1)


class DepthwiseAsFullConv(Port):
    name = "depthwise_as_full_conv"
    bug = "depthwise run as a full conv (groups=C forgotten, filter broadcast over every input channel)"
    diagnosis = "the depthwise step run as a full convolution over all input channels (groups=C forgotten)"
    families = DW
    source = "https://github.com/PINTO0309/openvino2tensorflow/issues/111"

    def depthwise_stage(self, x, w, g):
        full = np.broadcast_to(w, (w.shape[0], x.shape[1], *w.shape[2:]))
        return torch_conv(x, full, g, strides=g.strides, dilation=g.dilation, groups=1, pads=self.pads(x, g))


class PointwiseNotTransposed(Port):
    name = "pointwise_not_transposed"
    bug = "pointwise kernel (1.., C*M, F) reshaped to (F, C*M, 1..) instead of transposed"
    diagnosis = "the pointwise weights taken untransposed ((C*M, F) read as (F, C*M))"
    families = ("separable",)

    def pointwise_weight(self, kernel, g):
        cm, f = kernel.shape[-2:]
        return kernel.reshape(f, cm, *(1,) * g.kind.rank)


class GroupsInterleaved(Port):
    name = "groups_interleaved"
    bug = "conv groups taken as interleaved channels (c % G) instead of contiguous blocks"
    diagnosis = "the conv groups interleaved instead of contiguous channel blocks"
    families = ("conv",)
    source = "https://github.com/alibaba/TinyNeuralNetwork/issues/197"

    def conv_stage(self, x, w, g):
        groups = g.groups
        c, f = x.shape[1], w.shape[0]
        take = [grp + groups * j for grp in range(groups) for j in range(c // groups)]
        y = super().conv_stage(x[:, take], w, g)
        place = np.empty(f, dtype=int)
        place[[grp + groups * j for grp in range(groups) for j in range(f // groups)]] = np.arange(f)
        return y[:, place]


class LayoutPermutationMissing(Port):
    name = "layout_permutation_missing"
    bug = "NHWC <-> NCHW done with a reshape/view instead of a permute (the transpose is missing)"
    diagnosis = "the NHWC <-> NCHW permutation missing (a reshape where a transpose is needed)"

    def to_internal(self, x, g):
        return x if g.channels_first else x.reshape(x.shape[0], x.shape[-1], *x.shape[1:-1])

    def from_internal(self, y, g):
        return y if g.channels_first else y.reshape(y.shape[0], *y.shape[2:], y.shape[1])


# ---------------------------------------------------------------- separable structure

class SeparableBiasAfterDepthwise(Port):
    name = "separable_bias_after_depthwise"
    bug = "the separable bias put on the depthwise step (then mixed by the pointwise) instead of after it"
    diagnosis = "the separable bias applied after the depthwise step instead of after the pointwise step"
    families = ("separable",)

    def between_stages(self, z, g, bias, dtype):
        if bias is None:
            return z
        if bias.shape[0] != z.shape[1]:
            raise NotImplementedError("a bias of F entries cannot sit on the C*M depthwise channels (F != C*M)")
        return z + channel_view(bias, g.kind.rank)

    def finish(self, y, bias, g):
        return super().finish(y, None, g)


class DepthwiseBiasDropped(Port):
    name = "depthwise_bias_dropped"
    bug = "a separable block with a depthwise bias whose bias is dropped instead of folded (b_p' = b_p + W_p^T b_d)"
    diagnosis = "a depthwise bias dropped instead of folded into the pointwise bias"
    families = ("separable",)
    source = "https://github.com/Tencent/ncnn/issues/1339"

    def between_stages(self, z, g, bias, dtype):
        # The block's own depthwise bias (drawn as the torch engine draws it), which the conversion lost.
        b_d = round_to(generate("normal", (z.shape[1],), 0, "depthwise_bias"), dtype).astype(np.float64)
        return z + channel_view(b_d, g.kind.rank)


class SeparableActivationAfterDepthwise(Port):
    name = "separable_activation_after_depthwise"
    bug = "the activation put between the depthwise and pointwise steps instead of at the end"
    diagnosis = "the activation applied after the depthwise step instead of after the pointwise step"
    families = ("separable",)

    def between_stages(self, z, g, bias, dtype):
        return self.activate(z, g.activation)

    def finish(self, y, bias, g):
        return y + channel_view(bias, g.kind.rank) if bias is not None else y


class SeparableStrideTwice(Port):
    name = "separable_stride_twice"
    bug = "the stride given to the pointwise 1x1 conv as well as the depthwise one"
    diagnosis = "the stride applied twice (to the pointwise step as well)"
    families = ("separable",)

    def pointwise_stage(self, z, w, g):
        r = g.kind.rank
        return torch_conv(z, w, g, strides=g.strides, dilation=(1,) * r, groups=1, pads=[(0, 0)] * r)
