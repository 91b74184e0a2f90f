"""The oracle against hand-computed literals and against a deliberately naive loop formulation."""
import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.reference import oracle

X4 = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1)        # (N, L, C)
W3 = np.array([1.0, 10.0, 100.0]).reshape(3, 1, 1)           # (k, C, F): taps 1, 10, 100
W2 = np.array([1.0, 10.0]).reshape(2, 1, 1)


def run(layer, config, x, **weights):
    return oracle.run(layer, config, np.asarray(x, dtype=np.float64),
                      {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()})


def check(got, want, what):
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape={got.shape}, but should be {want.shape}"
    assert np.allclose(got, want, rtol=1e-12, atol=1e-12), f"{what}={got.ravel()}, but should be {want.ravel()}"


# ---------------------------------------------------------------- literals, 1D

def test_cross_correlation_no_flip():
    # y[i] = x[i]*1 + x[i+1]*10 + x[i+2]*100: y0 = 1+20+300 = 321, y1 = 2+30+400 = 432.
    # (A true convolution would give 123 and 234.)
    y = run("Conv1D", {"filters": 1, "kernel_size": 3, "use_bias": False}, X4, kernel=W3)
    check(y, [[[321], [432]]], "Conv1D valid")


def test_same_puts_the_extra_pad_at_the_end():
    # n=4, k=2, s=1: total pad 1 -> (0, 1). y[i] = x[i] + 10 x[i+1], with x[4] = 0:
    # [1+20, 2+30, 3+40, 4+0] = [21, 32, 43, 4]. (Pad at the start would give [10, 21, 32, 43].)
    y = run("Conv1D", {"filters": 1, "kernel_size": 2, "padding": "same", "use_bias": False}, X4, kernel=W2)
    check(y, [[[21], [32], [43], [4]]], "Conv1D same k=2")


def test_same_with_stride():
    # n=5, k=3, s=2: out 3, pad (1, 1): padded [0,1,2,3,4,5,0], windows start at 0, 2, 4:
    # 0*1+1*10+2*100 = 210; 2+30+400 = 432; 4+50+0 = 54.
    x = np.arange(1.0, 6.0).reshape(1, 5, 1)
    y = run("Conv1D", {"filters": 1, "kernel_size": 3, "strides": 2, "padding": "same", "use_bias": False},
            x, kernel=W3)
    check(y, [[[210], [432], [54]]], "Conv1D same s=2")


def test_valid_with_stride():
    # n=5, k=2, s=2: out (5-2)//2+1 = 2: x0+10x1 = 21, x2+10x3 = 43.
    x = np.arange(1.0, 6.0).reshape(1, 5, 1)
    y = run("Conv1D", {"filters": 1, "kernel_size": 2, "strides": 2, "use_bias": False}, x, kernel=W2)
    check(y, [[[21], [43]]], "Conv1D valid s=2")


def test_dilation():
    # d=2, k=2: taps x[i] and x[i+2]: [1+30, 2+40, 3+50] = [31, 42, 53].
    x = np.arange(1.0, 6.0).reshape(1, 5, 1)
    y = run("Conv1D", {"filters": 1, "kernel_size": 2, "dilation_rate": 2, "use_bias": False}, x, kernel=W2)
    check(y, [[[31], [42], [53]]], "Conv1D d=2")


def test_causal():
    # k=2, d=1: left pad 1: [0,1,2,3,4] -> [0+10, 1+20, 2+30, 3+40].
    y = run("Conv1D", {"filters": 1, "kernel_size": 2, "padding": "causal", "use_bias": False}, X4, kernel=W2)
    check(y, [[[10], [21], [32], [43]]], "Conv1D causal")
    # k=2, d=2: left pad 2: [0,0,1,2,3,4]; y[i] = xp[i] + 10 xp[i+2] -> [10, 20, 31, 42].
    y = run("Conv1D", {"filters": 1, "kernel_size": 2, "dilation_rate": 2, "padding": "causal",
                       "use_bias": False}, X4, kernel=W2)
    check(y, [[[10], [20], [31], [42]]], "Conv1D causal d=2")


def test_bias_and_filters():
    # Two filters, k=1: f0 = 2x + 1, f1 = -x + 0.5.
    x = np.array([1.0, 3.0]).reshape(1, 2, 1)
    y = run("Conv1D", {"filters": 2, "kernel_size": 1}, x, kernel=[[[2.0, -1.0]]], bias=[1.0, 0.5])
    check(y, [[[3, -0.5], [7, -2.5]]], "Conv1D bias")


