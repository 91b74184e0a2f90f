"""The error bound and the metrics: literal gammas, the edge cases of the ratio, and its power to tell."""
import numpy as np
import pytest

from harness.reference import oracle
from harness.reference.agreement import Bound, error_bound, gamma, measure, ratios

U32, U64, U16, UBF = 2.0**-24, 2.0**-53, 2.0**-11, 2.0**-8


@pytest.mark.parametrize("k, u, want", [
    (10, 0.01, 0.1 / 0.9),          # K u = 0.1 -> 0.1 / 0.9
    (1, 0.5, 1.0),                  # 0.5 / 0.5
    (3, 0.25, 3.0),                 # 0.75 / 0.25
    (0, 0.01, 0.0),
    (1, U32, U32 / (1 - U32)),
    (9, U32, 9 * U32 / (1 - 9 * U32)),
])
def test_gamma_literal(k, u, want):
    assert gamma(k, u) == pytest.approx(want, rel=1e-15), f"gamma({k}, {u})={gamma(k, u)}, but should be {want}"


@pytest.mark.parametrize("k, u", [(100, 0.01), (101, 0.01), (4, 0.25), (2048, U16), (256, UBF), (2**24, U32)])
def test_gamma_infinite_when_ku_reaches_one(k, u):
    assert gamma(k, u) == float("inf"), f"gamma({k}, {u})={gamma(k, u)}, but should be inf (K u >= 1)"


@pytest.mark.parametrize("k, dtype, vacuous", [
    # gamma_K(u) >= 1 from K u >= 1/2: float16 u = 2^-11, bfloat16 2^-8, float32 2^-24.
    (1023, "float16", False), (1024, "float16", True), (127, "bfloat16", False), (128, "bfloat16", True),
    (2**23 - 1, "float32", False), (2**23, "float32", True),
])
def test_bound_vacuous_when_gamma_reaches_one(k, dtype, vacuous):
    b = error_bound(k, dtype, np.ones(3), np.ones(3), "linear")
    assert b.vacuous is vacuous, f"vacuous={b.vacuous} for K={k} {dtype}, but should be {vacuous}"


def test_a_bound_at_gamma_one_would_accept_zeros():
    # Why gamma_K >= 1 is refused: G >= |y|, so an all-zero output would be within the bound.
    y = np.array([3.0, -2.0]); gauge = np.abs(y)
    b = error_bound(128, "bfloat16", gauge, y, "linear")
    assert np.all(np.abs(0 - y) <= b.bound), "a bound with gamma_K >= 1 should admit zeros (that is the point)"
    assert b.vacuous, "such a bound should be reported as vacuous"


def test_error_bound_values():
    gauge = np.array([1.0, 2.0, 0.0])
    y = np.array([0.5, -3.0, 0.0])
    g = 10 * U32 / (1 - 10 * U32) + 10 * U64 / (1 - 10 * U64)
    # Underflow: K + 1 = 11 etas by default, each through the sum's other roundings; an eta covers gradual underflow
    # (half float32's subnormal spacing, 2^-150) and a flush to zero of the product and of the partial sum it goes
    # into (2 x float32's smallest normal: agreement.rounding_eta); the oracle's own float64 eta beside it.
    eta = 2.0**-150 + 2 * 2.0**-126 + 2.0**-1074
    e = (1 + 10 * U32 / (1 - 10 * U32)) * 11 * eta
    b = error_bound(10, "float32", gauge, y, "linear")
    assert (b.k, b.u) == (10, U32), f"(k, u)={(b.k, b.u)}, but should be {(10, U32)}"
    np.testing.assert_allclose(b.bound, [g + e, 2 * g + e, e], rtol=1e-14)
    # relu is exact: no activation term. tanh: 6 u (3 ulps) of the engine and the oracle on |y| (measured 5.65u),
    # and its output flushed to zero where it underflows: float32's smallest normal (agreement.flush_eta).
    np.testing.assert_allclose(error_bound(10, "float32", gauge, y, "relu").bound, [g + e, 2 * g + e, e],
                               rtol=1e-14)
    t = 6 * (U32 + U64)
    flushed = 2.0**-126 + 2.0**-1074
    np.testing.assert_allclose(error_bound(10, "float32", gauge, y, "tanh").bound,
                               [g + t * 0.5 + e + flushed, 2 * g + t * 3.0 + e + flushed, e + flushed], rtol=1e-14)
    # A float64 case: the engine's and the oracle's share are the same size (float64's eta is 2^-1074, rounded up).
    g64 = 2 * (10 * U64 / (1 - 10 * U64))
    e64 = (1 + 10 * U64 / (1 - 10 * U64)) * 11 * (2 * 2.0**-1074 + 2 * 2.0**-1022)
    np.testing.assert_allclose(error_bound(10, "float64", gauge, y, "linear").bound, [g64 + e64, 2 * g64 + e64, e64],
                               rtol=1e-14)
    # A count given per element (a separable layer's, harness.reference.oracle.underflow_count) replaces the default.
    np.testing.assert_allclose(error_bound(10, "float32", gauge, y, "linear", underflow=np.array([1.0, 2.0, 3.0])).bound,
                               [g + e / 11, 2 * g + 2 * e / 11, 3 * e / 11], rtol=1e-14)


