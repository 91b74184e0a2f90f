"""The backward mutants: ports whose forward is right and whose gradients carry one real mistake. The shipped
backward cases kill each (and its forward items pass), `harness mutants` scores them, and a backward failure's
diagnosis names the mutant whose gradients the engine reproduces."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from harness.judge import gradients as backward, runner
from harness.frontends import cli
from harness import engines
from harness.reference.gradients import reference_gradients
from harness.diagnosis import diagnose, gradients as gradient_diagnosis
from harness.mutation import mutants, score
from harness.mutation.gradient_port import gradient_port
from harness.engines.base import EngineOutput, Inputs, Request
from harness.layers.geometry import geometry
from harness.cases.schema import case_from_entry, load_paths
from testkit import CASES, write_yaml

BACKWARD = list(mutants.BACKWARD_MUTANTS)
_ids = itertools.count()


@pytest.fixture(scope="module")
def shipped():
    cases, errors = load_paths([CASES / "backward.yaml"])
    assert not errors, f"invalid backward cases={[str(e) for e in errors]}, but should be none"
    return {c.id: c for c in cases}


DIAGNOSER = diagnose.Diagnoser()   # what the entry points pass to run_one


def make_case(layer, shape, config, **more):
    entry = {"id": f"bm{next(_ids)}", "layer": layer, "input_shape": shape, "config": config,
             "check": ["forward", "backward"], **more}
    (case,) = case_from_entry("t.yaml", entry)
    return case


# ---------------------------------------------------------------- the catalogue

def test_the_issue_list_is_in_the_catalogue_with_its_metadata():
    assert set(BACKWARD) == {"grad_kernel_forward_permutation", "grad_depthwise_bias_folded",
                             "grad_pad_split_mirrored", "grad_bias_stopped", "grad_dx_times_multiplier",
                             "grad_transpose_crop_mirrored"}
    assert not set(BACKWARD) & set(mutants.MUTANTS), "backward mutants must not run on forward items"
    for name, m in mutants.BACKWARD_MUTANTS.items():
        assert m.name == name and m.bug and m.diagnosis and m.families, f"mutant {name}: metadata missing"
        assert getattr(mutants, name) is m, f"mutant {name} is not importable as harness.mutation.mutants:{name}"
        assert mutants.CATALOGUE[name] is m
    assert mutants.BACKWARD_MUTANTS["grad_dx_times_multiplier"].families == ("depthwise", "separable")
    assert mutants.BACKWARD_MUTANTS["grad_depthwise_bias_folded"].families == ("separable",)
    assert mutants.BACKWARD_MUTANTS["grad_kernel_forward_permutation"].ranks == (2,)


@pytest.mark.parametrize("layer,shape,config", [
    ("Conv1D", [2, 9, 3], {"filters": 4, "kernel_size": 2, "padding": "causal", "activation": "tanh"}),
    ("Conv2D", [2, 6, 5, 4], {"filters": 4, "kernel_size": [3, 2], "groups": 2, "padding": "same", "strides": 2}),
    ("DepthwiseConv2D", [2, 3, 7, 7], {"kernel_size": 2, "padding": "same", "depth_multiplier": 2,
                                        "activation": "relu", "data_format": "channels_first"}),
    ("SeparableConv1D", [2, 9, 3], {"filters": 3, "kernel_size": 3, "depth_multiplier": 2, "use_bias": False}),
    ("SeparableConv2D", [1, 5, 6, 2], {"filters": 3, "kernel_size": 3, "padding": "same", "activation": "sigmoid"}),
])
def test_the_correct_gradient_port_is_the_oracle(layer, shape, config):
    case = make_case(layer, shape, config)
    ref = runner.reference(case)
    dy = backward.grad_output(case).astype(np.float64)
    x, w, g = ref.inputs.x64, ref.inputs.weights64, case.geometry
    for magnitudes in (False, True):
        want = reference_gradients(x, w, g, dy, magnitudes=magnitudes)
        got = gradient_port.gradients(g, x, w, dy, case.dtype, magnitudes=magnitudes)
        assert set(got) == set(want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


# ---------------------------------------------------------------- single mutants, hand-computed

def test_mirrored_pad_split_in_the_backward_pass_only():
    # Conv1D k=2 'same' on x = [1, 2, 3], w = [1, 10]: TensorFlow pads (0, 1), y[0] = x0 + 10 x1. With dy = [1, 0, 0]:
    # dx = [1, 10, 0], dw = [x0, x1] = [1, 2]. Mirrored (1, 0): y[0] read as 0 + 10 x0: dx = [10, 0, 0], dw = [0, 1].
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1)
    w = {"kernel": np.array([1.0, 10.0]).reshape(2, 1, 1)}
    cfg = {"filters": 1, "kernel_size": 2, "padding": "same", "use_bias": False}
    dy = np.array([1.0, 0.0, 0.0]).reshape(1, 3, 1)
    right = gradient_port("Conv1D", cfg, x, w, grad_output=dy)
    wrong = mutants.BACKWARD_MUTANTS["grad_pad_split_mirrored"]("Conv1D", cfg, x, w, grad_output=dy)
    np.testing.assert_array_equal(right.gradients["x"].ravel(), [1, 10, 0])
    np.testing.assert_array_equal(right.gradients["kernel"].ravel(), [1, 2])
    np.testing.assert_array_equal(wrong.gradients["x"].ravel(), [10, 0, 0])
    np.testing.assert_array_equal(wrong.gradients["kernel"].ravel(), [0, 1])
    np.testing.assert_array_equal(wrong.y, right.y)   # the forward pads right: [21, 32, 3]
    np.testing.assert_array_equal(right.y.ravel(), [21, 32, 3])


def test_kernel_gradient_through_the_forward_permutation_swaps_hw_and_in_out():
    case = make_case("Conv2D", [1, 4, 5, 2], {"filters": 3, "kernel_size": [2, 3]})
    ref = runner.reference(case)
    dy = backward.grad_output(case)
    args = (case.layer, case.config, ref.inputs.x, ref.inputs.weights)
    right = gradient_port(*args, grad_output=dy).gradients["kernel"]
    wrong = mutants.BACKWARD_MUTANTS["grad_kernel_forward_permutation"](*args, grad_output=dy).gradients["kernel"]
    # (kh, kw, C, F) -> torch (F, C, kh, kw) -> permute(3, 2, 0, 1) again -> (kw, kh, F, C)
    assert right.shape == (2, 3, 2, 3) and wrong.shape == (3, 2, 3, 2)
    np.testing.assert_array_equal(wrong, right.transpose(1, 0, 3, 2))


def test_folded_depthwise_bias_gradient():
    case = make_case("SeparableConv1D", [2, 6, 2], {"filters": 3, "kernel_size": 3, "depth_multiplier": 2})
    ref = runner.reference(case)
    dy = backward.grad_output(case)
    args = (case.layer, case.config, ref.inputs.x, ref.inputs.weights)
    right = gradient_port(*args, grad_output=dy).gradients
    wrong = mutants.BACKWARD_MUTANTS["grad_depthwise_bias_folded"](*args, grad_output=dy)
    b_d = wrong.intermediate["depthwise_bias"]          # the block's own depthwise bias, drawn as torch draws it
    p = ref.inputs.weights64["pointwise_kernel"].reshape(4, 3)
    db = right["bias"].astype(np.float64)
    np.testing.assert_allclose(wrong.gradients["bias"], db + p.T @ (p @ db), rtol=1e-6)
    np.testing.assert_allclose(wrong.gradients["pointwise_kernel"][0], right["pointwise_kernel"][0] + np.outer(b_d, db),
                               rtol=1e-5, atol=1e-6)
    assert "depthwise_bias" not in wrong.gradients   # folded away
    np.testing.assert_array_equal(wrong.gradients["x"], right["x"])


def test_stopped_bias_and_dx_times_multiplier():
    case = make_case("DepthwiseConv1D", [1, 7, 2], {"kernel_size": 3, "depth_multiplier": 3})
    ref = runner.reference(case)
    dy = backward.grad_output(case)
    args = (case.layer, case.config, ref.inputs.x, ref.inputs.weights)
    right = gradient_port(*args, grad_output=dy).gradients
    stopped = mutants.BACKWARD_MUTANTS["grad_bias_stopped"](*args, grad_output=dy).gradients
    tripled = mutants.BACKWARD_MUTANTS["grad_dx_times_multiplier"](*args, grad_output=dy).gradients
    assert not stopped["bias"].any() and right["bias"].any()
    np.testing.assert_allclose(tripled["x"], right["x"].astype(np.float64) * 3, rtol=1e-6)   # rounded once
    np.testing.assert_array_equal(tripled["kernel"], right["kernel"])


# ---------------------------------------------------------------- the shipped cases kill every backward mutant

def test_every_backward_mutant_is_killed_by_a_shipped_case_and_passes_its_forward_items(shipped):
    s = score.sweep(list(shipped.values()), BACKWARD, controls=["torch"], first_only=True)
    assert s.backward == BACKWARD and not s.mutants
    assert not s.survivors, f"surviving backward mutants={s.survivors}, but should be none: add a case to backward.yaml"
    assert not s.gaps, f"(mutant, layer kind) pairs no case kills={s.gaps}, but should be none"
    assert not s.errors, f"backward mutants that crashed={s.errors[:3]}, but should be none"
    assert not s.control_failures, f"control failures={dict(s.control_failures)}, but should be none"
    assert s.backward_verdicts[mutants.BACKWARD_CONTROL]["pass"] == len(s.backward_cases)
    assert s.backward_verdicts["torch"]["pass"] == len(s.backward_cases)
    for name in BACKWARD:
        killer = shipped[s.killers[name][0]]
        r = runner.run_one(killer, name, "backward")
        assert r.verdict == "fail", (name, killer.id, r.message)
        # Its forward is right: every forward item it can run passes (the point is that only gradients show it).
        forward = [runner.run_one(c, name) for c in shipped.values() if "forward" in c.check]
        bad = [(r.case_id, r.message) for r in forward if r.verdict not in ("pass", "skip")]
        assert not bad, f"{name} fails forward items={bad[:2]}, but its forward should be correct"
        assert sum(r.verdict == "pass" for r in forward) > 0


def test_the_depthwise_bias_block_case_kills_the_fold(shipped):
    # The case that runs the torch block (engine option depthwise_bias) kills the mutant of that block.
    case = shipped["bw-sep2-depthwise-bias(activation=relu,use_bias=True)"]
    assert case.engine_options == {"torch": {"depthwise_bias": True}}
    r = runner.run_one(case, mutants.register(["grad_depthwise_bias_folded"])[0], "backward")
    assert r.verdict == "fail" and r.message.startswith("grad_depthwise_bias_folded: dbias "), r.message


# ---------------------------------------------------------------- diagnosis names the mutant

def _torch(layer, config, x, weights, dy=None, options=None):
    """The torch engine on these inputs (a plug-in may call it as any framework)."""
    g = geometry(layer, config, x.shape)
    inputs = Inputs(x=x, weights=weights, x64=x.astype(np.float64),
                    weights64={k: v.astype(np.float64) for k, v in weights.items()})
    return engines.get("torch").run(Request(layer=layer, config=config, geometry=g, inputs=inputs,
                                            options=options or {}, grad_output=dy))


def _spatial(a, rank, channels_first):
    return tuple(range(2, 2 + rank)) if channels_first else tuple(range(1, 1 + rank))


# Hand-written wrong engines: torch's own gradients, with each mistake made independently of the mutant code.
def torch_kernel_forward_permutation(layer, config, x, weights, grad_output=None):
    out = _torch(layer, config, x, weights, grad_output)
    if grad_output is not None:
        for name in ("kernel", "pointwise_kernel"):
            if name in out.gradients:
                as_torch = out.gradients[name].transpose(3, 2, 0, 1)                     # (F, C, kh, kw)
                out.gradients[name] = np.ascontiguousarray(as_torch.transpose(3, 2, 0, 1))   # the forward's permute
    return out


def torch_depthwise_bias_folded(layer, config, x, weights, grad_output=None):
    out = _torch(layer, config, x, weights, grad_output, {"depthwise_bias": True})
    if grad_output is not None:
        d_bd = out.gradients.pop("depthwise_bias").astype(np.float64)
        p = weights["pointwise_kernel"].astype(np.float64)
        out.gradients["bias"] = (out.gradients["bias"] + d_bd @ p.reshape(p.shape[-2:])).astype(x.dtype)
    return out


def torch_pad_split_mirrored(layer, config, x, weights, grad_output=None):
    """Stride 1: the gradients on spatially flipped x, kernels and dy, flipped back, are those of the layer with its
    pad split mirrored (the forward stays the real one). A separable layer's pointwise step has no padding: its
    kernel's gradient reads the depthwise output of the real forward (what autograd saved)."""
    out = _torch(layer, config, x, weights, grad_output)
    if grad_output is None:
        return out
    g = geometry(layer, config, x.shape)
    r = g.kind.rank
    assert all(s == 1 for s in g.strides), "the flip construction holds for stride 1"
    axes = _spatial(x, r, g.channels_first)
    flipped = {k: np.ascontiguousarray(np.flip(v, tuple(range(r)))) if k in ("kernel", "depthwise_kernel") else v
               for k, v in weights.items()}
    back = _torch(layer, config, np.ascontiguousarray(np.flip(x, axes)), flipped,
                  np.ascontiguousarray(np.flip(grad_output, axes)))
    grads = {k: np.ascontiguousarray(np.flip(v, tuple(range(r)))) if k in ("kernel", "depthwise_kernel") else v
             for k, v in back.gradients.items()}
    grads["x"] = np.ascontiguousarray(np.flip(back.gradients["x"], axes))
    if "pointwise_kernel" in grads:
        grads["pointwise_kernel"] = out.gradients["pointwise_kernel"]
    return EngineOutput(y=out.y, gradients=grads)


