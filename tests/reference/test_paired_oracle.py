"""The oracle's output and gauge in one pass (harness.reference.paired): the gauge is exactly the layer on |x|, |w|,
|b| computed alone, the output the family's forward to float64 rounding, and the runner's reference built from
them gives the verdicts and metrics of the whole arrays whether it holds them whole or lazily."""
from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from test_chunked_oracle import CONFIGURATIONS, WHOLE, _inputs, _same

from harness.cases.schema import case_from_entry
from harness.engines.oracle_engine import OracleEngine
from harness.judge import runner
from harness.layers import conv_ops
from harness.layers.families.base import Family
from harness.layers.geometry import geometry, output_shape
from harness.reference import oracle, paired
from harness.reference.agreement import LazyArray

U64 = 2.0**-53
# The kinds whose family computes both passes at once (it overrides Family.forward_pair).
PAIRED_KINDS = [i for i, c in enumerate(CONFIGURATIONS)
                if type(geometry(c[0], c[1], c[2]).kind.family).forward_pair is not Family.forward_pair]


def _family(x: np.ndarray, w: dict, g) -> np.ndarray:
    """The family's own forward and bias, as the oracle computed it before the paired pass."""
    y = g.kind.family.forward(x, w, g)
    return y + w["bias"] if g.use_bias else y


@pytest.mark.parametrize("index", PAIRED_KINDS, ids=[f"{CONFIGURATIONS[i][0]}-{i}" for i in PAIRED_KINDS])
@pytest.mark.parametrize("block", [WHOLE, 1])
def test_paired_pass_is_the_family_forward_to_float64_rounding(index, block, monkeypatch):
    """The transposed depthwise products sum each output's taps in another order than conv_ops.depthwise (a
    deliberate re-baseline, as the conv primitive's was): the output and the gauge each differ from the family's
    forward (on x, and on |x| |w|) by at most the float64 rounding of two sums of K terms, 2 K u G; and not at all
    where every product and partial sum is exact (inputs on a coarse grid). The gauge pass alone and the paired
    one give the same gauge, bit for bit, whatever the block of channels."""
    layer, config, shape, dtype = CONFIGURATIONS[index]
    g, x, w = _inputs(index, layer, config, shape, dtype)
    x = oracle.to_channels_last(x, g.channels_first)
    monkeypatch.setattr(conv_ops, "PATCH_BLOCK_ELEMENTS", block)
    magnitudes = {k: np.abs(v) for k, v in w.items()}
    want_y, want_g = _family(x, w, g), _family(np.abs(x), magnitudes, g)
    y, gauge = paired.layer(x, w, g, value=True, magnitudes=True)
    assert y is not None and gauge is not None
    assert y.shape == want_y.shape and gauge.shape == want_g.shape, (layer, config, shape)
    allowed = 2 * g.reduction_length() * U64 * want_g
    for name, got, want in (("output", y, want_y), ("gauge", gauge, want_g)):
        assert np.all(np.abs(got - want) <= allowed), f"{layer} {config}: {name} off by {np.max(np.abs(got - want))}"
    assert _same(paired.layer(x, w, g, value=False, magnitudes=True)[1], gauge), "the gauge alone differs"
    assert _same(paired.layer(x, w, g, value=True, magnitudes=False)[0], y), "the output alone differs"
    coarse_x = np.round(x * 4) / 4
    coarse_w = {k: np.round(v * 4) / 4 for k, v in w.items()}
    assert _same(paired.layer(coarse_x, coarse_w, g, True, False)[0], _family(coarse_x, coarse_w, g)), (layer, config)


def test_a_misplaced_tap_is_caught():
    """The bound above can fail: the depthwise kernel's taps reversed move the output far beyond 2 K u G."""
    layer, config, shape, dtype = next(c for c in CONFIGURATIONS
                                       if c[0] == "DepthwiseConv2D" and c[1]["kernel_size"] > 1)
    g, x, w = _inputs(0, layer, config, shape, dtype)
    x = oracle.to_channels_last(x, g.channels_first)
    flipped = {**w, "kernel": w["kernel"][::-1, ::-1].copy()}
    y = paired.layer(x, flipped, g, True, False)[0]
    want_y, want_g = _family(x, w, g), _family(np.abs(x), {k: np.abs(v) for k, v in w.items()}, g)
    assert np.any(np.abs(y - want_y) > 2 * g.reduction_length() * U64 * want_g)


@pytest.mark.parametrize("index", range(0, len(CONFIGURATIONS), 3),
                         ids=[f"{CONFIGURATIONS[i][0]}-{i}" for i in range(0, len(CONFIGURATIONS), 3)])
