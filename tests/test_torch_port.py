"""harness.torch_port: the torch modules against the float64 oracle over a sweep of all six layer kinds."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harness.reference import oracle
from harness.layers.geometry import LAYERS, geometry, output_shape
from lazy_import import Lazy

torch, torch_port = Lazy("torch"), Lazy("harness.torch_port")  # loaded when a test runs, not at collection

ACTIVATIONS = [None, "linear", "relu", "relu6", "sigmoid", "tanh"]


@st.composite
def cases(draw, layers=tuple(LAYERS)):
    """(layer, Keras config, x in the config's data_format, Keras weights), all float64, output non-empty."""
    layer = draw(st.sampled_from(layers))
    kind = LAYERS[layer]
    rank = kind.rank

    def sizes(lo, hi):
        # An int or a tuple: a tuple can be equal or unequal per axis.
        return draw(st.one_of(st.integers(lo, hi), st.tuples(*(st.integers(lo, hi),) * rank)))

    config = {
        "kernel_size": sizes(1, 4),
        "strides": sizes(1, 3),
        "dilation_rate": sizes(1, 2),
        "padding": draw(st.sampled_from(kind.paddings)),
        "use_bias": draw(st.booleans()),
        "activation": draw(st.sampled_from(ACTIVATIONS)),
        "data_format": draw(st.sampled_from(["channels_last", "channels_first"])),
    }
    groups = 1
    if kind.family.name == "conv":
        groups = draw(st.integers(1, 3))
        config["groups"] = groups
    elif kind.family.name == "conv_transpose":
        strides = config["strides"] if isinstance(config["strides"], tuple) else (config["strides"],) * rank
        if draw(st.booleans()):   # output_padding below the strides, or Keras's default None
            config["output_padding"] = [draw(st.integers(0, s - 1)) for s in strides]
    else:
        config["depth_multiplier"] = draw(st.integers(1, 3))
    if kind.family.name != "depthwise":
        config["filters"] = groups * draw(st.integers(1, 3))
    c = groups * draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(1, 9)) for _ in range(rank))     # H and W drawn apart: mostly H != W
    n = draw(st.integers(1, 2))
    shape = (n, c, *spatial) if config["data_format"] == "channels_first" else (n, *spatial, c)
    g = geometry(layer, config, shape)
    assume(all(d > 0 for d in output_shape(g, shape)))                 # skip empty outputs
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    weights = {k: rng.standard_normal(s) for k, s in g.weight_shapes().items()}
    return layer, config, rng.standard_normal(shape), weights


def run_torch(module, x, config):
    """Call a channels-first torch module on x in the config's data_format."""
    channels_last = config.get("data_format", "channels_last") == "channels_last"
    xt = torch.from_numpy(np.ascontiguousarray(x))
    if channels_last:
        xt = xt.movedim(-1, 1)
    with torch.no_grad():
        y = module(xt)
    return (y.movedim(1, -1) if channels_last else y).double().numpy()


@settings(max_examples=150, deadline=None)
@given(cases())
def test_float64_agrees_with_oracle(case):
    layer, config, x, weights = case
    module = torch_port.from_keras(layer, config, weights, dtype=torch.float64)
    want = oracle.run(layer, config, x, weights)
    got = run_torch(module, x, config)
    assert got.shape == want.shape
    scale = np.abs(oracle.gauge(layer, config, x, weights)).max() + 1.0
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13 * scale)


@settings(max_examples=60, deadline=None)
@given(cases())
def test_float32_plain_forward_within_error_bound(case):
    layer, config, x, weights = case
    g = geometry(layer, config, x.shape)
    module = torch_port.from_keras(layer, config, weights)              # default dtype float32
    assert all(p.dtype == torch.float32 for p in module.parameters())
    x32 = x.astype(np.float32)
    w32 = {k: v.astype(np.float32) for k, v in weights.items()}
    got = run_torch(module, x32, config)
    want = oracle.run(layer, config, x32.astype(np.float64), {k: v.astype(np.float64) for k, v in w32.items()})
    # Higham's gamma_K * G bound (activations are 1-Lipschitz), plus a rounding of the output itself.
    u = np.finfo(np.float32).eps / 2
    k = g.reduction_length()
    bound = k * u / (1 - k * u) * oracle.gauge(layer, config, x32, w32) + 4 * u * np.abs(want)
    assert np.all(np.abs(got - want) <= bound + 1e-30)


