"""The bare script of `make bench` (a): the framework calls the harness makes for a set of cases, and nothing else.

    python tools/bench_bare.py SPEC.json ARRAYS.npz [--engines keras,torch]

SPEC.json (written by tools/bench.py) lists each case's Keras layer, config, dtype and weight names in Keras
order; ARRAYS.npz holds its input and weights (bfloat16 stored as float32: exact). Per case, as a user would write
it: keras.layers.<Layer>(**config, dtype=...), build, set_weights, call; the same layer as real torch.nn.Conv1d /
Conv2d modules (groups=C for depthwise, depthwise then 1x1 for separable, F.pad for TensorFlow's 'same' and
'causal'), weights copied in, called; then one comparison of the two outputs. No YAML, no oracle, no error bound,
no judging: the harness's cost beyond this is its overhead. It imports nothing of the harness.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import sys
import time
from typing import Any

import numpy as np


def _tuple(value, rank):
    return (int(value),) * rank if isinstance(value, int) else tuple(int(v) for v in value)


def _pads(padding, n, k, s, d):
    """TensorFlow's (before, after) padding of one axis (the odd pixel of 'same' at the end)."""
    ek = (k - 1) * d + 1
    if padding == "same":
        total = max(0, (math.ceil(n / s) - 1) * s + ek - n)
        return total // 2, total - total // 2
    if padding == "causal":
        return ek - 1, 0
    return 0, 0


def keras_run(keras, layer, config, x, weights, dtype):
    obj = getattr(keras.layers, layer)(**config, dtype=dtype)
    obj.build(x.shape)
    obj.set_weights(weights)
    return obj(x).numpy()


def torch_run(torch, layer, config, x, weights, dtype):
    nn, F = torch.nn, torch.nn.functional
    rank = 1 if layer.endswith("1D") else 2
    first = config.get("data_format", "channels_last") == "channels_first"
    k = _tuple(config["kernel_size"], rank)
    s = _tuple(config.get("strides", 1), rank)
    d = _tuple(config.get("dilation_rate", 1), rank)
    padding = str(config.get("padding", "valid")).lower()
    use_bias = config.get("use_bias", True)
    tdtype = getattr(torch, dtype)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32) if dtype == "bfloat16" else x).to(tdtype)
    if not first:
        xt = xt.movedim(-1, 1)
    C = xt.shape[1]
    spatial = xt.shape[2:]
    pads = [_pads(padding, n, kk, ss, dd) for n, kk, ss, dd in zip(spatial, k, s, d)]
    flat = [p for pair in reversed(pads) for p in pair]
    conv = nn.Conv1d if rank == 1 else nn.Conv2d

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32) if dtype == "bfloat16" else
                                np.ascontiguousarray(a)).to(tdtype)

    with torch.no_grad():
        if any(flat):
            xt = F.pad(xt, flat)
        if layer.startswith("Conv"):
            kernel = weights[0]                         # (*k, C/groups, F) -> (F, C/groups, *k)
            groups = int(config.get("groups", 1))
            m = conv(C, kernel.shape[-1], k, stride=s, dilation=d, groups=groups, bias=use_bias, dtype=tdtype)
            m.weight.copy_(t(np.moveaxis(kernel, (-1, -2), (0, 1))))
            if use_bias:
                m.bias.copy_(t(weights[1]))
            modules = [m]
        else:
            dw = weights[0]                             # (*k, C, M) -> (C*M, 1, *k), channel c*M + m
            M = dw.shape[-1]
            separable = layer.startswith("Separable")
            m = conv(C, C * M, k, stride=s, dilation=d, groups=C, bias=use_bias and not separable, dtype=tdtype)
            m.weight.copy_(t(np.moveaxis(dw.reshape(*k, C * M), -1, 0)[:, None]))
            modules = [m]
            if separable:
                pw = weights[1]                         # (*1, C*M, F) -> (F, C*M, *1)
                p = conv(C * M, pw.shape[-1], 1, bias=use_bias, dtype=tdtype)
                p.weight.copy_(t(np.moveaxis(pw, (-1, -2), (0, 1))))
                if use_bias:
                    p.bias.copy_(t(weights[2]))
                modules.append(p)
            elif use_bias:
                m.bias.copy_(t(weights[1]))
        for module in modules:
            xt = module(xt)
        activation = config.get("activation") or "linear"
        xt = {"linear": lambda v: v, "relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid,
              "tanh": torch.tanh}[activation](xt)
    if not first:
        xt = xt.movedim(1, -1)
    return xt.float().numpy() if dtype == "bfloat16" else xt.numpy()


def main(argv: list[str]) -> int:
    start = time.perf_counter()
    spec_path, arrays_path = argv[0], argv[1]
    engines = argv[argv.index("--engines") + 1].split(",") if "--engines" in argv else ["keras", "torch"]
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    arrays = np.load(arrays_path)
    keras: Any = None
    torch: Any = None
    if "keras" in engines:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        keras = importlib.import_module("keras")
    if "torch" in engines:
        torch = importlib.import_module("torch")
    bf16 = None
    counts = {"cases": 0, "keras_errors": 0, "torch_errors": 0, "compared": 0}
    worst = 0.0
    for i, case in enumerate(spec["cases"]):
        dtype = case["dtype"]
        if dtype == "bfloat16":
            if bf16 is None:
                import ml_dtypes

                bf16 = ml_dtypes.bfloat16
            target = bf16   # float32 holds bfloat16 values exactly
        else:
            target = dtype
        x = arrays[f"x{i}"].astype(target)
        weights = [arrays[f"w{i}_{j}"].astype(target) for j in range(len(case["weights"]))]
        outputs: list[np.ndarray] = []
        counts["cases"] += 1
        if keras is not None:
            try:
                outputs.append(keras_run(keras, case["layer"], case["config"], x, weights, dtype))
            except Exception:  # noqa: BLE001 - a refused configuration: the harness records it, so do we
                counts["keras_errors"] += 1
        if torch is not None:
            try:
                outputs.append(torch_run(torch, case["layer"], case["config"], x, weights, dtype))
            except Exception:  # noqa: BLE001 - a refused configuration, as for keras above
                counts["torch_errors"] += 1
        if len(outputs) == 2 and outputs[0].shape == outputs[1].shape:
            diff = np.abs(outputs[0].astype(np.float64) - outputs[1].astype(np.float64))
            worst = max(worst, float(diff.max()) if diff.size else 0.0)
            counts["compared"] += 1
    print(json.dumps({**counts, "max_abs_keras_vs_torch": worst, "seconds": time.perf_counter() - start}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
