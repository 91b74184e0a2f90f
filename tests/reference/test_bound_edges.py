"""The edges of the error bound: rounding to the subnormal grid (Higham's absolute eta, forward, backward and
stacks), an engine's own rounding of the side of a kink it takes (a clamp-style relu port at exact-zero
pre-activations, every dtype and layer kind), and ratios just over 1 printed so that they read as failing."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from harness.reference import agreement, oracle
from harness.judge import gradients as backward, forward as judgement, runner, stacks as stack
from harness.frontends import cli
from harness.reference.agreement import Metrics
from harness.engines.base import EngineOutput
from harness.cases.schema import case_from_entry

_ids = itertools.count()
DTYPES = ("float16", "bfloat16", "float32", "float64")


def make_case(layer, shape, config, dtype, **more):
    # A new id each time: the runner keeps the reference of the last (file, id) it computed.
    entry = {"id": f"e{next(_ids)}", "layer": layer, "input_shape": shape, "config": config, "dtype": dtype,
             "check": ["forward", "backward"], **more}
    (case,) = case_from_entry("t.yaml", entry)
    return case


def torch_answer(case):
    ref = runner.reference(case)
    bref = backward.backward_reference(case, ref.inputs)
    req = runner.request(case, "torch", ref.inputs)
    req.grad_output = bref.dy
    return engines_get("torch").run(req), bref


def engines_get(name):
    from harness import engines

    return engines.get(name)


# ---------------------------------------------------------------- underflow: Higham's eta

def test_eta_is_half_the_smallest_subnormal_of_each_dtype():
    import ml_dtypes

    for name, dt in (("float16", np.float16), ("bfloat16", ml_dtypes.bfloat16), ("float32", np.float32)):
        tiny = float(ml_dtypes.finfo(dt).smallest_subnormal)
        assert agreement.underflow_eta(name) == tiny / 2, name
        # Any real between two subnormals rounds to one within eta of it.
        v = np.array([tiny * 0.5, tiny * 1.49, tiny * 7.5, tiny * 1000.25])
        assert np.all(np.abs(v.astype(dt).astype(np.float64) - v) <= agreement.underflow_eta(name))
    # float64's half subnormal 2^-1075 is not a float64: carried rounded up, as 2^-1074.
    assert agreement.underflow_eta("float64") == float(np.finfo(np.float64).smallest_subnormal)


# The false alarm, found by `make fuzz N=2000`: keras and torch both give dx = 2.8014183e-06 (a float16
# subnormal) where the oracle says 2.77273203e-06, less than half a subnormal spacing away.
SEED_1008 = dict(layer="SeparableConv1D", shape=[2, 2, 2], dtype="float16", seed=1008,
                 config={"kernel_size": 2, "strides": 2, "dilation_rate": 1, "padding": "valid",
                         "data_format": "channels_first", "activation": "relu", "use_bias": True, "filters": 3,
                         "depth_multiplier": 1},
                 input={"init": "normal", "std": 4.0})


def seed_1008_case():
    s = SEED_1008
    return make_case(s["layer"], s["shape"], s["config"], s["dtype"], seed=s["seed"], input=s["input"])


def test_a_float16_gradient_rounded_to_the_subnormal_grid_is_no_false_alarm():
    case = seed_1008_case()
    result = runner.run_one(case, "torch", "backward")
    assert result.verdict == "pass", result.message
    m = result.gradient_metrics["x"]
    assert m.max_ratio <= 1.0


@pytest.mark.parametrize("mistake", ["depthwise kernel gradient flipped", "dx sign of one element",
                                     "dpointwise scaled by 1.01"])
def test_a_real_mistake_in_the_same_float16_case_still_fails(mistake):
    case = seed_1008_case()
    out, bref = torch_answer(case)
    g = dict(out.gradients)
    if mistake == "depthwise kernel gradient flipped":
        g["depthwise_kernel"] = np.ascontiguousarray(np.flip(g["depthwise_kernel"], axis=0))
    elif mistake == "dx sign of one element":
        x = g["x"].copy()
        at = np.unravel_index(np.argmax(np.abs(x)), x.shape)
        x[at] = -x[at]
        g["x"] = x
    else:
        g["pointwise_kernel"] = (g["pointwise_kernel"].astype(np.float64) * 1.01).astype(np.float16)
    out.gradients = g
    judged = backward.judge_gradients(case, "torch", out, bref)
    assert judged.verdict == "fail", mistake


TINY = [  # float16 layers whose outputs and gradients lie on the subnormal grid (|y| < 2^-14)
    ("Conv1D", [2, 16, 3], {"filters": 4, "kernel_size": 3, "use_bias": False}),
    ("DepthwiseConv2D", [2, 6, 6, 3], {"kernel_size": 2, "use_bias": False}),
    ("SeparableConv1D", [2, 16, 3], {"filters": 4, "kernel_size": 3, "use_bias": False}),
]


@pytest.mark.parametrize("check", ["forward", "backward"])
@pytest.mark.parametrize("scale", [(1e-4, 1e-3), (3e-4, 3e-4), (1e-3, 1e-3)], ids=["1e-4x1e-3", "3e-4x3e-4",
                                                                                   "1e-3x1e-3"])
@pytest.mark.parametrize("layer,shape,config", TINY, ids=[t[0] for t in TINY])
def test_a_correct_port_on_the_float16_subnormal_grid_passes(layer, shape, config, scale, check):
    xs, ws = scale
    kernels = ["depthwise_kernel", "pointwise_kernel"] if layer.startswith("Separable") else ["kernel"]
    for seed in range(3):
        case = make_case(layer, shape, config, "float16", seed=seed, input={"init": "normal", "std": xs},
                         weights={k: {"init": "normal", "std": ws} for k in kernels})
        result = runner.run_one(case, "torch", check)
        assert result.verdict == "pass", result.message


@pytest.mark.parametrize("layer,shape,config", TINY, ids=[t[0] for t in TINY])
def test_a_flipped_kernel_on_the_float16_subnormal_grid_still_fails(layer, shape, config):
    # At this scale the values have a few significant bits; a flipped kernel still moves them by far more.
    kernels = ["depthwise_kernel", "pointwise_kernel"] if layer.startswith("Separable") else ["kernel"]
    case = make_case(layer, shape, config, "float16", seed=0, input={"init": "normal", "std": 1e-3},
                     weights={k: {"init": "normal", "std": 1e-2} for k in kernels})
    ref = runner.reference(case)
    name = kernels[0]
    rank = case.geometry.kind.rank
    w = {k: (np.flip(v, axis=tuple(range(rank))) if k == name else v) for k, v in ref.inputs.weights64.items()}
    y = oracle.run(case.layer, case.config, ref.inputs.x64, w).astype(np.float16)
    judged = judgement.judge(case, "torch", EngineOutput(y=y), ref)
    assert judged.verdict == "fail", judged.message


def test_the_underflow_count_of_a_separable_layer_carries_its_stored_depthwise_output_through_w_p():
    case = make_case("SeparableConv1D", [1, 7, 2], {"filters": 3, "kernel_size": 3, "depth_multiplier": 2},
                     "float16", weights={"pointwise_kernel": {"init": "normal", "std": 4.0}})
    ref = runner.reference(case)
    wp = np.abs(ref.inputs.weights64["pointwise_kernel"][0])   # (C*M, F)
    t, cm = 3, 4
    want = cm + 1 + (t + 1) * wp.sum(axis=0)    # pointwise products and store; z's T products and store, times |W_p|
    np.testing.assert_allclose(oracle.underflow_count(case.geometry, ref.inputs.x64, ref.inputs.weights64), want)
    np.testing.assert_allclose(ref.underflow, want)   # the runner's reference carries it to the judgement
    conv = make_case("Conv2D", [1, 5, 5, 3], {"filters": 2, "kernel_size": 2}, "float16")
    assert runner.reference(conv).underflow == 2 * 2 * 3 + 1


def test_large_pointwise_weights_over_an_underflowing_depthwise_stage_pass():
    # z (depthwise, |z| ~ 1e-6: float16 subnormals) is stored with an eta each, then multiplied by |W_p| ~ 8: a count
    # of K + 1 etas (a one-stage layer's) failed a correct port at 2.4 here; the count through |W_p| holds.
    for seed in range(20):
        for m in (1, 3):
            case = make_case("SeparableConv1D", [2, 12, 3],
                             {"filters": 4, "kernel_size": 3, "use_bias": False, "depth_multiplier": m}, "float16",
                             seed=seed, input={"init": "normal", "std": 1e-3},
                             weights={"depthwise_kernel": {"init": "normal", "std": 1e-3},
                                      "pointwise_kernel": {"init": "normal", "std": 8.0}})
            result = runner.run_one(case, "torch", "forward")
            assert result.verdict == "pass", result.message


def tiny_stack(dtype="float16"):
    return stack.stack_from_entry("t.yaml", {
        "id": f"s{next(_ids)}", "input_shape": [1, 6, 6, 3], "dtype": dtype, "seed": 0,
        "input": {"init": "normal", "std": 1e-3},
        "layers": [
            {"layer": "Conv2D", "config": {"filters": 6, "kernel_size": 1, "use_bias": False},
             "weights": {"kernel": {"init": "normal", "std": 1e-2}}},
            {"layer": "DepthwiseConv2D", "config": {"kernel_size": 3, "padding": "same", "use_bias": False},
             "weights": {"kernel": {"init": "normal", "std": 0.3}}},
            {"layer": "Conv2D", "config": {"filters": 2, "kernel_size": 1, "use_bias": False},
             "weights": {"kernel": {"init": "normal", "std": 0.3}}},
        ]})


def test_a_float16_stack_on_the_subnormal_grid_passes():
    result = stack.run_stack(tiny_stack(), "torch")
    assert result.verdict == "pass", result.message


# ---------------------------------------------------------------- the kink: an engine's rounding of the side it takes

def clamp_relu(y):
    return y.clamp(min=0)      # gradient 1 at 0 (torch's clamp_backward: min <= x <= max), relu's 0


def clamp_relu6(y):
    return y.clamp(0, 6)       # gradient 1 at 0 and at 6, relu6's 0 at both


@pytest.fixture
def clamp_port(monkeypatch):
    """The torch port with relu and relu6 written as clamps: a correct port whose derivative at the kinks is 1."""
    from harness import torch_port  # imports torch: only where a test runs it (collection imports no framework)

    monkeypatch.setitem(torch_port._ACTIVATIONS, "relu", clamp_relu)
    monkeypatch.setitem(torch_port._ACTIVATIONS, "relu6", clamp_relu6)


KINDS = [
    ("Conv1D", [1, 5, 2], {"filters": 2, "kernel_size": 2}, ("kernel",)),
    ("Conv2D", [1, 4, 4, 2], {"filters": 2, "kernel_size": 2}, ("kernel",)),
    ("DepthwiseConv1D", [1, 5, 2], {"kernel_size": 2, "depth_multiplier": 2}, ("kernel",)),
    ("DepthwiseConv2D", [1, 4, 4, 2], {"kernel_size": 2}, ("kernel",)),
    ("SeparableConv1D", [1, 5, 2], {"filters": 2, "kernel_size": 2}, ("depthwise_kernel", "pointwise_kernel")),
    ("SeparableConv2D", [1, 4, 4, 2], {"filters": 2, "kernel_size": 2, "depth_multiplier": 2},
     ("depthwise_kernel", "pointwise_kernel")),
]
# (activation, kink): every pre-activation exactly at the kink.
KINKS = [("relu", 0.0), ("relu6", 0.0), ("relu6", 6.0)]


def kink_case(layer, shape, config, kernels, dtype, activation, kink):
    """Input and kernels all ones, the bias the kink minus the window's sum: every pre-activation is exactly the
    kink (small integers: exact in every dtype), so that a clamp port takes the other side everywhere; dy is
    positive, so that its sums do not cancel and the engine's rounding of them shows at full size."""
    config = {**config, "activation": activation}
    probe = make_case(layer, shape, config, dtype, input="ones",
                      weights={**{k: "ones" for k in kernels}, "bias": "zeros"})
    ref = runner.reference(probe)
    window = oracle.pre_activation(oracle.to_channels_last(ref.inputs.x64, probe.geometry.channels_first),
                                   ref.inputs.weights64, probe.geometry)
    assert np.all(window == window.flat[0])   # 'valid' padding: every window is whole
    return make_case(layer, shape, config, dtype, input="ones",
                     weights={**{k: "ones" for k in kernels},
                              "bias": {"init": "constant", "value": kink - float(window.flat[0])}},
                     grad_output={"init": "uniform", "low": 0.3, "high": 1.0})