def test_run_and_gauge_are_run_and_gauge_bit_for_bit(index, monkeypatch):
    """One pass for both gives each exactly as its own pass does, on every family (paired or not), chunked or
    not."""
    layer, config, shape, dtype = CONFIGURATIONS[index]
    _, x, w = _inputs(index, layer, config, shape, dtype)
    want = oracle.run(layer, config, x, w), oracle.gauge(layer, config, x, w)
    for chunk in (WHOLE, 1):
        monkeypatch.setattr(oracle, "CHUNK_ELEMENTS", chunk)
        y, gauge = oracle.run_and_gauge(layer, config, x, w)
        assert _same(y, want[0]) and _same(gauge, want[1]), f"{layer} {config} {shape}, chunk {chunk}"
        lazy_y, lazy_g = oracle.reference_pair(layer, config, x, w)
        assert isinstance(lazy_y, LazyArray) == (chunk == 1) == isinstance(lazy_g, LazyArray)
        # Interleaved reads, as the metrics make them: each image's output, then its gauge, then backwards.
        for i in [*range(shape[0]), *reversed(range(shape[0]))]:
            assert _same(np.asarray(lazy_y[i]), want[0][i]) and _same(np.asarray(lazy_g[i]), want[1][i]), (index, i)


def test_a_lazy_pair_computes_each_chunk_once_per_pass(monkeypatch):
    """Reading the output and the gauge of each image in turn (what the metrics of one engine do) computes each
    chunk once: the two share it."""
    layer, config, shape = "DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 2, "padding": "same"}, (5, 9, 8, 3)
    _, x, w = _inputs(1, layer, config, shape, "float32")
    monkeypatch.setattr(oracle, "CHUNK_ELEMENTS", 1)
    calls: list[int] = []
    real = paired.layer

    def counted(*args, **kwargs):
        calls.append(len(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(paired, "layer", counted)
    y, gauge = oracle.reference_pair(layer, config, x, w)
    assert not calls, "nothing is computed before it is read"
    for i in range(shape[0]):
        y[i], gauge[i, 2:5], y[i, 1]
    assert calls == [1] * shape[0], f"chunks computed: {calls} (images each), but should be one per image"


def _case(entry: dict):
    return case_from_entry("test", {"id": "paired", **entry})[0]


def test_the_reference_answer_is_the_oracle_engines(monkeypatch):
    """The runner builds the oracle's answer from the paired pass: the oracle engine's, field for field."""
    case = _case({"layer": "SeparableConv2D", "input_shape": [3, 7, 6, 4],
                  "config": {"filters": 5, "kernel_size": 3, "depth_multiplier": 2, "padding": "same"}})
    runner._cache.clear()
    try:
        ref = runner.reference(case)
        want = OracleEngine().run(runner.request(case, "oracle", ref.inputs))
        assert _same(ref.oracle.y, want.y)
        assert (ref.oracle.params, ref.oracle.weight_shapes) == (want.params, want.weight_shapes)
    finally:
        runner._cache.clear()


def test_a_lazy_reference_judges_as_the_whole_one(monkeypatch):
    """The same verdicts and metrics, for the oracle's own item and for an engine, whether the reference holds its
    output and gauge whole or a chunk at a time."""
    case = _case({"layer": "DepthwiseConv2D", "input_shape": [4, 10, 9, 3], "dtype": "float16",
                  "config": {"kernel_size": 3, "depth_multiplier": 3, "padding": "same", "activation": "tanh"}})
    got = {}
    for chunk in (WHOLE, 1):
        monkeypatch.setattr(oracle, "CHUNK_ELEMENTS", chunk)
        runner._cache.clear()
        try:
            results = [runner.run_one(case, e) for e in ("oracle", "torch")]
            assert isinstance(runner.reference(case).y, LazyArray) == (chunk == 1)
        finally:
            runner._cache.clear()
        got[chunk] = [(r.verdict, r.metrics.as_dict() if r.metrics else None) for r in results]
    assert got[1] == got[WHOLE]
    assert [v for v, _ in got[1]] == ["pass", "pass"] and got[1][1][1]["max_ratio"] > 0, got[1]


def test_a_lazy_reference_holds_no_whole_output(monkeypatch):
    """Built for an output of several chunks, the reference holds its inputs and nothing of the output's size
    (traced peak well under one float64 copy of the output)."""
    monkeypatch.setattr(oracle, "CHUNK_ELEMENTS", 1)
    case = _case({"layer": "DepthwiseConv2D", "input_shape": [8, 32, 32, 8],
                  "config": {"kernel_size": 3, "depth_multiplier": 8, "padding": "same"}})
    whole = math.prod(output_shape(case.geometry, case.input_shape)) * 8   # 4.2 MB
    runner._cache.clear()
    tracemalloc.start()
    try:
        ref = runner.reference(case)
        held = tracemalloc.get_traced_memory()[0]
        ref.y[3], ref.gauge[3]
        read = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        runner._cache.clear()
    assert held < whole / 4, f"the reference holds {held / 1e6:.2f} MB for a {whole / 1e6:.1f} MB output"
    assert read < whole / 2, f"after reading an image it holds {read / 1e6:.2f} MB ({whole / 1e6:.1f} MB output)"
