"""The hand-written PyTorch ports in tests/models/ports/ compute what their keras.applications models compute, and
each deliberately broken port (ports.BUGS) does not (bn_momentum, which only matters in training, does).

The ports are independent of the harness: they are what the harness's model diff is tested against, so they are
checked here against Keras alone. torch and keras are imported inside the fixtures, never at collection.

Two comparisons per model, on a seeded batch of 2:
- the final output (softmax probabilities; small_net's Dense logits) with rtol=1e-4, atol=1e-5;
- the pre-softmax logits (Keras: the predictions Dense cloned with a linear activation, or the input of MobileNetV3's
  Activation('softmax'); torch: the input of the port's nn.Softmax), within the float32 noise of the model: these
  randomized deep BN networks move their logits (scale ~5) by ~1e-4 from float32 rounding alone, in Keras as in the
  port, so the bound is 1e-5 + 10x the port's own float32-vs-float64 difference. A bug must move the logits by
  more than 100x that bound and the final output past rtol=1e-4, atol=1e-5.
"""
from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from testkit import hand_ports

NAMES = ("mobilenet_v2", "small_net", "efficientnet_b0", "mobilenet_v3_small", "xception")
BUG_NAMES = (
    "bn_eps", "bn_momentum", "same_symmetric", "multiplier_order", "kernel_transposed", "separable_bias",
    "relu_not_relu6", "flatten_order", "blocks_swapped", "missing_bias",
)
RTOL, ATOL = 1e-4, 1e-5


def _ports() -> Any:
    return hand_ports()


class Reference:
    """One Keras model at its test size, its input, its outputs, and the noise bound of its logits."""

    def __init__(self, name: str) -> None:
        ports = self.ports = _ports()
        self.name = name
        self.size = ports.TEST_SIZES[name]
        self.model = ports.keras_model(name, self.size)
        self.x = ports.sample_input(name, self.size, batch=2, seed=0)
        self.out = np.asarray(self.model(self.x, training=False))
        self.has_softmax = name != "small_net"
        self.logits = np.asarray(ports.keras_logits(self.model)(self.x)) if self.has_softmax else self.out
        port = ports.build(name, self.model)
        exact = self.port_logits(copy.deepcopy(port).double(), self.x.astype("float64"))
        self.noise = float(np.abs(self.port_logits(port, self.x) - exact).max())
        self.bound = ATOL + 10 * self.noise

    def port_logits(self, port, x):
        return self.ports.run_logits(port, x) if self.has_softmax else self.ports.run(port, x)


@pytest.fixture(scope="module")
def reference():
    """Reference(name), built once per module for each model a test asks for."""
    cache: dict[str, Reference] = {}

    def get(name: str) -> Reference:
        if name not in cache:
            cache[name] = Reference(name)
        return cache[name]

    return get


def test_bug_table_is_complete():
    ports = _ports()
    assert tuple(ports.BUGS) == BUG_NAMES
    assert set(ports.PORTS) == set(NAMES)
    for bug, (name, description) in ports.BUGS.items():
        assert bug in ports.PORTS[name].BUGS, (bug, name)
        assert description
    for name, module in ports.PORTS.items():
        assert {bug for bug, (owner, _) in ports.BUGS.items() if owner == name} == set(module.BUGS), name


@pytest.mark.parametrize("name", NAMES)
def test_port_matches_keras(reference, name):
    ref = reference(name)
    port = ref.ports.build(name, ref.model)
    assert not port.training
    out = ref.ports.run(port, ref.x)
    assert out.shape == ref.out.shape
    np.testing.assert_allclose(out, ref.out, rtol=RTOL, atol=ATOL, err_msg=f"{name}: final output")
    logits = ref.port_logits(port, ref.x)
    diff = float(np.abs(logits - ref.logits).max())
    assert diff <= ref.bound, f"{name}: logits differ by {diff:.3g}, float32 noise bound {ref.bound:.3g}"


@pytest.mark.parametrize("name", NAMES)
def test_every_keras_weight_is_in_the_port(reference, name):
    """As many numbers in the port's state (parameters, BN running statistics, Normalization's mean/variance) as
    in the Keras model's weights (less Normalization's sample count): nothing left at torch's initial values."""
    ref = reference(name)
    port = ref.ports.build(name, ref.model)
    torch_count = sum(t.numel() for key, t in port.state_dict().items() if not key.endswith("num_batches_tracked"))
    keras_count = sum(int(np.prod(v.shape)) for v in ref.model.weights if not v.path.endswith("/count"))
    assert torch_count == keras_count


