"""harness.models.layer_refs: hand-computed goldens, the conv families' bound against the single-layer harness bound,
every kind against Keras itself (eager and a compiled model) within its bound, and wrong variants outside it."""
from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.layers.geometry import geometry
from harness.models.layer_refs import KINDS, NoReference, bound, reference
from harness.reference import oracle
from harness.reference.agreement import error_bound

ROOT = Path(__file__).resolve().parents[2]


def y_of(kind, config, xs, weights=None):
    return reference(kind, config, weights or {}, len(xs)).forward([np.asarray(x, dtype=np.float64) for x in xs])


def ratio(y, y_oracle, b):
    err = np.abs(np.asarray(y, dtype=np.float64) - y_oracle)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(err == 0, 0.0, err / b)
    return float(np.max(r)) if r.size else 0.0


# ---------------------------------------------------------------- goldens, written by hand

def test_batch_norm_golden():
    # var + eps = 0.25 and 4: a = 2 / 0.5 = 4 and 1 / 2; y = a (x - mean) + beta
    w = {"gamma": np.array([2.0, 1.0]), "beta": np.array([1.0, -1.0]), "moving_mean": np.array([0.5, 1.0]),
         "moving_variance": np.array([0.24, 3.99])}
    y = y_of("BatchNormalization", {"axis": -1, "epsilon": 0.01}, [np.array([[1.0, 2.0], [0.0, -3.0]])], w)
    np.testing.assert_allclose(y, [[3.0, -0.5], [-1.0, -3.0]], rtol=1e-15)
    no_scale = y_of("BatchNormalization", {"epsilon": 0.01, "scale": False, "center": False},
                    [np.array([[1.0, 2.0]])], {k: v for k, v in w.items() if k.startswith("moving")})
    np.testing.assert_allclose(no_scale, [[1.0, 0.5]], rtol=1e-15)


def test_dense_add_rescaling_concatenate_goldens():
    w = {"kernel": np.array([[1.0, 0.0, 2.0], [3.0, -1.0, 0.0]]), "bias": np.array([0.5, 0.5, 0.5])}
    assert y_of("Dense", {"units": 3, "activation": "relu"}, [np.array([[1.0, 2.0]])], w).tolist() == [[7.5, 0.0, 2.5]]
    assert y_of("Add", {}, [np.array([1.0, -2.0]), np.array(3.0)]).tolist() == [4.0, 1.0]
    assert y_of("Subtract", {}, [np.array([1.0, -2.0]), np.array([0.5, 0.5])]).tolist() == [0.5, -2.5]
    three = [np.array([1.0, 2.0]), np.array([3.0, 3.0]), np.array([2.0, 1.0])]
    assert y_of("Average", {}, three).tolist() == [2.0, 2.0]
    assert y_of("TrueDivide", {}, [np.array([3.0, -1.5]), np.array(6.0)]).tolist() == [0.5, -0.25]
    assert y_of("Rescaling", {"scale": 0.5, "offset": -1.0}, [np.array([2.0, 4.0])]).tolist() == [0.0, 1.0]
    assert y_of("Concatenate", {"axis": -1}, [np.array([[1.0, 2.0]]), np.array([[3.0]])]).tolist() == [[1.0, 2.0, 3.0]]
    assert y_of("Concatenate", {"axis": 1}, [np.ones((1, 1, 2)), np.zeros((1, 2, 2))]).tolist() == \
        [[[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]]


def test_zero_padding_golden():
    x = np.array([1.0, 2.0]).reshape(1, 1, 2, 1)
    y = y_of("ZeroPadding2D", {"padding": ((1, 0), (0, 2))}, [x])
    assert y[0, :, :, 0].tolist() == [[0, 0, 0, 0], [1, 2, 0, 0]]
    assert y_of("ZeroPadding1D", {"padding": (2, 1)}, [np.ones((1, 1, 1))])[0, :, 0].tolist() == [0, 0, 1, 0]


def test_pooling_same_goldens():
    # pool 3, stride 1, 'same' on 4: pads (1, 1); the end windows average their 2 valid elements only
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1)
    cfg = {"pool_size": 3, "strides": 1, "padding": "same"}
    assert y_of("AveragePooling1D", cfg, [x])[0, :, 0].tolist() == [1.5, 2.0, 3.0, 3.5]
    assert y_of("MaxPooling1D", cfg, [-x])[0, :, 0].tolist() == [-1.0, -1.0, -2.0, -3.0]
    # 2x2 input, pool 2, stride 1, 'same': pads (0, 1) on each axis; counts 4, 2, 2, 1
    x2 = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    cfg2 = {"pool_size": (2, 2), "strides": (1, 1), "padding": "same"}
    assert y_of("AveragePooling2D", cfg2, [x2])[0, :, :, 0].tolist() == [[2.5, 3.0], [3.5, 4.0]]
    assert y_of("MaxPooling2D", cfg2, [x2])[0, :, :, 0].tolist() == [[4.0, 4.0], [4.0, 4.0]]
    # pool 2, stride 2, 'same' on 5: output 3, pads (0, 1)
    x5 = np.array([1.0, 5.0, 2.0, 4.0, 3.0]).reshape(1, 5, 1)
    assert y_of("MaxPooling1D", {"pool_size": 2, "strides": 2, "padding": "same"}, [x5])[0, :, 0].tolist() == [5, 4, 3]
    assert y_of("AveragePooling1D", {"pool_size": 2, "padding": "valid"}, [x5])[0, :, 0].tolist() == [3.0, 3.0]


