"""The float64 backward reference (harness.layers.conv_grads, Family.backward, harness.reference.gradients) against torch
float64 autograd, hand-computed literals, central differences, its own gauge, and the frameworks' kink conventions."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from harness.reference import oracle
from harness.layers.activations import ACTIVATION_TABLE, ACTIVATIONS
from harness.reference.gradients import reference_gradients
from harness.layers.families import LAYERS
from harness.layers.geometry import geometry, output_shape

# ---------------------------------------------------------------- torch float64 autograd, written independently


def _tf_pads(padding: str, n: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's padding, restated here (not harness.layers.padding) so that the reference is checked against it."""
    ek = (k - 1) * d + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return ek - 1, 0
    total = max(0, (math.ceil(n / s) - 1) * s + ek - n)
    return total // 2, total - total // 2


def _keras_transpose_crop(padding: str, n: int, k: int, s: int, d: int, op: int | None) -> tuple[int, int]:
    """What Keras keeps of a transposed conv's full scatter ((n-1)*s + ek long), restated here: its output length
    (keras deconv_output_length) from the position TensorFlow's 'SAME' gives the conv it is the gradient of."""
    ek = (k - 1) * d + 1
    full = (n - 1) * s + ek
    if op is None:
        length = n * s + max(ek - s, 0) if padding == "valid" else n * s
    else:
        length = (n - 1) * s + ek - 2 * (ek // 2 if padding == "same" else 0) + op
    before = max(full - length, 0) // 2 if padding == "same" else 0
    return before, full - length - before


def _hard_sigmoid_float64(y):
    """relu6(y + 3) / 6, Keras's definition: torch 2.13's float64 hardsigmoid backward multiplies by float32's 1/6
    (0.1666666716337204, 3e-8 relative off; harness/layers/activations.py), which this comparison at rtol 1e-10 would
    report instead of the reference's own errors."""
    import torch.nn.functional as F

    return F.relu6(y + 3.0) / 6.0


# The activations whose torch function is not float64-exact in autograd, written so that it is.
_TORCH_FLOAT64 = {"hard_sigmoid": _hard_sigmoid_float64}


def _torch_gradients(g, x, weights, dy) -> dict[str, np.ndarray]:
    """The layer in torch float64 (F.pad with the Keras amounts, then F.convNd), differentiated by autograd.

    The leaves are x and dy in the layer's data_format and the Keras-layout weights: the layout changes happen
    inside the graph, so autograd hands back gradients in the layouts the reference returns."""
    import torch
    import torch.nn.functional as F

    r = g.kind.rank
    convnd = (F.conv1d, F.conv2d, F.conv3d)[r - 1]
    leaves = {"x": torch.tensor(x, requires_grad=True),
              **{k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}}
    xt = leaves["x"] if g.channels_first else leaves["x"].movedim(-1, 1)
    spatial = xt.shape[2:]
    pads: list[int] = []
    for n, k, s, d in reversed(list(zip(spatial, g.kernel_size, g.strides, g.dilation))):
        pads.extend(_tf_pads(g.padding, n, k, s, d))        # F.pad lists the last axis first
    conv = dict(stride=g.strides, dilation=g.dilation)

    def depthwise_weight(kernel):                          # (*k, C, M) -> (C*M, 1, *k), channel c*M + m
        return kernel.movedim((r, r + 1), (0, 1)).reshape(-1, 1, *kernel.shape[:r])

    xp = F.pad(xt, pads)
    c = xt.shape[1]
    if g.kind.family.name == "conv_transpose":           # the scatter (torch's, uncropped), then Keras's crop
        transposed = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[r - 1]
        y = transposed(xt, leaves["kernel"].permute(r + 1, r, *range(r)), **conv)
        ops = g.arg("output_padding") or (None,) * r
        crop = [_keras_transpose_crop(g.padding, n, k, s, d, op)
                for n, k, s, d, op in zip(spatial, g.kernel_size, g.strides, g.dilation, ops)]
        y = F.pad(y, [-v for b, a in reversed(crop) for v in (b, a)])
    elif "depthwise_kernel" in leaves:                     # separable: depthwise, then a 1x1 conv
        z = convnd(xp, depthwise_weight(leaves["depthwise_kernel"]), groups=c, **conv)
        y = convnd(z, leaves["pointwise_kernel"].permute(r + 1, r, *range(r)))
    elif g.kind.family.name == "depthwise":
        y = convnd(xp, depthwise_weight(leaves["kernel"]), groups=c, **conv)
    else:
        y = convnd(xp, leaves["kernel"].permute(r + 1, r, *range(r)), groups=g.groups, **conv)
    if g.use_bias:
        y = y + leaves["bias"].reshape(-1, *(1,) * r)
    y = _TORCH_FLOAT64.get(g.activation, ACTIVATION_TABLE[g.activation].torch_function())(y)
    y = y if g.channels_first else y.movedim(1, -1)
    y.backward(torch.tensor(dy))
    return {k: t.grad.numpy() for k, t in leaves.items()}


# ---------------------------------------------------------------- the grid

# Per rank: a kernel with an even side (its 'same' padding is asymmetric) and an input whose odd and even lengths
# give 'same' at stride 2 both an even and an odd pad total.
KERNEL = {1: 3, 2: (3, 2), 3: (3, 2, 2)}
SPATIAL = {1: (8,), 2: (6, 7), 3: (5, 4, 3)}


def _geometries():
    """Every layer x strides {1, 2} x dilation {1, 2} x its paddings x groups {1, 2} (Conv) or depth_multiplier
    {1, 3} (Depthwise, Separable). Keras refuses strides > 1 with dilation > 1 for some layers; the math is
    defined all the same, and the reference is math."""
    for name, kind in LAYERS.items():
        family = kind.family.name
        for s, d, padding, extra in itertools.product((1, 2), (1, 2), kind.paddings, (1, 2)):
            config = {"kernel_size": KERNEL[kind.rank], "strides": s, "dilation_rate": d,
                      "padding": padding}
            if family == "conv":
                config.update(filters=6, groups=extra)
            elif family == "depthwise":
                config["depth_multiplier"] = (1, 3)[extra - 1]
            elif family == "conv_transpose":
                config.update(filters=5, output_padding=(None, s - 1)[extra - 1])
            else:
                config.update(filters=5, depth_multiplier=(1, 3)[extra - 1])
            yield name, config


# Activation and bias rotate over the grid (a covering of the pairs, not their product, to keep the file fast):
# each layer sees every (activation, bias) pair more than once.
_PAIRS = list(itertools.product(ACTIVATIONS, (True, False)))
GRID = [(name, {**config, "data_format": fmt, "activation": _PAIRS[i % len(_PAIRS)][0],
                "use_bias": _PAIRS[i % len(_PAIRS)][1]})
        for i, ((name, config), fmt) in enumerate(itertools.product(list(_geometries()),
                                                                    ("channels_last", "channels_first")))]


def _grid_id(item) -> str:
    name, c = item
    extra = (f"g{c['groups']}" if "groups" in c else f"op{c['output_padding']}" if "output_padding" in c
             else f"m{c['depth_multiplier']}")
    fmt = "cf" if c["data_format"] == "channels_first" else "cl"
    return (f"{name}-s{c['strides']}-d{c['dilation_rate']}-{c['padding']}-{extra}-{fmt}-{c['activation']}-"
            f"{'b' if c['use_bias'] else 'nb'}")


def _case(name: str, config: dict, seed: int = 0):
    """A small input (N=2, C=4; SPATIAL[rank]: 'same' with stride 2 on 8 pads (0, 1), a kernel side 2 pads (0, 1):
    the asymmetric cases), its weights, dy, and the Geometry."""
    kind = LAYERS[name]
    spatial = SPATIAL[kind.rank]
    shape = (2, 4, *spatial) if config.get("data_format") == "channels_first" else (2, *spatial, 4)
    g = geometry(name, config, shape)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    weights = {k: rng.standard_normal(s) for k, s in g.weight_shapes().items()}
    dy = rng.standard_normal(output_shape(g, shape))
    return g, x, weights, dy


def _close(got: dict, want: dict, what: str) -> None:
    assert set(got) == set(want), f"{what}: gradients {sorted(got)}, but should be {sorted(want)}"
    for k in want:
        assert got[k].shape == want[k].shape, f"{what} d{k}: shape {got[k].shape}, but should be {want[k].shape}"
        # rtol on every element; an absolute floor 1e-12 of the tensor's largest element only for the elements
        # where the two float64 computations' own roundings (~1e-16 of the terms) are not small against the value:
        # sums that cancel, and torch's 1 - tanh^2 / s (1 - s) where the activation saturates.
        atol = 1e-12 * float(np.max(np.abs(want[k]), initial=0.0))
        np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=atol, err_msg=f"{what} d{k}")


