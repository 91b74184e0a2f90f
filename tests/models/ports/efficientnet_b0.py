"""keras.applications.EfficientNetB0 (include_top=True, classes=1000) by hand in PyTorch, NCHW.

Layer order as keras/src/applications/efficientnet.py builds it (width and depth coefficients 1.0, so the block
table is DEFAULT_BLOCKS_ARGS as written). BatchNormalization is Keras's default there: epsilon 1e-3, momentum 0.99.
The stem's Rescaling(1/255) and Normalization are two leaf modules of ours (Rescale, Normalize); with weights=None
Keras adds no third (ImageNet stddev) Rescaling. Every activation is swish: nn.SiLU, the SE gate's sigmoid
nn.Sigmoid, each a module after its conv (Keras fuses them into the Conv2D of se_reduce / se_expand). The SE
squeeze is GlobalAveragePooling2D + Reshape: nn.AdaptiveAvgPool2d(1) + nn.Flatten() + nn.Unflatten(1, (C, 1, 1)).
The stochastic-depth Dropout layers ({block}drop, noise_shape (N,1,1,1)) are nn.Dropout: identity in eval.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ._common import (
    Normalize,
    Rescale,
    bn,
    check_bug,
    correct_pad,
    load_bn,
    load_conv,
    load_dense,
    load_depthwise,
    pad2d,
    valid_out,
)

BUGS = ("missing_bias",)
EPS, MOMENTUM = 1e-3, 0.99
MISSING_BIAS_CONV = "block1a_se_reduce"   # missing_bias: this conv is built with bias=False

# kernel_size, repeats, filters_in, filters_out, expand_ratio, strides (se_ratio 0.25, id_skip True everywhere)
BLOCKS_ARGS = (
    (3, 1, 32, 16, 1, 1),
    (3, 2, 16, 24, 6, 2),
    (5, 2, 24, 40, 6, 2),
    (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1),
    (5, 4, 112, 192, 6, 2),
    (3, 1, 192, 320, 6, 1),
)
SE_RATIO, DROP_CONNECT_RATE, DROPOUT_RATE = 0.25, 0.2, 0.2


class Block(nn.Module):
    def __init__(self, name: str, size: int, drop_rate: float, filters_in: int, filters_out: int, kernel_size: int,
                 strides: int, expand_ratio: int, bug: str | None) -> None:
        super().__init__()
        self.name = name
        filters = filters_in * expand_ratio
        self.expand_conv: nn.Module | None = None
        if expand_ratio != 1:
            self.expand_conv = nn.Conv2d(filters_in, filters, 1, bias=False)
            self.expand_bn = bn(filters, EPS, MOMENTUM)
            self.expand_activation = nn.SiLU()
        self.dwconv_pad: nn.Module | None = None
        if strides == 2:
            self.dwconv_pad = pad2d(*correct_pad(size, kernel_size))
            padding = 0
        else:
            padding = kernel_size // 2
        self.dwconv = nn.Conv2d(filters, filters, kernel_size, stride=strides, padding=padding, groups=filters,
                                bias=False)
        self.bn = bn(filters, EPS, MOMENTUM)
        self.activation = nn.SiLU()
        filters_se = max(1, int(filters_in * SE_RATIO))
        self.se_squeeze = nn.AdaptiveAvgPool2d(1)               # GlobalAveragePooling2D ...
        self.se_flatten = nn.Flatten()                          # ... (N, C)
        self.se_reshape = nn.Unflatten(1, (filters, 1, 1))      # Reshape((1, 1, C)), NCHW
        reduce_bias = not (bug == "missing_bias" and name + "se_reduce" == MISSING_BIAS_CONV)
        self.se_reduce = nn.Conv2d(filters, filters_se, 1, bias=reduce_bias)
        self.se_reduce_activation = nn.SiLU()
        self.se_expand = nn.Conv2d(filters_se, filters, 1)
        self.se_expand_activation = nn.Sigmoid()
        self.project_conv = nn.Conv2d(filters, filters_out, 1, bias=False)
        self.project_bn = bn(filters_out, EPS, MOMENTUM)
        self.skip = strides == 1 and filters_in == filters_out
        self.drop: nn.Module | None = nn.Dropout(drop_rate) if self.skip and drop_rate > 0 else None

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand_conv is not None:
            x = self.expand_activation(self.expand_bn(self.expand_conv(x)))
        if self.dwconv_pad is not None:
            x = self.dwconv_pad(x)
        x = self.activation(self.bn(self.dwconv(x)))
        se = self.se_reshape(self.se_flatten(self.se_squeeze(x)))
        se = self.se_reduce_activation(self.se_reduce(se))
        se = self.se_expand_activation(self.se_expand(se))
        x = x * se                                               # multiply (se_excite)
        x = self.project_bn(self.project_conv(x))
        if self.skip:
            if self.drop is not None:
                x = self.drop(x)
            x = x + inputs                                       # add
        return x


class Port(nn.Module):
    def __init__(self, size: int = 224, classes: int = 1000, bug: str | None = None) -> None:
        super().__init__()
        check_bug(bug, BUGS, "efficientnet_b0")
        self.rescaling = Rescale(1.0 / 255.0)
        self.normalization = Normalize(3)
        self.stem_conv_pad = pad2d(*correct_pad(size, 3))
        self.stem_conv = nn.Conv2d(3, 32, 3, stride=2, padding=0, bias=False)
        self.stem_bn = bn(32, EPS, MOMENTUM)
        self.stem_activation = nn.SiLU()
        n = valid_out(size + sum(correct_pad(size, 3)), 3, 2)
        total = float(sum(args[1] for args in BLOCKS_ARGS))
        blocks, b = [], 0
        for i, (kernel_size, repeats, filters_in, filters_out, expand_ratio, strides) in enumerate(BLOCKS_ARGS):
            for j in range(repeats):
                if j > 0:
                    strides, filters_in = 1, filters_out
                name = f"block{i + 1}{chr(j + 97)}_"
                blocks.append(Block(name, n, DROP_CONNECT_RATE * b / total, filters_in, filters_out, kernel_size,
                                    strides, expand_ratio, bug))
                if strides == 2:
                    n = valid_out(n + sum(correct_pad(n, kernel_size)), kernel_size, 2)
                b += 1
        self.blocks = nn.ModuleList(blocks)
        self.top_conv = nn.Conv2d(320, 1280, 1, bias=False)
        self.top_bn = bn(1280, EPS, MOMENTUM)
        self.top_activation = nn.SiLU()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)                  # GlobalAveragePooling2D ...
        self.flatten = nn.Flatten()                              # ... (N, C)
        self.top_dropout = nn.Dropout(DROPOUT_RATE)
        self.predictions = nn.Linear(1280, classes)
        self.softmax = nn.Softmax(dim=1)                         # Dense(activation='softmax')
        assert math.isclose(total, 16.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_conv(self.stem_conv_pad(self.normalization(self.rescaling(x))))
        x = self.stem_activation(self.stem_bn(x))
        for block in self.blocks:
            x = block(x)
        x = self.top_activation(self.top_bn(self.top_conv(x)))
        x = self.top_dropout(self.flatten(self.avg_pool(x)))
        return self.softmax(self.predictions(x))


def transfer(keras_model: Any, port: Port, bug: str | None = None) -> None:
    import keras

    check_bug(bug, BUGS, "efficientnet_b0")
    get = keras_model.get_layer
    norm = [layer for layer in keras_model.layers if isinstance(layer, keras.layers.Normalization)]
    if len(norm) != 1:
        raise ValueError(f"expected one Normalization layer, found {len(norm)}")
    with torch.no_grad():
        port.normalization.mean.copy_(torch.from_numpy(norm[0].mean.numpy().reshape(-1)))
        port.normalization.variance.copy_(torch.from_numpy(norm[0].variance.numpy().reshape(-1)))
    load_conv(port.stem_conv, get("stem_conv"))
    load_bn(port.stem_bn, get("stem_bn"))
    for block in port.blocks:
        p = block.name
        if block.expand_conv is not None:
            load_conv(block.expand_conv, get(p + "expand_conv"))
            load_bn(block.expand_bn, get(p + "expand_bn"))
        load_depthwise(block.dwconv, get(p + "dwconv"))
        load_bn(block.bn, get(p + "bn"))
        load_conv(block.se_reduce, get(p + "se_reduce"), bias=block.se_reduce.bias is not None)
        load_conv(block.se_expand, get(p + "se_expand"))
        load_conv(block.project_conv, get(p + "project_conv"))
        load_bn(block.project_bn, get(p + "project_bn"))
    load_conv(port.top_conv, get("top_conv"))
    load_bn(port.top_bn, get("top_bn"))
    load_dense(port.predictions, get("predictions"))