ACTIVATIONS = {"relu": "ReLU", "silu": "SiLU", "swish": "SiLU", "hard_silu": "Hardswish", "hard_swish": "Hardswish",
               "sigmoid": "Sigmoid", "softmax": "Softmax", "linear": None}


def expected_leaves(layer) -> list[set[str]]:
    """The torch leaf modules (type names, in call order; a set where either fits) that stand for one Keras layer."""
    kind = type(layer).__name__
    act = ACTIVATIONS[layer.activation.__name__] if hasattr(layer, "activation") else None
    tail = [{act}] if act else []
    pad = []
    if kind in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D") and layer.padding == "same" \
            and tuple(layer.strides) != (1, 1) and max(layer.kernel_size) > 1:
        pad = [{"ZeroPad2d"}]   # TF's 'same' at stride 2 is an explicit (asymmetric) nn.ZeroPad2d in the ports
    if kind in ("Conv2D", "DepthwiseConv2D"):
        return [*pad, {"Conv2d"}, *tail]
    if kind == "SeparableConv2D":
        return [*pad, {"Conv2d"}, {"Conv2d"}, *tail]
    if kind == "Dense":
        return [{"Linear"}, *tail]
    if kind == "Activation":
        return tail
    if kind == "ReLU":   # MobileNetV3's hard_sigmoid is ReLU(6)(x + 3) / 6: one nn.Hardsigmoid
        return [{"ReLU6", "Hardsigmoid"}] if layer.max_value == 6 else [{"ReLU"}]
    if kind == "GlobalAveragePooling2D":
        return [{"AdaptiveAvgPool2d"}] + ([] if layer.keepdims else [{"Flatten"}])
    if kind == "MaxPooling2D":
        return [{"MaxPool2d"}]   # (an odd size at every pool at the test sizes: symmetric padding, no pad module)
    simple = {"BatchNormalization": "BatchNorm2d", "ZeroPadding2D": "ZeroPad2d", "Flatten": "Flatten",
              "Reshape": "Unflatten", "Dropout": "Dropout", "Rescaling": "Rescale", "Normalization": "Normalize"}
    if kind in simple:
        return [{simple[kind]}]
    assert kind in ("InputLayer", "Add", "Multiply"), kind
    return []


@pytest.mark.parametrize("name", NAMES)
def test_leaf_modules_follow_the_keras_layers(reference, name):
    """The port's leaf modules, in the order its forward calls them, are the Keras model's layers in
    keras_model.layers order, each as the module(s) expected_leaves gives: what a model diff aligns."""

    ref = reference(name)
    port = ref.ports.build(name, ref.model)
    called: list[str] = []
    handles = [m.register_forward_hook(lambda m, a, o: called.append(type(m).__name__))
               for m in port.modules() if not list(m.children())]
    try:
        ref.ports.run(port, ref.x)
    finally:
        for handle in handles:
            handle.remove()
    expected = [(layer.name, want) for layer in ref.model.layers for want in expected_leaves(layer)]
    assert len(called) == len(expected), f"{name}: {len(called)} leaf calls, {len(expected)} expected"
    for i, (got, (layer, want)) in enumerate(zip(called, expected)):
        assert got in want, f"{name}: leaf call {i} is {got}, Keras layer {layer} wants {sorted(want)}"


@pytest.mark.parametrize("bug", BUG_NAMES)
def test_bug_shows_or_not(reference, bug):
    ports = _ports()
    name = ports.BUGS[bug][0]
    ref = reference(name)
    buggy = ports.build(name, ref.model, bug=bug)
    out = ports.run(buggy, ref.x)
    diff = float(np.abs(ref.port_logits(buggy, ref.x) - ref.logits).max())
    if bug in ports.SILENT_BUGS:
        np.testing.assert_allclose(out, ref.out, rtol=RTOL, atol=ATOL, err_msg=f"{bug}: final output")
        assert diff <= ref.bound, f"{bug}: logits differ by {diff:.3g}, bound {ref.bound:.3g}"
    else:
        assert not np.allclose(out, ref.out, rtol=RTOL, atol=ATOL), f"{bug}: final output unchanged"
        assert diff > 100 * ref.bound, f"{bug}: logits differ by only {diff:.3g} (bound {ref.bound:.3g})"


def test_bug_of_another_port_is_refused(reference):
    ports = _ports()
    ref = reference("small_net")
    with pytest.raises(ValueError, match="bn_eps"):
        ports.build("small_net", ref.model, bug="bn_eps")
