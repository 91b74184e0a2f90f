"""Bounded memory without a changed value (issue 12): the oracle and the gauge computed a chunk of images at a time,
the depthwise primitive a block of channels at a time, the gauge and the bound on demand and the metrics block by
block hold exactly (np.array_equal, bit for bit) what the whole computation holds, on every layer kind, dtype,
padding and data format; and their working memory does not grow with the output."""
from __future__ import annotations

import contextlib
import itertools
import math
import os
import tracemalloc

import numpy as np
import pytest

from harness.reference import agreement, oracle
from harness.layers import conv_ops
from harness.judge import runner
from harness.reference.agreement import Bound, LazyArray, blocks, error_bound, measure
from harness.layers.conv_ops import _padded, _taps
from harness.layers.geometry import LAYERS, geometry, impossible
from harness.cases.schema import load_file
from harness.tensors.values import round_to

WHOLE = 1 << 62   # a chunk or block size that never cuts anything: the whole computation
DTYPES = ("float16", "bfloat16", "float32", "float64")


def _configurations() -> list[tuple[str, dict, tuple[int, ...], str]]:
    """Every layer kind x padding x dtype x data format, the other arguments drawn (seeded): kernel sizes 1-5,
    strides, dilations, groups, depth multipliers up to 16, bias or not, every activation; 3-5 images."""
    rng = np.random.default_rng(2012)
    found = []
    for name, kind in LAYERS.items():
        for padding, dtype, fmt in itertools.product(kind.paddings, DTYPES, ("channels_last", "channels_first")):
            k, s = int(rng.integers(1, 6)), int(rng.integers(1, 3))
            d = int(rng.integers(1, 3)) if s == 1 else 1
            c = int(rng.integers(1, 7))
            config = {"kernel_size": k, "strides": s, "dilation_rate": d, "padding": padding, "data_format": fmt,
                      "use_bias": bool(rng.integers(0, 2)),
                      "activation": (None, "relu", "relu6", "sigmoid", "tanh")[int(rng.integers(0, 5))]}
            if "groups" in kind.config_keys:
                groups = int(rng.choice([g for g in range(1, c + 1) if c % g == 0]))
                config.update(filters=groups * int(rng.integers(1, 4)), groups=groups)
            elif "filters" in kind.config_keys:
                config["filters"] = int(rng.integers(1, 7))
            if "depth_multiplier" in kind.config_keys:
                config["depth_multiplier"] = int(rng.choice([1, 2, 3, 8, 16]))
            spatial = tuple(int(rng.integers((k - 1) * d + 1, (k - 1) * d + 11)) for _ in range(kind.rank))
            n = int(rng.integers(3, 6))
            shape = (n, c, *spatial) if fmt == "channels_first" else (n, *spatial, c)
            found.append((name, config, shape, dtype))
    return found


CONFIGURATIONS = _configurations()


def _inputs(index: int, layer: str, config: dict, shape: tuple[int, ...], dtype: str):
    g = geometry(layer, config, shape)
    assert not impossible(g, shape), (layer, config, shape)
    rng = np.random.default_rng(index)
    x = round_to(rng.standard_normal(shape), dtype).astype(np.float64)
    w = {k: round_to(rng.standard_normal(s), dtype).astype(np.float64) for k, s in g.weight_shapes().items()}
    return g, x, w


def _sizes(monkeypatch, chunk: int, patch_block: int) -> None:
    monkeypatch.setattr(oracle, "CHUNK_ELEMENTS", chunk)
    monkeypatch.setattr(conv_ops, "PATCH_BLOCK_ELEMENTS", patch_block)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("index", range(len(CONFIGURATIONS)),
                         ids=[f"{c[0]}-{c[1]['padding']}-{c[3]}-{c[1]['data_format'][9:]}" for c in CONFIGURATIONS])