def torch_bias_stopped(layer, config, x, weights, grad_output=None):
    out = _torch(layer, config, x, weights, grad_output)
    if grad_output is not None:
        out.gradients["bias"] = np.zeros_like(out.gradients["bias"])
    return out


def torch_dx_times_multiplier(layer, config, x, weights, grad_output=None):
    out = _torch(layer, config, x, weights, grad_output)
    if grad_output is not None:
        out.gradients["x"] = (out.gradients["x"] * config.get("depth_multiplier", 1)).astype(x.dtype)
    return out


DIAGNOSED = [
    ("grad_kernel_forward_permutation", "bw-conv2d-square-kernel"),
    ("grad_kernel_forward_permutation", "bw-conv2d-grid(strides=1,padding=same,groups=2)"),   # wrong shape too
    ("grad_depthwise_bias_folded", "bw-sep2-depthwise-bias(activation=relu,use_bias=True)"),
    ("grad_pad_split_mirrored", "bw-conv1d-padding(kernel_size=2,padding=causal,strides=1)"),
    ("grad_pad_split_mirrored", "bw-dw2-grid(depth_multiplier=2,strides=1,padding=same)"),
    ("grad_pad_split_mirrored", "bw-sep2-grid(depth_multiplier=2,strides=1,padding=same)"),
    ("grad_bias_stopped", "bw-conv2d-activation(activation=tanh,use_bias=True)"),
    ("grad_bias_stopped", "bw-sep1-grid(depth_multiplier=2,strides=2,padding=same)"),
    ("grad_dx_times_multiplier", "bw-dw1-grid(depth_multiplier=3,strides=2,padding=same)"),
    ("grad_dx_times_multiplier", "bw-sep2-grid(depth_multiplier=2,strides=1,padding=valid)"),
]


