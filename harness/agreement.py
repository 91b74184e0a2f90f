"""Agreement with the oracle: the per-element floating-point error bound and the metrics reported."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .activations import ACTIVATION_TABLE
from .tensors import unit_roundoff

# The one safety constant of the bound. 1 is the rigorous worst case of Higham's analysis; it has not
# needed raising (measured worst use of the budget: see README, "Tolerance model").
SAFETY = 1.0
ORACLE_DTYPE = "float64"


def gamma(k: int, u: float) -> float:
    """Higham's gamma_K = K u / (1 - K u); infinite where K u >= 1 (no bound exists)."""
    ku = k * u
    return ku / (1.0 - ku) if ku < 1.0 else float("inf")


@dataclass
class Bound:
    """The per-element tolerance of one engine dtype for one case."""

    k: int                    # reduction length of the longest path (products, sums, bias)
    u: float                  # unit roundoff of the engine's dtype
    bound: np.ndarray         # per-element allowed |y_engine - y_oracle|

    @property
    def vacuous(self) -> bool:
        return not usable(self.k, self.u)


def usable(k: int, u: float) -> bool:
    """Whether gamma_K(u) < 1 (K u < 1/2). From gamma_K >= 1 on the bound exceeds G >= |y|, so it would
    accept an all-zero output: such a check could not fail, and is a skip instead."""
    return gamma(k, u) < 1.0


def error_bound(k: int, dtype: str, gauge: np.ndarray, y_oracle: np.ndarray, activation: str) -> Bound:
    """c * ((gamma_K(u_e) + gamma_K(u_64)) * G + a (u_e + u_64) |y|).

    The oracle itself rounds in float64, so its own gamma_K(u_64) is added: negligible for float32, but
    the same size as the engine's for a float64 case. The activation is 1-Lipschitz and costs `a` ulps.
    """
    u, u64 = unit_roundoff(dtype), unit_roundoff(ORACLE_DTYPE)
    per_element = (gamma(k, u) + gamma(k, u64)) * gauge
    # The activation's own evaluation error (harness.activations); |y_oracle| stands for |f(y_engine)|: they
    # differ by the bound itself, a second-order term.
    ulps = ACTIVATION_TABLE[activation].ulps
    if ulps:
        per_element = per_element + ulps * (u + u64) * np.abs(y_oracle)
    return Bound(k=k, u=u, bound=SAFETY * per_element)


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
    with np.errstate(divide="ignore", invalid="ignore"):
        r = err / bound
    r[err == 0] = 0.0
    r[np.isnan(r)] = np.inf  # NaN in the engine's output is never within bound
    return r


def ratios(y: np.ndarray, y_oracle: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """|y - y_o| / bound per element; 0/0 counts as 0, error over a zero bound as inf."""
    return _ratios_from_error(np.abs(np.asarray(y, dtype=np.float64) - y_oracle), bound)


def measure(y: np.ndarray, y_oracle: np.ndarray, b: Bound) -> Metrics:
    # Each pass over the output is paid once: a worked example has 82M elements.
    y64 = np.asarray(y, dtype=np.float64)
    err = np.abs(y64 - y_oracle)
    err[np.isnan(err)] = np.inf
    r = _ratios_from_error(err, b.bound)
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
        worst_bound=float(b.bound[worst]) if r.size else 0.0,
        k=b.k,
        u=b.u,
    )
