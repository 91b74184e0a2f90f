"""Picture data of one (case, engine): downsampled heatmaps, ratio histogram, worst elements, error pattern."""
from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..reference.agreement import LazyArray, ratios

# Heatmaps only: every metric, the histogram and the worst elements come from the full output.
TOP_ELEMENTS = 5
HIST_LOG10_EDGES = [x / 2 for x in range(-12, 17)]          # 1e-6 .. 1e8 in half decades
MAX_BARS = 4096                                               # per-channel bars; more channels are pooled
_EDGES_LINEAR = 10.0 ** np.asarray(HIST_LOG10_EDGES)
CHUNK_ELEMENTS = 1 << 22                                      # samples are processed in slices of ~4M elements


@dataclass(frozen=True)
class Budget:
    """How much of a case's output the page shows as pixels (cells per quantity)."""

    worst_channels: int
    side_2d: int          # a worst-channel map is at most side x side cells
    side_1d: int          # a 1D channel strip is at most this many cells long
    all_cells: int        # all channels together, at most this many cells (else no all-channels view)


FAILING = Budget(worst_channels=4, side_2d=64, side_1d=512, all_cells=32768)
PASSING = Budget(worst_channels=2, side_2d=16, side_1d=128, all_cells=1024)
# A pass is drawn only when it used at least this share of its error budget. The bound is a rigorous worst case:
# a correct engine's error is far under it (the shipped suite's passes use under half of it), so one at half its
# budget is the pass a change of kernel path or CPU may push over, the one a reader would look at; the maps of
# every other pass (most of a page's bytes) would show a uniform pale field. Its ratio, histogram and worst
# element are kept (results.json holds its worst elements and pattern in full).
NEAR_BOUND = 0.5


def budget_for(failing: bool, max_ratio: float | None) -> Budget | None:
    """The picture budget of an item (or of one gradient tensor): FAILING for an item that fails (a known bug
    included), PASSING for a pass at NEAR_BOUND or more of its budget, None (no maps) for every other pass."""
    if failing:
        return FAILING
    return PASSING if max_ratio is not None and max_ratio >= NEAR_BOUND else None


def _channels_to_front(a: np.ndarray, channels_first: bool) -> np.ndarray:
    """(N, *spatial, C) or (N, C, *spatial) -> (N, C, H, W), with H = 1 for 1D layers; with more than two spatial
    axes the leading ones are folded into the rows (a 3D output's depth slices stacked top to bottom)."""
    if not channels_first:
        a = np.moveaxis(a, -1, 1)
    if a.ndim == 3:
        a = a[:, :, None, :]
    elif a.ndim > 4:
        a = a.reshape(*a.shape[:2], -1, a.shape[-1])
    return a


def _pool_max(a: np.ndarray, fh: int, fw: int) -> np.ndarray:
    """Max over fh x fw blocks of the last two axes (so a single bad element stays visible)."""
    *lead, h, w = a.shape
    ph, pw = -h % fh, -w % fw
    if ph or pw:
        a = np.pad(a, [(0, 0)] * len(lead) + [(0, ph), (0, pw)])   # values are >= 0: padding with 0 is neutral
    hh, ww = a.shape[-2] // fh, a.shape[-1] // fw
    return a.reshape(*lead, hh, fh, ww, fw).max(axis=(-3, -1))


def _factors(h: int, w: int, max_h: int, max_w: int) -> tuple[int, int]:
    return max(1, math.ceil(h / max_h)), max(1, math.ceil(w / max_w))


def _encode(maps: np.ndarray) -> dict[str, Any]:
    """uint8 codes of log10 values: 0 = exactly 0, 255 = inf/NaN, 1..254 spread over [lo, hi] (one set)."""
    v = np.asarray(maps, dtype=np.float64)
    finite_pos = v[np.isfinite(v) & (v > 0)]
    if finite_pos.size:
        hi = float(np.log10(finite_pos.max()))
        lo = max(float(np.log10(finite_pos.min())), hi - 12.0)
    else:
        lo = hi = 0.0
    codes = np.zeros(v.shape, dtype=np.uint8)
    pos = np.isfinite(v) & (v > 0)
    span = hi - lo
    if span > 0:
        scaled = (np.log10(np.where(pos, v, 1.0)) - lo) / span
        codes[pos] = (1 + np.round(np.clip(scaled[pos], 0.0, 1.0) * 253)).astype(np.uint8)
    else:
        codes[pos] = 254
    codes[~np.isfinite(v)] = 255
    return {"lo": lo, "hi": hi, "b64": base64.b64encode(codes.tobytes()).decode("ascii")}


