"""Agreement with the oracle: the per-element floating-point error bound and the metrics reported.

Both work on big outputs in blocks (BLOCK_ELEMENTS): the bound of a case whose gauge is computed on demand
(harness.reference.oracle.lazy_gauge) is itself computed block by block, and the metrics read every array block by
block, so that their working memory does not grow with the output. Every element is computed by the same operations as
on the whole array, and the reductions (max, first argmax, counts) are exact: the results do not depend on the blocks.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..layers.activations import ACTIVATION_TABLE
from ..tensors.values import unit_roundoff

# The one safety constant of the bound. 1 is the rigorous worst case of Higham's analysis; it has not
# needed raising (measured worst use of the budget: see README, "Tolerance model").
SAFETY = 1.0
ORACLE_DTYPE = "float64"


# Elements of one block of the metrics and of a lazily computed bound: every temporary of `measure` is a block
# (8 MB in float64), whatever the size of the output (a worked example has 82M elements, 656 MB per array).
BLOCK_ELEMENTS = 1 << 20

Index = tuple[Any, ...]


class LazyArray:
    """A read-only float64 array computed on demand: indexing computes only the elements asked for, each exactly
    as the whole array would hold it; ``np.asarray`` makes it whole (use that only where the array is small).

    ``values(index)`` answers a tuple of indexes (as ``ndarray.__getitem__`` takes them, ``()`` for the whole).
    """

    def __init__(self, shape: tuple[int, ...], values: Callable[[Index], np.ndarray], dtype: Any = np.float64):
        self.shape, self.dtype, self._values = tuple(int(d) for d in shape), np.dtype(dtype), values

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __getitem__(self, index: Any) -> Any:
        return self._values(index if isinstance(index, tuple) else (index,))

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        whole = np.asarray(self._values(()))
        if dtype is not None and np.dtype(dtype) != whole.dtype:
            return whole.astype(dtype)
        return whole.copy() if copy else whole

    def __repr__(self) -> str:
        return f"LazyArray(shape={self.shape}, dtype={self.dtype})"


def is_lazy(a: Any) -> bool:
    return isinstance(a, LazyArray)


def blocks(shape: tuple[int, ...], limit: int | None = None) -> Iterator[tuple[int, Index]]:
    """Cut an array of ``shape`` into consecutive pieces of its C order, each at most ``limit`` (BLOCK_ELEMENTS)
    elements, or one index of the last axis where even that is more: (flat index of its first element, index)."""
    limit = BLOCK_ELEMENTS if limit is None else limit
    if not shape or 0 in shape:
        yield 0, ()
        return
    inner = [math.prod(shape[a + 1:]) for a in range(len(shape))]   # elements under one index of axis a
    cut = next(a for a in range(len(shape)) if inner[a] <= limit)
    step = max(1, limit // inner[cut])
    for lead in np.ndindex(*shape[:cut]):
        base = sum(i * inner[a] for a, i in enumerate(lead))
        for start in range(0, shape[cut], step):
            yield base + start * inner[cut], (*lead, slice(start, min(shape[cut], start + step)))


def lazy_sum(a: np.ndarray | LazyArray, b: np.ndarray | LazyArray) -> np.ndarray | LazyArray:
    """a + b, element by element (lazily where either is lazy; ``b`` may broadcast to ``a``'s shape)."""
    if not (isinstance(a, LazyArray) or isinstance(b, LazyArray)):
        return a + b
    shape = np.broadcast_shapes(a.shape, b.shape)
    a_ = a if is_lazy(a) or a.shape == shape else np.broadcast_to(a, shape)
    b_ = b if is_lazy(b) or b.shape == shape else np.broadcast_to(b, shape)
    return LazyArray(shape, lambda index: np.asarray(a_[index]) + np.asarray(b_[index]))


def underflow_eta(dtype: str) -> float:
    """Higham's eta for ``dtype``: with gradual underflow a rounded product (or any rounding to the dtype) is
    fl(x) = x (1 + d) + e, |d| <= u, |e| <= eta = half the subnormal spacing (the smallest normal times u): float16
    2^-25, bfloat16 2^-134 (float32's exponent range, 8 significand bits: subnormals 2^-133 apart), float32 2^-150,
    float64 2^-1075, which is below float64's own range and is carried rounded up, as 2^-1074. A relative u cannot
    bound a rounding to the subnormal grid (2.8014183e-06 for 2.77273203e-06 in float16: 1% off, half a subnormal
    spacing). A sum rounds with e = 0 (two floats' sum in the subnormal range is itself a float): only products,
    and the storing of a result in a narrower dtype, add an eta (Higham, Accuracy and Stability, 2.1-2.2).
    Computations in a wider dtype (float16 in float32) have a smaller eta: the case dtype's bounds them all."""
    return {"float16": 2.0**-25, "bfloat16": 2.0**-134, "float32": 2.0**-150,
            "float64": float(np.finfo(np.float64).smallest_subnormal)}[dtype]


def flush_eta(dtype: str) -> float:
    """What an activation's own evaluation may be off by where its result underflows: the dtype's smallest normal.
    TensorFlow's CPU kernels run with flush-to-zero (tf.constant(1e-38) * 0.5 gives 0; its oneDNN softmax returns 0
    below 2^-125), and torch's silu gives -0 where exp(-x) overflows: a subnormal result may come out as 0, off by
    less than the smallest normal, not by half a subnormal spacing (underflow_eta)."""
    return {"float16": 2.0**-14, "bfloat16": 2.0**-126, "float32": 2.0**-126,
            "float64": float(np.finfo(np.float64).tiny)}[dtype]


def flush_threshold(dtype: str) -> float:
    """The smallest normal of the format a correct engine computes ``dtype``'s products and sums in: float32's for
    float16, bfloat16 and float32 (x86 computes them in float32 arithmetic), float64's for float64. TensorFlow's CPU
    kernels run with the MXCSR's flush-to-zero and denormals-are-zero bits set, on both kernel paths (measured: a
    float32 Conv2D of x = 1e-20 by w = 1e-20 gives 0 for 1.8e-39, of x = 1e-39 by w = 1 gives 0 for 1.8e-38), and
    torch's bfloat16 conv does the same: a product, or a partial sum, below it may come out as 0."""
    return float(np.finfo(np.float64).tiny) if dtype == "float64" else 2.0**-126


def flushable(v: np.ndarray, dtype: str) -> np.ndarray:
    """Where an operand of ``dtype``'s arithmetic may be read as zero (a nonzero value below flush_threshold): the
    one test both bounds that cover flushing (oracle.flushed_operands, models.ref_base) make."""
    v = np.asarray(v, dtype=np.float64)
    return (v != 0) & (np.abs(v) < flush_threshold(dtype))


def rounding_eta(dtype: str) -> float:
    """The absolute error one product of a sum may carry under either underflow model a correct engine may follow:
    gradual underflow (underflow_eta), or flush-to-zero, where the product and the partial sum it goes into may each
    be flushed, off by less than flush_threshold(dtype). For float16 the flush term is negligible (no product or
    sum of float16 values lies below float32's smallest normal but 0); for float32 it makes each eta 2^-125."""
    return underflow_eta(dtype) + 2.0 * flush_threshold(dtype)


def format_ratio(ratio: float) -> str:
    """error/bound for a message or a table: 3 significant digits, more where those would round a ratio over 1
    down to one that reads as passing (1.0000000136 -> '1.00000001', never '1')."""
    text = f"{ratio:.3g}"
    digits = 3
    while ratio > 1.0 and float(text) <= 1.0 and digits < 17:
        digits += 1
        text = f"{ratio:.{digits}g}"
    return text


def gamma(k: int, u: float) -> float:
    """Higham's gamma_K = K u / (1 - K u); infinite where K u >= 1 (no bound exists)."""
    ku = k * u
    return ku / (1.0 - ku) if ku < 1.0 else float("inf")


@dataclass
class Bound:
    """The per-element tolerance of one engine dtype for one case."""

    k: int                    # reduction length of the longest path (products, sums, bias)
    u: float                  # unit roundoff of the engine's dtype
    # Per-element allowed |y_engine - y_oracle|: an array, or a LazyArray (computed per block on demand) where the
    # gauge it comes from is one. Index it (bound[index]) rather than making it whole.
    bound: np.ndarray | LazyArray

    @property
    def vacuous(self) -> bool:
        return not usable(self.k, self.u)


def usable(k: int, u: float) -> bool:
    """Whether gamma_K(u) < 1 (K u < 1/2). From gamma_K >= 1 on the bound exceeds G >= |y|, so it would
    accept an all-zero output: such a check could not fail, and is a skip instead."""
    return gamma(k, u) < 1.0


def error_bound(k: int, dtype: str, gauge: np.ndarray | LazyArray, y_oracle: np.ndarray | LazyArray,
                activation: str, underflow: float | np.ndarray | None = None,
                flushed: np.ndarray | None = None) -> Bound:
    """c * ((gamma_K(u_e) + gamma_K(u_64)) * G + a (u_e + u_64) |y| + (L (1 + gamma_K(u_e)) H + r) (eta_e + eta_64)).

    The oracle itself rounds in float64, so its own gamma_K(u_64) is added: negligible for float32, but
    the same size as the engine's for a float64 case. The activation is 1-Lipschitz and costs `a` ulps.

    The last term is underflow (underflow_eta): each rounding that may add an absolute eta, H of them per element
    (``underflow``: harness.reference.oracle.underflow_count, which the runner's Reference holds; default
    K + 1: one eta for each of the K products of a one-stage sum, none for its additions, and one for storing the
    result in the dtype, rigorous for a conv or depthwise layer). Each eta then goes through the rest of the
    sum's roundings, a factor (1 + d_1)...(1 + d_K) <= 1 + gamma_K(u), and through the activation (slope L); an
    activation whose evaluation rounds (a > 0 or an absolute error) adds its own output's underflow, r = 1, else 0
    (linear, relu and relu6 are exact), as the dtype's smallest normal (flush_eta: a flushed subnormal result).
    Where no value comes near the subnormal range the term is negligible (float32: 2^-150 per rounding, 2^-126
    for the activation's result).
    Each eta is rounding_eta: a correct engine may also flush an underflowing product or partial sum to zero.
    ``flushed`` (harness.reference.oracle.flushed_operands, None where no operand is subnormal): what treating the
    subnormal inputs and weights as zero changes, added through the sum's roundings and the activation's slope.
    An array for arrays; a LazyArray, computed per block on demand, where the gauge (or y_oracle) is lazy.
    """
    u, u64 = unit_roundoff(dtype), unit_roundoff(ORACLE_DTYPE)
    # The activation's own evaluation error (harness.layers.activations); |y_oracle| stands for |f(y_engine)|: they
    # differ by the bound itself, a second-order term.
    act = ACTIVATION_TABLE[activation]
    ulps, slope, absolute = act.ulps, act.slope, act.absolute_ulps
    count = np.asarray(float(k + 1) if underflow is None else underflow, dtype=np.float64)
    eta = rounding_eta(dtype) + underflow_eta(ORACLE_DTYPE)
    # An activation whose evaluation rounds may also flush an underflowing result to zero (flush_eta).
    rounds = 1.0 if ulps or absolute else 0.0
    flushed_result = flush_eta(dtype) + underflow_eta(ORACLE_DTYPE)
    absolute_eta = slope * (1.0 + gamma(k, u)) * count * eta + rounds * flushed_result

    def values(g: np.ndarray, y: np.ndarray | None, index: Index = ()) -> np.ndarray:
        # The pre-activation's error reaches the output scaled by at most sup |f'| (harness.layers.activations: slope).
        per_element = slope * (gamma(k, u) + gamma(k, u64)) * g
        if ulps:
            assert y is not None   # values() is given y_oracle wherever the activation has ulps
            per_element = per_element + ulps * (u + u64) * np.abs(y)
        if absolute:   # the evaluation's absolute part, absolute_ulps u max(1, |pre|), with G >= |pre|
            per_element = per_element + absolute * (u + u64) * np.maximum(1.0, g)
        under = absolute_eta if absolute_eta.ndim == 0 else np.broadcast_to(absolute_eta, gauge.shape)[index]
        if flushed is not None:
            under = under + slope * (1.0 + gamma(k, u)) * flushed[index]
        return SAFETY * (per_element + under)

    if not (is_lazy(gauge) or is_lazy(y_oracle)) or (ulps and gauge.shape != y_oracle.shape):
        return Bound(k=k, u=u, bound=values(np.asarray(gauge), np.asarray(y_oracle)))
    # Element-wise, so each block holds exactly the values of the whole bound.
    return Bound(k=k, u=u, bound=LazyArray(
        gauge.shape, lambda index: values(np.asarray(gauge[index]), np.asarray(y_oracle[index]) if ulps else None,
                                          index)))


@dataclass
class Metrics:
    """What a user reads to judge a disagreement (all computed on the full output, never downsampled)."""

    max_abs: float
    max_rel: float
    max_ratio: float                  # max error/bound: the share of the error budget used (<= 1 passes)
    n_over: int                       # elements over the bound
    share_over: float
    worst_index: tuple[int, ...]
    worst_value: float                # the engine's value at the worst element
    worst_oracle: float
    worst_bound: float
    k: int
    u: float

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _ratios_from_error(err: np.ndarray, bound: np.ndarray) -> np.ndarray:
    # A bound of a few etas (the underflow term where the gauge is 0) overflows a real error's ratio: inf, as over 0.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = err / bound
    r[err == 0] = 0.0
    r[np.isnan(r)] = np.inf  # NaN in the engine's output is never within bound
    return r


def ratios(y: np.ndarray, y_oracle: np.ndarray, bound: np.ndarray | LazyArray) -> np.ndarray:
    """|y - y_o| / bound per element (a lazy bound made whole); 0/0 counts as 0, error over a zero bound as inf."""
    return _ratios_from_error(np.abs(np.asarray(y, dtype=np.float64) - y_oracle), np.asarray(bound))


def measure(y: np.ndarray, y_oracle: np.ndarray, b: Bound) -> Metrics:
    """The metrics of ``y`` against ``y_oracle`` within ``b``, on the full output, read block by block (the
    engine's output, the oracle's and the bound, which is computed per block where it is lazy)."""
    y = y if isinstance(y, (np.ndarray, LazyArray)) else np.asarray(y)
    y_oracle = y_oracle if isinstance(y_oracle, (np.ndarray, LazyArray)) else np.asarray(y_oracle)
    shape = tuple(y_oracle.shape)
    if not shape or tuple(y.shape) != shape or tuple(np.shape(b.bound)) != shape:
        return _measure_whole(y, y_oracle, b)   # broadcasting operands or a 0-d output: small by nature
    size = math.prod(shape)
    max_abs = max_ratio = 0.0
    max_rel: float | None = None
    n_over, worst_flat = 0, 0
    worst_at: tuple[float, float, float] | None = None   # engine, oracle and bound at the worst element
    for start, index in blocks(shape):
        y64 = np.asarray(y[index], dtype=np.float64)
        y_o = y_oracle[index]
        err = np.abs(y64 - y_o)
        err[np.isnan(err)] = np.inf
        if err.size == 0:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = err / np.abs(y_o)   # x/0 -> inf, 0/0 -> nan (exact zero: no relative error)
        if not np.all(np.isnan(rel)):
            block_rel = float(np.nanmax(rel))
            max_rel = block_rel if max_rel is None else max(max_rel, block_rel)
        max_abs = max(max_abs, float(err.max()))
        # Where every error is 0 every ratio is 0 whatever the bound (0/0 counts as 0): the oracle's own item
        # and an exact engine never compute the bound of such a block.
        if not err.any():
            continue
        bound = np.asarray(b.bound[index])
        r = _ratios_from_error(err, bound)
        at = int(np.argmax(r))
        if r.flat[at] > max_ratio:   # strictly: the first element of the largest ratio, as argmax says
            max_ratio, worst_flat = float(r.flat[at]), start + at
            worst_at = (float(y64.flat[at]), float(y_o.flat[at]), float(bound.flat[at]))
        n_over += int(np.count_nonzero(r > 1.0))
    worst = tuple(int(i) for i in np.unravel_index(worst_flat, shape)) if size else ()
    if size and worst_at is None:   # every ratio 0: the first element, as argmax says
        worst_at = (float(np.asarray(y[worst], dtype=np.float64)), float(y_oracle[worst]), float(b.bound[worst]))
    return Metrics(
        max_abs=max_abs,
        max_rel=max_rel if max_rel is not None else 0.0,
        max_ratio=max_ratio,
        n_over=n_over,
        share_over=n_over / max(size, 1),
        worst_index=worst,
        worst_value=worst_at[0] if worst_at else 0.0,
        worst_oracle=worst_at[1] if worst_at else 0.0,
        worst_bound=worst_at[2] if worst_at else 0.0,
        k=b.k,
        u=b.u,
    )


def _measure_whole(y: np.ndarray, y_oracle: np.ndarray, b: Bound) -> Metrics:
    """measure on whole arrays (operands that broadcast)."""
    y64 = np.asarray(y, dtype=np.float64)
    y_oracle = np.asarray(y_oracle)
    bound = np.asarray(b.bound)
    err = np.abs(y64 - y_oracle)
    err[np.isnan(err)] = np.inf
    r = _ratios_from_error(err, bound)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = err / np.abs(y_oracle)   # x/0 -> inf, 0/0 -> nan (exact zero: no relative error)
    max_rel = float(np.nanmax(rel)) if rel.size and not np.all(np.isnan(rel)) else 0.0
    worst = np.unravel_index(int(np.argmax(r)), r.shape) if r.size else ()
    n_over = int(np.count_nonzero(r > 1.0))
    return Metrics(
        max_abs=float(err.max()) if err.size else 0.0,
        max_rel=max_rel,
        max_ratio=float(r.max()) if r.size else 0.0,
        n_over=n_over,
        share_over=n_over / max(r.size, 1),
        worst_index=tuple(int(i) for i in worst),
        worst_value=float(y64[worst]) if r.size else 0.0,
        worst_oracle=float(y_oracle[worst]) if r.size else 0.0,
        worst_bound=float(bound[worst]) if r.size else 0.0,
        k=b.k,
        u=b.u,
    )
