"""Float64 NumPy vector-Jacobian products of the convolution primitives (Keras semantics, channels last)."""
from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from .conv_ops import Window, one_blas_thread

# Every function here is the transpose of a conv_ops primitive, written independently of it (conv_ops is the
# forward's to change): the same padding (the family's split, 'same' with the odd pixel at the end, 'causal' all
# before), the same tap order and the same channel layouts (groups as contiguous blocks; depthwise channel c*M + m).
# The loops run over kernel taps only: each tap is one strided view of the padded input, and its contribution to
# every output position is one BLAS product.


def _tap_windows(g: Window, out: tuple[int, ...]) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """(tap, index of the padded input's positions that tap multiplies for every output position), taps in the
    row-major order conv_ops uses (the kernel's own axis order)."""
    for tap in itertools.product(*(range(k) for k in g.kernel_size)):
        index = [slice(None)]
        for t, d, s, o in zip(tap, g.dilation, g.strides, out):
            index.append(slice(t * d, t * d + (o - 1) * s + 1, s))
        index.append(slice(None))
        yield tap, tuple(index)


def _padded_input(x: np.ndarray, g: Window, dz: np.ndarray) -> tuple[np.ndarray, tuple[slice, ...]]:
    """x zero-padded as Keras pads it, and the index of x's own positions inside it (to crop dx back)."""
    widths = g.pad_widths(tuple(x.shape[1:-1]))
    xp = np.pad(x, [(0, 0), *widths, (0, 0)])
    interior = (slice(None), *(slice(b, b + n) for (b, _), n in zip(widths, x.shape[1:-1])), slice(None))
    # The output extent is dz's: a shape mismatch is the caller's mistake, said here rather than as a broadcast error.
    want = g.output_spatial(tuple(x.shape[1:-1]))
    if dz.shape[0] != x.shape[0] or tuple(dz.shape[1:-1]) != want:
        raise ValueError(f"dz has shape {dz.shape}, but the layer's output on x {x.shape} is "
                         f"({x.shape[0]}, {', '.join(map(str, want))}, <channels>)")
    return xp, interior


def conv_backward(x: np.ndarray, kernel: np.ndarray, dz: np.ndarray, g: Window) -> tuple[np.ndarray, np.ndarray]:
    """Grouped cross-correlation's VJP: x (N, *S, C), kernel (*K, C/groups, F), dz (N, *S', F) the gradient of the
    output before bias -> (dx (N, *S, C), dkernel (*K, C/groups, F))."""
    x, kernel, dz = (np.asarray(a, dtype=np.float64) for a in (x, kernel, dz))
    xp, interior = _padded_input(x, g, dz)
    groups, cg, f = g.groups, kernel.shape[-2], kernel.shape[-1]
    fg = f // groups
    n_pos = dz.shape[0] * int(np.prod(dz.shape[1:-1]))
    # dz as (groups, batch x positions, F/groups): one matrix per group, the batch and positions as the sum's rows.
    dzg = np.ascontiguousarray(dz.reshape(n_pos, groups, fg).transpose(1, 0, 2))
    dxp = np.zeros_like(xp)
    dkernel = np.empty_like(kernel)
    with one_blas_thread():
        for tap, index in _tap_windows(g, dz.shape[1:-1]):
            view = xp[index]                                                  # (N, *S', C), strided
            xg = view.reshape(n_pos, groups, cg).transpose(1, 2, 0)           # (groups, C/groups, rows)
            w = kernel[tap].reshape(cg, groups, fg).transpose(1, 0, 2)        # (groups, C/groups, F/groups)
            # dkernel[tap] = sum over batch and positions of x * dz, per group.
            dkernel[tap] = (xg @ dzg).transpose(1, 0, 2).reshape(cg, f)
            # dx: each output position sends dz @ w^T back to the input position this tap read; positions that
            # several (tap, output) pairs read accumulate, those no tap read (stride leftovers, padding) stay 0.
            back = (dzg @ w.transpose(0, 2, 1)).transpose(1, 0, 2)            # (rows, groups, C/groups)
            dxp[index] += back.reshape(view.shape)
    return dxp[interior], dkernel


def depthwise_backward(x: np.ndarray, kernel: np.ndarray, dz: np.ndarray,
                       g: Window) -> tuple[np.ndarray, np.ndarray]:
    """Depthwise conv's VJP: x (N, *S, C), kernel (*K, C, M), dz (N, *S', C*M) (output channel c*M + m) ->
    (dx (N, *S, C), dkernel (*K, C, M)). A depthwise conv is the grouped conv with one group per input channel
    and the kernel (*K, 1, C*M): group c's outputs are channels c*M .. c*M + M - 1, as conv_ops.depthwise lays
    them out."""
    kernel = np.asarray(kernel, dtype=np.float64)
    c, m = kernel.shape[-2], kernel.shape[-1]
    grouped = kernel.reshape(*kernel.shape[:-2], 1, c * m)
    dx, dkernel = conv_backward(x, grouped, dz, g.replace(groups=c))
    return dx, dkernel.reshape(kernel.shape)


def pointwise_backward(z: np.ndarray, kernel: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1x1 conv's VJP: z (N, *S, C*M), kernel (1.., C*M, F), dy (N, *S, F) -> (dz like z, dkernel like kernel)."""
    z, kernel, dy = (np.asarray(a, dtype=np.float64) for a in (z, kernel, dy))
    p: np.ndarray = kernel.reshape(kernel.shape[-2:])   # (C*M, F)
    with one_blas_thread():
        dz = dy @ p.T
        # Sum over the batch and every position: one (C*M x rows) @ (rows x F) product.
        dkernel = z.reshape(-1, p.shape[0]).T @ dy.reshape(-1, p.shape[1])
    return dz, dkernel.reshape(kernel.shape)
