"""Float64 references and error-bound ingredients for the nodes of a Keras conv net: the conv families, transposed
convs included (through the oracle), Dense and BatchNormalization here, the other kinds in node_refs; LayerRef and
bound in ref_base."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import EngineRejected
from ..layers.families import LAYERS, ConfigProblem
from ..layers.geometry import geometry
from ..reference import oracle
from .node_refs import _activation_kind, _elementwise, _global_pool, _movement, _normalization, _pool, _rescaling
from .ref_base import (
    INERT_KEYS,
    INERT_SUFFIXES,
    RSQRT_ULPS,
    Arrays,
    LayerRef,
    NoReference,
    Weights,
    _activation,
    _channels_last,
    bound,
)

__all__ = ["LayerRef", "NoReference", "bound", "reference", "KINDS"]


def _conv(kind: str, config: Mapping[str, Any], weights: Weights, n: int) -> LayerRef:
    """The conv families (every kind of harness.layers.families.LAYERS: Conv, Depthwise, Separable, the transposed
    convs), by the harness oracle (K: Geometry.reduction_length, G: oracle.gauge, H: oracle.underflow_count), from the
    get_config() as harness.frontends.extract.config_of reads it."""
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


Builder = Callable[[str, Mapping[str, Any], Weights, int], LayerRef]
KINDS: dict[str, Builder] = {
    **dict.fromkeys(LAYERS, _conv),
    "Dense": _dense, "BatchNormalization": _batch_norm,
    **dict.fromkeys(("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "TrueDivide", "Divide"),
                    _elementwise),
    **{f"{p}Pooling{r}D": _pool for p in ("Max", "Average") for r in (1, 2, 3)},
    **{f"Global{p}Pooling{r}D": _global_pool for p in ("Max", "Average") for r in (1, 2, 3)},
    **dict.fromkeys(("Flatten", "Reshape", "Concatenate", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
                     "InputLayer", "Identity",
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
