"""Float64 references and error-bound ingredients (K, gauge G, underflow count H) for the nodes of a Keras conv net.

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
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import EngineRejected
from ..judge.stack_reference import through
from ..layers.activations import ACTIVATION_TABLE
from ..layers.families import LAYERS, ConfigProblem
from ..layers.geometry import geometry
from ..layers.padding import pad_amounts
from ..reference import oracle
from ..reference.agreement import ORACLE_DTYPE, SAFETY, flush_eta, gamma, underflow_eta
from ..tensors.values import round_to, unit_roundoff

__all__ = ["LayerRef", "NoReference", "bound", "reference", "KINDS"]

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
        eta = underflow_eta(dtype) + underflow_eta(ORACLE_DTYPE)
        under = (1.0 + gamma(k, u)) * np.asarray(self.etas(xs)) * eta
        return SAFETY * ((gamma(k, u) + gamma(k, u64)) * self.gauge(xs) + under)


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


def _conv(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """The six conv families, by the harness oracle (K: Geometry.reduction_length, G: oracle.gauge, H:
    oracle.underflow_count), from the get_config() as harness.frontends.extract.config_of reads it."""
    lk = LAYERS[kind]
    cfg: dict[str, Any] = {}
    for key, value in config.items():
        if key in lk.config_keys:
            cfg[key] = list(value) if isinstance(value, tuple) else value
        elif key not in INERT_KEYS and not key.endswith(INERT_SUFFIXES) and value not in (None, 0, False):
            raise NoReference(f"{kind}: {key}={value!r} is not an argument the harness expresses")
    _channels_last(kind, cfg)
    act = _activation(kind, cfg.get("activation"))
    cfg["activation"] = None   # the oracle's pre-activation only: the activation is this module's
    cfg["padding"] = str(cfg.get("padding", "valid")).lower()
    missing = [w for w in lk.family.kernel_names if w not in weights]
    if missing or (cfg.get("use_bias", True) and "bias" not in weights):
        raise NoReference(f"{kind}: weights lack {missing or ['bias']}")
    w = {name: np.asarray(weights[name], dtype=np.float64) for name in lk.weight_names if name in weights}
    try:
        cin = lk.family.in_channels_from(w, cfg)
        k = geometry(kind, cfg, (1, *(1,) * lk.rank, cin)).reduction_length()
    except (ConfigProblem, ValueError, EngineRejected) as e:
        raise NoReference(f"{kind}: {e}") from None

    def op(xs: Arrays, ws: Weights, mag: bool) -> np.ndarray:
        return oracle.pre_activation(xs[0], dict(ws), geometry(kind, cfg, xs[0].shape))

    return LayerRef(kind, act, k, op, w, lambda xs: oracle.underflow_count(
        geometry(kind, cfg, xs[0].shape), xs[0], w, channels_last=True))


def _dense(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """x @ W + b over the last axis: a sum of n products and the bias, K = n + 1 (n without a bias), G = |x| @ |W|
    + |b|; H = n + 1 (each product and the store, as oracle.underflow_count for a conv)."""
    if config.get("lora_rank") or config.get("quantization_config"):
        raise NoReference(f"{kind}: LoRA or quantization is not referenced")
    kernel = np.asarray(weights["kernel"], dtype=np.float64)
    bias = config.get("use_bias", True)

    def op(xs: Arrays, w: Weights, mag: bool) -> np.ndarray:
        y = xs[0] @ w["kernel"]
        return y + w["bias"] if bias else y

    n_in = kernel.shape[0]
    return LayerRef(kind, _activation(kind, config.get("activation")), n_in + int(bool(bias)), op,
                    {k: v for k, v in weights.items() if k in ("kernel", "bias")}, lambda xs: float(n_in + 1))


def _batch_norm(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """Inference: y = gamma (x - mean) / sqrt(var + eps) + beta, a = gamma / sqrt(var + eps).

    TF (tf.nn.batch_normalization) computes x a' + (beta - mean a') with a' = rsqrt(fl(var + fl(eps))) gamma;
    torch x a + (beta - mean a) with a = gamma / sqrt(var + eps); a port may write (x - mean) / sqrt(var + eps)
    gamma + beta. Every order is covered by G = |a| (|x| + |mean|) + |beta| and K = 9: var + eps and the rounding of
    eps (2, halved by the square root: 1) + the reciprocal square root (RSQRT_ULPS = 4) + the product by gamma (1):
    a carries 6; then x a, mean a, beta - mean a and the last sum: mean's path 3 more (9), x's 2, beta's 2; the
    other order: x - mean (1) + 5 for 1/sqrt + the products by it and gamma (2) + beta (1) = 9.
    H = 3 + |x| + |mean|: the etas of x a, mean a and the store, and a's own eta, multiplied by |x| + |mean|."""
    eps = float(config.get("epsilon", 1e-3))
    axis = int(config.get("axis", -1)) if not isinstance(config.get("axis"), (list, tuple)) else None
    if axis is None:
        raise NoReference(f"{kind}: axis {config.get('axis')!r} (one axis only)")
    if (config.get("center", True) and "beta" not in weights) or (config.get("scale", True) and "gamma" not in weights):
        raise NoReference(f"{kind}: weights lack gamma or beta")
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()
         if k in ("gamma", "beta", "moving_mean", "moving_variance")}

    def shaped(v: np.ndarray, ndim: int) -> np.ndarray:
        view = [1] * ndim
        view[axis] = -1
        return v.reshape(view)

    def op(xs: Arrays, ws: Weights, mag: bool) -> np.ndarray:
        x = xs[0]
        a = ws.get("gamma", np.ones(1)) / np.sqrt(w["moving_variance"] + eps)   # var and eps >= 0: unsigned
        m = ws["moving_mean"]
        centred = x + shaped(m, x.ndim) if mag else x - shaped(m, x.ndim)
        return centred * shaped(a, x.ndim) + shaped(ws.get("beta", np.zeros(1)), x.ndim)

    def etas(xs: Arrays) -> np.ndarray:
        return 3.0 + np.abs(xs[0]) + shaped(np.abs(w["moving_mean"]), xs[0].ndim)

    return LayerRef(kind, "linear", 1 + RSQRT_ULPS + 1 + 3, op, w, etas)