def test_global_pooling_flatten_reshape_goldens():
    x = np.zeros((1, 2, 2, 2))
    x[0, :, :, 0] = [[1.0, 2.0], [3.0, 4.0]]
    x[0, 1, 1, 1] = 8.0
    gap = y_of("GlobalAveragePooling2D", {"keepdims": True}, [x])
    assert gap.shape == (1, 1, 1, 2) and gap.ravel().tolist() == [2.5, 2.0]
    assert y_of("GlobalMaxPooling2D", {}, [x]).tolist() == [[4.0, 8.0]]
    h, w, c = np.meshgrid(range(2), range(2), range(2), indexing="ij")
    code = (100 * h + 10 * w + c)[None].astype(float)        # x[0, h, w, c] = 100 h + 10 w + c
    assert y_of("Flatten", {}, [code]).tolist() == [[0, 1, 10, 11, 100, 101, 110, 111]]
    assert y_of("Reshape", {"target_shape": (4, -1)}, [code])[0, 3].tolist() == [110, 111]


def test_normalization_golden():
    x = np.array([[3.0, 2.0], [3.0, 2.5]])
    cfg = {"axis": (-1,), "mean": [1.0, 2.0], "variance": [4.0, 0.0]}
    # (x - mean) / max(sqrt(var), 1e-7): the zero variance divides by Keras's epsilon
    np.testing.assert_allclose(y_of("Normalization", cfg, [x]), [[1.0, 0.0], [1.0, 5e6]], rtol=1e-15)
    inv = y_of("Normalization", {**cfg, "invert": True}, [x])
    np.testing.assert_allclose(inv, [[7.0, 2.0 + 2e-7], [7.0, 2.0 + 2.5e-7]], rtol=1e-15)
    stats = {"mean": np.array([3.0, 0.0]), "variance": np.array([1.0, 4.0])}
    adapted = y_of("Normalization", {"axis": (-1,)}, [x], stats)
    np.testing.assert_allclose(adapted, [[0.0, 1.0], [0.0, 1.25]], rtol=1e-15)


def test_softmax_and_activation_goldens():
    y = y_of("Softmax", {"axis": -1}, [np.array([[0.0, math.log(3.0)], [5.0, 5.0]])])
    np.testing.assert_allclose(y, [[0.25, 0.75], [0.5, 0.5]], rtol=1e-15)
    assert y_of("Activation", {"activation": "relu"}, [np.array([-1.0, 2.0])]).tolist() == [0.0, 2.0]
    assert y_of("ReLU", {"max_value": 6.0}, [np.array([-1.0, 7.0])]).tolist() == [0.0, 6.0]
    assert y_of("Dropout", {"rate": 0.5}, [np.array([1.0, 2.0])]).tolist() == [1.0, 2.0]


def test_no_reference_says_why():
    with pytest.raises(NoReference, match="no float64 reference for LSTM"):
        reference("LSTM", {}, {}, 1)
    with pytest.raises(NoReference, match="negative_slope"):
        reference("ReLU", {"negative_slope": 0.1}, {}, 1)
    with pytest.raises(NoReference, match="channels_first"):
        reference("Conv2D", {"filters": 2, "kernel_size": 1, "data_format": "channels_first"},
                  {"kernel": np.ones((1, 1, 1, 2)), "bias": np.zeros(2)}, 1)
    with pytest.raises(NoReference, match="activation 'exponential'"):
        reference("Dense", {"activation": "exponential"}, {"kernel": np.ones((1, 1)), "bias": np.zeros(1)}, 1)
    with pytest.raises(NoReference, match="axis"):
        reference("Softmax", {"axis": 1}, {}, 1)