def test_groups_are_contiguous_blocks():
    # C=4, F=2, groups=2, k=1, one pixel x=[1,2,3,4]. kernel[0, ci, f] = [[1, 100], [10, 1000]].
    # Group 0 = input channels 0,1 -> filter 0: 1*1 + 2*10 = 21.
    # Group 1 = input channels 2,3 -> filter 1: 3*100 + 4*1000 = 4300.
    # (Interleaved groups, channels 0,2 -> filter 0, would give 1 + 30 = 31.)
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 4)
    y = run("Conv1D", {"filters": 2, "kernel_size": 1, "groups": 2, "use_bias": False}, x,
            kernel=[[[1.0, 100.0], [10.0, 1000.0]]])
    check(y, [[[21, 4300]]], "Conv1D groups=2")


def test_depthwise_channel_order_is_c_times_m_plus_m():
    # C=2, M=3, k=1, x=[1, 2]; kernel[0, c, m] = [[1, 10, 100], [1000, 1e4, 1e5]].
    # Output channel c*M+m = x_c * kernel[c, m]: [1, 10, 100, 2000, 20000, 200000].
    # (Order m*C+c would give [1, 2000, 10, 20000, 100, 200000].)
    x = np.array([1.0, 2.0]).reshape(1, 1, 2)
    y = run("DepthwiseConv1D", {"kernel_size": 1, "depth_multiplier": 3}, x,
            kernel=[[[1.0, 10.0, 100.0], [1000.0, 1e4, 1e5]]], bias=[0.0] * 6)
    check(y, [[[1, 10, 100, 2000, 20000, 200000]]], "DepthwiseConv1D M=3")


def test_separable_bias_after_pointwise_only():
    # x=[1, 2]; depthwise (k=1, M=1) [3, 5] -> z = [3, 10]; pointwise [1, 10] -> 3 + 100 = 103; bias 1000 -> 1103.
    # (A bias also added after the depthwise step would give (3+1000)*1 + (10+1000)*10 = 11103.)
    x = np.array([1.0, 2.0]).reshape(1, 1, 2)
    y = run("SeparableConv1D", {"filters": 1, "kernel_size": 1}, x,
            depthwise_kernel=[[[3.0], [5.0]]], pointwise_kernel=[[[1.0], [10.0]]], bias=[1000.0])
    check(y, [[[1103]]], "SeparableConv1D bias")


def test_channels_first_1d():
    # (N, C, L) = (1, 2, 3), x = [[1,2,3],[4,5,6]]; k=1, kernel [1, 10]: y[l] = x[0,l] + 10 x[1,l] = [41, 52, 63].
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).reshape(1, 2, 3)
    y = run("Conv1D", {"filters": 1, "kernel_size": 1, "data_format": "channels_first", "use_bias": False}, x,
            kernel=[[[1.0], [10.0]]])
    check(y, [[[41, 52, 63]]], "Conv1D channels_first")


# ---------------------------------------------------------------- literals, 2D

X33 = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)                # [[1,2,3],[4,5,6],[7,8,9]]
K22 = np.array([[1.0, 10.0], [100.0, 1000.0]]).reshape(2, 2, 1, 1)


def test_conv2d_valid():
    # y[i,j] = x[i,j] + 10 x[i,j+1] + 100 x[i+1,j] + 1000 x[i+1,j+1]:
    # y00 = 1+20+400+5000 = 5421, y01 = 2+30+500+6000 = 6532, y10 = 4+50+700+8000 = 8754, y11 = 5+60+800+9000 = 9865.
    y = run("Conv2D", {"filters": 1, "kernel_size": 2, "use_bias": False}, X33, kernel=K22)
    check(y, np.array([[5421, 6532], [8754, 9865]]).reshape(1, 2, 2, 1), "Conv2D valid")


def test_conv2d_same_stride2_pads_bottom_right():
    # n=3, k=2, s=2: out 2, pad (0, 1) on both axes; windows at rows/cols 0 and 2:
    # y00 = 5421; y01 = x02 + 100 x12 = 3 + 600 = 603; y10 = x20 + 10 x21 = 7 + 80 = 87; y11 = x22 = 9.
    y = run("Conv2D", {"filters": 1, "kernel_size": 2, "strides": 2, "padding": "same", "use_bias": False},
            X33, kernel=K22)
    check(y, np.array([[5421, 603], [87, 9]]).reshape(1, 2, 2, 1), "Conv2D same s=2")


