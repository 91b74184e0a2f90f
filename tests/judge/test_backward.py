"""The backward check: its bound (a correct port uses little of it, a wrong one exceeds it by orders of magnitude),
the kink allowance, the per-tensor judgement and its messages, the schema fields, and the items pytest makes."""
from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from harness.judge import gradients as backward, runner
from harness import engines
from harness.engines.base import EngineOutput
from harness.errors import CaseError
from harness.cases.schema import case_from_entry, load_file
from testkit import write_yaml

CONFIGS = [
    ("Conv1D", [2, 9, 3], {"filters": 4, "kernel_size": 3, "padding": "same", "strides": 2}),
    ("Conv2D", [2, 6, 5, 4], {"filters": 4, "kernel_size": [3, 2], "groups": 2, "activation": "tanh"}),
    ("DepthwiseConv1D", [2, 10, 3], {"kernel_size": 3, "depth_multiplier": 2, "dilation_rate": 2}),
    ("DepthwiseConv2D", [2, 7, 7, 2], {"kernel_size": 2, "padding": "same", "activation": "relu"}),
    ("SeparableConv1D", [2, 9, 3], {"filters": 3, "kernel_size": 3, "depth_multiplier": 2, "activation": "sigmoid"}),
    ("SeparableConv2D", [1, 5, 6, 2], {"filters": 3, "kernel_size": 3, "padding": "same"}),
]


_ids = itertools.count()


def make_case(layer, shape, config, dtype="float32", **more):
    # A new id each time: the runner keeps the reference of the last (file, id) it computed.
    entry = {"id": f"t{next(_ids)}", "layer": layer, "input_shape": shape, "config": config, "dtype": dtype,
             "check": ["forward", "backward"], **more}
    (case,) = case_from_entry("t.yaml", entry)
    return case


def torch_answer(case) -> tuple[EngineOutput, backward.BackwardReference]:
    ref = runner.reference(case)
    bref = backward.backward_reference(case, ref.inputs)
    req = runner.request(case, "torch", ref.inputs)
    req.grad_output = bref.dy
    return engines.get("torch").run(req), bref


