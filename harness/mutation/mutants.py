"""The mutant catalogue: deliberately broken ports, each one bug that a real converter or hand-written port shipped.

Each mutant is the NumPy port (port.Port) with one step broken, usable as a plug-in engine
``harness.mutation.mutants:NAME`` (fn(layer, config, x, weights) -> y in the case dtype). A mutant raises
NotImplementedError for layer kinds or dtypes where its bug cannot exist (a skip, not a kill). The same
catalogue is the dictionary of harness.diagnosis.diagnose.

The backward mutants (BACKWARD_MUTANTS, at the end) are ports whose forward is right and whose gradients carry one
mistake (detection.gradient_port.GradientPort with one step broken): they break only the backward items of the
cases that ask for the backward check, and harness.diagnosis.gradients names them in a backward failure.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ..engines.base import SequenceFn
from ..layers.geometry import Geometry
from ..layers.layouts import conv_k2t
from ..layers.padding import effective_kernel, pad_amounts
from ..tensors.values import generate, round_to
from .gradient_port import GradientPort, gradient_port
from .port import Port, channel_view, numpy_port, reference_port, torch_conv

DW = ("depthwise", "separable")


# ---------------------------------------------------------------- padding

class SameSymmetric(Port):
    name = "same_symmetric"
    bug = "'same' as symmetric k//2 padding on both sides (PyTorch's padding=k//2 habit)"
    diagnosis = "'same' padded symmetrically with k//2 on both sides instead of TensorFlow's split"
    source = "https://github.com/gmalivenko/pytorch2keras/issues/2"

    def pad_axis(self, padding, n, k, s, d):
        if padding == "same":
            p = effective_kernel(k, d) // 2
            return p, p
        return super().pad_axis(padding, n, k, s, d)


class SameExtraBefore(Port):
    name = "same_extra_before"
    bug = "'same' with the odd padding pixel on top/left (Caffe/SAME_LOWER) instead of bottom/right"
    diagnosis = "the extra 'same' padding pixel on top/left instead of bottom/right"
    source = "https://github.com/mil-tokyo/webdnn/issues/796"

    def pad_axis(self, padding, n, k, s, d):
        before, after = super().pad_axis(padding, n, k, s, d)
        return (after, before) if padding == "same" else (before, after)


class SameNoClamp(Port):
    name = "same_no_clamp"
    bug = "'same' pad total computed without its clamp at zero: a negative total crops (k=1 or k<s, stride > 1)"
    diagnosis = "the 'same' pad total not clamped at zero (a negative pad crops the input)"

    def pad_axis(self, padding, n, k, s, d):
        if padding == "same":
            total = (math.ceil(n / s) - 1) * s + effective_kernel(k, d) - n
            return total // 2, total - total // 2
        return super().pad_axis(padding, n, k, s, d)


class SamePadFromK(Port):
    name = "same_pad_from_k"
    bug = "'same' pad computed from k instead of the dilated extent (k-1)*d+1"
    diagnosis = "the 'same' padding computed from k instead of the dilated kernel (k-1)*d+1"
    source = "https://github.com/onnx/tensorflow-onnx/pull/1046"

    def pad_axis(self, padding, n, k, s, d):
        return super().pad_axis(padding, n, k, s, 1) if padding == "same" else super().pad_axis(padding, n, k, s, d)


class SameOutputFloor(Port):
    name = "same_output_floor"
    bug = "'same' pad sized for floor(n/s) outputs instead of ceil(n/s)"
    diagnosis = "the 'same' padding sized for floor(n/s) outputs instead of ceil(n/s)"

    def pad_axis(self, padding, n, k, s, d):
        if padding == "same":
            total = max(0, (max(n // s, 1) - 1) * s + effective_kernel(k, d) - n)
            return total // 2, total - total // 2
        return super().pad_axis(padding, n, k, s, d)


class SameAsValid(Port):
    name = "same_as_valid"
    bug = "padding='same' dropped in conversion (auto_pad lost): the layer runs 'valid'"
    diagnosis = "'same' padding dropped (run as 'valid')"

    def pad_axis(self, padding, n, k, s, d):
        return (0, 0) if padding == "same" else super().pad_axis(padding, n, k, s, d)


class PadsHWSwapped(Port):
    name = "pads_hw_swapped"
    bug = "the height padding applied to the width and vice versa"
    diagnosis = "the padding amounts of height and width swapped"
    ranks = (2,)
    source = "https://github.com/tensorflow/tensorflow/pull/24151"

    def pads(self, x, g):
        return super().pads(x, g)[::-1]


class CausalRight(Port):
    name = "causal_right"
    bug = "causal padding put on the right (the future) instead of the left"
    diagnosis = "causal padding on the right instead of the left"
    ranks = (1,)

    def pad_axis(self, padding, n, k, s, d):
        before, after = super().pad_axis(padding, n, k, s, d)
        return (after, before) if padding == "causal" else (before, after)


class CausalNoDilation(Port):
    name = "causal_no_dilation"
    bug = "causal left padding k-1 instead of d*(k-1): dilation ignored"
    diagnosis = "causal padding of k-1 that ignores the dilation (should be d*(k-1))"
    ranks = (1,)

    def pad_axis(self, padding, n, k, s, d):
        return (k - 1, 0) if padding == "causal" else super().pad_axis(padding, n, k, s, d)


class CausalAsSame(Port):
    name = "causal_as_same"
    bug = "causal padding converted as 'same' (centred instead of left)"
    diagnosis = "causal padding converted as 'same'"
    ranks = (1,)
    source = "https://github.com/onnx/keras-onnx/issues/460"

    def pad_axis(self, padding, n, k, s, d):
        return pad_amounts("same", n, k, s, d) if padding == "causal" else super().pad_axis(padding, n, k, s, d)


# ---------------------------------------------------------------- geometry

class DilationIgnored(Port):
    name = "dilation_ignored"
    bug = "dilation_rate dropped by the converter (runs undilated, pads for the undilated kernel)"
    diagnosis = "the dilation ignored"
    source = "https://github.com/ajaichemmanam/tfjs-to-tf/pull/1"

    def geometry(self, layer, config, shape):
        return super().geometry(layer, {**config, "dilation_rate": 1}, shape)


class StridesFirstAxisOnly(Port):
    name = "strides_first_axis_only"
    bug = "strides[0] used for both spatial axes (stride ignored on the width)"
    diagnosis = "the height stride used on both axes"
    ranks = (2,)

    def geometry(self, layer, config, shape):
        g = super().geometry(layer, config, shape)
        return _replace(g, strides=(g.strides[0],) * 2)


class BatchFirstOnly(Port):
    name = "batch_first_only"
    bug = "a graph traced with batch 1: the first sample's result broadcast to the whole batch"
    diagnosis = "the first sample's result repeated for the whole batch (batch axis lost)"

    def stages(self, layer, config, x, weights, dtype):
        y, z = super().stages(layer, config, x[:1], weights, dtype)
        return np.repeat(y, x.shape[0], axis=0), (None if z is None else np.repeat(z, x.shape[0], axis=0))


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


# ---------------------------------------------------------------- bias and activation

class BiasDropped(Port):
    name = "bias_dropped"
    bug = "the bias not converted (use_bias lost)"
    diagnosis = "the bias dropped"

    def bias_vector(self, bias, g):
        return np.zeros_like(bias)


class BiasAddFormatGuessed(Port):
    name = "bias_add_format_guessed"
    bug = ("channels_first bias added along the last axis whenever that axis is as long as the channel count "
           "(models the known Keras bug keras-bias-add-guessed-nhwc, harness/known/registry.py)")
    diagnosis = ("the bias added along the last (spatial) axis instead of the channel axis: a bias_add whose "
                 "data_format was guessed from the shapes (known bug keras-bias-add-guessed-nhwc)")
    source = "keras/src/backend/tensorflow/numpy.py: add()"

    def finish(self, y, bias, g):
        if bias is not None and g.channels_first and y.shape[-1] == bias.shape[0]:
            return self.activate(y + bias, g.activation)   # broadcast over the last axis
        return super().finish(y, bias, g)


class ActivationDropped(Port):
    name = "activation_dropped"
    bug = "the fused activation dropped (e.g. ReLU6 exported as Clip without bounds)"
    diagnosis = "the activation dropped"
    source = "https://github.com/Tencent/ncnn/issues/1609"

    def activate(self, y, activation):
        return y


class ActivationBeforeBias(Port):
    name = "activation_before_bias"
    bug = "the activation applied before the bias is added"
    diagnosis = "the activation applied before the bias"

    def finish(self, y, bias, g):
        y = self.activate(y, g.activation)
        return y + channel_view(bias, g.kind.rank) if bias is not None else y


class Relu6AsRelu(Port):
    name = "relu6_as_relu"
    bug = "relu6 converted as relu (the upper clip at 6 lost)"
    diagnosis = "relu6 run as relu (no clip at 6)"
    source = "https://github.com/microsoft/MMdnn/issues/798"

    def activate(self, y, activation):
        return super().activate(y, "relu" if activation == "relu6" else activation)


# ---------------------------------------------------------------- precision

def round_mantissa(v: np.ndarray, bits: int) -> np.ndarray:
    """Round to ``bits`` explicit mantissa bits, to nearest even (TF32 keeps 10; float32 has 23)."""
    m, e = np.frexp(np.asarray(v, dtype=np.float64))
    return np.ldexp(np.rint(m * 2.0 ** (bits + 1)), e - (bits + 1))


class TF32(Port):
    name = "tf32"
    bug = "float32 convolution run in TF32 (operands rounded to 10 mantissa bits), the GPU default since Ampere"
    diagnosis = "the convolution operands rounded to TF32 (10 mantissa bits)"
    dtypes = ("float32",)

    def stages(self, layer, config, x, weights, dtype):
        w = {k: v if k == "bias" else round_mantissa(v, 10) for k, v in weights.items()}
        return super().stages(layer, config, round_mantissa(x, 10), w, dtype)


class Float32Internal(Port):
    name = "float32_internal"
    bug = "a float64 layer silently computed in float32 (weights, input and result through float32)"
    diagnosis = "the computation done in float32"
    dtypes = ("float64",)
    diagnosis_dtype = "float32"   # an engine doing this rounds in float32: judge the match with float32's bound

    def stages(self, layer, config, x, weights, dtype):
        f32 = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731
        y, z = super().stages(layer, config, f32(x), {k: f32(v) for k, v in weights.items()}, dtype)
        return f32(y), (None if z is None else f32(z))


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
        # harness.layers.families.separable.fold_depthwise_bias (b + W_p^T b_d) applied to the gradients. The fold makes a
        # Keras bias even where the layer has none, as torch_to_keras does for the block's weights.
        grads["bias"] = grads["bias"] + d_bd @ pk.reshape(pk.shape[-2:])
        return grads


class GradPadSplitMirrored(GradientPort):
    name = "grad_pad_split_mirrored"
    bug = ("the backward pass of a 'same' or 'causal' padded conv pads the other way round (a hand-written backward "
           "that recomputes the pads with the split mirrored: the odd 'same' pixel before instead of after, the "
           "causal padding after); the forward pads right")
    diagnosis = ("the gradients computed with the padding split mirrored (the odd 'same' pixel before instead of "
                 "after, causal padding after): the backward pass pads the other way round from the forward")

    def layer_backward(self, x_cl, kernels, g, dz):
        widths = [pad_amounts(g.padding, n, k, s, d)[::-1]
                  for n, k, s, d in zip(x_cl.shape[1:-1], g.kernel_size, g.strides, g.dilation)]
        xp = np.pad(x_cl, [(0, 0), *widths, (0, 0)])
        valid = _replace(g, padding="valid")   # x padded here, the mirrored way: the VJP itself pads nothing
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


def _replace(g: Geometry, **changes: Any) -> Geometry:
    return dataclasses.replace(g, **changes)


CLASSES: tuple[type[Port], ...] = (
    SameSymmetric, SameExtraBefore, SameNoClamp, SamePadFromK, SameOutputFloor, SameAsValid, PadsHWSwapped,
    CausalRight, CausalNoDilation, CausalAsSame, DilationIgnored, StridesFirstAxisOnly, BatchFirstOnly,
    FlippedKernel, KernelHWSwapped, ConvKernelReshaped, DepthwiseReshape, DepthwiseRowsMMajor,
    MultiplierChannelsMMajor, DepthwiseBiasMMajor, DepthwiseAsFullConv, PointwiseNotTransposed, GroupsInterleaved,
    LayoutPermutationMissing, SeparableBiasAfterDepthwise, DepthwiseBiasDropped, SeparableActivationAfterDepthwise,
    SeparableStrideTwice, BiasDropped, BiasAddFormatGuessed, ActivationDropped, ActivationBeforeBias, Relu6AsRelu,
    TF32, Float32Internal,
)
MUTANTS: dict[str, Port] = {cls.name: cls() for cls in CLASSES}
# The backward mutants: run on the backward items of the cases with `check: [..., backward]`, killed there.
BACKWARD_CLASSES: tuple[type[GradientPort], ...] = (
    GradKernelForwardPermutation, GradDepthwiseBiasFolded, GradPadSplitMirrored, GradBiasStopped,
    GradDxTimesMultiplier,
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
    _port.stack = stack_function(_port)   # type: ignore[union-attr] - a plug-in's callable carries its stack function
globals().update(MUTANTS)
globals().update(BACKWARD_MUTANTS)
globals().update(CONTROLS)


def engine_spec(name: str) -> str:
    """The plug-in spec of a mutant or control: NAME=harness.mutation.mutants:NAME."""
    return f"{name}={__name__}:{name}"


def register(names: list[str] | None = None) -> list[str]:
    """Register mutants (default: all) as plug-in engines; returns their engine names."""
    from .. import engines

    return [engines.register_plugin(engine_spec(n)) for n in (names or list(MUTANTS))]