def test_conv2d_unequal_strides():
    # strides (2, 1), valid: rows 0 only ((3-2)//2+1 = 1), cols 0 and 1: [5421, 6532].
    y = run("Conv2D", {"filters": 1, "kernel_size": 2, "strides": [2, 1], "use_bias": False}, X33, kernel=K22)
    check(y, np.array([[5421, 6532]]).reshape(1, 1, 2, 1), "Conv2D strides (2,1)")


def test_conv2d_unequal_kernel_and_dilation():
    # kernel (1, 2) with dilation (1, 2): y[i, 0] = x[i,0]*1 + x[i,2]*10 -> rows: 1+30, 4+60, 7+90.
    k = np.array([1.0, 10.0]).reshape(1, 2, 1, 1)
    y = run("Conv2D", {"filters": 1, "kernel_size": [1, 2], "dilation_rate": [1, 2], "use_bias": False}, X33,
            kernel=k)
    check(y, np.array([31, 64, 97]).reshape(1, 3, 1, 1), "Conv2D k=(1,2) d=(1,2)")


def test_conv2d_channels_first():
    # Same numbers as test_conv2d_valid, with the input as (N, C, H, W) and the output (N, F, H', W').
    y = run("Conv2D", {"filters": 1, "kernel_size": 2, "data_format": "channels_first", "use_bias": False},
            X33.reshape(1, 1, 3, 3), kernel=K22)
    check(y, np.array([[5421, 6532], [8754, 9865]]).reshape(1, 1, 2, 2), "Conv2D channels_first")


def test_depthwise2d():
    # Two channels, 2x2 input, 2x2 kernel, M=1: channel 0 [[1,2],[3,4]] * ones = 10;
    # channel 1 [[10,20],[30,40]] * [[1,0],[0,-1]] = 10 - 40 = -30. Bias [0.5, 0.25].
    x = np.stack([[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]], axis=-1)[None]
    k = np.stack([np.ones((2, 2)), [[1.0, 0.0], [0.0, -1.0]]], axis=-1)[..., None]
    y = run("DepthwiseConv2D", {"kernel_size": 2}, x, kernel=k, bias=[0.5, 0.25])
    check(y, [[[[10.5, -29.75]]]], "DepthwiseConv2D")


def test_separable2d():
    # The RGB worked example: 3x3 image with channels 1, 100, 10000; k=2, all-ones kernels, bias 0:
    # each output = 4 * (1 + 100 + 10000) = 40404.
    x = np.broadcast_to(np.array([1.0, 100.0, 10000.0]), (1, 3, 3, 3))
    y = run("SeparableConv2D", {"filters": 1, "kernel_size": 2}, x, depthwise_kernel=np.ones((2, 2, 3, 1)),
            pointwise_kernel=np.ones((1, 1, 3, 1)), bias=[0.0])
    check(y, np.full((1, 2, 2, 1), 40404.0), "SeparableConv2D RGB")


# ---------------------------------------------------------------- activations
LN3, LN2 = math.log(3.0), math.log(2.0)


@pytest.mark.parametrize("activation, xs, want", [
    (None, [-7.0, 0.5], [-7.0, 0.5]),
    ("linear", [-7.0, 0.5], [-7.0, 0.5]),
    ("relu", [-7.0, -0.5, 0.0, 0.5, 7.0], [0.0, 0.0, 0.0, 0.5, 7.0]),
    ("relu6", [-7.0, 0.0, 5.5, 6.0, 7.0], [0.0, 0.0, 5.5, 6.0, 6.0]),
    # sigmoid(0) = 1/2; sigmoid(ln 3) = 1/(1 + 1/3) = 3/4; sigmoid(-ln 3) = 1/(1+3) = 1/4.
    ("sigmoid", [0.0, LN3, -LN3], [0.5, 0.75, 0.25]),
    # tanh(ln 2) = (2 - 1/2)/(2 + 1/2) = 0.6.
    ("tanh", [0.0, LN2, -LN2], [0.0, 0.6, -0.6]),
])
def test_activation(activation, xs, want):
    # k=1 with weight 1 and bias 0 passes x through to the activation.
    x = np.array(xs).reshape(1, len(xs), 1)
    y = run("Conv1D", {"filters": 1, "kernel_size": 1, "activation": activation}, x, kernel=[[[1.0]]], bias=[0.0])
    check(y, np.array(want).reshape(1, len(xs), 1), f"activation {activation}")


