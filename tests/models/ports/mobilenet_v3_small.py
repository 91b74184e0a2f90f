"""keras.applications.MobileNetV3Small (alpha=1.0, minimalistic=False, include_top=True, classes=1000,
include_preprocessing=True) by hand in PyTorch, NCHW.

Layer order as keras/src/applications/mobilenet_v3.py builds it. Rescaling(1/127.5, offset=-1) is a leaf module of
ours (Rescale). Keras's hard_swish (Activation('hard_swish')) is nn.Hardswish; its hard_sigmoid,
ReLU(6)(x + 3) * (1/6), is nn.Hardsigmoid (one module for the ReLU layer and the two ops around it). The first
conv is a stride-2 padding='same' Conv2D without a padding layer in Keras: an explicit nn.ZeroPad2d here. The top
is the Keras one: GlobalAveragePooling2D(keepdims=True) (nn.AdaptiveAvgPool2d(1)), conv_2 1x1 with bias,
hard_swish, Dropout(0.2), the 1x1 'logits' conv, Flatten, Activation('softmax').
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._common import (
    Rescale,
    bn,
    check_bug,
    correct_pad,
    load_bn,
    load_conv,
    load_depthwise,
    pad2d,
    same_out,
    tf_same_pad,
    valid_out,
)

BUGS: tuple[str, ...] = ()
EPS, MOMENTUM = 1e-3, 0.999
SE_RATIO, LAST_POINT_CH, DROPOUT_RATE = 0.25, 1024, 0.2

# expansion, filters, kernel, stride, squeeze-excite, activation ("relu" / "hswish"); block_id is the index
BLOCKS = (
    (1, 16, 3, 2, True, "relu"),
    (72.0 / 16, 24, 3, 2, False, "relu"),
    (88.0 / 24, 24, 3, 1, False, "relu"),
    (4, 40, 5, 2, True, "hswish"),
    (6, 40, 5, 1, True, "hswish"),
    (6, 40, 5, 1, True, "hswish"),
    (3, 48, 5, 1, True, "hswish"),
    (3, 48, 5, 1, True, "hswish"),
    (6, 96, 5, 2, True, "hswish"),
    (6, 96, 5, 1, True, "hswish"),
    (6, 96, 5, 1, True, "hswish"),
)


def depth(v: float, divisor: int = 8) -> int:
    """mobilenet_v3._depth."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def activation(kind: str) -> nn.Module:
    return nn.ReLU() if kind == "relu" else nn.Hardswish()


class InvertedResidual(nn.Module):
    def __init__(self, block_id: int, cin: int, expansion: float, filters: int, kernel: int, stride: int, se: bool,
                 act: str, size: int) -> None:
        super().__init__()
        self.prefix = f"expanded_conv_{block_id}_" if block_id else "expanded_conv_"
        hidden = depth(cin * expansion)
        self.expand: nn.Module | None = None
        if block_id:
            self.expand = nn.Conv2d(cin, hidden, 1, bias=False)
            self.expand_bn = bn(hidden, EPS, MOMENTUM)
            self.expand_act = activation(act)
        self.depthwise_pad: nn.Module | None = None
        if stride == 2:
            self.depthwise_pad = pad2d(*correct_pad(size, kernel))
            padding = 0
        else:
            padding = kernel // 2
        self.depthwise = nn.Conv2d(hidden, hidden, kernel, stride=stride, padding=padding, groups=hidden, bias=False)
        self.depthwise_bn = bn(hidden, EPS, MOMENTUM)
        self.depthwise_act = activation(act)
        self.se = se
        if se:
            squeeze = depth(hidden * SE_RATIO)
            self.squeeze_excite_avg_pool = nn.AdaptiveAvgPool2d(1)      # GlobalAveragePooling2D(keepdims=True)
            self.squeeze_excite_conv = nn.Conv2d(hidden, squeeze, 1)
            self.squeeze_excite_relu = nn.ReLU()
            self.squeeze_excite_conv_1 = nn.Conv2d(squeeze, hidden, 1)
            self.squeeze_excite_hard_sigmoid = nn.Hardsigmoid()
        self.project = nn.Conv2d(hidden, filters, 1, bias=False)
        self.project_bn = bn(filters, EPS, MOMENTUM)
        self.residual = stride == 1 and cin == filters

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand is not None:
            x = self.expand_act(self.expand_bn(self.expand(x)))
        if self.depthwise_pad is not None:
            x = self.depthwise_pad(x)
        x = self.depthwise_act(self.depthwise_bn(self.depthwise(x)))
        if self.se:
            s = self.squeeze_excite_relu(self.squeeze_excite_conv(self.squeeze_excite_avg_pool(x)))
            s = self.squeeze_excite_hard_sigmoid(self.squeeze_excite_conv_1(s))
            x = x * s                                                     # squeeze_excite_mul
        x = self.project_bn(self.project(x))
        return inputs + x if self.residual else x


