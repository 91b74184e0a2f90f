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

    def torch_function(self) -> Callable[[Any], Any]:
        """The torch function (imports torch): the identity for linear."""
        if not self.torch:
            return lambda y: y
        import operator

        import torch

        return operator.attrgetter(self.torch)(torch)


ACTIVATION_TABLE: dict[str, Activation] = {a.name: a for a in (
    Activation("linear", lambda y: y, "", 0),
    Activation("relu", lambda y: np.maximum(y, 0.0), "nn.functional.relu", 0),
    Activation("relu6", lambda y: np.clip(y, 0.0, 6.0), "nn.functional.relu6", 0),
    Activation("sigmoid", lambda y: 1.0 / (1.0 + np.exp(-y)), "sigmoid", 4),
    Activation("tanh", np.tanh, "tanh", 4),
)}
ACTIVATIONS: tuple[str, ...] = tuple(ACTIVATION_TABLE)


def get_activation(name: str | None) -> Activation:
    """The activation called ``name`` (None: linear); ValueError names the supported ones."""
    try:
        return ACTIVATION_TABLE[name or "linear"]
    except KeyError:
        raise ValueError(f"unsupported activation {name!r}; supported: None, {', '.join(ACTIVATIONS)}") from None
