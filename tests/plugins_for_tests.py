"""Plug-in engines for the tests: fn(layer, config, x, weights) -> y, one right, one wrong, one that skips."""
from __future__ import annotations

import numpy as np

from harness.reference import oracle


def _rank(layer: str) -> int:
    return 2 if layer.endswith("2D") else 1


def correct(layer, config, x, weights):
    """The oracle's own result, cast to the case dtype: must pass."""
    y = oracle.run(layer, config, x.astype(np.float64), {k: v.astype(np.float64) for k, v in weights.items()})
    return y.astype(x.dtype)


def flipped(layer, config, x, weights):
    """A true convolution (kernel spatial axes reversed), the classic porting mistake: must fail."""
    rank = _rank(layer)
    w = {k: (v if k == "bias" else np.flip(v, axis=tuple(range(rank)))).astype(np.float64)
         for k, v in weights.items()}
    return oracle.run(layer, config, x.astype(np.float64), w).astype(x.dtype)


def unsupported(layer, config, x, weights):
    """An engine that does not implement anything: every item skips."""
    raise NotImplementedError(f"{layer} is not implemented by this plug-in")


def crashing(layer, config, x, weights):
    """An engine with a bug of its own: an error, never a disagreement."""
    raise RuntimeError("the port crashed")


def refusing(layer, config, x, weights):
    """An engine that refuses every configuration, as a framework does."""
    from harness.errors import EngineRejected

    raise EngineRejected(f"{layer} refused by this plug-in")


def accepting(layer, config, x, weights):
    """An engine that runs anything, even a configuration no framework can run: returns an empty tensor."""
    return np.zeros((0,), dtype=x.dtype)


def rich(layer, config, x, weights):
    """A plug-in that returns what a built-in returns: output, parameter count, weight shapes, notes, facts."""
    from harness.api import EngineOutput

    return EngineOutput(y=correct(layer, config, x, weights), params=sum(v.size for v in weights.values()),
                        weight_shapes={k: tuple(v.shape) for k, v in weights.items()},
                        notes=["converted by the rich plug-in"], facts={"rich": True})
