"""harness.convert: exact round trips, the depthwise layout by hand, and exact folding of a depthwise bias."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.reference import oracle
from harness.convert import fold_depthwise_bias, keras_to_torch, torch_to_keras, unfold_depthwise_bias
from harness.layers.geometry import LAYERS, geometry
from lazy_import import Lazy

torch, torch_port = Lazy("torch"), Lazy("harness.torch_port")  # loaded when a test runs, not at collection

SETTINGS = settings(max_examples=50, deadline=None)


@st.composite
def keras_weights(draw, layers=tuple(LAYERS), dtype=np.float64):
    """(layer, geometry, random Keras weights) for bounded random shapes."""
    layer = draw(st.sampled_from(layers))
    rank = LAYERS[layer].rank
    groups = draw(st.integers(1, 3)) if LAYERS[layer].family.name == "conv" else 1
    c = groups * draw(st.integers(1, 3))
    config = {
        "kernel_size": tuple(draw(st.integers(1, 4)) for _ in range(rank)),
        "filters": groups * draw(st.integers(1, 3)),
        "use_bias": draw(st.booleans()),
    }
    if LAYERS[layer].family.name == "conv":
        config["groups"] = groups
    elif LAYERS[layer].family.name in ("depthwise", "separable"):
        config["depth_multiplier"] = draw(st.integers(1, 3))
    g = geometry(layer, config, (1, *(5,) * rank, c))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    weights = {k: rng.standard_normal(s).astype(dtype) for k, s in g.weight_shapes().items()}
    return layer, g, weights


@SETTINGS
@given(keras_weights(), st.sampled_from([np.float64, np.float32, np.float16]))
def test_round_trip_keras_torch_keras_is_exact(case, dtype):
    layer, g, weights = case
    weights = {k: v.astype(dtype) for k, v in weights.items()}
    state = keras_to_torch(layer, weights)
    back = torch_to_keras(layer, state, in_channels=g.in_channels)
    assert back.keys() == weights.keys()
    for k in weights:
        assert back[k].dtype == weights[k].dtype
        np.testing.assert_array_equal(back[k], weights[k], err_msg=f"{layer} {k}")
    # The torch names and shapes are what nn.Conv wants.
    c, m, f, k = g.in_channels, g.depth_multiplier, g.filters, g.kernel_size
    ones = (1,) * g.kind.rank
    want = {
        "conv": {"weight": (f, c // g.groups, *k), "bias": (f,)},
        "depthwise": {"weight": (c * m, 1, *k), "bias": (c * m,)},
        "conv_transpose": {"weight": (c, f, *k), "bias": (f,)},   # nn.ConvTransposeNd: (in, out, *k)
        "separable": {"depthwise.weight": (c * m, 1, *k), "pointwise.weight": (f, c * m, *ones),
                      "pointwise.bias": (f,)},
    }[g.kind.family.name]
    if not g.use_bias:
        want = {n: s for n, s in want.items() if not n.endswith("bias")}
    assert {n: v.shape for n, v in state.items()} == want


@SETTINGS
@given(keras_weights())
def test_round_trip_torch_keras_torch_is_exact(case):
    layer, g, weights = case
    state = keras_to_torch(layer, weights)
    again = keras_to_torch(layer, torch_to_keras(layer, state, depth_multiplier=g.depth_multiplier))
    assert again.keys() == state.keys()
    for k in state:
        np.testing.assert_array_equal(again[k], state[k])


def test_depthwise_layout_by_hand():
    # kernel[i, j, c, m] = 1000 i + 100 j + 10 c + m, so every entry names where it came from.
    kh, kw, c, m = 2, 3, 4, 2
    i, j, cc, mm = np.meshgrid(range(kh), range(kw), range(c), range(m), indexing="ij")
    kernel = (1000 * i + 100 * j + 10 * cc + mm).astype(np.float64)
    w = keras_to_torch("DepthwiseConv2D", {"kernel": kernel})["weight"]
    assert w.shape == (8, 1, 2, 3)
    assert w[0 * 2 + 0, 0, 0, 0] == 0
    assert w[1 * 2 + 1, 0, 1, 2] == 1211       # c=1, m=1 at i=1, j=2
    assert w[3 * 2 + 0, 0, 0, 1] == 130        # c=3, m=0 at i=0, j=1
    for a, b, ci, mi in np.ndindex(kh, kw, c, m):
        assert w[ci * m + mi, 0, a, b] == kernel[a, b, ci, mi]
    # 1D: kernel[t, c, m] at weight[c*M + m, 0, t].
    k1 = kernel[0]                              # (kw=3, C=4, M=2)
    w1 = keras_to_torch("DepthwiseConv1D", {"kernel": k1})["weight"]
    assert w1.shape == (8, 1, 3) and w1[2 * 2 + 1, 0, 2] == k1[2, 2, 1] == 221


def test_conv_layout_by_hand():
    kernel = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)    # (kh, kw, C, F)
    w = keras_to_torch("Conv2D", {"kernel": kernel})["weight"]
    assert w.shape == (5, 4, 2, 3)
    assert w[4, 3, 1, 2] == kernel[1, 2, 3, 4]


# ---------------------------------------------------------------- a bias on the depthwise step too

KERAS_43 = {"depthwise_kernel": np.zeros((3, 3, 3, 1)), "pointwise_kernel": np.zeros((1, 1, 3, 4)),
            "bias": np.zeros(4)}


def test_param_counts_46_vs_43():
    # The docs' numbers: SeparableConv2D 3 -> 4 channels, 3x3: Keras 43, a port with two biases 46.
    assert sum(v.size for v in KERAS_43.values()) == 43
    state = keras_to_torch("SeparableConv2D", KERAS_43, depthwise_bias=np.zeros(3))
    assert sum(v.size for v in state.values()) == 46
    assert sum(v.size for v in keras_to_torch("SeparableConv2D", KERAS_43).values()) == 43
    config = {"filters": 4, "kernel_size": 3}
    ported = torch_port.from_keras("SeparableConv2D", config, KERAS_43, depthwise_bias=np.zeros(3))
    assert sum(p.numel() for p in ported.parameters()) == 46
    assert sum(p.numel() for p in torch_port.from_keras("SeparableConv2D", config, KERAS_43).parameters()) == 43
    assert len(torch_to_keras("SeparableConv2D", state)) == 3


@SETTINGS
@given(keras_weights(layers=("SeparableConv1D", "SeparableConv2D")), st.integers(0, 2**32 - 1),
       st.sampled_from(["valid", "same"]))
def test_depthwise_bias_block_equals_keras(case, seed, padding):
    layer, g, weights = case
    rng = np.random.default_rng(seed)
    bd = rng.standard_normal(g.in_channels * g.depth_multiplier)
    config = {"filters": g.filters, "kernel_size": g.kernel_size, "depth_multiplier": g.depth_multiplier,
              "use_bias": g.use_bias, "padding": padding}
    x = rng.standard_normal((2, *(6,) * g.kind.rank, g.in_channels))
    want = oracle.run(layer, config, x, weights)
    module = torch_port.from_keras(layer, config, weights, depthwise_bias=bd, dtype=torch.float64)
    state = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    np.testing.assert_array_equal(state["depthwise.bias"], bd)
    with torch.no_grad():
        got = module(torch.from_numpy(x).movedim(-1, 1)).movedim(1, -1).numpy()
    pk = weights["pointwise_kernel"].reshape(-1, g.filters)
    scale = np.abs(want).max() + (np.abs(bd) @ np.abs(pk)).max() + 1.0  # the folded term's size counts too
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * scale)
    # Folding back gives Keras weights that compute the same, with the kernels untouched.
    folded = torch_to_keras(layer, state, in_channels=g.in_channels)
    assert set(folded) == {"depthwise_kernel", "pointwise_kernel", "bias"}
    np.testing.assert_array_equal(folded["depthwise_kernel"], weights["depthwise_kernel"])
    np.testing.assert_allclose(folded.get("bias"), weights.get("bias", np.zeros(g.filters)),
                               rtol=1e-12, atol=1e-12 * scale)
    np.testing.assert_allclose(oracle.run(layer, {**config, "use_bias": True}, x, folded), got,
                               rtol=1e-12, atol=1e-12 * scale)


def test_fold_by_hand():
    # W_p (C*M=2 -> F=2) = [[1, 2], [3, 4]] in Keras layout (C*M, F); b_d = [10, 100]; b = [1, -1].
    # W_p^T b_d = [1*10 + 3*100, 2*10 + 4*100] = [310, 420].
    pk = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    bd, b = np.array([10.0, 100.0]), np.array([1.0, -1.0])
    np.testing.assert_array_equal(fold_depthwise_bias(pk, bd, b), [311.0, 419.0])
    np.testing.assert_array_equal(fold_depthwise_bias(pk, bd), [310.0, 420.0])
    np.testing.assert_array_equal(unfold_depthwise_bias(pk, bd, b), [-309.0, -421.0])
    # A pointwise without a bias still folds into a new Keras bias.
    state = {"depthwise.weight": np.ones((2, 1, 1, 1)), "depthwise.bias": bd,
             "pointwise.weight": pk.transpose(3, 2, 0, 1)}
    np.testing.assert_array_equal(torch_to_keras("SeparableConv2D", state)["bias"], [310.0, 420.0])


# ---------------------------------------------------------------- clear errors

@pytest.mark.parametrize("call, message", [
    (lambda: keras_to_torch("ConvLSTM2D", {}), "unknown layer"),   # a Keras layer the harness lacks
    (lambda: keras_to_torch("Conv2D", {"kernel": np.zeros((3, 3, 2))}), "4 dimensions"),
    (lambda: keras_to_torch("Conv2D", {"kernel": np.zeros((3, 3, 2, 4)), "bias": np.zeros(3)}), "shape \\(4,\\)"),
    (lambda: keras_to_torch("Conv2D", {"weight": np.zeros((3, 3, 2, 4))}), "missing \\['kernel'\\]"),
    (lambda: keras_to_torch("DepthwiseConv2D", {"depthwise_kernel": np.zeros((3, 3, 2, 1))}), "unknown"),
    (lambda: keras_to_torch("SeparableConv2D", {"depthwise_kernel": np.zeros((3, 3, 2, 2)),
                                                "pointwise_kernel": np.zeros((1, 1, 2, 5))}), "pointwise_kernel"),
    (lambda: keras_to_torch("Conv1D", {"kernel": np.zeros((3, 2, 4))}, depthwise_bias=np.zeros(2)),
     "separable layers only"),
    (lambda: keras_to_torch("SeparableConv1D", {"depthwise_kernel": np.zeros((3, 2, 1)),
                                                "pointwise_kernel": np.zeros((1, 2, 5))},
                            depthwise_bias=np.zeros(3)), "depthwise_bias"),
    (lambda: keras_to_torch("Conv1D", {"kernel": np.zeros((3, 2, 4), dtype=np.int64)}), "floating-point"),
    (lambda: torch_to_keras("DepthwiseConv2D", {"weight": np.zeros((6, 2, 3, 3))}), "one input channel"),
    (lambda: torch_to_keras("DepthwiseConv2D", {"weight": np.zeros((6, 1, 3, 3))}, in_channels=4), "divide"),
    (lambda: torch_to_keras("DepthwiseConv2D", {"weight": np.zeros((6, 1, 3, 3))}, in_channels=3,
                            depth_multiplier=3), "disagree"),
    (lambda: torch_to_keras("SeparableConv2D", {"depthwise.weight": np.zeros((6, 1, 3, 3)),
                                                "pointwise.weight": np.zeros((4, 5, 1, 1))}), "pointwise.weight"),
    (lambda: torch_to_keras("Conv2D", {"weight": np.zeros((4, 2, 3, 3)), "bias": np.zeros(2)}), "bias"),
])
def test_bad_inputs_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