@pytest.mark.parametrize("item", GRID, ids=_grid_id)
def test_gradients_equal_torch_float64_autograd(item, one_torch_thread):
    name, config = item
    g, x, weights, dy = _case(name, config)
    _close(reference_gradients(x, weights, g, dy), _torch_gradients(g, x, weights, dy), _grid_id(item))


# ---------------------------------------------------------------- hand-computed literals

def test_pointwise_conv1d_on_ones_literal():
    """A 1x1 Conv1D, x = ones (N=1, L=3, C=2), kernel [[0.5], [-2]] (C=2 -> F=1), bias 7, linear, dy = [1, 2, 3].

    y[l] = x[l,0]*0.5 + x[l,1]*(-2) + 7, so
    dkernel[0, c, 0] = sum_l x[l, c] * dy[l] = 1 + 2 + 3 = 6 for both c;
    dbias = sum_l dy[l] = 6;
    dx[l, c] = dy[l] * kernel[0, c, 0] = [[0.5, -2], [1, -4], [1.5, -6]].
    """
    g = geometry("Conv1D", {"filters": 1, "kernel_size": 1}, (1, 3, 2))
    w = {"kernel": np.array([0.5, -2.0]).reshape(1, 2, 1), "bias": np.array([7.0])}
    got = reference_gradients(np.ones((1, 3, 2)), w, g, np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1))
    np.testing.assert_array_equal(got["kernel"], np.full((1, 2, 1), 6.0))
    np.testing.assert_array_equal(got["bias"], [6.0])
    np.testing.assert_array_equal(got["x"], [[[0.5, -2.0], [1.0, -4.0], [1.5, -6.0]]])