def test_activation_applies_after_bias():
    # 2*x + (-3) at x = 1 is -1: relu -> 0 (relu before the bias would give 2 - 3 = -1).
    y = run("Conv1D", {"filters": 1, "kernel_size": 1, "activation": "relu"}, np.ones((1, 1, 1)),
            kernel=[[[2.0]]], bias=[-3.0])
    check(y, [[[0.0]]], "relu(conv + bias)")


# ---------------------------------------------------------------- naive formulation

def _pair(v, rank):
    return (v,) * rank if isinstance(v, int) else tuple(v)


def _pads(padding, n, k, s, d):
    """Padding before the first pixel and the output length, straight from the TF/Keras documentation."""
    ek = (k - 1) * d + 1
    if padding == "valid":
        return 0, (n - ek) // s + 1
    if padding == "causal":
        return ek - 1, (n - 1) // s + 1
    out = -(-n // s)
    total = max((out - 1) * s + ek - n, 0)
    return total // 2, out


ACT = {
    "linear": lambda v: v, "relu": lambda v: max(v, 0.0), "relu6": lambda v: min(max(v, 0.0), 6.0),
    "sigmoid": lambda v: 1.0 / (1.0 + math.exp(-v)), "tanh": math.tanh,
}


def naive(layer, config, x, weights, activation=True):
    """Explicit loops over output pixels, channels and taps; padding by index checks, no np.pad."""
    rank = 2 if layer.endswith("2D") else 1
    cf = config.get("data_format") == "channels_first"
    n_batch = x.shape[0]
    spatial = x.shape[2:] if cf else x.shape[1:-1]
    c_in = x.shape[1] if cf else x.shape[-1]
    ks = _pair(config["kernel_size"], rank)
    ss = _pair(config.get("strides", 1), rank)
    ds = _pair(config.get("dilation_rate", 1), rank)
    padding = config.get("padding", "valid")
    geo = [_pads(padding, n, k, s, d) for n, k, s, d in zip(spatial, ks, ss, ds)]
    befores, outs = [g[0] for g in geo], [g[1] for g in geo]
    m = config.get("depth_multiplier", 1)
    groups = config.get("groups", 1)
    if layer.startswith("Depthwise"):
        f_out = c_in * m
    else:
        f_out = config["filters"]
    use_bias = config.get("use_bias", True)
    act = ACT[(config.get("activation") or "linear") if activation else "linear"]

    def pixel(b, pos, c):
        for p, n in zip(pos, spatial):
            if p < 0 or p >= n:
                return 0.0
        return float(x[(b, c, *pos)] if cf else x[(b, *pos, c)])

    def depthwise_at(b, out_pos, c, mm, kernel):
        acc = 0.0
        for tap in itertools.product(*(range(k) for k in ks)):
            pos = [o * s + t * d - bf for o, s, t, d, bf in zip(out_pos, ss, tap, ds, befores)]
            acc += pixel(b, pos, c) * float(kernel[(*tap, c, mm)])
        return acc

    y = np.zeros((n_batch, f_out, *outs) if cf else (n_batch, *outs, f_out))
    for b in range(n_batch):
        for out_pos in itertools.product(*(range(o) for o in outs)):
            for o in range(f_out):
                acc = 0.0
                if layer.startswith("Conv"):
                    cg, fg = c_in // groups, f_out // groups
                    group = o // fg
                    for tap in itertools.product(*(range(k) for k in ks)):
                        pos = [p * s + t * d - bf for p, s, t, d, bf in zip(out_pos, ss, tap, ds, befores)]
                        for ci in range(cg):
                            acc += pixel(b, pos, group * cg + ci) * float(weights["kernel"][(*tap, ci, o)])
                elif layer.startswith("Depthwise"):
                    acc = depthwise_at(b, out_pos, o // m, o % m, weights["kernel"])
                else:
                    pw = weights["pointwise_kernel"]
                    for c in range(c_in):
                        for mm in range(m):
                            z = depthwise_at(b, out_pos, c, mm, weights["depthwise_kernel"])
                            acc += z * float(pw[(*(0,) * rank, c * m + mm, o)])
                if use_bias:
                    acc += float(weights["bias"][o])
                y[(b, o, *out_pos) if cf else (b, *out_pos, o)] = act(acc)
    return y


def weight_shapes(layer, config, c_in):
    rank = 2 if layer.endswith("2D") else 1
    ks = _pair(config["kernel_size"], rank)
    m = config.get("depth_multiplier", 1)
    if layer.startswith("Conv"):
        shapes = {"kernel": (*ks, c_in // config.get("groups", 1), config["filters"])}
        f_out = config["filters"]
    elif layer.startswith("Depthwise"):
        shapes, f_out = {"kernel": (*ks, c_in, m)}, c_in * m
    else:
        shapes = {"depthwise_kernel": (*ks, c_in, m), "pointwise_kernel": (*(1,) * rank, c_in * m, config["filters"])}
        f_out = config["filters"]
    if config.get("use_bias", True):
        shapes["bias"] = (f_out,)
    return shapes


@st.composite
def cases(draw):
    layer = draw(st.sampled_from(["Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D",
                                  "SeparableConv1D", "SeparableConv2D"]))
    rank = 2 if layer.endswith("2D") else 1
    padding = draw(st.sampled_from(["valid", "same", "causal"] if rank == 1 else ["valid", "same"]))
    ks = [draw(st.integers(1, 3)) for _ in range(rank)]
    ss = [draw(st.integers(1, 3)) for _ in range(rank)]
    ds = [draw(st.integers(1, 2)) for _ in range(rank)]
    if padding == "valid":  # the kernel must fit
        spatial = [(k - 1) * d + 1 + draw(st.integers(0, 3)) for k, d in zip(ks, ds)]
    else:
        spatial = [draw(st.integers(1, 5)) for _ in range(rank)]
    config = {"padding": padding,
              "use_bias": draw(st.booleans()),
              "activation": draw(st.sampled_from([None, "linear", "relu", "relu6", "sigmoid", "tanh"]))}
    # Scalars and per-axis lists are both Keras spellings.
    config["kernel_size"] = ks[0] if len(set(ks)) == 1 and draw(st.booleans()) else ks
    config["strides"] = ss[0] if len(set(ss)) == 1 and draw(st.booleans()) else ss
    config["dilation_rate"] = ds[0] if len(set(ds)) == 1 and draw(st.booleans()) else ds
    if draw(st.booleans()):
        config["data_format"] = "channels_first"
    if layer.startswith("Conv"):
        groups = draw(st.integers(1, 3))
        c_in = groups * draw(st.integers(1, 2))
        config["filters"] = groups * draw(st.integers(1, 2))
        config["groups"] = groups
    else:
        c_in = draw(st.integers(1, 3))
        config["depth_multiplier"] = draw(st.integers(1, 3))
        if layer.startswith("Separable"):
            config["filters"] = draw(st.integers(1, 3))
    batch = draw(st.integers(1, 2))
    cf = config.get("data_format") == "channels_first"
    shape = (batch, c_in, *spatial) if cf else (batch, *spatial, c_in)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    weights = {k: rng.standard_normal(s) for k, s in weight_shapes(layer, config, c_in).items()}
    return layer, config, x, weights


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_oracle_equals_naive_loops(case):
    layer, config, x, weights = case
    want = naive(layer, config, x, weights)
    got = oracle.run(layer, config, x, weights)
    assert got.shape == want.shape, f"{layer} {config}: oracle shape={got.shape}, but should be {want.shape}"
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=f"{layer} {config}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_gauge_is_the_layer_on_magnitudes(case):
    layer, config, x, weights = case
    g = oracle.gauge(layer, config, x, weights)
    want = naive(layer, config, np.abs(x), {k: np.abs(v) for k, v in weights.items()}, activation=False)
    assert g.shape == want.shape, f"{layer} {config}: gauge shape={g.shape}, but should be {want.shape}"
    np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-10, err_msg=f"gauge {layer} {config}")
    # |sum x w + b| <= sum |x||w| + |b|: the gauge dominates the pre-activation output.
    pre = naive(layer, config, x, weights, activation=False)
    assert np.all(g >= np.abs(pre) * (1 - 1e-12)), f"gauge < |pre-activation| for {layer} {config}"
    assert np.all(g >= 0), f"negative gauge for {layer} {config}"
