"""What the hand-written ports share: TF padding arithmetic, the two preprocessing leaf modules, and the Keras ->
torch weight copies (kernel layouts, BatchNormalization). Independent of the harness package on purpose: these
ports are the reference the harness's model diff is tested against."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

# -- padding arithmetic -----------------------------------------------------------------------------------------

def tf_same_pad(n: int, k: int, s: int) -> tuple[int, int]:
    """(before, after) zero padding of TF/Keras padding='same' on an axis of size n: the extra one goes after."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def same_out(n: int, s: int) -> int:
    return -(-n // s)


def valid_out(n: int, k: int, s: int = 1) -> int:
    return (n - k) // s + 1


def correct_pad(n: int, k: int) -> tuple[int, int]:
    """keras.applications.imagenet_utils.correct_pad on one axis of known size n: (k//2 - 1, k//2) for an even n,
    (k//2, k//2) for an odd one."""
    adjust = 1 - n % 2
    return k // 2 - adjust, k // 2


def pad2d(before: int, after: int) -> nn.ZeroPad2d:
    """The same (before, after) on both spatial axes, as torch's (left, right, top, bottom)."""
    return nn.ZeroPad2d((before, after, before, after))


# -- preprocessing leaf modules ---------------------------------------------------------------------------------

class Rescale(nn.Module):
    """keras.layers.Rescaling(scale, offset) as a leaf module of its own: x * scale + offset."""

    def __init__(self, scale: float, offset: float = 0.0) -> None:
        super().__init__()
        self.scale = scale
        self.offset = offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset

    def extra_repr(self) -> str:
        return f"scale={self.scale}, offset={self.offset}"


class Normalize(nn.Module):
    """keras.layers.Normalization(axis=-1) on NCHW as a leaf module: (x - mean) / max(sqrt(variance), 1e-7), the
    per-channel mean and variance loaded from the Keras layer (buffers, not parameters)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("variance", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = torch.clamp(torch.sqrt(self.variance), min=1e-7)
        return (x - self.mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


# -- weight copies ----------------------------------------------------------------------------------------------

def weights(layer: Any) -> dict[str, np.ndarray]:
    """A Keras layer's variables by their short name (kernel, bias, depthwise_kernel, gamma, moving_mean, ...)."""
    return {v.path.split("/")[-1]: np.asarray(v.numpy()) for v in layer.weights}


def conv_kernel(k: np.ndarray) -> np.ndarray:
    """Conv2D (kh, kw, C, F) -> torch (F, C, kh, kw); also a SeparableConv2D pointwise (1, 1, C*M, F)."""
    return k.transpose(3, 2, 0, 1)


def depthwise_kernel(k: np.ndarray) -> np.ndarray:
    """DepthwiseConv2D (kh, kw, C, M) -> torch groups=C (C*M, 1, kh, kw); output channel c*M + m, as TF's."""
    kh, kw, C, M = k.shape
    return k.transpose(2, 3, 0, 1).reshape(C * M, 1, kh, kw)


def dense_kernel(k: np.ndarray) -> np.ndarray:
    """Dense (in, out) -> Linear weight (out, in)."""
    return k.T


def put(param: torch.Tensor, array: np.ndarray, what: str) -> None:
    array = np.ascontiguousarray(array, dtype=np.float32)
    if tuple(param.shape) != array.shape:
        raise ValueError(f"{what}: torch {tuple(param.shape)} != converted Keras {array.shape}")
    with torch.no_grad():
        param.copy_(torch.from_numpy(array))


def load_conv(conv: nn.Conv2d, layer: Any, *, key: str = "kernel", convert: Any = conv_kernel,
              bias: bool = True) -> None:
    """A Conv2D's (or, with key/convert, a DepthwiseConv2D's) kernel and bias. bias=False leaves the Keras bias out
    (only where the torch conv has none, on purpose)."""
    w = weights(layer)
    put(conv.weight, convert(w[key]), f"{layer.name}/{key}")
    if "bias" in w and bias:
        if conv.bias is None:
            raise ValueError(f"{layer.name} has a bias, its torch conv has none")
        put(conv.bias, w["bias"], f"{layer.name}/bias")
    elif conv.bias is not None and "bias" not in w:
        raise ValueError(f"{layer.name} has no bias, its torch conv has one")


def load_depthwise(conv: nn.Conv2d, layer: Any, **kw: Any) -> None:
    load_conv(conv, layer, convert=depthwise_kernel, **kw)


def load_separable(depthwise: nn.Conv2d, pointwise: nn.Conv2d, layer: Any) -> None:
    """SeparableConv2D: depthwise (no bias) then pointwise, which carries the layer's one bias if it has one."""
    w = weights(layer)
    put(depthwise.weight, depthwise_kernel(w["depthwise_kernel"]), f"{layer.name}/depthwise_kernel")
    put(pointwise.weight, conv_kernel(w["pointwise_kernel"]), f"{layer.name}/pointwise_kernel")
    if depthwise.bias is not None:
        raise ValueError(f"{layer.name}: the depthwise step of a separable conv has no bias")
    if "bias" in w:
        put(pointwise.bias, w["bias"], f"{layer.name}/bias")


def load_bn(bn: nn.BatchNorm2d, layer: Any) -> None:
    w = weights(layer)
    put(bn.weight, w["gamma"], f"{layer.name}/gamma")
    put(bn.bias, w["beta"], f"{layer.name}/beta")
    put(bn.running_mean, w["moving_mean"], f"{layer.name}/moving_mean")
    put(bn.running_var, w["moving_variance"], f"{layer.name}/moving_variance")


def load_dense(linear: nn.Linear, layer: Any) -> None:
    w = weights(layer)
    put(linear.weight, dense_kernel(w["kernel"]), f"{layer.name}/kernel")
    put(linear.bias, w["bias"], f"{layer.name}/bias")


def bn(channels: int, eps: float, keras_momentum: float) -> nn.BatchNorm2d:
    """BatchNorm2d with Keras's epsilon; torch's momentum is the weight of the new batch, 1 - Keras's."""
    return nn.BatchNorm2d(channels, eps=eps, momentum=round(1.0 - keras_momentum, 6))


def check_bug(bug: str | None, known: tuple[str, ...], port: str) -> None:
    if bug is not None and bug not in known:
        raise ValueError(f"{port} has no bug {bug!r}; it has {known}")
