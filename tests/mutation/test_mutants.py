"""The mutant catalogue: hand-computed behaviour of single mutants, and the mutation score of the shipped cases."""
from __future__ import annotations

import time

import numpy as np
import pytest

from harness.mutation import mutants, score
from harness.mutation.port import numpy_port, pad_or_crop, reference_port
from harness.cases.schema import load_paths
from testkit import CASES


def conv1d(mutant, x, w, **config):
    """A Conv1D on (1, n, 1) input with kernel w (k, 1, 1) and no bias, through ``mutant``; returns y[0, :, 0]."""
    xs = np.asarray(x, dtype=np.float64).reshape(1, -1, 1)
    ws = {"kernel": np.asarray(w, dtype=np.float64).reshape(-1, 1, 1)}
    cfg = {"filters": 1, "kernel_size": len(w), "use_bias": False, **config}
    return mutant("Conv1D", cfg, xs, ws)[0, :, 0]


# ---------------------------------------------------------------- single mutants, hand-computed

def test_correct_port_cross_correlates():
    # Hand: [1,2,3] with [1,10] valid -> [1+20, 2+30].
    np.testing.assert_array_equal(conv1d(numpy_port, [1, 2, 3], [1, 10]), [21, 32])


def test_flipped_kernel_convolves():
    # Hand: true convolution = correlation with [10, 1] -> [10+2, 20+3].
    np.testing.assert_array_equal(conv1d(mutants.MUTANTS["flipped_kernel"], [1, 2, 3], [1, 10]), [12, 23])


def test_same_extra_before_pads_top_left():
    # k=2, n=3, same: total 1; TensorFlow pads after -> [1+20, 2+30, 3+0]; the mutant pads before -> [0+10, 1+20, 2+30].
    np.testing.assert_array_equal(conv1d(numpy_port, [1, 2, 3], [1, 10], padding="same"), [21, 32, 3])
    np.testing.assert_array_equal(conv1d(mutants.MUTANTS["same_extra_before"], [1, 2, 3], [1, 10], padding="same"),
                                  [10, 21, 32])


def test_same_no_clamp_crops_kernel_1_stride_2():
    # k=1, s=2, n=4: TF's total max(0, 1*2 + 1 - 4) = 0 reads pixels 0 and 2; unclamped -1 crops pixel 0.
    x = [1, 2, 3, 4]
    np.testing.assert_array_equal(conv1d(numpy_port, x, [1], padding="same", strides=2), [1, 3])
    np.testing.assert_array_equal(conv1d(mutants.MUTANTS["same_no_clamp"], x, [1], padding="same", strides=2), [2, 4])


def test_causal_padding_mutants():
    # k=2, d=2: causal left pad 2 -> y[t] = x[t-2]*w0 + x[t]*w1 with w = [1, 10].
    x = [1, 2, 3, 4]
    np.testing.assert_array_equal(conv1d(numpy_port, x, [1, 10], padding="causal", dilation_rate=2),
                                  [10, 20, 31, 42])
    # Right pad 2: y[t] = x[t] + 10 x[t+2].
    np.testing.assert_array_equal(conv1d(mutants.MUTANTS["causal_right"], x, [1, 10], padding="causal",
                                         dilation_rate=2), [31, 42, 3, 4])
    # Left pad k-1 = 1 only: 3 outputs instead of 4.
    assert conv1d(mutants.MUTANTS["causal_no_dilation"], x, [1, 10], padding="causal", dilation_rate=2).shape == (3,)


