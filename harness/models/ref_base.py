"""The float64 reference of one Keras node (LayerRef) and its bound: what every kind's builder returns.

Each node maps its inputs xs (float64, Keras layout) to a pre-activation p, then its activation f. For a correct
engine computing it in a dtype of unit roundoff u on the same inputs, Higham's analysis gives |p_e - p| <= gamma_K(u)
G + (1 + gamma_K(u)) H eta, G being p computed on the magnitudes of every operand (subtractions become additions);
``bound`` adds the oracle's own float64 rounding and carries the error through f as harness.judge.stack_reference
does for a layer of a stack (on the same inputs). Each kind's K, G and H are derived where it is defined below.
The activation is a name of harness.layers.activations.ACTIVATION_TABLE, or "softmax" (over the last axis: the
Softmax layer, Activation("softmax"), a Dense or conv classifier's activation), whose bound is derived here.
Constants a kind takes from its config (Rescaling's 1/255, BN's epsilon) are rounded to the dtype by the engine:
their rounding is one more of the K. A keras op's 0-d constant operand in xs that the dtype cannot hold exactly
counts one more rounding in ``bound`` (``x * (1/6)``: Keras multiplies by float32(1/6), a port may divide by 6).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..judge.stack_reference import through
from ..layers.activations import ACTIVATION_TABLE
from ..reference.agreement import ORACLE_DTYPE, SAFETY, flush_eta, flushable, gamma, rounding_eta, underflow_eta
from ..tensors.values import round_to, unit_roundoff

Arrays = list[np.ndarray]
Weights = Mapping[str, np.ndarray]
# The pre-activation of xs and the weights; with ``mag`` every operand is a magnitude and subtractions add (G).
Op = Callable[[Arrays, Weights, bool], np.ndarray]

# Measured worst errors, in units of u, of the functions below (float32, TF 2.21 both kernel paths, torch 2.13 CPU,
# 3e6 points each): tf.math.rsqrt 3.13 (Eigen's approximation and one Newton step; 1/sqrt 1.5 in both), exp 1.99
# (torch 1.05; the activation table's `exponential` allows 4), log 3.75 relative (torch 1.56).
RSQRT_ULPS, EXP_ULPS, LOG_ULPS = 4, 4, 6
# TensorFlow runs its CPU kernels with denormals flushed to zero (tf.constant(1e-38) * 0.5 is 0), so a result below
# the smallest normal of the computing type (float32 for float16 and bfloat16) may come back 0: tf.nn.softmax does so
# below 2^-125 with oneDNN, 2^-126 without (measured). Softmax allows 4 smallest normals for it; the gradual
# underflow eta of harness.reference.agreement does not cover it.
FLUSHED = {"float64": 4.0 * float(np.finfo(np.float64).tiny), "float32": 4.0 * float(np.finfo(np.float32).tiny)}
# keras.config.epsilon(): the floor Normalization puts under sqrt(variance) (not in its config: Keras's default).
KERAS_EPSILON = 1e-7
# get_config() keys that do not change what a conv layer computes in inference (as harness.frontends.extract).
INERT_KEYS = frozenset({"name", "trainable", "dtype", "activity_regularizer"})
INERT_SUFFIXES = ("_initializer", "_regularizer", "_constraint")


class NoReference(Exception):
    """This node has no float64 reference here; str() is the reason (one line)."""


def _f64(xs: Sequence[Any]) -> Arrays:
    return [np.asarray(x, dtype=np.float64) for x in xs]


@dataclass(frozen=True, eq=False)
class LayerRef:
    """One node: its float64 pre-activation, activation (ACTIVATION_TABLE's or "softmax"), K, gauge G and count H.

    ``k`` is K where the input's shape does not change it, -1 where it does (GlobalAveragePooling: K grows with the
    pooled area): ``reduction_length(xs)`` answers for given inputs."""

    kind: str
    activation: str
    k: int
    op: Op = field(repr=False)
    weights: Weights = field(default_factory=dict, repr=False)
    etas: Callable[[Arrays], float | np.ndarray] = field(default=lambda xs: 0.0, repr=False)
    k_of: Callable[[Arrays], int] | None = field(default=None, repr=False)

    def pre_activation(self, xs: Sequence[np.ndarray]) -> np.ndarray:
        return self.op(_f64(xs), self.weights, False)

    def forward(self, xs: Sequence[np.ndarray]) -> np.ndarray:
        return _activate(self.activation, self.pre_activation(xs))

    def gauge(self, xs: Sequence[np.ndarray]) -> np.ndarray:
        mags = {n: np.abs(np.asarray(v, dtype=np.float64)) for n, v in self.weights.items()}
        return np.asarray(self.op([np.abs(x) for x in _f64(xs)], mags, True))

    def underflow_count(self, xs: Sequence[np.ndarray]) -> float | np.ndarray:
        return self.etas(_f64(xs))

    def reduction_length(self, xs: Sequence[np.ndarray]) -> int:
        return self.k_of(_f64(xs)) if self.k_of is not None else self.k

    def error(self, xs: Sequence[np.ndarray], dtype: str) -> np.ndarray:
        """E: the bound of |p_e - p| (pre-activation) for an engine in ``dtype``, with the oracle's own rounding:
        SAFETY ((gamma_K(u) + gamma_K(u_64)) G + (1 + gamma_K(u)) H (eta + eta_64)), as harness.judge.stack_reference
        on a stack's first layer. K counts one more rounding per 0-d operand the dtype cannot hold (module doc)."""
        xs = _f64(xs)
        k = self.reduction_length(xs) + sum(1 for x in xs if x.ndim == 0 and float(round_to(x, dtype)) != float(x))
        u, u64 = unit_roundoff(dtype), unit_roundoff(ORACLE_DTYPE)
        eta = rounding_eta(dtype) + underflow_eta(ORACLE_DTYPE)
        under = (1.0 + gamma(k, u)) * (np.asarray(self.etas(xs)) * eta + self.flushed(xs, dtype))
        return SAFETY * ((gamma(k, u) + gamma(k, u64)) * self.gauge(xs) + under)

    def flushed(self, xs: Sequence[np.ndarray], dtype: str) -> float | np.ndarray:
        """D: what an engine that reads subnormal operands as zero (TensorFlow: harness.reference.agreement.
        flush_threshold) may change, as for a conv (harness.reference.oracle.flushed_operands): G less G with the
        subnormal parts of the inputs and weights cut, exact for the sums and products these layers are (G is
        monotone in each magnitude); 0 where no operand has such a part (the scan is all it costs)."""
        def cut(v: np.ndarray) -> np.ndarray:
            return np.where(flushable(v, dtype), 0.0, np.abs(np.asarray(v, dtype=np.float64)))

        xs = _f64(xs)
        operands = [*xs, *(np.asarray(v, dtype=np.float64) for v in self.weights.values())]
        if not any(np.any(flushable(v, dtype)) for v in operands):
            return 0.0
        kept = [cut(x) for x in xs]
        weights = {n: cut(v) for n, v in self.weights.items()}
        with np.errstate(divide="ignore", invalid="ignore"):
            d = self.gauge(xs) - np.asarray(self.op(kept, weights, True))
        # A divisor read as zero makes no finite allowance: that element keeps the rest of its bound (a division
        # by a subnormal is a difference the diff then shows, not one it hides behind an infinite bound).
        return np.where(np.isfinite(d), np.maximum(d, 0.0), 0.0)


