"""keras.applications.Xception (include_top=True, classes=1000) by hand in PyTorch, NCHW.

Layers called in the order of the Keras model's `layers` (graph depth order): in blocks 2-4 and 13 the 1x1 stride-2
shortcut conv comes after the main path's second BatchNormalization, its BatchNormalization after the max pool (the
source creates them first). BatchNormalization is Keras's default
(epsilon 1e-3, momentum 0.99). Each SeparableConv2D (no bias) is two leaf modules: a depthwise nn.Conv2d(groups=C)
then a pointwise 1x1 nn.Conv2d. The stride-2 MaxPooling2D(3, padding='same') pools over TF's padding: symmetric
on an odd size (every one at input 71, and at 299 all but block3's), so MaxPool2d(padding=1); on an even size TF pads
(0, 1), and the port puts an nn.ConstantPad2d(-inf) before a padding=0 MaxPool2d (the max never picks the pad, as
TF's pooling ignores it). The residual 1x1 stride-2 'same' convs need no padding. block1's two 3x3 convs are
'valid' in Keras. The four residual Conv2D/BatchNormalization pairs are unnamed in Keras (conv2d, conv2d_1, ...,
numbered by whatever Keras built before): transfer finds them by their filter counts, 128, 256, 728, 1024, which
no other unnamed Conv2D/BatchNormalization of the model has.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._common import bn, check_bug, load_bn, load_conv, load_dense, load_separable, same_out, tf_same_pad, valid_out

BUGS: tuple[str, ...] = ()
EPS, MOMENTUM = 1e-3, 0.99


class SeparableConv(nn.Module):
    """SeparableConv2D(filters, 3, padding='same', use_bias=False) + its BatchNormalization."""

    def __init__(self, name: str, cin: int, filters: int) -> None:
        super().__init__()
        self.name = name
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, filters, 1, bias=False)
        self.bn = bn(filters, EPS, MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pointwise(self.depthwise(x)))


def max_pool_same(n: int) -> nn.Module:
    """MaxPooling2D((3, 3), strides=(2, 2), padding='same') on an axis of size n."""
    before, after = tf_same_pad(n, 3, 2)
    if before == after:
        return nn.MaxPool2d(3, stride=2, padding=before)
    return nn.Sequential(nn.ConstantPad2d((before, after, before, after), float("-inf")), nn.MaxPool2d(3, stride=2))


class DownBlock(nn.Module):
    """Blocks 2, 3, 4, 13: [relu] sepconv1 bn relu sepconv2 bn, max pool, plus the shortcut: the unnamed
    Conv2D(filters, 1, strides=2, padding='same', use_bias=False) + BatchNormalization of the block's input. Called
    in the order of keras_model.layers (by graph depth): ... sepconv2_bn, shortcut conv, pool, shortcut BN, add."""

    def __init__(self, block: int, cin: int, mid: int, filters: int, size: int) -> None:
        super().__init__()
        self.residual_conv = nn.Conv2d(cin, filters, 1, stride=2, bias=False)     # 'same' at 1x1: no padding
        self.residual_bn = bn(filters, EPS, MOMENTUM)
        self.first_relu: nn.Module | None = nn.ReLU() if block != 2 else None   # block2 has none: Keras's order
        self.sepconv1 = SeparableConv(f"block{block}_sepconv1", cin, mid)
        self.relu = nn.ReLU()
        self.sepconv2 = SeparableConv(f"block{block}_sepconv2", mid, filters)
        self.pool = max_pool_same(size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs if self.first_relu is None else self.first_relu(inputs)
        x = self.sepconv2(self.relu(self.sepconv1(x)))
        residual = self.residual_conv(inputs)
        x = self.pool(x)
        return x + self.residual_bn(residual)


class MiddleBlock(nn.Module):
    """Blocks 5-12: three (relu, sepconv 728, bn) and the identity add."""

    def __init__(self, block: int) -> None:
        super().__init__()
        self.relu1 = nn.ReLU()
        self.sepconv1 = SeparableConv(f"block{block}_sepconv1", 728, 728)
        self.relu2 = nn.ReLU()
        self.sepconv2 = SeparableConv(f"block{block}_sepconv2", 728, 728)
        self.relu3 = nn.ReLU()
        self.sepconv3 = SeparableConv(f"block{block}_sepconv3", 728, 728)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self.sepconv1(self.relu1(inputs))
        x = self.sepconv2(self.relu2(x))
        x = self.sepconv3(self.relu3(x))
        return x + inputs


class Port(nn.Module):
    def __init__(self, size: int = 299, classes: int = 1000, bug: str | None = None) -> None:
        super().__init__()
        check_bug(bug, BUGS, "xception")
        self.block1_conv1 = nn.Conv2d(3, 32, 3, stride=2, padding=0, bias=False)
        self.block1_conv1_bn = bn(32, EPS, MOMENTUM)
        self.block1_conv1_act = nn.ReLU()
        self.block1_conv2 = nn.Conv2d(32, 64, 3, padding=0, bias=False)
        self.block1_conv2_bn = bn(64, EPS, MOMENTUM)
        self.block1_conv2_act = nn.ReLU()
        n = valid_out(valid_out(size, 3, 2), 3)
        self.block2 = DownBlock(2, 64, 128, 128, n)
        n = same_out(n, 2)
        self.block3 = DownBlock(3, 128, 256, 256, n)
        n = same_out(n, 2)
        self.block4 = DownBlock(4, 256, 728, 728, n)
        n = same_out(n, 2)
        self.middle = nn.ModuleList(MiddleBlock(b) for b in range(5, 13))
        self.block13 = DownBlock(13, 728, 728, 1024, n)
        self.block14_sepconv1 = SeparableConv("block14_sepconv1", 1024, 1536)
        self.block14_sepconv1_act = nn.ReLU()
        self.block14_sepconv2 = SeparableConv("block14_sepconv2", 1536, 2048)
        self.block14_sepconv2_act = nn.ReLU()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)                  # GlobalAveragePooling2D ...
        self.flatten = nn.Flatten()                              # ... (N, C)
        self.predictions = nn.Linear(2048, classes)
        self.softmax = nn.Softmax(dim=1)                         # Dense(activation='softmax')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block1_conv1_act(self.block1_conv1_bn(self.block1_conv1(x)))
        x = self.block1_conv2_act(self.block1_conv2_bn(self.block1_conv2(x)))
        x = self.block4(self.block3(self.block2(x)))
        for block in self.middle:
            x = block(x)
        x = self.block13(x)
        x = self.block14_sepconv1_act(self.block14_sepconv1(x))
        x = self.block14_sepconv2_act(self.block14_sepconv2(x))
        return self.softmax(self.predictions(self.flatten(self.avg_pool(x))))


def transfer(keras_model: Any, port: Port, bug: str | None = None) -> None:
    import keras

    check_bug(bug, BUGS, "xception")
    get = keras_model.get_layer
    for name in ("block1_conv1", "block1_conv2"):
        load_conv(getattr(port, name), get(name))
        load_bn(getattr(port, name + "_bn"), get(name + "_bn"))
    # The unnamed residual pairs, by filter count.
    unnamed_convs = {layer.filters: layer for layer in keras_model.layers
                     if isinstance(layer, keras.layers.Conv2D) and type(layer).__name__ == "Conv2D"
                     and not layer.name.startswith("block")}
    unnamed_bns = {int(layer.moving_mean.shape[0]): layer for layer in keras_model.layers
                   if isinstance(layer, keras.layers.BatchNormalization) and not layer.name.startswith("block")}
    if sorted(unnamed_convs) != [128, 256, 728, 1024] or sorted(unnamed_bns) != [128, 256, 728, 1024]:
        raise ValueError(f"residual layers not as expected: {sorted(unnamed_convs)}, {sorted(unnamed_bns)}")
    separables = []
    for down in (port.block2, port.block3, port.block4, port.block13):
        filters = down.residual_conv.out_channels
        load_conv(down.residual_conv, unnamed_convs[filters])
        load_bn(down.residual_bn, unnamed_bns[filters])
        separables += [down.sepconv1, down.sepconv2]
    for middle in port.middle:
        separables += [middle.sepconv1, middle.sepconv2, middle.sepconv3]
    separables += [port.block14_sepconv1, port.block14_sepconv2]
    for sep in separables:
        load_separable(sep.depthwise, sep.pointwise, get(sep.name))
        load_bn(sep.bn, get(sep.name + "_bn"))
    load_dense(port.predictions, get("predictions"))
