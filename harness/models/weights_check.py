"""The port's weights against the Keras layer's converted: equal, a named wrong conversion, or another layer's."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..convert import keras_to_torch
from .checks import Fix, Issue, Modules, Span, split
from .mapping import Pair, Unit


def _np(t: Any) -> np.ndarray | None:
    return None if t is None else t.detach().to("cpu").numpy()


def expected_params(unit: Unit, flat_spatial: tuple[int, ...] | None = None) -> list[dict[str, np.ndarray]]:
    """What each body module of a correct port holds, in torch's layout, from the Keras weights (a dict per body
    module); a Dense reading a channels-first flatten wants its columns in that order (``flat_spatial`` (H, W, C))."""
    node, w = unit.head, unit.head.weights
    kind = node.kind
    if unit.role in ("conv", "depthwise", "conv_transpose"):
        return [keras_to_torch(kind, {k: w[k] for k in ("kernel", "bias") if k in w})]
    if unit.role == "separable":
        state = keras_to_torch(kind, {k: w[k] for k in ("depthwise_kernel", "pointwise_kernel", "bias") if k in w})
        return [{k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(p)}
                for p in ("depthwise.", "pointwise.")]
    if unit.role == "bn":
        c = next(iter(w.values())).shape[0]
        return [{"weight": w.get("gamma", np.ones(c, np.float32)), "bias": w.get("beta", np.zeros(c, np.float32)),
                 "running_mean": w["moving_mean"], "running_var": w["moving_variance"]}]
    if unit.role == "dense":
        weight = np.ascontiguousarray(w["kernel"].T)
        if flat_spatial is not None:
            f = weight.shape[0]
            weight = np.moveaxis(weight.reshape(f, *flat_spatial), -1, 1).reshape(f, -1)
        out = {"weight": weight}
        if "bias" in w:
            out["bias"] = w["bias"]
        return [out]
    return [{} for _ in unit.nodes]


def actual_params(module: Any) -> dict[str, np.ndarray]:
    out = {n: _np(p) for n, p in module.named_parameters(recurse=False)}
    for n in ("running_mean", "running_var"):
        b = getattr(module, n, None)
        if b is not None:
            out[n] = _np(b)
    return {k: v for k, v in out.items() if v is not None}


def same(a: np.ndarray, b: np.ndarray, tolerance: float = 2.0 ** -22, scale: np.ndarray | None = None) -> bool:
    """Equal up to ``tolerance`` relative to ``b`` (or to ``scale``, what b was computed from; default 2 ulps of
    float32: a conversion done in another precision)."""
    if a.shape != b.shape:
        return False
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return bool(np.all(np.abs(a64 - b64) <= tolerance * (np.abs(b64) if scale is None else scale)))


def alternatives(unit: Unit, name: str, want: np.ndarray,
                 flat_spatial: tuple[int, ...] | None) -> list[tuple[str, str, np.ndarray, str]]:
    """Wrong conversions of a Keras weight a port is known to make: (id, what it is, the tensor it gives, the
    torch statement that undoes it on the port's tensor)."""
    out: list[tuple[str, str, np.ndarray, str]] = []
    if name == "weight" and unit.role in ("conv", "depthwise", "separable") and want.ndim == 4:
        out.append(("kernel_transposed", "the kernel's rows and columns swapped (kh and kw)",
                    np.swapaxes(want, 2, 3), "weight = weight.transpose(2, 3)"))
        out.append(("kernel_flipped", "the kernel flipped (a convolution instead of TensorFlow's cross-correlation)",
                    want[..., ::-1, ::-1], "weight = weight.flip(2, 3)"))
    if name == "weight" and unit.role in ("conv", "separable") and want.ndim >= 3 and want.shape[0] == want.shape[1]:
        out.append(("in_out_swapped", "input and output channels swapped", np.swapaxes(want, 0, 1),
                    "weight = weight.transpose(0, 1)"))
    if name == "weight" and unit.role == "conv_transpose":
        out += _transpose_alternatives(want)
    if name == "weight" and unit.role in ("depthwise", "separable") and want.shape[1] == 1:
        kernel = unit.head.weights.get("kernel", unit.head.weights.get("depthwise_kernel"))
        if kernel is not None and kernel.shape[-1] > 1 and want.shape[0] == kernel.shape[-2] * kernel.shape[-1]:
            c, m = kernel.shape[-2], kernel.shape[-1]
            wrong = np.moveaxis(kernel, (-1, -2), (0, 1)).reshape(c * m, 1, *kernel.shape[:-2])
            out.append(("multiplier_order", (f"the depthwise output channels in the order m*C+c (multiplier-major) "
                        f"instead of Keras's c*M+m (C={c}, M={m})"), wrong,
                        (f"weight = weight.view({m}, {c}, *weight.shape[2:]).transpose(0, 1).reshape({c * m}, 1, "
                        "*weight.shape[2:])")))
    if name == "weight" and unit.role == "dense":
        kernel = unit.head.weights["kernel"]
        if flat_spatial is not None:
            f = kernel.shape[1]
            h = "(" + ", ".join(map(str, flat_spatial)) + ")"
            out.append(("flatten_order", (f"the columns in Keras's channels-last flatten order {h}, but the port "
                        "flattens channels first (C, H, W)"), np.ascontiguousarray(kernel.T),
                        (f"weight = weight.view({f}, {', '.join(map(str, flat_spatial))}).permute(0, "
                        f"{len(flat_spatial)}, {', '.join(str(i) for i in range(1, len(flat_spatial)))})"
                        f".reshape({f}, -1)")))
        if kernel.shape[0] == kernel.shape[1]:
            out.append(("kernel_not_transposed", "the Dense kernel not transposed (torch's Linear holds (out, in))",
                        kernel, "weight = weight.t()"))
    if unit.role == "bn" and name in ("running_mean", "running_var"):
        other = "moving_variance" if name == "running_mean" else "moving_mean"
        out.append(("bn_statistics_swapped", "the moving mean and variance swapped", unit.head.weights[other],
                    "running_mean, running_var = running_var, running_mean"))
    return out


def _transpose_alternatives(want: np.ndarray) -> list[tuple[str, str, np.ndarray, str]]:
    """What a port gets wrong in a transposed conv's weight, torch's (in, filters, *k): the in and out channels
    swapped ((filters, in, *k), a conv's order, where the two counts are equal), the kernel flipped (the taps of the
    equivalent convolution), both (the weight of the equivalent convolution), rows and columns swapped."""
    spatial = tuple(range(2, want.ndim))
    flip = ", ".join(map(str, spatial))
    flipped = np.flip(want, axis=spatial)
    out = [("kernel_flipped", ("the kernel flipped on every spatial axis (the taps of the equivalent convolution; a "
                                "transposed conv scatters with the kernel as Keras holds it)"),
            flipped, f"weight = weight.flip({flip})")]
    if want.shape[0] == want.shape[1]:
        out.append(("in_out_swapped", ("input and output channels swapped (torch's ConvTranspose weight is (in, out, "
                                       "*k), a Conv's (out, in, *k))"),
                    np.swapaxes(want, 0, 1), "weight = weight.transpose(0, 1)"))
        out.append(("conv_equivalent", ("the weight of the equivalent convolution (in and out channels swapped and "
                                        "the kernel flipped)"),
                    np.swapaxes(flipped, 0, 1), f"weight = weight.transpose(0, 1).flip({flip})"))
    if want.ndim == 4:
        out.append(("kernel_transposed", "the kernel's rows and columns swapped (kh and kw)", np.swapaxes(want, 2, 3),
                    "weight = weight.transpose(2, 3)"))
    return out


def weight_issues(pair: Pair, span: Span, others: Sequence[Unit],
                  flat_spatial: tuple[int, ...] | None) -> list[Issue]:
    """The port's parameters against the converted Keras weights: equal, a named wrong conversion (with the
    statement that undoes it), another Keras layer's weights (the mapping of weights is off), or different."""
    issues: list[Issue] = []
    expected = expected_params(pair.unit, flat_spatial)
    for k, (call, want_all) in enumerate(zip(span.body, expected)):
        have_all = actual_params(call.module)
        for name, want in want_all.items():
            have = have_all.get(name)
            if have is None:
                continue   # a missing bias is a configuration difference (config_issues)
            if have.shape != want.shape and have.size == want.size and all(d == 1 for d in want.shape[2:]):
                want = want.reshape(have.shape)   # a 1x1 conv's kernel held by a Linear
            if same(have, want, pair.unit.tolerance, pair.unit.scales.get(name)):
                continue
            where = f"{module_name(pair, k)}.{name}"
            found = next(((i, what, stmt) for i, what, alt, stmt in alternatives(pair.unit, name, want, flat_spatial)
                          if same(have, alt)), None)
            if found is not None:
                i, what, stmt = found
                fix = _set_param(k, name, want, f"{stmt}  # on {where}")
                issues.append(Issue("weights", i, f"{where}: {what}", fix, {"tensor": where}))
                continue
            owner = _owner(pair.unit, k, name, have, others, flat_spatial)
            if owner is not None:
                issues.append(Issue("mapping", "weights_of_another_layer",
                                    f"{where} holds the weights of Keras layer {owner!r}, not of {pair.unit.name!r}",
                                    _set_param(k, name, want, f"load {where} from Keras layer {pair.unit.name!r}"),
                                    {"tensor": where, "owner": owner}))
                continue
            if have.shape != want.shape:
                text = f"{where} has shape {list(have.shape)}, but should be {list(want.shape)}"
            else:
                rel = float(np.max(np.abs(have.astype(np.float64) - want)) / max(float(np.max(np.abs(want))), 1e-300))
                text = (f"{where} differs from the converted Keras weight (max difference {rel:.3g} of its "
                        "largest element) and is no known permutation of it")
            issues.append(Issue("weights", "different", text, _set_param(k, name, want, f"load {where} from Keras"),
                                {"tensor": where}))
    return issues


def _owner(unit: Unit, k: int, name: str, have: np.ndarray, others: Sequence[Unit],
           flat_spatial: tuple[int, ...] | None) -> str | None:
    for other in others:
        if other is unit or other.role != unit.role:
            continue
        try:
            want = expected_params(other, flat_spatial)[k].get(name)
        except (ValueError, KeyError, IndexError):
            continue
        if want is not None and same(have, want) and np.any(want):
            return other.name
    return None


def module_name(pair: Pair, k: int) -> str:
    span = split(pair)
    return span.body[k].path or "<root>"


def _set_param(k: int, name: str, value: np.ndarray, text: str) -> Fix:
    def apply(modules: Modules) -> Modules:
        import torch

        target = modules[k]
        current = getattr(target, name)
        tensor = torch.from_numpy(np.ascontiguousarray(value)).to(current.dtype)
        if isinstance(current, torch.nn.Parameter):
            setattr(target, name, torch.nn.Parameter(tensor, requires_grad=False))
        else:
            setattr(target, name, tensor)
        return modules
    return Fix(text, apply)
