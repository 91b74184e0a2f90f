"""Hand-written PyTorch ports of four keras.applications models (and one small model of our own), with the Keras ->
torch weight transfer, and deliberately broken variants of them (BUGS). Independent of the harness package: they
are what the harness's model diff is tested against.

Importing this package imports torch (the ports are nn.Modules); keras is imported when a Keras model is built.
Tests import it inside a test or fixture, never at collection.

    model = keras_model("mobilenet_v2", 32)       # weights=None, seeded, then randomize()d (see there)
    port = build("mobilenet_v2", model)            # weights transferred, eval()
    buggy = build("mobilenet_v2", model, bug="bn_eps")
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

NAMES = ("mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "xception", "small_net")
PORTS: dict[str, ModuleType] = {name: importlib.import_module(f".{name}", __name__) for name in NAMES}

# The input size the tests use for each (the smallest the architecture takes or near it).
TEST_SIZES = {"mobilenet_v2": 32, "mobilenet_v3_small": 32, "efficientnet_b0": 32, "xception": 71, "small_net": 16}

# The value range each model's input is meant to have: MobileNetV3 and EfficientNet rescale 0..255 pixels inside
# the model; MobileNetV2 and Xception take preprocess_input's -1..1.
INPUT_RANGES = {
    "mobilenet_v2": (-1.0, 1.0),
    "mobilenet_v3_small": (0.0, 255.0),
    "efficientnet_b0": (0.0, 255.0),
    "xception": (-1.0, 1.0),
    "small_net": (-1.0, 1.0),
}

BUGS: dict[str, tuple[str, str]] = {
    "bn_eps": ("mobilenet_v2", "BatchNorm2d after expanded_conv_depthwise built with eps=1e-5 instead of 1e-3"),
    "bn_momentum": ("mobilenet_v2", "every BatchNorm2d with torch momentum 0.1 instead of 1 - 0.999 (agrees in eval)"),
    "same_symmetric": ("mobilenet_v2", "block_1_pad is ZeroPad2d((1,1,1,1)) instead of TF's (0,1,0,1): shifted values"),
    "multiplier_order": ("small_net", "dw's depth_multiplier=2 kernel converted to channel m*C+c instead of c*M+m"),
    "kernel_transposed": ("mobilenet_v2", "Conv1's 3x3 kernel converted with kh and kw swapped (transpose(3,2,1,0))"),
    "separable_bias": ("small_net", "sep's SeparableConv2D bias put on the depthwise step, none after the pointwise"),
    "relu_not_relu6": ("mobilenet_v2", "Conv1_relu is nn.ReLU instead of nn.ReLU6"),
    "flatten_order": ("small_net", "Dense kernel transposed without the (H,W,C) -> (C,H,W) row permutation"),
    "blocks_swapped": ("mobilenet_v2", "block_4_expand and block_5_expand kernels (both 1x1 32->192) loaded swapped"),
    "missing_bias": ("efficientnet_b0", "block1a_se_reduce built with bias=False (its Keras bias dropped)"),
}

# randomize_weights(): BatchNormalization gamma ~ U(GAMMA), beta ~ N(0, BETA); moving statistics from a batch of
# CALIBRATION[name] inputs: 64 for the 32x32 models, whose last maps are 1x1 (16 overfit them and blow
# EfficientNet's logits up to ~100); Xception's last maps are 3x3 at 71, and 64 of them cost ~8 s.
GAMMA, BETA = (0.5, 2.0), 0.5
CALIBRATION = {"mobilenet_v2": 64, "mobilenet_v3_small": 64, "efficientnet_b0": 64, "xception": 16, "small_net": 64}

# Bugs that change nothing in inference.
SILENT_BUGS = ("bn_momentum",)


def keras_model(name: str, size: int, randomize: bool = True) -> Any:
    """The Keras model, offline: keras.applications with include_top=True, classes=1000, weights=None,
    input_shape=(size, size, 3), built after keras.utils.set_random_seed(0); small_net its own builder.
    randomize=True then gives it the weights described in randomize_weights() (without them a fresh model's
    logits are ~1e-12: zero biases, identity BatchNormalization, and most bugs would not show)."""
    import keras

    keras.utils.set_random_seed(0)
    apps = keras.applications
    builders = {
        "mobilenet_v2": apps.MobileNetV2,
        "mobilenet_v3_small": apps.MobileNetV3Small,
        "efficientnet_b0": apps.EfficientNetB0,
        "xception": apps.Xception,
    }
    if name == "small_net":
        model = PORTS["small_net"].keras_model(size)
    else:
        model = builders[name](include_top=True, weights=None, classes=1000, input_shape=(size, size, 3))
    if randomize:
        randomize_weights(model, sample_input(name, size, batch=CALIBRATION[name], seed=1234))
    return model


def randomize_weights(model: Any, calibration: np.ndarray, seed: int = 0, gamma: tuple[float, float] = GAMMA,
                      beta: float = BETA) -> None:
    """Weights a freshly built model lacks and the ports must carry: every bias (zeros at init) and every
    BatchNormalization gamma/beta (ones/zeros) drawn at random; the Normalization layer (EfficientNet) given
    ImageNet's mean and variance; then every BatchNormalization's moving mean and variance (zeros/ones at init, so
    BN all but the identity) set to the batch statistics of `calibration`, by one training-mode call with
    momentum 0 and the Dropout layers off. The activations then have a trained model's scale (BN outputs ~ gamma,
    beta), so a wrong epsilon, a ReLU for a ReLU6 or a dropped bias shows in the output.

    Such a network is sensitive to small changes, as deep BN networks at random weights are: float32 rounding
    alone moves MobileNetV2's and EfficientNetB0's logits (scale ~5) by ~1e-4, in Keras as in the port, each as far
    from a float64 run of the port as from the other. Part of it is Keras's depthwise initializer (glorot over
    kh*kw*C): depthwise outputs have a variance ~1e-3, the order of BN's epsilon, which is also why bn_eps shows."""
    import keras

    rng = np.random.default_rng(seed)
    norms, dropouts = [], []
    for layer in model.layers:
        for v in layer.weights:
            short = v.path.split("/")[-1]
            shape = tuple(v.shape)
            if short == "bias":
                v.assign(rng.normal(0.0, 0.1, shape).astype("float32"))
            elif short == "gamma":
                v.assign(rng.uniform(*gamma, shape).astype("float32"))
            elif short == "beta":
                v.assign(rng.normal(0.0, beta, shape).astype("float32"))
        if isinstance(layer, keras.layers.Normalization):
            layer.adapt_mean.assign(np.array([0.485, 0.456, 0.406], "float32"))
            layer.adapt_variance.assign(np.array([0.229, 0.224, 0.225], "float32") ** 2)
            layer.finalize_state()                     # what call() reads: layer.mean, layer.variance
        if isinstance(layer, keras.layers.BatchNormalization):
            norms.append((layer, layer.momentum))
            layer.momentum = 0.0
        if isinstance(layer, keras.layers.Dropout):
            dropouts.append((layer, layer.rate))
            layer.rate = 0.0
    model(calibration, training=True)
    for layer, momentum in norms:
        layer.momentum = momentum
    for layer, rate in dropouts:
        layer.rate = rate