def test_chunked_oracle_and_gauge_are_the_whole_computation_bit_for_bit(index, monkeypatch):
    layer, config, shape, dtype = CONFIGURATIONS[index]
    g, x, w = _inputs(index, layer, config, shape, dtype)
    _sizes(monkeypatch, WHOLE, WHOLE)
    y_whole, g_whole = oracle.run(layer, config, x, w), oracle.gauge(layer, config, x, w)
    per_image = math.prod(y_whole.shape[1:])
    # One image per chunk and one channel per patch block; two images per chunk (the last chunk shorter).
    for chunk, patch_block in ((1, 1), (2 * per_image, 7)):
        _sizes(monkeypatch, chunk, patch_block)
        what = f"{layer} {config} {shape} {dtype}, chunks of {max(1, chunk // per_image)} image(s)"
        assert _same(oracle.run(layer, config, x, w), y_whole), f"oracle output changed with chunking: {what}"
        assert _same(oracle.gauge(layer, config, x, w), g_whole), f"gauge changed with chunking: {what}"
        lazy = oracle.lazy_gauge(layer, config, x, w)
        assert lazy.shape == g_whole.shape, f"lazy gauge shape={lazy.shape}, but should be {g_whole.shape}"
        assert _same(np.asarray(lazy), g_whole), f"lazy gauge (whole) differs: {what}"
        for i in range(shape[0]):
            assert _same(lazy[i], g_whole[i]), f"lazy gauge image {i} differs: {what}"


@pytest.mark.parametrize("index", [i for i, c in enumerate(CONFIGURATIONS) if not c[0].startswith("Conv")])
def test_depthwise_primitive_is_the_previous_formulation_to_float64_rounding(index):
    """The depthwise primitive (conv_ops.depthwise_pair's value: patches laid out taps x positions, one BLAS product
    per image and channel) sums each output's taps in BLAS's order over another layout than the formulation before
    the chunked oracle: the two differ by at most the float64 rounding of two sums of K terms, 2 K u G (G: the
    same on magnitudes), and its magnitudes pass is that formulation on |x|, |kernel| to the same rounding."""
    layer, config, shape, dtype = CONFIGURATIONS[index]
    g, x, w = _inputs(index, layer, config, shape, dtype)
    x_cl = oracle.to_channels_last(x, g.channels_first)
    kernel = w["kernel" if "kernel" in w else "depthwise_kernel"]
    taps = math.prod(g.kernel_size)
    want, want_abs = _depthwise_before(x_cl, kernel, g), _depthwise_before(np.abs(x_cl), np.abs(kernel), g)
    y, y_abs = conv_ops.depthwise_pair(x_cl, kernel, g, magnitudes=True)
    allowed = 2 * taps * 2.0**-53 * want_abs
    assert y_abs is not None and _same(conv_ops.depthwise(x_cl, kernel, g), y), (layer, config, shape)
    for name, got, ref in (("output", y, want), ("magnitudes", y_abs, want_abs)):
        off = np.max(np.abs(got - ref), initial=0.0)
        assert np.all(np.abs(got - ref) <= allowed), f"{layer} {config} {shape}: {name} off by {off}"


def _depthwise_before(x: np.ndarray, kernel: np.ndarray, g) -> np.ndarray:
    """harness.layers.conv_ops.depthwise as it was before the chunked oracle (commit d38795d), verbatim."""
    xp = _padded(x, g)
    out = tuple((n - ((k - 1) * d + 1)) // s + 1
                for n, k, s, d in zip(xp.shape[1:-1], g.kernel_size, g.strides, g.dilation))
    c, m = kernel.shape[-2:]
    views = [view for _, view in _taps(xp, g, out)]
    k = np.ascontiguousarray(kernel.reshape(-1, c, m).transpose(1, 0, 2))
    y = np.empty((x.shape[0], *out, c, m))
    for n in range(x.shape[0]):
        patches = np.stack([v[n] for v in views], axis=-1).reshape(-1, c, len(views))
        per_channel = np.matmul(np.ascontiguousarray(patches.transpose(1, 0, 2)), k)
        y[n] = per_channel.transpose(1, 0, 2).reshape(*out, c, m)
    return y.reshape(*y.shape[:-2], c * m)