# ---------------------------------------------------------------- the conv families: the single-layer bound

@pytest.mark.parametrize("kind,config,shapes", [
    ("Conv2D", {"filters": 4, "kernel_size": (3, 3), "padding": "same", "groups": 2}, {"kernel": (3, 3, 2, 4)}),
    ("DepthwiseConv1D", {"kernel_size": 3, "depth_multiplier": 2}, {"kernel": (3, 4, 2)}),
    ("SeparableConv2D", {"filters": 3, "kernel_size": 2, "strides": 2}, {"depthwise_kernel": (2, 2, 4, 1),
                                                                         "pointwise_kernel": (1, 1, 4, 3)}),
    ("Conv2DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}, {"kernel": (3, 3, 3, 4)}),
])
def test_conv_bound_is_the_single_layer_bound(kind, config, shapes):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 7, 4) if kind.endswith("1D") else (2, 6, 5, 4))
    weights = {n: rng.normal(size=s) for n, s in shapes.items()}
    out = 4 if kind == "Conv2D" else 8 if kind.startswith("Depthwise") else 3
    weights["bias"] = rng.normal(size=out)
    ref = reference(kind, config, weights, 1)
    harness_cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
    y, b = bound(ref, [x], "float32")
    np.testing.assert_array_equal(y, oracle.run(kind, harness_cfg, x, weights))
    g = geometry(kind, harness_cfg, x.shape)   # the harness's own K and H for the same case
    assert ref.k == g.reduction_length()
    expected = error_bound(g.reduction_length(), "float32", oracle.gauge(kind, harness_cfg, x, weights), y, "linear",
                           oracle.underflow_count(g, x, weights)).bound
    np.testing.assert_allclose(b, expected, rtol=1e-15)


# ---------------------------------------------------------------- every kind against Keras