def test_depthwise_three_tap_literal():
    """DepthwiseConv1D, kernel_size 3, valid, one channel, M=1, no bias: x = [1, 2, 3, 4, 5], kernel k = [1, 2, 3],
    y[o] = x[o] k0 + x[o+1] k1 + x[o+2] k2 for o = 0, 1, 2; dy = [1, 10, 100].

    dk[t] = sum_o x[o+t] dy[o]: dk0 = 1 + 20 + 300 = 321, dk1 = 2 + 30 + 400 = 432, dk2 = 3 + 40 + 500 = 543.
    dx[i] = sum_(o+t=i) dy[o] k[t]: dx0 = 1*1 = 1; dx1 = 1*2 + 10*1 = 12; dx2 = 1*3 + 10*2 + 100*1 = 123;
    dx3 = 10*3 + 100*2 = 230; dx4 = 100*3 = 300.
    With M=2 and the second multiplier's kernel [-1, 0, 1] and dy [0, 1, 0] on it (output channel 1), dk for m=1
    is x[1..3] = [2, 3, 4] and dx adds dy * k at o=1: [0, -1, 0, 1, 0].
    """
    x = np.arange(1.0, 6.0).reshape(1, 5, 1)
    g = geometry("DepthwiseConv1D", {"kernel_size": 3, "use_bias": False}, x.shape)
    got = reference_gradients(x, {"kernel": np.array([1.0, 2.0, 3.0]).reshape(3, 1, 1)}, g,
                              np.array([1.0, 10.0, 100.0]).reshape(1, 3, 1))
    np.testing.assert_array_equal(got["kernel"].ravel(), [321.0, 432.0, 543.0])
    np.testing.assert_array_equal(got["x"].ravel(), [1.0, 12.0, 123.0, 230.0, 300.0])
    assert set(got) == {"x", "kernel"}, f"gradients {sorted(got)}, but there is no bias"

    g2 = geometry("DepthwiseConv1D", {"kernel_size": 3, "depth_multiplier": 2, "use_bias": False}, x.shape)
    k2 = np.array([[1.0, -1.0], [2.0, 0.0], [3.0, 1.0]]).reshape(3, 1, 2)
    dy2 = np.array([[1.0, 0.0], [10.0, 1.0], [100.0, 0.0]]).reshape(1, 3, 2)
    got2 = reference_gradients(x, {"kernel": k2}, g2, dy2)
    np.testing.assert_array_equal(got2["kernel"][:, 0, :], [[321.0, 2.0], [432.0, 3.0], [543.0, 4.0]])
    np.testing.assert_array_equal(got2["x"].ravel(), [1.0, 11.0, 123.0, 231.0, 300.0])