class Port(nn.Module):
    def __init__(self, size: int = 224, classes: int = 1000, bug: str | None = None) -> None:
        super().__init__()
        check_bug(bug, BUGS, "mobilenet_v3_small")
        self.rescaling = Rescale(1.0 / 127.5, -1.0)
        self.conv_pad = pad2d(*tf_same_pad(size, 3, 2))                  # conv's padding='same', stride 2
        self.conv = nn.Conv2d(3, 16, 3, stride=2, padding=0, bias=False)
        self.conv_bn = bn(16, EPS, MOMENTUM)
        self.conv_act = nn.Hardswish()
        n, cin, blocks = same_out(size, 2), 16, []
        for block_id, (expansion, filters, kernel, stride, se, act) in enumerate(BLOCKS):
            blocks.append(InvertedResidual(block_id, cin, expansion, filters, kernel, stride, se, act, n))
            if stride == 2:
                n = valid_out(n + sum(correct_pad(n, kernel)), kernel, 2)
            cin = filters
        self.blocks = nn.ModuleList(blocks)
        last_conv_ch = depth(cin * 6)
        self.conv_1 = nn.Conv2d(cin, last_conv_ch, 1, bias=False)
        self.conv_1_bn = bn(last_conv_ch, EPS, MOMENTUM)
        self.conv_1_act = nn.Hardswish()
        self.pool = nn.AdaptiveAvgPool2d(1)                               # GlobalAveragePooling2D(keepdims=True)
        self.conv_2 = nn.Conv2d(last_conv_ch, LAST_POINT_CH, 1, bias=True)
        self.conv_2_act = nn.Hardswish()
        self.dropout = nn.Dropout(DROPOUT_RATE)
        self.logits = nn.Conv2d(LAST_POINT_CH, classes, 1, bias=True)
        self.flatten = nn.Flatten()
        self.softmax = nn.Softmax(dim=1)                                  # Activation('softmax'), "predictions"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_act(self.conv_bn(self.conv(self.conv_pad(self.rescaling(x)))))
        for block in self.blocks:
            x = block(x)
        x = self.conv_1_act(self.conv_1_bn(self.conv_1(x)))
        x = self.dropout(self.conv_2_act(self.conv_2(self.pool(x))))
        return self.softmax(self.flatten(self.logits(x)))


def transfer(keras_model: Any, port: Port, bug: str | None = None) -> None:
    check_bug(bug, BUGS, "mobilenet_v3_small")
    get = keras_model.get_layer
    load_conv(port.conv, get("conv"))
    load_bn(port.conv_bn, get("conv_bn"))
    for block in port.blocks:
        p = block.prefix
        if block.expand is not None:
            load_conv(block.expand, get(p + "expand"))
            load_bn(block.expand_bn, get(p + "expand_bn"))
        load_depthwise(block.depthwise, get(p + "depthwise"))
        load_bn(block.depthwise_bn, get(p + "depthwise_bn"))
        if block.se:
            load_conv(block.squeeze_excite_conv, get(p + "squeeze_excite_conv"))
            load_conv(block.squeeze_excite_conv_1, get(p + "squeeze_excite_conv_1"))
        load_conv(block.project, get(p + "project"))
        load_bn(block.project_bn, get(p + "project_bn"))
    load_conv(port.conv_1, get("conv_1"))
    load_bn(port.conv_1_bn, get("conv_1_bn"))
    load_conv(port.conv_2, get("conv_2"))
    load_conv(port.logits, get("logits"))