def sample_input(name: str, size: int, batch: int = 2, seed: int = 0) -> np.ndarray:
    """A seeded float32 NHWC batch in the model's input range."""
    low, high = INPUT_RANGES[name]
    return np.random.default_rng(seed).uniform(low, high, (batch, size, size, 3)).astype("float32")


def build(name: str, keras_model: Any, bug: str | None = None) -> nn.Module:
    """The port of `name` for keras_model's input size, its weights transferred (with `bug` if any), in eval()."""
    if bug is not None and BUGS[bug][0] != name:
        raise ValueError(f"bug {bug!r} is a bug of {BUGS[bug][0]}, not of {name}")
    module = PORTS[name]
    size = int(keras_model.input_shape[1])
    port = module.Port(size=size, bug=bug)
    module.transfer(keras_model, port, bug=bug)
    return port.eval()


def run(port: nn.Module, x_nhwc: np.ndarray) -> np.ndarray:
    """The port's output on an NHWC batch (given to it as NCHW)."""
    with torch.no_grad():
        return port(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))).numpy()


def run_logits(port: nn.Module, x_nhwc: np.ndarray) -> np.ndarray:
    """What reaches the port's final nn.Softmax (its `softmax` attribute): the logits."""
    seen: list[torch.Tensor] = []
    handle = port.softmax.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    try:
        run(port, x_nhwc)
    finally:
        handle.remove()
    return seen[0].numpy()


def keras_logits(model: Any) -> Any:
    """A Keras sub-model whose output is what the final softmax gets: the predictions Dense with a linear
    activation (a clone sharing its weights), or, for MobileNetV3's Activation('softmax') layer, its input."""
    import keras

    top = model.get_layer("predictions")
    if isinstance(top, keras.layers.Dense):
        linear = keras.layers.Dense(top.units, activation=None, name="predictions_logits")
        features = top.input
        out = linear(features)
        linear.set_weights(top.get_weights())
        return keras.Model(model.input, out)
    return keras.Model(model.input, top.input)