def _map_set(err: np.ndarray, ratio: np.ndarray, channels: list[int], max_h: int, max_w: int) -> dict[str, Any]:
    """Maps of ``channels`` (C, H, W arrays reduced over the batch), pooled to fit max_h x max_w."""
    h, w = err.shape[-2:]
    fh, fw = _factors(h, w, max_h, max_w)
    e = _pool_max(err[channels], fh, fw)
    r = _pool_max(ratio[channels], fh, fw)
    return {"channels": channels, "shape": list(e.shape[-2:]), "cell": [fh, fw], "err": _encode(e),
            "ratio": _encode(r)}


def _pattern(over_c: np.ndarray, over_hw: np.ndarray, n_over: int, size: int) -> dict[str, Any]:
    """Where the elements over the bound lie: which channels, and whether only along the border (the first and
    last position of every spatial axis longer than 2; ``over_hw`` is the positions, at any rank)."""
    border = np.zeros_like(over_hw, dtype=bool)
    for axis, n in enumerate(over_hw.shape):
        if n > 2:
            index: list[Any] = [slice(None)] * over_hw.ndim
            index[axis] = [0, -1]
            border[tuple(index)] = True
    over_positions = int(np.count_nonzero(over_hw))
    on_border = int(np.count_nonzero(over_hw & border))
    return {
        "n_over": n_over, "size": size,
        "channels_over": [int(c) for c in np.flatnonzero(over_c)][:64],
        "n_channels_over": int(np.count_nonzero(over_c)), "n_channels": int(over_c.size),
        "positions_over": over_positions, "n_positions": int(over_hw.size),
        "border_only": bool(border.any() and over_positions and on_border == over_positions),
    }


def _top(candidates: list[tuple[float, int]], flat_index: np.ndarray, values: np.ndarray) -> list[tuple[float, int]]:
    merged = candidates + [(float(v), int(i)) for v, i in zip(values, flat_index)]
    return sorted(merged, key=lambda t: (-t[0], t[1]))[:TOP_ELEMENTS]


def histogram(r: np.ndarray, acc: dict[str, Any] | None = None) -> dict[str, Any]:
    """Counts of ratios per half decade [10^a, 10^(a+1/2)) (exact, full output); accumulates across slices."""
    edges = HIST_LOG10_EDGES
    acc = acc or {"log10_edges": edges, "counts": [0] * (len(edges) - 1),
                  "zero": 0, "below": 0, "above": 0, "nonfinite": 0}
    # One binary search per element against the 29 edges (no log, no sort): slot 0 holds everything below
    # the first edge (zeros included), the last slot everything from the top edge on (inf included).
    slots = np.bincount(np.searchsorted(_EDGES_LINEAR, r.ravel(), side="right"), minlength=len(edges) + 1)
    zero = int(np.count_nonzero(r == 0))
    nonfinite = int(r.size - np.count_nonzero(np.isfinite(r)))
    acc["zero"] += zero
    acc["nonfinite"] += nonfinite
    acc["below"] += int(slots[0]) - zero
    acc["above"] += int(slots[-1]) - nonfinite
    acc["counts"] = [a + int(c) for a, c in zip(acc["counts"], slots[1:-1])]
    return acc


def _top_of(flat: np.ndarray, k: int) -> np.ndarray:
    """Flat indices of the k largest values, largest first, ties to the lower index (k small: k argmax)."""
    picked = []
    saved = []
    for _ in range(min(k, flat.size)):
        i = int(np.argmax(flat))
        picked.append(i)
        saved.append(flat[i])
        flat[i] = -np.inf
    for i, v in zip(picked, saved):
        flat[i] = v
    return np.asarray(picked, dtype=np.int64)


