"""Plug-in engines for the fuzzer's re-check (tests/fuzz/test_fuzz.py): fn(layer, config, x, weights) -> y.

Each is wrong in a different way: from run to run (noise), in one process only (a module flag the test sets,
unset in the fresh processes the fuzzer starts), in every process (a fixed offset), or in one process after a
first real failure there (sticky), which makes hypothesis shrink to a configuration that only that process
gets wrong.
"""
from __future__ import annotations

import numpy as np

from harness.reference import oracle

WRONG_HERE = False     # set by a test in its own process; a fresh process starts with False
STICKY_WIDTH = 8       # sticky is wrong, in any process, from this input width on
_stuck = False         # sticky: set after its first wrong answer in this process


def reset() -> None:
    global WRONG_HERE, _stuck
    WRONG_HERE, _stuck = False, False


def _right(layer, config, x, weights) -> np.ndarray:
    return oracle.run(layer, config, x.astype(np.float64), {k: v.astype(np.float64) for k, v in weights.items()})


def noisy(layer, config, x, weights):
    """The right answer plus fresh random noise on every call: nondeterministic."""
    y = _right(layer, config, x, weights)
    return (y + np.random.default_rng().normal(size=y.shape)).astype(x.dtype)


def wrong_here(layer, config, x, weights):
    """Off by one in a process whose WRONG_HERE is set (the fuzzing process), right in a fresh one."""
    return (_right(layer, config, x, weights) + (1.0 if WRONG_HERE else 0.0)).astype(x.dtype)


def offset(layer, config, x, weights):
    """Off by one everywhere, in every process: a deterministic disagreement."""
    return (_right(layer, config, x, weights) + 1.0).astype(x.dtype)


def sticky(layer, config, x, weights):
    """Off by one for inputs at least STICKY_WIDTH wide, and for everything after that in the same process."""
    global _stuck
    width = x.shape[-1] if config.get("data_format") == "channels_first" else x.shape[-2]
    _stuck = _stuck or width >= STICKY_WIDTH
    return (_right(layer, config, x, weights) + (1.0 if _stuck else 0.0)).astype(x.dtype)