def bound(ref: LayerRef, xs: Sequence[np.ndarray], dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(y_oracle, per-element bound of |y_engine - y_oracle|): E through the activation (stack_reference.through:
    the image of [p - E, p + E] for a monotone f, else slope * E), plus the activation's own evaluation error (its
    ulps of |y|, its absolute_ulps of max(1, |p|) as harness.reference.agreement.error_bound allows them, and one
    eta where it rounds). For a conv family this is stack_reference.layer_reference's bound on a first layer.
    Softmax: y_i changes by the factor exp(d_i) / sum_j y_j exp(d_j) where p moves by d, |d| <= E, so by at most
    y_i expm1(E_i + max_j E_j) (the row's max), plus its own evaluation error (_softmax_error)."""
    xs = _f64(xs)
    pre = ref.pre_activation(xs)
    e = np.broadcast_to(ref.error(xs, dtype), pre.shape)
    if ref.activation == "softmax":
        y = _softmax(pre)
        return y, y * np.expm1(e + np.max(e, axis=-1, keepdims=True)) + _softmax_error(pre, y, dtype)
    act = ACTIVATION_TABLE[ref.activation]
    u, u64 = unit_roundoff(dtype), unit_roundoff(ORACLE_DTYPE)
    y = act.reference(pre)
    rounds = 1.0 if act.ulps or act.absolute_ulps else 0.0
    own = act.ulps * (u + u64) * np.abs(y) + rounds * (flush_eta(dtype) + underflow_eta(ORACLE_DTYPE))
    if act.absolute_ulps:
        own = own + act.absolute_ulps * (u + u64) * np.maximum(1.0, np.abs(pre) + e)
    return y, np.asarray(through(ref.activation, pre, y, e) + SAFETY * own)


# ---------------------------------------------------------------- the kinds

def _ints(value: Any, rank: int) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value),) * rank