@pytest.mark.parametrize("mutant,case_id", DIAGNOSED, ids=[f"{m}-{c}" for m, c in DIAGNOSED])
def test_diagnosis_names_the_mutant_a_plugin_engine_reproduces(shipped, mutant, case_id):
    name = engines.register_plugin(f"torch_{mutant}=test_backward_mutants:torch_{mutant.removeprefix('grad_')}")
    r = runner.run_one(shipped[case_id], name, "backward", DIAGNOSER)
    assert r.verdict == "fail", r.message
    assert (r.findings[0].kind, r.findings[0].id) == ("gradient_mutant", mutant), r.findings
    said = f"; diagnosis: the gradients match the oracle's with {mutants.BACKWARD_MUTANTS[mutant].diagnosis} " \
           f"[mutant {mutant}]"
    assert said in r.message, f"message={r.message!r}, but should name mutant {mutant} first"
    assert runner.run_one(shipped[case_id], name).verdict == "pass"   # its forward is torch's


@pytest.mark.parametrize("name", BACKWARD)
def test_each_mutant_is_diagnosed_as_itself_on_its_killing_cases(shipped, name):
    s = score.sweep(list(shipped.values()), [name], first_only=True)
    for case_id in s.killers[name]:
        r = runner.run_one(shipped[case_id], name, "backward", DIAGNOSER)
        assert f"; diagnosis: the gradients match the oracle's with {mutants.BACKWARD_MUTANTS[name].diagnosis} " \
               f"[mutant {name}]" in r.message, r.message


