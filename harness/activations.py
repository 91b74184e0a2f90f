"""The activations a case may name: the one table of their float64 reference, torch function and error."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Activation:
    """One Keras activation, described once for the oracle, the torch port and the error bound."""

    name: str                                   # what a case writes under config.activation (null: linear)
    reference: Callable[[np.ndarray], np.ndarray]   # float64 NumPy, the oracle's definition
    torch: str                                  # the torch function, as a dotted path below `torch` ('' : identity)
    # Its own evaluation error in units of u (u is half an ulp: 4u = 2 ulps): relu and relu6 are exact (a max or
    # min); sigmoid and tanh go through exp, which IEEE does not bound; libraries keep it within an ulp or two.
    ulps: int
    # Its derivative as a float64 NumPy function of the PRE-activation value, for the backward reference
    # (dz = dy * derivative(pre)). At a kink it takes the value TensorFlow and PyTorch both take, checked on
    # tensors holding exactly 0 and 6 (tf 2.21 tf.nn.relu/relu6 and keras.activations.relu/relu6, torch 2.13
    # F.relu/F.relu6/F.hardtanh(0, 6), float32 and float64, GradientTape / autograd at [-1, 0, 3, 6, 7]):
    # relu'(0) = 0 (TF ReluGrad passes where features > 0; torch threshold_backward where input > 0) and
    # relu6' = 1 on the open interval (0, 6) only, 0 at 0 and at 6 (TF Relu6Grad: features > 0 & features < 6;
    # torch hardtanh_backward: min_val < input < max_val). tests/test_backward_oracle.py checks it against both.
    derivative: Callable[[np.ndarray], np.ndarray]
    # Where the derivative jumps: an engine whose rounded pre-activation lands on the other side of one of these
    # (or on it) than the oracle's takes the other derivative, so a judge must not count that element against it.
    kinks: tuple[float, ...] = ()
    # How far an engine's derivative may be from the oracle's, |f'_e - f'| <= lipschitz * |pre_e - pre| +
    # derivative_ulps * u: frameworks compute it from their own output s_e = f(pre_e) (TF SigmoidGrad
    # dy * s (1 - s), TanhGrad dy * (1 - t^2); torch alike), so it moves with their forward error and carries the
    # rounding of f itself (ulps) and of the gradient formula. sigmoid: |d(s(1-s))/ds| <= 1 and |s'| <= 1/4, so
    # 1/4 |dpre| + (ulps + 3) u; tanh: |d(1-t^2)/dt| <= 2 and |t'| <= 1, so 2 |dpre| + (2 ulps + 3) u. Exact (0) for
    # linear, relu and relu6, whose derivatives are 0 or 1 (away from the kinks).
    lipschitz: float = 0.0
    derivative_ulps: int = 0

    def torch_function(self) -> Callable[[Any], Any]:
        """The torch function (imports torch): the identity for linear."""
        if not self.torch:
            return lambda y: y
        import operator

        import torch

        return operator.attrgetter(self.torch)(torch)


def _sigmoid_derivative(y: np.ndarray) -> np.ndarray:
    """s (1 - s), written as e / (1 + e)^2 with e = exp(-|y|) (the same function, sigmoid' being even): no overflow,
    and no cancellation in 1 - s where s rounds to 1 (|y| > ~18 in float64)."""
    e = np.exp(-np.abs(y))
    return e / (1.0 + e) ** 2


def _tanh_derivative(y: np.ndarray) -> np.ndarray:
    """1 - tanh(y)^2, written as 4e / (1 + e)^2 with e = exp(-2|y|) (= sech(y)^2): no cancellation where t ~ 1."""
    e = np.exp(-2.0 * np.abs(y))
    return 4.0 * e / (1.0 + e) ** 2


ACTIVATION_TABLE: dict[str, Activation] = {a.name: a for a in (
    Activation("linear", lambda y: y, "", 0, lambda y: np.ones_like(y)),
    Activation("relu", lambda y: np.maximum(y, 0.0), "nn.functional.relu", 0,
               lambda y: (y > 0.0).astype(np.float64), kinks=(0.0,)),
    Activation("relu6", lambda y: np.clip(y, 0.0, 6.0), "nn.functional.relu6", 0,
               lambda y: ((y > 0.0) & (y < 6.0)).astype(np.float64), kinks=(0.0, 6.0)),
    Activation("sigmoid", lambda y: 1.0 / (1.0 + np.exp(-y)), "sigmoid", 4, _sigmoid_derivative,
               lipschitz=0.25, derivative_ulps=4 + 3),
    Activation("tanh", np.tanh, "tanh", 4, _tanh_derivative, lipschitz=2.0, derivative_ulps=2 * 4 + 3),
)}
ACTIVATIONS: tuple[str, ...] = tuple(ACTIVATION_TABLE)


def get_activation(name: str | None) -> Activation:
    """The activation called ``name`` (None: linear); ValueError names the supported ones."""
    try:
        return ACTIVATION_TABLE[name or "linear"]
    except KeyError:
        raise ValueError(f"unsupported activation {name!r}; supported: None, {', '.join(ACTIVATIONS)}") from None
