"""Forward mutants of the geometry: padding ('same', 'causal') split or sized wrong, dilation or strides ignored,
the batch cut short."""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ..layers.families import FAMILIES
from ..layers.geometry import Geometry
from ..layers.padding import effective_kernel, pad_amounts
from .port import Port

# The families that pad their input (a transposed conv crops its output instead: mutants_transpose breaks that).
PADDED = tuple(name for name, family in FAMILIES.items() if not family.pads_crop_output)


def replace_geometry(g: Geometry, **changes: Any) -> Geometry:
    """``g`` with some fields changed (a mutant that reads one field wrong)."""
    return dataclasses.replace(g, **changes)


# ---------------------------------------------------------------- padding

class SameSymmetric(Port):
    name = "same_symmetric"
    families = PADDED
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
    families = PADDED
    bug = "'same' with the odd padding pixel on top/left (Caffe/SAME_LOWER) instead of bottom/right"
    diagnosis = "the extra 'same' padding pixel on top/left instead of bottom/right"
    source = "https://github.com/mil-tokyo/webdnn/issues/796"

    def pad_axis(self, padding, n, k, s, d):
        before, after = super().pad_axis(padding, n, k, s, d)
        return (after, before) if padding == "same" else (before, after)


class SameNoClamp(Port):
    name = "same_no_clamp"
    families = PADDED
    bug = "'same' pad total computed without its clamp at zero: a negative total crops (k=1 or k<s, stride > 1)"
    diagnosis = "the 'same' pad total not clamped at zero (a negative pad crops the input)"

    def pad_axis(self, padding, n, k, s, d):
        if padding == "same":
            total = (math.ceil(n / s) - 1) * s + effective_kernel(k, d) - n
            return total // 2, total - total // 2
        return super().pad_axis(padding, n, k, s, d)


class SamePadFromK(Port):
    name = "same_pad_from_k"
    families = PADDED
    bug = "'same' pad computed from k instead of the dilated extent (k-1)*d+1"
    diagnosis = "the 'same' padding computed from k instead of the dilated kernel (k-1)*d+1"
    source = "https://github.com/onnx/tensorflow-onnx/pull/1046"

    def pad_axis(self, padding, n, k, s, d):
        return super().pad_axis(padding, n, k, s, 1) if padding == "same" else super().pad_axis(padding, n, k, s, d)


class SameOutputFloor(Port):
    name = "same_output_floor"
    families = PADDED
    bug = "'same' pad sized for floor(n/s) outputs instead of ceil(n/s)"
    diagnosis = "the 'same' padding sized for floor(n/s) outputs instead of ceil(n/s)"

    def pad_axis(self, padding, n, k, s, d):
        if padding == "same":
            total = max(0, (max(n // s, 1) - 1) * s + effective_kernel(k, d) - n)
            return total // 2, total - total // 2
        return super().pad_axis(padding, n, k, s, d)


class SameAsValid(Port):
    name = "same_as_valid"
    families = PADDED
    bug = "padding='same' dropped in conversion (auto_pad lost): the layer runs 'valid'"
    diagnosis = "'same' padding dropped (run as 'valid')"

    def pad_axis(self, padding, n, k, s, d):
        return (0, 0) if padding == "same" else super().pad_axis(padding, n, k, s, d)


class PadsHWSwapped(Port):
    name = "pads_hw_swapped"
    families = PADDED
    bug = "the height padding applied to the width and vice versa"
    diagnosis = "the padding amounts of height and width swapped"
    ranks = (2,)
    source = "https://github.com/tensorflow/tensorflow/pull/24151"

    def pads(self, x, g):
        return super().pads(x, g)[::-1]


class CausalRight(Port):
    name = "causal_right"
    families = PADDED
    bug = "causal padding put on the right (the future) instead of the left"
    diagnosis = "causal padding on the right instead of the left"
    ranks = (1,)

    def pad_axis(self, padding, n, k, s, d):
        before, after = super().pad_axis(padding, n, k, s, d)
        return (after, before) if padding == "causal" else (before, after)


class CausalNoDilation(Port):
    name = "causal_no_dilation"
    families = PADDED
    bug = "causal left padding k-1 instead of d*(k-1): dilation ignored"
    diagnosis = "causal padding of k-1 that ignores the dilation (should be d*(k-1))"
    ranks = (1,)

    def pad_axis(self, padding, n, k, s, d):
        return (k - 1, 0) if padding == "causal" else super().pad_axis(padding, n, k, s, d)


class CausalAsSame(Port):
    name = "causal_as_same"
    families = PADDED
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
        return replace_geometry(g, strides=(g.strides[0],) * 2)


class BatchFirstOnly(Port):
    name = "batch_first_only"
    bug = "a graph traced with batch 1: the first sample's result broadcast to the whole batch"
    diagnosis = "the first sample's result repeated for the whole batch (batch axis lost)"

    def stages(self, layer, config, x, weights, dtype):
        y, z = super().stages(layer, config, x[:1], weights, dtype)
        return np.repeat(y, x.shape[0], axis=0), (None if z is None else np.repeat(z, x.shape[0], axis=0))