def largest(judged: backward.GradientJudgement) -> float:
    return max(m.max_ratio for m in judged.metrics.values())


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("layer,shape,config", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_a_correct_port_uses_well_under_the_budget(layer, shape, config, dtype):
    case = make_case(layer, [1, *shape[1:]] if dtype == "bfloat16" else shape, config, dtype)
    if backward.unusable_lengths(case):
        pytest.skip("no usable bound for this size in this dtype")
    out, bref = torch_answer(case)
    judged = backward.judge_gradients(case, "torch", out, bref)
    assert judged.verdict == "pass", judged.message
    assert largest(judged) < 0.5


# Real porting mistakes in the gradients, each applied to the torch port's correct answer.
def _transposed_kernel(g, case):
    k = g["kernel"] if "kernel" in g else g["depthwise_kernel"]
    name = "kernel" if "kernel" in g else "depthwise_kernel"
    r = case.geometry.kind.rank
    flipped = np.flip(k, axis=tuple(range(r)))   # the forward's kernel flip applied to its gradient
    return {**g, name: np.ascontiguousarray(flipped)}


MISTAKES = {
    "kernel gradient flipped": _transposed_kernel,
    "dx scaled by 2": lambda g, case: {**g, "x": g["x"] * 2},
    "bias gradient dropped (stop-gradient)": lambda g, case: {**g, "bias": np.zeros_like(g["bias"])},
    "dx shifted one step": lambda g, case: {**g, "x": np.roll(g["x"], 1, axis=2 if case.geometry.channels_first else 1)},
}


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
@pytest.mark.parametrize("mistake", list(MISTAKES))
@pytest.mark.parametrize("layer,shape,config", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_a_wrong_gradient_exceeds_the_bound_by_orders_of_magnitude(layer, shape, config, dtype, mistake):
    case = make_case(layer, shape, config, dtype)
    out, bref = torch_answer(case)
    out.gradients = MISTAKES[mistake](out.gradients, case)
    judged = backward.judge_gradients(case, "torch", out, bref)
    assert judged.verdict == "fail"
    # The budget is gamma_K(u) G plus the activation's allowance: about K u of the gradient's scale, and a mistake
    # moves it by about its scale. In float16 (u = 2^-11) behind sigmoid or tanh the allowance for the
    # derivative at the engine's own pre-activation (rigorous: the forward bound times tanh's Lipschitz constant 2)
    # is most of the scale: those mistakes still fail, by a small margin (1.1x for a dropped dbias behind tanh).
    assert largest(judged) > {"float64": 1e9, "float32": 100, "float16": 1.0}[dtype], (mistake, judged.message)


def test_the_message_names_the_failing_tensor_and_stops_there():
    case = make_case("Conv2D", [2, 5, 5, 2], {"filters": 3, "kernel_size": 3})
    out, bref = torch_answer(case)
    out.gradients["kernel"] = out.gradients["kernel"] + 1
    out.gradients["bias"] = out.gradients["bias"] + 1
    judged = backward.judge_gradients(case, "torch", out, bref)
    assert judged.tensor == "kernel" and judged.check == "values"
    assert judged.message.startswith("torch: dkernel max error/bound ")
    assert judged.message.endswith(f"[t.yaml::{case.id}]")
    assert "bias" not in judged.metrics   # judged in order; the first failing tensor decides


def test_shape_dtype_and_missing_tensors_are_named():
    case = make_case("DepthwiseConv1D", [1, 7, 2], {"kernel_size": 3})
    out, bref = torch_answer(case)
    good = dict(out.gradients)
    out.gradients = {k: v for k, v in good.items() if k != "bias"}
    assert "dbias missing" in backward.judge_gradients(case, "torch", out, bref).message
    out.gradients = {**good, "x": good["x"].T}
    assert "dx shape=" in backward.judge_gradients(case, "torch", out, bref).message
    out.gradients = {**good, "kernel": good["kernel"].astype(np.float64)}
    assert "dkernel dtype=float64, but should be float32" in backward.judge_gradients(case, "torch", out, bref).message


def test_an_engine_on_the_other_side_of_a_relu_kink_is_not_blamed():
    # Integer data: some pre-activations are exactly 0, where relu' is 0 in TF and torch. An engine whose own
    # rounded pre-activation lands just above 0 takes relu' = 1 there: its dz differs by dy at that element, which
    # the kink allowance covers; the same difference where the pre-activation is far from 0 fails.
    case = make_case("Conv1D", [1, 6, 1], {"filters": 1, "kernel_size": 2, "activation": "relu"},
                     input={"init": "arange", "start": -2}, weights={"kernel": [[[1.0]], [[1.0]]], "bias": [1.0]})
    out, bref = torch_answer(case)
    ref = runner.reference(case)
    pre = ref.inputs.x64[0, :-1, 0] + ref.inputs.x64[0, 1:, 0] + 1.0   # -2, 0, 2, 4, 6 (x = -2..3)
    assert pre[1] == 0.0
    dy = bref.dy.astype(np.float64)[0, :, 0]
    other_side = dict(out.gradients)
    # relu'(0) taken as 1: dbias gains dy[1], dx[1] and dx[2] gain dy[1], the kernel gains x-terms times dy[1].
    other_side["bias"] = (out.gradients["bias"] + dy[1]).astype(np.float32)
    judged = backward.judge_gradients(case, "torch", EngineOutput(y=out.y, gradients=other_side), bref)
    assert judged.verdict == "pass", judged.message
    far = dict(out.gradients)
    far["bias"] = (out.gradients["bias"] - dy[3]).astype(np.float32)   # as if relu' were 0 at pre = 4
    assert backward.judge_gradients(case, "torch", EngineOutput(y=out.y, gradients=far), bref).verdict == "fail"


def test_the_depthwise_bias_block_is_judged_as_what_it_is():
    case = make_case("SeparableConv2D", [2, 5, 5, 2], {"filters": 3, "kernel_size": 3, "depth_multiplier": 2},
                     engine_options={"torch": {"depthwise_bias": True}})
    out, bref = torch_answer(case)
    assert set(out.gradients) == {"x", "depthwise_kernel", "pointwise_kernel", "bias", "depthwise_bias"}
    judged = backward.judge_gradients(case, "torch", out, bref)
    assert judged.verdict == "pass", judged.message
    # Folding the depthwise bias into the Keras bias, applied to the gradients as if it were exact, is wrong.
    pk = bref.weights64["pointwise_kernel"].reshape(-1, 3)
    folded = dict(out.gradients)
    folded["bias"] = (out.gradients["bias"] + out.gradients["depthwise_bias"] @ pk).astype(np.float32)
    wrong = backward.judge_gradients(case, "torch", EngineOutput(y=out.y, gradients=folded,
                                                                 intermediate=out.intermediate), bref)
    assert wrong.verdict == "fail" and wrong.tensor == "bias"


def test_golden_gradients_are_checked_in_every_engine():
    case = make_case("Conv1D", [1, 3, 1], {"filters": 1, "kernel_size": 1}, input="ones",
                     weights={"kernel": "ones", "bias": "zeros"}, grad_output="ones",
                     expect={"gradients": {"kernel": [[[3.0]]], "bias": [3.0], "x": [[[1.0], [1.0], [1.0]]]}})
    assert runner.run_one(case, "oracle", "backward").verdict == "pass"
    wrong = make_case("Conv1D", [1, 3, 1], {"filters": 1, "kernel_size": 1}, input="ones",
                      weights={"kernel": "ones", "bias": "zeros"}, grad_output="ones",
                      expect={"gradients": {"kernel": [[[4.0]]]}})
    r = runner.run_one(wrong, "oracle", "backward")
    assert r.verdict == "fail" and "dkernel at (0, 0, 0)=3, but should be 4 (expect.gradients)" in r.message


def test_an_engine_without_gradients_skips_its_backward_items_with_the_reason():
    case = make_case("Conv1D", [1, 5, 2], {"filters": 2, "kernel_size": 3})
    name = engines.register_plugin("tests.plugins_for_tests:correct")
    r = runner.run_one(case, name, "backward")
    assert r.verdict == "skip" and "computes no gradients" in r.message and "grad_output" in r.message
    assert runner.run_one(case, name, "forward").verdict == "pass"


def test_a_vacuous_bound_is_a_skip_naming_the_tensor():
    case = make_case("Conv2D", [4, 8, 8, 1], {"filters": 1, "kernel_size": 1}, dtype="bfloat16")
    r = runner.run_one(case, "torch", "backward")
    assert r.verdict == "skip" and "dkernel (K=257)" in r.message


@pytest.mark.parametrize("more,field,said", [
    ({"check": ["sideways"]}, "check", "must be a list of forward and/or backward"),
    ({"check": ["forward"], "grad_output": "ones"}, "grad_output", "add backward to check"),
    ({"check": ["backward"], "grad_output": [[1.0]]}, "grad_output", "impossible shape"),
    ({"check": ["forward"], "expect": {"gradients": {"kernel": [1.0]}}}, "expect.gradients", "add backward"),
    ({"check": ["backward"], "expect": {"gradients": {"gamma": [1.0]}}}, "expect.gradients.gamma", "no tensor"),
    ({"check": ["backward"], "expect": {"gradients": {"bias": [1.0]}}}, "expect.gradients.bias", "impossible shape"),
])
def test_schema_errors_name_the_field(more, field, said):
    entry = {"id": "t", "layer": "Conv1D", "input_shape": [1, 5, 2], "config": {"filters": 2, "kernel_size": 3},
             **more}
    with pytest.raises(CaseError) as info:
        case_from_entry("t.yaml", entry)
    assert info.value.field == field and said in str(info.value)


def test_pytest_makes_a_backward_item_beside_each_forward_item(tmp_path):
    path = write_yaml(tmp_path, textwrap.dedent("""\
        cases:
          - id: both
            layer: DepthwiseConv1D
            input_shape: [1, 6, 2]
            config: {kernel_size: 3}
            check: [forward, backward]
          - id: forward-only
            layer: Conv1D
            input_shape: [1, 6, 2]
            config: {filters: 2, kernel_size: 3}
        """), "bw.yaml")
    cases, errors = load_file(path)
    assert not errors and cases[0].check == ("forward", "backward") and cases[1].check == ("forward",)
    run = subprocess.run([sys.executable, "-m", "pytest", str(path), "-q", "--collect-only", "-p", "no:cacheprovider",
                          "--engine", "oracle", "--engine", "torch"], capture_output=True, text=True, cwd=tmp_path)
    listed = [line for line in run.stdout.splitlines() if "::" in line]
    assert [line.split("::", 1)[1] for line in listed] == [
        "both[oracle]", "both[torch]", "both[oracle:backward]", "both[torch:backward]",
        "forward-only[oracle]", "forward-only[torch]"]