def test_depthwise_layout_mutants():
    # DepthwiseConv1D, k=1, C=2, M=2: kernel[0, c, m] = 10 c + m; input channels [1, 100].
    x = np.array([[[1.0, 100.0]]])
    w = {"kernel": np.array([[[0.0, 1.0], [10.0, 11.0]]])}
    cfg = {"kernel_size": 1, "depth_multiplier": 2, "use_bias": False}
    # Correct: output c*M+m = x_c * w[c, m] -> [0, 1, 1000, 1100].
    np.testing.assert_array_equal(numpy_port("DepthwiseConv1D", cfg, x, w)[0, 0], [0, 1, 1000, 1100])
    # Channels in m*C+c order: [w00 x0, w10 x1, w01 x0, w11 x1] = [0, 1000, 1, 1100].
    np.testing.assert_array_equal(mutants.MUTANTS["multiplier_channels_m_major"]("DepthwiseConv1D", cfg, x, w)[0, 0],
                                  [0, 1000, 1, 1100])
    # Rows in m*C+c order under groups=C: row o reads input o // M with filter value [0, 10, 1, 11][o].
    np.testing.assert_array_equal(mutants.MUTANTS["depthwise_rows_m_major"]("DepthwiseConv1D", cfg, x, w)[0, 0],
                                  [0, 10, 100, 1100])
    # Full conv: each output filter applied to x0 + x1 = 101.
    np.testing.assert_array_equal(mutants.MUTANTS["depthwise_as_full_conv"]("DepthwiseConv1D", cfg, x, w)[0, 0],
                                  [0, 101, 1010, 1111])


def test_separable_bias_after_depthwise_goes_through_pointwise():
    # SeparableConv1D k=1, C=1, M=2, F=2: z = [2x, 3x], W_p = [[1, 2], [3, 4]] (C*M x F), b = [10, 20], x = 1.
    x = np.ones((1, 1, 1))
    w = {"depthwise_kernel": np.array([[[2.0, 3.0]]]), "pointwise_kernel": np.array([[[1.0, 2.0], [3.0, 4.0]]]),
         "bias": np.array([10.0, 20.0])}
    cfg = {"filters": 2, "kernel_size": 1, "depth_multiplier": 2}
    # Keras: z W_p + b = [2+9, 4+12] + b = [21, 36].
    np.testing.assert_array_equal(numpy_port("SeparableConv1D", cfg, x, w)[0, 0], [21, 36])
    # Bias on z: (z + b) W_p = [12, 23] W_p = [12+69, 24+92] = [81, 116].
    np.testing.assert_array_equal(mutants.MUTANTS["separable_bias_after_depthwise"]("SeparableConv1D", cfg, x, w)[0, 0],
                                  [81, 116])
    # Untransposed pointwise: the (C*M, F) memory [1, 2, 3, 4] read as (F, C*M): filter f uses row f of it.
    np.testing.assert_array_equal(mutants.MUTANTS["pointwise_not_transposed"]("SeparableConv1D", cfg, x, w)[0, 0],
                                  [2 * 1 + 3 * 2 + 10, 2 * 3 + 3 * 4 + 20])


def test_round_mantissa_tf32_ties_to_even():
    # 10 explicit bits: spacing 2**-10 at 1. 1 + 2**-11 is a tie -> 1 (even); 1 + 3 * 2**-11 -> 1 + 2**-9 (even).
    got = mutants.round_mantissa(np.array([1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-10, -3.0]), 10)
    np.testing.assert_array_equal(got, [1.0, 1 + 2**-9, 1 + 2**-10, -3.0])


def test_pad_or_crop_negative_amounts_crop():
    x = np.arange(5.0).reshape(1, 1, 5)
    np.testing.assert_array_equal(pad_or_crop(x, [(-1, 2)])[0, 0], [1, 2, 3, 4, 0, 0])