@pytest.mark.parametrize("activation,kink", KINKS, ids=[f"{a}@{k:g}" for a, k in KINKS])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer,shape,config,kernels", KINDS, ids=[k[0] for k in KINDS])
def test_a_clamp_style_port_passes_at_exact_kinks(clamp_port, layer, shape, config, kernels, dtype, activation,
                                                  kink):
    case = kink_case(layer, shape, config, kernels, dtype, activation, kink)
    ref = runner.reference(case)
    pre = oracle.pre_activation(oracle.to_channels_last(ref.inputs.x64, case.geometry.channels_first),
                                ref.inputs.weights64, case.geometry)
    assert np.all(pre == kink)
    result = runner.run_one(case, "torch", "backward")
    assert result.verdict == "pass", result.message
    assert runner.run_one(case, "torch", "forward").verdict == "pass"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer,shape,config,kernels", KINDS, ids=[k[0] for k in KINDS])
def test_a_clamp_style_port_with_a_real_mistake_still_fails(clamp_port, layer, shape, config, kernels, dtype):
    case = kink_case(layer, shape, config, kernels, dtype, "relu", 0.0)
    out, bref = torch_answer(case)
    out.gradients = {**out.gradients, "x": out.gradients["x"] * 2}   # dx doubled
    assert backward.judge_gradients(case, "torch", out, bref).verdict == "fail"