def test_ratios_edge_cases():
    y_oracle = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    y = np.array([1.5, 1.0, 0.0, 1e-30, np.nan, np.inf, 1.25])
    bound = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.5])
    r = ratios(y, y_oracle, bound)
    want = [0.5,      # 0.5 / 1
            0.0,      # exact, zero bound: 0/0 -> 0
            0.0,      # 0/0 -> 0
            np.inf,   # any error over a zero bound
            np.inf,   # NaN is never within bound
            np.inf,   # inf error
            0.5]
    assert list(r) == want, f"ratios={list(r)}, but should be {want}"


def test_measure_hand_built():
    y_oracle = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    delta = np.array([[0.0, 0.05, 0.3], [0.0, -0.2, 0.0]])
    b = Bound(k=7, u=U32, bound=np.full((2, 3), 0.1))
    m = measure(y_oracle + delta, y_oracle, b)
    # ratios [[0, .5, 3], [0, 2, 0]]: two over 1, worst at (0, 2).
    assert m.worst_index == (0, 2), f"worst_index={m.worst_index}, but should be (0, 2)"
    assert m.n_over == 2, f"n_over={m.n_over}, but should be 2"
    assert m.share_over == pytest.approx(2 / 6)
    assert m.max_ratio == pytest.approx(3.0, rel=1e-12)
    assert m.max_abs == pytest.approx(0.3, rel=1e-12)
    assert m.max_rel == pytest.approx(0.15, rel=1e-12)   # 0.3 / 2 beats 0.05 / 1 and 0.2 / 4
    assert (m.worst_value, m.worst_oracle, m.worst_bound) == pytest.approx((2.3, 2.0, 0.1))
    assert (m.k, m.u) == (7, U32)


def test_measure_nan_and_zero_reference():
    y_oracle = np.array([0.0, 2.0, 0.0])
    b = Bound(k=3, u=U32, bound=np.array([1.0, 1.0, 1.0]))
    m = measure(np.array([0.0, np.nan, 0.0]), y_oracle, b)
    assert m.worst_index == (1,) and m.max_ratio == np.inf and m.n_over == 1, m
    assert np.isnan(m.worst_value), f"worst_value={m.worst_value}, but should be nan"
    m = measure(np.array([0.5, 2.0, 0.0]), y_oracle, b)
    assert m.max_rel == np.inf, f"max_rel={m.max_rel}, but should be inf (error on a zero reference)"
    assert m.max_ratio == 0.5 and m.n_over == 0