def _elementwise(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """The merge layers and keras.ops (broadcasting; a constant as a 0-d operand). Add: n - 1 sums in any order, K =
    n - 1, G = sum |x_i|, H = 1 (sums add no eta, the store one). Subtract: K = 1, G = |a| + |b|. Average: the sum
    and a division by n, or a product by a rounded 1/n: K = n + 1, G = sum |x_i| / n, H = 2. Multiply: K = n - 1,
    G = |prod x_i|; each product's eta is later multiplied by some of the other factors: H = 1 + (n - 2) prod
    max(1, |x_i|). TrueDivide a / b, or a times a rounded 1 / b: K = 2, G = |a / b|, H = 1 + |a| (1/b's eta times
    |a|, and the product's). Maximum, Minimum: exact (K = 0)."""
    if (kind in ("Subtract", "TrueDivide", "Divide") and n != 2) or n < 1:
        raise NoReference(f"{kind}: {n} inputs")

    def op(xs: Arrays, w: Weights, mag: bool) -> np.ndarray:
        if kind == "Add" or (kind == "Subtract" and mag):
            return np.asarray(sum(xs[1:], xs[0]))
        if kind == "Subtract":
            return xs[0] - xs[1]
        if kind == "Average":
            return np.asarray(sum(xs[1:], xs[0])) / n
        if kind == "Multiply":
            return np.asarray(math.prod(xs[1:], start=xs[0]))
        if kind in ("TrueDivide", "Divide"):
            with np.errstate(divide="ignore", invalid="ignore"):
                return xs[0] / xs[1]
        return (np.maximum if kind == "Maximum" else np.minimum).reduce(np.broadcast_arrays(*xs))

    k = {"Add": n - 1, "Subtract": 1, "Average": n + 1, "Multiply": n - 1, "TrueDivide": 2, "Divide": 2}.get(kind, 0)

    def etas(xs: Arrays) -> float | np.ndarray:
        if kind == "Multiply":
            return 1.0 + (n - 2) * math.prod(np.maximum(1.0, np.abs(x)) for x in xs)
        if kind in ("TrueDivide", "Divide"):
            return 1.0 + np.abs(xs[0])
        return {"Add": 1.0, "Subtract": 1.0, "Average": 2.0}.get(kind, 0.0)

    return LayerRef(kind, "linear", k, op, {}, etas)


def _pool(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """Max pooling: exact (K = 0), 'same' padding with -inf (never chosen). Average pooling: the sum of the window's
    valid elements over their count (TF's 'same' counts only those): at most P - 1 sums and a division, or a
    product by a rounded reciprocal, K = P + 1 (P the pool's size), G = the same on |x|, H = 2."""
    _channels_last(kind, config)
    rank = int(kind[-2])
    pool = _ints(config.get("pool_size", 2), rank)
    strides = _ints(config.get("strides") or pool, rank)
    padding = str(config.get("padding", "valid")).lower()
    average = kind.startswith("Average")

    def windows(x: np.ndarray, fill: float) -> np.ndarray:
        pads = [pad_amounts(padding, d, p, s, 1) for d, p, s in zip(x.shape[1:-1], pool, strides)]
        xp = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=fill)
        view = sliding_window_view(xp, pool, axis=tuple(range(1, rank + 1)))
        return view[(slice(None), *(slice(None, None, s) for s in strides))]

    def op(xs: Arrays, w: Weights, mag: bool) -> np.ndarray:
        axes = tuple(range(-rank, 0))
        if not average:
            return windows(xs[0], -np.inf).max(axis=axes)
        counts = windows(np.ones((1, *xs[0].shape[1:-1], 1)), 0.0).sum(axis=axes)
        return windows(xs[0], 0.0).sum(axis=axes) / counts

    return LayerRef(kind, "linear", math.prod(pool) + 1 if average else 0, op, {},
                    lambda xs: 2.0 if average else 0.0)


def _global_pool(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """The mean (sum of N and a division, or a product by a rounded 1/N: K = N + 1, G = mean |x|, H = 2) or the max
    (exact) over the spatial axes; keepdims as configured."""
    rank = int(kind[-2])
    first = config.get("data_format", "channels_last") == "channels_first"
    axes = tuple(range(2, rank + 2)) if first else tuple(range(1, rank + 1))
    keep = bool(config.get("keepdims", False))
    average = "Average" in kind

    def op(xs: Arrays, w: Weights, mag: bool) -> np.ndarray:
        return (np.mean if average else np.max)(xs[0], axis=axes, keepdims=keep)

    return LayerRef(kind, "linear", -1 if average else 0, op, {}, lambda xs: 2.0 if average else 0.0,
                    k_of=lambda xs: math.prod(xs[0].shape[a] for a in axes) + 1 if average else 0)


def _movement(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """Data movement and inference identities: exact, K = 0, H = 0."""
    first = config.get("data_format", "channels_last") == "channels_first"

    def op(xs: Arrays, w: Weights, mag: bool) -> np.ndarray:
        x = xs[0]
        if kind == "Flatten":   # Keras moves channels_first to channels_last first
            x = np.moveaxis(x, 1, -1) if first and x.ndim > 2 else x
            return x.reshape(x.shape[0], -1)
        if kind == "Reshape":
            return x.reshape(x.shape[0], *config["target_shape"])
        if kind == "Concatenate":
            return np.concatenate(xs, axis=int(config.get("axis", -1)))
        if kind.startswith("ZeroPadding"):
            rank = int(kind[-2])
            pads = config["padding"]
            pads = [_ints(p, 2) for p in pads] if rank > 1 else [_ints(pads, 2)]
            spatial = [(0, 0), *pads, (0, 0)] if not first else [(0, 0), (0, 0), *pads]
            return np.pad(x, spatial)
        return x

    return LayerRef(kind, "linear", 0, op)


def _rescaling(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """x scale + offset, both rounded to the dtype by Keras: the product, the sum and scale's rounding, K = 3 (the
    offset's rounding is one of its own 2), G = |x| |scale| + |offset|; H = 2 (the product, the store)."""
    scale = np.asarray(config.get("scale", 1.0), dtype=np.float64)
    offset = np.asarray(config.get("offset", 0.0), dtype=np.float64)

    def op(xs: Arrays, w: Weights, mag: bool) -> np.ndarray:
        s, o = (np.abs(scale), np.abs(offset)) if mag else (scale, offset)
        return xs[0] * s + o

    return LayerRef(kind, "linear", 3, op, {}, lambda xs: 2.0)


def _normalization(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """keras.layers.Normalization: (x - mean) / max(sqrt(var), eps), or with ``invert`` mean + x max(sqrt(var),
    eps), eps = keras.config.epsilon() (KERAS_EPSILON); mean and variance (its weights, or its config) aligned to
    the kept axes from the right. The difference, the square root (var is exact: halved, 1), the division or a
    reciprocal and a product (2): K = 4, which also covers eps's own rounding where it is the floor; G = (|x| +
    |mean|) / s. Inverted: the square root, the product, the sum (+1 for eps): K = 4, G = |mean| + |x| s. H = 2.
    Given in the config (Python floats), mean and variance are rounded to the dtype by Keras: 2 more (mean's 1,
    variance's halved by the square root, 1 with the sum's slack): K = 6."""
    source = weights if "mean" in weights else config
    if source.get("mean") is None or source.get("variance") is None:
        raise NoReference(f"{kind}: no mean and variance (neither weights nor config)")
    mean, var = (np.asarray(source[k], dtype=np.float64) for k in ("mean", "variance"))
    axis = config.get("axis", (-1,))
    axis = () if axis is None else _ints(axis, 1)
    invert = bool(config.get("invert", False))

    def aligned(v: np.ndarray, ndim: int) -> np.ndarray:
        keep = sorted(a % ndim for a in axis)
        view = [1] * ndim
        for i in range(1, v.ndim + 1):
            view[keep[-i]] = v.shape[-i]
        return v.reshape(view)

    def op(xs: Arrays, w: Weights, mag: bool) -> np.ndarray:
        x = xs[0]
        m, s = aligned(np.abs(mean) if mag else mean, x.ndim), np.maximum(np.sqrt(aligned(var, x.ndim)), KERAS_EPSILON)
        if invert:
            return m + x * s
        return (x + m if mag else x - m) / s

    return LayerRef(kind, "linear", 4 if source is weights else 6, op, {}, lambda xs: 2.0)


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


def _activation_kind(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """Activation, ReLU, LeakyReLU, Softmax: the identity as pre-activation (K = 0, exact) and the table's
    activation after it (softmax too, over the last axis only)."""
    name = config.get("activation", "softmax" if kind == "Softmax" else None)
    if kind == "ReLU":
        slope, threshold, top = (config.get(k) for k in ("negative_slope", "threshold", "max_value"))
        if slope or threshold or top not in (None, 6, 6.0):
            raise NoReference(f"{kind}: negative_slope={slope}, threshold={threshold}, max_value={top} (not in the "
                              "activation table)")
        name = "relu" if top is None else "relu6"
    if kind == "LeakyReLU":
        if config.get("negative_slope", 0.3) != 0.2:   # the table's leaky_relu is Keras's function default, 0.2
            raise NoReference(f"{kind}: negative_slope={config.get('negative_slope', 0.3)} (the table has 0.2)")
        name = "leaky_relu"
    if name == "softmax" and config.get("axis", -1) not in (-1, [-1], (-1,)):
        raise NoReference(f"{kind}: axis {config.get('axis')!r} (the last axis only)")
    return LayerRef(kind, _activation(kind, name), 0, lambda xs, w, mag: xs[0])


Builder = Callable[[str, Mapping[str, Any], Weights, int], LayerRef]
KINDS: dict[str, Builder] = {
    **dict.fromkeys(LAYERS, _conv),
    "Dense": _dense, "BatchNormalization": _batch_norm,
    **dict.fromkeys(("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "TrueDivide", "Divide"),
                    _elementwise),
    **{f"{p}Pooling{r}D": _pool for p in ("Max", "Average") for r in (1, 2)},
    **{f"Global{p}Pooling{r}D": _global_pool for p in ("Max", "Average") for r in (1, 2)},
    **dict.fromkeys(("Flatten", "Reshape", "Concatenate", "ZeroPadding1D", "ZeroPadding2D", "InputLayer", "Identity",
                     "Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout",
                     "AlphaDropout", "ActivityRegularization"), _movement),
    "Rescaling": _rescaling, "Normalization": _normalization,
    **dict.fromkeys(("Activation", "ReLU", "LeakyReLU", "Softmax"), _activation_kind),
}


def reference(kind: str, config: Mapping[str, Any], weights: Mapping[str, np.ndarray], n_inputs: int) -> LayerRef:
    """The node's reference: ``config`` its get_config(), ``weights`` by their short Keras names (float64, Keras
    layout), ``n_inputs`` its input tensors (constants included). NoReference says why there is none."""
    builder = KINDS.get(kind)
    if builder is None:
        raise NoReference(f"no float64 reference for {kind}")
    try:
        return builder(kind, config, weights, n_inputs)
    except (KeyError, TypeError, ValueError) as e:   # a config or weights this kind cannot read
        raise NoReference(f"{kind}: cannot read its config or weights ({type(e).__name__}: {e})") from None