@pytest.mark.parametrize("layer,config,shape", [
    # 4096 x 9 x 8 multiply-adds per product: over OpenBLAS's one-thread limit
    ("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 8, "padding": "same"}, (2, 64, 64, 4)),
    # the conv primitive's products: positions x taps * C/groups by taps * C/groups x F/groups, 2304 x 72 x 16
    ("Conv2D", {"kernel_size": 3, "filters": 32, "groups": 2, "padding": "same"}, (2, 48, 48, 16)),
    # the pointwise step's one product (positions x C*M by C*M x F), which runs on BLAS's threads where it is big
    ("SeparableConv2D", {"kernel_size": 3, "filters": 64, "padding": "same"}, (2, 64, 64, 32)),
], ids=["depthwise", "conv", "separable"])
def test_blas_thread_count_does_not_change_the_oracle(monkeypatch, layer, config, shape):
    """The oracle runs its small BLAS products on one thread (faster); a product big enough for OpenBLAS to split
    over threads gives the same values on two."""
    setter = conv_ops._blas_thread_setter()
    if setter is None or (os.cpu_count() or 1) < 2:
        pytest.skip("NumPy's BLAS is not its bundled OpenBLAS, or one core: nothing to compare")
    g, x, w = _inputs(0, layer, config, shape, "float32")
    one = oracle.run(layer, config, x, w)
    monkeypatch.setattr(conv_ops, "one_blas_thread", contextlib.nullcontext)
    previous = setter(2)
    try:
        two = oracle.run(layer, config, x, w)
    finally:
        setter(previous)
    assert _same(one, two), f"the oracle's output of {layer} depends on the BLAS thread count"


# ---------------------------------------------------------------- the conv primitive: one product per group and image

def _conv_before(x: np.ndarray, kernel: np.ndarray, g) -> np.ndarray:
    """harness.layers.conv_ops.conv as it was before its patch-matrix products (commit 767b247), verbatim: one einsum
    per kernel tap over the whole batch."""
    xp = _padded(x, g)
    out = tuple((n - ((k - 1) * d + 1)) // s + 1
                for n, k, s, d in zip(xp.shape[1:-1], g.kernel_size, g.strides, g.dilation))
    groups, cg, f = g.groups, kernel.shape[-2], kernel.shape[-1]
    y = np.zeros((x.shape[0], *out, groups, f // groups))
    for tap, view in _taps(xp, g, out):
        w = kernel[tap].reshape(cg, groups, f // groups)
        y += np.einsum("...gc,cgf->...gf", view.reshape(*view.shape[:-1], groups, cg), w)
    return y.reshape(*y.shape[:-2], f)


def _conv_configurations() -> list[tuple[str, dict, tuple[int, ...]]]:
    """Conv1D and Conv2D: every padding and data format, groups 1-4 (C/groups up to 9), strides 1-3, dilations
    1-2, square and unequal kernels 1-5, 1-4 images (seeded)."""
    rng = np.random.default_rng(767)
    found = []
    for layer in ("Conv1D", "Conv2D"):
        kind = LAYERS[layer]
        for padding, fmt, _ in itertools.product(kind.paddings, ("channels_last", "channels_first"), range(6)):
            s = int(rng.integers(1, 4))
            d = int(rng.integers(1, 3)) if s == 1 else 1
            ks = [int(rng.integers(1, 6)) for _ in range(kind.rank)]
            groups = int(rng.choice([1, 1, 2, 3, 4]))
            c, f = groups * int(rng.integers(1, 10)), groups * int(rng.integers(1, 6))
            spatial = [int(rng.integers((k - 1) * d + 1, (k - 1) * d + 14)) for k in ks]
            n = int(rng.integers(1, 5))
            config = {"filters": f, "kernel_size": ks, "strides": s, "dilation_rate": d, "padding": padding,
                      "data_format": fmt, "groups": groups}
            found.append((layer, config, (n, c, *spatial) if fmt == "channels_first" else (n, *spatial, c)))
    return found


CONV_CONFIGURATIONS = _conv_configurations()


@pytest.mark.parametrize("index", range(len(CONV_CONFIGURATIONS)))
def test_conv_primitive_is_the_per_tap_sum_to_float64_rounding(index, monkeypatch):
    """The conv primitive sums in another order than the per-tap einsum it replaced (a deliberate re-baseline of
    the reference): each output differs from the old one by no more than the float64 rounding of two sums of K
    products, 2 K u G (G: the same sum on |x| and |w|), whatever the group block; and the old value is exact
    wherever every product and partial sum is (inputs on a coarse grid)."""
    layer, config, shape = CONV_CONFIGURATIONS[index]
    g = geometry(layer, config, shape)
    assert not impossible(g, shape), (layer, config, shape)
    rng = np.random.default_rng(index)
    x = oracle.to_channels_last(rng.standard_normal(shape), g.channels_first)
    kernel = rng.standard_normal(g.weight_shapes()["kernel"])
    before, gauge = _conv_before(x, kernel, g), _conv_before(np.abs(x), np.abs(kernel), g)
    bound = 2 * g.reduction_length() * 2.0**-53 * gauge
    for block in (WHOLE, 1):
        monkeypatch.setattr(conv_ops, "PATCH_BLOCK_ELEMENTS", block)
        now = conv_ops.conv(x, kernel, g)
        assert now.shape == before.shape, (layer, config, shape)
        assert np.all(np.abs(now - before) <= bound), \
            f"{layer} {config} {shape}: max |new - old| / G = {np.max(np.abs(now - before) / gauge):.3g}"
    coarse_x, coarse_k = np.round(x * 4) / 4, np.round(kernel * 4) / 4   # every sum exact in float64
    assert _same(conv_ops.conv(coarse_x, coarse_k, g), _conv_before(coarse_x, coarse_k, g)), (layer, config, shape)


def test_conv_working_memory_does_not_grow_with_the_batch(monkeypatch):
    """Beyond its output, the conv primitive holds one padded image and one block of groups' patch matrix: the
    same for 2 images as for 8 (traced peak less the output)."""
    monkeypatch.setattr(conv_ops, "PATCH_BLOCK_ELEMENTS", 1 << 14)
    layer, config = "Conv2D", {"kernel_size": 3, "filters": 16, "groups": 4, "padding": "same"}
    working = {}
    for n in (2, 8):
        g, x, w = _inputs(3, layer, config, (n, 32, 32, 16), "float32")
        tracemalloc.start()
        try:
            y = conv_ops.conv(x, w["kernel"], g)
            working[n] = tracemalloc.get_traced_memory()[1] - y.nbytes
        finally:
            tracemalloc.stop()
    one_group = 32 * 32 * 9 * 4 * 8   # one group's patch matrix of one image: 295 KB
    assert working[8] < 1.25 * working[2], f"working memory {working} bytes (images: bytes) grows with the batch"
    assert working[8] < 3 * one_group, f"working memory {working[8] / 1e6:.2f} MB for a {one_group / 1e6:.2f} MB block"


# ---------------------------------------------------------------- LazyArray and the runner's reference

def test_lazy_gauge_indexes_like_the_array(monkeypatch):
    layer, config, shape = "SeparableConv1D", {"kernel_size": 3, "filters": 5, "depth_multiplier": 2,
                                               "padding": "same", "data_format": "channels_first"}, (7, 3, 11)
    g, x, w = _inputs(1, layer, config, shape, "float32")
    whole = oracle.gauge(layer, config, x, w)
    monkeypatch.setattr(oracle, "CHUNK_ELEMENTS", 2 * math.prod(whole.shape[1:]))   # chunks of 2 images
    lazy = oracle.lazy_gauge(layer, config, x, w)
    assert (lazy.shape, lazy.ndim, lazy.size, len(lazy)) == (whole.shape, whole.ndim, whole.size, len(whole))
    for index in [3, -1, (0, 2), (6, 4, 10), slice(None), slice(1, 6), slice(5, 0, -2), slice(None, None, 3),
                  (slice(2, 5), 1), (slice(6, None, -1), slice(1, 3), 4), slice(9, 20), slice(4, 4),
                  (Ellipsis, 0), np.array([0, 6]), (1, Ellipsis)]:
        got = lazy[index]
        assert _same(np.asarray(got), np.asarray(whole[index])), f"lazy[{index!r}] differs from the array's"
    with pytest.raises(IndexError):
        lazy[7]
    assert not np.asarray(lazy[2]).flags.writeable, "the kept chunk must be read-only (views of it are handed out)"


@pytest.mark.parametrize("chunked", [False, True], ids=["one-chunk", "chunk-per-image"])
def test_reference_output_and_gauge_are_exact(monkeypatch, chunked):
    """The runner's reference holds the oracle output and the gauge whole where the output is one chunk (one pass
    computed both), and both lazily beyond (neither held whole): equal to oracle.run and oracle.gauge bit for bit."""
    cases = load_file(os.path.join(os.path.dirname(__file__), "..", "..", "cases", "separable.yaml"))[0]
    case = next(c for c in cases if not c.impossible)
    if chunked:
        monkeypatch.setattr(oracle, "CHUNK_ELEMENTS", 1)
    runner._cache.clear()
    try:
        ref = runner.reference(case)
        inputs = ref.inputs
        kind = LazyArray if chunked else np.ndarray
        for name, held in (("output", ref.y), ("gauge", ref.gauge)):
            assert isinstance(held, kind), f"reference {name} is {type(held).__name__}, but should be {kind.__name__}"
        assert _same(np.asarray(ref.y), oracle.run(case.layer, case.config, inputs.x64, inputs.weights64))
        assert _same(np.asarray(ref.gauge), oracle.gauge(case.layer, case.config, inputs.x64, inputs.weights64))
    finally:
        runner._cache.clear()


# ---------------------------------------------------------------- the bound and the metrics, block by block

@pytest.mark.parametrize("activation", ["linear", "tanh"])
def test_lazy_bound_is_the_array_bound(activation):
    rng = np.random.default_rng(3)
    gauge, y = np.abs(rng.standard_normal((4, 5, 6))), rng.standard_normal((4, 5, 6))
    want = error_bound(13, "float32", gauge, y, activation).bound
    lazy = error_bound(13, "float32", LazyArray(gauge.shape, lambda i: gauge[i]), y, activation).bound
    assert isinstance(lazy, LazyArray)
    assert _same(np.asarray(lazy), want) and _same(lazy[2, 1:4], want[2, 1:4])


def _engine_output(rng: np.random.Generator, y_oracle: np.ndarray) -> np.ndarray:
    """A float32 engine output: mostly close, some exact, some far off, NaN and inf, ties of the worst ratio."""
    y = (y_oracle * (1 + 1e-7 * rng.standard_normal(y_oracle.shape))).astype(np.float32)
    flat = y.reshape(-1)
    n = flat.size
    flat[rng.integers(0, n, n // 5)] = y_oracle.reshape(-1)[rng.integers(0, n, n // 5)].astype(np.float32)
    flat[rng.integers(0, n, 3)] = np.float32(7.0)
    flat[rng.integers(0, n, 2)] = np.nan
    flat[rng.integers(0, n, 2)] = np.inf
    return y


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("block", [1, 7, 64, WHOLE])
def test_measure_in_blocks_is_measure_on_the_whole(seed, block, monkeypatch):
    rng = np.random.default_rng(seed)
    shape = [(3, 5, 4, 7), (2, 9, 13), (50,), (4, 1, 6)][seed % 4]
    y_oracle = rng.standard_normal(shape)
    y_oracle.reshape(-1)[:: 11] = 0.0     # zero reference: relative error inf or nan
    gauge = np.abs(y_oracle) + np.abs(rng.standard_normal(shape))
    gauge.reshape(-1)[:: 17] = 0.0        # zero bound
    y = _engine_output(rng, y_oracle) if seed != 5 else y_oracle.copy()   # seed 5: an exact engine
    if seed == 4:
        y = y_oracle.astype(np.float32)   # every ratio small, many of them tied
    bound = error_bound(9, "float32", gauge, y_oracle, "tanh")
    want = agreement._measure_whole(y, y_oracle, bound)
    monkeypatch.setattr(agreement, "BLOCK_ELEMENTS", block)
    for b in (bound, Bound(k=bound.k, u=bound.u, bound=LazyArray(shape, lambda i: bound.bound[i]))):
        got = measure(y, y_oracle, b)
        assert _metrics(got) == _metrics(want), f"blocks of {block}: {got} != {want}"


def _metrics(m) -> dict:
    return {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in m.as_dict().items()}


def test_blocks_cover_the_array_in_c_order():
    for shape, limit in [((3, 5, 4, 7), 1), ((3, 5, 4, 7), 30), ((3, 5, 4, 7), 29), ((2, 9), 100), ((0, 4), 3),
                         ((6,), 4)]:
        seen = np.full(shape, -1)
        flat = np.arange(math.prod(shape)).reshape(shape)
        for start, index in blocks(shape, limit):
            piece = flat[index]
            assert piece.size <= max(limit, shape[-1]), (shape, limit, index)
            assert piece.size == 0 or piece.reshape(-1)[0] == start, (shape, limit, index, start)
            assert np.all(seen[index] == -1), f"{index} read twice"
            seen[index] = piece
        assert np.array_equal(seen, flat), f"blocks of {shape} by {limit} miss elements"


# ---------------------------------------------------------------- the working memory

def test_judging_memory_does_not_grow_with_the_output(monkeypatch):
    """The metrics of a lazily gauged output hold a few blocks and one chunk of the gauge: their traced peak (NumPy
    reports its allocations to tracemalloc) is the same for 4 images as for 16, far below a copy of the output."""
    monkeypatch.setattr(oracle, "CHUNK_ELEMENTS", 1)          # one image per chunk: 64K elements
    monkeypatch.setattr(agreement, "BLOCK_ELEMENTS", 1 << 14)
    monkeypatch.setattr(conv_ops, "PATCH_BLOCK_ELEMENTS", 1 << 14)
    peaks = {}
    for n in (4, 16):
        layer, config, shape = "DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 4, "padding": "same"}, \
            (n, 32, 32, 16)
        g, x, w = _inputs(5, layer, config, shape, "float32")
        y_oracle = oracle.run(layer, config, x, w)
        y = y_oracle.astype(np.float32)
        lazy = oracle.lazy_gauge(layer, config, x, w)
        tracemalloc.start()
        try:
            m = measure(y, y_oracle, error_bound(g.reduction_length(), "float32", lazy, y_oracle, g.activation))
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert m.max_ratio <= 1.0
    whole = 16 * 32 * 32 * 64 * 8   # one float64 copy of the 16-image output: 8 MB
    assert peaks[16] < 1.25 * peaks[4], f"measure peaked at {peaks} bytes (images: peak): it grows with the output"
    assert peaks[16] < whole / 4, f"measure peaked at {peaks[16] / 1e6:.2f} MB for a {whole / 1e6:.1f} MB output"


@pytest.mark.parametrize("layer,config,shape", [
    ("Conv2D", {"filters": 6, "kernel_size": 3, "groups": 2, "padding": "same", "strides": 2}, (5, 9, 8, 4)),
    ("Conv1D", {"filters": 3, "kernel_size": 2, "padding": "causal", "dilation_rate": 2}, (7, 11, 2)),
    ("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 3, "padding": "same"}, (5, 8, 9, 3)),
    ("SeparableConv1D", {"filters": 4, "kernel_size": 3, "depth_multiplier": 2}, (6, 12, 3)),
], ids=["conv2d", "conv1d", "depthwise2d", "separable1d"])
def test_the_oracle_threads_do_not_change_a_value(monkeypatch, layer, config, shape):
    """Images (conv) or channels (depthwise) split between threads (own buffers, one-thread BLAS) give the values
    of one thread, bit for bit, whatever the split (2, 3 or more threads than parts)."""
    g, x, w = _inputs(0, layer, config, shape, "float32")
    monkeypatch.setenv("HARNESS_ORACLE_THREADS", "1")
    one = oracle.run(layer, config, x, w)
    monkeypatch.setattr(conv_ops, "THREADED_ELEMENTS", 0)   # thread even these small outputs
    for threads in ("2", "3", "16"):
        monkeypatch.setenv("HARNESS_ORACLE_THREADS", threads)
        assert _same(one, oracle.run(layer, config, x, w)), f"threads={threads} changed the oracle's output"


def test_the_pointwise_product_does_not_depend_on_blas_threads():
    """The separable pointwise step runs a big product on BLAS's own threads: the same values on one and on two."""
    setter = conv_ops._blas_thread_setter()
    if setter is None or (os.cpu_count() or 1) < 2:
        pytest.skip("NumPy's BLAS is not its bundled OpenBLAS, or one core: nothing to compare")
    rng = np.random.default_rng(0)
    z, kernel = rng.standard_normal((4, 64, 64, 96)), rng.standard_normal((1, 1, 96, 80))
    previous = setter(1)
    try:
        one = conv_ops.pointwise(z, kernel)
        setter(2)
        two = conv_ops.pointwise(z, kernel)
    finally:
        setter(previous)
    assert _same(one, two), "the pointwise product depends on the BLAS thread count"