# ---------------------------------------------------------------- ratios that read as failing

@pytest.mark.parametrize("ratio,text", [(1.0000000136, "1.00000001"), (1.0002, "1.0002"), (1.0004999, "1.0005"),
                                        (1.3, "1.3"), (3.52, "3.52"), (1.25e5, "1.25e+05"), (1.0, "1"),
                                        (0.999999, "1"), (0.5, "0.5"), (0.0, "0"), (float("inf"), "inf")])
def test_format_ratio(ratio, text):
    assert agreement.format_ratio(ratio) == text
    if ratio > 1.0:
        assert float(agreement.format_ratio(ratio)) > 1.0


def metrics(ratio: float) -> Metrics:
    return Metrics(max_abs=1e-7, max_rel=1e-7, max_ratio=ratio, n_over=1, share_over=0.5, worst_index=(0,),
                   worst_value=1.0, worst_oracle=1.0, worst_bound=1e-7, k=3, u=2.0 ** -24)


def test_the_table_never_shows_a_failing_ratio_as_1():
    r = runner.Result(case_id="c", file="t.yaml", engine="torch", verdict="fail", metrics=metrics(1.0000000136))
    table = cli.format_table([r])
    assert " 1.00000001 " in table


def just_over(value: np.ndarray, oracle_value: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """``value`` with its element of the largest bound moved just over that bound (error/bound in (1, 1.0005))."""
    v = np.asarray(value, dtype=np.float64).copy()
    b = np.asarray(bound, dtype=np.float64)
    # Where the bound is largest against the value's own spacing, so that the step lands close to it.
    at = np.unravel_index(np.argmax(b / (np.abs(oracle_value) + 1e-300)), b.shape)
    v[at] = oracle_value[at] + b[at] * (1 + 1e-6)
    while abs(v[at] - oracle_value[at]) <= b[at]:   # float64's rounding of the sum may land inside
        v[at] = np.nextafter(v[at], np.inf)
    assert 1.0 < abs(v[at] - oracle_value[at]) / b[at] < 1.0005   # '1' with 3 significant digits
    return v


def test_messages_never_show_a_failing_ratio_as_1():
    # Outputs and dx exactly 0 where their gauges are not: an error just over the bound is then exact.
    case = make_case("Conv1D", [1, 6, 2], {"filters": 2, "kernel_size": 3}, "float64",
                     input=[[[1, -1], [2, -2], [3, -3], [1, -1], [0, 0], [5, 5]]],
                     weights={"kernel": "ones", "bias": "zeros"},
                     grad_output=[[[0.5, -0.5], [0.25, -0.25], [0.75, -0.75], [1.0, -1.0]]])
    ref = runner.reference(case)
    bref = backward.backward_reference(case, ref.inputs)
    # forward: the torch engine's judgement of an output just over its bound
    good = judgement.judge(case, "torch", EngineOutput(y=ref.y.copy()), ref)
    assert good.verdict == "pass", good.message
    j = judgement.judge(case, "torch", EngineOutput(y=just_over(ref.y, ref.y, good.bound.bound)), ref)
    assert j.verdict == "fail" and j.metrics.max_ratio > 1.0
    shown = agreement.format_ratio(j.metrics.max_ratio)
    assert float(shown) > 1.0 and f"max error/bound {shown} at" in j.message, j.message
    # backward: dx just over its bound
    out = EngineOutput(y=ref.y, gradients={k: v.copy() for k, v in bref.grads.items()})
    judged = backward.judge_gradients(case, "torch", out, bref)
    assert judged.verdict == "pass", judged.message
    out.gradients["x"] = just_over(out.gradients["x"], bref.grads["x"], judged.arrays["x"][1])
    judged = backward.judge_gradients(case, "torch", out, bref)
    assert judged.verdict == "fail"
    shown = agreement.format_ratio(judged.metrics["x"].max_ratio)
    assert float(shown) > 1.0 and f"dx max error/bound {shown} at" in judged.message, judged.message


def test_a_stack_message_never_shows_a_failing_ratio_as_1():
    s = tiny_stack("float64")
    layers = stack.reference(s).layers
    ys = [ref.y.copy() for ref in layers]
    ys[1] = just_over(ys[1], layers[1].y, layers[1].bound)
    names = [layer.layer for layer in s.layers]
    judged = stack.judge(s, "torch", names, ys, layers)
    assert judged.verdict == "fail" and judged.culprit == 1
    shown = agreement.format_ratio(judged.metrics[1].max_ratio)
    assert float(shown) > 1.0 and f"max error/bound {shown} at" in judged.message, judged.message
    assert f"[1] DepthwiseConv2D {shown} (culprit)" in stack.ratios_note(names, judged)
