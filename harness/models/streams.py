"""Streams: a Keras tensor (channels last) and the same tensor as the port holds it, matched by shape and value."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Convert = Callable[[np.ndarray], np.ndarray]


def channels_first(a: np.ndarray) -> np.ndarray:
    """(N, *spatial, C) -> (N, C, *spatial); tensors of rank < 3 unchanged."""
    return np.moveaxis(a, -1, 1) if a.ndim >= 3 else a


def channels_last(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, 1, -1) if a.ndim >= 3 else a


def hwc_to_chw_flat(a: np.ndarray, spatial: Sequence[int]) -> np.ndarray:
    """A (N, H*W*C) vector flattened channels last -> the same values flattened channels first."""
    n = a.shape[0]
    return channels_first(a.reshape(n, *spatial)).reshape(n, -1)


def chw_to_hwc_flat(a: np.ndarray, spatial: Sequence[int]) -> np.ndarray:
    n, c = a.shape[0], spatial[-1]
    return channels_last(a.reshape(n, c, *spatial[:-1])).reshape(n, -1)


@dataclass(frozen=True)
class Layout:
    """How the port holds a Keras tensor: a name for messages and the conversion both ways."""

    name: str                 # channels_first | channels_last | flatten (C,H,W) | reshaped ...
    to_torch: Convert
    to_keras: Convert


def candidates(keras_shape: tuple[int, ...], torch_first: bool,
               flat_origin: tuple[int, ...] | None = None) -> list[Layout]:
    """The layouts the port may hold a Keras tensor of ``keras_shape`` in: its declared layout first. A 2-D
    tensor that Keras flattened from ``flat_origin`` (N, *spatial, C) may be in the port's (C, *spatial) order."""
    first = Layout("channels_first", channels_first, channels_last)
    last = Layout("channels_last", lambda a: a, lambda a: a)
    out = [first, last] if torch_first else [last, first]
    if len(keras_shape) == 2 and flat_origin is not None and len(flat_origin) >= 3:
        spatial = tuple(flat_origin[1:])
        out.append(Layout("flattened channels first (C, H, W)", lambda a: hwc_to_chw_flat(a, spatial),
                          lambda a: chw_to_hwc_flat(a, spatial)))
    return out


def match(keras_value: np.ndarray, torch_value: np.ndarray, torch_first: bool,
          flat_origin: tuple[int, ...] | None = None) -> Layout | None:
    """The layout the port holds ``keras_value`` in, given the port's own tensor at that point: the port's declared
    layout wherever its shape fits (a C = H tensor has two layouts of the same shape, and the port's values may
    have diverged: shapes decide, not values), a reshape of equal size allowed (a GlobalAveragePooling2D's (N, C)
    against torch's (N, C, 1, 1)); only a flattened tensor, whose orders all have one shape, is told by its
    values (the order under which the port's tensor is closest). None where no layout gives the port's shape."""
    fits: list[tuple[Layout, np.ndarray]] = []
    for layout in candidates(keras_value.shape, torch_first, flat_origin):
        moved = layout.to_torch(keras_value)
        if moved.size == torch_value.size:
            fits.append((layout, moved))
    exact = [(lay, m) for lay, m in fits if m.shape == torch_value.shape]
    if exact and not (len(keras_value.shape) == 2 and flat_origin is not None):
        return exact[0][0]
    if not fits:
        return None
    pool = exact or fits
    gaps = [float(np.nan_to_num(np.max(np.abs(m.reshape(torch_value.shape).astype(np.float64) - torch_value),
                                       initial=0.0), nan=np.inf)) for _, m in pool]
    layout, moved = pool[int(np.argmin(gaps))]
    return layout if moved.shape == torch_value.shape else _reshaped(layout, keras_value.shape, torch_value.shape)


def _reshaped(layout: Layout, keras_shape: tuple[int, ...], torch_shape: tuple[int, ...]) -> Layout:
    return Layout(f"{layout.name}, reshaped to {list(torch_shape[1:])}",
                  lambda a: layout.to_torch(a).reshape((a.shape[0], *torch_shape[1:])),
                  lambda a: layout.to_keras(a.reshape((a.shape[0], *_moved_shape(layout, keras_shape)[1:])))
                  .reshape((a.shape[0], *keras_shape[1:])))


def _moved_shape(layout: Layout, keras_shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(layout.to_torch(np.zeros((1, *keras_shape[1:]))).shape)


def functional_pad(keras_input_t: np.ndarray, torch_input: np.ndarray) -> tuple[tuple[int, int], ...] | None:
    """Where the port's conv reads a larger input than the Keras layer (an F.pad in its forward, channels first):
    the (before, after) zeros per spatial axis under which its interior best matches the Keras input; None where
    the shapes agree or cannot be explained by padding."""
    a, b = keras_input_t.shape, torch_input.shape
    if a == b or len(a) != len(b) or a[:2] != b[:2] or any(t < k for k, t in zip(a[2:], b[2:])):
        return None
    extra = [t - k for k, t in zip(a[2:], b[2:])]
    best: tuple[float, tuple[int, ...]] | None = None
    for offsets in np.ndindex(*[e + 1 for e in extra]):
        window = tuple(slice(o, o + k) for o, k in zip(offsets, a[2:]))
        gap = float(np.max(np.abs(torch_input[(slice(None), slice(None), *window)] - keras_input_t), initial=0.0))
        if best is None or gap < best[0]:
            best = (gap, tuple(offsets))
    assert best is not None
    return tuple((o, e - o) for o, e in zip(best[1], extra))


def pad_value(padded: np.ndarray, pads: Sequence[tuple[int, int]]) -> float:
    """The constant the port padded with: the value of the first padded element (0 where nothing was padded)."""
    for axis, (before, after) in enumerate(pads):
        if before or after:
            index = [0] * padded.ndim
            index[2 + axis] = 0 if before else padded.shape[2 + axis] - 1
            return float(padded[tuple(index)])
    return 0.0


def pad_zeros(a: np.ndarray, pads: Sequence[tuple[int, int]]) -> np.ndarray:
    """Zeros around the spatial axes of a channels-first tensor."""
    return np.pad(a, [(0, 0), (0, 0), *pads])