def _cases(keras):
    """(label, kind, config, make, input shapes, constants): ``make()`` returns a layer or a function of tensors."""
    L, ops = keras.layers, keras.ops
    return [
        ("Conv1D", "Conv1D", lambda: L.Conv1D(4, 3, padding="same", activation="relu"), [(2, 9, 3)], ()),
        ("Conv2D", "Conv2D", lambda: L.Conv2D(6, 3, strides=2, padding="same", groups=2), [(2, 9, 8, 4)], ()),
        ("Conv3D", "Conv3D", lambda: L.Conv3D(4, (3, 2, 2), strides=(1, 2, 1), padding="same", activation="elu"),
         [(2, 5, 6, 4, 3)], ()),
        ("DepthwiseConv1D", "DepthwiseConv1D", lambda: L.DepthwiseConv1D(3, depth_multiplier=2), [(2, 9, 3)], ()),
        ("DepthwiseConv2D", "DepthwiseConv2D", lambda: L.DepthwiseConv2D(3, padding="same", activation="relu6"),
         [(2, 8, 8, 5)], ()),
        ("SeparableConv1D", "SeparableConv1D", lambda: L.SeparableConv1D(4, 3, activation="tanh"), [(2, 9, 3)], ()),
        ("SeparableConv2D", "SeparableConv2D", lambda: L.SeparableConv2D(5, 3, padding="same", activation="swish"),
         [(2, 7, 7, 4)], ()),
        ("Conv1DTranspose", "Conv1DTranspose", lambda: L.Conv1DTranspose(3, 3, strides=2, output_padding=1,
                                                                          activation="relu"), [(2, 7, 4)], ()),
        ("Conv2DTranspose", "Conv2DTranspose", lambda: L.Conv2DTranspose(4, 3, strides=2, padding="same"),
         [(2, 5, 6, 3)], ()),
        ("Conv3DTranspose", "Conv3DTranspose", lambda: L.Conv3DTranspose(2, (2, 3, 2), strides=(2, 1, 1),
                                                                          padding="same"), [(2, 3, 4, 3, 2)], ()),
        ("Dense", "Dense", lambda: L.Dense(7, activation="sigmoid"), [(3, 40)], ()),
        ("Dense-4d", "Dense", lambda: L.Dense(5), [(2, 3, 4, 6)], ()),
        ("Dense-softmax", "Dense", lambda: L.Dense(100, activation="softmax"), [(3, 64)], ()),
        ("Conv2D-softmax", "Conv2D", lambda: L.Conv2D(10, 1, activation="softmax"), [(2, 3, 3, 8)], ()),
        ("BatchNormalization", "BatchNormalization", lambda: L.BatchNormalization(), [(2, 5, 5, 6)], ()),
        ("BN-small-var", "BatchNormalization", lambda: L.BatchNormalization(epsilon=1e-3), [(2, 5, 6)], ()),
        ("BN-axis1", "BatchNormalization", lambda: L.BatchNormalization(axis=1, center=False), [(2, 3, 4, 5)], ()),
        ("BN-no-scale", "BatchNormalization", lambda: L.BatchNormalization(scale=False), [(4, 6)], ()),
        ("Add", "Add", lambda: L.Add(), [(2, 4, 4, 3)] * 3, ()),
        ("Subtract", "Subtract", lambda: L.Subtract(), [(2, 4, 3)] * 2, ()),
        ("Multiply", "Multiply", lambda: L.Multiply(), [(2, 4, 3)] * 3, ()),
        ("Average", "Average", lambda: L.Average(), [(2, 4, 3)] * 3, ()),
        ("Maximum", "Maximum", lambda: L.Maximum(), [(2, 4, 3)] * 2, ()),
        ("Minimum", "Minimum", lambda: L.Minimum(), [(2, 4, 3)] * 2, ()),
        ("Concatenate", "Concatenate", lambda: L.Concatenate(axis=1), [(2, 4, 3), (2, 2, 3)], ()),
        ("x+3", "Add", lambda: lambda t: ops.add(t, 3.0), [(2, 5, 3)], (3.0,)),
        ("x*(1/6)", "Multiply", lambda: lambda t: ops.multiply(t, 1.0 / 6.0), [(2, 5, 3)], (1.0 / 6.0,)),
        ("x/6", "TrueDivide", lambda: lambda t: ops.true_divide(t, 6.0), [(2, 5, 3)], (6.0,)),
        ("x-0.1", "Subtract", lambda: lambda t: ops.subtract(t, 0.1), [(2, 5, 3)], (0.1,)),
        ("x*y", "Multiply", lambda: lambda a, b: ops.multiply(a, b), [(2, 5, 3), (2, 1, 3)], ()),
        ("ZeroPadding1D", "ZeroPadding1D", lambda: L.ZeroPadding1D((1, 2)), [(2, 4, 3)], ()),
        ("ZeroPadding2D", "ZeroPadding2D", lambda: L.ZeroPadding2D(((1, 0), (2, 1))), [(2, 4, 4, 3)], ()),
        ("MaxPooling1D", "MaxPooling1D", lambda: L.MaxPooling1D(3, strides=2, padding="same"), [(2, 9, 3)], ()),
        ("MaxPooling2D", "MaxPooling2D", lambda: L.MaxPooling2D(2), [(2, 7, 6, 3)], ()),
        ("AveragePooling1D", "AveragePooling1D", lambda: L.AveragePooling1D(3, padding="same"), [(2, 10, 3)], ()),
        ("AveragePooling2D", "AveragePooling2D", lambda: L.AveragePooling2D(3, strides=2, padding="same"),
         [(2, 7, 8, 3)], ()),
        ("AvgPool2D-valid", "AveragePooling2D", lambda: L.AveragePooling2D(2), [(2, 6, 6, 3)], ()),
        ("GlobalAveragePooling1D", "GlobalAveragePooling1D", lambda: L.GlobalAveragePooling1D(), [(2, 9, 3)], ()),
        ("GlobalAveragePooling2D", "GlobalAveragePooling2D", lambda: L.GlobalAveragePooling2D(keepdims=True),
         [(2, 7, 7, 16)], ()),
        ("GlobalMaxPooling1D", "GlobalMaxPooling1D", lambda: L.GlobalMaxPooling1D(), [(2, 9, 3)], ()),
        ("GlobalMaxPooling2D", "GlobalMaxPooling2D", lambda: L.GlobalMaxPooling2D(), [(2, 5, 5, 3)], ()),
        # The 3-D kinds (Conv3D's neighbours in a volumetric net): the same references at rank 3.
        ("ZeroPadding3D", "ZeroPadding3D", lambda: L.ZeroPadding3D(((1, 0), (0, 2), (1, 1))), [(2, 3, 4, 3, 2)], ()),
        ("MaxPooling3D", "MaxPooling3D", lambda: L.MaxPooling3D(2, padding="same"), [(2, 5, 4, 3, 2)], ()),
        ("AveragePooling3D", "AveragePooling3D", lambda: L.AveragePooling3D(3, strides=2, padding="same"),
         [(2, 5, 6, 4, 2)], ()),
        ("GlobalAveragePooling3D", "GlobalAveragePooling3D", lambda: L.GlobalAveragePooling3D(), [(2, 3, 4, 5, 6)],
         ()),
        ("GlobalMaxPooling3D", "GlobalMaxPooling3D", lambda: L.GlobalMaxPooling3D(), [(2, 3, 4, 5, 6)], ()),
        ("Flatten", "Flatten", lambda: L.Flatten(), [(2, 3, 4, 5)], ()),
        ("Reshape", "Reshape", lambda: L.Reshape((-1, 6)), [(2, 3, 4, 3)], ()),
        ("Rescaling", "Rescaling", lambda: L.Rescaling(1.0 / 255.0, offset=-1.0), [(2, 4, 4, 3)], ()),
        ("Normalization", "Normalization", lambda: L.Normalization(mean=[0.5, -1.0, 2.0], variance=[4.0, 0.0, 0.3]),
         [(2, 4, 3)], ()),
        ("Normalization-invert", "Normalization",
         lambda: L.Normalization(mean=[0.5, -1.0, 2.0], variance=[4.0, 1e-16, 0.3], invert=True), [(2, 4, 3)], ()),
        ("Normalization-adapted", "Normalization", "adapted", [(2, 4, 3)], ()),
        ("Activation", "Activation", lambda: L.Activation("gelu"), [(2, 4, 3)], ()),
        ("Activation-softmax", "Activation", lambda: L.Activation("softmax"), [(3, 1000)], ()),
        ("ReLU", "ReLU", lambda: L.ReLU(), [(2, 4, 3)], ()),
        ("ReLU6", "ReLU", lambda: L.ReLU(6.0), [(2, 4, 3)], ()),
        ("LeakyReLU", "LeakyReLU", lambda: L.LeakyReLU(0.2), [(2, 4, 3)], ()),
        ("Softmax", "Softmax", lambda: L.Softmax(), [(2, 3, 10)], ()),
        ("Dropout", "Dropout", lambda: L.Dropout(0.5), [(2, 4, 3)], ()),
        ("SpatialDropout2D", "SpatialDropout2D", lambda: L.SpatialDropout2D(0.5), [(2, 4, 4, 3)], ()),
        ("GaussianNoise", "GaussianNoise", lambda: L.GaussianNoise(1.0), [(2, 4, 3)], ()),
        ("Identity", "Identity", lambda: L.Identity(), [(2, 4, 3)], ()),
    ]