def test_stride_leftover_and_same_padding_literal():
    """Conv1D k=2, strides 2, valid on L=5: outputs read x[0:2] and x[2:4]; x[4] is read by nothing, dx[4] = 0.
    kernel [1, 10], dy [1, 2]: dx = [1, 10, 2, 20, 0]. 'same' on L=4, k=2, s=1 pads (0, 1): y[3] = x[3]*1 + 0*10,
    so dy = [0, 0, 0, 1] gives dx = [0, 0, 0, 1] and dk = [x3, 0] = [4, 0] (a pad at the start would give dx3 = 10).
    """
    w = {"kernel": np.array([1.0, 10.0]).reshape(2, 1, 1)}
    g = geometry("Conv1D", {"filters": 1, "kernel_size": 2, "strides": 2, "use_bias": False}, (1, 5, 1))
    got = reference_gradients(np.arange(1.0, 6.0).reshape(1, 5, 1), w, g, np.array([1.0, 2.0]).reshape(1, 2, 1))
    np.testing.assert_array_equal(got["x"].ravel(), [1.0, 10.0, 2.0, 20.0, 0.0])
    g = geometry("Conv1D", {"filters": 1, "kernel_size": 2, "padding": "same", "use_bias": False}, (1, 4, 1))
    got = reference_gradients(np.arange(1.0, 5.0).reshape(1, 4, 1), w, g,
                              np.array([0.0, 0.0, 0.0, 1.0]).reshape(1, 4, 1))
    np.testing.assert_array_equal(got["x"].ravel(), [0.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(got["kernel"].ravel(), [4.0, 0.0])


# ---------------------------------------------------------------- central differences

FD_CASES = [
    ("Conv1D", {"filters": 4, "kernel_size": 3, "groups": 2, "dilation_rate": 2, "padding": "causal",
                "activation": "sigmoid"}),
    ("SeparableConv2D", {"filters": 3, "kernel_size": (3, 2), "strides": 2, "padding": "same",
                         "depth_multiplier": 2, "data_format": "channels_first", "activation": "tanh"}),
    ("DepthwiseConv2D", {"kernel_size": 2, "depth_multiplier": 3, "padding": "same", "use_bias": False}),
]


@pytest.mark.parametrize("name, config", FD_CASES, ids=[c[0] for c in FD_CASES])
def test_gradients_equal_central_differences(name, config):
    """L = sum(dy * layer(x, w)), each input perturbed by +-h: (L(+h) - L(-h)) / 2h = dL/d(that input) + O(h^2)."""
    kind = LAYERS[name]
    shape = (1, 2, *(5,) * kind.rank) if config.get("data_format") == "channels_first" else (1, *(5,) * kind.rank, 2)
    g = geometry(name, config, shape)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    weights = {k: rng.standard_normal(s) for k, s in g.weight_shapes().items()}
    dy = rng.standard_normal(output_shape(g, shape))
    got = reference_gradients(x, weights, g, dy)
    h = 1e-6

    def loss(x_, w_):
        return float(np.sum(dy * oracle.run(name, config, x_, w_)))

    tensors = {"x": x, **weights}
    for key, value in tensors.items():
        numeric = np.empty_like(value)
        for i in np.ndindex(value.shape):
            sides = []
            for step in (h, -h):
                moved = {k: v.copy() for k, v in tensors.items()}
                moved[key][i] += step
                sides.append(loss(moved.pop("x"), moved))
            numeric[i] = (sides[0] - sides[1]) / (2 * h)
        np.testing.assert_allclose(got[key], numeric, rtol=1e-6, atol=1e-7, err_msg=f"{name} d{key}")


# ---------------------------------------------------------------- the gauge

@pytest.mark.parametrize("item", GRID[::7], ids=_grid_id)
def test_gauge_bounds_every_gradient(item):
    name, config = item
    g, x, weights, dy = _case(name, config, seed=3)
    grads = reference_gradients(x, weights, g, dy)
    gauge = reference_gradients(x, weights, g, dy, magnitudes=True)
    assert set(gauge) == set(grads)
    for k in grads:
        # Equal where no sum cancels (one term): allow the gauge's own last-bit rounding there.
        short = np.abs(grads[k]) - gauge[k] * (1 + 1e-15)
        assert (short <= 0).all(), f"{_grid_id(item)} d{k}: |gradient| exceeds G by up to {short.max()}"


def test_gauge_equals_the_gradient_on_nonnegative_inputs():
    """With x, w, dy >= 0 and a linear activation nothing cancels: G is the gradient itself."""
    g, x, weights, dy = _case("SeparableConv1D", {"filters": 3, "kernel_size": 3, "depth_multiplier": 2,
                                                  "padding": "same"})
    x, dy = np.abs(x), np.abs(dy)
    weights = {k: np.abs(v) for k, v in weights.items()}
    grads = reference_gradients(x, weights, g, dy)
    gauge = reference_gradients(x, weights, g, dy, magnitudes=True)
    for k in grads:
        np.testing.assert_array_equal(gauge[k], grads[k], err_msg=f"d{k}")


# ---------------------------------------------------------------- reduction lengths

@pytest.mark.parametrize("name, config, shape", [
    ("Conv1D", {"filters": 6, "kernel_size": 3, "groups": 2}, (2, 8, 4)),
    ("Conv2D", {"filters": 4, "kernel_size": (3, 2)}, (1, 6, 7, 2)),
    ("DepthwiseConv1D", {"kernel_size": 3, "depth_multiplier": 3}, (2, 8, 4)),
    ("DepthwiseConv2D", {"kernel_size": (3, 2), "depth_multiplier": 2, "data_format": "channels_first"},
     (1, 2, 6, 7)),
])
def test_reduction_lengths_count_the_terms(name, config, shape):
    """On ones (x, w, dz) the backward counts each element's terms: a dot product of n terms rounds n times on its
    longest path (one product, n - 1 sums), a plain sum of n terms n - 1 times. With stride 1 and valid padding
    the interior input elements and every kernel element have all the terms the formulas count."""
    g = geometry(name, config, shape)
    family = g.kind.family
    lengths = family.backward_reduction_lengths(g, shape)
    cl_shape = (shape[0], *shape[2:], shape[1]) if g.channels_first else shape
    x = np.ones(cl_shape)
    w = {k: np.ones(s) for k, s in family.kernel_shapes(g).items()}
    out = output_shape(g, shape)
    dz = np.ones((out[0], *out[2:], out[1]) if g.channels_first else out)
    counts = family.backward(x, w, g, dz)
    assert set(lengths) == {*counts, "bias"}
    for k, n in counts.items():
        assert n.max() == lengths[k], f"{name} d{k}: most terms {n.max()}, but the length is {lengths[k]}"
    assert lengths["bias"] == dz.size // dz.shape[-1] - 1


def test_separable_reduction_lengths_add_the_stages():
    # SeparableConv2D 3x2 kernel (6 taps), M=2, F=5, input (2, 6, 7, 4) valid: output 4x6, N*positions = 48.
    g = geometry("SeparableConv2D", {"filters": 5, "kernel_size": (3, 2), "depth_multiplier": 2}, (2, 6, 7, 4))
    assert g.kind.family.backward_reduction_lengths(g, (2, 6, 7, 4)) == {
        "x": 5 + 6 * 2,                   # F through the pointwise transpose, then taps * M
        "depthwise_kernel": 5 + 48,       # F, then the sum over batch x positions
        "pointwise_kernel": 6 + 48,       # z's own taps, then the sum over batch x positions
        "bias": 48 - 1,
    }


# ---------------------------------------------------------------- the frameworks' kink conventions

def test_kink_derivatives_match_torch_and_tensorflow(one_torch_thread):
    """relu'(0) = 0 and relu6' = 0 at 0 and at 6 in the reference, torch autograd and a Keras layer's GradientTape:
    a 1x1 Conv1D with kernel 1 and no bias makes the pre-activation x exactly."""
    import torch

    values = np.array([-1.0, 0.0, 3.0, 6.0, 7.0])
    x = values.reshape(1, 5, 1)
    dy = np.ones_like(x)
    want = {"relu": [0.0, 0.0, 1.0, 1.0, 1.0], "relu6": [0.0, 0.0, 1.0, 0.0, 0.0]}
    assert ACTIVATION_TABLE["relu"].kinks == (0.0,) and ACTIVATION_TABLE["relu6"].kinks == (0.0, 6.0)
    assert all(not ACTIVATION_TABLE[a].kinks for a in ("linear", "sigmoid", "tanh"))
    for act, expected in want.items():
        a = ACTIVATION_TABLE[act]
        assert np.array_equal(a.derivative(values), expected), f"{act}'={a.derivative(values)}"
        g = geometry("Conv1D", {"filters": 1, "kernel_size": 1, "use_bias": False, "activation": act}, x.shape)
        ours = reference_gradients(x, {"kernel": np.ones((1, 1, 1))}, g, dy)["x"].ravel()
        assert np.array_equal(ours, expected), f"reference d{act}/dx={ours}"
        t = torch.tensor(values, requires_grad=True)
        a.torch_function()(t).backward(torch.ones(5, dtype=torch.float64))
        assert np.array_equal(t.grad.numpy(), expected), f"torch {act}'={t.grad.numpy()}"

    import keras
    import tensorflow as tf

    for act, expected in want.items():
        layer = keras.layers.Conv1D(1, 1, use_bias=False, activation=act, dtype="float64")
        xt = tf.constant(x)
        layer.build(x.shape)
        layer.set_weights([np.ones((1, 1, 1))])
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt)
        got = tape.gradient(y, xt).numpy().ravel()
        assert np.array_equal(got, expected), f"keras {act} layer dx={got}"
