"""keras.applications.MobileNetV2 (alpha=1.0, include_top=True, classes=1000) by hand in PyTorch, NCHW.

Layer order as keras/src/applications/mobilenet_v2.py builds it. Keras pads the stride-2 depthwise convs with a
ZeroPadding2D (imagenet_utils.correct_pad) and padding='valid': here nn.ZeroPad2d + padding=0. Conv1 is a stride-2
padding='same' Conv2D in Keras, no padding layer: TF pads it (0, 1) on an even size, so the port puts an explicit
nn.ZeroPad2d before it (the one leaf module Keras has no layer for). padding='same' at stride 1 is padding=k//2.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._common import (
    bn,
    check_bug,
    correct_pad,
    load_bn,
    load_conv,
    load_dense,
    load_depthwise,
    pad2d,
    put,
    same_out,
    tf_same_pad,
    valid_out,
    weights,
)

BUGS = ("bn_eps", "bn_momentum", "same_symmetric", "kernel_transposed", "relu_not_relu6", "blocks_swapped")
EPS, MOMENTUM = 1e-3, 0.999

# (filters, stride, expansion) of block_id 0..16
BLOCKS = (
    (16, 1, 1),
    (24, 2, 6), (24, 1, 6),
    (32, 2, 6), (32, 1, 6), (32, 1, 6),
    (64, 2, 6), (64, 1, 6), (64, 1, 6), (64, 1, 6),
    (96, 1, 6), (96, 1, 6), (96, 1, 6),
    (160, 2, 6), (160, 1, 6), (160, 1, 6),
    (320, 1, 6),
)

# Where each bug is (Keras layer names).
EPS_BUG_BN = "expanded_conv_depthwise_BN"       # bn_eps: this BatchNorm2d gets eps=1e-5
SYMMETRIC_BUG_PAD = "block_1_pad"               # same_symmetric: (0,1,0,1) -> (1,1,1,1) before block_1_depthwise
TRANSPOSED_BUG_CONV = "Conv1"                   # kernel_transposed: its 3x3 kernel loaded as transpose(3,2,1,0)
RELU_BUG = "Conv1_relu"                         # relu_not_relu6: this ReLU6 is an nn.ReLU
SWAPPED_BUG_CONVS = ("block_4_expand", "block_5_expand")  # blocks_swapped: both (1,1,32,192), loaded crosswise


def prefix_of(block_id: int) -> str:
    return f"block_{block_id}_" if block_id else "expanded_conv_"


class InvertedResidual(nn.Module):
    def __init__(self, block_id: int, cin: int, filters: int, stride: int, expansion: int, size: int,
                 bug: str | None) -> None:
        super().__init__()
        self.prefix = prefix_of(block_id)
        momentum = 0.9 if bug == "bn_momentum" else MOMENTUM    # torch momentum 0.1 instead of 0.001
        hidden = cin * expansion
        self.expand: nn.Module | None = None
        if block_id:
            self.expand = nn.Conv2d(cin, hidden, 1, bias=False)
            self.expand_bn = bn(hidden, EPS, momentum)
            self.expand_relu = nn.ReLU6()
        self.pad: nn.Module | None = None
        if stride == 2:
            before, after = correct_pad(size, 3)
            if bug == "same_symmetric" and self.prefix + "pad" == SYMMETRIC_BUG_PAD:
                before, after = (1, 1) if (before, after) == (0, 1) else (0, 2)   # same output size, shifted
            self.pad = pad2d(before, after)
            self.depthwise = nn.Conv2d(hidden, hidden, 3, stride=2, padding=0, groups=hidden, bias=False)
        else:
            self.depthwise = nn.Conv2d(hidden, hidden, 3, stride=1, padding=1, groups=hidden, bias=False)
        eps = 1e-5 if bug == "bn_eps" and self.prefix + "depthwise_BN" == EPS_BUG_BN else EPS
        self.depthwise_bn = bn(hidden, eps, momentum)
        self.depthwise_relu = nn.ReLU6()
        self.project = nn.Conv2d(hidden, filters, 1, bias=False)
        self.project_bn = bn(filters, EPS, momentum)
        self.residual = cin == filters and stride == 1

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand is not None:
            x = self.expand_relu(self.expand_bn(self.expand(x)))
        if self.pad is not None:
            x = self.pad(x)
        x = self.depthwise_relu(self.depthwise_bn(self.depthwise(x)))
        x = self.project_bn(self.project(x))
        return inputs + x if self.residual else x


class Port(nn.Module):
    def __init__(self, size: int = 224, classes: int = 1000, bug: str | None = None) -> None:
        super().__init__()
        check_bug(bug, BUGS, "mobilenet_v2")
        momentum = 0.9 if bug == "bn_momentum" else MOMENTUM
        self.pad = pad2d(*tf_same_pad(size, 3, 2))                     # Conv1's padding='same', stride 2
        self.conv1 = nn.Conv2d(3, 32, 3, stride=2, padding=0, bias=False)
        self.bn_conv1 = bn(32, EPS, momentum)
        self.conv1_relu = nn.ReLU() if bug == "relu_not_relu6" else nn.ReLU6()
        n = same_out(size, 2)
        blocks, cin = [], 32
        for block_id, (filters, stride, expansion) in enumerate(BLOCKS):
            blocks.append(InvertedResidual(block_id, cin, filters, stride, expansion, n, bug))
            n = valid_out(n + sum(correct_pad(n, 3)), 3, 2) if stride == 2 else n
            cin = filters
        self.blocks = nn.ModuleList(blocks)
        self.conv_1 = nn.Conv2d(320, 1280, 1, bias=False)
        self.conv_1_bn = bn(1280, EPS, momentum)
        self.out_relu = nn.ReLU6()
        self.pool = nn.AdaptiveAvgPool2d(1)                              # GlobalAveragePooling2D ...
        self.flatten = nn.Flatten()                                      # ... to (N, C)
        self.predictions = nn.Linear(1280, classes)
        self.softmax = nn.Softmax(dim=1)                                 # Dense(activation='softmax')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1_relu(self.bn_conv1(self.conv1(self.pad(x))))
        for block in self.blocks:
            x = block(x)
        x = self.out_relu(self.conv_1_bn(self.conv_1(x)))
        return self.softmax(self.predictions(self.flatten(self.pool(x))))


def transfer(keras_model: Any, port: Port, bug: str | None = None) -> None:
    check_bug(bug, BUGS, "mobilenet_v2")
    get = keras_model.get_layer
    conv1 = get("Conv1")
    if bug == "kernel_transposed":
        put(port.conv1.weight, weights(conv1)["kernel"].transpose(3, 2, 1, 0), "Conv1/kernel (kh, kw swapped)")
    else:
        load_conv(port.conv1, conv1)
    load_bn(port.bn_conv1, get("bn_Conv1"))
    for block in port.blocks:
        p = block.prefix
        if block.expand is not None:
            name = p + "expand"
            if bug == "blocks_swapped" and name in SWAPPED_BUG_CONVS:
                a, b = SWAPPED_BUG_CONVS
                name = b if name == a else a
            load_conv(block.expand, get(name))
            load_bn(block.expand_bn, get(p + "expand_BN"))
        load_depthwise(block.depthwise, get(p + "depthwise"))
        load_bn(block.depthwise_bn, get(p + "depthwise_BN"))
        load_conv(block.project, get(p + "project"))
        load_bn(block.project_bn, get(p + "project_BN"))
    load_conv(port.conv_1, get("Conv_1"))
    load_bn(port.conv_1_bn, get("Conv_1_bn"))
    load_dense(port.predictions, get("predictions"))