def _channels_last(kind: str, config: Mapping[str, Any]) -> None:
    if config.get("data_format", "channels_last") != "channels_last":
        raise NoReference(f"{kind}: data_format {config.get('data_format')!r} (only channels_last is referenced)")


def _activation(kind: str, name: Any) -> str:
    name = name or "linear"
    if name not in ACTIVATION_TABLE and name != "softmax":
        raise NoReference(f"{kind}: activation {name!r} is not in the activation table")
    return str(name)


def _softmax(p: np.ndarray) -> np.ndarray:
    """softmax over the last axis, in float64 from the max (every e_j <= 1, no overflow)."""
    e = np.exp(p - np.max(p, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def _activate(name: str, pre: np.ndarray) -> np.ndarray:
    return _softmax(pre) if name == "softmax" else ACTIVATION_TABLE[name].reference(pre)


def _softmax_error(p: np.ndarray, y: np.ndarray, dtype: str) -> np.ndarray:
    """Softmax's own evaluation error on p (u the dtype's unit roundoff, m the row's max, n its length, y its value).

    TF and torch compute e_i = exp(fl(p_i - m)), S = sum e_j, y_i = e_i / S (or e_i times a rounded 1/S); Keras's
    multi-axis form and some ports exp(p_i - L), L = m + log S. In units of u, to first order, y_i's relative error
    is at most c_i = |p_i - m| + |m| + (2 + LOG_ULPS) ln n + EXP_ULPS + 2 + D, D = sum_j y_j (|p_j - m| + EXP_ULPS)
    + n - 1: the rounding of p_i - m (an error of |p_i - m| u in the exponent), exp's own error, the division or
    reciprocal and product (2), and S's relative error D (each e_j's error, weighted by its share y_j, and the n - 1
    sums); the logsumexp form instead rounds L (|L| <= |m| + ln n), log S (LOG_ULPS u ln S <= LOG_ULPS u ln n) and
    p_i - L (|p_i - L| <= |p_i - m| + ln n), and carries D through log S. Both are within c_i. Each relative error
    composes as gamma, so |y_e - y| <= (gamma_c(u) + gamma_c(u_64)) y with gamma_c = c u / (1 - c u) (infinite
    from c u >= 1). Underflow: every e_j and y_i may carry an eta, or be flushed to zero (FLUSHED), divided by S >=
    1: n + 2 of each. Evaluated at the exact p rather than the engine's (they differ by E: second order in u)."""
    n = p.shape[-1]
    m = np.max(p, axis=-1, keepdims=True)
    spread = np.abs(p - m)
    d = np.sum(y * (spread + EXP_ULPS), axis=-1, keepdims=True) + n - 1
    c = spread + np.abs(m) + (2 + LOG_ULPS) * math.log(n) + EXP_ULPS + 2 + d

    def gam(u: float) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.where(c * u < 1.0, c * u / (1.0 - c * u), np.inf)

    eta = underflow_eta(dtype) + underflow_eta(ORACLE_DTYPE) + FLUSHED.get(dtype, FLUSHED["float32"])
    return SAFETY * ((gam(unit_roundoff(dtype)) + gam(unit_roundoff(ORACLE_DTYPE))) * y + (n + 2) * eta)


