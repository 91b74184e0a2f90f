"""The activations a case may name: the one table of their float64 reference, torch function and error.

Every element-wise activation Keras 3.15.1 accepts by name on a convolution layer (keras.activations.get: the
functions, and the aliases swish = silu and hard_swish = hard_silu) with Keras's own defaults: gelu exact
(keras.activations.gelu(approximate=False); tf.nn.gelu: 0.5 x erfc(-x / sqrt 2)), leaky_relu's negative_slope
0.2, elu's alpha 1, selu's constants as TensorFlow's kernel holds them, hard_sigmoid = relu6(x + 3) / 6 (Keras 3,
not Keras 2's 0.2 x + 0.5), hard_silu = x hard_sigmoid(x). Each reference is the function in exact arithmetic
with Keras's constants, evaluated in float64 without cancellation.

The errors are in units of u (u is half an ulp: 4u = 2 ulps), measured on Keras 3.15.1 / TensorFlow 2.21.0 (both
CPU kernel paths: the element-wise kernels are Eigen's on both) and torch 2.13.0 (CPU) in float16, bfloat16
(every finite value), float32 and float64 (10^6 points: uniform, log-spread magnitudes down to the smallest
normal, the representable neighbours of every kink and threshold) against a float64 (for float64: long double)
reference; the worst seen is quoted with each entry.

Three float64 results of the frameworks differ from Keras's definition by far more than any rounding and are left
to the known-framework-behaviour registry, not to these tolerances: TensorFlow holds leaky_relu's 0.2 as a float32
attribute (0.20000000298023224) and casts gelu's 1/sqrt(2) through float32 (0.7071067690849304), and torch's
float64 hardsigmoid backward uses a float32 1/6 (0.1666666716337204). tests/layers/test_activations.py pins all three.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Activation:
    """One Keras activation, described once for the oracle, the torch port and the error bound."""

    name: str                                   # what a case writes under config.activation (null: linear)
    reference: Callable[[np.ndarray], np.ndarray]   # float64 NumPy, the oracle's definition
    torch: str                                  # the torch function, as a dotted path below `torch` ('' : identity)
    # Its own evaluation error in units of u (u is half an ulp: 4u = 2 ulps): relu and relu6 are exact (a max or
    # min); sigmoid and tanh go through exp, which IEEE does not bound; libraries keep it within an ulp or two.
    # The forward bound (harness.reference.agreement) allows ulps * (u + u_64) * |y| for it.
    ulps: int
    # Its derivative as a float64 NumPy function of the PRE-activation value, for the backward reference
    # (dz = dy * derivative(pre)). At a kink it takes the value TensorFlow and PyTorch both take, checked on
    # tensors holding exactly 0 and 6 (tf 2.21 tf.nn.relu/relu6 and keras.activations.relu/relu6, torch 2.13
    # F.relu/F.relu6/F.hardtanh(0, 6), float32 and float64, GradientTape / autograd at [-1, 0, 3, 6, 7]):
    # relu'(0) = 0 (TF ReluGrad passes where features > 0; torch threshold_backward where input > 0) and
    # relu6' = 1 on the open interval (0, 6) only, 0 at 0 and at 6 (TF Relu6Grad: features > 0 & features < 6;
    # torch hardtanh_backward: min_val < input < max_val). tests/reference/test_backward_oracle.py checks it against
    # both.
    # Where the two disagree (selu'(0)) it takes TensorFlow's, and the kink's allowance covers torch's.
    derivative: Callable[[np.ndarray], np.ndarray]
    # Where the derivative jumps: an engine whose rounded pre-activation lands on the other side of one of these
    # (or on it) than the oracle's takes the other derivative, so a judge must not count that element against it.
    # Every jump here is at most 1 (the allowance harness.judge.gradients gives a kink).
    kinks: tuple[float, ...] = ()
    # How far an engine's derivative may be from the oracle's, |f'_e - f'| <= curvature * |pre_e - pre| +
    # derivative_ulps * u: frameworks compute it from their own output s_e = f(pre_e) (TF SigmoidGrad
    # dy * s (1 - s), TanhGrad dy * (1 - t^2); torch alike), so it moves with their forward error and carries the
    # rounding of f itself (ulps) and of the gradient formula. sigmoid: |d(s(1-s))/ds| <= 1 and |s'| <= 1/4, so
    # 1/4 |dpre| + (ulps + 3) u; tanh: |d(1-t^2)/dt| <= 2 and |t'| <= 1, so 2 |dpre| + (2 ulps + 3) u. Exact (0) for
    # linear, relu and relu6, whose derivatives are 0 or 1 (away from the kinks). For a derivative computed from
    # the input instead, curvature is sup |f''| where f is smooth. (Not a slope: sup |f'| is ``slope``.)
    curvature: float = 0.0
    derivative_ulps: int = 0
    # Keyword arguments the torch function is called with, as (name, value) pairs: Keras's constants where
    # torch's defaults differ (leaky_relu's slope 0.01 in torch, 0.2 in Keras).
    torch_kwargs: tuple[tuple[str, Any], ...] = ()
    # sup |f'|, declared (the derivative's maximum, found analytically): how much an error of the pre-activation
    # may grow through f. The forward bound (harness.reference.agreement) and a stack's propagated bound (harness.
    # stack_reference) scale the pre-activation's error by it. 1 for linear, relu, relu6, tanh, elu, softplus,
    # softsign, leaky_relu; sigmoid 1/4 (at 0); silu 1.0998, gelu 1.1289, hard_silu 1.5 and selu 1.7581 are steeper.
    slope: float = 1.0
    # Whether f never decreases (f' >= 0 everywhere): a stack's bound then carries an error interval through f as
    # its image, [f(p - e), f(p + e)], tighter than slope * e (0 where relu clamps). silu, gelu and hard_silu dip.
    monotone: bool = True
    # The part of the evaluation error that is not relative to |f(pre)|, in units of u * max(1, |pre|): where a
    # framework subtracts nearly equal numbers (TF's elu and selu as exp(x) - 1 near 0-; torch's gelu as
    # 1 + erf(x / sqrt 2) for x < 0) or rounds an argument f is sensitive to (TF's gelu rounds -x / sqrt 2 before
    # erfc), the error is a few u absolute while f(pre) is tiny. The model of the measurements is
    # |f_e(pre) - f(pre)| <= ulps u |f(pre)| + absolute_ulps u max(1, |pre|). Not read by harness.reference.agreement
    # yet: its gamma_K(u) G term (G >= |pre|) is where it lands today.
    absolute_ulps: int = 0

    def torch_function(self) -> Callable[[Any], Any]:
        """The torch function (imports torch), called with torch_kwargs: the identity for linear."""
        if not self.torch:
            return lambda y: y
        import operator

        import torch

        fn = operator.attrgetter(self.torch)(torch)
        return functools.partial(fn, **dict(self.torch_kwargs)) if self.torch_kwargs else fn


def _sigmoid(y: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-y)) without overflow: e / (1 + e) on the negative side, e = exp(-|y|)."""
    e = np.exp(-np.abs(y))
    return np.where(y >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def _sigmoid_derivative(y: np.ndarray) -> np.ndarray:
    """s (1 - s), written as e / (1 + e)^2 with e = exp(-|y|) (the same function, sigmoid' being even): no overflow,
    and no cancellation in 1 - s where s rounds to 1 (|y| > ~18 in float64)."""
    e = np.exp(-np.abs(y))
    return e / (1.0 + e) ** 2


def _tanh_derivative(y: np.ndarray) -> np.ndarray:
    """1 - tanh(y)^2, written as 4e / (1 + e)^2 with e = exp(-2|y|) (= sech(y)^2): no cancellation where t ~ 1."""
    e = np.exp(-2.0 * np.abs(y))
    return 4.0 * e / (1.0 + e) ** 2


# ---------------------------------------------------------------- silu (swish)

def _silu(y: np.ndarray) -> np.ndarray:
    return y * _sigmoid(y)


def _silu_derivative(y: np.ndarray) -> np.ndarray:
    """s (1 + y (1 - s)) with 1 - s = sigmoid(-y): no cancellation where s rounds to 1."""
    return _sigmoid(y) * (1.0 + y * _sigmoid(-y))


# ---------------------------------------------------------------- gelu (exact: Phi(y) y)

_SQRT1_2 = 0.7071067811865476               # 1/sqrt(2) rounded to float64
_SQRT1_2_LO = -4.833646656726457e-17        # 1/sqrt(2) - _SQRT1_2
_TWO_OVER_SQRT_PI = 1.1283791670955126      # erfc'(t) = -2/sqrt(pi) exp(-t^2)
_ONE_OVER_SQRT_2PI = 0.3989422804014327     # phi(0)
_SPLIT = 134217729.0                        # 2^27 + 1: Veltkamp's split of a float64 into two 26-bit halves
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _product_error(a: np.ndarray, b: float) -> np.ndarray:
    """a * b - fl(a * b), exactly (Dekker's two-product; |a| small enough not to overflow the split)."""
    p = a * b
    c = _SPLIT * a
    ah = c - (c - a)
    al = a - ah
    d = _SPLIT * b
    bh = d - (d - b)
    bl = b - bh
    return ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _normal_cdf(y: np.ndarray) -> np.ndarray:
    """Phi(y) = erfc(-y / sqrt 2) / 2 (erfc: no cancellation on either side). erfc's relative sensitivity to its
    argument t is 2 t^2, so the rounding of -y/sqrt(2) (and of 1/sqrt(2)) would cost ~y^2 u; the part of t lost
    to rounding is computed exactly (two-product) and added to first order, erfc(t + d) = erfc(t) - 2/sqrt(pi)
    exp(-t^2) d. Past |y| = 64 erfc is 0 or 2 to float64's precision, and the correction is 0."""
    y = np.asarray(y, dtype=np.float64)
    t = -y * _SQRT1_2
    yc = np.clip(y, -64.0, 64.0)
    lost = -(_product_error(yc, _SQRT1_2) + yc * _SQRT1_2_LO)
    return 0.5 * (_erfc(t) - _TWO_OVER_SQRT_PI * np.exp(-t * t) * lost)


def _gelu(y: np.ndarray) -> np.ndarray:
    return y * _normal_cdf(y)


def _gelu_derivative(y: np.ndarray) -> np.ndarray:
    """Phi(y) + y phi(y)."""
    return _normal_cdf(y) + y * (_ONE_OVER_SQRT_2PI * np.exp(-0.5 * y * y))


# ---------------------------------------------------------------- elu (alpha 1) and selu

# TensorFlow's Selu kernel (tensorflow/core/kernels/selu_op.h): scale and scale * alpha as written there, each
# rounded once to the dtype; keras.activations.selu calls tf.nn.selu.
SELU_SCALE = 1.0507009873554804934193349852946
SELU_SCALE_ALPHA = 1.7580993408473768599402175208123


def _elu(y: np.ndarray) -> np.ndarray:
    return np.where(y > 0.0, y, np.expm1(np.minimum(y, 0.0)))


def _elu_derivative(y: np.ndarray) -> np.ndarray:
    return np.where(y > 0.0, 1.0, np.exp(np.minimum(y, 0.0)))


def _selu(y: np.ndarray) -> np.ndarray:
    return np.where(y > 0.0, SELU_SCALE * y, SELU_SCALE_ALPHA * np.expm1(np.minimum(y, 0.0)))


def _selu_derivative(y: np.ndarray) -> np.ndarray:
    """scale for y >= 0 (TF's SeluGrad at 0: its output 0 is not < 0), scale * alpha * exp(y) below."""
    return np.where(y >= 0.0, SELU_SCALE, SELU_SCALE_ALPHA * np.exp(np.minimum(y, 0.0)))


# ---------------------------------------------------------------- softplus, softsign

def _softplus(y: np.ndarray) -> np.ndarray:
    """log(1 + exp(y)) = max(y, 0) + log1p(exp(-|y|)): no overflow, no cancellation."""
    return np.maximum(y, 0.0) + np.log1p(np.exp(-np.abs(y)))


def _softsign(y: np.ndarray) -> np.ndarray:
    return y / (1.0 + np.abs(y))


def _softsign_derivative(y: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.abs(y)) ** 2


# ---------------------------------------------------------------- hard_sigmoid, hard_silu (Keras 3)

def _hard_sigmoid(y: np.ndarray) -> np.ndarray:
    return np.clip(y + 3.0, 0.0, 6.0) / 6.0


def _hard_sigmoid_derivative(y: np.ndarray) -> np.ndarray:
    """1/6 on the open interval (-3, 3), 0 at -3 and 3 and outside (TF: Relu6Grad of x + 3, then / 6; torch
    hardsigmoid_backward: -3 < x < 3)."""
    return ((y > -3.0) & (y < 3.0)) / 6.0


def _hard_silu(y: np.ndarray) -> np.ndarray:
    return y * _hard_sigmoid(y)


def _hard_silu_derivative(y: np.ndarray) -> np.ndarray:
    """(2y + 3) / 6 on (-3, 3), 0 at and below -3, 1 at and above 3 (TF: hard_sigmoid(x) + x hard_sigmoid'(x),
    hard_sigmoid' being 0 at +-3; torch 2.13 hardswish_backward: the same at -3 and 3)."""
    return np.where(y <= -3.0, 0.0, np.where(y < 3.0, (2.0 * y + 3.0) / 6.0, 1.0))


# ---------------------------------------------------------------- leaky_relu

LEAKY_RELU_SLOPE = 0.2      # keras.activations.leaky_relu(x, negative_slope=0.2); torch's default is 0.01


def _leaky_relu(y: np.ndarray) -> np.ndarray:
    return np.where(y > 0.0, y, LEAKY_RELU_SLOPE * y)


def _leaky_relu_derivative(y: np.ndarray) -> np.ndarray:
    """1 above 0, the slope at and below 0 (TF LeakyReluGrad: features > 0 ? dy : dy * alpha; torch
    leaky_relu_backward: self > 0 ? grad : grad * negval)."""
    return np.where(y > 0.0, 1.0, LEAKY_RELU_SLOPE)


_SILU_ERRORS: dict[str, Any] = dict(
    # Forward, 10: x * sigmoid(x) in both (tf.nn.silu; torch in one pass in opmath), so sigmoid's error plus one
    # product. TensorFlow's float32 sigmoid is off by up to 8.1u (x ~ -14.5; more than the sigmoid entry's 4 allows,
    # where |y| ~ 5e-7 keeps it harmless), so 8.1 + 1 and a margin. Measured worst (relative): TF float16 2.9,
    # bfloat16 3.0, float32 8.8, float64 3.6 (past the smallest normal); torch 1.0, 1.0, 2.7, 2.7.
    ulps=10,
    # Backward: both take the derivative from the input (TF's swish custom gradient s (1 + x (1 - s)); torch
    # silu_backward the same), so curvature = sup |silu''| = 1/2 (at 0: s(1-s)(2 + x(1 - 2s))). The formula's
    # own error: s rounds to within ~u of 1 where 1 - s ~ e^-x is below u, and x (1 - s) multiplies that by x ~
    # ln(1/u) (36.7 in float64, 16.6 in float32, 7.6 in float16): ~1.2 ln(1/u) + 4 roundings = 50 in float64.
    # Measured worst |f'_e - f'| / u: TF 8.8, 6.3, 15.6, 44.8 (float16, bfloat16, float32, float64, at
    # x ~ ln(1/u)); torch 1.0, 1.0, 16.4, 35.9.
    curvature=0.5, derivative_ulps=64, slope=1.0998393201285284, monotone=False)

ACTIVATION_TABLE: dict[str, Activation] = {a.name: a for a in (
    Activation("linear", lambda y: y, "", 0, lambda y: np.ones_like(y)),
    Activation("relu", lambda y: np.maximum(y, 0.0), "nn.functional.relu", 0,
               lambda y: (y > 0.0).astype(np.float64), kinks=(0.0,)),
    Activation("relu6", lambda y: np.clip(y, 0.0, 6.0), "nn.functional.relu6", 0,
               lambda y: ((y > 0.0) & (y < 6.0)).astype(np.float64), kinks=(0.0, 6.0)),
    # sigmoid and tanh: measured in TF float32 at 8.1u (x near -14.5) and 5.65u (x near -6.24), over every
    # float16/bfloat16 value and about 10^6 float32/float64 points (the two ulps assumed before were too few).
    Activation("sigmoid", lambda y: 1.0 / (1.0 + np.exp(-y)), "sigmoid", 9, _sigmoid_derivative,
               curvature=0.25, derivative_ulps=9 + 3, slope=0.25),
    Activation("tanh", np.tanh, "tanh", 6, _tanh_derivative, curvature=2.0, derivative_ulps=2 * 6 + 3),
    Activation("silu", _silu, "nn.functional.silu", derivative=_silu_derivative, **_SILU_ERRORS),
    Activation("swish", _silu, "nn.functional.silu", derivative=_silu_derivative, **_SILU_ERRORS),   # Keras's alias
    # gelu, exact (keras.activations.gelu's approximate=False; torch approximate='none').
    # Forward, 8 and 8 absolute: TF computes 0.5 x erfc(-x c) in the dtype (three roundings, and erfc's relative
    # sensitivity 2t^2 to the rounding of t = -x c: 12.5u relative at x ~ -3.4 in float16, but at most
    # 0.24 u |x| absolute, max over t of t exp(-t^2) / sqrt(pi)); torch computes 0.5 x (1 + erf(x c)) in opmath,
    # whose erf is off by up to 6u relative (x ~ 3.5, float32) and whose 1 + erf cancels for x < 0 (5.4 u |x|
    # absolute at x ~ -3 in float32). Measured worst absolute part with ulps 8: TF 0.005, 0.001, 0.28
    # (float16, bfloat16, float32); torch 0, 0.00001, 5.4, 0.26 (float16 to float64).
    # Backward: both from the input (TF through mul and ErfcGrad; torch gelu_backward: cdf + x pdf), so
    # curvature = sup |gelu''| = sup |phi(x) (2 - x^2)| = 2 phi(0) = 0.798; measured worst |f'_e - f'| / u: TF
    # 2.1, 2.0, 2.3 (float16 to float32); torch 1.0, 1.0, 4.3, 2.4 (float16 to float64): 8.
    Activation("gelu", _gelu, "nn.functional.gelu", 8, _gelu_derivative, curvature=0.7978845608028654,
               derivative_ulps=8, torch_kwargs=(("approximate", "none"),), slope=1.1289041451469775,
               absolute_ulps=8, monotone=False),
    # elu, alpha 1 (keras.activations.elu -> tf.nn.elu; torch F.elu, alpha 1 by default).
    # Forward, 2 and 2 absolute: torch uses expm1 (1 rounding, measured 1.06 relative); TF's Elu kernel computes
    # exp(x) - 1, which keeps exp's rounding, ~u of e^x <= 1, as an absolute error where elu(x) ~ x is tiny
    # (relative error up to 1/u just below 0): measured 0.50, 0.50, 0.99, 0.76 u absolute (float16, bfloat16,
    # float32, float64).
    # Backward: elu' is continuous for alpha 1 (e^0 = 1 = the right side), so no kink. TF's EluGrad works from
    # the output (y < 0 ? dy (y + 1) : dy), torch's elu_backward from the input (exp(x)); either way
    # |d f'/dpre| = e^x <= 1: curvature 1; the error of y + 1 is y's (<= 2u |y| + 2u absolute) and one rounding:
    # measured worst 1.06 (TF), 0.79 (torch): 3.
    Activation("elu", _elu, "nn.functional.elu", 2, _elu_derivative, curvature=1.0, derivative_ulps=3,
               absolute_ulps=2),
    # selu (tf.nn.selu's kernel: x < 0 ? scale_alpha (exp(x) - 1) : scale x; torch F.selu: elu with alpha and
    # scale, expm1).
    # Forward, 3 and 3 absolute: as elu, TF's exp(x) - 1 leaves scale_alpha u ~ 1.76u absolute near 0-; measured
    # worst absolute part (with ulps 3): TF 0.88, 0.87, 1.73, 1.34 (float16, bfloat16, float32, float64).
    # Backward: the derivative jumps at 0 from scale * alpha (1.7581) to scale (1.0507), a jump of 0.707. TF's
    # SeluGrad decides on its output (y < 0 ? dy (y + scale_alpha) : dy scale) and takes scale at 0 (and for
    # |x| below ~u, where exp(x) - 1 rounds to 0); torch's elu_backward decides on the input (x <= 0 ? dy
    # scale_alpha exp(x) : dy scale) and takes scale * alpha at 0: the reference takes TF's, the kink covers
    # torch's. curvature = sup |selu''| = scale * alpha (x -> 0-); TF's y + scale_alpha carries y's error
    # (3u |y| + 3u) and a rounding, ~8u at worst: measured 2.6, 2.1, 3.4, 3.8 (TF), 1.0, 1.0, 2.4, 2.4 (torch): 8.
    Activation("selu", _selu, "nn.functional.selu", 3, _selu_derivative, kinks=(0.0,),
               curvature=SELU_SCALE_ALPHA, derivative_ulps=8, slope=SELU_SCALE_ALPHA, absolute_ulps=3),
    # softplus (tf.math.softplus; torch F.softplus with threshold 40).
    # Forward, 10: TF's kernel returns exp(x) below log(eps) + 2 and x above its negative (eps = 2u: -13.9 in
    # float32, -34.0 in float64) instead of log1p(exp(x)): a relative error of up to e^(log eps + 2) / 2 =
    # e^2 u = 7.4u, plus the roundings; measured worst 1.7, 7.6, 7.7, 8.0 (float16, bfloat16, float32, float64).
    # torch: log1p(exp(x)) (2.0 measured) up to its threshold, x above: its default threshold 20 leaves
    # log1p(e^-20) = 2e-9, 9.3e5 u relative in float64, so the port passes 40 (e^-40 / 40 = 1e-19 < u_64).
    # Backward: f' = sigmoid, from the input in both (TF SoftplusGrad dy / (exp(-x) + 1); torch z / (z + 1),
    # z = exp(x)): curvature = sup sigmoid' = 1/4; three roundings, measured worst 2.1 (TF), 1.5 (torch): 4.
    Activation("softplus", _softplus, "nn.functional.softplus", 10, _sigmoid, curvature=0.25, derivative_ulps=4,
               torch_kwargs=(("beta", 1.0), ("threshold", 40.0))),
    # softsign x / (1 + |x|) (tf.nn.softsign; torch F.softsign, the same two operations).
    # Forward, 3: two roundings (1 + |x|, the division); measured worst 1.9, 1.8, 2.0, 2.0.
    # Backward: f' = 1 / (1 + |x|)^2 is continuous at 0 (f'' jumps from 2 to -2: no kink of f'). TF SoftsignGrad
    # dy / (1 + |x|)^2 from the input (three roundings); torch autograd through abs and the division,
    # 1/(1 + |x|) - |x| / (1 + |x|)^2 (u-sized absolute errors): curvature = sup |f''| = 2; measured worst 3.3
    # (TF), 1.9 (torch): 5.
    Activation("softsign", _softsign, "nn.functional.softsign", 3, _softsign_derivative, curvature=2.0,
               derivative_ulps=5),
    # hard_sigmoid relu6(x + 3) / 6 (Keras 3's tf backend; torch F.hardsigmoid: min(max(x + 3, 0), 6) / 6, the same
    # function).
    # Forward, 3: x + 3 and the division by 6 round (2u); 3 allows a multiplication by a rounded 1/6 instead;
    # measured worst 1.5 in every dtype (TF), 1.0, 1.0, 1.5, 1.5 (torch).
    # Backward: 1/6 on the open interval (-3, 3), 0 at and beyond +-3 in both (checked at -3 and 3 in every
    # dtype; TF decides on the rounded x + 3, so just below 3 it may already take 0: within the kink's
    # allowance). curvature 0; derivative_ulps 1: the rounding of 1/6 (measured 0.08). torch's float64 backward
    # uses a float32 1/6 (5e-9 off): see the module's docstring.
    Activation("hard_sigmoid", _hard_sigmoid, "nn.functional.hardsigmoid", 3, _hard_sigmoid_derivative,
               kinks=(-3.0, 3.0), derivative_ulps=1, slope=1.0 / 6.0),
    # hard_silu x * hard_sigmoid(x) (TF: x * (relu6(x + 3) / 6); torch F.hardswish: x * min(max(x + 3, 0), 6) / 6).
    # Forward, 4: three roundings (x + 3, the product, / 6), four with a rounded 1/6; measured worst 2.2, 2.0, 2.3,
    # 2.4 (TF), 1.0, 1.0, 2.4, 2.4 (torch).
    # Backward: (2x + 3) / 6 on (-3, 3), 0 at and below -3, 1 at and above 3: jumps of 1/2 at both kinks; TF and
    # torch 2.13 both take 0 at -3 and 1 at 3 (checked in every dtype). curvature = f'' = 1/3; measured worst
    # 1.3 in both: 3.
    Activation("hard_silu", _hard_silu, "nn.functional.hardswish", 4, _hard_silu_derivative, kinks=(-3.0, 3.0),
               curvature=1.0 / 3.0, derivative_ulps=3, slope=1.5, monotone=False),
    Activation("hard_swish", _hard_silu, "nn.functional.hardswish", 4, _hard_silu_derivative,   # Keras's alias
               kinks=(-3.0, 3.0), curvature=1.0 / 3.0, derivative_ulps=3, slope=1.5, monotone=False),
    # leaky_relu, negative_slope 0.2 (Keras's default; torch F.leaky_relu is given it: its own default is 0.01).
    # Forward, 2: one product with the slope, and the slope's own rounding to the dtype (0.2 in float16 is
    # 0.19995, 0.5u off); measured worst 1.3, 1.2, 1.2 (TF float16, bfloat16, float32), 0.8, 0.8, 1.2, 0.9
    # (torch, float16 to float64). TF's float64 slope is float32's 0.2: see the module's docstring.
    # Backward: 1 above 0, the slope at and below 0 in both (checked at 0); a jump of 0.8. curvature 0;
    # derivative_ulps 1: the slope's rounding (measured 0.1).
    Activation("leaky_relu", _leaky_relu, "nn.functional.leaky_relu", 2, _leaky_relu_derivative, kinks=(0.0,),
               derivative_ulps=1, torch_kwargs=(("negative_slope", LEAKY_RELU_SLOPE),)),
)}
ACTIVATIONS: tuple[str, ...] = tuple(ACTIVATION_TABLE)

# exponential (keras.activations.exponential = exp; torch.exp) is described here but not offered: its slope is
# f' = f itself, unbounded, so the pre-activation's error e reaches the output as |y| e (relative, not absolute),
# and its derivative's as |f'| e. The forward bound (harness.reference.agreement: the gamma_K(u) G term,
# 1-Lipschitz) and the backward allowance (harness.judge.gradients: curvature * e) have no term that grows with |y|,
# and would fail correct engines wherever exp(pre) > ~4 (and float16 overflows past pre = 11.09). Forward, 4: one
# exp, within an ulp (measured worst 1.0, 1.0, 2.0, 2.2 TF; 1.0, 1.0, 1.0, 1.2 torch). Backward: both from the
# output (TF ExpGrad dy * y; torch grad * result): |f'_e - f'| <= |f'| (e + 4u); measured 2.0 relative.
EXPONENTIAL = Activation("exponential", np.exp, "exp", 4, np.exp, slope=math.inf)
NOT_OFFERED: dict[str, str] = {
    "exponential": "its slope exp(pre) is unbounded: the forward bound and the backward allowance would need a "
                   "term relative to |y| (harness.layers.activations, EXPONENTIAL)",
}


def get_activation(name: str | None) -> Activation:
    """The activation called ``name`` (None: linear); ValueError names the supported ones."""
    try:
        return ACTIVATION_TABLE[name or "linear"]
    except KeyError:
        why = f" ({name}: {NOT_OFFERED[name]})" if name in NOT_OFFERED else ""
        raise ValueError(f"unsupported activation {name!r}{why}; supported: None, {', '.join(ACTIVATIONS)}") from None