LABELS = [c[0] for c in _cases(type("K", (), {"layers": None, "ops": None}))]


def _weights_for(layer, rng):
    """Random weights for a built layer (positive variances), assigned in float32; their float64 values by name."""
    out = {}
    for v in layer.weights:
        name = v.path.split("/")[-1]
        if name == "count":
            continue
        shape = tuple(v.shape)
        if "variance" in name:
            value = rng.uniform(1e-4, 2e-3, shape) if layer.name.startswith("bn_small") else rng.uniform(0.2, 2, shape)
        else:
            value = rng.normal(size=shape)
        v.assign(value.astype(np.float32))
        out[name] = np.asarray(v.numpy(), dtype=np.float64)
    return out


def run_case(keras, case, seed=0):
    """(kind, config, weights, xs as float64, Keras outputs: eager and a compiled model's predict)."""
    label, kind, make, shapes, constants = case
    rng = np.random.default_rng(seed)
    xs = [(rng.normal(size=s) * (3.0 if kind == "Softmax" or "softmax" in label else 1.0)).astype(np.float32)
          for s in shapes]
    if make == "adapted":
        layer = keras.layers.Normalization()
        layer.adapt(rng.normal(2.0, 3.0, size=(50, 4, 3)).astype(np.float32))
        fn = layer
    else:
        fn = make()
    layer = fn if isinstance(fn, keras.layers.Layer) else None
    if layer is not None and label == "BN-small-var":
        layer.name = "bn_small"
    def call(tensors):   # a merge layer takes a list, a keras op its operands
        return fn(tensors[0]) if len(tensors) == 1 else fn(tensors) if layer is not None else fn(*tensors)

    inputs = [keras.Input(shape=s[1:], batch_size=s[0]) for s in shapes]
    model = keras.Model(inputs, call(inputs))
    if make == "adapted":
        weights = {v.path.split("/")[-1]: np.asarray(v.numpy(), dtype=np.float64) for v in layer.weights
                   if v.path.split("/")[-1] != "count"}
    else:
        weights = _weights_for(layer, rng) if layer is not None else {}
    graph = np.asarray(model.predict(xs if len(xs) > 1 else xs[0], verbose=0))
    eager = np.asarray(call(xs))
    config = layer.get_config() if layer is not None else {}
    xs64 = [x.astype(np.float64) for x in xs] + [np.array(c) for c in constants]
    return kind, config, weights, xs64, (eager, graph)