def test_wrong_gradients_no_mutant_makes_get_no_diagnosis(shipped):
    case = shipped["bw-conv2d-square-kernel"]
    ref = runner.reference(case)
    bref = backward.backward_reference(case, ref.inputs)
    out = _torch(case.layer, case.config, ref.inputs.x, ref.inputs.weights, bref.dy)
    out.gradients["x"] = np.roll(out.gradients["x"], 1, axis=1)
    judged = backward.judge_gradients(case, "wrong", out, bref)
    assert judged.verdict == "fail"
    assert gradient_diagnosis.explain_gradients(case, "wrong", out, bref, judged.tensor) == []


def test_a_diagnosis_that_breaks_costs_nothing_but_itself(shipped, monkeypatch):
    case = shipped["bw-conv2d-activation(activation=tanh,use_bias=True)"]

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    # The engine is grad_bias_stopped; recomputing another mutant for its diagnosis breaks.
    monkeypatch.setattr(mutants.BACKWARD_MUTANTS["grad_pad_split_mirrored"], "gradients", broken)
    r = runner.run_one(case, mutants.register(["grad_bias_stopped"])[0], "backward", DIAGNOSER)
    assert r.verdict == "fail" and "(diagnosis failed: RuntimeError: boom)" in r.message, r.message
    assert [f.key for f in r.findings] == ["diagnosis_failed:RuntimeError"], r.findings