def engine_pictures(y: np.ndarray, y_oracle: np.ndarray, bound: np.ndarray | LazyArray, channels_first: bool,
                    budget: Budget | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(data for the results file: histogram, worst elements, pattern; heatmaps for the page within ``budget``,
    None where it is None: budget_for)."""
    n = y.shape[0]
    per_sample = max(1, int(np.prod(y.shape[1:])))
    step = max(1, CHUNK_ELEMENTS // per_sample)
    err_max: np.ndarray | None = None
    ratio_max: np.ndarray | None = None
    over_any: np.ndarray | None = None
    hist: dict[str, Any] | None = None
    top: list[tuple[float, int]] = []
    n_over = 0
    for start in range(0, n, step):
        sl = slice(start, min(n, start + step))
        ys = np.asarray(y[sl], dtype=np.float64)
        r = ratios(ys, y_oracle[sl], bound[sl])
        e = np.abs(ys - y_oracle[sl])
        e[np.isnan(e)] = np.inf
        hist = histogram(r, hist)
        n_over += int(np.count_nonzero(r > 1.0))
        flat = r.reshape(-1)
        cand = _top_of(flat, TOP_ELEMENTS)
        top = _top(top, cand + start * per_sample, flat[cand])
        rf, ef = _channels_to_front(r, channels_first), _channels_to_front(e, channels_first)
        rmax, emax, omax = rf.max(axis=0), ef.max(axis=0), np.asarray((rf > 1.0).any(axis=0))
        err_max = emax if err_max is None else np.maximum(err_max, emax)
        ratio_max = rmax if ratio_max is None else np.maximum(ratio_max, rmax)
        over_any = omax if over_any is None else over_any | omax
    assert err_max is not None and ratio_max is not None and over_any is not None and hist is not None
    worst = _worst(top, y, y_oracle, bound)
    c = ratio_max.shape[0]
    spatial_shape = tuple(y.shape[2:] if channels_first else y.shape[1:-1])
    over_hw = np.asarray(over_any.any(axis=0))
    if len(spatial_shape) > 2:
        over_hw = over_hw.reshape(spatial_shape)   # the border of the layer's own grid, not of the folded picture
    pattern = _pattern(np.asarray(over_any.reshape(c, -1).any(axis=1)), over_hw, n_over, int(y.size))
    extra = {"ratio_histogram": hist, "worst_elements": worst, "pattern": pattern}
    if budget is None:
        return extra, None
    return extra, _maps(err_max, ratio_max, worst, spatial_shape, int(n), channels_first, budget)


def _worst(top: list[tuple[float, int]], y: np.ndarray, y_oracle: np.ndarray, bound: np.ndarray | LazyArray
           ) -> list[dict[str, Any]]:
    worst: list[dict[str, Any]] = []
    for value, flat_i in top:
        idx = np.unravel_index(flat_i, y.shape)
        yo = float(y_oracle[idx])
        ye = float(np.asarray(y[idx], dtype=np.float64))
        worst.append({"index": [int(i) for i in idx], "value": ye, "oracle": yo, "abs_err": abs(ye - yo),
                      "bound": float(bound[idx]), "ratio": value})
    return worst


def _maps(err_max: np.ndarray, ratio_max: np.ndarray, worst: list[dict[str, Any]], spatial_shape: tuple[int, ...],
          n: int, channels_first: bool, budget: Budget) -> dict[str, Any]:
    """The heatmaps of one output (C, H, W maxima over the batch) within ``budget``."""
    c, h, w = ratio_max.shape
    per_channel = ratio_max.reshape(c, -1).max(axis=1)
    order = sorted(range(c), key=lambda i: (-per_channel[i], i))
    side_h, side_w = (1, budget.side_1d) if h == 1 else (budget.side_2d, budget.side_2d)
    chosen = order[:budget.worst_channels]
    channel_cell = max(1, math.ceil(c / MAX_BARS))
    pictures: dict[str, Any] = {
        "batch": int(n), "channels": int(c), "grid": [int(h), int(w)], "rank": 1 if h == 1 else 2,
        "spatial": [int(s) for s in spatial_shape],   # the grid's rows fold every spatial axis but the last
        "worst": _map_set(err_max, ratio_max, chosen, side_h, side_w),
        "channel_cell": channel_cell,
        "channel_max_ratio": _encode(_pool_max(per_channel[None, :], 1, channel_cell)[0]),
        "channel_max_err": _encode(_pool_max(err_max.reshape(c, -1).max(axis=1)[None, :], 1, channel_cell)[0]),
        "all": None,
    }
    if c > len(chosen):
        # Every channel at the coarsest resolution that fits the budget; none when even 1 cell each does not.
        per = budget.all_cells // c
        if per >= 1:
            side = max(1, math.isqrt(per)) if h > 1 else per
            pictures["all"] = _map_set(err_max, ratio_max, list(range(c)), side if h > 1 else 1,
                                       side if h > 1 else per)
    if worst:
        wi = worst[0]["index"]
        ch = wi[1] if channels_first else wi[-1]
        spatial = wi[2:] if channels_first else wi[1:-1]
        pictures["worst_at"] = {"channel": int(ch), "pos": [0, int(spatial[0])] if len(spatial) == 1 else
                                [int(np.ravel_multi_index(spatial[:-1], spatial_shape[:-1])), int(spatial[-1])]}
    return pictures


# ---- gradient tensors (the backward check): each drawn with the same maps, in a 2-D view that fits it

def gradient_view(name: str, shape: tuple[int, ...], channels_first: bool, layer: str = ""
                  ) -> tuple[tuple[int, ...], bool, dict[str, Any]]:
    """How the gradient tensor ``name`` of ``shape`` (of a ``layer``) is drawn: (the shape engine_pictures sees,
    whether its channels come first, the labels the page uses). dx is drawn as an output is (the input's
    data_format: per input channel a map over the spatial grid); a kernel (*K, C_in, C_out), in Keras layout, per
    C_out (a depthwise kernel's depth multiplier) a map of taps (rows, the kernel axes flattened in C order) x C_in
    (columns); a vector (the bias) as one strip."""
    if name == "x":
        return tuple(shape), channels_first, {"tensor": "dx", "channel": "input channel",
                                              "positions": "spatial positions", "border": True}
    if len(shape) >= 3:
        taps = int(np.prod(shape[:-2]))
        depthwise = name == "depthwise_kernel" or (name == "kernel" and layer.startswith("Depthwise"))
        out = "depth multiplier" if depthwise else "output channel"
        return (1, taps, int(shape[-2]), int(shape[-1])), False, {
            "tensor": f"d{name}", "channel": out,
            "rows": "kernel tap (" + "\u00d7".join(str(k) for k in shape[:-2]) + ", flattened in C order)",
            "cols": "input channel", "positions": "(tap, input channel) cells", "border": False}
    return (1, int(np.prod(shape)), 1), False, {"tensor": f"d{name}", "channel": None, "cols": "element",
                                                "positions": None, "border": False}


def gradient_pictures(name: str, g: np.ndarray, g_oracle: np.ndarray, bound: np.ndarray, channels_first: bool,
                      budget: Budget | None, layer: str = "") -> tuple[dict[str, Any], dict[str, Any] | None]:
    """engine_pictures of one gradient tensor in its gradient_view; worst-element indices are the tensor's own
    (Keras layout for kernels), the pictures carry the view's labels as ``view`` (None: no maps, as there)."""
    shape = tuple(np.shape(g_oracle))
    view, cf, labels = gradient_view(name, shape, channels_first, layer)
    bound = np.broadcast_to(np.asarray(bound, dtype=np.float64), shape)
    extra, pics = engine_pictures(np.asarray(g).reshape(view), np.asarray(g_oracle).reshape(view),
                                  bound.reshape(view), cf, budget)
    for w in extra["worst_elements"]:   # the same flat (C-order) index, in the tensor's own shape
        flat = int(np.ravel_multi_index(tuple(w["index"]), view))
        w["index"] = [int(i) for i in np.unravel_index(flat, shape)]
    if not labels["border"]:
        extra["pattern"]["border_only"] = False   # a kernel or bias has no padding border
    if pics is None:
        return extra, None
    pics["view"] = labels
    pics["shape"] = [int(s) for s in shape]
    return extra, pics