def test_mutants_return_the_case_dtype_and_skip_where_they_do_not_apply():
    import ml_dtypes

    x = np.random.default_rng(0).standard_normal((1, 5, 2)).astype(np.float16)
    w = {"kernel": np.ones((3, 2, 2), np.float16), "bias": np.ones(2, np.float16)}
    assert mutants.MUTANTS["flipped_kernel"]("Conv1D", {"filters": 2, "kernel_size": 3}, x, w).dtype == np.float16
    xb = x.astype(ml_dtypes.bfloat16)
    wb = {k: v.astype(ml_dtypes.bfloat16) for k, v in w.items()}
    assert mutants.MUTANTS["bias_dropped"]("Conv1D", {"filters": 2, "kernel_size": 3}, xb, wb).dtype == xb.dtype
    with pytest.raises(NotImplementedError):
        mutants.MUTANTS["groups_interleaved"]("DepthwiseConv1D", {"kernel_size": 3}, x, {"kernel": w["kernel"][:, :, :1]})
    with pytest.raises(NotImplementedError):   # TF32 is a float32 mode
        mutants.MUTANTS["tf32"]("Conv1D", {"filters": 2, "kernel_size": 3}, x, w)


def test_catalogue_has_the_issue_list_and_metadata():
    required = {"same_symmetric", "same_extra_before", "same_no_clamp", "same_pad_from_k", "kernel_hw_swapped",
                "depthwise_reshape", "multiplier_channels_m_major", "depthwise_as_full_conv",
                "pointwise_not_transposed", "separable_bias_after_depthwise", "depthwise_bias_dropped",
                "flipped_kernel", "causal_right", "causal_no_dilation", "groups_interleaved",
                "layout_permutation_missing", "tf32", "dilation_ignored", "strides_first_axis_only", "bias_dropped",
                "activation_dropped", "activation_before_bias"}
    missing = required - set(mutants.MUTANTS)
    assert not missing, f"catalogue lacks={sorted(missing)}, but should have every mutant the issue lists"
    for m in mutants.MUTANTS.values():
        assert m.bug and m.diagnosis and m.families, f"mutant {m.name}: bug/diagnosis/families missing"
        assert getattr(mutants, m.name) is m, f"mutant {m.name} is not importable as harness.mutation.mutants:{m.name}"


# ---------------------------------------------------------------- the mutation score of the shipped cases

def test_every_mutant_is_killed_by_a_shipped_case_and_no_correct_port_is(record_property):
    cases, errors = load_paths([CASES])
    assert not errors, f"invalid shipped cases={[str(e) for e in errors]}, but should be none"
    start = time.perf_counter()
    s = score.sweep(cases, controls=list(score.DEFAULT_CONTROLS), first_only=True)
    record_property("mutant_sweep_s", round(time.perf_counter() - start, 2))
    assert not s.survivors, f"surviving mutants={s.survivors}, but should be none: add a case that kills each"
    assert not s.gaps, (f"(mutant, layer kind) pairs no case kills={s.gaps}, but should be none: add a case of "
                        "that layer kind that kills the mutant")
    assert not s.errors, f"mutants that crashed={s.errors[:3]}, but should be none (a crash is not a kill)"
    for control in score.DEFAULT_CONTROLS:
        failures = s.control_failures.get(control, [])
        assert not failures, f"{control} failed={failures[:2]}, but a correct port should pass every case"
        assert s.verdicts[control]["pass"] > 0.9 * len(s.cases), f"{control} passes too few cases"


def test_controls_are_correct_ports():
    # The oracle as a plug-in and the NumPy port agree with each other on a non-trivial layer (independent code
    # paths: oracle.depthwise/pointwise vs torch-layout weights on the grouped conv).
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 7, 6, 3))
    w = {"depthwise_kernel": rng.standard_normal((3, 2, 3, 2)), "pointwise_kernel": rng.standard_normal((1, 1, 6, 4)),
         "bias": rng.standard_normal(4)}
    cfg = {"filters": 4, "kernel_size": [3, 2], "strides": [2, 1], "padding": "same", "depth_multiplier": 2,
           "activation": "tanh"}
    np.testing.assert_allclose(numpy_port("SeparableConv2D", cfg, x, w), reference_port("SeparableConv2D", cfg, x, w),
                               rtol=1e-12, atol=1e-12)