def test_no_diagnosis_for_the_oracle_nor_beyond_the_size_limit(shipped, monkeypatch):
    case = shipped["bw-conv2d-activation(activation=tanh,use_bias=True)"]
    ref = runner.reference(case)
    bref = backward.backward_reference(case, ref.inputs)
    out = EngineOutput(y=ref.y, gradients={**bref.grads, "bias": np.zeros(4)})
    assert gradient_diagnosis.explain_gradients(case, "oracle", out, bref, "bias") == []
    assert gradient_diagnosis.explain_gradients(case, "wrong", out, bref, "bias") != []
    monkeypatch.setattr(gradient_diagnosis, "MAX_ELEMENTS", 10)
    assert gradient_diagnosis.explain_gradients(case, "wrong", out, bref, "bias") == []


# ---------------------------------------------------------------- `harness mutants` scores them

SMALL = """\
cases:
  - id: square
    layer: Conv2D
    input_shape: [2, 5, 6, 4]
    config: {filters: 4, kernel_size: 2, padding: same}
    check: [forward, backward]
  - id: sep
    layer: SeparableConv1D
    input_shape: [2, 7, 2]
    config: {filters: 3, kernel_size: 2, depth_multiplier: 2, padding: same}
    check: [forward, backward]
  - id: up
    layer: Conv1DTranspose
    input_shape: [2, 4, 2]
    config: {filters: 2, kernel_size: 3, strides: 2, padding: same}
    check: [forward, backward]
"""


def test_harness_mutants_lists_the_backward_mutants_killed(tmp_path, capsys):
    path = write_yaml(tmp_path, SMALL, "small.yaml")
    rc = cli.main(["mutants", str(path), *itertools.chain.from_iterable(("--mutant", n) for n in BACKWARD)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.startswith("backward mutation score: 6/6 backward mutants killed (100%); (mutant, layer kind) pairs "
                          "killed: 9/9; 3 cases with a backward check"), out
    for name in BACKWARD:
        assert any(line.split()[:1] == [name] and "killing cases" in line for line in out.splitlines()), (name, out)
    assert "SURVIVES" not in out and "mutation score: 0/0" not in out
    assert "control gradient_port (backward items): 3 pass, 0 skip, 0 fail/error" in out
    assert "control torch (backward items): 3 pass, 0 skip, 0 fail/error" in out
    assert cli.main(["mutants", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(f"{n}" in listed for n in BACKWARD)
    assert any(line.startswith("grad_bias_stopped") and " backward " in line for line in listed.splitlines())


def test_forward_only_cases_run_no_backward_mutants(tmp_path):
    path = write_yaml(tmp_path, SMALL.replace("    check: [forward, backward]\n", ""), "fwd.yaml")
    cases, _ = load_paths([path])
    s = score.sweep(cases, ["flipped_kernel"])
    assert s.backward == [] and s.killers["flipped_kernel"]
    assert "backward mutation score" not in score.format_score(s)