@settings(max_examples=50, deadline=None)
@given(cases(), st.booleans())
def test_param_count_matches_keras(case, depthwise_bias):
    layer, config, x, weights = case
    g = geometry(layer, config, x.shape)
    extra = {}
    if depthwise_bias and g.kind.family.name == "separable":
        extra["depthwise_bias"] = np.zeros(g.in_channels * g.depth_multiplier)
    module = torch_port.from_keras(layer, config, weights, **extra)
    # A hand-written port that puts a bias on both convs has C*M more (and always a pointwise bias).
    want = g.param_count()
    if extra:
        want += g.in_channels * g.depth_multiplier + (0 if g.use_bias else g.filters)
    assert sum(p.numel() for p in module.parameters()) == want


# ---------------------------------------------------------------- literals and the module surface

def test_same_even_kernel_puts_extra_pad_at_the_end():
    # n=4, k=2, s=1: pad (0, 1): y[i] = x[i] + 10 x[i+1] with x[4] = 0 -> [21, 32, 43, 4].
    m = torch_port.Conv1d(1, 1, 2, padding="same", use_bias=False, dtype=torch.float64)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[[1.0, 10.0]]]))
        y = m(torch.tensor([[[1.0, 2.0, 3.0, 4.0]]], dtype=torch.float64))
    assert y.flatten().tolist() == [21.0, 32.0, 43.0, 4.0]


def test_same_with_stride_2_gives_ceil_outputs():
    m = torch_port.DepthwiseConv2d(3, (3, 2), strides=2, padding="same", depth_multiplier=2)
    assert m(torch.zeros(1, 3, 7, 6)).shape == (1, 6, 4, 3)
    assert m(torch.zeros(1, 3, 8, 5)).shape == (1, 6, 4, 3)             # padding follows the input size


def test_causal_conv1d_and_refused_in_2d():
    m = torch_port.SeparableConv1d(2, 3, 3, padding="causal", dilation_rate=2)
    assert m(torch.zeros(1, 2, 5)).shape == (1, 3, 5)
    with pytest.raises(ValueError, match="causal"):
        torch_port.Conv2d(2, 3, 3, padding="causal")


def test_modules_are_real_nn_conv():
    assert isinstance(torch_port.Conv2d(4, 6, 3, groups=2), torch.nn.Conv2d)
    dw = torch_port.DepthwiseConv1d(3, 3, depth_multiplier=2)
    assert isinstance(dw, torch.nn.Conv1d) and dw.groups == 3 and dw.weight.shape == (6, 1, 3)
    sep = torch_port.SeparableConv2d(3, 4, 3)
    assert set(sep.state_dict()) == {"depthwise.weight", "pointwise.weight", "pointwise.bias"}
    assert isinstance(sep.pointwise, torch.nn.Conv2d) and sep.pointwise.kernel_size == (1, 1)
    assert sum(p.numel() for p in sep.parameters()) == 43
    assert sum(p.numel() for p in torch_port.SeparableConv2d(3, 4, 3, depthwise_bias=True).parameters()) == 46
    # Usable inside an ordinary model, with autograd.
    model = torch.nn.Sequential(sep, torch_port.Conv2d(4, 2, 1, activation="relu"))
    model(torch.randn(2, 3, 5, 6)).sum().backward()
    assert sep.depthwise.weight.grad is not None


def test_from_keras_errors():
    w = {"kernel": np.zeros((3, 3, 2, 4)), "bias": np.zeros(4)}
    with pytest.raises(ValueError, match="no torch port"):
        torch_port.from_keras("ConvLSTM2D", {"filters": 4, "kernel_size": 3}, w)
    with pytest.raises(ValueError, match="unsupported Keras arguments"):
        torch_port.from_keras("Conv2D", {"filters": 4, "kernel_size": 3, "bogus": 1}, w)
    with pytest.raises(ValueError, match="missing Keras arguments"):
        torch_port.from_keras("Conv2D", {"kernel_size": 3}, w)
    with pytest.raises(ValueError, match="Keras shapes"):
        torch_port.from_keras("Conv2D", {"filters": 5, "kernel_size": 3}, w)
    with pytest.raises(ValueError, match="activation"):
        torch_port.from_keras("Conv2D", {"filters": 4, "kernel_size": 3, "activation": "mish"}, w)
    with pytest.raises(ValueError, match="separable layers only"):
        torch_port.from_keras("Conv2D", {"filters": 4, "kernel_size": 3}, w, depthwise_bias=np.zeros(2))
    # Keras arguments that do not change the computation are accepted; data_format is ignored.
    m = torch_port.from_keras("Conv2D", {"filters": 4, "kernel_size": 3, "name": "c", "kernel_initializer": "zeros",
                                         "data_format": "channels_last"}, w)
    assert m(torch.zeros(1, 2, 5, 5)).shape == (1, 4, 3, 3)