def _conv_case(seed=0):
    rng = np.random.default_rng(seed)
    config = {"filters": 5, "kernel_size": 3, "padding": "same"}
    x = rng.standard_normal((2, 17, 4)).astype(np.float32)
    weights = {"kernel": rng.standard_normal((3, 4, 5)).astype(np.float32),
               "bias": rng.standard_normal(5).astype(np.float32)}
    x64, w64 = x.astype(np.float64), {k: v.astype(np.float64) for k, v in weights.items()}
    y = oracle.run("Conv1D", config, x64, w64)
    bound = error_bound(3 * 4 + 1, "float32", oracle.gauge("Conv1D", config, x64, w64), y, "linear")
    return config, x, weights, y, bound


def test_float32_results_stay_within_the_bound():
    config, x, weights, y, bound = _conv_case()
    # The exact result rounded once to float32: error <= u |y| <= u G.
    m = measure(y.astype(np.float32), y, bound)
    assert m.max_ratio <= 1.0, f"max_ratio={m.max_ratio}, but should be <= 1 for a float32 rounding"
    # A real float32 computation (im2col + float32 matmul, its own summation order).
    xp = np.pad(x, [(0, 0), (1, 1), (0, 0)])
    cols = np.stack([xp[:, t:t + 17, :] for t in range(3)], axis=2).reshape(2, 17, 12)
    y32 = cols @ weights["kernel"].reshape(12, 5) + weights["bias"]
    assert y32.dtype == np.float32
    m = measure(y32, y, bound)
    assert 0 < m.max_ratio <= 1.0, f"max_ratio={m.max_ratio}, but should be in (0, 1] for float32 arithmetic"


def test_flipped_kernel_goes_far_over():
    config, x, weights, y, bound = _conv_case()
    flipped = {"kernel": weights["kernel"][::-1].astype(np.float64), "bias": weights["bias"].astype(np.float64)}
    y_bad = oracle.run("Conv1D", config, x.astype(np.float64), flipped).astype(np.float32)
    m = measure(y_bad, y, bound)
    assert m.max_ratio > 1e4, f"max_ratio={m.max_ratio}, but should be far over 1 for a flipped kernel"
    assert m.n_over > y.size // 2, f"n_over={m.n_over} of {y.size}, but most elements should be over"


def test_an_activation_result_flushed_to_zero_is_within_the_bound():
    """TensorFlow's CPU kernels flush subnormal results to zero and torch's silu gives -0 where exp(-x) overflows:
    silu(-100) = -3.7e-42 (subnormal in float32) computed as 0 is a correct engine's answer."""
    pre = np.array([-100.0])
    y = pre / (1.0 + np.exp(-pre))
    assert 0 < abs(y[0]) < 2.0**-126
    b = error_bound(1, "float32", np.abs(pre), y, "silu")
    assert np.abs(0.0 - y[0]) <= b.bound[0], (y, b.bound)


def test_a_flushed_operand_is_within_the_bound_and_a_wrong_value_is_not():
    """TensorFlow reads subnormal operands as zero (denormals-are-zero) and flushes underflowing products: a Conv2D
    of x = 1e-39 by w in [0.5, 1] gives 0. The bound covers that (oracle.flushed_operands), and nothing much larger."""
    from harness.reference import oracle

    rng = np.random.default_rng(0)
    x = rng.uniform(1e-39, 1.1e-38, (1, 4, 4, 2)).astype(np.float32).astype(np.float64)
    w = {"kernel": rng.uniform(0.5, 1.0, (3, 3, 2, 2)), "bias": np.zeros(2)}
    config = {"filters": 2, "kernel_size": 3}
    y = oracle.run("Conv2D", config, x, w)
    flushed = oracle.flushed_operands("Conv2D", config, x, w, "float32")
    assert flushed is not None and np.all(flushed >= np.abs(y)), "D should cover the whole output: every x is flushed"
    b = error_bound(18, "float32", oracle.gauge("Conv2D", config, x, w), y, "linear", flushed=flushed).bound
    assert np.all(np.abs(0.0 - y) <= b), "an all-zero output (TensorFlow's) should be within the bound"
    assert np.all(np.abs(1e-30 - y) > b), "an output 1e-30 off should not be"
    # Normal operands: no such term, and the scan is all it costs.
    assert oracle.flushed_operands("Conv2D", config, x * 1e10, w, "float32") is None
