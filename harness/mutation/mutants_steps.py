"""Forward mutants of the last steps and the arithmetic: bias and activation dropped, misplaced or wrong, the
computation done at a lower precision."""
from __future__ import annotations

import numpy as np

from .port import Port, channel_view

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
