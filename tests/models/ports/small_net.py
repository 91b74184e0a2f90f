"""A small Keras functional model (16x16x3 in) for what the four applications do not have, and its torch port:
a DepthwiseConv2D with depth_multiplier=2 (channel c*M + m), a SeparableConv2D with a bias at stride 2 'same' on an
even size (TF pads (0, 1)), a Conv2D with a fused relu, and Flatten + Dense, whose kernel rows are in Keras's
(H, W, C) flatten order and go to the NCHW flatten's (C, H, W) order in transfer.

The separable conv has filters == its input channels (6 == 3 * 2) so that the separable_bias bug (the bias on the
depthwise step instead of the pointwise one) has the right shape.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._common import (
    bn,
    check_bug,
    conv_kernel,
    depthwise_kernel,
    load_bn,
    load_conv,
    load_depthwise,
    load_separable,
    pad2d,
    put,
    same_out,
    tf_same_pad,
    valid_out,
    weights,
)

BUGS = ("multiplier_order", "separable_bias", "flatten_order")
IN_CHANNELS, MULTIPLIER, SEP_FILTERS, CONV_FILTERS, CLASSES = 3, 2, 6, 6, 10
EPS, MOMENTUM = 1e-3, 0.99   # keras.layers.BatchNormalization's defaults


def keras_model(size: int = 16) -> Any:
    """The Keras side, layers named as the transfer below reads them."""
    import keras
    from keras import layers

    inputs = keras.Input((size, size, IN_CHANNELS), name="input")
    x = layers.DepthwiseConv2D(3, depth_multiplier=MULTIPLIER, padding="same", name="dw")(inputs)
    x = layers.BatchNormalization(name="dw_bn")(x)
    x = layers.ReLU(name="dw_relu")(x)
    x = layers.SeparableConv2D(SEP_FILTERS, 3, strides=2, padding="same", use_bias=True, name="sep")(x)
    x = layers.Conv2D(CONV_FILTERS, 3, activation="relu", name="conv")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(CLASSES, name="dense")(x)
    return keras.Model(inputs, x, name="small_net")


class Port(nn.Module):
    def __init__(self, size: int = 16, bug: str | None = None) -> None:
        super().__init__()
        check_bug(bug, BUGS, "small_net")
        C = IN_CHANNELS * MULTIPLIER
        self.dw = nn.Conv2d(IN_CHANNELS, C, 3, padding=1, groups=IN_CHANNELS, bias=True)   # Keras default use_bias
        self.dw_bn = bn(C, EPS, MOMENTUM)
        self.dw_relu = nn.ReLU()
        self.sep_pad = pad2d(*tf_same_pad(size, 3, 2))                  # (0, 1) on an even size
        separable_bias = bug == "separable_bias"
        self.sep_depthwise = nn.Conv2d(C, C, 3, stride=2, padding=0, groups=C, bias=separable_bias)
        self.sep_pointwise = nn.Conv2d(C, SEP_FILTERS, 1, bias=not separable_bias)
        self.conv = nn.Conv2d(SEP_FILTERS, CONV_FILTERS, 3, padding=0)
        self.conv_relu = nn.ReLU()                                        # Conv2D(activation='relu')
        self.flatten = nn.Flatten()
        n = valid_out(same_out(size, 2), 3)
        self.dense = nn.Linear(CONV_FILTERS * n * n, CLASSES)
        self.spatial = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw_relu(self.dw_bn(self.dw(x)))
        x = self.sep_pointwise(self.sep_depthwise(self.sep_pad(x)))
        x = self.conv_relu(self.conv(x))
        return self.dense(self.flatten(x))


def transfer(keras_model: Any, port: Port, bug: str | None = None) -> None:
    check_bug(bug, BUGS, "small_net")
    get = keras_model.get_layer
    if bug == "multiplier_order":
        k = weights(get("dw"))["kernel"]                                # (kh, kw, C, M)
        kh, kw, C, M = k.shape
        put(port.dw.weight, k.transpose(3, 2, 0, 1).reshape(M * C, 1, kh, kw), "dw/kernel (channel m*C + c)")
        put(port.dw.bias, weights(get("dw"))["bias"], "dw/bias")
    else:
        load_depthwise(port.dw, get("dw"))
    load_bn(port.dw_bn, get("dw_bn"))
    if bug == "separable_bias":
        w = weights(get("sep"))
        put(port.sep_depthwise.weight, depthwise_kernel(w["depthwise_kernel"]), "sep/depthwise_kernel")
        put(port.sep_pointwise.weight, conv_kernel(w["pointwise_kernel"]), "sep/pointwise_kernel")
        put(port.sep_depthwise.bias, w["bias"], "sep/bias (on the depthwise step)")
    else:
        load_separable(port.sep_depthwise, port.sep_pointwise, get("sep"))
    load_conv(port.conv, get("conv"))
    if bug == "flatten_order":
        w = weights(get("dense"))
        put(port.dense.weight, w["kernel"].T, "dense/kernel (H, W, C order kept)")
        put(port.dense.bias, w["bias"], "dense/bias")
    else:
        w = weights(get("dense"))
        n, C = port.spatial, CONV_FILTERS
        kernel = w["kernel"].reshape(n, n, C, -1).transpose(3, 2, 0, 1).reshape(-1, C * n * n)
        put(port.dense.weight, kernel, "dense/kernel (rows to C, H, W order)")
        put(port.dense.bias, w["bias"], "dense/bias")