@pytest.fixture(scope="module")
def keras():
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed")
    # keras loads at the first test that needs it, never at collection
    from harness.keras_layer import import_keras

    return import_keras()


@pytest.mark.parametrize("label", LABELS)
def test_keras_within_bound(keras, label):
    (case,) = [c for c in _cases(keras) if c[0] == label]
    kind, config, weights, xs, outputs = run_case(keras, case)
    ref = reference(kind, config, weights, len(xs))
    y, b = bound(ref, xs, "float32")
    for name, y_keras in zip(("eager", "compiled"), outputs):
        assert y_keras.shape == y.shape, (name, y_keras.shape, y.shape)
        r = ratio(y_keras, y, b)
        if os.environ.get("LAYER_REFS_RATIOS"):
            print(f"RATIO {label} {name} {r:.4g}")
        assert r <= 1.0, f"{label} ({name}): max |y_keras - y_oracle| / bound = {r}"


def test_every_kind_is_exercised_against_keras(keras):
    exercised = {c[1] for c in _cases(keras)}
    assert set(KINDS) - exercised <= {"Divide", "InputLayer", "GaussianDropout", "AlphaDropout", "SpatialDropout1D",
                                      "ActivityRegularization"}


# ---------------------------------------------------------------- wrong variants exceed the bound

def test_batch_norm_wrong_epsilon_exceeds(keras):
    (case,) = [c for c in _cases(keras) if c[0] == "BN-small-var"]
    kind, config, weights, xs, (eager, _) = run_case(keras, case)
    _, b = bound(reference(kind, config, weights, 1), xs, "float32")
    y_wrong = reference(kind, {**config, "epsilon": 1e-5}, weights, 1).forward(xs)
    y_right, _ = bound(reference(kind, config, weights, 1), xs, "float32")
    assert ratio(y_wrong, y_right, b) > 1.0
    wrong_y, wrong_b = bound(reference(kind, {**config, "epsilon": 1e-5}, weights, 1), xs, "float32")
    assert ratio(eager, wrong_y, wrong_b) > 1.0   # Keras judged against the wrong epsilon


def test_average_pool_counting_padding_exceeds():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 7, 3)).astype(np.float32).astype(np.float64)
    ref = reference("AveragePooling1D", {"pool_size": 3, "strides": 1, "padding": "same"}, {}, 1)
    y, b = bound(ref, [x], "float32")
    padded = np.pad(x, [(0, 0), (1, 1), (0, 0)])
    y_wrong = (padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]) / 3.0   # padded zeros counted
    assert ratio(y_wrong, y, b) > 1.0


def test_flatten_channels_first_order_exceeds():
    x = np.random.default_rng(4).normal(size=(2, 3, 4, 5))
    y, b = bound(reference("Flatten", {}, {}, 1), [x], "float32")
    assert ratio(np.transpose(x, (0, 3, 1, 2)).reshape(2, -1), y, b) > 1.0
    assert np.all(b == 0.0)   # data movement is exact


def test_softmax_wrong_axis_exceeds():
    x = np.random.default_rng(5).normal(size=(3, 4)) * 3
    y, b = bound(reference("Softmax", {"axis": -1}, {}, 1), [x], "float32")
    e = np.exp(x - x.max(axis=0))
    assert ratio(e / e.sum(axis=0), y, b) > 1.0


def test_keras_within_bound_without_onednn():
    """The same comparisons on TensorFlow's other CPU kernel path (oneDNN off: a fresh process)."""
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        pytest.skip("already the oneDNN-off run")
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed")
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:logging", "-p", "no:cacheprovider",
                           "-o", "addopts=", __file__, "-k", "within_bound and not without_onednn"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
